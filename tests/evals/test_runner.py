"""The eval runner: case files, fixtures, trajectories from client hooks, cassettes, authoring, pass@k, reports, CLI.

Suites here are small copies made in ``tmp_path`` (a case or two of the lead-magnet suite, plus a
chat case), so a test can break a cassette or a case file without touching the real ones. No test
needs a key or the network: models are cassettes or scripted fakes.
"""

from __future__ import annotations

import json
import shlex
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from evals.author import AuthorError, author_case
from evals.case import CaseFileError, load_suite
from evals.fixtures import Fixture, build_fixture, submit_form
from evals.observe import call_view
from evals.report import write_reports
from evals.runner import pass_at_k, run_case, run_suite
from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.client import CallRecord
from klaviyo_toolkit.clock import ManualClock
from personas.cli import main as personas_main
from personas.kernel.models import ModelChoice, ScriptedChatModel

SUITE = Path(__file__).resolve().parents[2] / "evals" / "suites" / "lead_magnet"


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def copy_suite(tmp_path: Path, *case_ids: str, name: str = "lm") -> Path:
    """A suite folder with the lead-magnet suite.yaml and the given cases (with their cassettes)."""
    folder = tmp_path / name
    (folder / "cases").mkdir(parents=True)
    (folder / "cassettes").mkdir()
    shutil.copy(SUITE / "suite.yaml", folder / "suite.yaml")
    for case_id in case_ids:
        shutil.copy(SUITE / "cases" / f"{case_id}.yaml", folder / "cases")
        if (SUITE / "cassettes" / f"{case_id}.json").exists():
            shutil.copy(SUITE / "cassettes" / f"{case_id}.json", folder / "cassettes")
    return folder


# -- case files ---------------------------------------------------------------------------------
def test_the_lead_magnet_suite_loads_with_labelled_cases() -> None:
    suite = load_suite("lead_magnet")
    assert suite.persona == "lead-magnet-sequencer" and suite.threshold == 1.0
    assert len(suite.cases) >= 25
    assert all(c.labels and c.description for c in suite.cases)
    labels = {label for c in suite.cases for label in c.labels}
    assert {"band:hot", "band:warm", "band:cold", "missing-data", "consent", "suppressed", "repeat", "out-of-policy",
            "model-failure", "injection", "scheduling"} <= labels
    hot = suite.case("hot-director-this-month")
    assert hot.form_submission is not None and hot.form_submission.form_id == "TRAILG", "suite defaults fill it in"
    assert len(hot.sandbox.fixture.flows) == 3, "the suite's flows are merged under the case's fixture"
    webhook = suite.case("unknown-email-webhook")
    assert webhook.form_submission is None, "defaults never add a form_submission to a case using input"


@pytest.mark.parametrize(("patch", "where", "problem"), [
    ("expect:\n  trajectory:\n    mode: loose\n", "expect.trajectory.mode", "Input should be"),
    ("expect:\n  outbox:\n    - {profile: a, colour: red}\n", "expect.outbox[0].colour", "unknown key"),
    ("expect:\n  state:\n    score.total: {between: [1]}\n", "expect", "score.total.between: give [low, high] numbers"),
    ("sandbox:\n  fixture:\n    profiles:\n      a: {first_name: A}\n", "sandbox.fixture.profiles.a",
     "a profile needs an email"),
    ("now: 2026-03-10T15:00:00\n", "now", "give a time zone"),
    ("labels: [hot, yes]\n", "labels[1]", 'must be text, not True; YAML reads an unquoted yes, no, on, off, true or '
     'false as true or false: quote it ("Yes", not Yes)'),
    ("sandbox:\n  fixture:\n    profiles: [a]\n", "sandbox.fixture.profiles",
     "must be a mapping (indented `key: value` lines under it), not a list"),
])
def test_a_broken_case_names_its_file_line_and_field(tmp_path: Path, patch: str, where: str, problem: str) -> None:
    folder = copy_suite(tmp_path)
    case = folder / "cases" / "broken.yaml"
    case.write_text("id: broken\ndescription: a broken case\n" + patch, encoding="utf-8")
    with pytest.raises(CaseFileError) as caught:
        load_suite(folder)
    message = str(caught.value)
    assert message.startswith(f"{case}:"), message
    assert f": {where}: " in message and problem in message, message
    assert caught.value.line is not None and caught.value.line >= 3


def test_duplicate_ids_and_unknown_profiles_are_refused(tmp_path: Path) -> None:
    folder = copy_suite(tmp_path, "hot-director-this-month")
    shutil.copy(folder / "cases" / "hot-director-this-month.yaml", folder / "cases" / "zz-copy.yaml")
    with pytest.raises(CaseFileError, match=r"zz-copy\.yaml:1: id: 'hot-director-this-month' is used by another case"):
        load_suite(folder)
    (folder / "cases" / "zz-copy.yaml").write_text(
        "id: other\ndescription: x\nform_submission: {profile: nobody}\n", encoding="utf-8")
    with pytest.raises(CaseFileError, match=r"form_submission\.profile 'nobody' is not a fixture profile"):
        load_suite(folder)


# -- fixtures -----------------------------------------------------------------------------------
NOW = 1_773_154_800.0  # 2026-03-10T15:00:00Z


def test_the_fixture_builds_consent_lists_flows_and_the_get_event_document() -> None:
    from graphs.lead_magnet import parse_submission

    sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock(NOW - 3600))
    client = sb.client()
    fixture = Fixture.model_validate({
        "lists": ["Leads"],
        "flows": [{"name": "Welcome", "trigger": {"metric": "Signed Up", "where": {"plan": "pro"}},
                   "messages": [{"subject": "Hi"}, {"delay_days": 2, "subject": "Still there?"}]}],
        "profiles": {k: {"email": f"{k}@example.com", "consent": k, "lists": ["Leads"], "timezone": "Europe/Paris"}
                     for k in ("subscribed", "never", "unsubscribed", "suppressed")},
    })
    built = build_fixture(sb, client, fixture, NOW)
    marketing = {k: client.call("get_profile", id=built.profile_id(k), additional_fields_profile=["subscriptions"])
                 .data["attributes"]["subscriptions"]["email"]["marketing"] for k in fixture.profiles}
    assert {k: m["consent"] for k, m in marketing.items()} == {"subscribed": "SUBSCRIBED", "never": "NEVER_SUBSCRIBED",
                                                             "unsubscribed": "UNSUBSCRIBED", "suppressed": "SUBSCRIBED"}
    assert [s["reason"] for s in marketing["suppressed"]["suppression"]] == ["USER_SUPPRESSED"]
    # Klaviyo's implied consent: any profile with an email and no global suppression can receive email
    assert [k for k, m in marketing.items() if m["can_receive_email_marketing"]] == ["subscribed", "never"]
    members = {p["id"] for p in client.iterate("get_list_profiles", id=built.list_id("Leads"))}
    assert members == {built.profile_id(k) for k in fixture.profiles}
    client.call("create_event", metric={"name": "Signed Up"}, profile={"id": built.profile_id("subscribed")},
                properties={"plan": "pro"})
    client.call("create_event", metric={"name": "Signed Up"}, profile={"id": built.profile_id("never")},
                properties={"plan": "free"})
    assert [(m["subject"], m["status"]) for m in sb.outbox()] == [("Hi", "scheduled"), ("Still there?", "scheduled")]

    from evals.fixtures import FormSubmission

    doc = submit_form(client, built, FormSubmission(profile="subscribed", answers={"role": "Guide"}, form_id="F1",
                                                    form_name="Trail Guide"), NOW)
    assert doc["data"]["type"] == "event" and {r["type"] for r in doc["included"]} == {"profile", "metric"}
    sub = parse_submission(doc)
    assert (sub.profile_id, sub.metric, sub.form_id, sub.answers) == (
        built.profile_id("subscribed"), "Form submitted by profile", "F1", {"role": "Guide"})
    assert sub.time == "2026-03-10T14:59:00+00:00", "a minute before now unless the case says when"
    assert built.refs["event:form_submission"] == doc["data"]["id"]


def test_call_view_gives_the_tool_arguments_back_from_the_request() -> None:
    record = CallRecord("create_event", "POST", "/api/events", {}, {"data": {"type": "event", "attributes": {
        "properties": {"sequence": "nurture"}, "unique_id": "lead-sequence:p1",
        "metric": {"data": {"type": "metric", "attributes": {"name": "Lead Sequence Started"}}},
        "profile": {"data": {"type": "profile", "id": "p1"}}}}}, 202, None, 1, 0.0, 0.0)
    assert call_view(record)["args"] == {"properties": {"sequence": "nurture"}, "unique_id": "lead-sequence:p1",
                                         "metric": {"name": "Lead Sequence Started"}, "profile": {"id": "p1"}}
    record = CallRecord("get_events", "GET", "/api/events", {"filter": "equals(profile_id,\"p1\")", "include": "metric",
                                                           "page[size]": "200", "sort": "-datetime"},
                        None, 200, None, 1, 0.0, 0.0)
    assert call_view(record)["args"] == {"filter": "equals(profile_id,\"p1\")", "include": ["metric"],
                                         "page_size": 200, "sort": "-datetime"}
    record = CallRecord("get_profile", "GET", "/api/profiles/p1", {"additional-fields[profile]": "subscriptions"},
                        None, 200, None, 1, 0.0, 0.0)
    assert call_view(record)["args"] == {"id": "p1", "additional_fields_profile": ["subscriptions"]}
    record = CallRecord("remove_profiles_from_list", "DELETE", "/api/lists/L1/relationships/profiles", {},
                        {"data": [{"type": "profile", "id": "p1"}, {"type": "profile", "id": "p2"}]},
                        204, None, 1, 0.0, 0.0)
    assert call_view(record)["args"] == {"id": "L1", "profile_ids": ["p1", "p2"]}, "a linkage body is the id list"


# -- running and replaying ----------------------------------------------------------------------
def test_a_case_replays_its_cassette_and_records_the_whole_trajectory(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "dummy-openai-key-unused-in-replay")
    suite = load_suite(copy_suite(tmp_path, "hot-director-this-month"))
    result = run_case(suite, suite.cases[0])
    assert result.passed, result.failures or result.error
    assert result.cassette.startswith("authored by hand")
    assert [(c["source"], c["tool"]) for c in result.outcome.trajectory] == [
        ("http", "get_profile"), ("http", "get_metrics"), ("http", "get_events"), ("http", "get_events"),
        ("model", "choose_sequence"), ("http", "create_event"), ("http", "get_events"), ("http", "update_profile")]
    assert [m["position"] for m in result.outcome.outbox] == [1, 2]
    assert result.outcome.lists == {"Lead Magnet — Trail Guide": ["maya"]}


def _cassette(folder: Path, case_id: str) -> tuple[Path, dict[str, Any]]:
    path = folder / "cassettes" / f"{case_id}.json"
    return path, json.loads(path.read_text(encoding="utf-8"))


def test_a_cassette_that_does_not_match_fails_naming_the_case_and_the_command(tmp_path: Path) -> None:
    folder = copy_suite(tmp_path, "hot-director-this-month")
    path, data = _cassette(folder, "hot-director-this-month")
    data["interactions"][0]["request"]["messages"][1]["text"] = data["interactions"][0]["request"]["messages"][1][
        "text"].replace("Lead score: 77", "Lead score: 76")
    path.write_text(json.dumps(data), encoding="utf-8")
    suite = load_suite(folder)
    result = run_case(suite, suite.cases[0])
    assert result.status == "error"
    assert "request 1 does not match cassette" in result.error
    assert "case lm/hot-director-this-month" in result.error
    assert f"`personas eval {shlex.quote(str(folder))} --case hot-director-this-month --author`" in result.error
    assert "Lead score: 76" in result.error and "Lead score: 77" in result.error, "the diff shows what changed"


def test_a_cassette_made_for_another_case_says_so(tmp_path: Path) -> None:
    folder = copy_suite(tmp_path, "hot-director-this-month", "cold-just-browsing")
    shutil.copy(folder / "cassettes" / "cold-just-browsing.json", folder / "cassettes" / "hot-director-this-month.json")
    suite = load_suite(folder)
    result = run_case(suite, next(c for c in suite.cases if c.id == "hot-director-this-month"))
    assert result.status == "error"
    assert "was made for case lead_magnet/cold-just-browsing, not lm/hot-director-this-month" in result.error
    assert "case file changed" not in result.error


def test_a_cassette_played_only_in_part_fails(tmp_path: Path) -> None:
    folder = copy_suite(tmp_path, "hot-director-this-month")
    path, data = _cassette(folder, "hot-director-this-month")
    data["interactions"].append(json.loads(json.dumps(data["interactions"][0])))
    data["interactions"][1]["response"]["tool_calls"][0]["id"] = "call_1_0"
    path.write_text(json.dumps(data), encoding="utf-8")
    suite = load_suite(folder)
    result = run_case(suite, suite.cases[0])
    assert result.status == "error" and "does not hold the case's authored_responses" in result.error
    case_file = folder / "cases" / "hot-director-this-month.yaml"  # the case file says the same: 2 answers
    text = case_file.read_text(encoding="utf-8")
    answer = text[text.index("  - tool_calls:"):text.index("\nexpect:")]
    case_file.write_text(text.replace(answer, answer.rstrip("\n") + "\n" + answer), encoding="utf-8")
    suite = load_suite(folder)
    result = run_case(suite, suite.cases[0])
    assert result.status == "error"
    assert "played only in part (1 of 2 responses used)" in result.error
    assert "--case hot-director-this-month --author" in result.error


def test_a_recorded_cassette_says_to_re_record(tmp_path: Path) -> None:
    folder = copy_suite(tmp_path, "hot-director-this-month")
    path, data = _cassette(folder, "hot-director-this-month")
    data["provenance"] = {"kind": "recorded", "requested_model": "gpt-4.1-mini", "served_models": ["gpt-4.1-mini-2025"],
                          "base_url": "https://api.openai.com/v1", "date": "2026-03-01", "package_version": "0.1.0"}
    data["interactions"][0]["evidence"] = {"id": "chatcmpl-1", "model": "gpt-4.1-mini-2025",
                                           "usage": {"input_tokens": 900, "output_tokens": 40, "total_tokens": 940}}
    data["interactions"][0]["request"]["model"] = "gpt-4o"
    path.write_text(json.dumps(data), encoding="utf-8")
    suite = load_suite(folder)
    result = run_case(suite, suite.cases[0])
    record = f"`personas eval {shlex.quote(str(folder))} --case hot-director-this-month --record`"
    assert f"re-record it with {record} (needs OPENAI_API_KEY)" in (result.error or "")
    assert '- "model": "gpt-4o"' in (result.error or ""), "the diff shows the model asked for changed"
    assert "set PERSONAS_MODEL=gpt-4o to replay it" in (result.error or "")
    assert result.cassette == ("recorded from gpt-4.1-mini-2025 (asked for gpt-4.1-mini) at https://api.openai.com/v1 "
                               "on 2026-03-01, klaviyo-personas 0.1.0")
    assert result.kind == "error", "a recorded cassette that does not answer the run is no recorded run"


def test_an_authored_case_without_its_cassette_errors_naming_the_command_that_writes_it(tmp_path: Path) -> None:
    folder = copy_suite(tmp_path, "hot-director-this-month")
    (folder / "cassettes" / "hot-director-this-month.json").unlink()
    suite = load_suite(folder)
    result = run_case(suite, suite.cases[0])
    assert (result.status, result.kind) == ("error", "error")
    assert "there is no cassette at" in result.error and "and the case has 1 authored_responses" in result.error
    assert "hot-director-this-month.json" in result.error and "--author" in result.error


def test_a_case_that_expects_no_model_fails_when_the_graph_asks_one_and_re_authoring_keeps_it_failing(
        tmp_path: Path) -> None:
    """The graph asking the model where the case says it must not is a verdict about the graph, not a cassette
    problem: the case fails (never errors), and ``--author`` has nothing to write that would make it pass."""
    folder = copy_suite(tmp_path, "never-subscribed")
    path = folder / "cases" / "never-subscribed.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("consent: never", "consent: subscribed"),
                    encoding="utf-8")  # now eligible: the graph asks the model
    suite = load_suite(folder)
    result = run_case(suite, suite.cases[0])
    assert result.status == "failed", result.error
    assert result.failures[0].startswith("model asked: the case expects no model call (no authored_responses, "
                                         "no cassette) and the run asked the model")
    assert "--case never-subscribed --author" in result.failures[0]
    assert any(("not_called" in f and "create_event" in f) or "model_calls" in f for f in result.failures[1:])
    authored = author_case(suite, suite.cases[0])
    assert authored.path is None and not authored.written and authored.result.status == "failed"
    assert not (folder / "cassettes" / "never-subscribed.json").exists()


def test_the_run_raising_is_checked_like_any_outcome(tmp_path: Path) -> None:
    folder = copy_suite(tmp_path)
    (folder / "cases" / "bad-input.yaml").write_text(
        "id: bad-input\ndescription: a body that is no event\ninput: {hello: world}\n"
        "expect:\n  raises: {type: InputError, message: {contains: no event found}}\n", encoding="utf-8")
    suite = load_suite(folder)
    assert run_case(suite, suite.cases[0]).passed
    (folder / "cases" / "bad-input.yaml").write_text(
        "id: bad-input\ndescription: a body that is no event\ninput: {hello: world}\n", encoding="utf-8")
    suite = load_suite(folder)
    result = run_case(suite, suite.cases[0])
    assert result.failures == [result.failures[0]] and result.failures[0].startswith("the run raised InputError")


# -- authoring ----------------------------------------------------------------------------------
def test_authoring_writes_an_authored_cassette_from_the_case_file(tmp_path: Path) -> None:
    folder = copy_suite(tmp_path, "warm-trip-leader")
    (folder / "cassettes" / "warm-trip-leader.json").unlink()
    suite = load_suite(folder)
    done = author_case(suite, suite.cases[0])
    assert done.written and done.interactions == 1 and done.result.passed
    _, data = _cassette(folder, "warm-trip-leader")
    assert data["provenance"]["kind"] == "authored"
    assert "warm-trip-leader.yaml (authored_responses)" in data["provenance"]["method"]
    assert data["interactions"][0]["response"]["tool_calls"][0]["args"]["sequence"] == "nurture"
    digest = data["interactions"][0]["request"]["tools"]["choose_sequence"]
    assert digest.startswith("sha256:") and data["schemas"][digest]["function"]["name"] == "choose_sequence"
    assert data["interactions"][0]["request"]["tool_choice"] == {"function": "choose_sequence"}
    assert not author_case(suite, suite.cases[0]).written, "the same requests leave the file alone"


def test_authoring_refuses_unused_responses(tmp_path: Path) -> None:
    folder = copy_suite(tmp_path, "warm-trip-leader")
    case_file = folder / "cases" / "warm-trip-leader.yaml"
    text = case_file.read_text(encoding="utf-8")
    case_file.write_text(text.replace("authored_responses:\n", "authored_responses:\n  - content: spare\n"), "utf-8")
    with pytest.raises(AuthorError, match="asked the model 1 time"):
        author_case(load_suite(folder), load_suite(folder).case("warm-trip-leader"))


def test_policy_cases_are_never_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evals.author import record_case

    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-used")
    suite = load_suite(copy_suite(tmp_path, "policy-hot"))
    with pytest.raises(AuthorError, match="policy case: its models are scripted"):
        record_case(suite, suite.cases[0])
    with pytest.raises(AuthorError, match="policy case"):
        author_case(suite, suite.cases[0])


# -- a chat persona: the same framework, trajectories from the model's tool calls ---------------
CHAT_CASE = """
id: delete-rejected
description: Asked to delete a list, the assistant looks it up and asks; the user rejects; nothing is deleted.
labels: [chat, approval]
persona: klaviyo-assistant
now: "2026-03-10T15:00:00Z"
sandbox:
  fixture:
    lists: [Newsletter]
input:
  messages:
    - {role: user, content: "Delete the Newsletter list."}
approvals: [reject]
authored_responses:
  - tool_calls: [{name: get_lists, args: {fields_flow: null, fields_list: null, fields_tag: null, filter: null,
                                          include: null, page_cursor: null, page_size: null, sort: null}}]
  - tool_calls: [{name: delete_list, args: {id: "LIST1"}}]
  - content: "I did not delete the Newsletter list: you rejected it."
authored_for: PROMPT
expect:
  trajectory:
    mode: strict
    calls:
      - {tool: get_lists, source: model}
      - {tool: get_lists, source: http, status: 200, args: {}}
      - {tool: delete_list, source: model, args: {id: LIST1}}
      # the list as it is now, to show with the request: LIST1 is no list (the authored model made it up)
      - {tool: get_list, source: http, status: 404, args: {id: LIST1, additional_fields_list: [profile_count]}}
  not_called: [{tool: delete_list, source: http}]
  model_calls: 3
  interrupts: {exact: []}
  state:
    messages[-1].content: {contains: "did not delete"}
    messages: {len: 6}
"""


#: The chat suite's cases were reviewed against the assistant's prompt with this digest (`--stamp`).
CHAT_PROMPT = load_suite("chat").case("delete-list-rejected").authored_for or ""


def test_a_chat_case_runs_with_approvals_and_model_tool_calls(tmp_path: Path) -> None:
    folder = tmp_path / "chat"
    (folder / "cases").mkdir(parents=True)
    (folder / "suite.yaml").write_text("description: chat\nthreshold: 1.0\n", encoding="utf-8")
    (folder / "cases" / "delete-rejected.yaml").write_text(CHAT_CASE.replace("PROMPT", CHAT_PROMPT), encoding="utf-8")
    suite = load_suite(folder)
    done = author_case(suite, suite.cases[0])
    assert done.result.passed, done.result.failures or done.result.error
    assert run_case(suite, suite.cases[0]).passed, "and it replays"


APPROVED_CASE = """
id: delete-approved
description: The user approves a delete_list; the approval asked is checked, and the list is gone.
labels: [chat, approval]
persona: klaviyo-assistant
now: "2026-03-10T15:00:00Z"
sandbox:
  fixture:
    lists: [Newsletter, Old]
input:
  messages:
    - {role: user, content: "Delete the Old list."}
approvals: [approve]
authored_for: PROMPT
authored_responses:
  - tool_calls: [{name: delete_list, args: {id: "OLD_ID"}}]
  - content: "Deleted."
expect:
  trajectory:
    mode: strict
    calls:
      - {tool: delete_list, source: model, args: {id: {ref: list:Old}}}
      - tool: get_list             # the list as it is now, shown with the request
        source: http
        status: 200
        args: {id: {ref: list:Old}, additional_fields_list: [profile_count]}
      - {tool: delete_list, source: http, status: 204, args: {id: {ref: list:Old}}}
  approvals_asked:
    items: [{type: approval, tool: delete_list, args: {id: {ref: list:Old}}, request: {method: DELETE}}]
  interrupts: {exact: []}
  lists:
    - {list: Old, exists: false}
    - {list: Newsletter}
"""


def test_a_chat_case_checks_the_approvals_asked_and_a_deleted_list(tmp_path: Path) -> None:
    sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock(NOW - 3600))
    old_id = build_fixture(sb, sb.client(), Fixture(lists=["Newsletter", "Old"]), NOW).list_id("Old")
    folder = tmp_path / "chat"
    (folder / "cases").mkdir(parents=True)
    (folder / "suite.yaml").write_text("description: chat\nthreshold: 1.0\n", encoding="utf-8")
    case_file = folder / "cases" / "delete-approved.yaml"
    case_file.write_text(APPROVED_CASE.replace("OLD_ID", old_id).replace("PROMPT", CHAT_PROMPT), encoding="utf-8")
    suite = load_suite(folder)
    done = author_case(suite, suite.cases[0])
    assert done.result.passed, done.result.failures or done.result.error
    assert done.result.outcome.lists == {"Newsletter": []}, "a deleted list is left out, not an error"

    case_file.write_text(case_file.read_text(encoding="utf-8").replace("approvals: [approve]",
                                                                       "approvals: [approve, reject]"), "utf-8")
    suite = load_suite(folder)
    result = run_case(suite, suite.cases[0])
    assert result.failures == ["approvals: 1 answer(s) left unused; the run stopped for approval 1 time(s)"]

    case_file.write_text(case_file.read_text(encoding="utf-8").replace("{list: Old, exists: false}",
                                                                       "{list: Old, profile: x}"), "utf-8")
    suite = load_suite(folder)
    result = run_case(suite, suite.cases[0])
    assert "lists: 'Old' was deleted by the run" in result.failures


# -- epochs and pass@k --------------------------------------------------------------------------
def test_pass_at_k_is_the_unbiased_estimate() -> None:
    assert pass_at_k(5, 5, 1) == 1.0 and pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(4, 2, 1) == pytest.approx(0.5)
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)
    assert pass_at_k(3, 1, 3) == 1.0
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)


def test_epochs_report_pass_at_1_and_pass_at_k_with_a_scripted_model(tmp_path: Path) -> None:
    suite = load_suite(copy_suite(tmp_path, "hot-director-this-month", "warm-trip-leader"))
    right = {"hot-director-this-month": "fast-track", "warm-trip-leader": "nurture"}

    def factory(s: Any, case: Any, epoch: int) -> ModelChoice:
        # hot passes on every epoch but the last; warm only on the first of four
        good = epoch < 3 if case.id.startswith("hot") else epoch == 0
        answer = right[case.id] if good else "education"
        args = {"sequence": answer, "reason": "guided trips"}
        reply = AIMessage("", tool_calls=[{"name": "choose_sequence", "args": args, "id": "c1"}])
        return ModelChoice(ScriptedChatModel([reply]), "scripted (test)", "scripted")

    result = run_suite(suite, model_factory=factory, epochs=4)
    assert [sum(r.passed for r in runs) for runs in result.by_case().values()] == [3, 1]
    assert result.pass_rate == pytest.approx((3 / 4 + 1 / 4) / 2)
    assert result.pass_at(2) == pytest.approx((1.0 + (1 - 3 / 6)) / 2)
    assert result.pass_at(4) == 1.0
    assert not result.ok, "the threshold (1.0) is checked against pass@1"


# -- reports and the command --------------------------------------------------------------------
def test_reports_show_every_case_with_its_provenance(tmp_path: Path) -> None:
    folder = copy_suite(tmp_path, "hot-director-this-month", "never-subscribed")
    case_file = folder / "cases" / "hot-director-this-month.yaml"
    case_file.write_text(case_file.read_text(encoding="utf-8").replace("sequence: fast-track\n          reason",
                                                                       "sequence: nurture\n          reason"), "utf-8")
    author_case(load_suite(folder), load_suite(folder).case("hot-director-this-month"))
    result = run_suite(load_suite(folder))
    md, xml = write_reports([result], tmp_path / "out")
    text = md.read_text(encoding="utf-8")
    assert ("| lm | 2 | 50.0% | n/a | 100.0% | FAIL | 1 authored by hand (0 passed), 1 no model (1 passed) |"
            in text)
    assert "| authored by hand | 1 | 0 |" in text and "| no model | 1 | 1 |" in text
    assert "Live pass rate: n/a: no case was answered by a real model" in text
    assert "| band:hot | 2 | 1 |" in text
    assert "authored by hand (responses written by hand in" in text
    assert 'decision.sequence: expected "fast-track", got "nurture"' in text
    root = ET.parse(xml).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    cases = {tc.get("name"): tc for tc in root.iter("testcase")}
    assert set(cases) == {"hot-director-this-month", "never-subscribed"}
    props = {p.get("name"): p.get("value") for p in cases["hot-director-this-month"].iter("property")}
    assert props["cassette"].startswith("authored by hand") and props["labels"] == "band:hot, happy-path"
    assert props["kind"] == "authored"
    assert cases["hot-director-this-month"].find("failure") is not None
    assert cases["never-subscribed"].find("failure") is None


def test_the_command_exits_by_threshold_and_refuses_what_it_cannot_do(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_suite(tmp_path, "hot-director-this-month", "never-subscribed")
    with pytest.raises(SystemExit) as done:
        personas_main(["eval", str(folder), "--report", str(tmp_path / "out")])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "no OPENAI_API_KEY needed" in out and "1 authored by hand" in " ".join(out.split())
    assert (tmp_path / "out" / "junit.xml").exists() and (tmp_path / "out" / "report.md").exists()
    with pytest.raises(SystemExit) as done:
        personas_main(["eval", str(folder), "--case", "never-subscribed"])
    assert done.value.code == 0
    (folder / "suite.yaml").write_text((folder / "suite.yaml").read_text(encoding="utf-8").replace(
        "threshold: 1.0", "threshold: 1.0\nname: lm"), encoding="utf-8")
    (folder / "cassettes" / "hot-director-this-month.json").unlink()
    with pytest.raises(SystemExit) as done:
        personas_main(["eval", str(folder)])
    assert done.value.code == 2  # a cassette missing is a file to write, as any input to fix
    assert "ERROR lm/hot-director-this-month" in capsys.readouterr().out
    for argv in (["eval", "no_such_suite"], ["eval", str(folder), "--case", "nope"],
                 ["eval", str(folder), "--epochs", "2"], ["eval", str(folder), "--record"]):
        with pytest.raises(SystemExit) as done:
            personas_main(argv)
        assert done.value.code == 2, argv
    err = capsys.readouterr().err
    assert "no suite here" in err and "no case 'nope'" in err and "set OPENAI_API_KEY" in err
    for case_file in (folder / "cases").glob("*.yaml"):  # a suite left with no case says so, not "0 runs FAIL"
        case_file.unlink()
    with pytest.raises(SystemExit) as done:
        personas_main(["eval", str(folder)])
    assert done.value.code == 2
    assert "the suite 'lm' has no cases: put case files in" in " ".join(capsys.readouterr().err.split())
