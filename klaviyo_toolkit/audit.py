"""An append-only, tamper-evident audit log of every tool and API call, in SQLite.

Every attempt of every call a persona makes becomes one row: who (user, persona, thread, prompt
version, connection, account), what (operation, method, path, redacted arguments), and how it ended
(status, HTTP status, request id, latency, a short response summary, the error). Calls that never
reach HTTP (refused by scope, rejected at approval, dry runs, waiting for approval) are recorded too.

Append-only is enforced by the database: triggers abort any UPDATE or DELETE. Each row also stores a
hash chained to the previous row's; with an anchor (``klaviyo_toolkit.audit_anchor``) the chain is an
HMAC whose key lives outside the log, and the newest row (the head) is saved outside it after every
append, so :meth:`AuditLog.verify` finds an edited row even with its chain re-hashed, a forged
append, a cut tail and, with :func:`verify_log`, a deleted file. An append onto a log that no
longer holds its anchored head is refused with nothing written (``klaviyo_toolkit.audit_head``):
saving a new head would hide the cut; :meth:`AuditLog.accept_loss` goes on deliberately. Secrets
never reach the file: arguments, summaries and errors pass through :func:`redact` first. SQLite's
errors on the file are said with its name and the fix (``klaviyo_toolkit.state_files``), and a log
opened ``read_only`` is read without writing anything, in a folder this user may not write too.

Example::

    log = AuditLog(home / "audit.db", anchor=FileAnchor(home / "keys"))
    ctx = AuditContext(user="ada", persona="lead_magnet", thread_id="t-1", prompt_version="v3")
    client = KlaviyoClient(api_key=..., hooks=[log.hook(ctx)])
    log.record("send_campaign", "pending_approval", context=ctx, arguments={"id": "C1"})
    log.query(persona="lead_magnet", status="error", limit=20)
    assert log.verify()

Note:
    Writes are serialised by a lock within a process and, across processes, by a lock file beside
    the log (``flock``) held from reading the newest row until its head is saved, and by SQLite's
    write lock (``BEGIN IMMEDIATE``): the chain stays linear whoever appends, heads are saved in row
    order, and no append reads a head half-written. The file runs in WAL mode.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ._files import HeldLockFile
from .audit_anchor import AuditAnchor, Head
from .audit_head import AuditHeadError, head_problem, keep_head_record
from .audit_rows import (
    _COLUMNS,
    _CONTENT,
    _MAX_ARGUMENT_CHARS,
    _MAX_ERROR_CHARS,
    _SELECT,
    _STATUSES,
    GENESIS,
    AuditContext,
    AuditEntry,
    AuditStatus,
    ChainReport,
    _cap,
    _dumps,
    _entry,
    _iso,
    _row_hash,
    arguments_digest,
    check_chain,
    normalise_head,
)
from .audit_summary import _MAX_SUMMARY_CHARS, summarize_response
from .clock import Clock, SystemClock
from .errors import ToolkitUsageError
from .redact import redact
from .state_files import StateFile, StateFileError

if TYPE_CHECKING:
    from .client import CallRecord

__all__ = [
    "AUDIT_FILE",
    "AuditContext",
    "AuditHeadError",
    "AuditEntry",
    "AuditLog",
    "AuditStatus",
    "ChainReport",
    "arguments_digest",
    "normalise_head",
    "redact",
    "summarize_response",
    "verify_log",
]

#: How SQLite's errors on the log's file are said (``klaviyo_toolkit.state_files``).
AUDIT_FILE = StateFile(
    "the audit log",
    if_moved="its rows are no longer shown or verified, and a new log begins",
    then="accept the loss of its rows deliberately (AuditLog.accept_loss), since the log's anchored head "
    "refuses appends to a log that does not hold it",
)
_INSERT = f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
_LAST_ROW = (
    "SELECT last.id, last.hash, (SELECT seq FROM sqlite_sequence WHERE name = 'audit_log') "
    "FROM (SELECT 1) LEFT JOIN (SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1) AS last"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    time             TEXT    NOT NULL,
    user             TEXT,
    persona          TEXT,
    thread_id        TEXT,
    prompt_version   TEXT,
    connection       TEXT,
    account          TEXT,
    tool             TEXT    NOT NULL,
    method           TEXT,
    path             TEXT,
    arguments        TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    http_status      INTEGER,
    request_id       TEXT,
    latency_ms       REAL,
    response_summary TEXT,
    error            TEXT,
    extra            TEXT    NOT NULL,
    prev_hash        TEXT    NOT NULL,
    hash             TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (time);
CREATE INDEX IF NOT EXISTS audit_log_persona ON audit_log (persona, id);
CREATE INDEX IF NOT EXISTS audit_log_thread ON audit_log (thread_id, id);
CREATE TABLE IF NOT EXISTS audit_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be deleted'); END;
"""


# -- the log -------------------------------------------------------------------------------------


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection to the log file; read-only opens it as it is (a URI, so any name works) and writes nothing."""
    if read_only:
        return sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0, isolation_level=None, check_same_thread=False
        )
    return sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)


def _columns(path: Path) -> set[str]:
    """The audit_log table's columns (none for a new or empty file), read without writing."""
    if not path.exists() or path.stat().st_size == 0:
        return set()
    with contextlib.closing(_connect(path, read_only=True)) as db:
        return {row[1] for row in db.execute("PRAGMA table_info(audit_log)")}


def _set_aside_old_format(path: Path) -> None:
    """A log from before the connection/account columns keeps its own chain: move it beside, untouched."""
    columns = _columns(path)
    if columns and "connection" not in columns:
        for suffix in ("", "-wal", "-shm"):
            old = Path(f"{path}{suffix}")
            if old.exists():
                os.replace(old, path.with_name(f"{path.stem}.v1{path.suffix}{suffix}"))


class AuditLog:
    """An append-only audit log in one SQLite file (created owner-only).

    Args:
        path: the database file (created, with its folder, if missing).
        anchor: where the HMAC key and the head live (see ``klaviyo_toolkit.audit_anchor``); without
            one the chain is plain SHA-256, which finds accidents but not a careful forger. A log
            made with an anchor refuses to be opened without it.
        clock: where row times come from (inject ``ManualClock`` in tests).
        read_only: only read it (query, export, verify): nothing is created or written, so a log in
            a folder this user may not write can still be read; the file must exist.

    Raises:
        StateFileError: the file cannot be opened, read or written (which, and what to do).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        anchor: AuditAnchor | None = None,
        clock: Clock | None = None,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.anchor = anchor
        self.read_only = read_only
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._held = HeldLockFile(self.path.with_name(f".{self.path.name}.lock"))
        if read_only and not self.path.is_file():
            raise StateFileError(f"the audit log {self.path} does not exist", self.path, None)
        try:
            self._db = self._open()
        except (sqlite3.Error, OSError) as exc:
            raise (AUDIT_FILE.error(self.path, exc) or exc) from None
        self._key = anchor.key() if anchor is not None else None
        mode = "hmac" if self._key is not None else "sha256"
        with self._lock, self._named():
            if not read_only:
                self._db.execute("INSERT OR IGNORE INTO audit_meta VALUES ('chain', ?)", (mode,))
            row = self._db.execute("SELECT value FROM audit_meta WHERE name = 'chain'").fetchone()
        stored = row[0] if row else mode
        if stored != mode:
            self._db.close()
            raise ToolkitUsageError(
                f"the audit log {self.path} is chained with {stored}, but was opened "
                + ("with an anchor" if self._key else "without its anchor (its HMAC key)")
                + "; open it the way it was made"
            )

    def _open(self) -> sqlite3.Connection:
        """The connection: read-only on the file as it is, or (made if missing) in WAL mode with the schema."""
        if self.read_only:
            columns = _columns(self.path)
            if columns and "connection" not in columns:
                raise ToolkitUsageError(
                    f"the audit log {self.path} is in an earlier version's format; open it once for writing "
                    f"(any run does), which moves it aside to {self.path.stem}.v1{self.path.suffix}"
                )
            if not columns:  # made but never written: read as the empty log it is
                db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                db.executescript(_SCHEMA)
                return db
            return _connect(self.path, read_only=True)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _set_aside_old_format(self.path)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        db = _connect(self.path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return db

    @contextlib.contextmanager
    def _named(self) -> Iterator[None]:
        """SQLite's errors about the file itself (read-only, damaged, missing folder) said with its name and the fix."""
        try:
            yield
        except sqlite3.Error as exc:
            raise (AUDIT_FILE.error(self.path, exc) or exc) from None

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._held.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------
    def record(
        self,
        tool: str,
        status: AuditStatus,
        *,
        context: AuditContext | None = None,
        method: str | None = None,
        path: str | None = None,
        arguments: Any = None,
        http_status: int | None = None,
        request_id: str | None = None,
        latency_ms: float | None = None,
        response_summary: str | None = None,
        error: str | BaseException | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one event; secrets in ``arguments``, ``response_summary`` and ``error`` are redacted.

        Use it directly for events that never reach HTTP (``denied``, ``rejected``, ``dry_run``,
        ``pending_approval``); calls that do are recorded by :meth:`hook`.
        """
        content = self._content(tool, status, context, method, path, arguments, http_status, request_id, latency_ms,
                                response_summary, error, extra)  # fmt: skip
        with self._lock:
            values = self._append(content)
        return _entry(tuple(values))

    def accept_loss(self, reason: str, *, context: AuditContext | None = None) -> AuditEntry:
        """Go on with the log as it is, though it does not hold its anchored head: a deliberate act.

        Appends (whatever the head says) one row, tool ``audit.accept_loss``, that records what was wrong
        (the anchored head, the log's newest row), ``reason`` and who accepted it, keeps a copy of the head
        record beside it, then anchors the head on that row, so appends go on and verify passes again.
        Rows cut from the end stay lost; the row says they were.

        Raises:
            ToolkitUsageError: ``reason`` is empty, or there is nothing to accept (the log holds its head).
        """
        if not reason or not reason.strip():
            raise ToolkitUsageError("say why the loss is accepted (the reason is recorded in the log)")
        if self.anchor is None:
            raise ToolkitUsageError(f"the audit log {self._where} has no anchor, so no head to lose")
        content = self._content("audit.accept_loss", "ok", context)
        with self._lock:
            values = self._append(content, accept=reason.strip())
        return _entry(tuple(values))

    def check_appendable(self) -> None:
        """Raise :class:`AuditHeadError` now if an append would be refused (the log does not hold its
        anchored head): a run checks before its first call, so it never acts without being recorded."""
        with self._lock, self._append_lock():
            problem = head_problem(self.anchor, self._newest(), self._hash_at)
        if problem is not None:
            raise AuditHeadError(self._where, problem)

    def _content(
        self,
        tool: str,
        status: str,
        context: AuditContext | None,
        method: str | None = None,
        path: str | None = None,
        arguments: Any = None,
        http_status: int | None = None,
        request_id: str | None = None,
        latency_ms: float | None = None,
        response_summary: str | None = None,
        error: str | BaseException | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A row's content as stored (redacted, capped), but for its number and chain."""
        if status not in _STATUSES:
            raise ToolkitUsageError(f"Unknown audit status {status!r}; use one of {', '.join(sorted(_STATUSES))}.")
        if not tool:
            raise ToolkitUsageError("An audit record needs the tool (operation id) it is about.")
        ctx = context or AuditContext()
        error_text = None if error is None else (str(error) or type(error).__name__)
        content: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(self._clock.time(), _dt.UTC).isoformat(timespec="microseconds"),
            "user": ctx.user,
            "persona": ctx.persona,
            "thread_id": ctx.thread_id,
            "prompt_version": ctx.prompt_version,
            "connection": ctx.connection,
            "account": ctx.account,
            "tool": tool,
            "method": method.upper() if method else None,
            "path": _cap(path, 2_000),
            "arguments": _dumps({} if arguments is None else arguments, _MAX_ARGUMENT_CHARS),
            "status": status,
            "http_status": http_status,
            "request_id": request_id,
            "latency_ms": None if latency_ms is None else round(float(latency_ms), 3),
            "response_summary": _cap(response_summary, _MAX_SUMMARY_CHARS),
            "error": _cap(error_text, _MAX_ERROR_CHARS),
            "extra": _dumps(dict(extra or {}), _MAX_ARGUMENT_CHARS),
        }
        return content

    def _append(self, content: dict[str, Any], accept: str | None = None) -> list[Any]:
        """Write one row after the newest (numbered and chained here), then save the head; the storage's part.

        One appender at a time, across processes, from reading the newest row until its head is saved
        (:meth:`_append_lock`): heads are saved in row order, and each append reads a whole head.
        """
        with self._append_lock(), self._named():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # The newest row and the highest id ever used (a row id is never reused), in one statement.
                row = self._db.execute(_LAST_ROW).fetchone()
                last = None if row is None or row[0] is None else (row[0], row[1])
                self._admit(content, int(last[0]) if last else 0, accept, last[1] if last else None)
                # An accepted loss numbers on from the newest row (its row records the rows lost), and
                # so does every row after it; otherwise never below an id once used.
                floor = (row[2] or 0) if row is not None and accept is None else 0
                values = self._chain(content, last, floor)
                self._db.execute(_INSERT, values)
                if accept is not None:
                    self._db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'audit_log'", (values[0],))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._save_head(Head(int(content["id"]), values[-1]), accept)
        return values

    def _admit(self, content: dict[str, Any], newest: int, accept: str | None, newest_hash: str | None = None) -> None:
        """Before a row is written (the append lock held): the log must hold its anchored head, else
        nothing is written (:class:`AuditHeadError`); an acceptance needs a loss, and records it.
        ``newest_hash``: row ``newest``'s, read in this transaction (an intact log's head names it)."""

        def hash_at(row: int) -> str | None:
            return newest_hash if row == newest and newest_hash is not None else self._hash_at(row)

        problem = head_problem(self.anchor, newest, hash_at)
        if accept is None:
            if problem is not None:
                raise AuditHeadError(self._where, problem)
            return
        if problem is None:
            raise ToolkitUsageError(f"nothing to accept: the audit log {self._where} holds its anchored head")
        kept = keep_head_record(self.anchor, _dt.datetime.fromtimestamp(self._clock.time(), _dt.UTC))
        facts = {**problem.facts(), "reason": accept, "head_record_kept": kept}
        content["extra"] = _dumps(facts, _MAX_ARGUMENT_CHARS)

    def _save_head(self, head: Head, accept: str | None) -> None:
        if self.anchor is None:
            return
        replace = getattr(self.anchor, "replace_head", None) if accept is not None else None
        (replace or self.anchor.save_head)(head)

    def _append_lock(self) -> contextlib.AbstractContextManager[None]:
        """Held by one appender of the file at a time, across processes: ``flock`` on a file beside it,
        kept open between appends (where there is no flock, or the folder is read-only and nothing can
        be appended, none)."""
        return self._held.hold()

    def _newest(self) -> int:
        """The newest row's number (0 when empty); the caller holds ``_lock``."""
        with self._named():
            return int(self._db.execute("SELECT max(id) FROM audit_log").fetchone()[0] or 0)

    def _hash_at(self, row: int) -> str | None:
        """Row ``row``'s hash, or None; the caller holds ``_lock``."""
        found = self._db.execute("SELECT hash FROM audit_log WHERE id = ?", (row,)).fetchone()
        return None if found is None else str(found[0])

    @property
    def _where(self) -> str:
        """The log as messages name it."""
        return str(self.path)

    def _chain(self, content: dict[str, Any], last: Any, floor: int = 0) -> list[Any]:
        """Number ``content`` after ``last`` (id, hash) and chain it; the row's values in column order."""
        content["id"] = max(last[0] if last else 0, floor) + 1
        prev = last[1] if last else GENESIS
        return [content[c] for c in _CONTENT] + [prev, _row_hash(prev, content, self._key)]

    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """Rows of a query written with ``?`` placeholders."""
        with self._lock, self._named():
            return list(self._db.execute(sql, params).fetchall())

    def hook(self, context: AuditContext | Callable[[], AuditContext] | None = None) -> Callable[[CallRecord], None]:
        """A client hook (``KlaviyoClient(hooks=[log.hook(ctx)])``) that appends a row per finished call.

        Args:
            context: who is acting; or a function returning it at call time (for a client shared by
                several threads or personas).
        """

        def audit_call(call: CallRecord) -> None:
            ctx = context() if callable(context) else context
            arguments: dict[str, Any] = {}
            if call.params:
                arguments["params"] = call.params
            if call.body not in (None, {}, []):
                arguments["body"] = call.body
            extra: dict[str, Any] = dict(call.extra)
            if call.attempts > 1:
                extra["attempts"] = call.attempts
            if call.waited:
                extra["waited_s"] = round(call.waited, 3)
            self.record(  # through record(), which a subclass may extend (tests kill a process right after it)
                call.operation_id,
                "ok" if call.error is None else "error",
                context=ctx,
                method=call.method,
                path=call.path,
                arguments=arguments,
                http_status=call.status,
                request_id=call.request_id,
                latency_ms=call.latency * 1000.0,
                response_summary=summarize_response(call.response_body) if call.error is None else None,
                error=call.error,
                extra=extra,
            )

        return audit_call

    # -- reading ---------------------------------------------------------------------------
    def query(
        self,
        *,
        user: str | None = None,
        persona: str | None = None,
        tool: str | None = None,
        status: str | None = None,
        since: _dt.datetime | str | None = None,
        until: _dt.datetime | str | None = None,
        thread_id: str | None = None,
        limit: int | None = 100,
    ) -> list[AuditEntry]:
        """Rows matching every filter given, newest first; ``since`` inclusive, ``until`` exclusive."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("user", user), ("persona", persona), ("tool", tool), ("status", status), ("thread_id", thread_id),
        ):  # fmt: skip
            if value is not None:
                where.append(f'"{column}" = ?')
                params.append(value)
        if since is not None:
            where.append("time >= ?")
            params.append(_iso(since))
        if until is not None:
            where.append("time < ?")
            params.append(_iso(until))
        sql = f"SELECT {_SELECT} FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_entry(row) for row in self._fetch(sql, params)]

    def count(self) -> int:
        """How many rows the log holds."""
        return int(self._fetch("SELECT count(*) FROM audit_log", [])[0][0])

    def _scan(self, after: int = 0) -> Iterator[tuple[Any, ...]]:
        """Every row after row ``after``, oldest first, read in batches on a private connection (no lock held)."""
        with self._named():
            if not _columns(self.path):  # made but never written
                return
            with contextlib.closing(_connect(self.path, read_only=True)) as db:
                cursor = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM audit_log WHERE id > ? ORDER BY id", (after,))
                while batch := cursor.fetchmany(500):
                    yield from batch

    def export_jsonl(self, path: str | Path | TextIO) -> int:
        """Write every row, oldest first, as one JSON object per line (to a file, created owner-only, or
        an open text stream); returns the number of rows."""
        if not isinstance(path, (str, Path)):
            return self._write_jsonl(path)
        target = Path(path)
        if not target.exists():
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o600))
        with target.open("w", encoding="utf-8") as out:
            return self._write_jsonl(out)

    def _write_jsonl(self, out: TextIO) -> int:
        count = 0
        for row in self._scan():
            out.write(json.dumps(_entry(row).to_json(), ensure_ascii=False, default=str) + "\n")
            count += 1
        return count

    def head(self) -> str:
        """The hash of the newest row (``GENESIS`` when empty); keep a copy elsewhere to detect a cut tail."""
        rows = self._fetch("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1", [])
        return str(rows[0][0]) if rows else GENESIS

    def verify(self, *, expected_head: str | None = None) -> ChainReport:
        """Recompute the chain; reports the first row that was changed, removed, inserted or forged,
        and a tail cut below the anchor's head (or below ``expected_head``, a :meth:`head` kept elsewhere).
        """
        expected_head = normalise_head(expected_head)
        anchored = self.anchor.load_head() if self.anchor is not None else None
        return check_chain(self._scan(), self._key, anchored=anchored, expected_head=expected_head)

    def verify_recent(self, rows: int) -> ChainReport:
        """:meth:`verify` of the newest ``rows`` rows (linked from the stored hash of the row before
        them) and the anchored head: what a run can afford to check as it starts (11 us a row)."""
        with self._lock:
            after = max(0, self._newest() - rows)
            prev = self._hash_at(after) if after else GENESIS
        if prev is None:
            return ChainReport(False, after, after, f"row {after} is missing")
        anchored = self.anchor.load_head() if self.anchor is not None else None
        return check_chain(self._scan(after), self._key, anchored=anchored, expected_head=None, after=after, prev=prev)


def verify_log(path: str | Path, *, anchor: AuditAnchor | None = None, expected_head: str | None = None) -> ChainReport:
    """Verify the log at ``path`` without creating it: a missing file whose anchor has a head is a failure."""
    expected_head = normalise_head(expected_head)
    target = Path(path)
    if not target.exists():
        head = anchor.load_head() if anchor is not None else None
        if head is not None or (expected_head and expected_head != GENESIS):
            rows = head.rows if head else "some"
            return ChainReport(False, 0, None, f"the audit log {target} is missing; it had {rows} rows")
        return ChainReport(True, 0, None, "no audit log yet")
    with AuditLog(target, anchor=anchor, read_only=True) as log:
        return log.verify(expected_head=expected_head)
