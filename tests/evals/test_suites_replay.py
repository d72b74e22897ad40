"""Every eval suite replays from its cassettes, as CI runs it, and the suites cover what the evals promise.

No key and no network: the model is the suites' cassettes (or a policy case's scripted behaviours),
Klaviyo the embedded sandbox. The run must pass every suite's threshold well within two minutes.
The suites themselves are checked too: each cassette says where it came from and loads, holds no
secret, is not orphaned and answers the case file; every authored answer was stamped for the prompt
it answers; the chat suite asks for approval on every consent, identity, destructive and sending tool
the assistant can reach; every persona has policy cases; every campaign-report rate and anomaly rule
is checked by a case; no case turns the fencing check off.
"""

from __future__ import annotations

import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from evals.case import REQUIRED_BEHAVIOURS, Suite, discover_suites, load_suite
from klaviyo_sandbox import Sandbox
from klaviyo_toolkit import KlaviyoToolkit
from klaviyo_toolkit.effects import APPROVAL_EFFECTS, operation_effects
from personas.kernel.cassette import Cassette, scrub
from personas.runtime.loader import load_persona
from tests.warm_cli import run_personas

ROOT = Path(__file__).resolve().parents[2]
BUDGET_SECONDS = 120


def suites() -> list[Suite]:
    return [load_suite(s.path) for s in discover_suites()]


def test_every_suite_passes_its_threshold_on_replay(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "KLAVIYO_", "PERSONAS_MODEL"))}
    env["PERSONAS_HOME"] = str(tmp_path / "home")
    started = time.perf_counter()
    done = run_personas([sys.executable, "-m", "personas.cli", "eval", "--report", str(tmp_path / "out")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUDGET_SECONDS)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert elapsed < BUDGET_SECONDS
    assert "no OPENAI_API_KEY needed" in done.stdout
    assert "Live pass rate: n/a: no case was answered by a real model" in done.stdout
    root = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    found = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(found) == {s.name for s in discover_suites()}
    kinds: dict[str, int] = {}
    for name, suite in found.items():
        props = {p.get("name"): p.get("value") for p in suite.find("properties") or []}
        assert float(props["pass_rate"]) >= float(props["threshold"]), name
        assert props["result"] == "pass" and props["live_pass_rate"] == "n/a"
        for case in suite.iter("testcase"):
            values = {p.get("name"): p.get("value") for p in case.iter("property")}
            kinds[values["kind"]] = kinds.get(values["kind"], 0) + 1
            expected = {"authored": "authored by hand", "recorded": "recorded from", "scripted": "scripted model",
                        "none": "no model"}[values["kind"]]
            assert values["cassette"].startswith(expected), (case.get("name"), values["cassette"])
            if values["kind"] == "scripted":
                assert "[" in str(case.get("name")), "a policy case's run is named by its behaviour"
    assert kinds.get("authored", 0) >= 50 and kinds.get("scripted", 0) >= 40 and kinds.get("none", 0) >= 30
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "### Authored by hand" in report and "### Scripted policy" in report and "### No model" in report
    assert "| scripted policy |" in report and "| lead_magnet |" in report and "| chat |" in report


def test_cassettes_say_where_they_came_from_answer_their_case_and_hold_no_secrets() -> None:
    for suite in suites():
        used = set()
        for case in suite.cases:
            path = suite.cassette_path(case)
            if case.authored_responses:
                assert path.exists(), f"{case.id}: authored_responses but no cassette; run --author"
                assert case.authored_for, f"{case.id}: authored answers not stamped for a prompt; review, then --stamp"
            if case.policy:
                assert not path.exists(), f"{case.id}: a policy case's models are scripted; it has no cassette"
            if not path.exists():
                continue
            used.add(path.resolve())
            text = path.read_text(encoding="utf-8")
            assert scrub(text) == text, f"{path} holds something that looks like a key"
            cassette = Cassette.load(path)  # provenance consistent with its contents, or it does not load
            if cassette.kind == "authored":
                assert "by hand" in cassette.provenance["method"] and case.authored_responses, path
                assert [i["response"] for i in cassette.interactions] == [
                    r.to_response(n) for n, r in enumerate(case.authored_responses)], f"{path} is stale: re-author it"
                assert all("evidence" not in i for i in cassette.interactions)
            data = json.loads(text)
            assert data["version"] == 2 and set(data["schemas"]) == {
                d for i in data["interactions"] for d in i["request"]["tools"].values()}
        orphans = {p.resolve() for p in (suite.path / "cassettes").glob("*.json")} - used
        assert not orphans, f"cassettes no case uses: {sorted(map(str, orphans))}"


def test_every_persona_has_policy_cases_that_run_with_every_kind_of_model() -> None:
    for suite in suites():
        policy = [c for c in suite.cases if c.policy]
        assert policy, f"{suite.name} has no policy case"
        for case in policy:
            behaviours = suite.behaviours_for(case)
            assert set(REQUIRED_BEHAVIOURS) <= set(behaviours), (suite.name, case.id)
            assert case.expect.trajectory is None or case.expect.trajectory.source == "http"


def test_no_case_turns_the_fencing_check_off() -> None:
    """Every case with untrusted data (form answers, profiles, lists, campaigns) has its model requests checked."""
    for suite in suites():
        for case in suite.cases:
            assert case.expect.fencing, f"{suite.name}/{case.id} turns fencing off"


def reachable_approval_tools() -> set[str]:
    """What klaviyo-assistant can call (its scopes, with find_tools) that stops for approval whatever the arguments."""
    spec = load_persona("klaviyo-assistant")
    kit = KlaviyoToolkit(Sandbox(seed=1, demo_data=False).client(), scopes=spec.scopes)
    return {op.operation_id for op in kit.catalog if kit.allows(op) and operation_effects(op) & APPROVAL_EFFECTS}


#: Writes the assistant can reach whose effect depends on their arguments (klaviyo_toolkit/effects.py):
#: a new email on an existing profile changes its identity; a list's opt-in process changes consent.
ARGUMENT_EFFECTS = {"update_profile": "identity", "create_or_update_profile": "identity",
                    "bulk_import_profiles": "identity", "update_list": "consent"}


def asked(value: Any) -> set[tuple[str, str]]:
    """(tool, effect) of every approval an expectation says the run stops for."""
    found: set[tuple[str, str]] = set()
    if isinstance(value, dict):
        if value.get("type") == "approval" and isinstance(value.get("tool"), str):
            for effect in value.get("effects") or ["destructive" if value.get("destructive") else ""]:
                found.add((value["tool"], str(effect)))
        for sub in value.values():
            found |= asked(sub)
    elif isinstance(value, list):
        for sub in value:
            found |= asked(sub)
    return found


def test_the_chat_suite_asks_for_approval_on_every_consequential_tool_the_assistant_can_reach() -> None:
    chat = load_suite("chat")
    reach = reachable_approval_tools()
    assert {"bulk_unsubscribe_profiles", "bulk_subscribe_profiles", "delete_list", "merge_profiles"} <= reach
    covered: set[tuple[str, str]] = set()
    for case in chat.cases:
        expectations = [case.expect, *case.expect_when.values()]
        for exp in expectations:
            covered |= asked(exp.approvals_asked) | asked(exp.interrupts)
    tools = {tool for tool, _ in covered}
    missing = sorted(reach - tools)
    assert not missing, f"no chat case expects an approval for {missing}"
    for tool, effect in ARGUMENT_EFFECTS.items():
        assert (tool, effect) in covered, f"no chat case expects {tool} to stop for its {effect} effect"
    unsubscribe = next(c for c in chat.cases if c.id == "policy-unsubscribe")
    assert unsubscribe.policy, "the unsubscribe approval holds whatever the model does"


def test_every_campaign_report_rate_and_anomaly_rule_is_checked() -> None:
    report = load_suite("campaign_report")
    rates = {"open_rate", "click_rate", "conversion_rate", "bounce_rate", "unsubscribe_rate"}
    kinds = {"high_bounce_rate", "high_unsubscribe_rate", "low_open_rate", "zero_deliveries"}
    day_rates: set[str] = set()
    row_rates: set[str] = set()
    flagged: set[str] = set()
    for case in report.cases:
        totals = case.expect.state.get("totals") or {}
        day_rates |= rates & set(totals.get("exact", totals))
        rows = (case.expect.state.get("campaigns") or {})
        for row in rows.get("items", []) if isinstance(rows, dict) else rows:
            row_rates |= rates & set(row)
        found = case.expect.state.get("anomalies") or {}
        for item in found.get("items", []) if isinstance(found, dict) else found:
            flagged.add(item.get("kind"))
    assert day_rates == rates and row_rates == rates, (day_rates, row_rates)
    assert flagged == kinds, flagged
    every = report.case("rates-and-anomaly-rules")
    assert every.expect.state["totals"]["exact"]["unsubscribe_rate"] == 0.0174
    assert [a["kind"] for a in every.expect.state["anomalies"]["items"]].count("high_unsubscribe_rate") == 1
