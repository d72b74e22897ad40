"""What the eval runner does with inputs that are wrong: a live model that never answers, a cassette
that does not load (or whose fields have the wrong JSON type, or that is dated in the future), and a
folder in the current directory that has a shipped suite's name.

Every one is an ERROR for its case alone (never a failure of a model, never "no model"), its message
names the file and the field, and nothing is said to be recorded or answered that was not.
Suites are copies in ``tmp_path``; the shipped ones are never touched.
"""

from __future__ import annotations

import datetime as _dt
import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from evals.case import SUITES_DIR, CaseFileError, load_suite
from evals.report import live_line, write_reports
from evals.results import CaseResult, SuiteResult
from evals.runner import run_case, run_suite
from personas.cli import main as personas_main
from personas.kernel.cassette import Cassette, CassetteError

HOT = "hot-director-this-month"
CHAT_CASE = "delete-list-approved"
QWEN = "qwen2.5-coder-0.5b"


pytestmark = pytest.mark.usefixtures("no_model_env")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        personas_main(list(argv))
    captured = capsys.readouterr()
    return int(done.value.code or 0), " ".join((captured.out + captured.err).split()).replace("│", "")


def copy_suite(tmp_path: Path, name: str, *case_ids: str, sets: bool = False) -> Path:
    """``evals/suites/<name>`` copied with only ``case_ids`` (and their cassettes; labelled sets if ``sets``)."""
    folder = tmp_path / name
    shutil.copytree(SUITES_DIR / name, folder,
                    ignore=None if sets else shutil.ignore_patterns("cassettes-*"))
    for file in (folder / "cases").glob("*.yaml"):
        if file.stem not in case_ids:
            file.unlink()
    for file in folder.glob("cassettes*/*.json"):
        if file.stem not in case_ids and file.name != "set.json":
            file.unlink()
    return folder


def edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


# -- a live model that never answers -------------------------------------------------------------------
def test_record_against_a_dead_model_in_a_graph_that_raises_is_an_error_and_says_nothing_was_recorded(
        tmp_path: Path, dead_model: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The chat graph lets the model's connection error through (lead_magnet falls back to its policy):
    still an error, not a failure of the model, and neither a recording nor a live pass rate claims it."""
    folder = copy_suite(tmp_path, "chat", CHAT_CASE)
    code, out = run(capsys, "eval", str(folder), "--case", CHAT_CASE, "--record", "--cassettes", "mine",
                    "--report", str(tmp_path / "out"))
    assert code == 1, out
    assert f"ERROR chat/{CHAT_CASE}" in out and "FAILED" not in out, out
    assert f"the live model at {dead_model} did not answer" in out
    assert "nothing recorded (no case was answered by the model)" in out and "recorded into" not in out, out
    assert "Live pass rate: n/a: no case was answered by a real model; 1 case(s) got no model answer" in out
    assert "a real model answered" not in out and "1 unanswered (error)" in out and "1 live" not in out
    assert not (folder / "cassettes-mine").exists()
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "### Unanswered (error) (1)" in report and "### No model" not in report and "### Live" not in report


def test_the_live_pass_rate_counts_only_cases_a_model_answered() -> None:
    suite = load_suite("lead_magnet")
    a, b, c = suite.cases[:3]
    results = [CaseResult(suite.name, a, [], None, 0.1, "live model", "live", kind="live"),
               CaseResult(suite.name, b, [], "the live model did not answer", 0.1, "live model", "live", kind="error"),
               CaseResult(suite.name, c, [], None, 0.1, "no model", "none", kind="none")]
    line = live_line([SuiteResult(suite, results)])
    assert line == ("Live pass rate: 100.0% over 1 case(s) a real model answered (lead_magnet 100.0%); "
                    "1 case(s) got no model answer (errors, not counted).")
    assert SuiteResult(suite, results).counts() == {"passed": 2, "failed": 0, "error": 1, "unrecorded": 0}


# -- cassettes that do not load ----------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(version="2"), 'version is "2" (a string); it must be the number 2'),
    (lambda d: d.update(version=True), "version is true (a boolean); it must be the number 2"),
    (lambda d: d["interactions"][0]["response"].update(content=5),
     "interaction 1: response.content is a number; it must be a string"),
    (lambda d: d["interactions"][0]["response"].update(tool_calls="x"),
     "interaction 1: response.tool_calls is a string; it must be a list"),
    (lambda d: d["interactions"][0]["response"]["tool_calls"][0].update(name=None),
     "interaction 1: response.tool_calls[0].name is null; it must be the tool's name"),
    (lambda d: d["interactions"][0]["response"]["tool_calls"][0].update(args=[1]),
     "interaction 1: response.tool_calls[0].args is a list; it must be an object"),
])
def test_a_cassette_field_of_the_wrong_type_is_named_with_the_file(tmp_path: Path, change: Any, message: str) -> None:
    folder = copy_suite(tmp_path, "lead_magnet", HOT)
    path = folder / "cassettes" / f"{HOT}.json"
    edit(path, change)
    with pytest.raises(CassetteError) as caught:
        Cassette.load(path)
    assert str(path) in str(caught.value) and message in str(caught.value)
    suite = load_suite(folder)
    result = run_case(suite, suite.case(HOT))
    assert result.status == "error" and result.kind == "error", result
    assert str(path) in (result.error or "") and message in (result.error or "")
    assert "case file changed" not in (result.error or "")


def test_an_unreadable_cassette_is_an_error_never_a_run_without_a_model(tmp_path: Path) -> None:
    folder = copy_suite(tmp_path, "lead_magnet", HOT, "no-model")
    path = folder / "cassettes" / f"{HOT}.json"
    path.write_text(path.read_text(encoding="utf-8")[:200], encoding="utf-8")
    result = run_suite(load_suite(folder))
    assert {x.case.id: (x.status, x.kind) for x in result.results} == {HOT: ("error", "error"),
                                                                        "no-model": ("passed", "none")}
    md, _ = write_reports([result], tmp_path / "out")
    text = md.read_text(encoding="utf-8")
    assert "1 no model (1 passed), 1 unanswered (error)" in text
    assert "| unanswered (error) | 1 | 0 |" in text and "| no model | 1 | 1 |" in text
    no_model = text[text.index("### No model"):]
    assert f"`{HOT}`" not in no_model[:no_model.index("###", 4)] and f"`{HOT}`" in text


def test_a_recorded_cassette_dated_in_the_future_does_not_load(tmp_path: Path) -> None:
    folder = copy_suite(tmp_path, "lead_magnet", HOT, sets=True)
    path = folder / f"cassettes-{QWEN}" / f"{HOT}.json"
    today = _dt.datetime.now(_dt.UTC).date()
    for day, loads in ((today, True), (today + _dt.timedelta(days=1), True), (today + _dt.timedelta(days=3), False),
                       (_dt.date(2031, 1, 1), today >= _dt.date(2030, 12, 31))):
        edit(path, lambda d, day=day: d["provenance"].update(date=day.isoformat()))
        if loads:
            Cassette.load(path)
            continue
        with pytest.raises(CassetteError, match=f"provenance.date {day.isoformat()} is in the future"):
            Cassette.load(path)
    edit(path, lambda d: d["provenance"].update(date="20260101"))
    with pytest.raises(CassetteError, match="YYYY-MM-DD"):
        Cassette.load(path)


# -- suite names ----------------------------------------------------------------------------------------------
def test_a_suite_name_is_the_shipped_suite_even_with_a_folder_of_that_name_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    here = tmp_path / "here"
    here.mkdir()
    local = copy_suite(here, "chat", CHAT_CASE)
    (local / "cassettes" / f"{CHAT_CASE}.json").write_text("{", encoding="utf-8")  # tells the two apart
    monkeypatch.chdir(here)
    assert load_suite("chat").path == SUITES_DIR / "chat"
    assert Path(load_suite("./chat").path).resolve() == local.resolve()
    assert Path(load_suite(str(local)).path) == local
    code, out = run(capsys, "eval", "chat", "--case", CHAT_CASE)
    assert code == 0 and "1 passed" in out, out
    code, out = run(capsys, "eval", "./chat", "--case", CHAT_CASE)
    assert code == 2 and f"ERROR chat/{CHAT_CASE}" in out and "is not valid JSON" in out, out  # a file to fix
    shutil.move(str(local), str(here / "mine"))
    with pytest.raises(CaseFileError, match=r"no shipped suite of this name.*for the suite folder here, give its "
                                            r"path: \./mine"):
        load_suite("mine")
    with pytest.raises(CaseFileError, match=r"a suite folder is given as a path \(e\.g\. \./nowhere\)"):
        load_suite("nowhere")
    assert load_suite("./mine").cases[0].id == CHAT_CASE


# -- cassettes that load but do not answer the run ---------------------------------------------------------
def _other_case_dropped_in(folder: Path, label: str) -> None:
    """Another case's cassette copied over HOT's, its ``provenance.case`` gone (nothing says whose it was)."""
    where = folder / label
    shutil.copy(where / "cold-just-browsing.json", where / f"{HOT}.json")
    edit(where / f"{HOT}.json", lambda d: d["provenance"].pop("case", None))


def _request_edited(folder: Path, label: str) -> None:
    """HOT's own cassette with its first request's score changed (the prompt it was made for changed)."""
    edit(folder / label / f"{HOT}.json", lambda d: d["interactions"][0]["request"]["messages"][1].update(
        text=d["interactions"][0]["request"]["messages"][1]["text"].replace("Lead score: 77", "Lead score: 12")))


@pytest.mark.parametrize("label, breakage", [
    (f"cassettes-{QWEN}", _other_case_dropped_in),  # recorded: counted as "1 recorded (0 passed)", live 0.0%
    (f"cassettes-{QWEN}", _request_edited),
    ("cassettes", _request_edited),  # authored: counted as "1 authored by hand (0 passed)"
])
def test_a_cassette_that_loads_but_does_not_match_the_run_is_unanswered_and_in_no_rate(
        tmp_path: Path, label: str, breakage: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """The mismatch is raised while the case runs, after the cassette loaded and gave the run its kind: the run is
    still an error of kind ``error``, in no live pass rate and under no kind of answer (recorded, authored)."""
    folder = copy_suite(tmp_path, "lead_magnet", HOT, "cold-just-browsing", sets=True)
    edit(folder / f"cassettes-{QWEN}" / "set.json", lambda d: d.update(known_failures={}))  # none of the two cases
    breakage(folder, label)
    argv = ["--cassettes", QWEN] if label != "cassettes" else []
    result = run_case(load_suite(folder), load_suite(folder).case(HOT), label=QWEN if argv else None)
    assert (result.status, result.kind) == ("error", "error"), result
    assert "request 1 does not match cassette" in (result.error or "")
    code, out = run(capsys, "eval", str(folder), "--case", HOT, *argv, "--report", str(tmp_path / "out"))
    assert code == 1 and f"ERROR lead_magnet/{HOT}" in out, out
    assert "model responses: lead_magnet: 1 unanswered (error)" in out, out
    assert "Live pass rate: n/a: no case was answered by a real model; 1 case(s) got no model answer" in out, out
    assert "recorded (" not in out and "authored by hand (" not in out and "known failure of the set" not in out
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "### Unanswered (error) (1)" in report and "### Recorded" not in report and "### Authored" not in report
    assert "| lead_magnet | 1 | 0.0% | n/a | 100.0% | FAIL | 1 unanswered (error) |" in report


# -- a case whose cassette is missing ----------------------------------------------------------------------
def _unused_answers(folder: Path) -> str:
    """A case the model is never asked in, given hand-written answers and no cassette (``--author`` refuses it)."""
    path = folder / "cases" / "suppressed.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "authored_responses:\n  - tool_calls:\n      - name: "
                    "choose_sequence\n        args: {sequence: fast-track, reason: nothing replays this}\n", "utf-8")
    return "suppressed"


def _deleted(folder: Path) -> str:
    (folder / "cassettes" / f"{HOT}.json").unlink()
    return HOT


@pytest.mark.parametrize("breakage", [_unused_answers, _deleted])
def test_a_case_with_authored_answers_and_no_cassette_is_unanswered_whether_or_not_the_model_is_asked(
        tmp_path: Path, breakage: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Replay errors naming the command that writes the cassette, before the run; never a pass, never "no model"."""
    folder = copy_suite(tmp_path, "lead_magnet", HOT, "suppressed")
    case_id = breakage(folder)
    suite = load_suite(folder)
    result = run_case(suite, suite.case(case_id))
    assert (result.status, result.kind) == ("error", "error"), result
    assert f"no cassette at {folder / 'cassettes' / case_id}.json" in (result.error or "")
    assert f"`personas eval {shlex.quote(str(folder))} --case {case_id} --author`" in (result.error or "")
    code, out = run(capsys, "eval", str(folder), "--case", case_id, "--report", str(tmp_path / "out"))
    assert code == 2 and f"ERROR lead_magnet/{case_id}" in out, out  # the cassette is a file to write: exit 2
    assert "model responses: lead_magnet: 1 unanswered (error)" in out and "no model (" not in out, out
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "### Unanswered (error) (1)" in report and "### No model" not in report
    assert "no model call expected" not in report


def test_a_case_that_cannot_be_authored_is_unanswered_not_hand_written_answers_that_failed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_suite(tmp_path, "lead_magnet", HOT, "suppressed")
    _unused_answers(folder)
    code, out = run(capsys, "eval", str(folder), "--case", "suppressed", "--author")
    assert code == 1 and "ERROR lead_magnet/suppressed" in out and "Remove the unused ones" in out, out
    assert "model responses: lead_magnet: 1 unanswered (error)" in out and "authored by hand (" not in out, out
    with pytest.raises(ValueError, match="a run that errored is of kind 'error', not 'authored'"):
        CaseResult("lead_magnet", load_suite(folder).case("suppressed"), [], "cannot author", 0.0, "authored",
                   "not written", kind="authored")


def test_a_recorded_set_missing_a_model_case_is_not_recorded_for_that_case(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A labelled set holds the cases with a cassette in the default set; one it lacks is not recorded for that
    model (counted apart: tests/evals/test_unrecorded.py), not a case that "expects no model call" (and fails
    for asking one), and the hint records into that set."""
    folder = copy_suite(tmp_path, "lead_magnet", HOT, "suppressed", sets=True)
    edit(folder / f"cassettes-{QWEN}" / "set.json", lambda d: d.update(known_failures={}))
    (folder / f"cassettes-{QWEN}" / f"{HOT}.json").unlink()
    case_file = folder / "cases" / f"{HOT}.yaml"  # a case recorded, not authored: nothing in the case says a model
    text = case_file.read_text(encoding="utf-8")
    case_file.write_text(text[:text.index("authored_for:")] + text[text.index("\nexpect:") + 1:], encoding="utf-8")
    suite = load_suite(folder)
    result = run_case(suite, suite.case(HOT), label=QWEN)
    assert (result.status, result.kind, result.error, result.failures) == ("unrecorded", "unrecorded", None, []), result
    assert f"no cassette at {folder / f'cassettes-{QWEN}' / HOT}.json" in (result.not_recorded or "")
    record = f"`personas eval {shlex.quote(str(folder))} --case {HOT} --record --cassettes {QWEN}`"
    assert record in (result.not_recorded or "")
    assert run_case(suite, suite.case("suppressed"), label=QWEN).passed, "a case that asks no model needs no cassette"
