"""One process at a time answers a thread's pending approvals: a lock per thread, on this machine.

Two ``personas run --resume approve`` of one paused run started together (a double-click, a retried
script, a worker and a terminal) each read the same pause from the checkpoint and each resumed it,
so one approval sent its request twice. :class:`~personas.runtime.driver.RunDriver` holds this
lock while it resumes, and reads what is pending only once it holds it: the second comes after
the first has moved the run on, and finds nothing to answer ("not waiting for an approval").

The lock is ``flock`` on ``$PERSONAS_HOME/locks/<thread>.lock`` (the toolkit's
:func:`~klaviyo_toolkit._files.exclusive_lock`), so it covers the processes sharing a state folder
on one machine; a LangGraph Server runs one run per thread at a time itself.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from klaviyo_toolkit._files import _open_lock, exclusive_lock
from personas.kernel.context import thread_key

__all__ = ["athread_lock", "exclusive_lock", "thread_lock_path"]


def thread_lock_path(home: Path, thread_id: str) -> Path:
    """The lock file of ``thread_id`` in the state folder ``home``."""
    return home / "locks" / f"{thread_key(thread_id)}.lock"


@asynccontextmanager
async def athread_lock(path: Path) -> AsyncIterator[None]:
    """:func:`exclusive_lock` for async code: waits without blocking the event loop."""
    fd = _open_lock(path)  # None without flock, or in a read-only state folder: nothing to resume there anyway
    if fd is None:
        yield
        return
    import fcntl

    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
