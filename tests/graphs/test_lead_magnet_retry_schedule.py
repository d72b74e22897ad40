"""A send retried after its decided time has passed is scheduled again from the time of the retry: sent
with the old time, the first touchpoint went out at once, whenever the retry came (at night, in
quiet hours, on a weekend)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from klaviyo_sandbox import Faults, Sandbox
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import ServerError
from personas.kernel.spec import ApprovalPolicy
from personas.runtime import RunDriver, build_context, load_persona

from .leads import HOT, choose, first_touchpoints, sequence_starts, sign_up

PERSONA = "lead-magnet-sequencer"
#: Friday 2026-11-27, 16:50 in New York: inside the send window, so the decision sends at once (16:51).
FRIDAY_1650_NY = dt.datetime(2026, 11, 27, 21, 50, tzinfo=dt.UTC).timestamp()
#: Monday 09:00 in New York, when the window opens after the weekend.
MONDAY_9AM_NY = "2026-11-30T14:00:00+00:00"


@pytest.fixture()
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox(seed=5, rate_limit_factor=None, clock=ManualClock(FRIDAY_1650_NY))
    yield sandbox
    sandbox.close()


def stopped_at_send(sb: Sandbox, email: str, persona: object = PERSONA) -> tuple[RunDriver, str]:
    """A hot lead's run whose send Klaviyo kept failing (503 past the client's retries): stopped at the send."""
    event = sign_up(sb, email, HOT)
    ctx = build_context(persona, sandbox=sb, model=choose("fast-track"), clock=sb.clock, thread_id=email)
    driver = RunDriver(ctx, InMemorySaver())
    sb.faults = Faults(error_rate=1.0, status=503, operations=["create_event"])
    try:
        with pytest.raises(ServerError):
            driver.invoke({"input": event})
    finally:
        sb.faults = Faults()
    stopped = driver.result()
    assert stopped.next == ("send",) and stopped.state["schedule"]["immediate"] is True
    return driver, event["data"]["relationships"]["profile"]["data"]["id"]


def test_a_send_retried_in_quiet_hours_is_scheduled_for_the_next_window_not_sent_at_once(sb: Sandbox) -> None:
    driver, pid = stopped_at_send(sb, "friday.outage@example.com")
    sb.clock.advance(6 * 3600)  # Friday 22:50 in New York: quiet hours, and the weekend follows
    done = driver.retry()
    assert done.status == "done" and done.state["send"]["status"] == "sent"
    assert done.state["schedule"]["send_at"] == MONDAY_9AM_NY, done.state["schedule"]
    assert done.state["schedule"]["local"] == "2026-11-30T09:00-05:00"
    assert "scheduled again" in done.state["schedule"]["reason"]
    assert "2026-11-30T09:00-05:00" in done.state["outcome"]
    starts = sequence_starts(sb, pid)
    assert len(starts) == 1 and starts[0].attributes["event_properties"]["send_at"] == MONDAY_9AM_NY
    (touch,) = first_touchpoints(sb, pid)
    assert touch["send_at"] == MONDAY_9AM_NY, "the first touchpoint waits for the window, not the past time"


def test_a_send_retried_inside_the_window_goes_now_and_says_so(sb: Sandbox) -> None:
    driver, pid = stopped_at_send(sb, "short.outage@example.com")
    sb.clock.advance(3 * 86400 - 6 * 3600)  # Monday 10:50 in New York
    done = driver.retry()
    assert done.state["schedule"]["immediate"] is True
    assert done.state["schedule"]["local"] == "2026-11-30T10:51-05:00", done.state["schedule"]
    assert first_touchpoints(sb, pid)[0]["send_at"] == "2026-11-30T15:51:00+00:00"


def test_a_send_retried_before_its_time_keeps_it(sb: Sandbox) -> None:
    driver, pid = stopped_at_send(sb, "quick.retry@example.com")
    decided = driver.result().state["schedule"]
    done = driver.retry()  # at once: the decided minute has not come yet
    assert done.state["schedule"] == decided
    assert first_touchpoints(sb, pid)[0]["send_at"] == decided["send_at"]


def test_a_send_that_asks_for_approval_sends_the_time_its_request_showed(sb: Sandbox) -> None:
    """The approval is bound to the request shown, its time included: approved late, it is sent as shown."""
    spec = load_persona(PERSONA).model_copy(update={"approval": ApprovalPolicy(also=["create_event"])})
    event = sign_up(sb, "asks.first@example.com", HOT)
    ctx = build_context(spec, sandbox=sb, model=choose("fast-track"), clock=sb.clock, thread_id="asks-first")
    driver = RunDriver(ctx, InMemorySaver())
    paused = driver.invoke({"input": event})
    shown = paused.interrupts[0]["request"]["body"]["data"]["attributes"]["properties"]["send_at"]
    sb.clock.advance(6 * 3600)
    done = driver.invoke(resume={"action": "approve", "fingerprint": paused.interrupts[0]["fingerprint"]})
    assert done.state["send"]["status"] == "sent"
    starts = sequence_starts(sb, event["data"]["relationships"]["profile"]["data"]["id"])
    assert len(starts) == 1 and starts[0].attributes["event_properties"]["send_at"] == shown


def test_a_send_whose_answer_was_lost_reports_the_time_klaviyo_kept_not_the_new_one(sb: Sandbox) -> None:
    """Klaviyo took the first send (its answer lost on the way back), so the retry's start, scheduled
    again, is dropped as the same unique_id: the run reports the time the start Klaviyo kept goes at."""
    from klaviyo_toolkit.client import RetryPolicy
    from klaviyo_toolkit.errors import KlaviyoError

    event = sign_up(sb, "lost.answer@example.com", HOT)
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    client = sb.client(retry=RetryPolicy(max_retries=0))
    ctx = build_context(PERSONA, client=client, model=choose("fast-track"), clock=sb.clock, thread_id="lost-answer")
    driver = RunDriver(ctx, InMemorySaver())
    sb.faults = Faults(lost_response_rate=1.0, operations=["create_event"], count=1)
    with pytest.raises(KlaviyoError):
        driver.invoke({"input": event})
    sb.faults = Faults()
    decided = driver.result().state["schedule"]
    sb.clock.advance(6 * 3600)
    done = driver.retry()
    kept = sequence_starts(sb, pid)
    assert len(kept) == 1 and kept[0].attributes["event_properties"]["send_at"] == decided["send_at"]
    assert done.state["started"]["own"] is True
    assert done.state["schedule"]["send_at"] == decided["send_at"], done.state["schedule"]
    assert decided["local"] in done.state["outcome"]
