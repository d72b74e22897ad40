"""A persona (or graph) misspelled in a suite is a usage error: exit 2, naming the file, its line and the
fix, whether the whole suite runs or one ``--case``. Suites are copies in ``tmp_path``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evals.case import SUITES_DIR
from personas.cli import main as personas_main

pytestmark = pytest.mark.usefixtures("no_model_env")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        personas_main(list(argv))
    captured = capsys.readouterr()
    return int(done.value.code or 0), " ".join((captured.out + captured.err).split())


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "leads"
    shutil.copytree(SUITES_DIR / "lead_magnet", folder)
    return folder


@pytest.mark.parametrize("where", ["suite", "case"])
def test_a_misspelled_persona_exits_2_naming_its_file_for_a_whole_run_and_for_one_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    folder = _copy(tmp_path)
    if where == "suite":
        named = folder / "suite.yaml"
        named.write_text(named.read_text().replace("persona: lead-magnet-sequencer",
                                                   "persona: lead-magnet-sequenser"))
    else:
        named = folder / "cases" / "policy-cold.yaml"
        named.write_text("persona: lead-magnet-sequenser\n" + named.read_text())
    for argv in (["eval", str(folder)], ["eval", str(folder), "--case", "policy-cold"]):
        code, out = _run(capsys, *argv)
        assert code == 2, (argv, out)
        assert f"{named}:" in out and "persona: 'lead-magnet-sequenser': no such persona" in out, out
        assert "did you mean lead-magnet-sequencer?" in out and "ERROR" not in out, out
    if where == "case":  # only the case naming it is refused: the others still run
        code, out = _run(capsys, "eval", str(folder), "--case", "cold-no-answers")
        assert code == 0, out


def test_a_graph_no_persona_uses_exits_2_naming_the_suite_file(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = _copy(tmp_path)
    suite = folder / "suite.yaml"
    suite.write_text(suite.read_text().replace("persona: lead-magnet-sequencer", "graph: lead_magnett"))
    code, out = _run(capsys, "eval", str(folder), "--case", "policy-cold")
    assert code == 2 and f"{suite}:" in out and "graph: no persona uses the graph 'lead_magnett'" in out, out
    assert "lead_magnet" in out.split("graphs in use:")[1], out
