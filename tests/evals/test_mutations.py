"""The evals catch regressions: break the prompt, the policy or a tool schema and the right cases fail.

Nothing of ours is patched. The prompt and the policy are changed the way a user would change
them: a persona file of the same name in ``$PERSONAS_HOME/personas/`` (which overrides the shipped
one), pointing at an edited copy of the prompt or carrying edited settings. The tool schema is
changed in a temporary copy of the code, whose generated catalog renames an argument of
``create_event``; the suite then runs there in a subprocess.

Each test names the cases it expects to fail and checks that every other case still passes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from evals.case import Suite, load_suite
from evals.runner import SuiteResult, run_suite
from klaviyo_toolkit.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[2]
PERSONA = ROOT / "personas" / "definitions" / "lead-magnet-sequencer.yaml"
PROMPT = ROOT / "prompts" / "lead_magnet_sequencer.v1.md"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (tmp_path / "personas").mkdir()
    return tmp_path


@pytest.fixture(scope="module")
def suite() -> Suite:
    return load_suite("lead_magnet")


def override(home: Path, old: str, new: str) -> None:
    """Write ``$PERSONAS_HOME/personas/lead-magnet-sequencer.yaml``: the shipped one with ``old`` -> ``new``."""
    text = PERSONA.read_text(encoding="utf-8")
    assert old in text, old
    (home / "personas" / PERSONA.name).write_text(text.replace(old, new), encoding="utf-8")


def verdicts(result: SuiteResult) -> tuple[set[str], set[str]]:
    failed = {r.case.id for r in result.results if not r.passed}
    return failed, {r.case.id for r in result.results} - failed


def ids(suite: Suite, *, having: str | None = None, without: str | None = None,
        asks_model: bool | None = None) -> set[str]:
    out = set()
    for case in suite.cases:
        if (having and having not in case.labels) or (without and without in case.labels):
            continue
        if asks_model is not None and bool(case.authored_responses) != asks_model:
            continue
        out.add(case.id)
    return out


def test_a_changed_prompt_fails_every_case_that_asks_the_model(home: Path, suite: Suite) -> None:
    prompt = home / "lead_magnet_sequencer.v1.md"
    prompt.write_text(PROMPT.read_text(encoding="utf-8").replace(
        "Education suits early or unclear interest.", "Education suits everyone who is not a team buyer."),
        encoding="utf-8")
    override(home, "prompt: lead_magnet_sequencer.v1.md", f"prompt: {prompt}")
    result = run_suite(suite)
    failed, passed = verdicts(result)
    assert failed == ids(suite, asks_model=True)
    assert passed == ids(suite, asks_model=False) and "never-subscribed" in passed and "no-model" in passed
    errors = [r.error or "" for r in result.results if not r.passed]
    assert all("does not match cassette" in e and "Education suits everyone" in e for e in errors)
    assert all("`personas eval lead_magnet --case " in e and " --author`" in e for e in errors)


def test_a_changed_band_threshold_fails_only_the_leads_it_moves(home: Path, suite: Suite) -> None:
    override(home, "{name: hot, min_score: 60,", "{name: hot, min_score: 65,")
    failed, passed = verdicts(run_suite(suite))
    assert failed == {"hot-boundary-sixty", "hot-by-engagement"}, "60 and 61 points are warm now"
    assert len(passed) == len(suite.cases) - 2


def test_a_changed_allowed_sequence_fails_the_hot_decisions(home: Path, suite: Suite) -> None:
    override(home, "{name: hot, min_score: 60, sequences: [fast-track, nurture]}",
             "{name: hot, min_score: 60, sequences: [nurture]}")
    result = run_suite(suite)
    failed, passed = verdicts(result)
    assert failed == ids(suite, having="band:hot", without="no-send")
    assert {"never-subscribed", "suppressed", "existing-sequence-start"} <= passed, "hot, but nothing is decided"
    assert ids(suite, having="band:warm") | ids(suite, having="band:cold") <= passed
    no_model = next(r for r in result.results if r.case.id == "no-model")
    assert 'decision.sequence: expected "fast-track", got "nurture"' in " ".join(no_model.failures), (
        "without a model the policy's new default shows as a wrong decision, not a cassette error")


def test_a_renamed_tool_argument_fails_every_case_that_sends(tmp_path: Path, suite: Suite) -> None:
    copy = tmp_path / "code"
    for package in ("klaviyo_toolkit", "personas", "graphs", "prompts", "evals"):
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    catalog = copy / "klaviyo_toolkit" / "catalog" / "data" / "stable.operations.json"
    data = json.loads(catalog.read_text(encoding="utf-8"))
    create_event = next(op for op in data["operations"] if op["operation_id"] == "create_event")
    next(arg for arg in create_event["args"] if arg["name"] == "unique_id")["name"] = "dedupe_key"
    catalog.write_text(json.dumps(data), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(copy), "PERSONAS_HOME": str(tmp_path / "home")}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-c", "from personas.cli import main; main()", "eval", "lead_magnet", "--report",
         str(tmp_path / "out")], cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    cases = {tc.get("name"): tc for tc in ET.parse(tmp_path / "out" / "junit.xml").getroot().iter("testcase")}
    failed = {name for name, tc in cases.items() if tc.find("failure") is not None or tc.find("error") is not None}
    assert failed == ids(suite, without="no-send"), "the graph can no longer start a sequence"
    assert set(cases) - failed == ids(suite, having="no-send")
    assert "the run raised InvalidArgumentError" in done.stdout and "unique_id" in done.stdout, done.stdout


def test_approvals_switched_off_fail_exactly_the_chat_approval_cases(home: Path) -> None:
    """With every write relaxed, consequential calls go straight out: every case about an approval fails."""
    chat = load_suite("chat")
    persona = ROOT / "personas" / "definitions" / "klaviyo-assistant.yaml"
    text = persona.read_text(encoding="utf-8")
    assert "  mode: effects" in text
    writes = [op.operation_id for op in load_catalog() if not op.read_only]
    relaxed = text.replace("  mode: effects", "  mode: effects\n  relax: [" + ", ".join(writes) + "]")
    (home / "personas" / persona.name).write_text(relaxed, encoding="utf-8")
    result = run_suite(chat)
    failed, passed = verdicts(result)
    assert failed == ids(chat, having="approval") and len(failed) >= 4
    assert passed == ids(chat, without="approval")
    approved = next(r for r in result.results if r.case.id == "delete-list-approved")
    assert "approvals: 1 answer(s) left unused; the run stopped for approval 0 time(s)" in approved.failures
