"""List members Klaviyo knows by another identifier than the email a source row gives them.

A profile has three identifiers: email, phone number and external id, each unique in the account.
The plan's match is by email first, so a row that gives an email the list does not hold is an add
(an import). But Klaviyo's import finds the profile by *any* identifier the row gives: a row that
gives a member's phone number is imported onto that member (giving it the row's email), it makes
no other profile. So that member is in the source: it is **kept**, never planned as a removal in
mirror mode. (Before, it was: the approval asked to remove a person the file lists, and whether
they stayed on the list depended on whether the import job or the removal ran first.) The same
holds for a row's external id and a member known by it alone (no email, no phone).

The report counts such a member among the unchanged members, and its row among the adds (the
import that updates the profile). A member a row names only by external id while the member has
a phone number is matched by email only, as before: the row may give another phone, and which
profile Klaviyo picks is not guessed at.
"""

from __future__ import annotations

import sqlite3

__all__ = ["keep_members_known_otherwise"]


def keep_members_known_otherwise(db: sqlite3.Connection) -> int:
    """Mark as matched (kept) the members an unmatched source row names by phone number, or by external
    id when the member has neither an email nor a phone number; how many.

    Each subquery is uncorrelated (SQLite evaluates it once), so the cost is one pass over the
    source and one over the email-less members, whatever their numbers.
    """
    unmatched = "SELECT {0} FROM source WHERE member_id IS NULL AND {0} IS NOT NULL"
    kept = 0
    for column, also in (("phone", ""), ("external_id", " AND email_key IS NULL AND phone IS NULL")):
        kept += db.execute(
            f"UPDATE members SET matched = 1 WHERE matched = 0{also} "
            f"AND {column} IN ({unmatched.format(column)})"
        ).rowcount
    return kept
