"""People who appear in the source more than once: the last row's values win, consent must agree.

A source row is a person by its key (profile id, else email in any case, else phone number). The
plan keeps one row per person, at its first row's place and with its identity (the email as first
spelled, the profile id); each other field (:data:`FIELDS`: name, phone, external id) takes the
value of the **last** row that gives one. A source lists people as they were written, so a later
row is the newer value (an export appended to, a CRM row edited after); it is also what Klaviyo
itself keeps when it imports the same file row by row. An empty cell is no value: it never erases
one an earlier row gave. (The first row used to win, for no better reason than that the summary
said so; a corrected name in a later row was then silently dropped.) The people whose values came
from a later row are counted and named (``merged_values``), so the choice is never silent.

Consent is not such a field. A subscribe must rest on the person's explicit consent, and rows
that disagree (one says yes, another says no or nothing) are not that. So a person whose rows
disagree on consent is a **conflict**: added to the list like anyone, never subscribed (nothing is
unsubscribed either: a conflict only withholds), and reported with every row involved so that the
source can be fixed. Rows that agree are a plain duplicate, as before.

A phone-only row whose number an email row gives is that email row's person (Klaviyo's import puts
it on the profile holding the number): it is folded into that person (:func:`fold_phone_rows`). An
invalid row of a person is reported, not read, so what it says of consent is unknown: that person
is not subscribed either until the row is fixed (:func:`withhold_for_invalid`).

The later rows of each person live in the plan's ``duplicates`` table (key, row number, consent
and the :data:`FIELDS`); ``source.conflict`` is NULL for a person whose rows agree, else the first
row's own consent, with ``source.consent`` set to 0 (the one column every subscribe decision reads).
The ``merged`` table names, per person, the fields a later row changed.
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = ["FIELDS", "SCHEMA", "conflict_count", "conflicts", "fold_phone_rows", "mark_conflicts", "merge_values",
           "merged", "record", "split", "upgrade", "withheld_for_invalid", "withhold_for_invalid"]

#: The ``source`` columns a later row of the same person overrides (when it gives a value).
FIELDS = ("phone", "external_id", "first_name", "last_name")
SCHEMA = """
CREATE TABLE IF NOT EXISTS duplicates (key TEXT NOT NULL, rowno INTEGER NOT NULL, consent INTEGER NOT NULL,
    phone TEXT, external_id TEXT, first_name TEXT, last_name TEXT);
CREATE INDEX IF NOT EXISTS duplicates_key ON duplicates(key);
CREATE TABLE IF NOT EXISTS merged (key TEXT PRIMARY KEY, fields TEXT NOT NULL);
"""


def upgrade(db: sqlite3.Connection) -> None:
    """The tables above in a plan file written by an older version (the field columns it lacks added)."""
    db.executescript(SCHEMA)
    have = {r[1] for r in db.execute("PRAGMA table_info(duplicates)")}
    for column in FIELDS:
        if column not in have:
            db.execute(f"ALTER TABLE duplicates ADD COLUMN {column} TEXT")


def split(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """``rows`` (source tuples: row number, key, email, email key, phone, external id, first name, last
    name, consent, profile id) as (first rows of their person, later rows as ``duplicates`` tuples);
    one query for the keys already in the plan."""
    keys = sorted({r[1] for r in rows})
    seen = {k for (k,) in db.execute(f"SELECT key FROM source WHERE key IN ({','.join('?' * len(keys))})", keys)}
    first: list[tuple[Any, ...]] = []
    again: list[tuple[Any, ...]] = []
    for row in rows:
        if row[1] in seen:
            again.append((row[1], row[0], row[8], *row[4:8]))
        else:
            seen.add(row[1])
            first.append(row)
    return first, again


def record(db: sqlite3.Connection, again: list[tuple[Any, ...]]) -> None:
    """Keep later rows (from :func:`split`) for :func:`mark_conflicts` and :func:`merge_values`."""
    db.executemany(f"INSERT INTO duplicates (key, rowno, consent, {', '.join(FIELDS)}) VALUES (?,?,?,?,?,?,?)", again)


def fold_phone_rows(db: sqlite3.Connection) -> int:
    """Make each phone-only row (key ``p:``) whose phone number an email row also gives a later row of
    that email's person (in ``duplicates``); how many rows were folded.

    Klaviyo's import puts a row that gives only a phone number on the profile holding that number,
    which is the one the email row gives it to: one person, so their rows must agree on consent like
    any duplicate (a "no" on the phone-only row withholds the email row's subscribe) and they are one
    add. A field of a phone-only row that comes before the email row only fills a gap: the last row
    that gives a field wins, as for any duplicate. A number two email rows give is folded into both.
    """
    fields = ", ".join(f"CASE WHEN p.rowno > e.rowno OR e.{f} IS NULL THEN p.{f} END" for f in FIELDS)
    folded = db.execute(
        f"INSERT INTO duplicates (key, rowno, consent, {', '.join(FIELDS)}) SELECT e.key, p.rowno, p.consent, "
        f"{fields} FROM source p JOIN source e ON e.phone = p.phone AND e.key LIKE 'e:%' WHERE p.key LIKE 'p:%'"
    ).rowcount
    if not folded:
        return 0
    # the phone-only rows' own later rows (the same number again) belong to the email row's person too
    db.execute(
        "INSERT INTO duplicates (key, rowno, consent, phone, external_id, first_name, last_name) SELECT e.key, "
        "d.rowno, d.consent, d.phone, d.external_id, d.first_name, d.last_name FROM duplicates d JOIN source p ON "
        "p.key = d.key JOIN source e ON e.phone = p.phone AND e.key LIKE 'e:%' WHERE p.key LIKE 'p:%'"
    )
    gone = db.execute(
        "DELETE FROM source WHERE key LIKE 'p:%' AND phone IN (SELECT phone FROM source WHERE key LIKE 'e:%' "
        "AND phone IS NOT NULL)"
    ).rowcount
    db.execute("DELETE FROM duplicates WHERE key LIKE 'p:%' AND key NOT IN (SELECT key FROM source)")
    return int(gone)


def merge_values(db: sqlite3.Connection) -> int:
    """Give each person the last value any of their rows gives for each of :data:`FIELDS`, noting in
    ``merged`` which fields that changed; how many people it changed (once every row is loaded)."""
    db.execute("DELETE FROM merged")
    for field in FIELDS:
        db.execute(
            f"WITH latest AS (SELECT d.key, d.{field} AS value FROM duplicates d WHERE d.{field} IS NOT NULL "
            f"AND d.rowno = (SELECT MAX(e.rowno) FROM duplicates e WHERE e.key = d.key AND e.{field} IS NOT NULL)) "
            "INSERT INTO merged (key, fields) SELECT s.key, ? FROM source s JOIN latest l ON l.key = s.key "
            f"WHERE s.{field} IS NOT l.value ON CONFLICT(key) DO UPDATE SET fields = fields || ',' || excluded.fields",
            (field,),
        )
        db.execute(
            f"UPDATE source SET {field} = (SELECT d.{field} FROM duplicates d WHERE d.key = source.key AND "
            f"d.{field} IS NOT NULL ORDER BY d.rowno DESC LIMIT 1) WHERE key IN (SELECT key FROM merged "
            f"WHERE ',' || fields || ',' LIKE '%,{field},%')"
        )
    return int(db.execute("SELECT COUNT(*) FROM merged").fetchone()[0])


def merged(db: sqlite3.Connection, limit: int) -> dict[str, Any]:
    """The people whose values came from a later row: how many, and the first ``limit`` with their rows
    and the fields that changed (``phone`` said as the source names it, ``phone_number``)."""
    count = int(db.execute("SELECT COUNT(*) FROM merged").fetchone()[0])
    people = []
    for key, person, rowno, fields in db.execute(
        "SELECT s.key, COALESCE(s.email, s.phone, s.external_id, s.profile_id), s.rowno, m.fields FROM merged m "
        "JOIN source s ON s.key = m.key ORDER BY s.rowno LIMIT ?",
        (limit,),
    ).fetchall():
        later = [r for (r,) in db.execute("SELECT rowno FROM duplicates WHERE key = ? ORDER BY rowno", (key,))]
        names = ["phone_number" if f == "phone" else f for f in fields.split(",")]
        people.append({"person": person, "rows": [rowno, *later], "fields": names})
    return {"count": count, "people": people}


def mark_conflicts(db: sqlite3.Connection) -> int:
    """Mark the people whose rows disagree on consent (none of them is subscribed); how many."""
    cursor = db.execute(
        "UPDATE source SET conflict = consent, consent = 0 WHERE key IN (SELECT d.key FROM duplicates d "
        "JOIN source s ON s.key = d.key WHERE d.consent != s.consent)"
    )
    return cursor.rowcount


def conflict_count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM source WHERE conflict IS NOT NULL").fetchone()[0])


def conflicts(db: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` conflicts: the person, all their rows, and which of them consent and which do not."""
    out = []
    people = db.execute(
        "SELECT key, COALESCE(email, phone, external_id, profile_id), rowno, conflict FROM source "
        "WHERE conflict IS NOT NULL ORDER BY rowno LIMIT ?",
        (limit,),
    ).fetchall()
    for key, person, rowno, consent in people:
        later = db.execute("SELECT rowno, consent FROM duplicates WHERE key = ? ORDER BY rowno", (key,)).fetchall()
        rows = [(rowno, consent), *later]
        out.append({
            "person": person,
            "rows": [r for r, _ in rows],
            "consenting": [r for r, c in rows if c],
            "not_consenting": [r for r, c in rows if not c],
        })
    return out


def withhold_for_invalid(db: sqlite3.Connection) -> int:
    """Hold back the subscribe of each person another of whose rows is invalid (``sub_state =
    'invalid_row'``); how many. That row is reported, not read, so what it says of consent is not
    known: a later "no" behind a typo in a phone number must not leave the earlier "yes" to stand.
    A row naming the person by phone number alone counts too (Klaviyo puts it on the profile holding
    that number: :func:`fold_phone_rows`). Once the row is fixed, the next sync subscribes the person
    if every row agrees."""
    return db.execute(
        "UPDATE source SET sub_state = 'invalid_row' WHERE sub_state = 'subscribe' AND (email_key IN "
        "(SELECT email_key FROM invalid WHERE stage = 'source' AND email_key IS NOT NULL) OR phone IN "
        "(SELECT phone FROM invalid WHERE stage = 'source' AND phone IS NOT NULL))"
    ).rowcount


def withheld_for_invalid(db: sqlite3.Connection, sample: int) -> dict[str, Any]:
    """The people :func:`withhold_for_invalid` held back: how many, and the first ``sample`` emails."""
    count = int(db.execute("SELECT COUNT(*) FROM source WHERE sub_state = 'invalid_row'").fetchone()[0])
    emails = db.execute("SELECT email FROM source WHERE sub_state = 'invalid_row' ORDER BY rowno LIMIT ?", (sample,))
    return {"count": count, "sample": [str(e) for (e,) in emails]}
