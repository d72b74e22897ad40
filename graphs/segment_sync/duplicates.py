"""People who appear in the source more than once: the first row gives the fields, consent must agree.

A source row is a person by its key (profile id, else email in any case, else phone number). The
plan keeps one row per person, the first, and its fields (name, phone, external id) are the ones
sent: which of two spellings of a name is right, nobody can tell, and the first is what the
summary has always said ("merged into their first occurrence").

Consent is not such a field. A subscribe must rest on the person's explicit consent, and rows
that disagree (one says yes, another says no or nothing) are not that. So a person whose rows
disagree on consent is a **conflict**: added to the list like anyone, never subscribed (nothing is
unsubscribed either: a conflict only withholds), and reported with every row involved so that the
source can be fixed. Rows that agree are a plain duplicate, as before.

The later rows of each person live in the plan's ``duplicates`` table (key, row number, consent);
``source.conflict`` is NULL for a person whose rows agree, else the first row's own consent, with
``source.consent`` set to 0 (the one column every subscribe decision reads).
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = ["SCHEMA", "conflict_count", "conflicts", "mark_conflicts", "split"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS duplicates (key TEXT NOT NULL, rowno INTEGER NOT NULL, consent INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS duplicates_key ON duplicates(key);
"""


def split(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """``rows`` (source tuples: row number, key, ..., consent at index 8) as (first rows of their
    person, later rows as ``duplicates`` tuples); one query for the keys already in the plan."""
    keys = sorted({r[1] for r in rows})
    seen = {k for (k,) in db.execute(f"SELECT key FROM source WHERE key IN ({','.join('?' * len(keys))})", keys)}
    first: list[tuple[Any, ...]] = []
    again: list[tuple[Any, ...]] = []
    for row in rows:
        if row[1] in seen:
            again.append((row[1], row[0], row[8]))
        else:
            seen.add(row[1])
            first.append(row)
    return first, again


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
