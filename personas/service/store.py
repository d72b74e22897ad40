"""The durable record of unattended runs, trigger cursors and seen deliveries: SQLite or PostgreSQL.

One table of **runs** is the truth about every run the service starts: its persona, what started it
(``key``: ``event:<Klaviyo event id>`` for a webhook or a poll, ``schedule:<slot>`` for a cron slot,
``manual:<id>``), its LangGraph thread, status and error. ``(persona, key)`` is unique, so a second
delivery of an event, a poll that sees it again, or a second worker's scheduler finding the same
slot never makes a second run: :meth:`RunStore.create_run` answers with the run that exists.

Statuses: ``queued`` -> ``running`` -> ``done`` | ``partial`` (finished, but only in part, as its
graph's ``exit_code`` says: a sync with rows refused, a report with figures missing; the error says
what) | ``paused`` (waiting for approval) | ``failed`` (recorded with its error; ``personas runs
retry`` continues it from its checkpoint). A run
**refused** before it could start (its input cannot be kept or run: ``refused`` says why, naming the
field) is recorded ``failed`` and never queued again: no retry could run it.

On SQLite a queued or running run also has an **owner** and a **lease** (``owners.py``): the process
that queued or runs it holds it, renews the lease on a heartbeat thread, and lets its queued runs go
when it closes; another process on the same home takes a run over (:meth:`RunStore.adopt`) only when
its owner is gone, and :meth:`RunStore.claim` runs a run only from ``queued``, so two processes never
run one run at once. An owner's updates of its runs (:meth:`RunStore.finish`, the heartbeat's
:meth:`RunStore.renew`, letting go on close) change a run only while it still holds it: one starved
past its lease, whose run was taken over, records nothing over the new owner's result. On
PostgreSQL the queue (procrastinate) and an advisory lock do that instead.

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

import contextlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from klaviyo_toolkit.redact import clip
from personas.kernel.config import Config
from personas.kernel.errors import UsageProblem
from personas.kernel.privacy import private_file, redact_state

from .owners import LEASE, Owner, gone_reason

__all__ = ["STATUSES", "Run", "RunStore"]

log = logging.getLogger("personas.service")

STATUSES = ("queued", "running", "done", "partial", "paused", "failed")

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
    owner TEXT,
    lease {real},
    refused TEXT,
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
    "created, updated, owner, lease, refused"
)
#: Columns added after the first release, for a store made before them: name -> type.
_ADDED = {"owner": "TEXT", "lease": "{real}", "refused": "TEXT"}


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
    owner: str | None = None  # SQLite: the token of the process that holds it (``owners.py``)
    lease: float | None = None  # SQLite: until when the owner holds it
    refused: str | None = None  # why it was refused before it started (naming the field): never retried

    @classmethod
    def from_row(cls, row: Any) -> Run:
        values = list(row)
        values[6] = json.loads(values[6] or "{}")
        return cls(*values)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _COLUMNS.replace(" ", "").split(",") if k != "input"}


def no_run(run_id: str) -> UsageProblem:
    """The refusal of an id no run has: the id quoted by its first 100 characters (a pasted blob is
    not echoed whole), and where to find the runs there are."""
    return UsageProblem(f"no run {clip(run_id, 100)!r}; see `personas runs`")


class RunStore:
    """Runs, cursors and seen deliveries in one database (see the module docstring).

    Args:
        conn: an open DB-API connection (sqlite3, or psycopg in autocommit mode).
        dialect: ``"sqlite"`` or ``"postgres"``.
        clock: seconds since the epoch (injected in tests); leases are on it too.
        lease: seconds an owner holds a run between heartbeats (SQLite; ``owners.LEASE``).
        owner: who this store holds runs as (SQLite; default: this process, ``Owner.here()``).
    """

    def __init__(
        self,
        conn: Any,
        dialect: str,
        clock: Any = time.time,
        *,
        pool: Any = None,
        url: str = "",
        lease: float = LEASE,
        owner: Owner | None = None,
    ) -> None:
        self.conn = conn
        self.url = url  # PostgreSQL: where a run's lock connection goes (see `running`)
        self.pool = pool  # PostgreSQL: concurrent requests each take a connection of their own
        self.dialect = dialect
        self.clock = clock
        self.me = owner or Owner.here()  # SQLite: the runs this store holds carry its token
        self.lease = lease
        self._lock = threading.RLock()
        self._heartbeat: threading.Thread | None = None
        self._closing = threading.Event()
        real = "DOUBLE PRECISION" if dialect == "postgres" else "REAL"
        with self._cursor() as cur:
            for statement in _SCHEMA.format(real=real).split(";"):
                if statement.strip():
                    cur.execute(statement)
            if dialect == "postgres":
                for name, kind in _ADDED.items():
                    cur.execute(f"ALTER TABLE personas_runs ADD COLUMN IF NOT EXISTS {name} {kind.format(real=real)}")
            else:
                have = {row[1] for row in cur.execute("PRAGMA table_info(personas_runs)").fetchall()}
                for name, kind in _ADDED.items():
                    if name not in have:
                        cur.execute(f"ALTER TABLE personas_runs ADD COLUMN {name} {kind.format(real=real)}")

    # -- opening -----------------------------------------------------------------------------------
    @classmethod
    def open(cls, config: Config, clock: Any = time.time, *, patience: float = 30.0) -> RunStore:
        """PostgreSQL when the config has a database URL, else ``<home>/service.sqlite``; ``patience``:
        how long a request rides out a PostgreSQL outage (``pg_pool.ResilientPool``)."""
        if config.database_url:
            return cls.postgres(config.database_url, clock=clock, patience=patience)
        return cls.sqlite(config.path("service.sqlite"), clock=clock)

    @classmethod
    def sqlite(cls, path: Path | str, clock: Any = time.time, *, owner: Owner | None = None) -> RunStore:
        target = private_file(Path(path))
        conn = sqlite3.connect(str(target), check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return cls(conn, "sqlite", clock, owner=owner)

    @classmethod
    def postgres(cls, url: str, clock: Any = time.time, *, patience: float = 30.0) -> RunStore:
        from .pg_pool import ResilientPool
        from .postgres import connect, setup_lock

        with setup_lock(url):
            conn = connect(url)
            # none left dead by an outage (check), nor a caller kept waiting through one (ResilientPool)
            pool = ResilientPool(url, min_size=1, max_size=8, kwargs={"autocommit": True}, open=True,
                                 check=ResilientPool.check_connection, patience=patience)
            return cls(conn, "postgres", clock, pool=pool, url=url)

    def close(self) -> None:
        """Stop the heartbeat, let go of the runs this store holds (queued ones, and any still marked
        running: another process, or the next start, takes them at once), and close.

        A process that stops without waiting for its runs in progress does not close its store: they
        stay held until it has ended (``owners.py``)."""
        self._closing.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=30)
            with contextlib.suppress(sqlite3.Error):
                self._exec(
                    "UPDATE personas_runs SET owner = NULL, lease = NULL "
                    "WHERE owner = ? AND status IN ('queued', 'running')",
                    (self.me.token,),
                )
        self.conn.close()
        if self.pool is not None:
            self.pool.close()

    # -- owners (SQLite) ---------------------------------------------------------------------------
    def _held(self) -> tuple[str | None, float | None]:
        """The (token, lease) a run this store records or takes gets; starts the heartbeat (SQLite)."""
        if self.dialect != "sqlite":
            return None, None
        if self._heartbeat is None:
            with self._lock:
                if self._heartbeat is None:
                    self._heartbeat = threading.Thread(target=self._beat, name="personas-lease", daemon=True)
                    self._heartbeat.start()
        return self.me.token, self.clock() + self.lease

    def _beat(self) -> None:
        while not self._closing.wait(self.lease / 4):
            with contextlib.suppress(sqlite3.Error):  # busy for a moment: the next beat, well inside the lease
                self.renew()

    def renew(self) -> int:
        """Extend the lease of every run this store holds (the heartbeat does it); how many."""
        return self._exec(
            "UPDATE personas_runs SET lease = ? WHERE owner = ? AND status IN ('queued', 'running')",
            (self.clock() + self.lease, self.me.token),
        )

    def gone(self, run: Run) -> str | None:
        """Why ``run``'s owner is gone (it may be taken over), or None while one holds it (SQLite;
        ``owners.gone_reason``). Always None for a settled run, and on PostgreSQL."""
        if self.dialect != "sqlite" or run.status not in ("queued", "running"):
            return None
        return gone_reason(run.worker, run.owner, run.lease, now=self.clock(), me=self.me)

    def adopt(self) -> list[Run]:
        """Take over every queued or running run whose owner is gone (SQLite), oldest first: each is
        queued again, held by this store, to be run from its checkpoint; the runs taken."""
        taken = []
        for run in self.unfinished():
            if not self.gone(run):
                continue
            token, lease = self._held()
            changed = self._exec(  # only if no one took it or renewed it since it was read
                "UPDATE personas_runs SET status = 'queued', worker = ?, owner = ?, lease = ?, updated = ? "
                "WHERE id = ? AND status = ? AND owner IS ? AND lease IS ?",
                (self.me.worker, token, lease, self.clock(), run.id, run.status, run.owner, run.lease),
            )
            if changed:
                taken.append(run)
        return taken

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
        error: str | None = None,
        refused: str | None = None,
    ) -> tuple[Run, bool]:
        """Record a run for ``(persona, key)`` unless one exists; (the run, whether it is new). A run
        refused before it could start is recorded ``failed`` with its ``error`` and why it was
        ``refused`` (naming the field): :meth:`requeue` never queues it again. The input is kept
        redacted, as its checkpoint is (a key in an event's property never reaches the file); the run
        starts from that copy, so its first attempt sees what a retry from the checkpoint sees."""
        now = self.clock()
        rid = uuid.uuid4().hex[:16]
        thread = f"{persona}-{trigger}-{rid}"
        token, lease = self._held() if status in ("queued", "running") else (None, None)
        worker = self.me.worker if token else None
        row = self._one(
            f"INSERT INTO personas_runs ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,0,?,NULL,?,?,?,?,?,?) "
            f"ON CONFLICT (persona, key) DO NOTHING RETURNING {_COLUMNS}",
            (rid, persona, key, trigger, thread, status, json.dumps(redact_state(input)), scheduled_for, error,
             worker, now, now, token, lease, refused),
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
        """Mark a run as running by ``worker``; None if it is settled, or (SQLite) not queued.

        PostgreSQL: a ``running`` run is claimable again because only the queue hands a run out: when
        it does so a second time, the worker that had it died (or the advisory lock of
        :meth:`running` waited for it to end), and the run continues from its checkpoint.
        SQLite: only a queued run is claimed (the first claim wins); a run left running by a process
        that is gone is queued again by :meth:`adopt` first, never taken from a live one.
        """
        token, lease = self._held()
        claimable = "('queued')" if self.dialect == "sqlite" else "('queued', 'running')"
        changed = self._exec(
            "UPDATE personas_runs SET status = 'running', attempts = attempts + 1, worker = ?, updated = ?, "
            f"owner = ?, lease = ? WHERE id = ? AND status IN {claimable}",
            (worker or self.me.worker, self.clock(), token, lease, run_id),
        )
        return self.get(run_id) if changed else None

    @contextmanager
    def running(self, run_id: str) -> Iterator[None]:
        """Hold ``run_id`` while it runs: on PostgreSQL a session advisory lock on a connection of its own.

        The queue's stalled-job recovery judges a worker by its heartbeat, and a live worker starved of
        CPU can miss it: its job is then handed out again while the run is still going. The lock fences
        that: the second worker waits here until the first one ends (then finds the run settled) or dies
        (its connection closes, the lock goes with it, and the run continues from its checkpoint). On
        SQLite :meth:`claim` takes only a queued run, so a second process never starts one that runs.
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

    def finish(self, run_id: str, status: str, *, error: str | None = None, outcome: str | None = None) -> bool:
        """Record how a run ended (``done``, ``paused`` or ``failed``); whether it was recorded.

        SQLite: only while this store still holds the run (its token is the run's ``owner``, checked in
        the UPDATE itself). An owner starved past its lease may have had the run taken over
        (:meth:`adopt`); its late result is not written over the new owner's: False, and one warning
        line saying so. PostgreSQL fences runs with an advisory lock instead (:meth:`running`).
        """
        if status not in STATUSES:
            raise ValueError(f"status {status!r}: use one of {', '.join(STATUSES)}")
        held = self.dialect == "sqlite"
        changed = self._exec(
            "UPDATE personas_runs SET status = ?, error = ?, outcome = ?, updated = ? WHERE id = ?"
            + (" AND owner = ?" if held else ""),
            (status, error, outcome, self.clock(), run_id, *((self.me.token,) if held else ())),
        )
        if changed or not held:
            return bool(changed)
        now = self.get(run_id)
        if now is not None:
            log.warning(
                "run %s of %s: this process (%s) no longer holds it, %s does (taken over after this one's lease "
                "ran out); this process's result (%s) is not recorded over it",
                run_id, now.persona, self.me.worker, now.worker or "no process", status,
            )
        return False

    def requeue(self, run_id: str) -> Run | None:
        """Put a failed (or paused-and-answered) run back in the queue; None if it is not failed or paused,
        or was refused before it started (no retry could run it)."""
        token, lease = self._held()  # SQLite: the process that queues it again holds it
        changed = self._exec(
            "UPDATE personas_runs SET status = 'queued', error = NULL, updated = ?, worker = COALESCE(?, worker), "
            "owner = ?, lease = ? WHERE id = ? AND status IN ('failed', 'paused') AND refused IS NULL",
            (self.clock(), self.me.worker if token else None, token, lease, run_id),
        )
        return self.get(run_id) if changed else None

    def unfinished(self) -> list[Run]:
        """Queued and running runs, oldest first (SQLite: whoever holds them; see :meth:`adopt`)."""
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

    def delivery_seen(self, signature: str) -> bool:
        """Whether a delivery with this signature was taken (its runs recorded and queued) before."""
        return self._one("SELECT 1 FROM personas_deliveries WHERE signature = ?", (signature,)) is not None

    def first_delivery(self, signature: str) -> bool:
        """Remember a delivery's signature once its runs are recorded and queued; False when it was
        remembered before (the same delivery taken twice at once)."""
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
