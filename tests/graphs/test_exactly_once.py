"""Exactly once: a run killed between scheduling and sending, or right after the send's HTTP call,
resumes from its SQLite checkpoint and the lead gets one first touchpoint; a write retried after a
timeout also yields one."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphs import build
from klaviyo_sandbox import DEMO_KEY, Faults, Sandbox, serve_app
from klaviyo_toolkit.client import KlaviyoClient, RetryPolicy
from klaviyo_toolkit.ratelimit import RateLimiter
from personas.runtime import build_context, checkpointer, run_persona

from .leads import HOT, first_touchpoints, saved_sign_up, sequence_starts, sign_up

CHILD = textwrap.dedent("""
    import json, os, signal, sys
    from klaviyo_sandbox import Sandbox
    from personas.runtime import build_context, checkpointer
    from graphs import build

    state_file, ckpt, thread, event_path, kill_at = sys.argv[1:]
    sb = Sandbox(state=state_file, demo_data=False, rate_limit_factor=None)
    ctx = build_context("lead-magnet-sequencer", sandbox=sb, thread_id=thread, audit=False)
    if kill_at == "after_send_http":
        def hook(record):
            if record.operation_id == "create_event" and record.error is None:
                os.kill(os.getpid(), signal.SIGKILL)
        ctx.client.hooks.append(hook)
    graph = build("lead_magnet", checkpointer=checkpointer(ckpt))
    config = {"configurable": {"thread_id": thread}}
    event = json.load(open(event_path))
    for update in graph.stream({"input": event}, config, context=ctx, stream_mode="updates", durability="sync"):
        if kill_at == "after_schedule" and "decide" in update:
            os.kill(os.getpid(), signal.SIGKILL)
    print("finished without being killed")
""")


@pytest.mark.parametrize("kill_at", ["after_schedule", "after_send_http"])
def test_a_killed_run_resumes_from_its_checkpoint_and_sends_exactly_once(tmp_path: Path, kill_at: str) -> None:
    state, event_path, profile_id = saved_sign_up(tmp_path, f"{kill_at}@example.com")
    ckpt = tmp_path / "checkpoints.sqlite"
    thread = f"lead-{kill_at}"
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    child = subprocess.run(
        [sys.executable, str(script), str(state), str(ckpt), thread, str(event_path), kill_at],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr

    sb = Sandbox(state=state, demo_data=False, rate_limit_factor=None)
    sent_before = len(sequence_starts(sb, profile_id))
    assert sent_before == (1 if kill_at == "after_send_http" else 0)

    # Resume the same thread from the checkpoint in a new process's worth of objects.
    ctx = build_context("lead-magnet-sequencer", sandbox=sb, thread_id=thread, audit=False)
    graph = build("lead_magnet", checkpointer=checkpointer(ckpt))
    config = {"configurable": {"thread_id": thread}}
    assert graph.get_state(config).next, "the run stopped part-way"
    graph.invoke(None, config, context=ctx, durability="sync")
    final = graph.get_state(config).values
    assert final["send"]["status"] == "sent" and final["outcome"].startswith("sent")
    assert len(sequence_starts(sb, profile_id)) == 1
    assert len(first_touchpoints(sb, profile_id)) == 1
    graph.invoke(None, config, context=ctx, durability="sync")  # resuming a finished run does nothing more
    assert len(first_touchpoints(sb, profile_id)) == 1
    sb.close()


@pytest.fixture()
def served() -> Iterator[tuple[Sandbox, str]]:
    sb = Sandbox(seed=42, rate_limit_factor=None)
    with serve_app(sb.app) as url:
        yield sb, url


def test_a_send_retried_after_a_timeout_yields_one_touchpoint(served: tuple[Sandbox, str]) -> None:
    sb, url = served
    event = sign_up(sb, "timeout.lead@example.com", HOT)
    profile_id = event["data"]["relationships"]["profile"]["data"]["id"]
    attempts: list[int] = []
    client = KlaviyoClient(
        api_key=DEMO_KEY,
        base_url=url,
        timeout=2.0,  # generous: a loaded machine must not time out the retry too
        rate_limiter=RateLimiter(factor=None),
        retry=RetryPolicy(base_delay=0.05, seed=1),
        hooks=[lambda r: attempts.append(r.attempts) if r.operation_id == "create_event" else None],
    )
    # The first create_event is answered slowly (after the client gave up); the retry gets through.
    sb.faults = Faults(slow_rate=1.0, delay=4.0, operations=["create_event"], count=1)
    result = run_persona("lead-magnet-sequencer", {"input": event}, client=client, audit=False)
    assert result.state["send"]["status"] == "sent"
    assert attempts == [2], "one timeout, one retry"
    time.sleep(4.2)  # let the slow first request finish on the server too
    assert len(sequence_starts(sb, profile_id)) == 1
    assert len(first_touchpoints(sb, profile_id)) == 1
