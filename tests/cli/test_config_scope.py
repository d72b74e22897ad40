"""The Config the root command resolves lasts for that command: ``main`` run in a process that goes
on (a script, a test worker) leaves nothing behind for the code that runs after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from personas.cli import main
from personas.cli.common import config


def test_a_command_run_in_process_leaves_no_config_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """``runs resume`` called after another command in the same process looked its run up in that
    command's home, and refused a run that existed (CI: a test worker had run `personas eval` in-process)."""
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("PERSONAS_HOME", str(first))
    try:
        main(["runs"])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr()
    assert "no runs yet" in capsys.readouterr().out
    monkeypatch.setenv("PERSONAS_HOME", str(second))
    assert config().home == second
