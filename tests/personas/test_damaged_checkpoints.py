"""Damaged checkpoints stop runs with the file's name and the fix, wherever the run comes from.

The checkpoints hold a run's exactly-once progress, so a damaged ``checkpoints.sqlite`` is never
replaced behind the operator's back: code calling ``run_persona`` gets a ``StateFileError`` naming the
file, and the service records each run it cannot drive with that same sentence (the CLI's are in
``tests/cli/test_state_files.py``). Real SQLite files, the sandbox in-process, nothing mocked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.state_files import StateFileError
from personas.kernel.config import Config
from personas.runtime import checkpointer, run_persona
from personas.service.service import Service
from tests.graphs.leads import HOT, WARM, sign_up


def damaged_home(tmp_path: Path) -> Path:
    """A state folder whose checkpoints (written by two real runs) were cut short on disk: SQLite can
    still read the file's first page (its schema), not the rows."""
    first = tmp_path / "first"
    sb = Sandbox(seed=5)
    service = Service.open(Config(home=first), sandbox=sb)
    for email, answers in (("one@example.com", HOT), ("two@example.com", WARM)):
        event = sign_up(sb, email, answers)
        run, _ = service.record_event(service.persona("lead-magnet-sequencer"), event["data"]["id"], event,
                                      trigger="webhook")
        assert service.execute(run.id).status == "done"
    service.close()
    checkpointer(first / "checkpoints.sqlite").conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in the file
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    shutil.copy(first / "checkpoints.sqlite", home / "checkpoints.sqlite")  # a new file: no connection to it yet
    with (home / "checkpoints.sqlite").open("r+b") as f:
        f.truncate(f.seek(0, 2) // 3)
    return home


def test_run_persona_on_damaged_checkpoints_raises_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    home = damaged_home(tmp_path)
    target = home / "checkpoints.sqlite"
    sb = Sandbox(seed=5)
    event = sign_up(sb, "three@example.com", HOT)
    with pytest.raises(StateFileError) as caught:
        run_persona("lead-magnet-sequencer", {"input": event}, sandbox=sb, config=Config(home=home))
    said = str(caught.value)
    assert f"the run checkpoints {target} cannot be read" in said
    assert "move it aside, keeping it" in said and "can no longer be resumed" in said
    assert caught.value.path == target


def test_the_service_records_each_run_on_damaged_checkpoints_as_failed_naming_the_file(tmp_path: Path) -> None:
    home = damaged_home(tmp_path)
    sb = Sandbox(seed=5)
    try:
        service = Service.open(Config(home=home), sandbox=sb)
    except StateFileError as refused:  # refused before any run: as good, if it says the same
        assert f"the run checkpoints {home / 'checkpoints.sqlite'}" in str(refused)
        return
    event = sign_up(sb, "four@example.com", HOT)
    run, _ = service.record_event(service.persona("lead-magnet-sequencer"), event["data"]["id"], event,
                                  trigger="webhook")
    failed = service.execute(run.id)
    service.close()
    assert failed.status == "failed"
    assert f"the run checkpoints {home / 'checkpoints.sqlite'} cannot be read" in (failed.error or "")
    assert "move it aside, keeping it" in (failed.error or "")


def test_checkpoints_with_a_damaged_log_are_refused_before_sqlite_drops_the_log(tmp_path: Path) -> None:
    target = tmp_path / "checkpoints.sqlite"
    checkpointer(tmp_path / "good.sqlite")
    shutil.copy(tmp_path / "good.sqlite", target)
    junk = b"\x00\x01 not a log " * 100
    Path(f"{target}-wal").write_bytes(junk)
    with pytest.raises(StateFileError, match=r"write-ahead log .*checkpoints\.sqlite-wal .* is damaged"):
        checkpointer(target)
    assert Path(f"{target}-wal").read_bytes() == junk
