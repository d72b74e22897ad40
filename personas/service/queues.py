"""Where recorded runs wait for a worker: procrastinate on PostgreSQL, or threads of one process.

- :class:`ProcrastinateQueue` (``PERSONAS_DATABASE_URL`` set): a run is a procrastinate job
  (``personas.run``, queueing lock and lock = the run id, so a run is queued once and run by one
  worker at a time); ``personas worker`` processes run them; any number of them, on any machines.
- :class:`LocalQueue` (the embedded default, SQLite): a small thread pool inside ``personas serve``.
  The run store is the durable part: runs still queued or running when the process stopped are
  picked up again when it starts (:meth:`LocalQueue.recover`); each run continues from its checkpoint.

Both have ``enqueue(run_id)`` (sync) and ``enqueue_async(run_id)``.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from .service import Service

__all__ = ["LocalQueue", "ProcrastinateQueue", "Queue"]


class Queue(Protocol):
    def enqueue(self, run_id: str) -> None: ...

    async def enqueue_async(self, run_id: str) -> None: ...


class LocalQueue:
    """Runs recorded runs on ``workers`` threads of this process (see the module docstring)."""

    def __init__(self, service: Service, workers: int = 2) -> None:
        self.service = service
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="personas-run")
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        self.futures: list[Future[Any]] = []

    def enqueue(self, run_id: str) -> None:
        with self._lock:
            if run_id in self._inflight:
                return
            self._inflight.add(run_id)
        self.futures.append(self._pool.submit(self._run, run_id))

    async def enqueue_async(self, run_id: str) -> None:
        self.enqueue(run_id)

    def _run(self, run_id: str) -> None:
        try:
            self.service.execute(run_id)
        finally:
            with self._lock:
                self._inflight.discard(run_id)

    def recover(self) -> int:
        """Queue again every run left queued or running (the process stopped); how many."""
        runs = self.service.store.unfinished()
        for run in runs:
            self.enqueue(run.id)
        return len(runs)

    def drain(self, timeout: float | None = None) -> None:
        """Wait until every run queued so far has ended (tests, shutdown)."""
        while True:
            pending = [f for f in self.futures if not f.done()]
            if not pending:
                return
            for f in pending:
                f.result(timeout=timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


class ProcrastinateQueue:
    """Defers ``personas.run`` jobs with procrastinate (see ``tasks.py``)."""

    def __init__(self, app: Any) -> None:
        from .tasks import RUN_TASK

        self.app = app
        self.task = app.tasks[RUN_TASK]

    def enqueue(self, run_id: str) -> None:
        from procrastinate.exceptions import AlreadyEnqueued

        try:
            self.task.configure(queueing_lock=run_id, lock=run_id).defer(run_id=run_id)
        except AlreadyEnqueued:  # queued already and not started: nothing to add
            pass

    async def enqueue_async(self, run_id: str) -> None:
        from procrastinate.exceptions import AlreadyEnqueued

        try:
            await self.task.configure(queueing_lock=run_id, lock=run_id).defer_async(run_id=run_id)
        except AlreadyEnqueued:
            pass

    def depth(self) -> int:
        return len(self.app.job_manager.list_jobs(task=self.task.name, status="todo"))


async def run_sync(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` on a thread (runs are synchronous; the worker's loop stays free)."""
    return await asyncio.to_thread(fn, *args)
