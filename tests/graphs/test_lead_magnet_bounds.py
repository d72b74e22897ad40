"""What the sequencer keeps of the model's free text, and what its outcome says of a send that never went.

A model's reason (or a sequence name of its own) is kept to a bounded size in the run's state, its
SQLite checkpoints and the printed view, saying it was cut, while the choice stands; a send rejected
at approval or run dry reports that nothing went, never a first touchpoint as if one will.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from graphs.lead_magnet.graph import MAX_NAME_CHARS, MAX_REASON_CHARS
from graphs.lead_magnet.render import render_lead
from klaviyo_sandbox import Sandbox
from personas.kernel.models import ScriptedChatModel
from personas.kernel.spec import ApprovalPolicy
from personas.runtime import load_persona, run_persona

from .leads import HOT, choose, first_touchpoints, sequence_starts, sign_up
from .test_lead_magnet import sb

__all__ = ["sb"]  # a fixture, used by name: the seeded sandbox on a Wednesday afternoon

PERSONA = "lead-magnet-sequencer"
BIG = 2_000_000  # characters: a model answering with megabytes


def _answer(sequence: str, reason: str) -> ScriptedChatModel:
    call = {"name": "choose_sequence", "args": {"sequence": sequence, "reason": reason}, "id": "call_1"}
    return ScriptedChatModel([AIMessage("", tool_calls=[call])])


@pytest.mark.parametrize("sequence", ["fast-track", "x" * BIG], ids=["within-policy", "unknown-name"])
def test_a_huge_reason_or_sequence_name_is_cut_and_says_so_and_the_choice_stands(
    sb: Sandbox, tmp_path: Path, sequence: str
) -> None:
    event = sign_up(sb, f"huge.{len(sequence)}@example.com", HOT)
    result = run_persona(PERSONA, {"input": event}, sandbox=sb, model=_answer(sequence, "r" * BIG), clock=sb.clock)
    state = result.state
    decision = state["decision"]
    assert state["send"]["status"] == "sent" and decision["sequence"] == "fast-track"
    assert decision["decided_by"] == ("model" if sequence == "fast-track" else "policy")
    kept = decision["model_choice"]["reason"]
    assert kept.startswith("r" * MAX_REASON_CHARS) and len(kept) < MAX_REASON_CHARS + 100
    assert f"the model's reason was cut: {BIG - MAX_REASON_CHARS} more characters" in kept
    if sequence != "fast-track":  # overruled: its name is quoted back, bounded too
        assert len(decision["model_choice"]["sequence"]) < MAX_NAME_CHARS + 100
        assert "the model's sequence name was cut" in decision["reason"] and len(decision["reason"]) < 1000
    assert len(render_lead(state)) < 20_000
    # the run's SQLite checkpoints (the default saver, in the state folder) hold no megabytes either
    assert (tmp_path / "checkpoints.sqlite").stat().st_size < 1_000_000
    assert len(first_touchpoints(sb, state["profile"]["id"])) == 1


def test_a_reason_within_the_limit_is_kept_whole(sb: Sandbox) -> None:
    reason = "program director, this month, big budget; " * 40  # about 1,700 characters
    event = sign_up(sb, "whole.reason@example.com", HOT)
    state = run_persona(PERSONA, {"input": event}, sandbox=sb, model=_answer("fast-track", reason),
                        saver=InMemorySaver(), clock=sb.clock).state
    assert len(reason) <= MAX_REASON_CHARS and state["decision"]["reason"] == reason


def test_a_send_rejected_at_approval_says_nothing_went_not_a_first_touchpoint(sb: Sandbox) -> None:
    event = sign_up(sb, "rejected.outcome@example.com", HOT)
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    spec = load_persona(PERSONA).model_copy(update={"approval": ApprovalPolicy(also=["create_event"])})
    saver = InMemorySaver()
    paused = run_persona(spec, {"input": event}, sandbox=sb, model=choose("fast-track"), saver=saver,
                         clock=sb.clock, thread_id="rejected-outcome")
    assert paused.paused
    done = run_persona(spec, None, sandbox=sb, model=choose("fast-track"), saver=saver, clock=sb.clock,
                       thread_id="rejected-outcome", resume={"action": "reject", "reason": "not now"})
    state = done.state
    assert state["send"]["status"] == "rejected" and sequence_starts(sb, pid) == []
    assert state["outcome"].startswith("not sent: the start of 'fast-track' was rejected at approval")
    assert "first touchpoint at" not in state["outcome"]
    shown = [line for line in render_lead(state).splitlines() if line.startswith("Outcome:")]
    assert shown == [f"Outcome: {state['outcome']}"]


def test_a_dry_run_outcome_says_nothing_was_sent(sb: Sandbox) -> None:
    event = sign_up(sb, "dry.outcome@example.com", HOT)
    state = run_persona(PERSONA, {"input": event}, sandbox=sb, model=choose("fast-track"), saver=InMemorySaver(),
                        clock=sb.clock, dry_run=True).state
    assert state["send"]["status"] == "dry_run"
    assert state["outcome"].startswith("dry run, nothing sent: the run would start 'fast-track'")
    assert f"Outcome: {state['outcome']}" in render_lead(state).splitlines()
