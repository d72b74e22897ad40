"""Bulk jobs: stored when requested, applied by their runner once due, on the sandbox's clock.

A job is a ``*-job`` resource with Klaviyo's job attributes (status, counts, timestamps). It is due
``seconds`` after it was made, plus a millisecond per item, and is applied the next time the sandbox
ticks (before every request, on ``POST /sandbox/tick`` and ``Sandbox.tick()``). The runner for a job
is looked up by the operation that made it, then by its type; it is called with the context given to
``tick`` (the sandbox's ``Services``). A runner raising ``SandboxError`` cancels the job with that
error; otherwise the job completes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from klaviyo_toolkit.clock import Clock

from ._jsonapi import SandboxError, iso
from ._store import RelValue, Resource, Store

C = TypeVar("C")
#: ``(context, job) -> None``: applies a due job (sets its counts; raise SandboxError to cancel it).
JobRunner = Callable[[C, Resource], None]


class Jobs(Generic[C]):
    """The bulk jobs of one store and the runners that apply them."""

    def __init__(
        self, store: Store, clock: Clock, seconds: float, runners: Mapping[str, JobRunner[C]] | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        #: Base time a job takes to become due (plus 1 ms per item).
        self.seconds = seconds
        self._runners: Mapping[str, JobRunner[C]] = dict(runners or {})

    def create(
        self, job_type: str, *, body: Any, operation: str, relationships: Mapping[str, RelValue] | None = None
    ) -> Resource:
        """A queued job of ``job_type`` for the request ``body`` of ``operation``, stored now."""
        total = _count_items(body)
        now = self._clock.time()
        job = Resource(
            job_type,
            self._store.new_id(job_type, now),
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
        return job

    def tick(self, context: C) -> None:
        """Apply every job that is due."""
        now = self._clock.time()
        for rtype in self._store.types():
            if not rtype.endswith("-job"):
                continue
            for job in self._store.iter(rtype):
                if job.attributes.get("status") in ("queued", "processing") and job.private.get("due", 0) <= now:
                    self.run(context, job)

    def run(self, context: C, job: Resource) -> None:
        """Apply one job now, whether due or not."""
        runner = self._runners.get(job.private.get("operation", "")) or self._runners.get(job.type)
        job.attributes["started_at"] = job.attributes.get("started_at") or iso(self._clock.time())
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
        job.attributes["completed_at"] = iso(self._clock.time())
        self._store.put(job)


def _count_items(body: Any) -> int:
    """Items in a bulk request: the longest list of resources found in the body."""
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
