"""List members Klaviyo knows by another identifier than the email a source row gives them.

A profile has three identifiers: email, phone number and external id, each unique in the account.
A member with no email yet (a phone-only SMS contact, a profile known by its external id alone) and
a source row that gives an email *and* that member's phone number or external id are one person:
importing the row gives the profile its email (Klaviyo finds the profile by the identifier they
share), it does not make another. The plan's match is by email first, so such a row stays an add
(its import is what sets the email), but the member is in the source: it is **kept**, never planned
as a removal in mirror mode. (Before, it was: the approval asked to remove a person the file lists,
and whether they stayed on the list depended on whether the import job or the removal ran first.)

A member that has an email is another person than a row with another email, whatever else they
share, and is matched by email only, as before.
"""

from __future__ import annotations

import sqlite3

__all__ = ["keep_members_known_otherwise"]


def keep_members_known_otherwise(db: sqlite3.Connection) -> int:
    """Mark as matched (kept) the email-less members an unmatched source row names by phone number or
    external id (with no other phone number); how many."""
    cursor = db.execute(
        "UPDATE members SET matched = 1 WHERE matched = 0 AND email_key IS NULL AND EXISTS (SELECT 1 FROM source s "
        "WHERE s.member_id IS NULL AND ((s.phone IS NOT NULL AND s.phone = members.phone) OR (s.external_id IS NOT "
        "NULL AND s.external_id = members.external_id AND (members.phone IS NULL OR s.phone IS NULL "
        "OR s.phone = members.phone))))"
    )
    return cursor.rowcount
