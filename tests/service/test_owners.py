"""Owners and leases of SQLite runs, the local queue's bookkeeping, and the minute tick's pruning.

Real SQLite files and real processes for the owners (a process that has ended, a pid given to
another process); leases on the store's injected clock, moved by hand.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest

from personas.kernel.config import Config
from personas.service.app import REPLAY_WINDOW
from personas.service.owners import LEASE, Owner, process_started
from personas.service.queues import LocalQueue
from personas.service.service import Service
from personas.service.serving import local_tick
from personas.service.store import RunStore

from .test_commands import env_for, personas

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_a_run_held_by_a_live_owner_is_taken_over_only_once_its_lease_has_run_out(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "service.sqlite"
    remote = Owner("elsewhere:4242", "77.abcdef")  # another machine: only its lease can tell
    holder, other = RunStore.sqlite(path, clock, owner=remote), RunStore.sqlite(path, clock)
    run, _ = holder.create_run("lead-magnet-sequencer", "event:A", "webhook", {})
    assert holder.claim(run.id, "elsewhere:4242") is not None
    assert other.gone(other.get(run.id)) is None and other.adopt() == []  # type: ignore[arg-type]
    assert other.claim(run.id) is None, "a running run is never claimed: only a queued one"
    clock.now += LEASE / 2
    assert holder.renew() == 1  # the holder's heartbeat
    clock.now += LEASE - 1
    assert other.adopt() == [], "renewed: still held"
    clock.now += 2
    assert other.gone(other.get(run.id)) == "its process elsewhere:4242 sent no heartbeat for 61 s"  # type: ignore[arg-type]
    assert [r.id for r in other.adopt()] == [run.id]
    taken = other.claim(run.id)
    assert taken is not None and taken.attempts == 2 and taken.owner == other.me.token
    assert holder.claim(run.id) is None and other.adopt() == []
    holder.close()
    other.close()


def test_a_run_whose_process_has_ended_on_this_machine_is_taken_over_at_once(tmp_path: Path) -> None:
    path = tmp_path / "service.sqlite"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = Owner(f"{socket.gethostname()}:{child.pid}", f"{process_started(child.pid)}.feed01")
        holder = RunStore.sqlite(path, owner=owner)
        run, _ = holder.create_run("lead-magnet-sequencer", "event:B", "webhook", {})
        other = RunStore.sqlite(path)
        assert other.adopt() == [], "its process is alive and its lease runs"
    finally:
        child.kill()
        child.wait()
    assert other.gone(other.get(run.id)) == f"its process {owner.worker} has ended"  # type: ignore[arg-type]
    assert [r.id for r in other.adopt()] == [run.id]
    other.close()


def test_a_pid_given_to_another_process_does_not_keep_a_run(tmp_path: Path) -> None:
    """A container restarted runs `personas serve` as pid 1 again: the run of the pid 1 before is not its."""
    earlier = Owner(f"{socket.gethostname()}:{os.getpid()}", "1.0ld0ne")  # this pid, started at another time
    holder = RunStore.sqlite(tmp_path / "service.sqlite", owner=earlier)
    run, _ = holder.create_run("lead-magnet-sequencer", "event:C", "webhook", {})
    now = RunStore.sqlite(tmp_path / "service.sqlite")
    assert "the pid now belongs to another process" in (now.gone(now.get(run.id)) or "")  # type: ignore[arg-type]
    assert [r.id for r in now.adopt()] == [run.id]
    now.close()


def test_a_store_that_closes_lets_its_runs_go(tmp_path: Path) -> None:
    first = RunStore.sqlite(tmp_path / "service.sqlite")
    run, _ = first.create_run("lead-magnet-sequencer", "event:D", "webhook", {})
    second = RunStore.sqlite(tmp_path / "service.sqlite")
    assert second.adopt() == []
    first.close()
    assert second.gone(second.get(run.id)) == "no process holds it"  # type: ignore[arg-type]
    assert [r.id for r in second.adopt()] == [run.id]
    second.close()


def _size(queue: LocalQueue) -> int:
    return sum(len(v) for v in vars(queue).values() if isinstance(v, (list, set, dict, deque)))


def test_the_local_queue_keeps_nothing_of_the_runs_it_has_run(tmp_path: Path) -> None:
    service = Service.open(Config(home=tmp_path / "home"))
    queue = LocalQueue(service, workers=2)
    ids = []
    for n in range(201):
        run, _ = service.store.create_run("lead-magnet-sequencer", f"event:{n}", "webhook", {})
        service.store.finish(run.id, "done")  # settled: the queue's thread finds it so and moves on
        ids.append(run.id)
    queue.enqueue(ids[0])
    queue.drain(timeout=120)
    after_one = _size(queue)
    for run_id in ids[1:]:
        queue.enqueue(run_id)
    queue.drain(timeout=120)
    assert _size(queue) == after_one and queue.waiting() == [] and queue.in_progress() == []
    assert queue.close() == []
    service.close()


def test_the_minute_tick_forgets_deliveries_too_old_to_replay(tmp_path: Path) -> None:
    clock = Clock()
    service = Service.open(Config(home=tmp_path / "home"), clock=clock)
    queue = LocalQueue(service)
    assert service.store.first_delivery("old")
    clock.now += 60
    assert service.store.first_delivery("recent")
    local_tick(service, queue, T0 + REPLAY_WINDOW + 30, catch_up="latest", schedules=False)
    assert service.store.first_delivery("old"), "forgotten: outside the window it could not be replayed"
    assert not service.store.first_delivery("recent"), "kept: a replay of it would still be in the window"
    queue.close()
    service.close()


async def test_the_workers_tick_forgets_deliveries_too_old_to_replay(tmp_path: Path, pg_url: str) -> None:
    from personas.service.tasks import build_app, ensure_schema, tick_once

    clock = Clock()
    service = Service.open(Config(home=tmp_path / "home", database_url=pg_url), clock=clock)
    app = build_app(pg_url)
    ensure_schema(app, pg_url)
    assert service.store.first_delivery("old")
    clock.now += 60
    assert service.store.first_delivery("recent")
    async with app.open_async():
        await tick_once(app, service, T0 + REPLAY_WINDOW + 30, catch_up="latest", stalled_after=60)
    assert service.store.first_delivery("old") and not service.store.first_delivery("recent")
    service.close()


def test_a_failed_run_says_how_to_retry_it(tmp_path: Path) -> None:
    store = RunStore.sqlite(tmp_path / "home" / "service.sqlite")
    run, _ = store.create_run("lead-magnet-sequencer", "event:E", "webhook", {})
    store.finish(run.id, "failed", error="ServerError: HTTP 503 from create_event")
    store.close()
    shown = personas(env_for(tmp_path / "home", "http://127.0.0.1:9"), "runs")
    assert shown.returncode == 0, shown.stderr
    assert f"ServerError: HTTP 503 from create_event; retry with `personas runs retry {run.id}`" in shown.stdout


def test_a_late_finish_by_an_owner_whose_run_was_taken_over_changes_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A process starved past its lease has its run taken over; when it wakes, its finish used to
    overwrite the new owner's result. Now it changes nothing, and says so in one line."""
    clock = Clock()
    path = tmp_path / "service.sqlite"
    starved = RunStore.sqlite(path, clock, owner=Owner("elsewhere:4242", "77.abcdef"))
    other = RunStore.sqlite(path, clock)
    run, _ = starved.create_run("lead-magnet-sequencer", "event:L", "webhook", {})
    assert starved.claim(run.id, "elsewhere:4242") is not None
    clock.now += LEASE + 1  # no heartbeat for longer than the lease
    assert [r.id for r in other.adopt()] == [run.id] and other.claim(run.id) is not None
    with caplog.at_level(logging.WARNING, logger="personas.service"):
        kept = [starved.finish(run.id, "failed", error="late")]  # while the new owner runs it
        assert (other.get(run.id) or run).status == "running"
        kept.append(other.finish(run.id, "done", outcome="sent by the new owner"))
        kept.append(starved.finish(run.id, "done", outcome="sent late"))  # after it
    after = other.get(run.id)
    assert after is not None and (after.status, after.outcome, after.error) == ("done", "sent by the new owner", None)
    assert kept == [False, True, False]
    assert starved.renew() == 0, "no heartbeat for a run it lost"
    lines = [r.getMessage() for r in caplog.records if run.id in r.getMessage()]
    assert len(lines) == 2 and all("this process (elsewhere:4242) no longer holds it" in line for line in lines), lines
    assert other.me.worker in lines[0] and "not recorded" in lines[0]
    starved.close()
    other.close()
