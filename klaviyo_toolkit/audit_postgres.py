"""The audit log in PostgreSQL: the same :class:`~klaviyo_toolkit.audit.AuditLog`, shared by many workers.

Same rows, same chain, same anchor, same ``record`` / ``hook`` / ``query`` / ``verify`` /
``export_jsonl``; only the storage differs:

- **append-only** by the database: a trigger refuses every ``UPDATE``, ``DELETE`` and ``TRUNCATE`` of
  ``personas_audit_log``;
- **one linear chain** whoever appends: an append holds a session advisory lock from reading the
  newest row until its head is saved, so rows from every worker on every machine are numbered and
  chained one after another, and heads are saved in order. Two round trips when the anchored head
  names the newest row: the lock with one statement that inserts the row only if that row is still
  the newest, then the unlock (one more when another machine's worker came first);
- **the anchored head is held**: under that lock an append first checks that the log still holds the
  head saved last, and refuses (nothing written) if rows were cut, as for SQLite;
- **one key**: the HMAC key comes from the anchor, as for SQLite; the log remembers a fingerprint of
  it (an HMAC of a fixed text, never the key), so a worker whose key differs is refused when it opens
  the log, before it could write a row the others cannot verify;
- **a NUL is kept escaped**: PostgreSQL's text holds no NUL, so one in a row's text (a path, a
  response summary, an error: Klaviyo data a poll read) is stored, and chained, as the six characters
  ``\\u0000`` rather than the row being refused (the call unaudited); arguments are JSON, escaped already;
- **a connection that ends is made again**: a restart of PostgreSQL or a cut network ends the log's
  one connection; the next append or read connects once more and goes on. An append cut off after
  its ``COMMIT`` was sent may have written its row: once reconnected, under the lock again (which the
  old session held until it ended), it looks for that row by number and hash and, if it is there,
  only saves its head (unless a later row's already was); else it appends afresh. No row is lost,
  none is written twice. If the database still cannot be reached, :class:`AuditDatabaseError` says
  which (never the password) and what to do; the append after that tries again.

Example::

    log = PostgresAuditLog("postgresql://...", anchor=FileAnchor(home / "keys"))
    log.record("create_event", "ok", context=ctx, ...)
    assert log.verify()
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .audit import AuditLog
from .audit_anchor import AuditAnchor, Head
from .audit_head import AuditHeadError, HeadProblem, head_problem
from .audit_rows import _COLUMNS, _SELECT
from .clock import Clock, SystemClock
from .errors import ToolkitUsageError

__all__ = ["AuditDatabaseError", "PostgresAuditLog"]

_T = TypeVar("_T")

#: The advisory lock that serialises appends (any constant shared by every writer of the database).
APPEND_LOCK = 74210917
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS personas_audit_log (
        id BIGINT PRIMARY KEY, time TEXT NOT NULL, "user" TEXT, persona TEXT, thread_id TEXT,
        prompt_version TEXT, connection TEXT, account TEXT, tool TEXT NOT NULL, method TEXT, path TEXT,
        arguments TEXT NOT NULL, status TEXT NOT NULL, http_status INTEGER, request_id TEXT,
        latency_ms DOUBLE PRECISION, response_summary TEXT, error TEXT, extra TEXT NOT NULL,
        prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS personas_audit_log_time ON personas_audit_log (time)",
    "CREATE INDEX IF NOT EXISTS personas_audit_log_persona ON personas_audit_log (persona, id)",
    "CREATE TABLE IF NOT EXISTS personas_audit_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE OR REPLACE FUNCTION personas_audit_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'audit_log is append-only: rows cannot be changed or deleted'; END $$
       LANGUAGE plpgsql""",
    """DO $$ BEGIN
         IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'personas_audit_log_no_change') THEN
           CREATE TRIGGER personas_audit_log_no_change BEFORE UPDATE OR DELETE ON personas_audit_log
             FOR EACH ROW EXECUTE FUNCTION personas_audit_append_only();
           CREATE TRIGGER personas_audit_log_no_truncate BEFORE TRUNCATE ON personas_audit_log
             FOR EACH STATEMENT EXECUTE FUNCTION personas_audit_append_only();
         END IF;
       END $$""",
)


#: A column's type where it is not TEXT: the guessed append (below) casts each value it sends.
_TYPES = {"id": "bigint", "http_status": "integer", "latency_ms": "double precision"}
#: The append of a row chained to the row this process believes newest, written only if that row is
#: still the newest (so a wrong guess writes nothing), in one statement that also returns the newest
#: row as it is and the stored hash of the row guessed: an append is then two round trips (this one,
#: pipelined after the lock, and the unlock) where reading the newest row, a transaction around the
#: insert and its commit made six; three when the guess was wrong.
_APPEND_IF_NEWEST = (
    "WITH newest AS (SELECT id, hash FROM personas_audit_log ORDER BY id DESC LIMIT 1), "
    f"added AS (INSERT INTO personas_audit_log ({_SELECT}) "
    f"SELECT {', '.join('%s::' + _TYPES.get(c, 'text') for c in _COLUMNS)} "
    "WHERE (SELECT id FROM newest) = %s AND (SELECT hash FROM newest) = %s RETURNING id) "
    "SELECT (SELECT id FROM added), (SELECT id FROM newest), (SELECT hash FROM newest), "
    "(SELECT hash FROM personas_audit_log WHERE id = %s)"
)


class AuditDatabaseError(ToolkitUsageError):
    """The audit log's database cannot be reached, even on a new connection: which one (never its
    password), whether the row was written, and what to do. The next append tries again.

    Attributes:
        server: host:port/database.
        written: False when nothing was written; None when the row's ``COMMIT`` was sent, unanswered.
    """

    def __init__(self, server: str, cause: BaseException, written: bool | None) -> None:
        self.server = server
        self.written = written
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        said = "nothing was written" if written is False else "its last row may have been written (verify shows it)"
        super().__init__(
            f"the audit log in PostgreSQL ({server}) lost its connection and could not make a new one ({first}); "
            f"{said}. Check that PostgreSQL is running and reachable at PERSONAS_DATABASE_URL; the next append "
            "connects again"
        )


def _fingerprint(key: bytes | None) -> str:
    return "sha256" if key is None else "hmac:" + hmac.new(key, b"personas audit key", hashlib.sha256).hexdigest()[:16]


class PostgresAuditLog(AuditLog):
    """An :class:`AuditLog` whose rows live in PostgreSQL (see the module docstring).

    Args:
        url: the database (``PERSONAS_DATABASE_URL``).
        anchor: where the HMAC key and the head live; every writer must have the same key.
        clock: where row times come from.
    """

    def __init__(self, url: str, *, anchor: AuditAnchor | None = None, clock: Clock | None = None) -> None:
        import psycopg

        self.url = url
        self.anchor = anchor
        self._key = anchor.key() if anchor is not None else None
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._newest_seen: tuple[int, str] | None = None  # (id, hash) of the row this process wrote last
        self._pipelined = psycopg.Pipeline.is_supported()
        self._pg = psycopg.connect(url, autocommit=True)
        with self._lock:
            self._pg.execute("SELECT pg_advisory_lock(%s)", (APPEND_LOCK,))
            try:
                for statement in _SCHEMA:
                    self._pg.execute(statement)
                mode = _fingerprint(self._key)
                self._pg.execute(
                    "INSERT INTO personas_audit_meta VALUES ('chain', %s) ON CONFLICT (name) DO NOTHING", (mode,)
                )
                row = self._pg.execute("SELECT value FROM personas_audit_meta WHERE name = 'chain'").fetchone()
            finally:
                self._pg.execute("SELECT pg_advisory_unlock(%s)", (APPEND_LOCK,))
        stored = row[0] if row else mode
        if stored != mode:
            self._pg.close()
            raise ToolkitUsageError(
                f"the PostgreSQL audit log was made with another audit key than this process's ({self.anchor!r}); "
                "every writer needs the key the log began with: give each machine's workers the first machine's "
                "state (its personas home's vault.sqlite, the vault.audit.head beside it and its vault key, or "
                "keys/audit.key for a file anchor), or open the log the way it was made"
            )

    def __repr__(self) -> str:
        return f"PostgresAuditLog('{self._server}')"

    @property
    def _server(self) -> str:
        """host:port/database, never the password."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port}{parts.path}"

    @property
    def path(self) -> Any:  # type: ignore[override]
        return None

    def close(self) -> None:
        with self._lock:
            self._pg.close()

    # -- a connection that ends ------------------------------------------------------------
    def _lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` ended the connection (a restart, a cut network), so a new one may succeed."""
        import psycopg

        return isinstance(exc, psycopg.OperationalError) and (self._pg.closed or self._pg.broken)

    def _reconnect(self, written: bool | None) -> None:
        """Replace the ended connection (the caller holds ``_lock``); :class:`AuditDatabaseError` if none can be had."""
        import psycopg

        with contextlib.suppress(psycopg.Error):
            self._pg.close()
        try:
            self._pg = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise AuditDatabaseError(self._server, exc, written) from None

    def _once_more(self, read: Callable[[], _T]) -> _T:
        """``read()``, and once more on a new connection if the first ended (reads change nothing); the
        caller holds ``_lock``."""
        try:
            return read()
        except Exception as exc:
            if not self._lost(exc):
                raise
            self._reconnect(written=False)
        try:
            return read()
        except Exception as exc:
            if self._lost(exc):
                raise AuditDatabaseError(self._server, exc, written=False) from None
            raise

    def _append(self, content: dict[str, Any], accept: str | None = None) -> list[Any]:
        """Append as :meth:`AuditLog._append` does; a connection that ends is made again once (module docstring)."""
        sent: list[Any] = []  # the row's values, once its COMMIT is on its way
        try:
            return self._append_once(content, accept, sent)
        except Exception as exc:
            if not self._lost(exc):
                raise
            self._reconnect(written=None if sent else False)
        try:
            return self._append_once(content, accept, sent)
        except Exception as exc:
            if self._lost(exc):
                raise AuditDatabaseError(self._server, exc, written=None if sent else False) from None
            raise

    def _append_once(self, content: dict[str, Any], accept: str | None, sent: list[Any]) -> list[Any]:
        """One attempt; ``sent`` holds the values of an earlier attempt whose COMMIT went unanswered.

        The row is chained to the row the anchored head names (the newest a writer sharing this
        anchor wrote; without a head, the row this process wrote last) and written only if that is
        still the newest (:data:`_APPEND_IF_NEWEST`, sent with the lock): then the log holds its head.
        When it is not (a writer with another head record, on another machine, came first), the
        newest row it returns is checked and chained as :meth:`_append_checked` does, under the lock."""
        for name, value in content.items():  # PostgreSQL keeps no NUL in text: stored (and chained) escaped
            if isinstance(value, str) and "\x00" in value:
                content[name] = value.replace("\x00", "\\u0000")
        guess = self._guess()
        if sent or accept is not None or guess is None:
            return self._append_checked(content, accept, sent)
        values = self._chain(content, guess)
        sent[:] = values  # its COMMIT may go unanswered
        try:
            with self._pg.pipeline() if self._pipelined else contextlib.nullcontext():  # libpq 14+ pipelines
                self._pg.execute("SELECT pg_advisory_lock(%s)", (APPEND_LOCK,))
                found = self._pg.execute(_APPEND_IF_NEWEST, [*values, *guess, guess[0]])
            added, newest, newest_hash, guessed = found.fetchone() or (None, None, None, None)
            if added is None:  # not the newest (another machine's row came first, or rows were cut): check it
                sent.clear()
                known = {int(newest or 0): newest_hash, guess[0]: guessed}
                problem = head_problem(
                    self.anchor, int(newest or 0), lambda row: known[row] if row in known else self._hash_at(row)
                )
                if problem is not None:
                    raise AuditHeadError(self._where, problem)
                values = self._chain(content, None if newest is None else (int(newest), str(newest_hash)))
                sent[:] = values
                marks = ", ".join("%s" for _ in _COLUMNS)
                self._pg.execute(f"INSERT INTO personas_audit_log ({_SELECT}) VALUES ({marks})", values)
            self._save_head(Head(int(values[0]), values[-1]), None)  # still under the lock: in row order
            self._newest_seen = (int(values[0]), str(values[-1]))
            return values
        finally:
            if not (self._pg.closed or self._pg.broken):
                self._pg.execute("SELECT pg_advisory_unlock(%s)", (APPEND_LOCK,))

    def _guess(self) -> tuple[int, str] | None:
        """The row an append chains to if it is still the newest: the anchored head's, else the row this
        process wrote last; None when unknown."""
        if self.anchor is None:
            return self._newest_seen
        try:  # read without the lock: a record being saved may read torn, or anything may fail here
            head = self.anchor.load_head()
        except Exception:  # the checked append reads it again, under the lock, and says what is wrong
            return None
        return (head.rows, head.hash) if head is not None else self._newest_seen

    def _append_checked(self, content: dict[str, Any], accept: str | None, sent: list[Any]) -> list[Any]:
        """An append that reads the newest row under the lock first, in a transaction: a new log's first
        (no head yet), an accepted loss, a retry after a lost connection, one whose head cannot be read."""
        with self._append_lock():
            if sent and self._hash_at(int(sent[0])) == sent[-1]:  # that attempt's row is in: only its head is due
                head = self.anchor.load_head() if self.anchor is not None else None
                if head is None or head.rows < int(sent[0]):  # else a later row's head was saved, keep it
                    self._save_head(Head(int(sent[0]), sent[-1]), accept)
                self._newest_seen = None
                return sent
            sent.clear()
            with self._pg.transaction():
                last = self._pg.execute("SELECT id, hash FROM personas_audit_log ORDER BY id DESC LIMIT 1").fetchone()
                newest, newest_hash = (int(last[0]), str(last[1])) if last else (0, None)
                self._admit(content, newest, accept, newest_hash)  # the anchored head must be in the log
                values = self._chain(content, last)
                marks = ", ".join("%s" for _ in _COLUMNS)
                self._pg.execute(f"INSERT INTO personas_audit_log ({_SELECT}) VALUES ({marks})", values)
                sent[:] = values  # the block's end sends COMMIT
            self._save_head(Head(int(content["id"]), values[-1]), accept)  # still under the lock: in row order
        self._newest_seen = (int(values[0]), str(values[-1]))
        return values

    @contextlib.contextmanager
    def _append_lock(self) -> Iterator[None]:
        """The advisory lock, for the block. Should the connection end meanwhile, the lock ended with its
        session: nothing to release (the block's own error, if any, is what the caller sees)."""
        self._pg.execute("SELECT pg_advisory_lock(%s)", (APPEND_LOCK,))
        try:
            yield
        finally:
            if not (self._pg.closed or self._pg.broken):
                self._pg.execute("SELECT pg_advisory_unlock(%s)", (APPEND_LOCK,))

    def check_appendable(self) -> None:
        """As :meth:`AuditLog.check_appendable`, on a new connection if the old one ended.

        One round trip: the head is read first, then the newest row and the head's row in one
        statement, without the lock (a head is saved only once its row is in, so the log read after
        the head holds at least that row); a head that cannot be read is checked under the lock."""

        def check() -> HeadProblem | None:
            try:
                head = self.anchor.load_head() if self.anchor is not None else None
            except ToolkitUsageError:
                with self._append_lock():
                    return head_problem(self.anchor, self._newest(), self._hash_at)
            found = self._pg.execute(
                "SELECT (SELECT max(id) FROM personas_audit_log), (SELECT hash FROM personas_audit_log WHERE id = %s)",
                (head.rows if head is not None else 0,),
            ).fetchone()
            newest, at_head = (int(found[0] or 0), found[1]) if found else (0, None)

            def hash_at(row: int) -> str | None:
                return (
                    str(at_head)
                    if head is not None and row == head.rows and at_head is not None
                    else self._hash_at(row)
                )

            return head_problem(self.anchor, newest, hash_at, load=lambda: head)

        with self._lock:
            problem = self._once_more(check)
        if problem is not None:
            raise AuditHeadError(self._where, problem)

    def _newest(self) -> int:
        found = self._pg.execute("SELECT max(id) FROM personas_audit_log").fetchone()
        return int(found[0] or 0) if found else 0

    def _hash_at(self, row: int) -> str | None:
        found = self._pg.execute("SELECT hash FROM personas_audit_log WHERE id = %s", (row,)).fetchone()
        return None if found is None else str(found[0])

    @property
    def _where(self) -> str:
        return f"in PostgreSQL ({self._server})"

    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        query = sql.replace("FROM audit_log", "FROM personas_audit_log").replace("?", "%s")
        with self._lock:
            return self._once_more(lambda: list(self._pg.execute(query, params).fetchall()))

    def _scan(self, after: int = 0) -> Iterator[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url) as conn, conn.cursor(name="personas_audit_scan") as cur:
            cur.execute(f"SELECT {_SELECT} FROM personas_audit_log WHERE id > %s ORDER BY id", (after,))
            while batch := cur.fetchmany(500):
                yield from batch
