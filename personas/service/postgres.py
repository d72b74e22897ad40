"""PostgreSQL for scale-out (``PERSONAS_DATABASE_URL``): connections and LangGraph checkpoints.

Every worker process opens its own connections; nothing is shared but the database. Checkpoints use
``langgraph-checkpoint-postgres`` (``PostgresSaver``, with each write made one statement in
``pg_saver.py``) over a connection pool, behind the same redacting serializer as the SQLite
checkpointer, so no secret reaches a checkpoint.

A URL that cannot be reached fails with one line naming ``PERSONAS_DATABASE_URL`` and never prints
the password.
"""

from __future__ import annotations

import contextlib
import hashlib
import select
import time
import weakref
from collections.abc import Iterator
from typing import Any

from personas.kernel.config import without_credentials
from personas.kernel.errors import UsageProblem
from personas.kernel.privacy import RedactingSerde

__all__ = [
    "SETUP_LOCK", "advisory_lock", "answers", "checkpointer", "connect", "describe", "lock_key", "setup_lock",
]

#: The advisory lock that serialises schema set-up between processes starting at once.
SETUP_LOCK = 74210913


def describe(url: str) -> str:
    """The URL for messages: without its password."""
    return without_credentials(url)


def connect(url: str) -> Any:
    """An autocommit psycopg connection to ``url``; a clear UsageProblem when it cannot be had."""
    try:
        import psycopg
    except ImportError:
        raise UsageProblem(
            "PERSONAS_DATABASE_URL is set but psycopg is not installed; pip install 'klaviyo-personas[server]'"
        ) from None
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or ["no answer"])[0]
        raise UsageProblem(
            f"PERSONAS_DATABASE_URL: cannot connect to {describe(url)} ({first}); "
            "check the URL, or unset it to keep state in SQLite"
        ) from None


def answers(url: str) -> bool:
    """Whether the database at ``url`` takes a connection and answers a query now."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextlib.contextmanager
def advisory_lock(url: str, key: int, *, poll: float = 0.05) -> Iterator[Any]:
    """Hold a session advisory lock on a connection of its own until the block ends (or the process dies).

    It waits by polling ``pg_try_advisory_lock``, never inside one long ``pg_advisory_lock`` statement:
    a waiting statement holds a snapshot, and ``CREATE INDEX CONCURRENTLY`` (run by the checkpointer's
    set-up, under the lock) waits for every such snapshot to end; the holder would wait for the waiter
    and the waiter for the holder, through two connections PostgreSQL cannot see as one deadlock.
    """
    conn = connect(url)
    try:
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            time.sleep(poll)
        yield conn
    finally:
        conn.close()  # releases the lock


def setup_lock(url: str) -> contextlib.AbstractContextManager[Any]:
    """Hold the set-up lock (``CREATE TABLE IF NOT EXISTS`` races between processes otherwise)."""
    return advisory_lock(url, SETUP_LOCK)


def checkpointer(url: str, *, max_size: int = 8) -> Any:
    """A ``PostgresCheckpointSaver`` (``pg_saver.py``: one statement per checkpoint write) on a pool of
    ``max_size`` connections, its tables set up."""
    from psycopg.rows import dict_row

    from .pg_pool import ResilientPool
    from .pg_saver import PostgresCheckpointSaver

    connect(url).close()  # the clear error, before the pool retries in the background
    recency = _Recency()
    pool = ResilientPool(  # a checkpoint write during a restart waits seconds, not the pool's back-off
        url,
        min_size=1,
        max_size=max_size,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=True,
        check=recency.check,  # a connection a database restart ended is replaced, not used
    )  # no `reset`: with one, the pool takes every connection back on its worker thread, and the next
    # request waits for that thread (about 0.1 ms of each checkpoint read and write, measured)
    saver = PostgresCheckpointSaver(pool)  # type: ignore[arg-type]
    with setup_lock(url):
        saver.setup()
    return PostgresCheckpointSaver(pool, serde=RedactingSerde(saver.serde))  # type: ignore[arg-type]


#: A pooled connection idle longer than this is checked with a round trip before it is handed out.
CHECK_IDLE_AFTER = 5.0


class _Recency:
    """The pool's ``check``: a round trip (``check_connection``) only for a connection that may be dead.

    The checkpointer takes a connection from the pool for every read and write, so checking each with
    a query doubled the round trips of every checkpoint. A connection the server ended (a restart,
    ``pg_terminate_backend``) or whose socket closed has something to read while it is idle (the
    server's last message, or the end of the stream); one handed out moments ago, so idle since for
    no longer, with nothing to read is as alive as a check could show. So the round trip is made when
    the socket has something to read, the connection is not OK, or it was handed out longer than
    :data:`CHECK_IDLE_AFTER` ago (it may have been idle that long: a network cut that sent nothing);
    otherwise the connection is handed out as it is.
    """

    def __init__(self) -> None:
        self._handed_out: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def check(self, conn: Any) -> None:
        from psycopg.pq import ConnStatus
        from psycopg_pool import ConnectionPool

        at = self._handed_out.get(conn)
        fresh = at is not None and time.monotonic() - at < CHECK_IDLE_AFTER
        if not fresh or conn.closed or conn.pgconn.status != ConnStatus.OK or _readable(conn):
            ConnectionPool.check_connection(conn)
        self._handed_out[conn] = time.monotonic()


def _readable(conn: Any) -> bool:
    """Whether an idle connection's socket has something to read (the server spoke or hung up)."""
    try:
        ready, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)

