"""One log line per database outage state change for the unattended commands (``worker``, ``watch``).

While PostgreSQL is away, psycopg_pool logs a warning at every attempt to connect again (``error
connecting in 'pool-3': ...``) and procrastinate an error with a full traceback for each side task
the outage stops (``Side task listener failed ...``, ``listener error: ...``): a 10 s restart made
about twenty such entries, which operators read as a crash. :class:`OutageLog` turns them into one
line when the database goes away (with its first reason), a reminder every :data:`REMIND_EVERY`
seconds while it stays away, and one line when it answers again (:meth:`OutageLog.back`).

Only records caused by a failed connection are folded (a ``psycopg.OperationalError`` anywhere in the
exception's chain); any other error in those loggers is let through with its traceback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from klaviyo_toolkit.redact import clip, redact_text

__all__ = ["LOGGERS", "REMIND_EVERY", "OutageLog", "connection_failure"]

#: The loggers whose outage noise is folded (procrastinate's side tasks, psycopg_pool's reconnections,
#: psycopg's "error ignored terminating <Pipeline>: the connection is lost").
LOGGERS = ("psycopg", "psycopg.pool", "procrastinate.worker", "procrastinate.worker.worker", "procrastinate.utils")
#: Seconds between reminders that the database is still away.
REMIND_EVERY = 600.0

log = logging.getLogger("personas.service")


def connection_failure(exc: BaseException | None) -> str | None:
    """The first line of the connection error behind ``exc`` (its cause and context followed), if any:
    a ``psycopg.OperationalError`` for a lost connection, or the audit log's own error for one
    (``AuditDatabaseError``). Other database errors (a deadlock, a statement timeout) are not outages."""
    import psycopg

    from klaviyo_toolkit.audit_postgres import AuditDatabaseError

    seen: set[int] = set()
    audit = None
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, psycopg.OperationalError) and _lost(exc, psycopg.OperationalError):
            return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, AuditDatabaseError) and audit is None:
            audit = str(exc)
        exc = exc.__cause__ or exc.__context__
    return audit


def _lost(exc: Any, base: type) -> bool:
    """A connection that failed or was ended (not a deadlock, a timeout or another statement's error)."""
    state = getattr(exc, "sqlstate", None) or ""
    return type(exc) is base or state.startswith("08") or state in ("57P01", "57P02", "57P03")


class OutageLog(logging.Filter):
    """A filter on :data:`LOGGERS` (see the module docstring); ``who`` starts each line, ``where`` names
    the database (without its password), ``then`` says what the command does meanwhile; ``say`` writes a
    line (a warning of the ``personas.service`` logger unless given)."""

    def __init__(self, who: str, where: str, then: str, *, say: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.who, self.where, self.then, self.clock = who, where, then, clock
        self.say = say or log.warning
        self.reason: str | None = None
        self._since = self._said = 0.0
        self._lock = threading.Lock()  # the pools' threads and the command's loop report at once

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None and isinstance(record.args, tuple):  # psycopg's: "error connecting in %r: %s"
            exc = next((a for a in record.args if isinstance(a, BaseException)), None)
        why = connection_failure(exc)
        if why is None:
            return True  # not an outage: shown as it is
        self.away(why)
        return False

    def away(self, why: str) -> None:
        """The database did not answer (``why``): a line when that is news, then every REMIND_EVERY s."""
        why = clip(" ".join(redact_text(why).split()), 300)  # a reason never carries a password or a key
        with self._lock:
            now = self.clock()
            if self.reason is None:
                self._since = now
                self.say(f"{self.who}: the database at {self.where} is unreachable ({why}); {self.then}")
            elif now - self._said >= REMIND_EVERY:
                self.say(f"{self.who}: the database at {self.where} is still unreachable after "
                         f"{now - self._since:.0f} s ({why})")
            else:
                return
            self.reason, self._said = why, now

    def back(self, then: str = "") -> None:
        """The database answers again: one line if it was away, ending with ``then`` when given."""
        with self._lock:
            if self.reason is not None:
                self.say(f"{self.who}: the database at {self.where} answers again after "
                         f"{self.clock() - self._since:.0f} s" + (f"; {then}" if then else ""))
            self.reason = None

    def __enter__(self) -> OutageLog:
        for name in LOGGERS:
            logging.getLogger(name).addFilter(self)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | Any) -> None:
        for name in LOGGERS:
            logging.getLogger(name).removeFilter(self)
