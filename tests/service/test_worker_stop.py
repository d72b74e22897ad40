"""What the unattended commands say when stopped or when PostgreSQL goes away (real processes, a served
sandbox over HTTP, a real PostgreSQL made unreachable as in a restart).

- ``personas worker`` on its first SIGTERM said nothing while it waited for the runs in progress: it now
  names them and says what a second signal does.
- ``personas watch`` on PostgreSQL exited when the database went away (while Klaviyo away is retried):
  it now says so in one line, keeps polling, and says when it answers again.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from klaviyo_sandbox import Faults, Sandbox
from personas.kernel.config import Config
from personas.service.service import Service
from personas.service.tasks import build_app, ensure_schema
from tests.graphs.leads import HOT, first_touchpoints, sign_up

from .conftest import worker_env
from .test_postgres import start_worker, stop
from .test_worker_outage import Log, outage, queue, served, wait_for

__all__ = ["served"]  # the fixture, shared with test_worker_outage


def test_a_worker_told_to_stop_says_which_runs_it_waits_for(
    tmp_path: Path, pg_url: str, served: tuple[Sandbox, str]
) -> None:
    sb, url = served
    home = tmp_path / "home"
    service = Service.open(Config(home=home, database_url=pg_url))
    ensure_schema(build_app(pg_url), pg_url)
    event = sign_up(sb, "slow@example.com", HOT)
    run, _ = service.record_event(service.persona("lead-magnet-sequencer"), event["data"]["id"], event,
                                  trigger="webhook")
    sb.faults = Faults(slow_rate=1.0, delay=120.0, operations=["create_event"])  # the send waits for release()
    worker = start_worker(home, pg_url, url)
    log = Log(worker.stderr)
    try:
        wait_for(lambda: ": runs and schedules of " in log.text, "the worker to start")
        queue(pg_url, run.id)
        wait_for(lambda: (service.store.get(run.id) or run).status == "running", "the run to start")
        worker.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping" in log.text, "the worker to say it stops")
        [line] = [line for line in log.text.splitlines() if "stopping" in line]
        assert f"waiting for 1 run(s) in progress ({run.id})" in line, log.text
        assert "stop again (SIGTERM or Ctrl-C) to end at once" in line, log.text
        sb.faults.release()  # the send answered now: the worker goes on waiting until its run ends
        assert worker.wait(timeout=60) == 0, log.text
    finally:
        sb.faults.release()
        stop(worker)
    assert "stopped; the 1 run(s) it waited for have ended" in log.text, log.text
    assert (service.store.get(run.id) or run).status == "done"
    assert len(first_touchpoints(sb, event["data"]["relationships"]["profile"]["data"]["id"])) == 1
    service.close()


def _queued(text: str) -> list[int]:
    """How many events each of the watcher's polls queued, in order (polls that queued none say nothing)."""
    return [int(n) for n in re.findall(r"(\d+) new event\(s\) queued", text)]


def test_watch_rides_out_a_database_outage(tmp_path: Path, pg_url: str, served: tuple[Sandbox, str]) -> None:
    sb, url = served
    ensure_schema(build_app(pg_url), pg_url)
    sign_up(sb, "first@example.com", HOT)
    watch = subprocess.Popen(
        [sys.executable, "-m", "personas.cli", "watch", "lead-magnet-sequencer", "--every", "1"],
        env=worker_env(tmp_path / "home", pg_url, url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )
    log = Log(watch.stderr)
    down = False
    try:
        # The first poll reads the last hour: in the hour after the demo's local midnight (05:00-06:00
        # UTC in winter) that holds the demo account's own sign-ups too, so it queues one or more.
        wait_for(lambda: _queued(log.text) or watch.poll() is not None, "the first poll")
        outage(pg_url, on=True)
        down = True
        wait_for(lambda: "is unreachable" in log.text or watch.poll() is not None, "the watcher to notice")
        time.sleep(4)  # a few polls while it is away
        assert watch.poll() is None, f"the watcher exited on the outage: {log.text[-3000:]}"
        outage(pg_url, on=False)
        down = False
        sign_up(sb, "second@example.com", HOT)
        wait_for(lambda: _queued(log.text)[1:] == [1] or watch.poll() is not None,
                 "the event made after the outage")
        assert watch.poll() is None, log.text
    finally:
        if down:
            outage(pg_url, on=False)
        stop(watch)
    text = log.text
    assert "Traceback" not in text and "error connecting in" not in text, text
    [away, back] = [line for line in text.splitlines() if "the database at" in line]
    assert "personas watch lead-magnet-sequencer: the database at" in away and "is unreachable (" in away, text
    assert "polling again every 1 s until it answers" in away, text
    assert "answers again after" in back, text
