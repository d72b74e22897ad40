"""procrastinate's finished jobs are pruned by the worker's tick, so its tables stop growing for ever.

Real PostgreSQL, procrastinate's real schema and triggers; the jobs are deferred through procrastinate
and their end and age are set in its tables (what a worker and the passing of days would leave).
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from klaviyo_sandbox import Sandbox
from personas.kernel.config import Config
from personas.service.queues import ProcrastinateQueue
from personas.service.service import Service
from personas.service.tasks import PRUNE_EVERY, build_app, ensure_schema, tick_once

HOUR = 1796576400.0  # a tick on the first minute of an hour (prunes), and one a minute later (does not)
assert HOUR % PRUNE_EVERY == 0


def age(conn: psycopg.Connection, job_id: int, status: str, days: float) -> None:
    """Job ``job_id`` ended (or moved to) ``status`` ``days`` ago, as its events say."""
    conn.execute("UPDATE procrastinate_jobs SET status = %s WHERE id = %s", (status, job_id))
    conn.execute("UPDATE procrastinate_events SET at = now() - make_interval(secs => %s) WHERE job_id = %s",
                 (days * 86400, job_id))


async def test_the_tick_prunes_old_finished_jobs_and_keeps_the_rest(tmp_path: Path, pg_url: str) -> None:
    sandbox = Sandbox(seed=3)
    service = Service.open(Config(home=tmp_path / "home", database_url=pg_url), sandbox=sandbox)
    app = build_app(pg_url)
    ensure_schema(app, pg_url)
    plan = {  # run id: (status, days since it ended, kept)
        "old-done": ("succeeded", 8, False),
        "recent-done": ("succeeded", 6, True),
        "old-failed": ("failed", 8, True),  # failed jobs are kept 30 days
        "ancient-failed": ("failed", 31, False),
        "ancient-cancelled": ("cancelled", 31, False),
        "waiting": ("todo", 40, True),  # never pruned, however old
        "running": ("doing", 40, True),
    }
    async with app.open_async():
        queue = ProcrastinateQueue(app)
        for run_id in plan:
            await queue.enqueue_async(run_id)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            ids = dict(conn.execute("SELECT args->>'run_id', id FROM procrastinate_jobs").fetchall())
            # the last tick a worker deferred, 8 days ago: procrastinate_periodic_defers points at its job
            [(tick_id,)] = conn.execute(
                "SELECT procrastinate_defer_periodic_job_v2('personas', NULL, NULL, 'personas.tick', 0, "
                "'personas-tick', 1000, '{\"timestamp\": 1000}'::jsonb)").fetchall()
            age(conn, tick_id, "succeeded", 8)
            # another procrastinate app's job in the same database: not ours to delete
            [(other_id,)] = conn.execute(
                "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW('other', 'other.task', 0, NULL, NULL, "
                "'{}'::jsonb, NULL::timestamptz)]::procrastinate_job_to_defer_v1[]))").fetchall()
            age(conn, other_id, "succeeded", 40)
            for run_id, (status, days, _kept) in plan.items():
                age(conn, ids[run_id], status, days)
        await tick_once(app, service, HOUR + 60, catch_up="none", stalled_after=60)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone() == (len(plan) + 2,)
        await tick_once(app, service, HOUR, catch_up="none", stalled_after=60)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            left = {row[0] for row in conn.execute("SELECT args->>'run_id' FROM procrastinate_jobs "
                                                   "WHERE task_name = 'personas.run'")}
            ticks = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE id = %s", (tick_id,)).fetchone()
            others = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE id = %s", (other_id,)).fetchone()
            orphaned = conn.execute("SELECT count(*) FROM procrastinate_events WHERE job_id NOT IN "
                                    "(SELECT id FROM procrastinate_jobs)").fetchone()
            defers = conn.execute("SELECT job_id FROM procrastinate_periodic_defers").fetchall()
    service.close()
    sandbox.close()
    assert left == {run_id for run_id, (_s, _d, kept) in plan.items() if kept}
    assert ticks == (0,) and orphaned == (0,) and others == (1,)
    assert defers == [(None,)]  # the defer record stays (no tick deferred twice), unlinked from its job
