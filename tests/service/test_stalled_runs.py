"""``personas runs`` on PostgreSQL shows a run whose worker stopped sending heartbeats as stalled
(a real PostgreSQL, procrastinate's own tables, the command as a subprocess)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import psycopg

from personas.service.store import RunStore
from personas.service.tasks import build_app, ensure_schema
from tests.warm_cli import run_personas


def runs(home: Path, url: str, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PERSONAS_HOME": str(home), "PERSONAS_DATABASE_URL": url}
    if os.environ.get("PYTHONPATH"):  # the code under test, when it is not the installed one (a worktree)
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    proc = run_personas([sys.executable, "-m", "personas.cli", "runs", *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_run_whose_worker_stopped_its_heartbeat_shows_as_stalled(tmp_path: Path, pg_url: str) -> None:
    tasks = build_app(pg_url)
    ensure_schema(tasks, pg_url)
    store = RunStore.postgres(pg_url)
    try:
        alive, _ = store.create_run("lead-magnet-sequencer", "event:A", "webhook", {})
        dead, _ = store.create_run("lead-magnet-sequencer", "event:B", "webhook", {})
        gone, _ = store.create_run("lead-magnet-sequencer", "event:C", "webhook", {})
        for run in (alive, dead, gone):
            store.claim(run.id, "host:1")
        with psycopg.connect(pg_url, autocommit=True) as conn:
            for run, ago in ((alive, 2), (dead, 45), (gone, None)):
                worker = None
                if ago is not None:
                    worker = conn.execute(
                        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (NOW() - make_interval(secs => %s)) "
                        "RETURNING id", (ago,)).fetchone()[0]
                conn.execute(
                    "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args, status, worker_id) "
                    "VALUES ('personas', 'personas.run', %s, '{}', 'doing', %s)", (run.id, worker))
    finally:
        store.close()
    shown = {line.split()[0]: line for line in runs(tmp_path, pg_url).splitlines() if not line.startswith(" ")}
    assert " running " in shown[alive.id]
    assert " stalled " in shown[dead.id] and " stalled " in shown[gone.id]
    text = runs(tmp_path, pg_url)
    assert "no heartbeat from its worker for " in text and "its worker is gone" in text
    listed = {r["id"]: r["stalled"] for r in json.loads(runs(tmp_path, pg_url, "--json"))}
    assert listed == {alive.id: False, dead.id: True, gone.id: True}
