"""``junit.xml`` parses whatever text reaches it: a control character in a case's description, a model's
answer or a failure (ESC from a terminal colour, BEL, NUL) is written visibly (``\\u001b``), never raw,
since XML cannot hold it and a CI that cannot parse the file shows no result at all. The suite is a copy in
``tmp_path``, run through ``personas eval --report``.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from evals.case import SUITES_DIR
from personas.cli import main as personas_main

pytestmark = pytest.mark.usefixtures("no_model_env")
CASE = "suppressed"  # a lead_magnet case that asks no model


def test_control_characters_in_a_report_keep_junit_xml_parseable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "lm"
    shutil.copytree(SUITES_DIR / "lead_magnet", folder, ignore=shutil.ignore_patterns("cassettes*"))
    for file in (folder / "cases").glob("*.yaml"):
        if file.stem != CASE:
            file.unlink()
    case_file = folder / "cases" / f"{CASE}.yaml"
    lines = case_file.read_text(encoding="utf-8").split("\n")
    start = next(n for n, line in enumerate(lines) if line.startswith("description:"))
    end = next(n for n in range(start + 1, len(lines)) if not lines[n].startswith(" "))
    lines[start:end] = ['description: "bell \\a, escape \\e[31m, unit \\x1f, form feed \\f."']
    text = "\n".join(lines).replace('outcome: {contains: "no marketing send: suppressed"}',
                                    'outcome: {contains: "\\x01 never said"}')
    case_file.write_text(text, encoding="utf-8")

    with pytest.raises(SystemExit) as done:
        personas_main(["eval", str(folder), "--report", str(tmp_path / "out")])
    assert done.value.code == 1, capsys.readouterr()
    root = ET.parse(tmp_path / "out" / "junit.xml").getroot()  # raised "not well-formed" before
    case = root.find("testsuite/testcase")
    assert case is not None
    description = next(p.get("value") for p in case.iter("property") if p.get("name") == "description")
    assert description == "bell \\u0007, escape \\u001b[31m, unit \\u001f, form feed \\u000c."
    failure = case.find("failure")
    assert failure is not None and "never said" in (failure.text or "")
