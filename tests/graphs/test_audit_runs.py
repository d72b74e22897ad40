"""Audit rows follow the run that made each call: a client shared by several runs files every
attempt once, under its own thread, and keeps no hook behind."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from klaviyo_sandbox import Faults, Sandbox
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.ratelimit import RateLimiter
from personas.kernel.config import Config
from personas.runtime import build_context, run_persona
from personas.runtime.context import audit_log

from .leads import HOT, sign_up

WEDNESDAY_3PM_NY = dt.datetime(2026, 11, 25, 20, 0, tzinfo=dt.UTC).timestamp()


def test_one_client_in_five_runs_files_each_attempt_once_under_its_own_thread(tmp_path: Path) -> None:
    clock = ManualClock(WEDNESDAY_3PM_NY)
    sb = Sandbox(seed=42, rate_limit_factor=None, clock=clock)
    config = Config(home=tmp_path)
    events = [sign_up(sb, f"lead{n}@example.com", HOT) for n in range(5)]
    client = sb.client(clock=clock, rate_limiter=RateLimiter(clock, factor=None))
    hooks_before = list(client.hooks)
    sb.faults = Faults(error_rate=0.3, status=503, operations=["get_events", "create_event"], seed=7)
    before = len(sb.requests)
    for n, event in enumerate(events):
        ctx = build_context("lead-magnet-sequencer", config=config, client=client, clock=clock,
                            thread_id=f"lead-{n}", model=None)
        run_persona(ctx.spec, {"input": event}, context=ctx, saver=InMemorySaver())
    sb.faults = Faults()
    attempts = list(sb.requests)[before:]
    assert client.hooks == hooks_before, "no hook is left on a shared client"
    rows = [r for r in audit_log(config).query(limit=None) if r.status in ("ok", "error")]
    assert len(rows) == len(attempts), "one audit row per HTTP attempt"
    assert sum(1 for a in attempts if a["status"] >= 500) == sum(1 for r in rows if r.status == "error") > 0
    for n in range(5):
        thread_rows = [r for r in rows if r.thread_id == f"lead-{n}"]
        assert {r.tool for r in thread_rows} >= {"get_profile", "create_event"}
    assert {r.thread_id for r in rows} == {f"lead-{n}" for n in range(5)}


@pytest.mark.parametrize("a, b", [("sync/1", "sync_1"), ("x:y", "x_y"), ("A", "a")])
def test_per_thread_files_never_share_a_name(a: str, b: str) -> None:
    from personas.kernel.context import thread_key

    assert thread_key(a) != thread_key(b)
    assert "/" not in thread_key("../../etc/passwd") and thread_key("../x") != thread_key("__x")


def test_a_call_that_goes_without_approval_by_a_waiver_says_so_in_the_log(tmp_path: Path) -> None:
    """The sequencer's ``create_event`` sends (a metric-triggered flow starts) and its persona file
    waives that: the log shows the waiver, right before the call's own row, never a bare ``ok``; a
    write with nothing waived (``update_profile``) has no such row."""
    clock = ManualClock(WEDNESDAY_3PM_NY)
    sb = Sandbox(seed=42, rate_limit_factor=None, clock=clock)
    config = Config(home=tmp_path)
    event = sign_up(sb, "lead@example.com", HOT)
    ctx = build_context("lead-magnet-sequencer", config=config, sandbox=sb, clock=clock, thread_id="lead-w", model=None)
    run_persona(ctx.spec, {"input": event}, context=ctx, saver=InMemorySaver())
    rows = audit_log(config).query(limit=None)  # newest first
    oldest_first = [(r.tool, r.status) for r in reversed(rows)]
    sent = oldest_first.index(("create_event", "ok"))
    assert oldest_first[sent - 1] == ("create_event", "waived"), oldest_first
    waived = next(r for r in rows if r.status == "waived")
    assert waived.extra["note"] == "sending waived by approval.relax.create_event"
    assert waived.persona == "lead-magnet-sequencer" and waived.thread_id == "lead-w" and waived.prompt_version
    assert waived.arguments["metric"] == {"name": "Lead Sequence Started"}
    assert {r.tool for r in rows if r.status == "waived"} == {"create_event"}, "only the waived call"
    assert audit_log(config).verify().ok
