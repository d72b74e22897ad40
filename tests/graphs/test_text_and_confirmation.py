"""What a tester found past the ASCII and single-run paths: filters built from non-ASCII text,
a profile that already records its sequence, and import jobs Klaviyo had not finished.

Each runs the persona's graph against the in-process sandbox over HTTP.
"""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from graphs.segment_sync import exit_code
from graphs.segment_sync.report import PARTIAL_EXIT
from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.filters import parse_filter, quoted
from klaviyo_toolkit.ratelimit import RateLimiter
from personas.runtime import run_persona

from .leads import COLD, HOT, sequence_starts, sign_up
from .test_lead_magnet import WEDNESDAY_3PM_NY, choose
from .test_segment_sync import World, run, world, write_csv

__all__ = ["world"]  # a fixture, used by name


@pytest.mark.parametrize("text", ["josé@example.com", "Ünïcode.Sup@Example.com", 'a"b\\c@example.com', "李@例子.中国"])
def test_a_filter_literal_keeps_its_text(text: str) -> None:
    """json.dumps wrote josé as "jos\\u00e9", which Klaviyo's filters do not decode: no profile matched."""
    assert "\\u" not in quoted(text)
    assert parse_filter(f"equals(email,{quoted(text)})").value == text  # type: ignore[union-attr]
    assert parse_filter(f"any(email,{quoted([text, 'x@example.com'])})").value == [text, "x@example.com"]  # type: ignore[union-attr]


def test_the_syncer_never_resubscribes_a_suppressed_profile_whose_email_is_not_ascii(world: World) -> None:
    list_id = world.new_list("Target")
    for email in ("josé@example.com", "zoë@example.com"):
        world.client.call("create_profile", email=email)
    world.suppress("josé@example.com")
    world.subscribe("zoë@example.com")
    world.client.call("bulk_unsubscribe_profiles", profiles=[
        {"email": "zoë@example.com", "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}}])
    world.settle()
    path = write_csv(world.home / "u.csv", [{"email": "josé@example.com", "consent": "yes"},
                                            {"email": "zoë@example.com", "consent": "yes"}], ["email", "consent"])
    world.reset_counts()
    state = run(world.context("unicode"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id})
    world.settle()
    assert world.sent("bulk_subscribe_profiles") == [], "a suppressed or unsubscribed profile is never subscribed"
    assert state.values["result"]["suppressed"]["count"] == 2
    assert world.consent("josé@example.com")["consent"] != "SUBSCRIBED"
    assert world.consent("zoë@example.com")["consent"] == "UNSUBSCRIBED"


@pytest.fixture
def sb() -> Any:
    sandbox = Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock(WEDNESDAY_3PM_NY))
    yield sandbox
    sandbox.close()


def _run(sb: Sandbox, event: dict[str, Any], model: Any) -> dict[str, Any]:
    return run_persona("lead-magnet-sequencer", {"input": event}, sandbox=sb, model=model, saver=InMemorySaver(),
                       clock=sb.clock).state


def test_a_lead_named_by_a_non_ascii_email_only_is_found(sb: Sandbox) -> None:
    event = sign_up(sb, "chloé@example.com", HOT)
    event["data"]["relationships"]["profile"]["data"] = None  # the submission names the lead by email only
    event["data"]["attributes"]["event_properties"]["$email"] = "chloé@example.com"
    state = _run(sb, event, choose("fast-track"))
    assert "no Klaviyo profile has the email" not in state["outcome"], state["outcome"]


def test_a_sequence_recorded_on_the_profile_counts_as_started_before_its_event_is_readable(sb: Sandbox) -> None:
    """Klaviyo ingests events asynchronously: a second submission run right after the first may not
    see the start event yet, but it sees the sequence the first recorded on the profile (a profile
    write is read back at once), and must not overwrite it with its own decision."""
    first = sign_up(sb, "twice@example.com", HOT)
    pid = first["data"]["relationships"]["profile"]["data"]["id"]
    assert _run(sb, first, choose("fast-track"))["send"]["status"] == "sent"
    for start in sequence_starts(sb, pid):  # as if the start event were not readable yet
        sb.store.delete(start.type, start.id)
    second = sign_up(sb, "twice@example.com", COLD, submission_id="form:twice-2")
    state = _run(sb, second, choose("education"))
    assert "already started 'fast-track'" in state["outcome"], state["outcome"]
    profile = sb.client().call("get_profile", id=pid).data["attributes"]["properties"]
    assert profile["lead_sequence"] == "fast-track"


def test_a_sync_whose_import_jobs_were_still_running_is_partial(world: World) -> None:
    """Rows of an import job Klaviyo had not finished are not confirmed: never reported as done."""
    world.sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=world.clock, realistic=True)  # jobs take 10 s
    world.client = world.sb.client(clock=world.clock, rate_limiter=RateLimiter(world.clock, factor=None))
    list_id = world.new_list("Target")
    path = write_csv(world.home / "j.csv", ({"email": f"j{i}@example.com"} for i in range(5)), ["email"])
    ctx = world.context("jobs", job_timeout_seconds=1.0, job_poll_seconds=0.5)
    state = run(ctx, {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id})
    result = state.values["result"]
    assert result["jobs"].get("still_running"), result["jobs"]
    assert result["status"] == "partial" and "not confirmed" in state.values["summary"]
    assert exit_code(state.values) == PARTIAL_EXIT
