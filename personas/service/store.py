"""The durable record of unattended runs, trigger cursors and seen deliveries: SQLite or PostgreSQL.

One table of **runs** is the truth about every run the service starts: its persona, what started it
(``key``: ``event:<Klaviyo event id>`` for a webhook or a poll, ``schedule:<slot>`` for a cron slot,
``manual:<id>``), its LangGraph thread, status and error. ``(persona, key)`` is unique, so a second
delivery of an event, a poll that sees it again, or a second worker's scheduler finding the same
slot never makes a second run: :meth:`RunStore.create_run` answers with the run that exists.

Statuses: ``queued`` -> ``running`` -> ``done`` | ``paused`` (waiting for approval) | ``failed``
(recorded with its error; ``personas runs retry`` continues it from its checkpoint).

**cursors** keep where a poller or the scheduler got to; **deliveries** remember the signatures of
webhook deliveries already accepted (a replayed delivery starts nothing). The same SQL runs on
SQLite (``$PERSONAS_HOME/service.sqlite``, the embedded default) and on PostgreSQL
(``PERSONAS_DATABASE_URL``); only the placeholders and a few types differ.

Example::

    store = RunStore.open(config)                  # SQLite or PostgreSQL, by the config
    run, created = store.create_run("lead-magnet-sequencer", "event:01J...", "webhook", {"data": ...})
    store.claim(run.id); store.finish(run.id, "done")
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personas.kernel.config import Config
from personas.kernel.privacy import private_file

__all__ = ["STATUSES", "Run", "RunStore"]

STATUSES = ("queued", "running", "done", "paused", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS personas_runs (
    id TEXT PRIMARY KEY,
    persona TEXT NOT NULL,
    key TEXT NOT NULL,
    trigger TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    scheduled_for {real},
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    outcome TEXT,
    worker TEXT,
    created {real} NOT NULL,
    updated {real} NOT NULL,
    UNIQUE (persona, key)
);
CREATE INDEX IF NOT EXISTS personas_runs_status ON personas_runs (status, created);
CREATE TABLE IF NOT EXISTS personas_cursors (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS personas_deliveries (
    signature TEXT PRIMARY KEY,
    received {real} NOT NULL
);
"""
#: One lock per subject for the runs of this process (SQLite: one process runs them all).
_SUBJECT_LOCKS: dict[str, tuple[threading.Lock, list[int]]] = {}
_SUBJECT_LOCKS_GUARD = threading.Lock()

_COLUMNS = (
    "id, persona, key, trigger, thread_id, status, input, scheduled_for, attempts, error, outcome, worker, "
    "created, updated"
)


@dataclass(frozen=True)
class Run:
    """One unattended run as recorded (see the module docstring for the statuses)."""

    id: str
    persona: str
    key: str
    trigger: str
    thread_id: str
    status: str
    input: dict[str, Any]
    scheduled_for: float | None
    attempts: int
    error: str | None
    outcome: str | None
    worker: str | None
    created: float
    updated: float

    @classmethod
    def from_row(cls, row: Any) -> Run:
        values = list(row)
        values[6] = json.loads(values[6] or "{}")
        return cls(*values)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _COLUMNS.replace(" ", "").split(",") if k != "input"}


class RunStore:
    """Runs, cursors and seen deliveries in one database (see the module docstring).

    Args:
        conn: an open DB-API connection (sqlite3, or psycopg in autocommit mode).
        dialect: ``"sqlite"`` or ``"postgres"``.
        clock: seconds since the epoch (injected in tests).
    """

    def __init__(self, conn: Any, dialect: str, clock: Any = time.time, *, pool: Any = None, url: str = "") -> None:
        self.conn = conn
        self.url = url  # PostgreSQL: where a run's lock connection goes (see `running`)
        self.pool = pool  # PostgreSQL: concurrent requests each take a connection of their own
        self.dialect = dialect
        self.clock = clock
        self._lock = threading.RLock()
        real = "DOUBLE PRECISION" if dialect == "postgres" else "REAL"
        with self._cursor() as cur:
            for statement in _SCHEMA.format(real=real).split(";"):
                if statement.strip():
                    cur.execute(statement)

    # -- opening -----------------------------------------------------------------------------------
    @classmethod
    def open(cls, config: Config, clock: Any = time.time) -> RunStore:
        """PostgreSQL when the config has a database URL, else ``<home>/service.sqlite``."""
        if config.database_url:
            return cls.postgres(config.database_url, clock=clock)
        return cls.sqlite(config.path("service.sqlite"), clock=clock)

    @classmethod
    def sqlite(cls, path: Path | str, clock: Any = time.time) -> RunStore:
        target = private_file(Path(path))
        conn = sqlite3.connect(str(target), check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return cls(conn, "sqlite", clock)

    @classmethod
    def postgres(cls, url: str, clock: Any = time.time) -> RunStore:
        from psycopg_pool import ConnectionPool

        from .postgres import connect, setup_lock

        with setup_lock(url):
            conn = connect(url)
            pool = ConnectionPool(url, min_size=1, max_size=8, kwargs={"autocommit": True}, open=True)
            return cls(conn, "postgres", clock, pool=pool, url=url)

    def close(self) -> None:
        self.conn.close()
        if self.pool is not None:
            self.pool.close()

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        if self.pool is not None:
            with self.pool.connection() as conn, conn.cursor() as cur:
                yield cur
            return
        with self._lock:
            cur = self.conn.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def _sql(self, query: str) -> str:
        return query.replace("?", "%s") if self.dialect == "postgres" else query

    def _one(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        with self._cursor() as cur:
            cur.execute(self._sql(query), params)
            return cur.fetchone()

    def _all(self, query: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._cursor() as cur:
            cur.execute(self._sql(query), params)
            return list(cur.fetchall())

    def _exec(self, query: str, params: tuple[Any, ...] = ()) -> int:
        with self._cursor() as cur:
            cur.execute(self._sql(query), params)
            return int(cur.rowcount or 0)

    # -- runs --------------------------------------------------------------------------------------
    def create_run(
        self,
        persona: str,
        key: str,
        trigger: str,
        input: dict[str, Any],
        *,
        scheduled_for: float | None = None,
        status: str = "queued",
    ) -> tuple[Run, bool]:
        """Record a run for ``(persona, key)`` unless one exists; (the run, whether it is new)."""
        now = self.clock()
        rid = uuid.uuid4().hex[:16]
        thread = f"{persona}-{trigger}-{rid}"
        row = self._one(
            f"INSERT INTO personas_runs ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,0,NULL,NULL,NULL,?,?) "
            f"ON CONFLICT (persona, key) DO NOTHING RETURNING {_COLUMNS}",
            (rid, persona, key, trigger, thread, status, json.dumps(input), scheduled_for, now, now),
        )
        if row is not None:  # one round trip for a new run
            return Run.from_row(row), True
        run = self.find(persona, key)
        assert run is not None
        return run, False

    def get(self, run_id: str) -> Run | None:
        row = self._one(f"SELECT {_COLUMNS} FROM personas_runs WHERE id = ?", (run_id,))
        return Run.from_row(row) if row else None

    def find(self, persona: str, key: str) -> Run | None:
        row = self._one(f"SELECT {_COLUMNS} FROM personas_runs WHERE persona = ? AND key = ?", (persona, key))
        return Run.from_row(row) if row else None

    def runs(self, persona: str | None = None, status: str | None = None, limit: int = 50) -> list[Run]:
        """The newest runs first, optionally of one persona and/or one status."""
        where, params = [], []
        if persona:
            where.append("persona = ?")
            params.append(persona)
        if status:
            where.append("status = ?")
            params.append(status)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._all(
            f"SELECT {_COLUMNS} FROM personas_runs {clause}ORDER BY created DESC, id DESC LIMIT ?", (*params, limit)
        )
        return [Run.from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Runs by status (every status present, zero when none)."""
        found = dict(self._all("SELECT status, COUNT(*) FROM personas_runs GROUP BY status"))
        return {s: int(found.get(s, 0)) for s in STATUSES}

    def claim(self, run_id: str, worker: str = "") -> Run | None:
        """Mark a queued (or interrupted ``running``) run as running by ``worker``; None if it is settled.

        A ``running`` run is claimable again because only the queue hands a run out: when it does so a
        second time, the worker that had it died, and the run continues from its checkpoint.
        """
        changed = self._exec(
            "UPDATE personas_runs SET status = 'running', attempts = attempts + 1, worker = ?, updated = ? "
            "WHERE id = ? AND status IN ('queued', 'running')",
            (worker, self.clock(), run_id),
        )
        return self.get(run_id) if changed else None

    @contextmanager
    def running(self, run_id: str) -> Iterator[None]:
        """Hold ``run_id`` while it runs: on PostgreSQL a session advisory lock on a connection of its own.

        The queue's stalled-job recovery judges a worker by its heartbeat, and a live worker starved of
        CPU can miss it: its job is then handed out again while the run is still going. The lock fences
        that: the second worker waits here until the first one ends (then finds the run settled) or dies
        (its connection closes, the lock goes with it, and the run continues from its checkpoint). On
        SQLite one process runs everything and its queue never hands a run out twice.
        """
        if self.dialect != "postgres":
            yield
            return
        from .postgres import advisory_lock, lock_key

        with advisory_lock(self.url, lock_key(f"personas-run:{run_id}"), poll=0.2):
            yield

    @contextmanager
    def serialized(self, subject: str | None) -> Iterator[None]:
        """Hold ``subject`` (a profile, say) while a run about it goes on: runs about one subject take
        turns, across the workers (PostgreSQL advisory lock) or the threads of the one SQLite process.
        Two submissions of one lead handled at once would each decide and send, and the second's record
        would overwrite the first's; in turn, the second sees the first's start."""
        if subject is None:
            yield
            return
        if self.dialect == "postgres":
            from .postgres import advisory_lock, lock_key

            with advisory_lock(self.url, lock_key(f"personas-subject:{subject}"), poll=0.2):
                yield
            return
        with _SUBJECT_LOCKS_GUARD:  # a lock lives while someone holds or waits for it: the map stays small
            entry = _SUBJECT_LOCKS.setdefault(subject, (threading.Lock(), [0]))
            entry[1][0] += 1
        try:
            with entry[0]:
                yield
        finally:
            with _SUBJECT_LOCKS_GUARD:
                entry[1][0] -= 1
                if not entry[1][0]:
                    del _SUBJECT_LOCKS[subject]

    def finish(self, run_id: str, status: str, *, error: str | None = None, outcome: str | None = None) -> None:
        """Record how a run ended (``done``, ``paused`` or ``failed``)."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r}: use one of {', '.join(STATUSES)}")
        self._exec(
            "UPDATE personas_runs SET status = ?, error = ?, outcome = ?, updated = ? WHERE id = ?",
            (status, error, outcome, self.clock(), run_id),
        )

    def requeue(self, run_id: str) -> Run | None:
        """Put a failed (or paused-and-answered) run back in the queue; None if it is not failed or paused."""
        changed = self._exec(
            "UPDATE personas_runs SET status = 'queued', error = NULL, updated = ? "
            "WHERE id = ? AND status IN ('failed', 'paused')",
            (self.clock(), run_id),
        )
        return self.get(run_id) if changed else None

    def unfinished(self) -> list[Run]:
        """Queued and running runs, oldest first (what a restarted embedded worker picks up again)."""
        rows = self._all(
            f"SELECT {_COLUMNS} FROM personas_runs WHERE status IN ('queued', 'running') ORDER BY created, id"
        )
        return [Run.from_row(r) for r in rows]

    def heartbeats(self, run_ids: list[str]) -> dict[str, float | None]:
        """Seconds since the worker running each of ``run_ids`` last sent a heartbeat (PostgreSQL).

        Only runs whose queue job is being run are in the answer: ``None`` when the job's worker is
        gone (pruned as dead). On SQLite, or before procrastinate's tables exist, nothing is known: ``{}``.
        The job of a run is the ``personas.run`` job locked on the run's id (``queues.py``).
        """
        if self.dialect != "postgres" or not run_ids:
            return {}
        if self._one("SELECT to_regclass('procrastinate_workers')")[0] is None:
            return {}
        rows = self._all(
            "SELECT j.lock, EXTRACT(EPOCH FROM (NOW() - w.last_heartbeat)) FROM procrastinate_jobs j "
            "LEFT JOIN procrastinate_workers w ON w.id = j.worker_id "
            "WHERE j.task_name = 'personas.run' AND j.status = 'doing' AND j.lock = ANY(?)",
            (list(run_ids),),
        )
        return {str(lock): (float(age) if age is not None else None) for lock, age in rows}

    def last_scheduled(self, persona: str) -> float | None:
        row = self._one(
            "SELECT MAX(scheduled_for) FROM personas_runs WHERE persona = ? AND trigger = 'schedule'", (persona,)
        )
        return float(row[0]) if row and row[0] is not None else None

    # -- cursors and deliveries ----------------------------------------------------------------------
    def cursor(self, name: str) -> str | None:
        row = self._one("SELECT value FROM personas_cursors WHERE name = ?", (name,))
        return str(row[0]) if row else None

    def set_cursor(self, name: str, value: str) -> None:
        self._exec(
            "INSERT INTO personas_cursors (name, value, updated) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            (name, value, self.clock()),
        )

    def first_delivery(self, signature: str) -> bool:
        """Remember a delivery's signature; False when it was seen before (a replay)."""
        return bool(
            self._exec(
                "INSERT INTO personas_deliveries (signature, received) VALUES (?, ?) "
                "ON CONFLICT (signature) DO NOTHING",
                (signature, self.clock()),
            )
        )

    def forget_deliveries(self, older_than: float) -> int:
        """Drop delivery signatures older than ``older_than`` (outside the timestamp window they cannot replay)."""
        return self._exec("DELETE FROM personas_deliveries WHERE received < ?", (older_than,))
