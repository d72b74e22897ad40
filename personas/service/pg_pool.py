"""A psycopg connection pool that does not keep its callers waiting through and after an outage.

After a database outage (a restart, a failover) psycopg_pool makes its connections again in the
background, with a growing pause between attempts (1 s, 2 s, 4 s, ... up to minutes); every caller
meanwhile waits for one, up to its 30 s timeout. So, measured on ``personas serve``: ``/healthz`` and
each webhook delivery took 30 s to answer while the database was away (past any load balancer's
check), and up to minutes more after it answered again; and a worker's run whose checkpoint write
came during a 20 s restart failed with ``PoolTimeout`` 10 s after the database was back.

:class:`ResilientPool` waits for a pooled connection for :data:`POOL_WAIT` seconds at most; then it
connects by itself (the same connection options), once a second for up to ``patience`` seconds, and
for :data:`POOL_AWAY` seconds more it connects by itself without waiting on the pool. The end of an
outage is then seen by the next connection; a worker (``patience`` 30 s) rides out a restart that
short, and a receiver (``patience`` 0) answers in seconds with the database's own error. It is only
imported with PostgreSQL (the ``[server]`` extra).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

__all__ = ["POOL_AWAY", "POOL_WAIT", "ResilientPool"]

#: Seconds a caller waits for a pooled connection before making one of its own.
POOL_WAIT = 2.0
#: Seconds after such a wait ran out during which callers connect by themselves at once.
POOL_AWAY = 15.0


class ResilientPool(ConnectionPool):
    """A ``ConnectionPool`` whose :meth:`connection` falls back to connections of its own for up to
    ``patience`` seconds (see the module docstring); everything else is psycopg_pool's."""

    def __init__(self, conninfo: str, *, patience: float = 30.0, **options: Any) -> None:
        super().__init__(conninfo, **options)
        self._direct: tuple[str, dict[str, Any]] = (conninfo, {"connect_timeout": 5, **(options.get("kwargs") or {})})
        self.patience = patience
        self._away_until = 0.0

    @contextlib.contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Any]:
        started = time.monotonic()
        with contextlib.ExitStack() as stack:
            conn = None
            if started >= self._away_until:
                try:
                    conn = stack.enter_context(super().connection(timeout=POOL_WAIT))
                except PoolTimeout:  # only the wait: an error inside the block is the caller's
                    self._away_until = time.monotonic() + POOL_AWAY
            if conn is None:
                conn = stack.enter_context(self._connect_directly(started))
            yield conn

    def _connect_directly(self, started: float) -> Any:
        """A connection of its own, tried once a second until ``patience`` s after ``started``."""
        conninfo, options = self._direct
        while True:
            try:
                return psycopg.connect(conninfo, **options)
            except psycopg.OperationalError:
                if time.monotonic() + 1.0 > started + self.patience:
                    raise
                time.sleep(1.0)
