"""A check that every run meets is a failure of the case, not a pass: ``model_calls: {min: 0}``, a count of
``{min: 0}``, ``{any_of: [{absent: true}, {present: true}]}`` on a state field hold whatever the agent did, so
a case leaning on them (alone or beside real checks) would pass a mutated agent. A negated matcher
(``not: {contains: ...}``) is a real check and is left alone. Runs a copy of a shipped case in ``tmp_path``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evals.case import SUITES_DIR, load_suite
from evals.runner import run_case

pytestmark = pytest.mark.usefixtures("no_model_env")
CASE = "suppressed"  # a lead_magnet case that asks no model


def run_with(tmp_path: Path, expect: str) -> list[str]:
    """The failures of ``CASE`` run with ``expect`` (YAML) in place of its own."""
    folder = tmp_path / "lm"
    if not folder.exists():
        shutil.copytree(SUITES_DIR / "lead_magnet", folder, ignore=shutil.ignore_patterns("cassettes*"))
        for file in (folder / "cases").glob("*.yaml"):
            if file.stem != CASE:
                file.unlink()
    case_file = folder / "cases" / f"{CASE}.yaml"
    text = (SUITES_DIR / "lead_magnet" / "cases" / f"{CASE}.yaml").read_text(encoding="utf-8")
    case_file.write_text(text[:text.index("\nexpect:")] + "\nexpect:\n" + expect, encoding="utf-8")
    suite = load_suite(folder)
    result = run_case(suite, suite.case(CASE))
    assert result.status in ("passed", "failed"), result
    return result.failures


@pytest.mark.parametrize(("expect", "where"), [
    ("  model_calls: {min: 0}\n", "expect.model_calls"),
    ("  call_counts: {'*': {min: 0}}\n", "expect.call_counts['*']"),
    ("  call_counts: {'http:get_profile': {between: [0, 1000000000]}}\n", "expect.call_counts['http:get_profile']"),
    ("  state:\n    decision: {any_of: [{absent: true}, {present: true}]}\n", "expect.state['decision']"),
    # beside a real check, the vacuous one is still reported: it is a wrong check
    ("  model_calls: 0\n  state:\n    eligible.reason: {any_of: [{absent: true}, {present: true}]}\n",
     "expect.state['eligible.reason']"),
])
def test_a_matcher_every_run_meets_fails_the_case(tmp_path: Path, expect: str, where: str) -> None:
    failures = run_with(tmp_path, expect)
    assert any(f.startswith(f"{where}: ") and "holds whatever the run does" in f for f in failures), failures


@pytest.mark.parametrize("expect", [
    "  model_calls: 0\n",
    "  call_counts: {'http:get_profile': {min: 1}}\n",
    "  state:\n    eligible.reason: {not: {contains: 'eligible'}}\n",
    "  state:\n    decision.sequence: {absent: true}\n",
])
def test_a_real_check_is_not_called_vacuous(tmp_path: Path, expect: str) -> None:
    assert run_with(tmp_path, expect) == []
