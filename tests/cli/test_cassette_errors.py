"""A cassette that is missing or does not load is the user's file to fix: exit 2, the file and the fix.

It was exit 1, the code of a run that failed, though nothing had run: ``run``/``chat --replay`` with a
file that is not there or not a cassette, the demo with a shipped cassette gone, and ``personas eval``
with a case's cassette missing or broken (there every other case still runs and is reported). Real
``personas`` processes; suites and the package are copies in ``tmp_path``, the shipped files untouched.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT
from .test_errors import one_line_error, personas

HOT = "hot-director-this-month"


@pytest.mark.parametrize("text", [None, '{"version": 2, "interactions": ['], ids=["missing", "not-json"])
def test_a_replay_cassette_that_is_missing_or_broken_is_a_usage_error_naming_it(
        tmp_path: Path, text: str | None) -> None:
    cassette = tmp_path / "answers.json"
    if text is not None:
        cassette.write_text(text, encoding="utf-8")
    said = "does not exist" if text is None else "is not valid JSON"
    for args in (["run", "campaign-reporter", "--sandbox", "--input", "{}", "--replay", str(cassette)],
                 ["chat", "klaviyo-assistant", "--sandbox", "--replay", str(cassette)]):
        line = one_line_error(personas(tmp_path, *args), 2)
        assert f"cassette {cassette} {said}" in line and "re-record it" in line, line


def test_the_demo_with_a_shipped_cassette_gone_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    package = tmp_path / "code" / "personas"
    shutil.copytree(ROOT / "personas", package, ignore=shutil.ignore_patterns("__pycache__"))
    gone = package / "cli" / "demo_cassettes" / "lead_magnet.json"
    gone.unlink()
    proc = personas(tmp_path, "demo", PYTHONPATH=f"{package.parent}:{ROOT}")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert lines[-1].startswith(f"error: cassette {gone} does not exist"), proc.stderr
    assert "scripts/author_demo_cassettes.py" in lines[-1]


def test_eval_with_a_case_cassette_missing_or_broken_exits_2_after_the_other_cases(tmp_path: Path) -> None:
    folder = tmp_path / "lm"
    shutil.copytree(ROOT / "evals" / "suites" / "lead_magnet", folder, ignore=shutil.ignore_patterns("cassettes-*"))
    keep = {HOT, "cold-just-browsing", "no-model"}
    for file in [*(folder / "cases").glob("*.yaml"), *(folder / "cassettes").glob("*.json")]:
        if file.stem not in keep:
            file.unlink()
    missing = folder / "cassettes" / f"{HOT}.json"
    missing.unlink()
    broken = folder / "cassettes" / "cold-just-browsing.json"
    broken.write_text("{", encoding="utf-8")
    proc = personas(tmp_path, "eval", str(folder))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())
    assert f"ERROR lm/{HOT}" in out and "ERROR lm/cold-just-browsing" in out, out
    assert "lm: 1 no model (1 passed), 2 unanswered (error)" in out, out  # the case without a model still ran
    line = one_line_error(subprocess.CompletedProcess(proc.args, 2, "", proc.stderr), 2)
    assert str(missing) in line and str(broken) in line, line
    assert "2 cases" in line and "--author" in line, line
