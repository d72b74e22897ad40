"""The sequencer as ``RunDriver`` runs it (``durability="exit"``): checkpointed at its input and where
it stops, never after each step, and still exactly once.

- a finished lead leaves two checkpoints (its input, its end), not one per step;
- a run SIGKILLed mid-way (after its decision; after its send reached Klaviyo) is continued by
  ``RunDriver.retry`` from its input, in a new process's worth of objects: one start, one first
  touchpoint; after a send that went through, the retry reports that start as the run's own (the
  decision the start carries, the model not asked again), not as a repeat submission;
- a step that fails (a send Klaviyo refused) is saved where it failed: the retry starts at the send,
  with the decision the run made, and the model is asked once in all.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock
from personas.runtime import RunDriver, build_context, checkpointer

from .leads import (
    HOT,
    WEDNESDAY_3PM_NY,
    choose,
    failed_send,
    first_touchpoints,
    saved_sign_up,
    sequence_starts,
    sign_up,
)

CHILD = textwrap.dedent("""
    import json, os, signal, sys
    from klaviyo_sandbox import Sandbox
    from personas.runtime import RunDriver, build_context, checkpointer
    sys.path.insert(0, os.getcwd())
    from tests.graphs.leads import choose

    state_file, ckpt, thread, event_path, kill_at = sys.argv[1:]
    sb = Sandbox(state=state_file, demo_data=False, rate_limit_factor=None)
    ctx = build_context("lead-magnet-sequencer", sandbox=sb, thread_id=thread, audit=False,
                        model=choose("fast-track"))
    if kill_at == "after_send_http":
        def hook(record):
            if record.operation_id == "create_event" and record.error is None:
                os.kill(os.getpid(), signal.SIGKILL)
        ctx.client.hooks.append(hook)
    driver = RunDriver(ctx, checkpointer(ckpt))
    for mode, update in driver.stream({"input": json.load(open(event_path))}, modes=("updates",)):
        if kill_at == "after_decide" and "decide" in update:
            os.kill(os.getpid(), signal.SIGKILL)
    print("finished without being killed")
""")


def test_a_finished_lead_leaves_its_input_and_its_end_only(tmp_path: Path) -> None:
    sb = Sandbox(seed=42, rate_limit_factor=None)
    event = sign_up(sb, "two.checkpoints@example.com", HOT)
    saver = checkpointer(tmp_path / "checkpoints.sqlite")
    ctx = build_context("lead-magnet-sequencer", sandbox=sb, thread_id="two", audit=False, model=choose("fast-track"))
    result = RunDriver(ctx, saver).invoke({"input": event})
    assert result.status == "done" and result.state["send"]["status"] == "sent"
    saved = list(saver.list({"configurable": {"thread_id": "two"}}))
    assert len(saved) == 2, [c.metadata for c in saved]
    assert {c.metadata.get("source") for c in saved} == {"update", "loop"}
    assert saved[-1].checkpoint["channel_values"]["input"] == event, "the input is saved before any step"


@pytest.mark.parametrize("kill_at", ["after_decide", "after_send_http"])
def test_a_run_killed_mid_way_is_retried_from_its_input_and_starts_once(tmp_path: Path, kill_at: str) -> None:
    state, event_path, profile_id = saved_sign_up(tmp_path, f"{kill_at}@example.com")
    ckpt, thread = tmp_path / "checkpoints.sqlite", f"lead-{kill_at}"
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    child = subprocess.run(
        [sys.executable, str(script), str(state), str(ckpt), thread, str(event_path), kill_at],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr

    sb = Sandbox(state=state, demo_data=False, rate_limit_factor=None)
    assert len(sequence_starts(sb, profile_id)) == (1 if kill_at == "after_send_http" else 0)
    model = choose("fast-track")
    driver = RunDriver(build_context("lead-magnet-sequencer", sandbox=sb, thread_id=thread, audit=False,
                                     model=model), checkpointer(ckpt))
    assert driver.result().next == ("decide",), "a killed run is left at its input"
    result = driver.retry()
    assert result.status == "done"
    assert result.state["send"]["status"] == "sent" and result.state["outcome"].startswith("sent:")
    assert result.state["started"]["own"] is True
    assert result.state["decision"]["sequence"] == "fast-track"
    if kill_at == "after_send_http":  # the start the killed attempt sent is the run's own; nothing is re-decided
        assert result.state["decision"]["policy_note"] == "earlier attempt"
        assert result.state["decision"]["decided_by"] == "model" and model.requests == []
        assert result.state["send"]["earlier_attempt"] is True
    assert len(sequence_starts(sb, profile_id)) == 1
    assert len(first_touchpoints(sb, profile_id)) == 1
    assert driver.retry().state["outcome"] == result.state["outcome"], "a finished run runs nothing again"
    assert len(first_touchpoints(sb, profile_id)) == 1
    sb.close()


def test_a_failed_send_is_saved_where_it_failed_and_the_retry_starts_there(tmp_path: Path) -> None:
    sb = Sandbox(seed=42, rate_limit_factor=None)
    saver = checkpointer(tmp_path / "checkpoints.sqlite")
    driver, model, profile_id = failed_send(sb, saver, "failed.send@example.com", "failed")
    reads = sb.call_counts["get_profile"]
    result = driver.retry()
    assert result.state["send"]["status"] == "sent" and result.state["decision"]["policy_note"] == "within policy"
    assert sb.call_counts["get_profile"] == reads, "nothing before the send runs again"
    assert len(model.requests) == 1
    assert len(sequence_starts(sb, profile_id)) == 1 and len(first_touchpoints(sb, profile_id)) == 1


def test_a_retry_that_decides_again_before_the_killed_attempts_start_shows_reports_that_start(
        tmp_path: Path) -> None:
    """Killed right after its send, before Klaviyo showed the start: the retry finds no start, asks
    the model again (it now says nurture) and sends; Klaviyo keeps the first start (fast-track). The
    read-back shows this submission's fast-track, so the run reports and records that start as its
    own, with the decision it carries, not as another run's."""
    sb = Sandbox(seed=7, rate_limit_factor=None, clock=ManualClock(WEDNESDAY_3PM_NY))
    try:
        event = sign_up(sb, "unshown.start@example.com", HOT)
        pid = event["data"]["relationships"]["profile"]["data"]["id"]
        sb.pipeline.consistency_delay = 5  # a start shows 5 s after Klaviyo took it
        killed = build_context("lead-magnet-sequencer", sandbox=sb, clock=sb.clock, thread_id="t", audit=False)
        killed.toolkit.run(  # what the killed attempt's send step sent
            "create_event", metric={"name": "Lead Sequence Started"}, profile={"id": pid},
            unique_id=f"lead-sequence:{pid}",
            properties={"sequence": "fast-track", "touchpoint": 1, "send_at": "2026-11-25T20:01:00+00:00",
                        "lead_score": 77, "lead_band": "hot", "decided_by": "model", "form_id": "TRAILG",
                        "submission_event_id": event["data"]["id"]},
        )
        driver = RunDriver(build_context("lead-magnet-sequencer", sandbox=sb, clock=sb.clock, thread_id="t",
                                         audit=False, model=choose("nurture")), checkpointer(tmp_path / "c.sqlite"))
        driver.graph.update_state(driver.config, {"input": event}, as_node="__start__")  # what the kill left
        result = driver.retry()
        assert result.state["started"]["sequence"] == "fast-track" and result.state["started"]["own"] is True
        assert result.state["decision"]["sequence"] == "fast-track"
        assert result.state["decision"]["policy_note"] == "earlier attempt"
        outcome = result.state["outcome"]
        assert outcome.startswith("sent: sequence 'fast-track' (model decided)"), outcome
        assert result.state["schedule"]["send_at"] == "2026-11-25T20:01:00+00:00"
        sb.settle()
        assert [e.attributes["event_properties"]["sequence"] for e in sequence_starts(sb, pid)] == ["fast-track"]
    finally:
        sb.close()
