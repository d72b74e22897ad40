"""A run on an audit log whose chain no longer verifies says so: a row edited, deleted or swapped
below the anchored head does not stop the log taking rows (an append cannot hide it: the break stays
where it is), but nobody should run on such a log without knowing. The log is a real SQLite file
made by a real run, changed as someone with the file would change it."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.warm_cli import run_personas

from .conftest import PERSONAS, ROOT, child_env


def personas(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_personas([str(PERSONAS), *args], cwd=ROOT, env=child_env(home), capture_output=True, text=True,
                          timeout=300)


def _edit(db: sqlite3.Connection) -> None:
    db.execute("""UPDATE audit_log SET arguments = '{"forged": true}' WHERE id = 2""")


def _delete(db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM audit_log WHERE id = 2")


def _swap(db: sqlite3.Connection) -> None:
    db.execute("UPDATE audit_log SET id = -1 WHERE id = 2")
    db.execute("UPDATE audit_log SET id = 2 WHERE id = 3")
    db.execute("UPDATE audit_log SET id = 3 WHERE id = -1")


@pytest.mark.parametrize("change", [_edit, _delete, _swap], ids=["edited", "deleted", "swapped"])
def test_a_run_on_a_log_that_does_not_verify_says_which_row_is_wrong(
    tmp_path: Path, change: Callable[[sqlite3.Connection], None]
) -> None:
    home = tmp_path / "home"
    first = personas(home, "run", "campaign-reporter", "--sandbox", "--input", "{}")
    assert first.returncode == 0, first.stderr
    assert "audit log" not in first.stderr, "an intact log runs without a word about it"
    with sqlite3.connect(home / "audit.sqlite") as db:
        assert db.execute("SELECT count(*) FROM audit_log").fetchone()[0] >= 3
        db.execute("DROP TRIGGER audit_log_no_update")
        db.execute("DROP TRIGGER audit_log_no_delete")
        change(db)
    second = personas(home, "run", "campaign-reporter", "--sandbox", "--input", "{}")
    said = " ".join(second.stderr.split())
    assert f"the audit log {home / 'audit.sqlite'} does not verify" in said, second.stderr
    assert "row 2" in said or "row 3" in said, second.stderr
    assert "personas audit verify" in said, second.stderr
    verify = personas(home, "audit", "verify")
    assert verify.returncode == 1 and "TAMPERED" in verify.stderr, "the break is still there to be found"


@pytest.mark.parametrize("cut", ["newest rows", "emptied file"])
def test_reading_a_log_cut_at_its_end_says_so_before_any_row(tmp_path: Path, cut: str) -> None:
    """`personas audit` and `personas audit export` on a log whose newest rows are gone (deleted, or
    the file emptied) say so on stderr, so a person reading what a persona did never takes a shortened
    log for the whole of it; before, the table showed "1 of 2 rows" as if nothing were missing."""
    home = tmp_path / "home"
    first = personas(home, "run", "campaign-reporter", "--sandbox", "--input", "{}")
    assert first.returncode == 0, first.stderr
    intact = personas(home, "audit", "--limit", "1")
    assert intact.returncode == 0 and "TAMPERED" not in intact.stderr, intact.stderr
    log = home / "audit.sqlite"
    if cut == "emptied file":
        log.write_bytes(b"")
    else:
        with sqlite3.connect(log) as db:
            db.execute("DROP TRIGGER audit_log_no_delete")
            db.execute("DELETE FROM audit_log WHERE id > 2")
    for args in (("audit", "--limit", "1"), ("audit", "--json"), ("audit", "export", "-")):
        shown = personas(home, *args)
        said = " ".join(shown.stderr.split())
        assert "TAMPERED" in said and "anchored head" in said and "personas audit verify" in said, (args, shown.stderr)
