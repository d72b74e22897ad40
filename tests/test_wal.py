"""WAL checkpoints off the writer's path (klaviyo_toolkit.wal), on real SQLite files.

A writer that hands its checkpoints to the background thread must still have them made (or its
WAL grows for ever), must keep every commit across a killed process, and must let the thread go
when it closes.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from klaviyo_toolkit import wal
from klaviyo_toolkit.audit import AuditLog


def _db_size(path: Path) -> int:
    return path.stat().st_size


def _wait(predicate: object, seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_an_audit_logs_wal_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.sqlite")
    try:
        assert log._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0, "its own auto-checkpoint is off"
        assert str((tmp_path / "audit.sqlite").resolve()) in wal.registered()
        before = _db_size(tmp_path / "audit.sqlite")
        for i in range(300):
            log.record("get_lists", "ok", arguments={"i": i, "note": "x" * 500})
        # the rows' pages reach the database file only through a checkpoint: the background one
        assert _wait(lambda: _db_size(tmp_path / "audit.sqlite") > before + 100_000), "no background checkpoint"
        assert len(log.query(limit=1000)) == 300
    finally:
        log.close()
    assert str((tmp_path / "audit.sqlite").resolve()) not in wal.registered(), "closing releases the file"


def test_the_thread_ends_when_no_file_is_left_and_comes_back_for_the_next(tmp_path: Path) -> None:
    first = AuditLog(tmp_path / "a.sqlite")
    first.close()
    # an owner dropped without close() is released when it is collected
    second = AuditLog(tmp_path / "b.sqlite")
    del second
    gc.collect()
    assert not wal.registered() or all("b.sqlite" not in p and "a.sqlite" not in p for p in wal.registered())
    third = AuditLog(tmp_path / "c.sqlite")
    try:
        third.record("get_lists", "ok", arguments={"n": 1})
        assert any(p.endswith("c.sqlite") for p in wal.registered())
    finally:
        third.close()


def test_rows_survive_a_killed_writer(tmp_path: Path) -> None:
    """The writer is killed (no close, no final checkpoint): every committed row is read back."""
    path = tmp_path / "audit.sqlite"
    code = (
        "import os, sys\n"
        "from klaviyo_toolkit.audit import AuditLog\n"
        f"log = AuditLog({str(path)!r})\n"
        "for i in range(500):\n"
        "    log.record('get_lists', 'ok', arguments={'i': i})\n"
        "os._exit(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr
    reopened = AuditLog(path)
    try:
        assert len(reopened.query(limit=1000)) == 500
        assert reopened.verify().ok
    finally:
        reopened.close()


def test_a_file_that_goes_away_is_skipped_not_fatal(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "gone.sqlite", check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")

    class Owner:
        pass

    owner = Owner()
    done = wal.offload_checkpoints(conn, tmp_path / "gone.sqlite", owner)
    conn.close()
    for name in ("gone.sqlite", "gone.sqlite-wal", "gone.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    time.sleep(wal.INTERVAL * 3)
    log = AuditLog(tmp_path / "after.sqlite")  # the thread still serves the next file
    try:
        log.record("get_lists", "ok", arguments={"note": "y" * 2000})
        assert any(p.endswith("after.sqlite") for p in wal.registered())
    finally:
        log.close()
        done()
