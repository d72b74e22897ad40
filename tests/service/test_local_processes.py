"""``personas serve`` on SQLite as real processes: stopping it, and more than one process on one home.

- Stopped (SIGTERM or Ctrl-C), it waits for the runs in progress only: the queued ones stay queued in
  the store and the next start runs them (it used to run the whole backlog before exiting). Stopped
  again, it waits for none: the run in progress stays ``running``, shows as stalled, and the next
  start continues it from its checkpoint, sending nothing twice.
- A second ``personas serve``, or ``personas watch`` beside it, never takes a run that a live process
  is running (each run has an owner and a lease); a run whose process was killed is shown as stalled
  and taken over by the next start.

A served sandbox (real HTTP) holds the first send of a run (``Faults.slow_rate``), so a run is known
to be in progress while the test acts, and answers it once the test has seen what it needed
(``Faults.release``); the waits are upper bounds only.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Faults, Sandbox
from tests.graphs.leads import HOT, first_touchpoints, sequence_starts, sign_up

from .conftest import FORM_TOPIC, SECRET, free_port, serve_app
from .test_commands import env_for, personas
from .test_receiver import headers

LONG = 180.0  # an upper bound for anything to happen on a busy machine, never a duration asserted


@pytest.fixture
def served() -> Iterator[tuple[Sandbox, str]]:
    sb = Sandbox(seed=21, rate_limit_factor=None)
    with serve_app(sb.app) as url:
        yield sb, url
        sb.faults.release()  # a send still held (its process killed) ends now, so the server stops at once
    sb.close()


def wait_until(check: Callable[[], bool], what: str, timeout: float = LONG) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Serve:
    """A `personas serve` process on a port of its own; its stderr lines are collected as they come."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "personas.cli", "serve", "--port", str(self.port), *args],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_until(self.up, "personas serve to answer /healthz")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"personas serve exited: {self.log}")
        try:
            return httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def deliver(self, events: list[dict[str, Any]]) -> list[str]:
        """A signed delivery of ``events`` (as Klaviyo sends them); the ids of the runs it recorded."""
        body = json.dumps({
            "data": [{"topic": FORM_TOPIC, "external_id": e["data"]["id"], "payload": e} for e in events],
            "meta": {"klaviyo_account_id": "SbxPub", "klaviyo_webhook_id": "WH1", "version": "2024-06-28"},
        }).encode()
        answer = httpx.post(f"{self.base}/webhooks/klaviyo", content=body, headers=headers(body, at=time.time()),
                            timeout=30)
        assert answer.status_code == 202, answer.text
        return [r["id"] for r in answer.json()["runs"]]

    def wait(self) -> int:
        code = self.proc.wait(timeout=LONG)
        self._reader.join(timeout=10)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.wait()
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def listed(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    done = personas(env, "runs", "--json")
    assert done.returncode == 0, done.stderr
    return {r["id"]: r for r in json.loads(done.stdout)}


def profile(event: dict[str, Any]) -> str:
    return str(event["data"]["relationships"]["profile"]["data"]["id"])


def slow_first_send(sb: Sandbox, seconds: float) -> None:
    """The next send (``create_event``) is answered ``seconds`` late: its run is in progress meanwhile."""
    sb.faults = Faults(slow_rate=1.0, delay=seconds, operations=["create_event"], count=1)


def test_a_stop_waits_for_the_run_in_progress_and_leaves_the_queued_ones_to_the_next_start(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    sb, url = served
    env = env_for(tmp_path / "home", url)
    events = [sign_up(sb, f"stop{n}@example.com", HOT) for n in range(4)]
    slow_first_send(sb, LONG)  # until released
    first = Serve(env, "--workers", "1")
    try:
        ids = first.deliver(events)
        wait_until(lambda: sb.faults._faulted == 1, "the first run to reach its send")
        first.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "waiting for 1 run(s) in progress" in first.log, "the stop to wait for the run")
        sb.faults.release()  # its send answered now: the stop waited for it, and must go on waiting until it ends
        first.wait()
    finally:
        first.stop()
    runs = listed(env)
    assert sorted(runs[i]["status"] for i in ids) == ["done", "queued", "queued", "queued"], first.log
    assert runs[ids[0]]["status"] == "done"
    assert "3 run(s) not started stay queued for the next start" in first.log, first.log
    assert "waiting for 1 run(s) in progress" in first.log

    again = Serve(env, "--workers", "2")
    try:
        wait_until(lambda: all(r["status"] == "done" for r in listed(env).values()), "the next start to run them")
    finally:
        again.stop()
    assert all(r["attempts"] == 1 for r in listed(env).values())
    for event in events:
        assert len(first_touchpoints(sb, profile(event))) == 1 and len(sequence_starts(sb, profile(event))) == 1


def test_a_second_ctrl_c_stops_without_waiting_and_the_next_start_continues_the_run(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    sb, url = served
    env = env_for(tmp_path / "home", url)
    event = sign_up(sb, "twice@example.com", HOT)
    slow_first_send(sb, 50)
    first = Serve(env, "--workers", "1")
    try:
        [run_id] = first.deliver([event])
        wait_until(lambda: sb.faults._faulted == 1, "the run to reach its send")
        first.proc.send_signal(signal.SIGINT)
        wait_until(lambda: "waiting for 1 run(s) in progress" in first.log, "the first Ctrl-C to be taken")
        first.proc.send_signal(signal.SIGINT)
        first.wait()  # within LONG; the send it left is held for 50 s
    finally:
        first.stop()
    assert "stopped without waiting for 1 run(s) in progress" in first.log, first.log
    left = listed(env)[run_id]
    assert left["status"] == "running" and left["stalled"] is True and left["attempts"] == 1, left
    text = personas(env, "runs").stdout
    assert " stalled " in text and "has ended" in text, text

    again = Serve(env)
    try:
        wait_until(lambda: listed(env)[run_id]["status"] == "done", "the next start to continue the run")
    finally:
        again.stop()
    assert listed(env)[run_id]["attempts"] == 2
    assert len(first_touchpoints(sb, profile(event))) == 1 and len(sequence_starts(sb, profile(event))) == 1


def test_a_second_serve_and_a_watcher_on_the_same_home_leave_a_running_run_to_its_process(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    sb, url = served
    env = env_for(tmp_path / "home", url)
    event = sign_up(sb, "shared@example.com", HOT)
    slow_first_send(sb, LONG)  # until released
    first = Serve(env, "--workers", "1")
    second = None
    try:
        [run_id] = first.deliver([event])
        wait_until(lambda: sb.faults._faulted == 1, "the run to reach its send in the first serve")
        second = Serve(env, "--workers", "2")  # picks up what was left at its start: not this run
        watched = personas(env, "watch", "lead-magnet-sequencer", "--once", timeout=LONG)
        assert watched.returncode == 0, watched.stderr
        # The watcher finds this submission among the account's recent ones and records no run of its own
        # for it. It may find others: the demo account's submissions are dated by the time of day, so some
        # fall inside its first look back (an hour) at some hours and none at others.
        ours = [r for r in listed(env).values() if r["key"].endswith(str(event["data"]["id"]))]
        assert [r["id"] for r in ours] == [run_id], (ours, watched.stderr)
        shown = listed(env)[run_id]
        assert shown["status"] == "running" and shown["stalled"] is False, shown
        assert shown["worker"].endswith(f":{first.proc.pid}"), shown
        sb.faults.release()  # seen in progress by both: its send may be answered now
        wait_until(lambda: listed(env)[run_id]["status"] == "done", "the first serve to finish the run")
    finally:
        first.stop()
        if second is not None:
            second.stop()
    run = listed(env)[run_id]
    assert run["attempts"] == 1 and run["worker"].endswith(f":{first.proc.pid}"), (run, first.log)
    assert len(sequence_starts(sb, profile(event))) == 1 and len(first_touchpoints(sb, profile(event))) == 1


def test_a_run_whose_serve_was_killed_shows_as_stalled_and_the_next_start_takes_it_over(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    sb, url = served
    env = env_for(tmp_path / "home", url)
    event = sign_up(sb, "killed@example.com", HOT)
    slow_first_send(sb, 30)
    first = Serve(env, "--workers", "1")
    try:
        [run_id] = first.deliver([event])
        wait_until(lambda: sb.faults._faulted == 1, "the run to reach its send")
    finally:
        first.proc.kill()
        first.wait()
    left = listed(env)[run_id]
    assert left["status"] == "running" and left["stalled"] is True, left
    assert f"its process {left['worker']} has ended" in personas(env, "runs").stdout

    again = Serve(env)
    try:
        wait_until(lambda: listed(env)[run_id]["status"] == "done", "the next start to take the run over")
    finally:
        again.stop()
    run = listed(env)[run_id]
    assert run["attempts"] == 2 and run["worker"].endswith(f":{again.proc.pid}"), run
    assert len(sequence_starts(sb, profile(event))) == 1 and len(first_touchpoints(sb, profile(event))) == 1


def test_a_failed_run_is_one_line_in_the_serve_log(tmp_path: Path, served: tuple[Sandbox, str]) -> None:
    sb, url = served
    env = env_for(tmp_path / "home", url)
    event = sign_up(sb, "refused@example.com", HOT)
    sb.faults = Faults(error_rate=1.0, status=400, operations=["create_event"])  # the send is refused
    server = Serve(env)
    try:
        [run_id] = server.deliver([event])
        wait_until(lambda: listed(env)[run_id]["status"] == "failed", "the run to fail")
    finally:
        server.stop()
    lines = [line for line in server.log.splitlines() if f"run {run_id} of lead-magnet-sequencer failed:" in line]
    assert len(lines) == 1, server.log
    assert "400" in lines[0]
    assert lines[0].endswith(f"`personas runs retry {run_id}` continues it from its last checkpoint")
    assert SECRET not in server.log and "pk_sandbox_demo" not in server.log
