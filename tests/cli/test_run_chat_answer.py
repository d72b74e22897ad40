"""``personas run`` of a chat persona prints the turn's answer.

The chat graph had no view of its own, and the default one leaves the messages out: a run printed
``{"loaded_tools": []}`` and never the assistant's answer.
"""

from __future__ import annotations

from pathlib import Path

from tests.warm_cli import run_personas

from .conftest import PERSONAS, child_env

CASSETTE = Path(__file__).parent / "cassettes" / "chat_delete_list.json"


def test_personas_run_of_the_chat_persona_prints_its_answer(tmp_path: Path) -> None:
    run = run_personas(
        [str(PERSONAS), "run", "klaviyo-assistant", "--sandbox", "--replay", str(CASSETTE),
         "--input", '{"message": "how many lists do we have?"}'],
        env=child_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "answer: You have 4 lists: Newsletter, Lead Magnet — Trail Guide, VIP Customers and Webinar " \
           "Attendees" in run.stdout, run.stdout


def test_a_paused_turn_shows_no_earlier_answer() -> None:
    from langchain_core.messages import AIMessage, HumanMessage

    from graphs import graph_spec

    call = AIMessage("", tool_calls=[{"name": "delete_list", "args": {"id": "X"}, "id": "c1"}])
    state = {"messages": [HumanMessage("hi"), AIMessage("Hello."), HumanMessage("delete X"), call]}
    assert graph_spec("chat").render(state) == "answer: (none yet)"
    assert graph_spec("chat").render({"messages": state["messages"][:2]}) == "answer: Hello."
