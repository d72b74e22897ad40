"""Ways an eval could pass a wrong decision, or stop on a file it should judge, found by probing it from outside.

- ``{not: m}`` under ``match: exact`` (the default) held whenever the call had another argument;
- a case that expects nothing passed whatever its agent did;
- a key-looking string in hand-written answers made the cassette never "hold" them, so re-authoring looped;
- a cassette whose ``request.tools`` is not an object stopped the whole run with an AttributeError;
- ``--report`` naming a file failed only after every suite ran, as an unexpected error with exit code 1;
- the table's ``runs`` counted cases while ``pass``/``fail`` counted every epoch.

Suites are copies in ``tmp_path``; the shipped ones are never touched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from evals.author import author_case
from evals.case import SUITES_DIR, load_suite
from evals.matchers import match_trajectory
from evals.report import suite_table, write_markdown
from evals.results import CaseResult, SuiteResult
from evals.runner import run_case, run_suite
from personas.cli import main as personas_main
from personas.kernel.cassette import Cassette, CassetteError, check_provenance

HOT = "hot-director-this-month"
pytestmark = pytest.mark.usefixtures("no_model_env")


def copy_suite(tmp_path: Path, *case_ids: str) -> Path:
    """``evals/suites/lead_magnet`` with only ``case_ids`` and their cassettes (no labelled sets)."""
    folder = tmp_path / "lm"
    shutil.copytree(SUITES_DIR / "lead_magnet", folder, ignore=shutil.ignore_patterns("cassettes-*"))
    for file in [*(folder / "cases").glob("*.yaml"), *(folder / "cassettes").glob("*.json")]:
        if file.stem not in case_ids:
            file.unlink()
    return folder


def test_not_holds_only_when_what_is_written_is_absent_also_under_exact_arguments() -> None:
    made = [{"source": "model", "tool": "choose_sequence", "args": {"sequence": "fast-track", "reason": "x"}}]
    for written in ({"not": {"sequence": "fast-track"}}, {"not": {"contains": {"sequence": "fast-track"}}}):
        problems = match_trajectory("strict", [{"tool": "choose_sequence", "args": written}], made)
        assert problems and "must not match" in problems[0], (written, problems)
    other = {"not": {"sequence": "nurture"}}
    assert match_trajectory("strict", [{"tool": "choose_sequence", "args": other}], made) == []


def test_a_case_that_checks_nothing_the_run_decides_fails(tmp_path: Path) -> None:
    folder = copy_suite(tmp_path, "no-model")
    case_file = folder / "cases" / "no-model.yaml"
    text = case_file.read_text(encoding="utf-8")
    case_file.write_text(text[:text.index("\nexpect:")] + "\nexpect: {trajectory: {mode: superset}}\n",
                         encoding="utf-8")
    suite = load_suite(folder)
    result = run_case(suite, suite.case("no-model"))
    assert result.status == "failed" and result.failures[0].startswith(
        "expect: the case checks nothing the run decides"), result.failures
    case_file.write_text(text[:text.index("\nexpect:")] + "\nexpect: {model_calls: 0}\n", encoding="utf-8")
    suite = load_suite(folder)
    assert run_case(suite, suite.case("no-model")).passed, "one real check is enough"


def test_a_key_in_hand_written_answers_is_masked_in_the_cassette_and_the_case_still_replays(tmp_path: Path) -> None:
    folder = copy_suite(tmp_path, HOT)
    case_file = folder / "cases" / f"{HOT}.yaml"
    key = "pk_live1234567890abcdefghij1234"
    text = case_file.read_text(encoding="utf-8")
    assert "sales conversation." in text
    case_file.write_text(text.replace("sales conversation.", f"sales conversation. Key {key}.", 1), encoding="utf-8")
    suite = load_suite(folder)
    done = author_case(suite, suite.case(HOT))
    cassette = (folder / "cassettes" / f"{HOT}.json").read_text(encoding="utf-8")
    assert key not in cassette and done.written
    assert done.result.passed, done.result.error or done.result.failures
    again = author_case(load_suite(folder), load_suite(folder).case(HOT))
    assert not again.written, "nothing changed: the cassette is left alone"


@pytest.mark.parametrize("tools, message", [
    (["choose_sequence"], "interaction 1: request.tools is a list; it must be an object"),
    ("choose_sequence", "interaction 1: request.tools is a string; it must be an object"),
    ({"choose_sequence": ["sha256:0"]}, "interaction 1: the definition of tool choose_sequence"),
])
def test_a_cassette_whose_tools_are_not_an_object_is_its_case_error_and_the_run_goes_on(
        tmp_path: Path, tools: Any, message: str) -> None:
    folder = copy_suite(tmp_path, HOT, "no-model")
    path = folder / "cassettes" / f"{HOT}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["interactions"][0]["request"]["tools"] = tools
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CassetteError, match="does not load"):
        Cassette.load(path)
    result = run_suite(load_suite(folder))
    by_case = {x.case.id: x for x in result.results}
    assert by_case[HOT].kind == "error" and message in (by_case[HOT].error or ""), by_case[HOT].error
    assert by_case["no-model"].passed


def test_token_counts_are_numbers_not_booleans() -> None:
    data = {"provenance": {"kind": "recorded", "requested_model": "m", "served_models": ["m"], "base_url": "http://h/v1",
                           "date": "2026-01-01", "package_version": "0.1.0"},
            "interactions": [{"evidence": {"id": "r1", "model": "m",
                                           "usage": {"input_tokens": True, "output_tokens": False}}}]}
    assert check_provenance(data) == ["interaction 1: evidence.usage (input_tokens, output_tokens) is missing"]


def test_a_report_folder_that_is_a_file_is_a_usage_error_before_anything_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_suite(tmp_path, "no-model")
    there = tmp_path / "out"
    there.write_text("not a folder", encoding="utf-8")
    with pytest.raises(SystemExit) as done:
        personas_main(["eval", str(folder), "--report", str(there)])
    out = " ".join("".join(capsys.readouterr()).split())
    assert done.value.code == 2, out
    assert f"--report {there}: a file is there; give a folder" in out and "personas eval" not in out, out


def test_runs_counts_every_run_that_pass_fail_and_err_count() -> None:
    from rich.console import Console

    suite = load_suite("lead_magnet")
    case = suite.case(HOT)
    runs = [CaseResult(suite.name, case, ["x"] if epoch == 1 else [], None, 0.1, "live", "live", epoch=epoch,
                       kind="live") for epoch in range(3)]
    console = Console(width=120, record=True)
    console.print(suite_table([SuiteResult(suite, runs, epochs=3)]))
    row = next(line for line in console.export_text().splitlines() if line.strip().startswith("lead_magnet"))
    assert row.split()[1:5] == ["3", "2", "1", "0"], row


@pytest.mark.parametrize(("written", "said"), [
    ("[delete_lists]", "expect.not_called: Unknown Klaviyo operation 'delete_lists'. Did you mean: delete_list"),
    ("[unsuppress_profiles]", "expect.not_called: 'unsuppress_profiles' is an alias; calls are recorded by "
                              "operation id: write 'bulk_unsuppress_profiles'"),
    ("[{tool: delete_profile, source: model}]", None),
    ("[delete_list, bulk_unsuppress_profiles]", None),
])
def test_a_tool_name_no_call_can_have_fails_the_case(tmp_path: Path, written: str, said: str | None) -> None:
    """A misspelt name or an alias in ``not_called`` never matched a call, so the check held whatever the
    run did (three shipped cases named ``delete_profile``, no Klaviyo operation, and one an alias)."""
    folder = copy_suite(tmp_path, "no-model")
    case_file = folder / "cases" / "no-model.yaml"
    text = case_file.read_text(encoding="utf-8")
    case_file.write_text(text[:text.index("\nexpect:")] + f"\nexpect: {{model_calls: 0, not_called: {written}}}\n",
                         encoding="utf-8")
    suite = load_suite(folder)
    result = run_case(suite, suite.case("no-model"))
    if said is None:
        assert result.passed, result.failures
    else:
        assert result.status == "failed" and any(f.startswith(said) for f in result.failures), result.failures


@pytest.mark.parametrize("date", ["NaN", "2026-02-30", "yesterday", "2999-01-01", 20260101])
def test_an_authored_cassette_gives_a_real_day_it_was_written(date: Any) -> None:
    data = {"provenance": {"kind": "authored", "by": "me", "method": "by hand", "date": date}, "interactions": []}
    assert check_provenance(data) == [f"provenance.date {date!r}: an authored cassette gives the day it was "
                                      "written, YYYY-MM-DD, not in the future"]
    data["provenance"]["date"] = "2026-03-01"
    assert check_provenance(data) == []


def test_an_empty_list_in_an_expectation_means_none_never_anything(tmp_path: Path) -> None:
    """``tools: []`` (the model was bound no tool) held for any list, as "each item written has a match"
    holds for no items: a case could not say "none" with it, and the campaign-report case that does
    checked nothing. Now ``[]`` matches only an empty list."""
    folder = copy_suite(tmp_path, HOT)
    case_file = folder / "cases" / f"{HOT}.yaml"
    text = case_file.read_text(encoding="utf-8")
    case_file.write_text(text.replace("\nexpect:\n", "\nexpect:\n  model_requests: [{tools: []}]\n", 1),
                         encoding="utf-8")
    suite = load_suite(folder)
    result = run_case(suite, suite.case(HOT))
    assert result.status == "failed", "the model was bound choose_sequence, not no tool"
    assert any('no item matches {"tools": []}' in f for f in result.failures), result.failures
    case_file.write_text(text.replace("\nexpect:\n", "\nexpect:\n  model_requests: [{tools: [choose_sequence]}]\n",
                                      1), encoding="utf-8")
    suite = load_suite(folder)
    assert run_case(suite, suite.case(HOT)).passed


def test_report_md_counts_cases_not_a_policy_cases_behaviours(tmp_path: Path) -> None:
    """report.md said "20 cases" of a suite of 15 case files, and counted a policy case under each of its
    labels once per behaviour (6 "policy" cases from one file): its runs were called cases."""
    folder = copy_suite(tmp_path, HOT, "policy-cold")
    result = run_suite(load_suite(folder))
    assert len(result.results) > 2, "the policy case runs once per behaviour"
    write_markdown([result], tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| lm | 2 |" in text, text[:800]
    assert f"2 cases, {len(result.results)} runs (a policy case once per behaviour; 1 epoch)" in text
    labels = dict(line.strip("| ").split(" | ")[:2] for line in text.splitlines()
                  if line.startswith("| policy |") or line.startswith("| band:cold |"))
    assert labels == {"policy": "1", "band:cold": "1"}, labels
