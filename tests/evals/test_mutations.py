"""The evals catch regressions, and a cassette mismatch never counts as catching one.

Nothing of ours is patched. The prompt and the policy are changed the way a user would change
them: a persona file of the same name in ``$PERSONAS_HOME/personas/`` (which overrides the shipped
one), pointing at an edited copy of the prompt or carrying edited settings. Code is changed in a
temporary copy of the tree, run in a subprocess. Where a change makes cassettes stop matching, the
test re-authors them (as the error says to) and requires a case to *fail* afterwards: an
expectation, the fencing check, a stale or impossible authored answer; an error that only says
"re-author" is not a catch. ``benchmarks/eval_mutations.py`` does the same for every mutation it
knows; the last test here runs its harness on a few.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from evals.author import author_case
from evals.case import Suite, load_suite
from evals.runner import SuiteResult, run_suite

ROOT = Path(__file__).resolve().parents[2]
PERSONA = ROOT / "personas" / "definitions" / "lead-magnet-sequencer.yaml"
PROMPT = ROOT / "prompts" / "lead_magnet_sequencer.v1.md"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (tmp_path / "home" / "personas").mkdir(parents=True)
    return tmp_path / "home"


@pytest.fixture(scope="module")
def suite() -> Suite:
    return load_suite("lead_magnet")


def override(home: Path, old: str, new: str) -> None:
    """Write ``$PERSONAS_HOME/personas/lead-magnet-sequencer.yaml``: the shipped one with ``old`` -> ``new``."""
    text = PERSONA.read_text(encoding="utf-8")
    assert old in text, old
    (home / "personas" / PERSONA.name).write_text(text.replace(old, new), encoding="utf-8")


def verdicts(result: SuiteResult) -> tuple[set[str], set[str]]:
    """(cases with a failing run, cases whose every run passed), by case id (a policy case's behaviours together)."""
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


def test_a_changed_prompt_is_still_caught_once_the_cassettes_are_re_authored(home: Path, tmp_path: Path) -> None:
    prompt = home / "lead_magnet_sequencer.v1.md"
    prompt.write_text(PROMPT.read_text(encoding="utf-8").replace(
        "Education suits early or unclear interest.", "Always choose fast-track."), encoding="utf-8")
    override(home, "prompt: lead_magnet_sequencer.v1.md", f"prompt: {prompt}")
    copy = tmp_path / "lead_magnet"
    shutil.copytree(ROOT / "evals" / "suites" / "lead_magnet", copy)
    suite = load_suite(copy)
    model_cases = ids(suite, asks_model=True)

    before = run_suite(suite)
    errors = {r.case.id for r in before.results if r.status == "error"}
    assert errors == model_cases, "first the cassettes stop matching: errors, which alone catch nothing"
    assert all("--author`" in (r.error or "") for r in before.results if r.status == "error")

    for case in suite.cases:  # as the error message says
        if case.id in model_cases:
            author_case(suite, case)
    after = run_suite(load_suite(copy))
    failed, passed = verdicts(after)
    assert not [r for r in after.results if r.status == "error"], "the re-authored cassettes replay"
    assert failed == model_cases, "every hand-written answer was written for the old prompt"
    assert all(any(f.startswith("stale: the authored responses were written for prompt sha256:") for f in r.failures)
               for r in after.results if r.case.id in model_cases)
    assert passed == {c.id for c in suite.cases} - model_cases, "policy and no-model cases do not depend on it"


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
    absent = next(r for r in result.results if r.key == "policy-hot[absent]")
    assert 'decision.sequence: expected "fast-track", got "nurture"' in " ".join(absent.failures), (
        "without a model the policy's new default shows as a wrong decision, not a cassette error")


def _eval_in_copy(tmp_path: Path, suite_name: str, mutate: Callable[[Path], None]
                  ) -> tuple[subprocess.CompletedProcess[str], set[str], set[str]]:
    """``personas eval SUITE`` on a copy of the code that ``mutate`` changed: the run, and the case
    ids that failed and that passed (from its junit report)."""
    copy = tmp_path / "code"
    for package in ("klaviyo_toolkit", "personas", "graphs", "prompts", "evals"):
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    mutate(copy)
    env = {**os.environ, "PYTHONPATH": str(copy), "PERSONAS_HOME": str(tmp_path / "home")}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-c", "from personas.cli import main; main()", "eval", suite_name, "--report",
         str(tmp_path / "out")], cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    cases = {tc.get("name"): tc for tc in ET.parse(tmp_path / "out" / "junit.xml").getroot().iter("testcase")}
    failed = {name.split("[")[0] for name, tc in cases.items()
              if tc.find("failure") is not None or tc.find("error") is not None}
    return done, failed, {name.split("[")[0] for name in cases} - failed


def test_a_renamed_tool_argument_fails_every_case_that_sends(tmp_path: Path, suite: Suite) -> None:
    def rename(copy: Path) -> None:
        catalog = copy / "klaviyo_toolkit" / "catalog" / "data" / "stable.arguments.json"
        data = json.loads(catalog.read_text(encoding="utf-8"))
        next(arg for arg in data["arguments"]["create_event"] if arg["name"] == "unique_id")["name"] = "dedupe_key"
        catalog.write_text(json.dumps(data), encoding="utf-8")

    done, failed, passed = _eval_in_copy(tmp_path, "lead_magnet", rename)
    assert done.returncode == 1, done.stdout + done.stderr
    assert failed == ids(suite, without="no-send"), "the graph can no longer start a sequence"
    assert passed == ids(suite, having="no-send")
    assert "the run raised InvalidArgumentError" in done.stdout and "unique_id" in done.stdout, done.stdout


def test_approvals_switched_off_fail_exactly_the_chat_approval_cases(tmp_path: Path) -> None:
    """With no call ever needing approval (the guard's check switched off in a copy of the code; a
    persona file can no longer waive a model's calls), consequential calls go straight out: every
    case about an approval fails."""
    chat = load_suite("chat")
    check = "def needs_approval(policy: ApprovalPolicy, call: Call, found: FoundEffects | None = None) -> bool:\n"

    def switch_off(copy: Path) -> None:
        governance = copy / "personas" / "kernel" / "governance.py"
        text = governance.read_text(encoding="utf-8")
        assert check in text
        governance.write_text(text.replace(check, check + "    return False\n"), encoding="utf-8")

    done, failed, passed = _eval_in_copy(tmp_path, "chat", switch_off)
    assert done.returncode == 1, done.stdout + done.stderr
    assert failed == ids(chat, having="approval") and len(failed) >= 12
    assert passed == ids(chat, without="approval")
    assert "approvals: 1 answer(s) left unused; the run stopped for approval 0 time(s)" in (
        (tmp_path / "out" / "junit.xml").read_text(encoding="utf-8"))


def benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_mutations", ROOT / "benchmarks" / "eval_mutations.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_mutations"] = module
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_harness_counts_failures_after_re_authoring_never_cassette_errors(tmp_path: Path) -> None:
    bench = benchmark()
    cases = ("hot-director-this-month", "injection-delete-lists", "policy-cold")
    control = bench.run_mutation(None, tmp_path, ["lead_magnet"], cases)
    assert (control.before_failed, control.before_errors, control.after_failed, control.after_errors) == (0, 0, [], 0)

    unfenced = next(m for m in bench.MUTATIONS if m.name == "form-answers-unfenced")
    caught = bench.run_mutation(unfenced, tmp_path, ["lead_magnet"], cases)
    assert caught.before_errors == 2, "the two model cases' cassettes stop matching first"
    assert caught.caught and set(caught.after_failed) >= {"lead_magnet/injection-delete-lists",
                                                          "lead_magnet/policy-cold[compliant]"}
    assert "fencing:" in caught.first_failure

    # a change that only rewords the request: its cassette errors vanish with re-authoring, and it is not caught
    reworded = bench.Mutation("reworded-request", "prompts", "the request says 'exactly once'", ("lead_magnet",),
                              code={bench.LEAD: ('"Call choose_sequence once."',
                                                 '"Call choose_sequence exactly once."')})
    verdict = bench.run_mutation(reworded, tmp_path, ["lead_magnet"], cases)
    assert verdict.before_errors == 2 and verdict.after_failed == [] and not verdict.caught
    assert "| reworded-request | prompts | 0 / 2 | 0 (+0 errors) | NO |" in bench.table([verdict])
