"""Which Klaviyo profile a source row is: by email, phone number or external id, as Klaviyo finds it.

A profile has three identifiers: email, phone number and external id, each unique in the account.
The plan's match is by email first, so a row that gives an email the list does not hold is an add
(an import). But Klaviyo's import finds the profile by *any* identifier the row gives: a row that
gives a member's phone number is imported onto that member (giving it the row's email), it makes
no other profile. So that member is in the source: it is **kept**, never planned as a removal in
mirror mode (:func:`keep_members_known_otherwise`). (Before, it was: the approval asked to remove a
person the file lists, and whether they stayed on the list depended on whether the import job or
the removal ran first.) The same holds for a row's external id and a member known by it alone (no
email, no phone). A member a row names only by external id while the member has a phone number is
matched by email only, as before: the row may give another phone, and which profile Klaviyo picks
is not guessed at.

The same goes for consent. The subscribe that follows an import finds its profile by the row's
email, which the import just gave to the profile the row landed on: a new email with the phone
number of a suppressed profile subscribed *that* profile (and lifted its suppression). So before a
consenting row that is imported is subscribed, every profile it names is looked up (emails, then
the phone numbers and external ids no member or found profile holds, 100 per call: Klaviyo's
filters have no ``or``) into the plan's ``profiles`` table, and :func:`resolve` decides:

- the row names one profile: ``source.lands_on`` is its id, and the row is subscribed only if
  that profile may be (not suppressed, not unsubscribed from the list), as an email match is;
- the row names two (its email one profile's, its phone number another's): Klaviyo refuses such a
  row at import, while a subscribe by its email alone would go through. It is a **conflict**
  (``sub_state = 'clash'``), sent in no batch, and reported on its row (``invalid``, stage
  ``identity``) naming both profiles and the fix.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

from klaviyo_toolkit.validation import email_key

from .members import Member

__all__ = ["SCHEMA", "TABLES", "kept_invalid", "keep_members_known_otherwise", "remember", "resolve", "to_look_up",
           "upgrade"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (profile_id TEXT PRIMARY KEY, email TEXT, email_key TEXT, phone TEXT,
    external_id TEXT, consent TEXT, suppressed TEXT);
CREATE INDEX IF NOT EXISTS profiles_email ON profiles(email_key);
CREATE INDEX IF NOT EXISTS profiles_phone ON profiles(phone);
CREATE INDEX IF NOT EXISTS profiles_external ON profiles(external_id);
CREATE INDEX IF NOT EXISTS members_external ON members(external_id);
"""
#: The ``source`` column that holds each identifier Klaviyo finds a profile by, in the order it does.
COLUMNS = {"email": "email_key", "phone_number": "phone", "external_id": "external_id"}
#: Rows whose profile is looked up: consenting, with an email (to subscribe), and imported (not a member).
CANDIDATES = "consent = 1 AND member_id IS NULL AND email_key IS NOT NULL"
#: Where the plan knows profiles from: the list's members and the profiles looked up (each indexed).
TABLES = ("members", "profiles")
#: A member an invalid source row still names, by its email, phone number or external id (each
#: subquery uncorrelated: evaluated once); never NULL, so ``NOT (...)`` keeps members without one.
NAMED_BY_INVALID = " OR ".join(f"COALESCE({c} IN (SELECT {c} FROM invalid WHERE {c} IS NOT NULL), 0)"
                               for c in ("email_key", "phone", "external_id"))


def upgrade(db: sqlite3.Connection) -> None:
    """The table and column above in a plan file written by an older version."""
    db.executescript(SCHEMA)
    if "lands_on" not in {r[1] for r in db.execute("PRAGMA table_info(source)")}:
        db.execute("ALTER TABLE source ADD COLUMN lands_on TEXT")


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
    # A member known by phone alone is named by any row giving that phone, matched or not: a phone-only
    # row folded into an email row with its number (``duplicates.fold_phone_rows``) named it before.
    kept += db.execute("UPDATE members SET matched = 1 WHERE matched = 0 AND email_key IS NULL AND phone IN "
                       "(SELECT phone FROM source WHERE phone IS NOT NULL)").rowcount
    return kept


def to_look_up(db: sqlite3.Connection, field: str, size: int) -> Iterator[tuple[list[str], bool]]:
    """The ``field`` values (email, phone_number, external_id) of the rows whose profile is looked up,
    ``size`` at a time, leaving out those a member or an already found profile holds (asked lazily:
    the phone numbers are chosen after the emails' profiles are in); each with whether a row among
    them gives another identifier (then the profiles' own are read too, to compare)."""
    column = COLUMNS[field]
    held = "" if field == "email" else (f" AND {column} NOT IN (SELECT {column} FROM members WHERE {column} IS NOT "
                                        f"NULL) AND {column} NOT IN (SELECT {column} FROM profiles WHERE {column} "
                                        "IS NOT NULL)")
    after = -1
    while True:
        rows = db.execute(f"SELECT rowno, {column}, phone IS NOT NULL OR external_id IS NOT NULL FROM source WHERE "
                          f"{CANDIDATES} AND {column} IS NOT NULL AND rowno > ?{held} ORDER BY rowno LIMIT ?",
                          (after, size)).fetchall()
        if not rows:
            return
        after = rows[-1][0]
        yield list(dict.fromkeys(r[1] for r in rows)), any(r[2] for r in rows)


def remember(db: sqlite3.Connection, found: Iterable[Member]) -> None:
    """Keep profiles a lookup found (their identifiers and email consent state)."""
    db.executemany("INSERT OR REPLACE INTO profiles VALUES (?,?,?,?,?,?,?)",
                   [(m.id, m.email, email_key(m.email) if m.email else None, m.phone_number, m.external_id,
                     m.consent, m.suppressed) for m in found])


def resolve(db: sqlite3.Connection) -> int:
    """Set ``lands_on`` of each looked-up row that names one profile; mark and report as a conflict
    each row that names two or more (``sub_state = 'clash'``: sent in no batch); how many conflicts."""
    db.execute("UPDATE source SET lands_on = NULL")
    db.execute("DELETE FROM invalid WHERE stage = 'identity'")
    hits = " UNION ALL ".join(
        f"SELECT s.rowid AS rid, s.rowno AS rowno, {n} AS rank, '{field}' AS field, p.profile_id AS pid, "
        f"COALESCE(p.email, p.phone, p.external_id, p.profile_id) AS who FROM source s JOIN {table} p "
        f"ON p.{column} = s.{column} WHERE s.{CANDIDATES.replace(' AND ', ' AND s.')}"
        for n, (field, column) in enumerate(COLUMNS.items()) for table in TABLES)
    found: dict[int, list[tuple[int, str, str, str]]] = {}
    for rid, rowno, _, field, pid, who in db.execute(f"SELECT * FROM ({hits}) ORDER BY rid, rank"):
        found.setdefault(rid, []).append((rowno, field, pid, who))
    clashes = 0
    for rid, named in found.items():
        first = named[0]
        others = [n for n in named if n[2] != first[2]]
        if not others:
            db.execute("UPDATE source SET lands_on = ? WHERE rowid = ?", (first[2], rid))
            continue
        clashes += 1
        rowno, field, pid, who = others[0]
        value = db.execute(f"SELECT {COLUMNS[field]} FROM source WHERE rowid = ?", (rid,)).fetchone()[0]
        problem = (f"names two Klaviyo profiles: its {first[1]} is that of {first[3]} (profile {first[2]}), its "
                   f"{field} {value} that of {who} (profile {pid}). Klaviyo refuses such a row at import (a "
                   "subscribe by its email alone would still go through), so it was not sent: no add, no "
                   f"subscribe. Correct the {field} in the file, or merge the two profiles in Klaviyo, and sync "
                   "again")
        db.execute("UPDATE source SET sub_state = 'clash' WHERE rowid = ?", (rid,))
        db.execute("INSERT INTO invalid (rowno, field, value, problem, stage, kind) VALUES (?,?,?,?, 'identity', "
                   "'import')", (rowno, field, str(value)[:100], problem))
    return clashes


def kept_invalid(db: sqlite3.Connection, sample: int) -> dict[str, object]:
    """Members not matched by a valid row whose email, phone number or external id an invalid row gives:
    kept (a mirror sync never removes them for a mistake in their row); how many, and the first
    ``sample`` of them (email, else phone number or external id)."""
    where = f"FROM members WHERE matched = 0 AND ({NAMED_BY_INVALID})"
    count = db.execute(f"SELECT COUNT(*) {where}").fetchone()[0]
    emails = [str(e) for (e,) in db.execute(f"SELECT COALESCE(email, phone, external_id, profile_id) {where} "
                                            "ORDER BY rowid LIMIT ?", (sample,))]
    return {"count": int(count), "sample": emails}
