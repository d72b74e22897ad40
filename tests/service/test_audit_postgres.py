"""The audit log in PostgreSQL keeps the SQLite log's guarantees: append-only by the database, one
HMAC chain whoever appends, an anchored head, verify finds edits, forgeries and a cut tail; and no
secret reaches it. Needs ``PERSONAS_TEST_DATABASE_URL`` (see conftest)."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from klaviyo_toolkit.audit import AuditContext
from klaviyo_toolkit.audit_anchor import FileAnchor
from klaviyo_toolkit.audit_head import AuditHeadError
from klaviyo_toolkit.audit_postgres import PostgresAuditLog
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import ToolkitUsageError
from personas.kernel.config import Config
from personas.runtime.context import audit_log

CTX = AuditContext(user="ada", persona="lead-magnet-sequencer", thread_id="t-1", prompt_version="p@1")


def fill(log: PostgresAuditLog, n: int = 3) -> None:
    for i in range(n):
        log.record("create_event", "ok", context=CTX, method="POST", path="/api/events", arguments={"i": i},
                   http_status=202, latency_ms=12.5)


def test_rows_chain_and_verify(pg_url: str, tmp_path: Path) -> None:
    log = PostgresAuditLog(pg_url, anchor=FileAnchor(tmp_path / "keys"), clock=ManualClock(1_796_000_000))
    fill(log)
    log.record("delete_list", "pending_approval", context=CTX, arguments={"id": "L1"})
    assert log.count() == 4
    assert [e.tool for e in log.query(persona="lead-magnet-sequencer", limit=10)] == [
        "delete_list", "create_event", "create_event", "create_event"]
    assert [e.arguments for e in log.query(status="pending_approval")] == [{"id": "L1"}]
    report = log.verify()
    assert report.ok and report.checked == 4
    out = tmp_path / "audit.jsonl"
    assert log.export_jsonl(out) == 4 and '"user": "ada"' in out.read_text()
    log.close()


def test_the_database_refuses_changes(pg_url: str, tmp_path: Path) -> None:
    log = PostgresAuditLog(pg_url, anchor=FileAnchor(tmp_path / "keys"))
    fill(log, 1)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in ("UPDATE personas_audit_log SET status = 'error'", "DELETE FROM personas_audit_log",
                          "TRUNCATE personas_audit_log"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
    assert log.count() == 1
    log.close()


def test_verify_finds_an_edit_a_forgery_and_a_cut_tail(pg_url: str, tmp_path: Path) -> None:
    anchor = FileAnchor(tmp_path / "keys")
    log = PostgresAuditLog(pg_url, anchor=anchor)
    fill(log, 3)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # an owner who can switch the triggers off
        conn.execute("ALTER TABLE personas_audit_log DISABLE TRIGGER USER")
        conn.execute("UPDATE personas_audit_log SET arguments = '{\"i\": 9}' WHERE id = 2")
        assert not log.verify().ok and log.verify().broken_at == 2
        conn.execute("UPDATE personas_audit_log SET arguments = '{\"i\": 1}' WHERE id = 2")
        assert log.verify().ok
        conn.execute("DELETE FROM personas_audit_log WHERE id = 3")
        report = log.verify()
        assert not report.ok and "cut from the end" in report.reason
        conn.execute("ALTER TABLE personas_audit_log ENABLE TRIGGER USER")
    log.close()


def test_an_append_onto_a_cut_log_is_refused_until_the_loss_is_accepted(pg_url: str, tmp_path: Path) -> None:
    anchor = FileAnchor(tmp_path / "keys")
    log = PostgresAuditLog(pg_url, anchor=anchor)
    fill(log, 3)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # an owner who can switch the triggers off
        conn.execute("ALTER TABLE personas_audit_log DISABLE TRIGGER USER")
        conn.execute("DELETE FROM personas_audit_log WHERE id = 3")
        conn.execute("ALTER TABLE personas_audit_log ENABLE TRIGGER USER")
    head = anchor.head_path.read_bytes()
    with pytest.raises(AuditHeadError, match=r"audit log in PostgreSQL \(.*\): it ends at row 2 but its anchored"):
        fill(log, 1)
    assert log.count() == 2 and anchor.head_path.read_bytes() == head and not log.verify().ok
    row = log.accept_loss("an owner deleted row 3", context=CTX)
    assert row.id == 3 and row.extra["anchored_head"]["rows"] == 3 and row.extra["log_rows"] == 2
    fill(log, 1)
    assert log.verify().ok and log.count() == 4
    log.close()


def test_many_writers_keep_one_chain(pg_url: str, tmp_path: Path) -> None:
    anchor = FileAnchor(tmp_path / "keys")
    logs = [PostgresAuditLog(pg_url, anchor=anchor) for _ in range(3)]
    threads = [threading.Thread(target=fill, args=(log, 10)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert logs[0].count() == 30 and logs[0].verify().ok
    assert anchor.load_head() is not None and anchor.load_head().rows == 30  # type: ignore[union-attr]
    for log in logs:
        log.close()


def test_a_worker_with_another_key_is_refused(pg_url: str, tmp_path: Path) -> None:
    PostgresAuditLog(pg_url, anchor=FileAnchor(tmp_path / "first")).close()
    with pytest.raises(ToolkitUsageError, match=r"another audit key.*audit\.key"):
        PostgresAuditLog(pg_url, anchor=FileAnchor(tmp_path / "second"))


def test_the_runtime_audits_to_postgres_when_the_database_url_is_set(pg_url: str, tmp_path: Path) -> None:
    config = Config(home=tmp_path / "home", database_url=pg_url, klaviyo_api_key="pk_" + "s3cret" * 5)
    log = audit_log(config)
    assert isinstance(log, PostgresAuditLog)
    log.record("get_profiles", "ok", context=CTX, arguments={"api_key": "pk_" + "s3cret" * 5})
    with psycopg.connect(pg_url) as conn:
        dumped = str(conn.execute("SELECT * FROM personas_audit_log").fetchall())
    assert "s3cret" not in dumped and not (tmp_path / "home" / "audit.sqlite").exists()


def test_personas_audit_verify_reads_the_postgres_log(pg_url: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    log = PostgresAuditLog(pg_url, anchor=FileAnchor(home / "keys"))
    fill(log, 2)
    log.close()
    env = {**os.environ, "PERSONAS_HOME": str(home), "PERSONAS_DATABASE_URL": pg_url}
    done = subprocess.run([sys.executable, "-m", "personas.cli", "audit", "verify"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "ok: 2 rows, chain intact" in done.stdout, done.stderr
