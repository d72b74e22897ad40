"""A run left ``running`` with no job (its end could not be recorded) is queued again by the tick.

A worker whose run ended while the database was away for a few seconds could not record the run's
end (``RunStore.finish`` failed, and so did recording it failed); the task raised, and procrastinate
recorded the job failed once the database was back. The run stayed ``running`` for good: the stalled
job recovery looks at ``doing`` jobs only, the tick re-queued ``queued`` runs only, and ``personas
runs retry`` takes ``failed`` runs only. The state is made here as the worker leaves it (the run
claimed, its job fetched and finished ``failed`` through procrastinate's job manager); a real worker
process then runs the run from its checkpoint, on a real PostgreSQL and a served sandbox.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from klaviyo_sandbox import Sandbox
from personas.kernel.config import Config
from personas.service.postgres import advisory_lock, lock_key
from personas.service.queues import ProcrastinateQueue
from personas.service.service import Service
from personas.service.tasks import ORPHAN_AFTER, QUEUE, RUN_TASK, build_app, ensure_schema, tick_once
from tests.graphs.leads import first_touchpoints, sequence_starts

from .test_postgres import _record_leads, served_sandbox, start_worker, stop, wait_for

__all__ = ["served_sandbox"]  # the fixture, imported for this module's tests


async def _job_failed_after_claim(tasks: Any, service: Service, run_id: str) -> None:
    """What a worker leaves when its run's end cannot be recorded: the run claimed (``running``), its
    job fetched (``doing``) and then recorded ``failed``."""
    from procrastinate.jobs import Status

    manager = tasks.job_manager
    worker = await manager.register_worker()
    job = await manager.fetch_job(queues=[QUEUE], worker_id=worker)
    assert job is not None and job.task_kwargs == {"run_id": run_id}
    assert service.store.claim(run_id, "gone-host:4242") is not None
    await manager.finish_job(job, status=Status.FAILED, delete_job=False)
    await manager.unregister_worker(worker)


def test_a_running_run_whose_job_failed_is_queued_again_and_finished_once(
    tmp_path: Path, pg_url: str, served_sandbox: tuple[Sandbox, str]
) -> None:
    sb, url = served_sandbox
    home = tmp_path / "home"
    service = Service.open(Config(home=home, database_url=pg_url))
    tasks = build_app(pg_url)
    ensure_schema(tasks, pg_url)
    [(lost, pid), (held, _)] = _record_leads(service, sb, ["lost@example.com", "held@example.com"])

    async def main() -> list[str]:
        async with tasks.open_async():
            await ProcrastinateQueue(tasks).enqueue_async(lost)
            await _job_failed_after_claim(tasks, service, lost)
            assert service.store.claim(held, "here:1") is not None  # run by a live process (no job): its lock
            with advisory_lock(pg_url, lock_key(f"personas-run:{held}")):
                later = time.time() + ORPHAN_AFTER + 5
                queued = await tick_once(tasks, service, later, catch_up="none", stalled_after=60.0)
            jobs = await tasks.job_manager.list_jobs_async(task=RUN_TASK, lock=lost, status="todo")
            assert len(list(jobs)) == 1
            return queued

    assert asyncio.run(main()) == [lost]
    worker = start_worker(home, pg_url, url)
    try:
        wait_for(lambda: getattr(service.store.get(lost), "status", None) == "done", 90, "the lost run to end")
    finally:
        log = stop(worker)
    run = service.store.get(lost)
    assert run is not None and run.status == "done" and run.attempts == 2, log
    assert len(sequence_starts(sb, pid)) == 1 and len(first_touchpoints(sb, pid)) == 1
    assert (service.store.get(held) or run).status == "running"  # left to the process that holds it
    service.close()
