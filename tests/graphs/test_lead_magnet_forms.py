"""Which forms start a sequence: the persona's ``forms`` setting (ids or names); by default every form."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import ValidationError

from klaviyo_sandbox import Sandbox
from personas.kernel.models import ScriptedChatModel
from personas.kernel.spec import PersonaSpec
from personas.runtime import load_persona, run_persona

from .leads import HOT, sb, sequence_starts, sign_up

__all__ = ["sb"]  # the sandbox fixture (leads.py), used by name


def persona(forms: Any) -> PersonaSpec:
    spec = load_persona("lead-magnet-sequencer")
    return spec.model_copy(update={"settings": {**spec.settings, "forms": forms}})


def run(sb: Sandbox, spec: PersonaSpec, event: dict[str, Any]) -> Any:
    call = {"name": "choose_sequence", "args": {"sequence": "fast-track", "reason": "fits"}, "id": "call_1"}
    return run_persona(spec, {"input": event}, sandbox=sb, model=ScriptedChatModel([AIMessage("", tool_calls=[call])]),
                       saver=InMemorySaver(), clock=sb.clock)


def test_a_form_not_on_the_list_is_ignored_without_a_call(sb: Sandbox) -> None:
    event = sign_up(sb, "popup.signup@example.com", HOT, form=("NOPE42", "Newsletter popup"))
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    calls = sum(sb.call_counts.values())
    result = run(sb, persona(["TRAILG", "Gear Guide"]), event)
    assert result.status == "done"
    assert result.state["outcome"] == (
        "ignored: form NOPE42 ('Newsletter popup') is not one of the forms this persona sequences "
        "(TRAILG, Gear Guide); nothing was read, sent or written")
    assert sum(sb.call_counts.values()) == calls, "not a single call to Klaviyo"
    assert sequence_starts(sb, pid) == [] and "decision" not in result.state


@pytest.mark.parametrize("forms", [["TRAILG"], [" trail guide "], ["Other", "Trail Guide"]])
def test_a_form_on_the_list_by_id_or_name_starts_its_sequence(sb: Sandbox, forms: list[str]) -> None:
    event = sign_up(sb, f"listed.{abs(hash(str(forms))) % 10**6}@example.com", HOT)
    result = run(sb, persona(forms), event)
    assert result.state["outcome"].startswith("sent: sequence 'fast-track'"), result.state["outcome"]


def test_every_form_starts_a_sequence_when_none_are_named(sb: Sandbox) -> None:
    event = sign_up(sb, "any.form@example.com", HOT, form=("NOPE42", "Newsletter popup"))
    assert run(sb, persona(None), event).state["outcome"].startswith("sent: sequence 'fast-track'")


@pytest.mark.parametrize("forms", [[], [""]])
def test_an_empty_list_of_forms_is_refused(forms: list[str]) -> None:
    from graphs.lead_magnet.settings import Settings

    with pytest.raises(ValidationError, match="forms"):
        Settings.model_validate({**load_persona("lead-magnet-sequencer").settings, "forms": forms})
