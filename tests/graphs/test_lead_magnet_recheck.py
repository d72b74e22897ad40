"""A decision that waited is checked again before its send: a lead who withdrew consent meanwhile
gets no sequence, whether the run waited on a failed send or on an approval."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from klaviyo_sandbox import Faults, Sandbox
from klaviyo_toolkit.errors import ServerError
from personas.kernel.models import ScriptedChatModel
from personas.kernel.spec import ApprovalPolicy
from personas.runtime import RunDriver, build_context, load_persona, run_persona

from .leads import HOT, WARM, choose, sb, sequence_starts, sign_up

__all__ = ["sb"]  # the sandbox fixture (leads.py), used by name

PERSONA = "lead-magnet-sequencer"


def unsubscribe(sb: Sandbox, email: str) -> None:
    """The lead unsubscribes, through Klaviyo's API, and the job runs."""
    unsub = {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}
    sb.client().call("bulk_unsubscribe_profiles", profiles=[{"email": email, "subscriptions": unsub}])
    sb.settle()


def failed_send(sb: Sandbox, email: str, thread: str) -> tuple[RunDriver, str]:
    """A run whose send failed past the client's retries: stopped at the send, resumable."""
    event = sign_up(sb, email, HOT)
    ctx = build_context(PERSONA, sandbox=sb, model=choose("fast-track"), clock=sb.clock, thread_id=thread)
    driver = RunDriver(ctx, InMemorySaver())
    sb.faults = Faults(error_rate=1.0, status=503, operations=["create_event"])
    try:
        with pytest.raises(ServerError):
            driver.invoke({"input": event})
    finally:
        sb.faults = Faults()
    assert driver.result().next == ("send",)
    return driver, event["data"]["relationships"]["profile"]["data"]["id"]


def lead_properties(sb: Sandbox, pid: str) -> dict[str, Any]:
    return sb.client().call("get_profile", id=pid).data["attributes"]["properties"]  # type: ignore[no-any-return]


def test_a_retried_send_to_a_lead_who_unsubscribed_meanwhile_starts_nothing(sb: Sandbox) -> None:
    driver, pid = failed_send(sb, "changed.mind@example.com", "changed-mind")
    unsubscribe(sb, "changed.mind@example.com")
    sb.clock.advance(3 * 3600)
    done = driver.retry()
    assert done.status == "done" and done.state["send"]["status"] == "not_sent"
    assert done.state["send"]["consent_changed"] is True
    assert done.state["outcome"].startswith("no marketing send: the lead is now unsubscribed from email marketing")
    assert "in the 3 hours since the decision" in done.state["outcome"]
    assert sequence_starts(sb, pid) == []
    assert lead_properties(sb, pid)["lead_sequence"] is None, "the score is recorded, no sequence"


def test_a_retried_send_past_the_window_reads_consent_once_and_sends_once(sb: Sandbox) -> None:
    driver, pid = failed_send(sb, "still.keen@example.com", "still-keen")
    sb.clock.advance(600)
    reads = sb.call_counts["get_profile"]
    done = driver.retry()
    assert done.state["send"]["status"] == "sent" and len(sequence_starts(sb, pid)) == 1
    assert sb.call_counts["get_profile"] == reads + 1, "one read of the lead before the send"
    assert lead_properties(sb, pid)["lead_sequence"] == "fast-track"


def test_a_send_retried_within_the_window_makes_no_extra_call(sb: Sandbox) -> None:
    driver, pid = failed_send(sb, "quick.retry@example.com", "quick-retry")
    sb.clock.advance(60)
    reads = sb.call_counts["get_profile"]
    assert driver.retry().state["send"]["status"] == "sent"
    assert sb.call_counts["get_profile"] == reads and len(sequence_starts(sb, pid)) == 1


def waiting_for_approval(sb: Sandbox, email: str, thread: str) -> tuple[Any, str, dict[str, Any]]:
    """A run of a persona that asks before its send, paused there: (the pause, profile id, how to resume)."""
    spec = load_persona(PERSONA).model_copy(update={"approval": ApprovalPolicy(also=["create_event"])})
    event = sign_up(sb, email, WARM)
    options: dict[str, Any] = {"sandbox": sb, "model": choose("nurture"), "saver": InMemorySaver(),
                               "clock": sb.clock, "thread_id": thread}
    paused = run_persona(spec, {"input": event}, **options)
    assert paused.paused and paused.interrupts[0]["tool"] == "create_event"
    return paused, event["data"]["relationships"]["profile"]["data"]["id"], {"persona": spec, **options}


def approve(paused: Any, options: dict[str, Any]) -> Any:
    answer = {"action": "approve", "fingerprint": paused.interrupts[0]["fingerprint"]}
    return run_persona(options["persona"], None, resume=answer, **{k: v for k, v in options.items() if k != "persona"})


def test_an_approval_given_after_the_lead_unsubscribed_starts_nothing_and_asks_nothing_again(sb: Sandbox) -> None:
    paused, pid, options = waiting_for_approval(sb, "slow.approval@example.com", "slow-approval")
    unsubscribe(sb, "slow.approval@example.com")
    sb.clock.advance(2 * 86400)
    done = approve(paused, options)
    assert done.status == "done" and not done.paused, "no second approval is asked for"
    assert done.state["send"]["status"] == "not_sent" and "2 days since the decision" in done.state["outcome"]
    assert sequence_starts(sb, pid) == []


def test_an_approval_given_late_for_a_lead_still_subscribed_sends_the_request_it_approved(sb: Sandbox) -> None:
    paused, pid, options = waiting_for_approval(sb, "late.yes@example.com", "late-yes")
    sb.clock.advance(86400)
    done = approve(paused, options)
    assert done.status == "done" and done.state["send"]["status"] == "sent"
    approved = paused.interrupts[0]["request"]["body"]["data"]["attributes"]["properties"]
    starts = sequence_starts(sb, pid)
    assert len(starts) == 1 and starts[0].attributes["event_properties"]["send_at"] == approved["send_at"], (
        "exactly the request approved"
    )


def test_a_lead_deleted_while_the_send_waited_gets_nothing(sb: Sandbox) -> None:
    driver, pid = failed_send(sb, "gone.meanwhile@example.com", "gone-meanwhile")
    sb.client().call("request_profile_deletion", profile={"id": pid})
    sb.settle()
    sb.clock.advance(3600)
    done = driver.retry()
    assert done.state["send"]["status"] == "not_sent" and done.state["send"]["profile_gone"] is True
    assert "no Klaviyo profile has the id" in done.state["outcome"] and sequence_starts(sb, pid) == []


def test_a_lead_who_unsubscribes_while_a_slow_model_decides_gets_no_sequence(sb: Sandbox) -> None:
    """The decision's age counts from the reading of the lead's consent, not from the model's answer:
    a model call can take minutes (timeouts, retries), and one that answered 20 minutes after the
    lead was read, the lead having unsubscribed meanwhile, started the sequence all the same."""
    email = "slow.model@example.com"
    event = sign_up(sb, email, HOT)
    pid = event["data"]["relationships"]["profile"]["data"]["id"]

    def slow_answer(_messages: Any) -> AIMessage:
        unsubscribe(sb, email)  # while the model thinks, through Klaviyo's API
        sb.clock.advance(20 * 60)
        call = {"name": "choose_sequence", "args": {"sequence": "fast-track", "reason": "fits"}, "id": "call_1"}
        return AIMessage("", tool_calls=[call])

    done = run_persona(PERSONA, {"input": event}, sandbox=sb, clock=sb.clock, model=ScriptedChatModel([slow_answer]))
    assert done.state["send"]["status"] == "not_sent" and done.state["send"]["consent_changed"] is True
    assert "in the 20 minutes since the decision" in done.state["outcome"]
    assert sequence_starts(sb, pid) == []


def test_a_model_answering_within_the_window_adds_no_read_of_the_lead(sb: Sandbox) -> None:
    event = sign_up(sb, "quick.model@example.com", HOT)
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    reads = sb.call_counts["get_profile"]
    done = run_persona(PERSONA, {"input": event}, sandbox=sb, clock=sb.clock, model=choose("fast-track"))
    assert done.state["send"]["status"] == "sent" and len(sequence_starts(sb, pid)) == 1
    assert sb.call_counts["get_profile"] == reads + 1, "the decision's one read of the lead"
