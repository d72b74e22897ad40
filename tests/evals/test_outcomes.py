"""The eval extensions for the segment syncer and campaign reporter: source files, inputs by ref,
per-case settings, sandbox faults, the campaign and segment fixtures, and the outcome checks
(call counts, profiles' consent, list counts, files written, what the model was sent).

Suites here are written into ``tmp_path``; each check is shown to pass on a real run and to fail,
with a message naming what differs, when the expectation is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from evals.case import CaseFileError, Expect, SourceFile, load_suite
from evals.fixtures import Fixture, build_fixture
from evals.runner import check_case, run_case
from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock
from personas.kernel.models import ModelChoice, ScriptedChatModel

NOW = 1_773_144_000.0  # 2026-03-10T12:00:00Z: 08:00 in New York, yesterday there is 2026-03-09


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def suite_with(tmp_path: Path, persona: str, cases: dict[str, str], defaults: str = "") -> Path:
    folder = tmp_path / "suite"
    (folder / "cases").mkdir(parents=True)
    (folder / "suite.yaml").write_text(
        f"description: test suite\npersona: {persona}\nthreshold: 1.0\ndefaults:\n"
        f"  now: '2026-03-10T12:00:00Z'\n{defaults}", encoding="utf-8")
    for name, text in cases.items():
        (folder / "cases" / f"{name}.yaml").write_text(f"id: {name}\ndescription: a test case\n{text}",
                                                       encoding="utf-8")
    return folder


def failures_with(result: Any, **expect: Any) -> list[str]:
    """The failures of ``result``'s outcome against other expectations."""
    case = result.case.model_copy(update={"expect": Expect.model_validate(expect)})
    return check_case(case, result.outcome)


SYNC = """
sandbox:
  fixture:
    lists: [Club, Other]
    profiles:
      ann: {email: ann@example.com, consent: never, lists: [Club]}
      old: {email: old@example.com, lists: [Club]}
      lee: {email: lee@example.com, unsubscribed_from: [Club]}
files:
  rows.csv:
    header: email,consent
    generate:
      - {row: "p{n}@example.com,yes", count: 2}
      - {row: "p{n}@example.com,no", count: 1, start: 3}
  extra.csv: |
    email,consent
    ann@example.com,yes
    lee@example.com,yes
input:
  source: {kind: csv, path: {file: rows.csv}}
  target_list_id: {ref: "list:Club"}
  mode: mirror
approvals: [reject]
expect:
  profiles:             # profiles are read after the run for the keys named here
    p1@example.com: {consent: SUBSCRIBED}
    p3@example.com: {consent: NEVER_SUBSCRIBED}
    lee: {list_suppressions: [Club]}
    zed@example.com: {exists: false}
"""


def test_source_files_refs_and_the_consent_checks(tmp_path: Path) -> None:
    suite = load_suite(suite_with(tmp_path, "segment-syncer", {"sync": SYNC}))
    case = suite.case("sync")
    spec = case.files["rows.csv"]
    assert isinstance(spec, SourceFile)
    assert spec.render() == "email,consent\np1@example.com,yes\np2@example.com,yes\np3@example.com,no\n"
    result = run_case(suite, case)
    assert result.passed, result.failures or result.error
    state = result.outcome.state
    assert state["request"]["target_list_id"] == result.outcome.built.refs["list:Club"]
    assert state["request"]["source"]["path"].endswith("/input/rows.csv")
    assert result.outcome.files["input/extra.csv"]["rows"] == [{"email": "ann@example.com", "consent": "yes"},
                                                             {"email": "lee@example.com", "consent": "yes"}]
    ok = failures_with(result, call_counts={"bulk_import_profiles": 1, "bulk_subscribe_profiles": 1,
                                            # the removal's approval reads the list to show it: one more
                                            "http:*": {"max": 6}, "model:*": 0},
                       lists=[{"list": "Club", "count": 5}, {"list": "Club", "profile": "p3@example.com"},
                              {"list": "Club", "profile": "ANN@example.com"},
                              {"list": "Club", "profile": "nobody@example.com", "member": False}],
                       profiles={"p1@example.com": {"consent": "SUBSCRIBED"}, "p3@example.com": {"exists": True},
                                 "lee": {"list_suppressions": ["Club"]}, "zed@example.com": {"exists": False}})
    assert ok == []
    wrong = failures_with(result, call_counts={"bulk_import_profiles": 2, "*": {"max": 3}},
                          lists=[{"list": "Club", "count": 4}, {"list": "Club", "profile": "p3@example.com",
                                                                "member": False}],
                          profiles={"p3@example.com": {"consent": "SUBSCRIBED"}, "zed@example.com": {"exists": True}})
    assert "call_counts: calls of bulk_import_profiles: expected 2, got 1" in wrong
    assert any(w.startswith("call_counts: calls of *: ") and "is not max 3" in w for w in wrong), wrong
    assert "lists: 'Club': count: expected 4, got 5" in wrong
    assert "lists: p3@example.com is on 'Club'" in wrong
    assert 'profiles: p3@example.com.consent: expected "SUBSCRIBED", got "NEVER_SUBSCRIBED"' in wrong
    assert "profiles: zed@example.com.exists: expected true, got false" in wrong


@pytest.mark.parametrize(("patch", "problem"), [
    ("input: {source: {kind: csv, path: {file: missing.csv}}}\n", "input names file 'missing.csv'"),
    ("files: {rows.csv: {row: 'a{m}', count: 2}}\n", "use {n} for the row number"),
    ("files: {rows.csv: {header: email}}\n", "give the file's `text`, or rows to generate"),
    ("files: {../up.csv: x}\n", "use a plain file name"),
    ("expect: {lists: [{list: Club, exists: false, count: 1}]}\n", "a deleted list has no members"),
    ("expect: {files: [{path: 'a.md', size: {between: [1]}}]}\n", "give [low, high] numbers"),
    ("expect: {call_counts: {get_profiles: {min: many}}}\n", "give a number"),
])
def test_a_wrong_file_or_expectation_is_refused_when_the_suite_loads(tmp_path: Path, patch: str,
                                                                   problem: str) -> None:
    folder = suite_with(tmp_path, "segment-syncer", {"bad": patch})
    with pytest.raises(CaseFileError, match=r"bad\.yaml") as caught:
        load_suite(folder)
    assert problem in str(caught.value)


def test_settings_are_merged_and_a_wrong_one_fails_the_set_up(tmp_path: Path) -> None:
    cases = {
        "budget": "settings: {batch_size: 1}\nfiles: {a.csv: \"email\\na@example.com\\nb@example.com\\n\"}\n"
                  "input: {source: {kind: csv, path: {file: a.csv}}, target_list_id: {ref: 'list:Club'}}\n"
                  "sandbox: {fixture: {lists: [Club]}}\nexpect: {call_counts: {bulk_import_profiles: 2}}\n",
        "wrong": "settings: {batch_size: 5000}\ninput: {source: {kind: list, id: x}, target_list_id: y}\n",
        "unknown-ref": "sandbox: {fixture: {lists: [Club]}}\n"
                       "input: {source: {kind: list, id: {ref: 'list:Nope'}}, target_list_id: {ref: 'list:Club'}}\n",
    }
    suite = load_suite(suite_with(tmp_path, "segment-syncer", cases))
    assert run_case(suite, suite.case("budget")).passed, "batch_size 1: one import per row"
    wrong = run_case(suite, suite.case("wrong"))
    assert wrong.status == "error" and "could not be set up" in (wrong.error or "")
    assert "at most 1000" in (wrong.error or "")
    unknown = run_case(suite, suite.case("unknown-ref"))
    assert "unknown ref 'list:Nope'" in " ".join(unknown.failures), unknown.failures


def test_the_campaign_fixture_is_what_the_reporting_api_counts() -> None:
    sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock(NOW - 3600))
    client = sb.client()
    fixture = Fixture.model_validate({"lists": ["News"], "campaigns": [{
        "name": "Picks", "at": "2026-03-09T14:00:00Z", "lists": ["News"], "recipients": 10, "bounced": 2,
        "opens": 5, "clicks": 2, "unsubscribes": 1, "conversions": [{"count": 2, "value": 30}]}]})
    built = build_fixture(sb, client, fixture, NOW)
    campaign = client.call("get_campaign", id=built.refs["campaign:Picks"]).data["attributes"]
    assert (campaign["status"], campaign["send_time"][:16]) == ("Sent", "2026-03-09T14:00")
    body = client.call("query_campaign_values", conversion_metric_id=built.refs["metric:Placed Order"],
                       statistics=["recipients", "delivered", "bounced", "opens_unique", "clicks_unique",
                                   "unsubscribe_uniques", "conversions", "conversion_value"],
                       timeframe={"key": "yesterday"}).body
    [result] = body["data"]["attributes"]["results"]
    assert result["groupings"]["campaign_id"] == built.refs["campaign:Picks"]
    assert result["statistics"] == {"recipients": 10, "delivered": 8, "bounced": 2, "opens_unique": 5,
                                    "clicks_unique": 2, "unsubscribe_uniques": 1, "conversions": 2,
                                    "conversion_value": 60.0}
    with pytest.raises(ValueError, match=r"clicks \(6\) is more than opens \(5\)"):
        Fixture.model_validate({"campaigns": [{"name": "X", "recipients": 10, "opens": 5, "clicks": 6}]})


def test_segments_and_list_unsubscribes_in_the_fixture() -> None:
    sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock(NOW - 3600))
    client = sb.client()
    rule = {"type": "profile-property", "property": "properties['plan']",
            "filter": {"type": "string", "operator": "equals", "value": "pro"}}
    built = build_fixture(sb, client, Fixture.model_validate({
        "segments": [{"name": "Pros", "definition": {"condition_groups": [{"conditions": [rule]}]}}],
        "profiles": {"a": {"email": "a@example.com", "properties": {"plan": "pro"}, "unsubscribed_from": ["Club"]},
                     "b": {"email": "b@example.com", "properties": {"plan": "free"}, "lists": ["Club"]}}}), NOW)
    members = [p["id"] for p in client.iterate("get_profiles_for_segment", id=built.refs["segment:Pros"])]
    assert members == [built.profile_id("a")]
    assert [p["id"] for p in client.iterate("get_list_profiles", id=built.list_id("Club"))] == [built.profile_id("b")]
    marketing = client.call("get_profile", id=built.profile_id("a"), additional_fields_profile=["subscriptions"]) \
        .data["attributes"]["subscriptions"]["email"]["marketing"]
    assert marketing["consent"] == "SUBSCRIBED"
    assert [s["list_id"] for s in marketing["list_suppressions"]] == [built.list_id("Club")]


REPORT = """
model: {model}
settings: {{conversion_metrics: [Placed Order, Started Checkout]}}
sandbox:
  {faults}
  fixture:
    campaigns:
      - {{name: Picks, at: "2026-03-09T14:00:00Z", recipients: 10, opens: 4,
          conversions: [{{count: 1, value: 20}}, {{metric: Started Checkout, count: 2}}]}}
"""


def test_files_model_requests_and_faults_on_the_campaign_reporter(tmp_path: Path) -> None:
    suite = load_suite(suite_with(tmp_path, "campaign-reporter", {
        "report": REPORT.format(model="cassette", faults="") + "expect: {model_calls: 1}\n",
        "limited": REPORT.format(model="none", faults="faults: {storm_rate: 1.0, storm_retry_after: 3600, "
                                 "operations: [query_campaign_values]}") + "expect: {model_calls: 0}\n",
    }))
    scripted = ScriptedChatModel([AIMessage(content="One campaign [T1].")])
    result = run_case(suite, suite.case("report"), ModelChoice(scripted, "scripted", "scripted"))
    assert result.passed, result.failures or result.error
    [request] = result.outcome.model_requests
    assert [m["role"] for m in request["messages"]] == ["system", "human"]
    assert "Daily email campaign rollup for 2026-03-09" in request["messages"][1]["text"], "as sent, not masked"
    md = "reports/2026-03-09/campaign-report-2026-03-09.md"
    assert failures_with(result, files=[
        {"path": md, "format": "text", "text": {"contains": "One campaign [T1]."}},
        {"path": "reports/*/*.csv", "count": 1, "rows": {"items": [{"name": "Picks", "conversions": "1"}]}},
        {"path": "reports/*/*.png", "format": "png", "size": {"min": 1000}},
        {"path": "reports/2026-03-08/*", "exists": False}],
        model_requests=[{"messages": [{"role": "human", "text": {"contains": '"C1": "Picks"'}}]}],
        call_counts={"query_campaign_values": 2}) == []
    wrong = failures_with(result, files=[{"path": "reports/*.pdf"}, {"path": md, "text": {"contains": "Nope"}},
                                         {"path": "reports/*/*.png", "exists": False}],
                          model_requests={"len": 2})
    assert any(w.startswith("files[reports/*.pdf]: no such file (files: ") for w in wrong), wrong
    assert any(w.startswith(f"files[{md}]: text: ") and "does not contain" in w for w in wrong), wrong
    assert any(w.startswith("files[reports/*/*.png]: exists: reports/2026-03-09/") for w in wrong), wrong
    assert "len(model_requests): expected 2, got 1" in wrong, "the field named once, not model_requests: model_requests"
    listed = failures_with(result, model_requests=[{"messages": [{"role": "tool"}]}], interrupts={"len": 1},
                           approvals_asked=[{"tool": "create_event"}])
    assert sorted(w.split(":")[0] for w in listed) == ["approvals_asked", "len(interrupts)", "model_requests"], listed
    assert not any(w.startswith(f"{field}: {field}") for w in listed
                   for field in ("interrupts", "approvals_asked", "model_requests")), listed

    limited = run_case(suite, suite.case("limited"))
    assert limited.passed, limited.failures or limited.error
    calls = [(c["tool"], c["status"]) for c in limited.outcome.trajectory]
    assert calls == [("get_accounts", 200), ("get_metrics", 200), ("query_campaign_values", 429)], (
        "the fault applies to the run, not to the fixture")
    assert limited.outcome.state["limit"]["kind"] == "http_429"
