"""The commands an eval error tells the user to run act on the suite that failed, not on a shipped one.

A bare suite name always means the shipped suite (``chat`` is ``evals/suites/chat``), so a hint for a
suite loaded from another folder (a copy, the user's own suite, one whose ``suite.yaml`` sets a shipped
suite's ``name``) must give that folder: following ``personas eval chat --case X --author`` would
otherwise rewrite the shipped cassette and leave the broken one as it was. Each test runs the hint as
printed and checks which file it wrote. Suites are copies in ``tmp_path``.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from evals.case import SUITES_DIR, load_suite
from evals.commands import suite_arg
from personas.cli import main as personas_main

CHAT_CASE = "delete-list-approved"
pytestmark = pytest.mark.usefixtures("no_model_env")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        personas_main(list(argv))
    captured = capsys.readouterr()
    return int(done.value.code or 0), " ".join((captured.out + captured.err).split()).replace("│", "")


def copy_suite(tmp_path: Path, name: str, case_id: str) -> Path:
    """``evals/suites/<name>`` copied with only ``case_id`` and its cassette (no labelled sets)."""
    folder = tmp_path / name
    shutil.copytree(SUITES_DIR / name, folder, ignore=shutil.ignore_patterns("cassettes-*"))
    for file in [*(folder / "cases").glob("*.yaml"), *(folder / "cassettes").glob("*.json")]:
        if file.stem != case_id:
            file.unlink()
    return folder


def hint_command(output: str, flag: str) -> list[str]:
    """The ``personas eval ... flag`` command quoted in ``output``, as argv after ``personas``."""
    found = re.search(r"`personas (eval [^`]*" + re.escape(flag) + r")`", output)
    assert found, output
    return shlex.split(found.group(1))


@pytest.mark.parametrize("renamed", [False, True], ids=["copy", "named-chat-elsewhere"])
def test_missing_cassette_hint_rebuilds_the_copy_not_the_shipped_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], renamed: bool) -> None:
    folder = copy_suite(tmp_path / "my suites", "chat", CHAT_CASE)
    if renamed:  # a folder of another name whose suite.yaml calls itself "chat"
        folder = folder.rename(folder.with_name("mine"))
        yaml = folder / "suite.yaml"
        yaml.write_text("name: chat\n" + yaml.read_text(encoding="utf-8"), encoding="utf-8")
        assert load_suite(folder).name == "chat"
    copied = folder / "cassettes" / f"{CHAT_CASE}.json"
    copied.unlink()
    shipped = SUITES_DIR / "chat" / "cassettes" / f"{CHAT_CASE}.json"
    before = shipped.read_bytes(), shipped.stat().st_mtime_ns

    code, out = run(capsys, "eval", str(folder), "--case", CHAT_CASE)
    assert code == 2 and str(copied) in out, out
    argv = hint_command(out, "--author")
    assert argv[1] == str(folder), out  # the folder, quoted for the shell (it has a space)

    code, out = run(capsys, *argv)
    assert code == 0, out
    assert copied.exists(), "the hint did not rebuild the broken cassette"
    assert (shipped.read_bytes(), shipped.stat().st_mtime_ns) == before, "the hint rewrote the shipped cassette"


def test_a_missing_set_hint_names_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_suite(tmp_path, "chat", CHAT_CASE)
    monkeypatch.chdir(tmp_path)
    code, out = run(capsys, "eval", "./chat", "--cassettes", "nope")
    assert code == 2, out
    assert "`personas eval ./chat --record --cassettes nope`" in out, out
    assert suite_arg(load_suite(folder)) == shlex.quote(str(folder))


def test_the_shipped_suite_is_still_named_by_its_name() -> None:
    assert suite_arg(load_suite("chat")) == "chat"
    assert suite_arg(load_suite(SUITES_DIR / "lead_magnet")) == "lead_magnet"
