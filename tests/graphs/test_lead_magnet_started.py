"""The sequence a run reports and records is the one Klaviyo started.

Every start carries the lead's ``unique_id``, so Klaviyo keeps the first and answers the others with
the same 202 while dropping them. A run whose start was not the one kept (a retried run after
another run's start, two runs of one lead at once) must say "already started (Y)" and record Y;
a start Klaviyo has not shown yet (it ingests events asynchronously) is reported as unconfirmed,
and the profile is not written with a guess.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from graphs.lead_magnet.render import started_line
from klaviyo_sandbox import REALISTIC_CONSISTENCY_DELAY, Faults, Sandbox
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import ServerError
from personas.kernel.models import ScriptedChatModel
from personas.runtime import RunDriver, build_context, run_persona

from .leads import COLD, HOT, WEDNESDAY_3PM_NY, choose, first_touchpoints, sb, sequence_starts, sign_up

__all__ = ["sb"]  # the sandbox fixture (leads.py), used by name

PERSONA = "lead-magnet-sequencer"


def run(sb: Sandbox, event: dict[str, Any], model: Any, thread: str | None = None) -> Any:
    return run_persona(PERSONA, {"input": event}, sandbox=sb, model=model, saver=InMemorySaver(), clock=sb.clock,
                       thread_id=thread)


def recorded(sb: Sandbox, pid: str) -> dict[str, Any]:
    props = sb.client().call("get_profile", id=pid).data["attributes"].get("properties") or {}
    return {k: v for k, v in props.items() if k.startswith("lead_")}


def started(sb: Sandbox, pid: str) -> list[str]:
    return [e.attributes["event_properties"]["sequence"] for e in sequence_starts(sb, pid)]


def pid_of(event: dict[str, Any]) -> str:
    return str(event["data"]["relationships"]["profile"]["data"]["id"])


def test_a_run_retried_after_another_run_started_the_lead_reports_and_records_that_sequence(sb: Sandbox) -> None:
    """Run A (hot) fails at its send; the lead's second submission (cold) starts education; A,
    retried, sends a start Klaviyo drops: it says so, and the profile keeps education."""
    first = sign_up(sb, "retried.late@example.com", HOT, submission_id="sub-1")
    pid = pid_of(first)
    driver = RunDriver(build_context(PERSONA, sandbox=sb, model=choose("fast-track"), clock=sb.clock,
                                     thread_id="run-a"), InMemorySaver())
    sb.faults = Faults(error_rate=1.0, status=503, operations=["create_event"])
    try:
        with pytest.raises(ServerError):
            driver.invoke({"input": first})
    finally:
        sb.faults = Faults()
    sb.clock.advance(60)
    other = run(sb, sign_up(sb, "retried.late@example.com", COLD, submission_id="sub-2"), choose("education"))
    assert other.state["outcome"].startswith("sent: sequence 'education'")

    again = driver.retry()
    assert again.status == "done"
    assert again.state["outcome"].startswith("already started 'education'"), again.state["outcome"]
    assert again.state["started"]["sequence"] == "education" and again.state["started"]["own"] is False
    assert started(sb, pid) == ["education"] and len(first_touchpoints(sb, pid)) == 1
    assert recorded(sb, pid)["lead_sequence"] == "education", "the profile names the sequence Klaviyo started"
    assert recorded(sb, pid)["lead_score"] == -10, "and the decision that started it, not the dropped one's"


def two_runs_at_once(sb: Sandbox, event: dict[str, Any], second_choice: str) -> tuple[Any, Any]:
    """Two runs of ``event``: the first (choosing nurture) decides and sends while the second waits
    for its model's answer (``second_choice``); both find no start when they look. (first, second)."""
    results: dict[str, Any] = {}

    def other_run_meanwhile(messages: Any) -> AIMessage:
        worker = threading.Thread(target=lambda: results.setdefault("first", run(sb, event, choose("nurture"))))
        worker.start()
        worker.join(timeout=60)
        call = {"name": "choose_sequence", "args": {"sequence": second_choice, "reason": "hot"}, "id": "c2"}
        return AIMessage("", tool_calls=[call])

    second = run(sb, event, ScriptedChatModel([other_run_meanwhile]))
    return results["first"], second


def test_two_runs_of_one_submission_at_once_both_report_the_sequence_klaviyo_kept(sb: Sandbox) -> None:
    """Both runs find no start and decide (differently); the one whose start comes second learns
    from the read-back that Klaviyo kept the other's."""
    event = sign_up(sb, "both.at.once@example.com", HOT)
    pid = pid_of(event)
    first, second = two_runs_at_once(sb, event, "fast-track")
    assert first.state["outcome"].startswith("sent: sequence 'nurture'")
    assert first.state["started"]["own"] is True
    assert second.state["send"]["status"] == "sent", "Klaviyo answered its start with 202 too"
    assert second.state["outcome"].startswith("already started 'nurture'"), second.state["outcome"]
    assert "dropped" in second.state["outcome"]
    assert started(sb, pid) == ["nurture"] and recorded(sb, pid)["lead_sequence"] == "nurture"


def test_two_runs_of_one_submission_deciding_alike_claim_the_submissions_start_not_their_own(sb: Sandbox) -> None:
    """Same submission, same decision: the start events are identical, so neither run can tell whose
    request Klaviyo kept. Each says the start is the submission's; "this run's start" claimed, for
    both runs, a start that only one of them made (one start, one first touchpoint)."""
    event = sign_up(sb, "alike.at.once@example.com", HOT)
    pid = pid_of(event)
    first, second = two_runs_at_once(sb, event, "nurture")
    assert started(sb, pid) == ["nurture"] and len(first_touchpoints(sb, pid)) == 1
    for result in (first, second):
        assert result.state["started"]["own"] is True, "the start names this submission and its sequence"
        assert started_line(result.state["started"]).endswith("(this submission's start)"), result.state["started"]


def slow_ingest(sb: Sandbox) -> None:
    """From now on an event shows a minute after Klaviyo accepts it: past the 10 s a run waits."""
    sb.pipeline.consistency_delay = 60


def test_a_start_not_shown_yet_never_overwrites_the_sequence_the_profile_names() -> None:
    """Two submissions at once while Klaviyo is slow to show events: the hot run starts fast-track
    and, unconfirmed, records it on the empty profile; the cold run, which had found nothing and
    sent too, cannot see which start came first and leaves the profile's fast-track alone."""
    sb = Sandbox(seed=7, rate_limit_factor=None, clock=ManualClock(WEDNESDAY_3PM_NY))
    try:
        hot = sign_up(sb, "slow.ingest@example.com", HOT, submission_id="sub-1")
        sb.clock.advance(60)
        cold = sign_up(sb, "slow.ingest@example.com", COLD, submission_id="sub-2")
        pid = pid_of(hot)
        slow_ingest(sb)
        results: dict[str, Any] = {}

        def hot_run_meanwhile(messages: Any) -> AIMessage:
            worker = threading.Thread(target=lambda: results.setdefault("hot", run(sb, hot, choose("fast-track"))))
            worker.start()
            worker.join(timeout=60)
            call = {"name": "choose_sequence", "args": {"sequence": "education", "reason": "cold"}, "id": "c2"}
            return AIMessage("", tool_calls=[call])

        second = run(sb, cold, ScriptedChatModel([hot_run_meanwhile]))
        first = results["hot"].state
        assert first["started"] == {"confirmed": False, "requested": "fast-track", "waited": 10.0}
        assert first["outcome"].startswith("sent, unconfirmed: Klaviyo accepted the start of 'fast-track'")
        assert first["outcome"].endswith("the profile, which named no sequence, records this run's 'fast-track'")
        assert second.state["started"]["confirmed"] is False and second.state["send"]["status"] == "sent"
        assert second.state["outcome"].startswith("sent, unconfirmed: Klaviyo accepted the start of 'education'")
        assert second.state["outcome"].endswith(
            "the profile already names 'fast-track' (another run's record), so it was left as it is")
        assert recorded(sb, pid)["lead_sequence"] == "fast-track" and recorded(sb, pid)["lead_score"] == 77

        sb.settle()
        assert started(sb, pid) == ["fast-track"] and recorded(sb, pid)["lead_sequence"] == "fast-track"
    finally:
        sb.close()


def test_a_start_read_back_later_replaces_an_unconfirmed_record_that_differs() -> None:
    """The hot run's start is taken, but its record step fails (Klaviyo failing at update_profile);
    the cold submission runs before Klaviyo shows the start, sends, and records its own education on
    the empty profile, unconfirmed. The hot run, retried once the start shows, reads it back as its
    own and records fast-track over it."""
    sb = Sandbox(seed=7, rate_limit_factor=None, clock=ManualClock(WEDNESDAY_3PM_NY))
    try:
        hot = sign_up(sb, "late.record@example.com", HOT, submission_id="sub-1")
        sb.clock.advance(60)
        cold = sign_up(sb, "late.record@example.com", COLD, submission_id="sub-2")
        pid = pid_of(hot)
        slow_ingest(sb)
        driver = RunDriver(build_context(PERSONA, sandbox=sb, model=choose("fast-track"), clock=sb.clock,
                                         thread_id="hot"), InMemorySaver())
        sb.faults = Faults(error_rate=1.0, status=503, operations=["update_profile"])
        try:
            with pytest.raises(ServerError):
                driver.invoke({"input": hot})
        finally:
            sb.faults = Faults()
        assert driver.result().next == ("record",)
        other = run(sb, cold, choose("education"))
        assert other.state["outcome"].startswith("sent, unconfirmed: Klaviyo accepted the start of 'education'")
        assert recorded(sb, pid)["lead_sequence"] == "education", "unconfirmed, on a profile that named none"

        sb.clock.advance(60)  # Klaviyo shows the starts it took
        sb.tick()
        assert started(sb, pid) == ["fast-track"]
        again = driver.retry()
        assert again.state["outcome"].startswith("sent: sequence 'fast-track'") and again.state["started"]["own"]
        assert recorded(sb, pid)["lead_sequence"] == "fast-track" and recorded(sb, pid)["lead_score"] == 77
        later = run(sb, cold, choose("education"))
        assert later.state["outcome"].startswith("no new sequence: this lead already started 'fast-track'")
        assert recorded(sb, pid)["lead_sequence"] == "fast-track"
    finally:
        sb.close()


def test_a_start_that_shows_within_the_wait_is_confirmed() -> None:
    """Klaviyo's usual few seconds (the realistic sandbox's 5 s): the record step reads again until
    the start shows, then records it as the run's own."""
    sb = Sandbox(seed=7, rate_limit_factor=None, clock=ManualClock(WEDNESDAY_3PM_NY))
    try:
        event = sign_up(sb, "few.seconds@example.com", HOT)
        pid = pid_of(event)
        sb.pipeline.consistency_delay = REALISTIC_CONSISTENCY_DELAY  # 5 s
        result = run(sb, event, choose("fast-track"))
        assert result.state["outcome"].startswith("sent: sequence 'fast-track'"), result.state["outcome"]
        assert result.state["started"]["own"] is True and result.state["started"]["confirmed"] is True
        assert recorded(sb, pid)["lead_sequence"] == "fast-track"
    finally:
        sb.close()


def test_the_ordinary_path_adds_one_read_after_the_send(sb: Sandbox) -> None:
    event = sign_up(sb, "ordinary.calls@example.com", HOT)
    before = len(sb.requests)
    run(sb, event, choose("fast-track"))
    calls = [r["operation_id"] for r in list(sb.requests)[before:]]
    assert calls == ["get_profile", "get_metrics", "get_events", "get_events", "create_event", "get_events",
                     "update_profile"]


def test_a_send_retried_after_the_recheck_window_sends_nothing_to_a_lead_another_run_started(sb: Sandbox) -> None:
    """A decision that waited reads the lead again before its send (``recheck_after``): that read
    also shows the sequence another run recorded meanwhile, so nothing is sent (no call more)."""
    first = sign_up(sb, "waited.send@example.com", HOT, submission_id="sub-1")
    pid = pid_of(first)
    driver = RunDriver(build_context(PERSONA, sandbox=sb, model=choose("fast-track"), clock=sb.clock,
                                     thread_id="waited"), InMemorySaver())
    sb.faults = Faults(error_rate=1.0, status=503, operations=["create_event"])
    try:
        with pytest.raises(ServerError):
            driver.invoke({"input": first})
    finally:
        sb.faults = Faults()
    sb.clock.advance(60)
    run(sb, sign_up(sb, "waited.send@example.com", COLD, submission_id="sub-2"), choose("education"))
    sb.clock.advance(3600)
    sends = sb.call_counts["create_event"]
    again = driver.retry()
    assert again.state["outcome"].startswith("no new sequence: this lead already started 'education'")
    assert "read again before this run's send" in again.state["outcome"]
    assert again.state["send"]["status"] == "not_sent" and sb.call_counts["create_event"] == sends
    assert started(sb, pid) == ["education"] and recorded(sb, pid)["lead_sequence"] == "education"


# -- item: a repeat submission does not rewrite the recorded decision ------------------------------
def test_a_repeat_submission_leaves_the_recorded_decision_as_it_was(sb: Sandbox) -> None:
    first = sign_up(sb, "repeat.record@example.com", HOT, submission_id="sub-1")
    pid = pid_of(first)
    run(sb, first, choose("fast-track"))
    decided = recorded(sb, pid)
    assert decided["lead_score"] == 77 and decided["lead_sequence"] == "fast-track"
    sb.clock.advance(86400)
    second = sign_up(sb, "repeat.record@example.com", COLD, submission_id="sub-2")
    writes = sb.call_counts["update_profile"]
    again = run(sb, second, choose("education"))
    assert again.state["score"]["total"] == -10 and again.state["decision"]["policy_note"] == "repeat submission"
    assert recorded(sb, pid) == decided, "the decision that started the sequence is kept"
    assert sb.call_counts["update_profile"] == writes, "nothing to write"
    assert again.state["record"]["profile_properties"] is None


def test_a_repeat_submission_records_the_start_a_failed_record_step_left_out(sb: Sandbox) -> None:
    """The first run started fast-track but could not record it (Klaviyo failing at update_profile);
    the lead's next submission records the start as its event says, not its own score."""
    first = sign_up(sb, "unrecorded.start@example.com", HOT, submission_id="sub-1")
    pid = pid_of(first)
    driver = RunDriver(build_context(PERSONA, sandbox=sb, model=choose("fast-track"), clock=sb.clock,
                                     thread_id="unrecorded"), InMemorySaver())
    sb.faults = Faults(error_rate=1.0, status=503, operations=["update_profile"])
    try:
        with pytest.raises(ServerError):
            driver.invoke({"input": first})
    finally:
        sb.faults = Faults()
    assert "lead_sequence" not in recorded(sb, pid)
    sb.clock.advance(60)
    run(sb, sign_up(sb, "unrecorded.start@example.com", COLD, submission_id="sub-2"), choose("education"))
    start = sequence_starts(sb, pid)[0]
    assert recorded(sb, pid) == {"lead_sequence": "fast-track", "lead_score": 77, "lead_band": "hot",
                                 "lead_decided_by": "model", "lead_scored_at": start.attributes["datetime"]}


def test_retrying_a_finished_run_returns_its_result_and_runs_nothing(sb: Sandbox) -> None:
    """What ``personas run --retry`` and scripts that retry until success rely on."""
    event = sign_up(sb, "retry.until.done@example.com", HOT)
    driver = RunDriver(build_context(PERSONA, sandbox=sb, model=choose("fast-track"), clock=sb.clock,
                                     thread_id="until-done"), InMemorySaver())
    done = driver.invoke({"input": event})
    calls = sum(sb.call_counts.values())
    again = driver.retry()
    assert again.status == "done" and again.state["outcome"] == done.state["outcome"]
    assert sum(sb.call_counts.values()) == calls
