"""The sync plan: source rows, list members and the batches to apply, in one SQLite file per thread.

Why SQLite and not the checkpoint: a source can have millions of rows, and the checkpoint must stay
small (it is written after every step). The graph keeps only counts and a batch cursor in its state;
the rows, the diff and each batch's status live here, at ``$PERSONAS_HOME/sync/<thread_id>.sqlite``.

The diff is SQL, never Python sets, so memory stays flat however large the source or list:

- a source row matches a member by profile id (list/segment sources), else by email
  (case-insensitive), else by phone for rows without one (members a row names otherwise: ``identity.py``);
- a person in several rows is one row, with the last value each field is given (``duplicates.py``),
  except for consent: rows that disagree on it are a conflict, and that person is not subscribed;
- **adds** are unmatched rows, **removes** unmatched members (in ``mirror`` mode);
- **subscribes** are rows with explicit consent and an email whose profile is not already
  subscribed and not suppressed (nor unsubscribed from this list); suppressed ones are reported.
  A row to import is the profile Klaviyo will put it on, found by its email, phone number or
  external id; a row naming two profiles is a conflict, sent in no batch (``identity.py``);
- batches are numbered in the order they are applied (adds, subscribes, removes), each at most
  ``batch_size`` profiles, so the fewest calls cover the diff.

Each batch's status (``pending``, ``done``, ``rejected``, ``failed``, ``dry_run``) is written when it
is applied, so a resumed run never sends a finished batch again.

Rows Klaviyo refuses are taken out of their batch (``refuse``) and written to ``invalid`` with
Klaviyo's reason (``stage = 'klaviyo'``; the source check's rows have ``stage = 'source'``). A
batch's ``size`` is what is still in it and ``refused`` what was taken out, so ``size + refused``
is what was planned; an import job's ``failed`` rows are refused too (read back by ``jobs.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from klaviyo_toolkit.validation import email_key
from personas.kernel.privacy import private_file

from . import duplicates, identity
from .members import Member
from .sources import InvalidRow, Row

__all__ = ["Batch", "Plan"]

SCHEMA = """
CREATE TABLE source (
    rowno INTEGER NOT NULL, key TEXT NOT NULL UNIQUE, email TEXT, email_key TEXT, phone TEXT, external_id TEXT,
    first_name TEXT, last_name TEXT, consent INTEGER NOT NULL DEFAULT 0, profile_id TEXT,
    member_id TEXT, sub_state TEXT, add_batch INTEGER, sub_batch INTEGER, conflict INTEGER, lands_on TEXT);
CREATE INDEX source_email ON source(email_key);
CREATE INDEX source_phone ON source(phone);
CREATE INDEX source_member ON source(member_id);
CREATE INDEX source_add ON source(add_batch);
CREATE INDEX source_sub ON source(sub_batch);
CREATE TABLE invalid (rowno INTEGER, field TEXT, value TEXT, problem TEXT, stage TEXT NOT NULL DEFAULT 'source',
    kind TEXT, email_key TEXT, phone TEXT, external_id TEXT);
CREATE TABLE members (
    profile_id TEXT PRIMARY KEY, email TEXT, email_key TEXT, phone TEXT, external_id TEXT, consent TEXT,
    suppressed TEXT, matched INTEGER NOT NULL DEFAULT 0, remove_batch INTEGER);
CREATE INDEX members_email ON members(email_key);
CREATE INDEX members_phone ON members(phone);
CREATE INDEX members_remove ON members(remove_batch);
CREATE TABLE batches (
    n INTEGER PRIMARY KEY, kind TEXT NOT NULL, size INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
    job_id TEXT, detail TEXT, job_status TEXT, completed INTEGER, failed INTEGER,
    refused INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, withheld INTEGER NOT NULL DEFAULT 0,
    added INTEGER NOT NULL DEFAULT 0);
""" + duplicates.SCHEMA + identity.SCHEMA
#: Columns added since the first plan files: (table, column, definition), added to an older file on open.
UPGRADES = (
    ("invalid", "stage", "TEXT NOT NULL DEFAULT 'source'"),
    ("invalid", "kind", "TEXT"),
    ("batches", "refused", "INTEGER NOT NULL DEFAULT 0"),
    ("batches", "attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("invalid", "email_key", "TEXT"),
    ("batches", "withheld", "INTEGER NOT NULL DEFAULT 0"),
    ("batches", "added", "INTEGER NOT NULL DEFAULT 0"),
    ("source", "conflict", "INTEGER"),
    ("invalid", "phone", "TEXT"),
    ("invalid", "external_id", "TEXT"),
)
#: The column of ``source`` (or ``members``) that holds each kind's batch number.
BATCH_COLUMN = {"import": "add_batch", "add": "add_batch", "subscribe": "sub_batch", "remove": "remove_batch"}
#: The row fields each kind of batch sends: a row Klaviyo refused for one of them leaves later batches
#: that send it too (an address refused on import would be refused by the subscribe call as well).
SENDS = {"import": ("email", "phone_number", "external_id", "first_name", "last_name"), "add": ("id",),
         "subscribe": ("email",), "remove": ("id",)}
CHUNK = 1000


@dataclass(frozen=True)
class Batch:
    n: int
    kind: str  # "import" | "add" | "subscribe" | "remove"
    size: int
    status: str
    job_id: str | None = None
    refused: int = 0
    attempts: int = 0


def _key(value: str | None) -> str | None:
    """What emails are matched by (NFC, any case: :func:`email_key`), None for none."""
    return email_key(value) if value else None


class Plan:
    """One sync's rows, members and batches. Open it per node step; it is closed when the step ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(str(path))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")

    @classmethod
    def create(cls, path: Path) -> Plan:
        """A new, empty plan at ``path`` (any older plan of the same thread is replaced)."""
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        plan = cls(private_file(path))  # it holds the source's emails and phones: owner-only
        plan.db.executescript(SCHEMA)
        return plan

    @classmethod
    def open(cls, path: Path) -> Plan:
        if not path.is_file():
            raise FileNotFoundError(f"the sync plan {path} is gone; start the sync again (a new thread)")
        plan = cls(path)
        plan._upgrade()
        return plan

    def _upgrade(self) -> None:
        """Add the columns a plan file written by an older version lacks (a run resumed across an upgrade)."""
        duplicates.upgrade(self.db)
        identity.upgrade(self.db)
        for table, column, definition in UPGRADES:
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def close(self) -> None:
        self.db.commit()
        self.db.close()

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _one(self, sql: str, *args: Any) -> Any:
        return self.db.execute(sql, args).fetchone()[0]

    # -- loading ---------------------------------------------------------------------------------------
    def load_rows(
        self, rows: Iterable[Row | InvalidRow], progress: Callable[[int], None] | None = None
    ) -> dict[str, int]:
        """Stream rows in; counts of what was read.

        Valid rows are deduplicated by person: each field takes the last value its rows give, and
        rows that disagree on consent are a conflict, not subscribed (``duplicates.py``).
        """
        self.db.execute("DELETE FROM source")
        self.db.execute("DELETE FROM invalid")
        self.db.execute("DELETE FROM duplicates")
        seen = valid = bad = twice = 0
        good: list[tuple[Any, ...]] = []
        wrong: list[tuple[Any, ...]] = []

        def flush() -> None:
            nonlocal twice
            first, again = duplicates.split(self.db, good) if good else ([], [])
            twice += len(again)
            self.db.executemany(
                "INSERT INTO source (rowno, key, email, email_key, phone, external_id, "
                "first_name, last_name, consent, profile_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
                first,
            )
            duplicates.record(self.db, again)
            self.db.executemany("INSERT INTO invalid (rowno, field, value, problem, email_key, phone, external_id) "
                                "VALUES (?,?,?,?,?,?,?)", wrong)
            good.clear()
            wrong.clear()

        for row in rows:
            seen += 1
            if isinstance(row, InvalidRow):
                bad += 1
                wrong.append((row.row, row.field, row.value, row.problem, _key(row.email), row.phone, row.external_id))
            else:
                valid += 1
                email_key = _key(row.email)
                key = f"id:{row.profile_id}" if row.profile_id else (
                    f"e:{email_key}" if email_key else f"p:{row.phone_number}")
                good.append((row.row, key, row.email, email_key, row.phone_number, row.external_id, row.first_name,
                             row.last_name, int(row.consent), row.profile_id))
            if len(good) + len(wrong) >= CHUNK:
                flush()
                if progress:
                    progress(seen)
        flush()
        twice += duplicates.fold_phone_rows(self.db)  # a phone-only row of an email row's number: that person
        conflicts, merged = duplicates.mark_conflicts(self.db), duplicates.merge_values(self.db)
        self.db.commit()
        return {"rows": seen, "valid": valid, "invalid": bad, "duplicates": twice, "consent_conflicts": conflicts,
                "merged_values": merged}

    def load_members(
        self, pages: Iterable[list[Member]], progress: Callable[[int, int], None] | None = None, table: str = "members"
    ) -> dict[str, int]:
        """Stream list members (or, with ``table="profiles"``, looked-up profiles) in; pages read and profiles."""
        if table == "members":
            self.db.execute("DELETE FROM members")
        count = pages_read = 0
        for page in pages:
            pages_read += 1
            count += len(page)
            if table == "members":
                self.db.executemany(
                    "INSERT OR IGNORE INTO members (profile_id, email, email_key, phone, external_id, "
                    "consent, suppressed) VALUES (?,?,?,?,?,?,?)",
                    [
                        (m.id, m.email, _key(m.email), m.phone_number, m.external_id, m.consent, m.suppressed)
                        for m in page
                    ],
                )
            else:
                identity.remember(self.db, page)
            if progress:
                progress(pages_read, count)
        self.db.commit()
        return {"pages": pages_read, "profiles": count}

    def load_group_rows(
        self, pages: Iterable[list[Member]], progress: Callable[[int, int], None] | None = None
    ) -> dict[str, int]:
        """A list or segment as the source: each member is a row keyed by profile id."""
        counts = {"pages": 0}

        def rows() -> Iterator[Row]:
            n = 0
            for page in pages:
                counts["pages"] += 1
                for m in page:
                    n += 1
                    yield Row(n, m.email, m.phone_number, m.external_id, profile_id=m.id)
                if progress:
                    progress(counts["pages"], n)

        loaded = self.load_rows(rows())
        return {**loaded, "pages": counts["pages"]}

    # -- the diff ----------------------------------------------------------------------------------------
    def match(self) -> dict[str, int]:
        """Match source rows to members (id, then email, then phone for email-less rows)."""
        db = self.db
        db.execute("UPDATE source SET member_id = NULL, sub_state = NULL, add_batch = NULL, sub_batch = NULL")
        db.execute("UPDATE members SET matched = 0, remove_batch = NULL")
        db.execute("DELETE FROM batches")
        db.execute("UPDATE source SET member_id = profile_id WHERE profile_id IN (SELECT profile_id FROM members)")
        db.execute(
            "UPDATE source SET member_id = m.profile_id FROM members m WHERE source.member_id IS NULL "
            "AND source.email_key IS NOT NULL AND m.email_key = source.email_key"
        )
        db.execute(
            "UPDATE source SET member_id = m.profile_id FROM members m WHERE source.member_id IS NULL "
            "AND source.email_key IS NULL AND source.phone IS NOT NULL AND m.phone = source.phone"
        )
        db.execute(
            "UPDATE members SET matched = 1 WHERE profile_id IN "
            "(SELECT member_id FROM source WHERE member_id IS NOT NULL)"
        )
        identity.keep_members_known_otherwise(db)  # a phone-only member a row gives an email: kept
        db.commit()
        return {"matched": self._one("SELECT COUNT(*) FROM members WHERE matched = 1")}

    def to_look_up(self, field: str, size: int) -> Iterator[tuple[list[str], bool]]:
        """Identifiers (``field``) of the consenting rows to import, ``size`` at a time: whose profile
        Klaviyo will put them on, and its consent, is not known yet (``identity.to_look_up``)."""
        return identity.to_look_up(self.db, field, size)

    def _assign(self, table: str, column: str, where: str, order: str, kind: str, start: int, size: int) -> int:
        self.db.execute(
            f"UPDATE {table} SET {column} = ? + (r.rn - 1) / ? FROM (SELECT rowid AS rid, "
            f"ROW_NUMBER() OVER (ORDER BY {order}) AS rn FROM {table} WHERE {where}) AS r WHERE {table}.rowid = r.rid",
            (start, size),
        )
        self.db.execute(
            f"INSERT INTO batches (n, kind, size) SELECT {column}, ?, COUNT(*) FROM {table} "
            f"WHERE {column} IS NOT NULL GROUP BY {column}",
            (kind,),
        )
        return int(self._one("SELECT COALESCE(MAX(n), ?) FROM batches", start - 1)) + 1

    def build(self, *, batch_size: int, file_source: bool, subscribe: bool, remove: bool,
              hold: Callable[[sqlite3.Connection], int] = lambda db: 0) -> int:
        """Decide consent states (``hold``: rows asked before, ``optin.py``) and number the batches; how many."""
        db = self.db
        if subscribe:
            state = (
                "CASE WHEN {t}.suppressed IS NOT NULL THEN 'suppressed' WHEN {t}.consent = 'SUBSCRIBED' "
                "THEN 'subscribed' ELSE 'subscribe' END"
            )
            db.execute(
                f"UPDATE source SET sub_state = {state.format(t='m')} FROM members m WHERE source.consent = 1 "
                "AND source.email_key IS NOT NULL AND m.profile_id = source.member_id"
            )
            identity.resolve(db)  # a row naming two profiles: sub_state 'clash', sent in no batch
            for table in identity.TABLES:  # the profile a row to import lands on: a member, or one looked up
                db.execute(
                    f"UPDATE source SET sub_state = {state.format(t='k')} FROM {table} k WHERE source.consent = 1 "
                    "AND source.member_id IS NULL AND source.sub_state IS NULL AND k.profile_id = source.lands_on"
                )
            db.execute(
                "UPDATE source SET sub_state = 'subscribe' WHERE consent = 1 AND email_key IS NOT NULL "
                "AND sub_state IS NULL"
            )
            db.execute("UPDATE source SET sub_state = 'no_email' WHERE consent = 1 AND email_key IS NULL")
            duplicates.withhold_for_invalid(db)  # a person with an invalid row: what it says of consent is unknown
            hold(db)
        n = self._assign(
            "source", "add_batch", "member_id IS NULL AND sub_state IS NOT 'clash'", "rowno",
            "import" if file_source else "add", 1, batch_size
        )
        if subscribe:
            n = self._assign("source", "sub_batch", "sub_state = 'subscribe'", "rowno", "subscribe", n, batch_size)
        if remove:
            # A member whose source row was refused for another field (a bad phone) is still in the
            # source: it is kept, not removed for a typo in the file.
            n = self._assign("members", "remove_batch", f"matched = 0 AND NOT ({identity.NAMED_BY_INVALID})", "rowid",
                             "remove", n, batch_size)
        db.commit()
        return n - 1

    def summary(self, sample: int) -> dict[str, Any]:
        """Counts of each kind of change and the first ``sample`` emails of each."""

        def emails(sql: str) -> list[str]:
            return [r[0] for r in self.db.execute(sql + " LIMIT ?", (sample,))]

        count = self._one
        return {
            "members": count("SELECT COUNT(*) FROM members"),
            "unchanged": count("SELECT COUNT(*) FROM members WHERE matched = 1"),
            "adds": count("SELECT COUNT(*) FROM source WHERE add_batch IS NOT NULL"),
            "removes": count("SELECT COUNT(*) FROM members WHERE remove_batch IS NOT NULL"),
            "subscribes": count("SELECT COUNT(*) FROM source WHERE sub_batch IS NOT NULL"),
            "already_subscribed": count("SELECT COUNT(*) FROM source WHERE sub_state = 'subscribed'"),
            "suppressed": count("SELECT COUNT(*) FROM source WHERE sub_state = 'suppressed'"),
            "consent_without_email": count("SELECT COUNT(*) FROM source WHERE sub_state = 'no_email'"),
            "identity_conflicts": count("SELECT COUNT(*) FROM source WHERE sub_state = 'clash'"),
            "batches": {kind: n for kind, n in self.db.execute("SELECT kind, COUNT(*) FROM batches GROUP BY kind")},
            "samples": {
                "adds": emails(
                    "SELECT COALESCE(email, phone, profile_id) FROM source WHERE add_batch IS NOT NULL ORDER BY rowno"
                ),
                "subscribes": emails("SELECT email FROM source WHERE sub_batch IS NOT NULL ORDER BY rowno"),
                "consent_without_email": emails("SELECT phone FROM source WHERE sub_state = 'no_email' ORDER BY rowno"),
                "removes": emails(
                    "SELECT COALESCE(email, phone, profile_id) FROM members "
                    "WHERE remove_batch IS NOT NULL ORDER BY rowid"
                ),
                "suppressed": [
                    f"{r[0]} ({r[1]}{r[2]})"
                    for r in self.db.execute(
                        "SELECT s.email, COALESCE(m.suppressed, k.suppressed), CASE WHEN s.member_id IS NULL AND "
                        "COALESCE(m.email_key, k.email_key) IS NOT s.email_key THEN '; on the profile of ' || "
                        "COALESCE(m.email, k.email, m.phone, k.phone, s.lands_on) ELSE '' END FROM source s LEFT JOIN "
                        "members m ON m.profile_id = COALESCE(s.member_id, s.lands_on) LEFT JOIN profiles k ON "
                        "k.profile_id = s.lands_on WHERE s.sub_state = 'suppressed' ORDER BY s.rowno LIMIT ?",
                        (sample,),
                    )
                ],
            },
        }

    def member_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM members"))

    def invalid(self, limit: int, stage: str | None = None) -> list[dict[str, Any]]:
        """The first ``limit`` rows the source check (``stage="source"``) or Klaviyo (``"klaviyo"``), or
        either, refused: row number, field, value, why, and ``by`` (who refused it)."""
        where = "WHERE stage = ?" if stage else "WHERE ? IS NULL"
        return [
            {"row": r[0], "field": r[1], "value": r[2], "problem": r[3], "by": r[4]}
            for r in self.db.execute(
                f"SELECT rowno, field, value, problem, stage FROM invalid {where} ORDER BY rowno IS NULL, rowno, "
                "rowid LIMIT ?",
                (stage, limit),
            )
        ]

    def invalid_count(self, stage: str) -> int:
        return int(self._one("SELECT COUNT(*) FROM invalid WHERE stage = ?", stage))

    def conflicts(self, limit: int) -> dict[str, Any]:
        """People whose rows disagree on consent (not subscribed): how many, the first ``limit`` with their rows."""
        return {"count": duplicates.conflict_count(self.db), "people": duplicates.conflicts(self.db, limit)}

    def merged(self, limit: int) -> dict[str, Any]:
        """People whose fields came from a later row: how many, the first ``limit`` (``duplicates.merged``)."""
        return duplicates.merged(self.db, limit)

    # -- batches -----------------------------------------------------------------------------------------
    def batch(self, n: int) -> Batch:
        row = self.db.execute(
            "SELECT n, kind, size, status, job_id, refused, attempts FROM batches WHERE n = ?", (n,)
        ).fetchone()
        if row is None:
            raise KeyError(f"the plan has no batch {n}")
        return Batch(*row)

    def items(self, batch: Batch) -> list[dict[str, Any]]:
        """The batch's profiles, as the operation takes them (at most ``batch_size``)."""
        return [item for _, item in self._rows(batch)]

    def _rows(self, batch: Batch) -> list[tuple[int, dict[str, Any]]]:
        """(rowid, item) of the batch's profiles, in the order they are sent."""
        if batch.kind == "import":
            rows = self.db.execute(
                "SELECT rowid, email, phone, external_id, first_name, last_name FROM source "
                "WHERE add_batch = ? ORDER BY rowno",
                (batch.n,),
            )
            names = ("email", "phone_number", "external_id", "first_name", "last_name")
            return [(r[0], {k: v for k, v in zip(names, r[1:], strict=True) if v is not None}) for r in rows]
        if batch.kind == "add":
            sql = "SELECT rowid, profile_id FROM source WHERE add_batch = ? ORDER BY rowno"
        elif batch.kind == "subscribe":
            sql = "SELECT rowid, email FROM source WHERE sub_batch = ? ORDER BY rowno"
        else:
            sql = "SELECT rowid, profile_id FROM members WHERE remove_batch = ? ORDER BY rowid"
        return [(r[0], {"value": r[1]}) for r in self.db.execute(sql, (batch.n,))]

    def refuse(self, batch: Batch, refusals: dict[int, tuple[str | None, str]]) -> int:
        """Take the rows Klaviyo refused out of ``batch`` and report them as invalid; how many.

        ``refusals`` maps a position in the batch (as sent) to (the field Klaviyo named, its reason).
        A refused source row also leaves the later pending batches that send that field, so it is
        not sent (and refused) again; the rows left in the batch are sent again, on their own.
        """
        rows = self._rows(batch)
        taken = 0
        for pos, (field, reason) in sorted(refusals.items()):
            if not 0 <= pos < len(rows):
                continue
            rowid, item = rows[pos]
            taken += 1
            problem = f"Klaviyo refused it ({batch.kind}): {reason}"
            if batch.kind == "remove":
                email = self.db.execute("SELECT email FROM members WHERE rowid = ?", (rowid,)).fetchone()[0]
                self.db.execute("UPDATE members SET remove_batch = NULL WHERE rowid = ?", (rowid,))
                self._invalid(None, "profile_id", email or str(item["value"]), problem, batch.kind)
                continue
            column = BATCH_COLUMN[batch.kind]
            rowno, email, phone, external_id, pid, sub_batch = self.db.execute(
                "SELECT rowno, email, phone, external_id, profile_id, sub_batch FROM source WHERE rowid = ?",
                (rowid,),
            ).fetchone()
            if batch.kind == "add":  # a profile id: shown by whom it is
                field, value = "profile_id", email or phone or external_id or pid
            else:
                shown = {"email": email, "phone_number": phone, "external_id": external_id}
                value = shown.get(field or "") or item.get(field or "") or email or phone or external_id
            self._invalid(rowno, field or "row", str(value or "")[:100], problem, batch.kind)
            self.db.execute(f"UPDATE source SET {column} = NULL WHERE rowid = ?", (rowid,))
            if sub_batch is not None and batch.kind != "subscribe" and (field or "") in SENDS["subscribe"]:
                later = self.db.execute("SELECT status FROM batches WHERE n = ?", (sub_batch,)).fetchone()
                if later is not None and later[0] == "pending":
                    self.db.execute("UPDATE source SET sub_batch = NULL WHERE rowid = ?", (rowid,))
                    self.db.execute(
                        "UPDATE batches SET size = size - 1, refused = refused + 1 WHERE n = ?", (sub_batch,)
                    )
        self.db.execute(
            "UPDATE batches SET size = size - ?, refused = refused + ?, attempts = attempts + 1 WHERE n = ?",
            (taken, taken, batch.n),
        )
        self.db.commit()
        return taken

    def _invalid(self, rowno: int | None, field: str, value: str, problem: str, kind: str) -> None:
        """Record a row Klaviyo refused, once per row (its first reason)."""
        if rowno is not None and self.db.execute(
            "SELECT 1 FROM invalid WHERE stage = 'klaviyo' AND rowno = ?", (rowno,)
        ).fetchone():
            return
        self.db.execute(
            "INSERT INTO invalid (rowno, field, value, problem, stage, kind) VALUES (?,?,?,?, 'klaviyo', ?)",
            (rowno, field, value, problem, kind),
        )

    def refused_by_job(self, errors: Iterable[tuple[str | None, str | None, str]]) -> None:
        """Rows an import job refused, as (email, phone number, reason), found in the source by identifier.

        The job's errors are read after every batch was sent, so a refused row's subscribe may have
        gone out already: Klaviyo then subscribes that email (and adds it to the list) all the same,
        and the row says so.
        """
        for email, phone, reason in errors:
            found = self.db.execute(
                "SELECT s.rowno, s.email, s.phone, b.status FROM source s LEFT JOIN batches b ON b.n = s.sub_batch "
                "WHERE (? IS NOT NULL AND s.email_key = ?) OR (? IS NULL AND ? IS NOT NULL AND s.phone = ?) "
                "ORDER BY s.rowno LIMIT 1",
                (email, _key(email), email, phone, phone),
            ).fetchone()
            if found is None:
                continue
            also = ("; its subscribe had been sent before, and Klaviyo took it: that email was subscribed, and so "
                    "added to the list, all the same") if found[3] == "done" else ""
            self._invalid(found[0], "email" if found[1] else "phone_number", str(found[1] or found[2])[:100],
                          f"Klaviyo refused it (import job): {reason}{also}", "import")
        self.db.commit()

    def people(self, batch: Batch) -> list[str]:
        """Who a batch is about, readably: each profile's email (else phone, external id or id)."""
        if batch.kind == "remove":
            sql = (
                "SELECT COALESCE(email, phone, external_id, profile_id) FROM members WHERE remove_batch = ? "
                "ORDER BY rowid"
            )
        else:
            column = "sub_batch" if batch.kind == "subscribe" else "add_batch"
            sql = (
                f"SELECT COALESCE(email, phone, external_id, profile_id) FROM source WHERE {column} = ? ORDER BY rowno"
            )
        return [str(r[0]) for r in self.db.execute(sql, (batch.n,))]

    def mark(self, n: int, status: str, *, job_id: str | None = None, detail: str | None = None, withheld: int = 0,
             added: int = 0) -> None:  # fmt: skip
        """Record how batch ``n`` ended; ``withheld``/``added``: rows the approver edited out of / into the request."""
        self.db.execute("UPDATE batches SET status = ?, job_id = ?, detail = ?, withheld = ?, added = ? WHERE n = ?",
                        (status, job_id, detail, withheld, added, n))  # fmt: skip
        self.db.commit()

    def mark_rest(self, first: int, status: str, detail: str | None = None) -> None:
        """Give every batch from ``first`` on that is still pending ``status`` (and ``detail``)."""
        self.db.execute("UPDATE batches SET status = ?, detail = COALESCE(?, detail) WHERE n >= ? AND status = "
                        "'pending'", (status, detail, first))
        self.db.commit()

    def outcome(self) -> dict[str, dict[str, list[int]]]:
        """Per kind and status: [batches, profiles still in them, profiles Klaviyo refused].

        Refused are the rows taken out of the batches (``refuse``) and, for sent imports, the rows
        their finished job failed; so ``profiles`` of a ``done`` batch counts only accepted rows.
        """
        out: dict[str, dict[str, list[int]]] = {}
        withheld: dict[str, int] = {}
        for kind, status, batches, profiles, refused, failed, held, added in self.db.execute(
            "SELECT kind, status, COUNT(*), SUM(size), SUM(refused), "
            "SUM(CASE WHEN status = 'done' THEN COALESCE(failed, 0) ELSE 0 END), SUM(withheld), SUM(added) "
            "FROM batches GROUP BY kind, status"
        ):
            out.setdefault(kind, {})[status] = [batches, profiles - failed - held, refused + failed]
            withheld[kind] = withheld.get(kind, 0) + held
            if added:  # rows an approver edited in: applied, though never planned (report.py counts them apart)
                out[kind]["added_by_approver"] = [0, added, 0]
        for kind, held in withheld.items():  # rows an approver edited out count as rejected, not applied
            if held:
                counts = out[kind].setdefault("rejected", [0, 0, 0])
                counts[1] += held
        return out

    def problems(self, limit: int) -> list[dict[str, Any]]:
        return [
            {"batch": r[0], "kind": r[1], "profiles": r[2], "status": r[3], "detail": r[4]}
            for r in self.db.execute(
                "SELECT n, kind, size, status, detail FROM batches WHERE status IN "
                "('failed', 'rejected') OR (status = 'done' AND detail IS NOT NULL) ORDER BY n LIMIT ?",
                (limit,),
            )
        ]

    # -- import jobs -----------------------------------------------------------------------------------
    def jobs(self) -> list[tuple[int, str]]:
        """(batch, job id) of sent import batches whose job has not been seen finished."""
        return list(
            self.db.execute(
                "SELECT n, job_id FROM batches WHERE kind = 'import' AND status = 'done' "
                "AND job_id IS NOT NULL AND job_status IS NULL ORDER BY n"
            )
        )

    def record_job(self, job_id: str, status: str, completed: int, failed: int) -> None:
        self.db.execute(
            "UPDATE batches SET job_status = ?, completed = ?, failed = ? WHERE job_id = ?",
            (status, completed, failed, job_id),
        )
        self.db.commit()

    def job_totals(self) -> dict[str, int]:
        row = self.db.execute(
            "SELECT COUNT(job_id), COUNT(job_status), COALESCE(SUM(completed), 0), COALESCE(SUM(failed), 0) "
            "FROM batches WHERE kind = 'import' AND job_id IS NOT NULL"
        ).fetchone()
        return {"jobs": row[0], "finished": row[1], "completed_rows": row[2], "failed_rows": row[3]}
