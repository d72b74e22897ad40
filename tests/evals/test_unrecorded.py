"""A case a labelled cassette set never recorded (written after the set was) is "not recorded for this
model": listed apart, in no pass rate, never a pass, never a crash or a usage error, and no cassette is
made up for it. Suites are copies in ``tmp_path``; ``personas eval`` runs in process."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_broken_inputs import copy_suite, edit  # tests/evals is on the path (no package)

from personas.cli import main as personas_main

pytestmark = pytest.mark.usefixtures("no_model_env")

NEW = "hot-director-this-month"  # a model case, taken out of the set as if written after it was recorded
HELD = "cold-just-browsing"  # a model case the set holds, and passes
NO_MODEL = "suppressed"  # asks no model
QWEN = "qwen2.5-coder-0.5b"


def _eval(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        personas_main(["eval", *argv])
    captured = capsys.readouterr()
    return int(done.value.code or 0), " ".join((captured.out + captured.err).split()).replace("│", "")


def _suite(tmp_path: Path, *case_ids: str) -> Path:
    folder = copy_suite(tmp_path, "lead_magnet", *case_ids, sets=True)
    edit(folder / f"cassettes-{QWEN}" / "set.json", lambda d: d.update(known_failures={}))
    (folder / f"cassettes-{QWEN}" / f"{NEW}.json").unlink()
    return folder


def test_a_case_the_set_never_recorded_is_counted_apart_and_the_others_decide_the_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _suite(tmp_path, NEW, HELD, NO_MODEL)
    missing = folder / f"cassettes-{QWEN}" / f"{NEW}.json"
    code, out = _eval(capsys, str(folder), "--cassettes", QWEN, "--report", str(tmp_path / "out"))
    assert code == 0, out  # the two cases the set can answer pass; the third is not a failure, nor an error
    assert f"NOT RECORDED lead_magnet/{NEW}" in out and "not recorded for this model" in out, out
    assert f"--case {NEW} --record --cassettes {QWEN}" in out, out
    assert "1 case(s) not recorded for this model (not counted)" in out, out
    assert "2 runs in" in out and "ERROR" not in out and "FAILED" not in out, out
    assert not missing.exists(), "no cassette is ever made up for a case the model never answered"
    suite = ET.parse(tmp_path / "out" / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("skipped") == "1" and suite.get("failures") == suite.get("errors") == "0"
    [skipped] = [c for c in suite.iter("testcase") if c.find("skipped") is not None]
    assert skipped.get("name") == NEW
    assert "not recorded for this model (1)" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8").lower()


def test_a_suite_none_of_whose_cases_the_set_recorded_does_not_pass(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    folder = _suite(tmp_path, NEW)
    code, out = _eval(capsys, str(folder), "--cassettes", QWEN)
    assert code == 1 and f"NOT RECORDED lead_magnet/{NEW}" in out and "FAIL" in out, out


def test_the_default_set_missing_a_model_case_is_still_an_error(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Only a labelled set can be older than a case; the default set is the suite's own, kept with it."""
    folder = copy_suite(tmp_path, "lead_magnet", NEW)
    (folder / "cassettes" / f"{NEW}.json").unlink()
    code, out = _eval(capsys, str(folder))
    assert code == 2 and f"ERROR lead_magnet/{NEW}" in out and "NOT RECORDED" not in out, out
