"""Where recorded runs wait for a worker: procrastinate on PostgreSQL, or threads of one process.

- :class:`ProcrastinateQueue` (``PERSONAS_DATABASE_URL`` set): a run is a procrastinate job
  (``personas.run``, queueing lock and lock = the run id, so a run is queued once and run by one
  worker at a time); ``personas worker`` processes run them; any number of them, on any machines.
- :class:`LocalQueue` (the embedded default, SQLite): a few threads inside ``personas serve`` (or
  ``personas watch``). The run store is the durable part: the runs this process holds (``owners.py``)
  are in the store, and the runs of a process that is gone are taken over when one starts
  (:meth:`LocalQueue.recover`); each run continues from its checkpoint. Stopping
  (:meth:`LocalQueue.close`) waits only for the runs in progress: the waiting ones stay queued in the
  store for the next start.

Both have ``enqueue(run_id)`` (sync) and ``enqueue_async(run_id)``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import Any, Protocol

from klaviyo_toolkit.redact import clip

from .service import Service

__all__ = ["LocalQueue", "ProcrastinateQueue", "Queue", "listed_ids"]

log = logging.getLogger("personas.service")


class Queue(Protocol):
    def enqueue(self, run_id: str) -> None: ...

    async def enqueue_async(self, run_id: str) -> None: ...


def listed_ids(ids: list[str], most: int = 10) -> str:
    """Run ids for a log line: the first ``most`` of them, and how many more."""
    shown = ", ".join(ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


class LocalQueue:
    """Runs recorded runs on ``workers`` threads of this process (see the module docstring).

    The threads are daemon threads: a process told to stop without waiting (:meth:`abandon`) ends
    with its runs in progress, which stay ``running`` in the store, held by a process that has ended,
    and are continued from their checkpoints by the next start.
    """

    def __init__(self, service: Service, workers: int = 2) -> None:
        self.service = service
        self._cond = threading.Condition()
        self._waiting: deque[str] = deque()
        self._running: set[str] = set()
        self._closing = False
        self._abandoned = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"personas-run-{n}", daemon=True) for n in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    def enqueue(self, run_id: str) -> None:
        """Run ``run_id`` when a thread is free; a run waiting or running here already is not added."""
        with self._cond:
            if self._closing or run_id in self._running or run_id in self._waiting:
                return  # stopping: it stays queued in the store, for the next start
            self._waiting.append(run_id)
            self._cond.notify()

    async def enqueue_async(self, run_id: str) -> None:
        self.enqueue(run_id)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                run_id = self._waiting.popleft()
                self._running.add(run_id)
            try:
                self.service.execute(run_id)
            except Exception as exc:  # not the run's own failure (that is recorded): the store, say
                log.warning("run %s could not be run here (%s: %s); it stays in the store for the next start",
                            run_id, type(exc).__name__, clip(str(exc), 200))
            finally:
                with self._cond:
                    self._running.discard(run_id)
                    self._cond.notify_all()

    def recover(self) -> int:
        """Queue here every run whose owner is gone (a process that stopped or died, this home's
        earlier start among them; ``RunStore.adopt``); how many. Runs another live process holds
        are left to it."""
        runs = self.service.store.adopt()
        for run in runs:
            self.enqueue(run.id)
        return len(runs)

    def waiting(self) -> list[str]:
        """The runs queued here and not started yet, in order."""
        with self._cond:
            return list(self._waiting)

    def in_progress(self) -> list[str]:
        """The runs this queue's threads are running now."""
        with self._cond:
            return sorted(self._running)

    def drain(self, timeout: float | None = None) -> None:
        """Wait until every run queued so far has ended (tests, ``personas watch``); TimeoutError after
        ``timeout`` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: not self._waiting and not self._running, timeout):
                raise TimeoutError(f"runs still waiting or running after {timeout} s")

    def abandon(self) -> None:
        """Stop waiting for the runs in progress (a second Ctrl-C while :meth:`close` waits)."""
        self._abandoned.set()
        with self._cond:
            self._cond.notify_all()

    def close(self) -> list[str]:
        """Stop: the runs not started stay queued in the store (the next start takes them), the runs in
        progress are waited for unless :meth:`abandon` is called; each step is logged. The runs left
        in progress (abandoned), if any."""
        with self._cond:
            self._closing = True
            left = list(self._waiting)
            self._waiting.clear()
            running = sorted(self._running)
            self._cond.notify_all()
        if left:
            log.warning("stopping: %d run(s) not started stay queued for the next start: %s", len(left),
                        listed_ids(left))
        if running:
            log.warning(
                "stopping: waiting for %d run(s) in progress (%s); stop again (Ctrl-C) not to wait: they then "
                "show as stalled in `personas runs` and the next start continues each from its last checkpoint",
                len(running), listed_ids(running),
            )
        with self._cond:
            self._cond.wait_for(lambda: not self._running or self._abandoned.is_set())
            still = sorted(self._running)
        if still:
            log.warning("stopped without waiting for %d run(s) in progress (%s): the next start continues each "
                        "from its last checkpoint", len(still), listed_ids(still))
        elif running:
            log.warning("stopping: the %d run(s) in progress have ended", len(running))
        return still


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
