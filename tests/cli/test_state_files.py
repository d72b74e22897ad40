"""The state folder as an operator meets it: a log put back from an older copy, a folder this user may not
write, a damaged file. Every command either works or says, in one line, which file, what is wrong and
what to do; nothing already recorded is overwritten.

The commands run as subprocesses on the embedded sandbox, on real SQLite files in the test's own
``PERSONAS_HOME``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.warm_cli import run_personas

from .conftest import PERSONAS, child_env

REPORT = ("run", "campaign-reporter", "--input", "{}", "--sandbox")


def personas(home: Path, *args: str, user: list[str] | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    where = cwd or home.parent
    return run_personas([*(user or []), str(PERSONAS), *args], env=child_env(home, HOME=str(where)),
                          cwd=where, capture_output=True, text=True, timeout=180)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.stdout


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def rows(home: Path) -> int:
    import sqlite3

    db = sqlite3.connect(f"{(home / 'audit.sqlite').as_uri()}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM audit_log").fetchone()[0])
    finally:
        db.close()


def test_a_run_onto_an_older_copy_of_the_audit_log_is_refused_until_the_loss_is_accepted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok(personas(home, *REPORT))
    shutil.copy(home / "audit.sqlite", tmp_path / "copy.sqlite")
    ok(personas(home, *REPORT))
    anchored = int(ok(personas(home, "audit", "verify")).split("ok: ", 1)[1].split()[0])
    shutil.copy(tmp_path / "copy.sqlite", home / "audit.sqlite")  # an older copy put back
    kept = rows(home)
    head = (home / "vault.audit.head").read_bytes()

    line = one_line_error(personas(home, *REPORT))
    assert f"nothing was written to the audit log {home / 'audit.sqlite'}: it ends at row {kept}" in line
    assert f"is row {anchored}: rows were cut from the end" in line
    assert "`personas audit verify`" in line and "personas audit accept-loss --reason TEXT" in line
    assert rows(home) == kept and (home / "vault.audit.head").read_bytes() == head, "the evidence is left as it is"
    cut = personas(home, "audit", "verify")
    assert cut.returncode == 1 and "TAMPERED" in cut.stderr and "cut from the end" in cut.stderr

    accepted = ok(personas(home, "audit", "accept-loss", "--reason", "put the wrong backup back"))
    assert f"rows after row {kept} (up to row {anchored}) are lost from this log for good" in accepted
    assert f"row {kept + 1} records that the loss was accepted" in accepted
    assert "chain intact" in ok(personas(home, "audit", "verify"))
    ok(personas(home, *REPORT))  # runs go on
    assert "chain intact" in ok(personas(home, "audit", "verify"))
    again = one_line_error(personas(home, "audit", "accept-loss", "--reason", "again"))
    assert "nothing to accept" in again


def another_user() -> list[str] | None:
    """What runs a command as a user this process's file modes apply to: nothing when it is not root;
    as nobody with ``setpriv`` when it is (root ignores modes); None when neither is possible."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups"] if setpriv else None


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder every user can enter (pytest's own are the owner's only), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="personas-state-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in [folder, *folder.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o700)
        shutil.rmtree(folder)


def test_a_read_only_state_folder_is_still_read_and_every_write_names_the_file_and_the_fix(
        shared_folder: Path) -> None:
    user = another_user()
    if user is None:
        pytest.skip("runs as root without setpriv: no way to be a user the folder's modes apply to")
    home = shared_folder / "home"
    ok(personas(home, *REPORT))
    count = rows(home)
    for path in [home, *home.rglob("*")]:
        if os.geteuid() == 0:
            os.chown(path, 65534, 65534)
        path.chmod(path.stat().st_mode & ~0o222)
    listed = ok(personas(home, "audit", user=user))
    assert f"audit log: {count} of {count} rows" in listed
    assert f"ok: {count} rows, chain intact" in ok(personas(home, "audit", "verify", user=user))
    assert len(ok(personas(home, "audit", "export", "-", user=user)).splitlines()) == count
    for args in (REPORT, ("demo",), ("audit", "accept-loss", "--reason", "x")):
        line = one_line_error(personas(home, *args, user=user))
        assert f"the audit log {home / 'audit.sqlite'} cannot be written" in line, args
        assert "may not write" in line and "Give this user write access" in line, args
        assert "OperationalError" not in line
    assert rows(home) == count


def test_a_damaged_state_file_is_named_with_the_fix_and_blocks_nothing_else(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok(personas(home, *REPORT))
    good = tmp_path / "good"
    shutil.copytree(home, good)
    with (home / "checkpoints.sqlite").open("r+b") as f:
        f.truncate(20_000)
    line = one_line_error(personas(home, *REPORT))
    assert f"the run checkpoints {home / 'checkpoints.sqlite'} cannot be read (database disk image is malformed" in line
    assert "Restore it from a backup, or move it aside" in line and "can no longer be resumed" in line
    assert "chain intact" in ok(personas(home, "audit", "verify")), "the audit log is not touched by it"

    shutil.rmtree(home)
    shutil.copytree(good, home)
    with (home / "audit.sqlite").open("r+b") as f:
        f.truncate(20_000)
    for args in (("audit",), ("audit", "verify"), REPORT):
        line = one_line_error(personas(home, *args))
        assert f"the audit log {home / 'audit.sqlite'} cannot be read (database disk image is malformed" in line
        assert "Restore it from a backup, or move it aside" in line and "personas audit accept-loss" in line


def set_aside_command(line: str) -> str:
    """The shell command a message gives to move a damaged file aside (between backticks)."""
    assert "keeping it (`" in line, line
    return line.split("keeping it (`", 1)[1].split("`;", 1)[0]


def test_a_damaged_write_ahead_log_of_the_checkpoints_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    """SQLite drops a -wal whose header is not its own without a word (and the writes in it); a run on
    such checkpoints is refused, naming the log, before SQLite touches it; the command it gives moves
    the log aside, keeping it, and runs go on."""
    home = tmp_path / "home"
    ok(personas(home, *REPORT))
    checkpoints, wal = home / "checkpoints.sqlite", home / "checkpoints.sqlite-wal"
    junk = b"\x13\x37 not a write-ahead log" * 200
    wal.write_bytes(junk)
    before = checkpoints.read_bytes()

    line = one_line_error(personas(home, *REPORT))
    assert f"the write-ahead log {wal} of the run checkpoints {checkpoints} is damaged" in line
    assert "can no longer be resumed" in line and "nothing was opened" in line
    assert wal.read_bytes() == junk and checkpoints.read_bytes() == before, "the evidence is left as it is"

    command = set_aside_command(line)
    subprocess.run(command, shell=True, check=True)
    ok(personas(home, *REPORT))
    assert (home / "checkpoints.sqlite-wal.damaged").read_bytes() == junk, "the damaged log is kept"


def test_moving_damaged_checkpoints_aside_takes_their_log_along_and_overwrites_nothing(tmp_path: Path) -> None:
    """A damaged file's -wal goes aside with it (left behind, SQLite would play it into the new file),
    under a name not yet taken: the command in the message does exactly that, and runs go on."""
    import sqlite3

    home = tmp_path / "home"
    ok(personas(home, *REPORT))
    checkpoints = home / "checkpoints.sqlite"
    (home / "checkpoints.sqlite.damaged").write_bytes(b"an earlier damaged copy")
    db = sqlite3.connect(checkpoints)  # a log with a real write in it, as a killed process leaves one
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE scratch (x)")
    db.commit()
    log = Path(f"{checkpoints}-wal").read_bytes()
    db.close()  # merges and removes the log: put it back, as it was
    Path(f"{checkpoints}-wal").write_bytes(log)
    with checkpoints.open("r+b") as f:
        f.truncate(20_000)

    line = one_line_error(personas(home, *REPORT))
    assert f"the run checkpoints {checkpoints} cannot be read" in line
    command = set_aside_command(line)
    Path(f"{checkpoints}-wal").write_bytes(log)  # as a process killed before it closed the file leaves it
    subprocess.run(command, shell=True, check=True)
    assert not Path(f"{checkpoints}-wal").exists(), "a log left behind would be played into the new file"
    ok(personas(home, *REPORT))
    assert (home / "checkpoints.sqlite.damaged").read_bytes() == b"an earlier damaged copy", "nothing overwritten"
    assert (home / "checkpoints.sqlite.damaged-2").stat().st_size >= 20_000
    assert (home / "checkpoints.sqlite.damaged-2-wal").read_bytes() == log


def test_a_state_folder_that_is_a_file_is_named_with_the_variable_and_the_fix(tmp_path: Path) -> None:
    home = tmp_path / "state"
    home.write_text("not a folder\n")
    for where in (home, home / "below"):
        for args in (REPORT, ("runs",), ("demo",)):
            line = one_line_error(personas(where, *args, cwd=tmp_path))
            assert f"PERSONAS_HOME={where} cannot be used as the state folder: {home} is a file, not a folder" in line
            assert "point PERSONAS_HOME at a folder" in line and "Error" not in line, args
    assert home.read_text() == "not a folder\n"


@pytest.mark.parametrize("mode", [0o555, 0o000])
def test_a_new_state_folder_this_user_may_not_write_or_enter_is_named_with_the_fix(
        shared_folder: Path, mode: int) -> None:
    user = another_user()
    if user is None:
        pytest.skip("runs as root without setpriv: no way to be a user the folder's modes apply to")
    home = shared_folder / "home"
    home.mkdir()
    home.chmod(mode)
    reads = [("audit",)] if mode == 0 else []  # a folder it may read but not write: `audit` says "no rows yet"
    for args in (REPORT, ("runs",), ("demo",), ("chat", "klaviyo-assistant", "--sandbox"), *reads):
        line = one_line_error(personas(home, *args, user=user))
        assert f"PERSONAS_HOME={home} cannot be used as the state folder" in line, args
        assert f"chmod u+rwx {home}" in line and "point PERSONAS_HOME at a folder" in line, args
        assert "PermissionError" not in line, args
    home.chmod(0o700)
    assert list(home.iterdir()) == [], "nothing was written"


def test_a_loss_is_not_accepted_for_a_log_chained_under_a_key_the_vault_no_longer_keeps(tmp_path: Path) -> None:
    """The log's HMAC key lives in the vault: a vault made anew (its key lost, the file deleted) keeps
    another. Accepting a loss then recorded a row and said "runs go on", yet `audit verify` failed at
    row 1 for good and every run warned; the refusal says why and what does work instead."""
    home = tmp_path / "home"
    ok(personas(home, *REPORT))
    (home / "vault.sqlite").rename(tmp_path / "vault.sqlite.lost")  # a vault made anew: another audit key
    kept = rows(home)
    line = one_line_error(personas(home, "audit", "accept-loss", "--reason", "lost the vault key"))
    assert "nothing was accepted or written" in line and "chained under another key" in line, line
    assert "accepting a loss would not make it verify again" in line and "move the log and its head record" in line
    assert rows(home) == kept
    (home / "audit.sqlite").rename(tmp_path / "audit.sqlite.old")  # what the message says begins a new log
    (home / "vault.audit.head").rename(tmp_path / "vault.audit.head.old")
    ok(personas(home, *REPORT))
    assert "chain intact" in ok(personas(home, "audit", "verify"))
