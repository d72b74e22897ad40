"""List members Klaviyo knows by another identifier than the email a source row gives them.

A profile has three identifiers: email, phone number and external id, each unique in the account.
A member with no email yet (a phone-only SMS contact, a profile known by its external id alone) and
a source row that gives an email *and* that member's phone number or external id are one person:
importing the row gives the profile its email (Klaviyo finds the profile by the identifier they
share), it does not make another. The plan's match is by email first, so such a row stays an add
(its import is what sets the email), but the member is in the source: it is **kept**, never planned
as a removal in mirror mode. (Before, it was: the approval asked to remove a person the file lists,
and whether they stayed on the list depended on whether the import job or the removal ran first.)
The report counts it among the unchanged members, and its row among the adds (the import that
gives the profile its email).

A member that has an email is another person than a row with another email, whatever else they
share, and is matched by email only, as before; so is an email-less member with a phone number that
a row names only by external id (the row may give another phone: it is not guessed at).
"""

from __future__ import annotations

import sqlite3

__all__ = ["keep_members_known_otherwise"]


def keep_members_known_otherwise(db: sqlite3.Connection) -> int:
    """Mark as matched (kept) the email-less members an unmatched source row names by phone number, or
    by external id when the member has no phone number either; how many.

    Each subquery is uncorrelated (SQLite evaluates it once), so the cost is one pass over the
    source and one over the email-less members, whatever their numbers.
    """
    unmatched = "SELECT {0} FROM source WHERE member_id IS NULL AND {0} IS NOT NULL"
    kept = 0
    for column, also in (("phone", ""), ("external_id", " AND phone IS NULL")):
        kept += db.execute(
            f"UPDATE members SET matched = 1 WHERE matched = 0 AND email_key IS NULL{also} "
            f"AND {column} IN ({unmatched.format(column)})"
        ).rowcount
    return kept
