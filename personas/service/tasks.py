"""The procrastinate app behind ``personas worker``: the run task, the minute tick, stalled-job recovery.

- ``personas.run(run_id)``: runs one recorded run (``Service.execute``) on a thread. Deferred with
  ``queueing_lock`` and ``lock`` set to the run id: a run waits in the queue once and is run by one
  worker at a time, however many workers there are (procrastinate takes each job with
  ``SELECT ... FOR UPDATE SKIP LOCKED``).
- ``personas.tick(timestamp)``: a procrastinate periodic task, once a minute; procrastinate defers it
  once per minute across all workers (a unique key per task and timestamp). It records due schedule
  slots (``schedule.py``) and queues them, queues runs left ``queued`` without a job (a receiver that
  stopped between recording and queueing) or left ``running`` with none (:func:`lost_runs`), retries
  jobs whose worker stopped sending heartbeats, and forgets the webhook deliveries too old to be
  replayed (``app.REPLAY_WINDOW``). Once an hour it prunes procrastinate's finished jobs (:func:`prune_jobs`).
- :func:`recover_stalled`: a worker killed mid-run leaves its job ``doing``; once the worker's
  heartbeat is older than ``stalled_after`` seconds, the job is retried, and the run continues from its
  last checkpoint on another worker (its sends are idempotent, so nothing is sent twice).

The service reaches the tasks through procrastinate's ``additional_context`` (never a global).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .app import REPLAY_WINDOW
from .schedule import schedule_tick
from .service import Service

__all__ = [
    "FAILED_KEPT_HOURS", "QUEUE", "RUN_TASK", "SUCCEEDED_KEPT_HOURS", "TICK_TASK", "build_app", "ensure_schema",
    "lost_runs", "prune_jobs", "recover_stalled",
]

RUN_TASK = "personas.run"
TICK_TASK = "personas.tick"
QUEUE = "personas"
#: A queued run with no job for this long is queued again by the tick.
ORPHAN_AFTER = 60.0
#: Hours a succeeded job (a tick, a run's job) and its events are kept in procrastinate's tables.
SUCCEEDED_KEPT_HOURS = 7 * 24
#: Hours a failed, cancelled or aborted job is kept (longer: it may be looked into). The run itself,
#: its status and error stay in the run store whatever happens to its job.
FAILED_KEPT_HOURS = 30 * 24
#: The tick prunes when its minute is the first of an hour (ticks are deferred on the minute).
PRUNE_EVERY = 3600

log = logging.getLogger("personas.service")


def build_app(url: str, *, tick_cron: str = "* * * * *") -> Any:
    """The procrastinate ``App`` on the PostgreSQL at ``url``, with the two tasks registered."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url, min_size=1, max_size=4))

    @app.task(name=RUN_TASK, queue=QUEUE, pass_context=True)
    async def run(context: Any, run_id: str) -> None:
        service: Service = context.additional_context["service"]
        running: set[str] = context.additional_context.get("running", set())  # what a stopping worker waits for
        running.add(run_id)
        try:
            await asyncio.to_thread(service.execute, run_id)
        finally:
            running.discard(run_id)

    @app.periodic(cron=tick_cron, periodic_id="personas-tick")
    @app.task(name=TICK_TASK, queue=QUEUE, pass_context=True)
    async def tick(context: Any, timestamp: int) -> None:
        extra = context.additional_context
        await tick_once(app, extra["service"], float(timestamp), catch_up=extra.get("catch_up", "latest"),
                        stalled_after=extra.get("stalled_after", 60.0))

    return app


async def tick_once(app: Any, service: Service, now: float, *, catch_up: str, stalled_after: float) -> list[str]:
    """One tick's work (see the module docstring); the ids of the runs it queued."""
    from .queues import ProcrastinateQueue

    queue = ProcrastinateQueue(app)
    due = await asyncio.to_thread(schedule_tick, service, now, catch_up=catch_up)
    unfinished = [r for r in await asyncio.to_thread(service.store.unfinished) if r.updated < now - ORPHAN_AFTER]
    orphans = [r for r in unfinished if r.status == "queued"]
    lost = await lost_runs(app, service, [r for r in unfinished if r.status == "running"])
    ids = [r.id for r in (*due, *orphans)] + lost
    for run_id in ids:
        await queue.enqueue_async(run_id)
    await recover_stalled(app, stalled_after)
    await asyncio.to_thread(service.store.forget_deliveries, now - REPLAY_WINDOW)
    if int(now) % PRUNE_EVERY < 60:
        await prune_jobs(app)
    return ids


async def prune_jobs(app: Any, *, succeeded_hours: int = SUCCEEDED_KEPT_HOURS,
                     failed_hours: int = FAILED_KEPT_HOURS) -> None:
    """Delete procrastinate's finished jobs (and, by its cascade, their events) older than the retention.

    Without it the tables only grow: one tick job a minute (525,600 a year) and one per run, each with
    its events. Jobs waiting or being run are never touched (nor their locks); the job the latest tick
    defer points at is unlinked by procrastinate's own ``BEFORE DELETE`` trigger. Two workers pruning
    at once delete each row once (the second waits on the first's row locks and finds them gone).
    """
    manager = app.job_manager  # only this queue's: a database shared with other procrastinate apps keeps theirs
    await manager.delete_old_jobs(nb_hours=succeeded_hours, queue=QUEUE)
    await manager.delete_old_jobs(nb_hours=failed_hours, queue=QUEUE, include_failed=True, include_cancelled=True,
                                  include_aborted=True)


async def lost_runs(app: Any, service: Service, running: list[Any]) -> list[str]:
    """The ids of the ``running`` runs that nothing runs or will run: no ``personas.run`` job of theirs
    is waiting or being run, and no process holds their lock (``RunStore.running``).

    A run whose worker could not record its end (the database away for a few seconds just then: the
    run's ``finish`` failed, and the job was recorded failed once the database was back) stays
    ``running`` with no job: no stalled-job recovery sees it (its job is not ``doing``), the tick did
    not queue it (it is not ``queued``) and ``personas runs retry`` refused it (it is not ``failed``).
    Queued again, it continues from its last checkpoint (a touchpoint already sent is not sent again).
    """
    if not running or service.store.dialect != "postgres":
        return []
    from .postgres import connect, lock_key

    lost = []
    for run in running:
        jobs = await app.job_manager.list_jobs_async(task=RUN_TASK, lock=run.id)
        if any(job.status in ("todo", "doing") for job in jobs):
            continue

        def unheld(run_id: str = run.id) -> bool:  # a process running it (`personas runs resume`) holds it
            key = lock_key(f"personas-run:{run_id}")
            with connect(service.store.url) as conn:
                free = bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0])
                if free:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                return free

        if await asyncio.to_thread(unheld):
            log.warning("run %s of %s is recorded running but no worker runs it (its end was not recorded); "
                        "queued again, it continues from its last checkpoint", run.id, run.persona)
            lost.append(run.id)
    return lost


async def recover_stalled(app: Any, stalled_after: float) -> int:
    """Retry run jobs whose worker has sent no heartbeat for ``stalled_after`` seconds; how many."""
    jobs = list(await app.job_manager.get_stalled_jobs(task_name=RUN_TASK, seconds_since_heartbeat=stalled_after))
    for job in jobs:
        await app.job_manager.retry_job(job)
    return len(jobs)


def ensure_schema(app: Any, url: str) -> None:
    """Apply procrastinate's schema once per database (an advisory lock keeps two workers from racing)."""
    from .postgres import setup_lock

    with setup_lock(url) as conn:
        exists = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if not exists or exists[0] is None:
            with app.open():
                app.schema_manager.apply_schema()
