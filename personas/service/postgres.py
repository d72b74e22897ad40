"""PostgreSQL for scale-out (``PERSONAS_DATABASE_URL``): connections and LangGraph checkpoints.

Every worker process opens its own connections; nothing is shared but the database. Checkpoints use
``langgraph-checkpoint-postgres`` (``PostgresSaver`` over a connection pool, behind the same
redacting serializer as the SQLite checkpointer, so no secret reaches a checkpoint).

A URL that cannot be reached fails with one line naming ``PERSONAS_DATABASE_URL`` and never prints
the password.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
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
    """A ``PostgresSaver`` on a pool of ``max_size`` connections, its tables set up."""
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    connect(url).close()  # the clear error, before the pool retries in the background
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=True,
        check=ConnectionPool.check_connection,  # a connection a database restart ended is replaced, not used
    )
    saver = PostgresSaver(pool)  # type: ignore[arg-type]
    with setup_lock(url):
        saver.setup()
    return PostgresSaver(pool, serde=RedactingSerde(saver.serde))  # type: ignore[arg-type]
