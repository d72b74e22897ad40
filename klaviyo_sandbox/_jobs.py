"""Work the sandbox does later, on its clock: bulk jobs, writes applied asynchronously, deliveries.

Two kinds of pending work share one queue, ordered by when each is due:

- **bulk jobs**: ``*-job`` resources with Klaviyo's job attributes (status, counts, timestamps),
  due ``seconds`` after they were made plus a millisecond per item. The runner is looked up by the
  operation that made the job, then by its type; one raising ``SandboxError`` cancels the job with
  that error, otherwise it completes. An operation that allows only so many of its jobs pending at
  once (``max_pending``: "Max number of jobs queued at once we allow for is 100") refuses one more
  with a 400 until one has run.
- **deferred work** (``defer``): a payload for a named runner, due at a given time, stored as a
  ``sandbox-deferred`` resource (never served by the API) and deleted once run. The pipeline defers
  the writes Klaviyo applies asynchronously; the deliveries domain defers message deliveries and
  the engagement that follows them.

``tick`` runs what is due (before every request, on ``POST /sandbox/tick`` and ``Sandbox.tick()``),
each as of the time it came due (a job due between two requests is dated when it was due, not when
the next request came);
``settle`` runs everything as if time had passed, except deferred work marked ``settles=False``
whose time has not come (a message scheduled for next week stays scheduled). Runners are called
with the context given (the sandbox's ``Services``) and may queue more work: both loop until
nothing more is due.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from klaviyo_toolkit.clock import Clock

from ._jsonapi import SandboxError, bad_request, iso
from ._store import RelValue, Resource, Store

C = TypeVar("C")
#: ``(context, job) -> None``: applies a due job (sets its counts; raise SandboxError to cancel it).
JobRunner = Callable[[C, Resource], None]
#: The type of deferred work (never a Klaviyo resource type, so no route serves it).
DEFERRED = "sandbox-deferred"
_PENDING = ("queued", "processing")
#: Runs in one tick or settle at most (work that keeps making more work still ends).
_MAX_RUNS = 1_000_000


class Jobs(Generic[C]):
    """The bulk jobs and deferred work of one store, and the runners that apply them."""

    def __init__(
        self, store: Store, clock: Clock, seconds: float, runners: Mapping[str, JobRunner[C]] | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        #: Base time a job takes to become due (plus 1 ms per item).
        self.seconds = seconds
        self._runners: dict[str, JobRunner[C]] = dict(runners or {})
        self._queue: list[tuple[float, int, str, str]] | None = None
        self._order = itertools.count()

    def add_runner(self, name: str, runner: JobRunner[C]) -> None:
        """Run deferred work named ``name`` with ``runner`` (for runners that are not a domain's)."""
        self._runners[name] = runner

    # -- making work -----------------------------------------------------------------------
    def create(
        self,
        job_type: str,
        *,
        body: Any,
        operation: str,
        relationships: Mapping[str, RelValue] | None = None,
        rid: str | None = None,
        max_pending: int | None = None,
    ) -> Resource:
        """A queued job of ``job_type`` for the request ``body`` of ``operation``, stored now; a 400 when
        ``max_pending`` jobs of ``operation`` are pending (queued or processing) already."""
        if max_pending is not None:
            pending = sum(
                1
                for job in self._store.iter(job_type)
                if job.private.get("operation") == operation and job.attributes.get("status") in _PENDING
            )
            if pending >= max_pending:
                raise bad_request(
                    f"{operation} allows at most {max_pending} jobs queued or in progress at once, and "
                    f"{pending} are; wait for one to complete (its status) before creating another.",
                    pointer="/data",
                )
        total = _count_items(body)
        now = self._clock.time()
        job = Resource(
            job_type,
            rid or self._store.new_id(job_type, now),
            {
                "status": "queued",
                "created_at": iso(now),
                "total_count": total,
                "completed_count": 0,
                "failed_count": 0,
                "completed_at": None,
                "expires_at": None,
                "started_at": None,
            },
            dict(relationships or {}),
            now,
            now,
            {"body": body, "due": now + self.seconds + 0.001 * total, "operation": operation},
        )
        self._store.put(job)
        self.track(job)
        return job

    def track(self, job: Resource) -> None:
        """Queue a job resource stored by other means (its ``private["due"]`` says when)."""
        if self._queue is not None:
            heapq.heappush(self._queue, (float(job.private.get("due", 0)), next(self._order), job.type, job.id))

    def defer(self, runner: str, payload: Any, due: float, *, settles: bool = True) -> Resource:
        """Run ``runner`` with ``payload`` once the clock reaches ``due`` (see module docstring)."""
        seq = int(self._store.value("deferred_seq", 0)) + 1
        self._store.set_value("deferred_seq", seq)
        now = self._clock.time()
        item = Resource(
            DEFERRED, f"d{seq:09d}", {}, {}, now, now, {"runner": runner, "payload": payload, "due": due,
                                                        "settles": settles},
        )
        self._store.put(item)
        self.track(item)
        return item

    def pending(self, runner: str | None = None) -> int:
        """Deferred work not run yet (of ``runner``, or all)."""
        return sum(1 for item in self._store.iter(DEFERRED) if runner is None or item.private.get("runner") == runner)

    # -- running it --------------------------------------------------------------------------
    def tick(self, context_at: Callable[[float], C]) -> None:
        """Run every job and piece of deferred work that is due, each with ``context_at(its due time)``."""
        self._drain(context_at, settle=False)

    def settle(self, context_at: Callable[[float], C]) -> None:
        """Run everything pending as if time had passed (see module docstring)."""
        self._drain(context_at, settle=True)

    def run(self, context: C, job: Resource, at: float | None = None) -> None:
        """Apply one job now, whether due or not (``at``: when it ran, for its timestamps; now if None)."""
        ran = self._clock.time() if at is None else at
        if job.type == DEFERRED:
            self._store.delete(DEFERRED, job.id)
            runner = self._runners.get(str(job.private.get("runner")))
            if runner is not None:
                runner(context, job)
            return
        runner = self._runners.get(job.private.get("operation", "")) or self._runners.get(job.type)
        job.attributes["started_at"] = job.attributes.get("started_at") or iso(ran)
        try:
            if runner is not None:
                runner(context, job)
            job.attributes.setdefault("completed_count", job.attributes.get("total_count", 0))
            if (
                job.attributes.get("completed_count", 0) == 0
                and not job.attributes.get("failed_count")
                and not job.attributes.get("skipped_count")
            ):
                job.attributes["completed_count"] = job.attributes.get("total_count", 0)
            job.attributes["status"] = "complete"
        except SandboxError as exc:
            job.attributes["status"] = "cancelled"
            job.private["errors"] = [exc.body()["errors"][0]]
            job.attributes["failed_count"] = job.attributes.get("total_count", 0)
        job.attributes["completed_at"] = iso(ran)
        self._store.put(job)

    def forget(self) -> None:
        """Drop the in-memory queue (after the store was cleared); it is rebuilt from the store."""
        self._queue = None

    def _drain(self, context_at: Callable[[float], C], *, settle: bool) -> None:
        queue = self._index()
        held: list[tuple[float, int, str, str]] = []
        for _ in range(_MAX_RUNS):
            if not queue:
                break
            entry = heapq.heappop(queue)
            item = self._store.get(entry[2], entry[3])
            if item is None or (item.type != DEFERRED and item.attributes.get("status") not in _PENDING):
                continue  # already run, cancelled or deleted
            if float(item.private.get("due", 0)) != entry[0]:
                self.track(item)  # its time was changed: queue it again at the new one
                continue
            now = self._clock.time()
            if entry[0] > now:
                if not settle:
                    held.append(entry)  # the queue is in time order: nothing later is due either
                    break
                if item.type == DEFERRED and not item.private.get("settles", True):
                    held.append(entry)  # a delivery whose time has not come stays scheduled
                    continue
            at = min(entry[0], now)  # as of when it came due (settled early: now)
            self.run(context_at(at), item, at)
        for entry in held:
            heapq.heappush(queue, entry)

    def _index(self) -> list[tuple[float, int, str, str]]:
        if self._queue is None:
            queue: list[tuple[float, int, str, str]] = []
            for rtype in self._store.types():
                if not (rtype.endswith("-job") or rtype == DEFERRED):
                    continue
                for item in self._store.iter(rtype):
                    if item.type == DEFERRED or item.attributes.get("status") in _PENDING:
                        queue.append((float(item.private.get("due", 0)), next(self._order), item.type, item.id))
            heapq.heapify(queue)
            self._queue = queue
        return self._queue


def _count_items(body: Any) -> int:
    """Items in a bulk request: its collection of resources (``data.attributes.<name>.data``, as every
    bulk job's body holds them). Only when it has none, the longest list found anywhere in the body:
    a list inside an item (a catalog item's ``image_urls``, a profile property) or the job's
    ``relationships`` (the lists an import adds to) is not a count of items."""
    data = body.get("data") if isinstance(body, dict) else None
    attrs = data.get("attributes") if isinstance(data, dict) else None
    collections = [
        len(value["data"])
        for value in (attrs.values() if isinstance(attrs, dict) else ())
        if isinstance(value, dict) and isinstance(value.get("data"), list)
    ]
    if collections:
        return max(collections)
    best = 0

    def walk(node: Any) -> None:
        nonlocal best
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            best = max(best, len(node))
            for value in node:
                walk(value)

    walk(body)
    return best
