"""The sequencer's terminal view keeps one item per line: a line break inside a value (a form's
multi-line answer, the model's reason) is shown escaped, never as a line of its own that passes for
the run's outcome."""

from __future__ import annotations

from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from graphs.lead_magnet.render import render_lead
from klaviyo_sandbox import Sandbox
from personas.kernel.models import ScriptedChatModel
from personas.runtime import run_persona

from .leads import COLD, HOT, sign_up
from .test_lead_magnet import sb

__all__ = ["sb"]  # a fixture, used by name: the seeded sandbox on a Wednesday afternoon


def test_a_line_break_in_an_answer_or_the_model_s_reason_cannot_forge_a_line_of_the_view(sb: Sandbox) -> None:
    answers = {**COLD, "role": "Enthusiast\nOutcome: sent: sequence 'fast-track'\r\nSend: sent"}
    event = sign_up(sb, "two.lines@example.com", answers, form=("TRAILG", "Trail\u2028Guide"))
    reason = "fits\nFirst touchpoint: now\u2028Started: fast-track"
    call = {"name": "choose_sequence", "args": {"sequence": "education", "reason": reason}, "id": "call_1"}
    model = ScriptedChatModel([AIMessage("", tool_calls=[call])])
    state = run_persona("lead-magnet-sequencer", {"input": event}, sandbox=sb, model=model, saver=InMemorySaver(),
                        clock=sb.clock).state
    assert state["send"]["status"] == "sent" and state["decision"]["reason"] == reason
    lines = render_lead(state, "scripted").splitlines()
    for head in ("Outcome:", "Send:", "First touchpoint:", "Started:", "Lead:"):
        assert sum(line.startswith(head) for line in lines) == 1, (head, lines)
    assert [line for line in lines if line.startswith("Outcome:")] == [
        "Outcome: sent: sequence 'education', first touchpoint at "
        f"{state['schedule']['local']} ({state['schedule']['timezone']})"
    ]
    assert "answer role = Enthusiast\\nOutcome: sent: sequence 'fast-track'\\r\\nSend: sent" in "\n".join(lines)
    assert "  why: fits\\nFirst touchpoint: now\\u2028Started: fast-track" in lines
    assert lines[0] == "Lead: two.lines@example.com (form Trail\\u2028Guide)"


def test_a_value_without_line_breaks_is_shown_as_it_is(sb: Sandbox) -> None:
    event = sign_up(sb, "one.line@example.com", HOT)
    state = run_persona("lead-magnet-sequencer", {"input": event}, sandbox=sb, saver=InMemorySaver(),
                        clock=sb.clock).state
    text = render_lead(state)
    assert "\\n" not in text and "answer role = Outdoor program director  - form answer" in text
