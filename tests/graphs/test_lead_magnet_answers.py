"""Form answers in every shape a sign-up form sends them, scored through the graph on the sandbox: a
multi-select as a list or one comma-joined text (its best option counts), a number within a table's
range, true/false, a field left empty; a shape the scorer cannot read is named in the score, never a
silent 0."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from graphs.lead_magnet.render import render_lead
from klaviyo_sandbox import Sandbox
from personas.runtime import load_persona, run_persona

from .leads import choose, sb, sequence_starts, sign_up

__all__ = ["sb"]  # the sandbox fixture (leads.py), used by name

PERSONA = "lead-magnet-sequencer"
#: 5 + 15 + 10 + 12 + 12 = 54 points, warm, before its interest: "team outfitting" (15) makes it hot (69).
BASE = {"company_size": "201-1000", "role": "Outdoor program director", "timeline": "this quarter",
        "budget": "$5k-$25k"}


def run(sb: Sandbox, email: str, answers: dict[str, Any], spec: Any = PERSONA) -> tuple[dict[str, Any], Any]:
    """Sign the lead up with ``answers`` and run the sequencer on its submission: (state, the model)."""
    model = choose("fast-track")
    result = run_persona(spec, {"input": sign_up(sb, email, answers)}, sandbox=sb, model=model,
                         saver=InMemorySaver(), clock=sb.clock)
    assert result.status == "done", result.state.get("outcome")
    return result.state, model


def factor(state: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in state["score"]["factors"] if f["factor"].startswith(f"answer {name} "))
    return found


@pytest.mark.parametrize("interest", [
    ["personal gear", "team outfitting"],
    "personal gear, team outfitting",
    [["school programs"], None, "", " Team Outfitting "],
    ["team outfitting", "just the guide"],
])
def test_a_multi_select_answer_counts_its_best_option_and_the_lead_is_hot(sb: Sandbox, interest: Any) -> None:
    state, model = run(sb, f"multi.{abs(hash(str(interest))) % 10**8}@example.com", {**BASE, "interest": interest})
    assert state["score"]["total"] == 69 and state["score"]["band"] == "hot", state["score"]["factors"]
    counted = factor(state, "interest")
    assert counted["points"] == 15 and "(scored as 'team outfitting')" in counted["factor"]
    assert counted["why"].startswith("form answer; of its ") and "the best-scoring counts" in counted["why"]
    assert state["outcome"].startswith("sent: sequence 'fast-track'"), state["outcome"]
    assert len(sequence_starts(sb, state["profile"]["id"])) == 1
    # what the model saw: the factor and its points, the lead's words only inside the fenced answers
    prompt = model.requests[0][1].content
    factors = prompt.split('<untrusted-data source="form answers">')[0]
    assert "- answer interest (its value is in the form answers below): +15 (form answer; of its" in factors
    assert "personal gear" not in factors and "outfitting" not in factors.split("Sequences:")[0]


@pytest.mark.parametrize(("answers", "total", "shown"), [
    ({**BASE, "company_size": 500}, 69, "answer company_size = 500 (scored as '201-1000')"),
    ({**BASE, "company_size": "1,500"}, 74, "answer company_size = 1,500 (scored as '1000+')"),
    ({**BASE, "budget": 30000.0}, 77, "answer budget = 30000.0 (scored as '$25k+')"),
    ({**BASE, "budget": "$2k"}, 62, "answer budget = $2k (scored as '$1k-$5k')"),
])
def test_a_number_scores_the_range_it_lies_in(sb: Sandbox, answers: dict[str, Any], total: int, shown: str) -> None:
    state, _ = run(sb, f"number.{total}@example.com", {**answers, "interest": "team outfitting"})
    assert shown in [f["factor"] for f in state["score"]["factors"]], state["score"]["factors"]
    assert state["score"]["total"] == total and state["score"]["band"] == "hot"


@pytest.mark.parametrize("empty", [None, "", "  ", [], [None, ""]])
def test_a_field_left_empty_is_a_skipped_answer(sb: Sandbox, empty: Any) -> None:
    state, _ = run(sb, f"empty.{abs(hash(repr(empty))) % 10**8}@example.com", {**BASE, "interest": empty})
    assert factor(state, "interest") == {"factor": "answer interest missing", "points": 0,
                                         "why": "the form did not ask or the lead skipped it"}
    assert state["score"]["total"] == 54 and state["score"]["band"] == "warm"


def test_an_answer_the_scorer_cannot_read_is_named_in_the_score(sb: Sandbox) -> None:
    state, _ = run(sb, "object.answer@example.com", {**BASE, "interest": {"label": "Team outfitting"}})
    named = factor(state, "interest")
    assert named["points"] == 0 and named["factor"] == 'answer interest = {"label": "Team outfitting"}'
    assert named["why"] == ("the answer is an object, which the scorer cannot read (0 points); send the field as "
                            "text or a list of options")
    assert "cannot read" in render_lead(state), "shown in the run's view"
    state, _ = run(sb, "object.part@example.com", {**BASE, "interest": ["team outfitting", {"other": "kayaks"}]})
    part = factor(state, "interest")
    assert part["points"] == 15 and "part of the answer is an object, which the scorer cannot read" in part["why"]


def test_true_or_false_scores_the_table_s_yes_or_no_and_a_profile_property_list_its_best(sb: Sandbox) -> None:
    spec = load_persona(PERSONA)
    settings = {**spec.settings, "scoring": {**spec.settings["scoring"], "answers": {
        **spec.settings["scoring"]["answers"], "leads_a_team": {"Yes": 10, "No": 0}}}}
    spec = spec.model_copy(update={"settings": settings})
    event = sign_up(sb, "bool.lead@example.com", {**BASE, "leads_a_team": True})
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    sb.client().call("update_profile", id=pid, properties={"plan": ["trail-club", "summit-club"]})
    result = run_persona(spec, {"input": event}, sandbox=sb, model=None, saver=InMemorySaver(), clock=sb.clock)
    factors = {f["factor"]: f["points"] for f in result.state["score"]["factors"]}
    assert factors["answer leads_a_team = true (scored as 'Yes')"] == 10
    assert factors["profile plan = trail-club, summit-club (scored as 'summit-club')"] == 10
    assert result.state["score"]["total"] == 74 and result.state["score"]["band"] == "hot"


def test_the_leads_contact_details_in_the_form_are_not_shown_to_the_model(sb: Sandbox) -> None:
    """A form that asks for the email and phone again sends them as answers: the model chooses without
    them (as it is shown no address or number from the profile), and the other answers still reach it."""
    contact = {"Email Address": "dana.contact@example.com", "phone_number": "+15555550123", "Mobile": "+15555550999",
               "work_email": "dana@outfitters.example", "best way to reach you": "+44 20 7946 0958",
               "ＰＨＯＮＥ": "555 0777", "text me at": "＋１ ５５５ ５５５ ０８８８"}
    said = {"email_frequency": "weekly", "interest": "team outfitting"}
    state, model = run(sb, "dana.contact@example.com", {**BASE, **said, **contact})
    assert state["score"]["band"] == "hot" and state["outcome"].startswith("sent: "), state["outcome"]
    prompt = model.requests[0][1].content
    answers = prompt.split('<untrusted-data source="form answers">')[1].split("</untrusted-data>")[0]
    for kept in ("Outdoor program director", "201-1000", "$5k-$25k", "email_frequency", "weekly", "team outfitting"):
        assert kept in answers, kept
    for value in contact.values():
        assert value not in prompt, value
    assert state["submission"]["answers"]["phone_number"] == "+15555550123", "kept for scoring and the record"


def test_a_contact_detail_a_table_scores_still_counts_and_the_model_is_told_it_is_not_shown(sb: Sandbox) -> None:
    spec = load_persona(PERSONA)
    settings = dict(spec.settings)
    scoring = dict(settings["scoring"])
    scoring["answers"] = {**scoring["answers"], "phone": {"+15555550123": 5}}
    spec = spec.model_copy(update={"settings": {**settings, "scoring": scoring}})
    state, model = run(sb, "phone.scored@example.com", {**BASE, "interest": "team outfitting", "phone": "+15555550123"},
                       spec)
    assert factor(state, "phone")["points"] == 5
    prompt = model.requests[0][1].content
    assert "- answer phone (a contact detail, not shown): +5" in prompt and "+15555550123" not in prompt


def test_a_scored_answer_left_out_for_its_contact_value_is_said_not_shown(sb: Sandbox) -> None:
    """A lead who types an address or a number into a scored field (``role``): the model is not shown
    it, and its factor line says so, rather than pointing the model at answers that do not hold it."""
    for i, typed in enumerate(("dana.role@outfitters.example", "+1 555 555 0142")):
        state, model = run(sb, f"role.contact{i}@example.com", {**BASE, "role": typed, "interest": "team outfitting"})
        assert factor(state, "role")["factor"] == f"answer role = {typed}", state["score"]["factors"]
        prompt = model.requests[0][1].content
        assert "- answer role (a contact detail, not shown): " in prompt, prompt.split("Sequences:")[0]
        assert typed not in prompt
        assert "- answer interest (its value is in the form answers below): +15" in prompt
