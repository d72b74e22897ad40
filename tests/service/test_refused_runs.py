"""A run refused before it started is never retried: its event holds text no store keeps.

``personas runs retry`` queued such a run again (on SQLite it then ran a stub of the event; on
PostgreSQL a worker did), though it can never succeed: the event was not kept. Now retry refuses it
in one line naming the field and leaves the run as it was, on both stores. Real ``personas``
processes over a real SQLite file and a real PostgreSQL (``scripts/postgres.sh``).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from personas.kernel.config import Config
from personas.service.service import Service
from personas.service.store import RunStore
from tests.warm_cli import run_personas

from .test_commands import env_for


@pytest.fixture(params=["sqlite", "postgres"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Config]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    yield Config(home=tmp_path / "home", database_url=url)


def _personas(config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    env = env_for(config.home, "http://127.0.0.1:9", **({"PERSONAS_DATABASE_URL": config.database_url}
                                                         if config.database_url else {}))
    return run_personas([sys.executable, "-m", "personas.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_retry_refuses_a_run_whose_event_holds_text_no_store_keeps(config: Config) -> None:
    service = Service.open(config)
    spec = service.persona("lead-magnet-sequencer")
    nul = {"data": {"type": "event", "id": "01NUL", "attributes": {"event_properties": {"note": "a\x00b"}}}}
    in_property, _ = service.record_event(spec, "01NUL", nul, trigger="poll")
    in_id, _ = service.record_event(spec, "01SUR\ud800", {"data": {"type": "event"}}, trigger="webhook")
    before = {r.id: r for r in service.store.runs()}
    service.close()
    cases = [(in_property.id, "data.attributes.event_properties.note holds a NUL character"),
             (in_id.id, "the event id holds text that is not valid Unicode")]
    for run_id, field in cases:
        done = _personas(config, "runs", "retry", run_id)
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
        assert lines[0].startswith(f"error: run {run_id} cannot be retried") and field in lines[0], lines[0]
        assert "correct the event where it is sent to Klaviyo" in lines[0], lines[0]
    listed = _personas(config, "runs")
    assert listed.returncode == 0 and "personas runs retry" not in listed.stdout, listed.stdout
    service = Service.open(config)
    try:
        assert {r.id: r for r in service.store.runs()} == before  # left as it was: failed, not run
        assert service.store.requeue(in_property.id) is None  # the store itself never queues one again
    finally:
        service.close()


def test_a_store_made_before_refusals_were_recorded_opens_and_retries_as_before(tmp_path: Path) -> None:
    """A ``service.sqlite`` from before the ``refused`` column gets it on open; its runs are retryable."""
    path = tmp_path / "service.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE personas_runs (id TEXT PRIMARY KEY, persona TEXT NOT NULL, key TEXT NOT NULL, "
            "trigger TEXT NOT NULL, thread_id TEXT NOT NULL, status TEXT NOT NULL, input TEXT NOT NULL, "
            "scheduled_for REAL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT, outcome TEXT, worker TEXT, "
            "created REAL NOT NULL, updated REAL NOT NULL, UNIQUE (persona, key))"
        )
        conn.execute("INSERT INTO personas_runs VALUES ('r1', 'p', 'event:1', 'poll', 't', 'failed', '{}', NULL, 1, "
                     "'a 400', NULL, 'w', 1, 1)")
    conn.close()
    store = RunStore.sqlite(path)
    try:
        old = store.get("r1")
        assert old is not None and old.refused is None and old.error == "a 400"
        again = store.requeue("r1")
        assert again is not None and again.status == "queued"
    finally:
        store.close()
