"""An anchored audit log finds what a plain hash chain cannot: a re-hashed edit, a forged append,
a cut tail and a deleted file; and the CLI says so."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from klaviyo_toolkit.audit import AuditContext, AuditLog, verify_log
from klaviyo_toolkit.audit_anchor import FileAnchor
from klaviyo_toolkit.audit_head import AuditHeadError
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import ToolkitUsageError
from tests.warm_cli import run_personas

CTX = AuditContext(user="ada", persona="segment-syncer", thread_id="t-1", connection="prod", account="AcC123")
ROOT = Path(__file__).resolve().parents[1]


def filled(tmp_path: Path, rows: int = 5) -> tuple[Path, FileAnchor]:
    anchor = FileAnchor(tmp_path / "keys")
    with AuditLog(tmp_path / "audit.sqlite", anchor=anchor, clock=ManualClock()) as log:
        for n in range(rows):
            log.record("get_lists", "ok", context=CTX, method="GET", path=f"/api/lists?n={n}")
    return tmp_path / "audit.sqlite", anchor


def raw(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
    db.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    return db


COLUMNS = ("id", "time", "user", "persona", "thread_id", "prompt_version", "connection", "account", "tool", "method",
           "path", "arguments", "status", "http_status", "request_id", "latency_ms", "response_summary", "error",
           "extra")


def rehash_plain(db: sqlite3.Connection) -> None:
    """What a forger without the key does: recompute every hash as plain SHA-256."""
    prev = "0" * 64
    for row in db.execute(f"SELECT {', '.join(COLUMNS)} FROM audit_log ORDER BY id").fetchall():
        canonical = json.dumps(list(row), ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.sha256(f"{prev}\n{canonical}".encode()).hexdigest()
        db.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?", (prev, digest, row[0]))
        prev = digest
    db.commit()


def test_an_intact_log_verifies_and_records_connection_and_account(tmp_path: Path) -> None:
    path, anchor = filled(tmp_path)
    report = verify_log(path, anchor=anchor)
    assert report.ok and report.checked == 5
    with AuditLog(path, anchor=anchor) as log:
        row = log.query(limit=1)[0]
    assert (row.connection, row.account) == ("prod", "AcC123")
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(anchor.key_path.stat().st_mode & 0o777) == "0o600"


def test_an_edit_with_the_chain_rehashed_is_found(tmp_path: Path) -> None:
    path, anchor = filled(tmp_path)
    db = raw(path)
    db.execute("UPDATE audit_log SET tool = 'delete_list', method = 'DELETE' WHERE id = 3")
    rehash_plain(db)
    db.close()
    report = verify_log(path, anchor=anchor)
    assert not report.ok and report.broken_at == 1 and "not made with the log's key" in report.reason


def test_a_forged_append_is_found(tmp_path: Path) -> None:
    path, anchor = filled(tmp_path)
    db = raw(path)
    last = db.execute(f"SELECT {', '.join(COLUMNS)}, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    forged = list(last[:-1])
    forged[0] = 6
    canonical = json.dumps(forged, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(f"{last[-1]}\n{canonical}".encode()).hexdigest()
    db.execute(f"INSERT INTO audit_log ({', '.join(COLUMNS)}, prev_hash, hash) VALUES "
               f"({', '.join('?' * len(COLUMNS))}, ?, ?)", (*forged, last[-1], digest))
    db.commit()
    db.close()
    report = verify_log(path, anchor=anchor)
    assert not report.ok and report.broken_at == 6


def test_a_cut_tail_is_found_by_the_anchored_head(tmp_path: Path) -> None:
    path, anchor = filled(tmp_path)
    db = raw(path)
    db.execute("DELETE FROM audit_log WHERE id > 3")
    db.commit()
    db.close()
    report = verify_log(path, anchor=anchor)
    assert not report.ok and "cut from the end" in report.reason


def test_a_deleted_log_is_found_and_an_expected_head_must_still_be_there(tmp_path: Path) -> None:
    path, anchor = filled(tmp_path)
    head = verify_log(path, anchor=anchor).head
    path.unlink()
    report = verify_log(path, anchor=anchor)
    assert not report.ok and "is missing" in report.reason
    assert not verify_log(path, expected_head=head).ok, "even without the anchor, a kept head catches it"
    fresh, fresh_anchor = filled(tmp_path / "other", rows=2)
    assert not verify_log(fresh, anchor=fresh_anchor, expected_head=head).ok


def test_a_tampered_head_record_and_a_log_opened_without_its_key_are_refused(tmp_path: Path) -> None:
    path, anchor = filled(tmp_path)
    record = json.loads(anchor.head_path.read_text())
    anchor.head_path.write_text(json.dumps({**record, "rows": 3}))
    with pytest.raises(ToolkitUsageError, match="was altered"):
        verify_log(path, anchor=anchor)
    with pytest.raises(ToolkitUsageError, match="without its anchor"):
        AuditLog(path)


def personas(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "KLAVIYO_", "PERSONAS_"))}
    env["PERSONAS_HOME"] = str(home)
    return run_personas([sys.executable, "-m", "personas.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_audit_verify_on_the_command_line(tmp_path: Path) -> None:
    ran = personas(tmp_path, "run", "campaign-reporter", "--input", "{}", "--sandbox")
    assert ran.returncode == 0, ran.stderr
    ok = personas(tmp_path, "audit", "verify")
    assert ok.returncode == 0 and "chain intact; head " in ok.stdout
    head = ok.stdout.split("head ")[1].split()[0]
    db = raw(tmp_path / "audit.sqlite")
    count = db.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]
    db.execute("DELETE FROM audit_log WHERE id = ?", (count,))
    db.commit()
    db.close()
    cut = personas(tmp_path, "audit", "verify")
    assert cut.returncode == 1 and "TAMPERED" in cut.stderr and "cut from the end" in cut.stderr
    (tmp_path / "audit.sqlite").unlink()
    gone = personas(tmp_path, "audit", "verify", "--expected-head", head)
    assert gone.returncode == 1 and "is missing" in gone.stderr


def test_the_runtime_keeps_the_key_and_head_in_the_vault_and_a_key_rotation_keeps_the_log_verifiable(
        tmp_path: Path) -> None:
    from klaviyo_toolkit.audit_anchor import VaultAnchor
    from klaviyo_toolkit.vault import Vault

    old = FileAnchor(tmp_path / "keys")  # a log begun by an earlier version, with its key in a file
    with AuditLog(tmp_path / "audit.sqlite", anchor=old) as log:
        log.record("get_lists", "ok", context=CTX)
    vault = Vault(tmp_path / "vault.sqlite")
    anchor = VaultAnchor(vault, adopt=old)
    with AuditLog(tmp_path / "audit.sqlite", anchor=anchor) as log:
        log.record("get_lists", "ok", context=CTX)
    assert not old.key_path.exists(), "the key moved into the vault"
    assert verify_log(tmp_path / "audit.sqlite", anchor=anchor).checked == 2
    vault.rotate_key(drop_old_keys=True)
    assert verify_log(tmp_path / "audit.sqlite", anchor=VaultAnchor(Vault(tmp_path / "vault.sqlite"))).ok


def vault_filled(tmp_path: Path, rows: int = 5) -> tuple[Path, Any]:
    from klaviyo_toolkit.audit_anchor import VaultAnchor
    from klaviyo_toolkit.vault import Vault

    anchor = VaultAnchor(Vault(tmp_path / "vault.sqlite"))
    with AuditLog(tmp_path / "audit.sqlite", anchor=anchor, clock=ManualClock()) as log:
        for n in range(rows):
            log.record("get_lists", "ok", context=CTX, method="GET", path=f"/api/lists?n={n}")
    return tmp_path / "audit.sqlite", anchor


def vault_row(tmp_path: Path, name: str) -> bytes:
    db = sqlite3.connect(tmp_path / "vault.sqlite")
    try:
        return bytes(db.execute("SELECT secret FROM secrets WHERE name = ?", (name,)).fetchone()[0])
    finally:
        db.close()


def test_the_vault_anchors_head_is_saved_beside_the_vault_without_a_vault_write_per_append(tmp_path: Path) -> None:
    from klaviyo_toolkit.audit_anchor import VaultAnchor
    from klaviyo_toolkit.vault import Vault

    path, anchor = vault_filled(tmp_path, rows=2)
    note = vault_row(tmp_path, "audit:head")
    with AuditLog(path, anchor=anchor) as log:
        for _ in range(3):
            log.record("get_lists", "ok", context=CTX)
    assert vault_row(tmp_path, "audit:head") == note, "the vault is written once, not per append"
    assert anchor.head_path.parent == tmp_path and oct(anchor.head_path.stat().st_mode & 0o777) == "0o600"
    fresh = VaultAnchor(Vault(tmp_path / "vault.sqlite"))  # another process, say
    head = fresh.load_head()
    assert head is not None and head.rows == 5 and verify_log(path, anchor=fresh).checked == 5
    db = raw(path)
    db.execute("DELETE FROM audit_log WHERE id = 5")
    db.commit()
    db.close()
    report = verify_log(path, anchor=fresh)
    assert not report.ok and "cut from the end" in report.reason


def test_a_deleted_vault_head_record_refuses_appends_until_the_loss_is_accepted(tmp_path: Path) -> None:
    from klaviyo_toolkit.audit_anchor import VaultAnchor
    from klaviyo_toolkit.vault import Vault

    path, anchor = vault_filled(tmp_path, rows=4)
    db = raw(path)
    db.execute("DELETE FROM audit_log WHERE id > 2")  # cut the tail and delete the head that says so
    db.commit()
    db.close()
    anchor.head_path.unlink()
    with pytest.raises(ToolkitUsageError, match="is missing"):
        verify_log(path, anchor=VaultAnchor(Vault(tmp_path / "vault.sqlite")))
    with AuditLog(path, anchor=anchor) as log:  # the running process appends again: refused
        with pytest.raises(AuditHeadError, match="is missing"):
            log.record("get_lists", "ok", context=CTX)
        assert log.count() == 2
    assert not anchor.head_path.exists(), "never made again behind the operator's back"
    with AuditLog(path, anchor=VaultAnchor(Vault(tmp_path / "vault.sqlite"))) as log:
        log.accept_loss("the cleanup script deleted the head record", context=CTX)
        log.record("get_lists", "ok", context=CTX)
    report = verify_log(path, anchor=VaultAnchor(Vault(tmp_path / "vault.sqlite")))
    assert report.ok and report.checked == 4


def put_back_an_older_copy(tmp_path: Path, anchor: Any, before: int = 3, after: int = 3) -> Path:
    """A log of ``before`` rows copied aside, ``after`` more appended, then the copy put back over it."""
    path = tmp_path / "audit.sqlite"
    with AuditLog(path, anchor=anchor, clock=ManualClock()) as log:
        for n in range(before):
            log.record("get_lists", "ok", context=CTX, path=f"/api/lists?n={n}")
    shutil.copy(path, tmp_path / "copy.sqlite")
    with AuditLog(path, anchor=anchor, clock=ManualClock()) as log:
        for n in range(after):
            log.record("delete_list", "ok", context=CTX, path=f"/api/lists/L{n}")
    shutil.copy(tmp_path / "copy.sqlite", path)
    return path


@pytest.mark.parametrize("kind", ["file", "vault"])
def test_an_append_onto_an_older_copy_put_back_is_refused_and_the_evidence_kept(tmp_path: Path, kind: str) -> None:
    from klaviyo_toolkit.audit_anchor import VaultAnchor
    from klaviyo_toolkit.vault import Vault

    anchor: Any = FileAnchor(tmp_path / "keys") if kind == "file" else VaultAnchor(Vault(tmp_path / "vault.sqlite"))
    path = put_back_an_older_copy(tmp_path, anchor)
    head = anchor.head_path.read_bytes()
    with AuditLog(path, anchor=anchor) as log:
        with pytest.raises(AuditHeadError) as refused:
            log.record("get_lists", "ok", context=CTX)
        with pytest.raises(AuditHeadError):
            log.check_appendable()
        assert log.count() == 3, "nothing written"
    said = str(refused.value)
    assert f"nothing was written to the audit log {path}" in said
    assert "ends at row 3 but its anchored head" in said and "is row 6" in said and "accept_loss" in said
    assert anchor.head_path.read_bytes() == head, "the head is not moved over the cut"
    report = verify_log(path, anchor=anchor)
    assert not report.ok and "cut from the end" in report.reason


def test_an_append_onto_a_log_whose_row_is_not_the_anchored_head_is_refused(tmp_path: Path) -> None:
    path, anchor = filled(tmp_path, rows=3)
    shutil.copy(path, tmp_path / "copy.sqlite")
    with AuditLog(path, anchor=anchor) as log:
        log.record("get_lists", "ok", context=CTX)  # the head is row 4
    shutil.copy(tmp_path / "copy.sqlite", path)
    db = raw(path)  # another row 4 in its place
    db.execute(f"INSERT INTO audit_log ({', '.join(COLUMNS)}, prev_hash, hash) SELECT 4, {', '.join(COLUMNS[1:])}, "
               "hash, 'f' || substr(hash, 2) FROM audit_log WHERE id = 3")
    db.commit()
    db.close()
    with AuditLog(path, anchor=anchor) as log, pytest.raises(AuditHeadError, match="its row 4 is not the anchored"):
        log.record("get_lists", "ok", context=CTX)


def test_a_head_record_overwritten_with_noise_is_reported_refuses_appends_and_is_never_replaced(
        tmp_path: Path) -> None:
    path, anchor = filled(tmp_path, rows=3)
    noise = b"\xff\xfe" + os.urandom(254)  # not UTF-8, not JSON
    anchor.head_path.write_bytes(noise)
    with pytest.raises(ToolkitUsageError, match=f"the audit head record {anchor.head_path} was altered"):
        verify_log(path, anchor=anchor)
    with AuditLog(path, anchor=anchor) as log:
        with pytest.raises(AuditHeadError, match="was altered"):
            log.record("get_lists", "ok", context=CTX)
        assert log.count() == 3
    assert anchor.head_path.read_bytes() == noise
    with AuditLog(path, anchor=anchor) as log:
        row = log.accept_loss("the head record was overwritten by a disk repair", context=CTX)
    assert "was altered" in row.extra["problem"] and row.extra["anchored_head"] is None
    assert Path(row.extra["head_record_kept"]).read_bytes() == noise, "a copy of the damaged record is kept"
    assert verify_log(path, anchor=anchor).ok


def test_accepting_a_loss_is_explicit_recorded_and_only_when_there_is_one(tmp_path: Path) -> None:
    anchor = FileAnchor(tmp_path / "keys")
    path = put_back_an_older_copy(tmp_path, anchor)
    head = anchor.head_path.read_bytes()
    ops = AuditContext(user="ops")
    with AuditLog(path, anchor=anchor) as log:
        with pytest.raises(ToolkitUsageError, match="say why"):
            log.accept_loss("  ", context=ops)
        assert log.count() == 3
        row = log.accept_loss("restored the wrong backup", context=ops)
        assert (row.id, row.tool, row.status, row.user) == (4, "audit.accept_loss", "ok", "ops")
        assert row.extra["anchored_head"]["rows"] == 6 and row.extra["log_rows"] == 3
        assert row.extra["reason"] == "restored the wrong backup" and "cut from the end" in row.extra["problem"]
        assert Path(row.extra["head_record_kept"]).read_bytes() == head
        log.record("get_lists", "ok", context=CTX)  # appends go on
        with pytest.raises(ToolkitUsageError, match="nothing to accept"):
            log.accept_loss("again", context=ops)
    report = verify_log(path, anchor=anchor)
    assert report.ok and report.checked == 5


APPENDER = """
import sys
from pathlib import Path
from klaviyo_toolkit.audit import AuditContext, AuditLog
from klaviyo_toolkit.audit_anchor import VaultAnchor
from klaviyo_toolkit.vault import Vault

home = Path(sys.argv[1])
with AuditLog(home / "audit.sqlite", anchor=VaultAnchor(Vault(home / "vault.sqlite"))) as log:
    for i in range(int(sys.argv[2])):
        log.record("get_lists", "ok", context=AuditContext(user=sys.argv[3]), arguments={"i": i})
"""


def test_processes_appending_together_to_an_anchored_log_are_never_refused_and_keep_its_head(tmp_path: Path) -> None:
    from klaviyo_toolkit.audit_anchor import VaultAnchor
    from klaviyo_toolkit.vault import Vault

    path, _ = vault_filled(tmp_path, rows=1)  # the key exists: every process uses it
    per_process = 60
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(tmp_path), str(per_process), f"p{n}"],
                              stderr=subprocess.PIPE, text=True) for n in range(3)]  # fmt: skip
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    anchor = VaultAnchor(Vault(tmp_path / "vault.sqlite"))
    report = verify_log(path, anchor=anchor)
    assert report.ok and report.checked == 1 + 3 * per_process
    head = anchor.load_head()
    assert head is not None and (head.rows, head.hash) == (report.checked, report.head), "heads saved in row order"


def test_a_head_kept_in_the_vault_by_the_earlier_version_still_anchors_the_log(tmp_path: Path) -> None:
    from klaviyo_toolkit.audit_anchor import VaultAnchor
    from klaviyo_toolkit.vault import Vault

    path, anchor = vault_filled(tmp_path, rows=3)
    vault = Vault(tmp_path / "vault.sqlite")
    vault.put_secret("audit:head", json.dumps([3, verify_log(path, anchor=anchor).head]).encode())  # as it was
    anchor.head_path.unlink()
    db = raw(path)
    db.execute("DELETE FROM audit_log WHERE id = 3")
    db.commit()
    db.close()
    report = verify_log(path, anchor=VaultAnchor(vault))
    assert not report.ok and "cut from the end" in report.reason
