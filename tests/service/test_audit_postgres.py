"""The audit log in PostgreSQL keeps the SQLite log's guarantees: append-only by the database, one
HMAC chain whoever appends, an anchored head, verify finds edits, forgeries and a cut tail; and no
secret reaches it; a connection that ends (a restart, a network cut) is made again, with no row lost
or written twice. Needs ``PERSONAS_TEST_DATABASE_URL`` (see conftest)."""

from __future__ import annotations

import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from klaviyo_toolkit.audit import AuditContext
from klaviyo_toolkit.audit_anchor import FileAnchor, Head
from klaviyo_toolkit.audit_head import AuditHeadError
from klaviyo_toolkit.audit_postgres import AuditDatabaseError, PostgresAuditLog
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import ToolkitUsageError
from personas.kernel.config import Config
from personas.runtime.context import audit_log
from tests.warm_cli import run_personas

from .cut_connection import CuttingRelay

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
        log.check_appendable()  # what a run does before its first call
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


def another_machine(keys: Path, folder: Path) -> Path:
    """``folder`` as another machine's anchor: the same audit key as ``keys``, a head record of its own."""
    folder.mkdir(mode=0o700)
    shutil.copy2(keys / "audit.key", folder / "audit.key")
    return folder


def two_machines(pg_url: str, tmp_path: Path) -> tuple[Path, Path]:
    """Two machines' anchor folders for one log, which has a row (so the key exists to share)."""
    here = tmp_path / "here"
    seed = PostgresAuditLog(pg_url, anchor=FileAnchor(here))
    fill(seed, 1)
    seed.close()
    return here, another_machine(here, tmp_path / "there")


_WORKER = """
import sys
from klaviyo_toolkit.audit import AuditContext
from klaviyo_toolkit.audit_anchor import FileAnchor
from klaviyo_toolkit.audit_postgres import PostgresAuditLog
log = PostgresAuditLog(sys.argv[1], anchor=FileAnchor(sys.argv[2]))
for i in range(int(sys.argv[3])):
    log.record("create_event", "ok", context=AuditContext(user=sys.argv[4]), arguments={"i": i})
log.close()
"""


def test_worker_processes_of_two_machines_keep_one_chain(pg_url: str, tmp_path: Path) -> None:
    """Five processes append at once: three share a head record (one machine), two another (a second
    machine, the same key): each append chains to its head's row or, when another came first, to the
    newest row the database returns; one chain either way, and each machine's head names a row of it."""
    here, there = two_machines(pg_url, tmp_path)
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, pg_url, str(folder), "40", f"w{k}"])
               for k, folder in enumerate([here, here, here, there, there])]
    assert [w.wait(timeout=120) for w in workers] == [0] * 5
    log = PostgresAuditLog(pg_url, anchor=FileAnchor(here))
    report = log.verify()
    assert report.ok and report.checked == 201 and log.count() == 201, report
    for folder in (here, there):
        head = FileAnchor(folder).load_head()
        assert head is not None and log._hash_at(head.rows) == head.hash
    log.close()


_LOOPING = """
import sys
from klaviyo_toolkit.audit_anchor import FileAnchor
from klaviyo_toolkit.audit_postgres import PostgresAuditLog
log = PostgresAuditLog(sys.argv[1], anchor=FileAnchor(sys.argv[2]))
print("open", flush=True)
i = 0
while True:
    log.record("get_profile", "ok", arguments={"w": sys.argv[3], "i": i})
    i += 1
"""


def test_workers_killed_mid_append_leave_one_chain_that_goes_on(pg_url: str, tmp_path: Path) -> None:
    """Workers of two machines appending in a loop are killed (SIGKILL) at random points, four times (a
    kill may fall between a row's commit and its head's save). The chain verifies; both machines append on."""
    here, there = two_machines(pg_url, tmp_path)
    rng = random.Random(16)
    for round_ in range(4):
        workers = [subprocess.Popen([sys.executable, "-c", _LOOPING, pg_url, str(folder), f"{round_}-{k}"],
                                    stdout=subprocess.PIPE) for k, folder in enumerate([here, here, there])]
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline() == b"open\n"
        time.sleep(rng.uniform(0.2, 0.6))
        for worker in workers:
            time.sleep(rng.uniform(0, 0.02))
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
    log = PostgresAuditLog(pg_url, anchor=FileAnchor(here))
    elsewhere = PostgresAuditLog(pg_url, anchor=FileAnchor(there))
    rows = log.count()
    assert rows > 20 and log.verify().ok
    fill(log, 1)
    fill(elsewhere, 1)
    report = log.verify()
    assert report.ok and report.checked == rows + 2, report
    log.close()
    elsewhere.close()


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
    import sys

    home = tmp_path / "home"
    log = PostgresAuditLog(pg_url, anchor=FileAnchor(home / "keys"))
    fill(log, 2)
    log.close()
    env = {**os.environ, "PERSONAS_HOME": str(home), "PERSONAS_DATABASE_URL": pg_url}
    done = run_personas([sys.executable, "-m", "personas.cli", "audit", "verify"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "ok: 2 rows, chain intact" in done.stdout, done.stderr


# -- a connection that ends: the log reconnects once per append, never losing or doubling a row -----------


def end_connections(pg_url: str, *, refuse: bool | None = None) -> None:
    """End every connection to the test's database (as a restart does); ``refuse`` stops or allows new ones."""
    import os

    name = pg_url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(os.environ["PERSONAS_TEST_DATABASE_URL"], autocommit=True) as conn:
        if refuse is not None:
            conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {'false' if refuse else 'true'}")
        if refuse is not False:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


def intact(log: PostgresAuditLog, anchor: FileAnchor, rows: int) -> None:
    """``rows`` rows numbered 1..rows, the chain verifies, and the anchored head is the newest row."""
    assert [e.id for e in reversed(log.query(limit=None))] == list(range(1, rows + 1))
    report = log.verify()
    assert report.ok and report.checked == rows, report
    assert anchor.load_head() == Head(rows, log.head())


def test_an_append_after_the_connection_was_ended_reconnects(pg_url: str, tmp_path: Path) -> None:
    anchor = FileAnchor(tmp_path / "keys")
    log = PostgresAuditLog(pg_url, anchor=anchor)
    fill(log, 1)
    end_connections(pg_url)  # the log's connection is gone, as after a restart of PostgreSQL
    fill(log, 1)
    intact(log, anchor, 2)
    end_connections(pg_url)
    assert log.count() == 2  # reads reconnect too
    log.close()


def test_a_connection_cut_before_the_row_reached_the_database_writes_it_once(pg_url: str, tmp_path: Path) -> None:
    anchor = FileAnchor(tmp_path / "keys")
    with CuttingRelay(pg_url) as relay:
        log = PostgresAuditLog(relay.url, anchor=anchor)
        fill(log, 1)
        relay.cut_before(b"INSERT INTO personas_audit_log")  # the transaction is rolled back by the server
        fill(log, 1)
        assert relay.cuts == 1
        intact(log, anchor, 2)
        log.close()


def test_a_connection_cut_after_the_commit_does_not_write_the_row_twice(pg_url: str, tmp_path: Path) -> None:
    anchor = FileAnchor(tmp_path / "keys")
    with CuttingRelay(pg_url) as relay:
        log = PostgresAuditLog(relay.url, anchor=anchor)
        relay.cut_after(b"COMMIT")  # a new log's first append reads the newest row in a transaction: in, unheard
        entry = log.record("create_event", "ok", context=CTX, arguments={"i": "cut"})
        assert relay.cuts == 1 and entry.id == 1
        relay.cut_after(b"WITH newest")  # then chained to its head's row, with the lock: in, unheard
        entry = log.record("create_event", "ok", context=CTX, arguments={"i": "cut again"})
        assert relay.cuts == 2 and entry.id == 2
        fill(log, 1)
        intact(log, anchor, 3)
        arguments = [e.arguments for e in log.query(limit=None)]
        assert arguments.count({"i": "cut"}) == 1 and arguments.count({"i": "cut again"}) == 1
        log.close()


def round_trips(log: PostgresAuditLog, trace: Path, append: Callable[[], object]) -> int:
    """How many times ``append`` waited for the server (libpq's trace: a Sync, or a simple Query, each)."""
    with trace.open("w") as out:
        log._pg.pgconn.trace(out.fileno())
        try:
            append()
        finally:
            log._pg.pgconn.untrace()
    return len(re.findall(r"^\S+\s+\S+\s+F\s+\d+\s+(Sync|Query)\b", trace.read_text(), re.M))


def test_an_append_waits_for_the_server_twice_when_its_head_names_the_newest_row(pg_url: str, tmp_path: Path) -> None:
    """The lock and the insert chained to the anchored head's row go together, then the unlock; a
    writer on another machine (its own head record) appending in between costs one more round trip
    (the insert chained to its row); the first append of a new log reads the newest row first. A
    run's check that the log holds its head reads the newest row and the head's in one statement."""
    anchor = FileAnchor(tmp_path / "keys")
    log, here = PostgresAuditLog(pg_url, anchor=anchor), PostgresAuditLog(pg_url, anchor=anchor)
    assert round_trips(log, tmp_path / "first", lambda: fill(log, 1)) == 6
    assert round_trips(log, tmp_path / "next", lambda: fill(log, 1)) == 2
    fill(here, 1)  # another worker of this machine: the head names its row
    assert round_trips(log, tmp_path / "after", lambda: fill(log, 1)) == 2
    there = PostgresAuditLog(pg_url, anchor=FileAnchor(another_machine(tmp_path / "keys", tmp_path / "elsewhere")))
    fill(there, 1)  # a worker of another machine: the head here does not name its row
    assert round_trips(log, tmp_path / "behind", lambda: fill(log, 1)) == 3
    assert round_trips(log, tmp_path / "check", log.check_appendable) == 1  # a run's check before its first call
    log._pipelined = False  # a libpq older than 14 has no pipeline mode: the lock goes first, on its own
    fill(log, 1)  # psycopg prepares a statement run often (one more round trip, once): not counted below
    assert round_trips(log, tmp_path / "unpipelined", lambda: fill(log, 1)) == 3
    intact(log, anchor, 8)
    for each in (log, here, there):
        each.close()


def test_a_database_still_away_fails_the_append_naming_it_and_the_fix(pg_url: str, tmp_path: Path) -> None:
    anchor = FileAnchor(tmp_path / "keys")
    secret_url = pg_url.replace("://personas@", "://personas:hunter2-s3cret@")  # trust auth: never asked for
    log = PostgresAuditLog(secret_url, anchor=anchor)
    fill(log, 1)
    end_connections(pg_url, refuse=True)
    try:
        with pytest.raises(AuditDatabaseError) as caught:
            fill(log, 1)
    finally:
        end_connections(pg_url, refuse=False)
    text = str(caught.value)
    where = pg_url.split("@", 1)[1]
    assert where in text and "PERSONAS_DATABASE_URL" in text, text
    # The append had sent its row with the lock (the connection's end is found on use), so whether it
    # reached the database is not known: said so, never "nothing was written"; the next append finds out.
    said = "nothing was written" if caught.value.written is False else "its last row may have been written"
    assert said in text, text
    assert "hunter2" not in text and "hunter2" not in repr(caught.value.__cause__ or "")
    fill(log, 1)  # back: the next append reconnects
    intact(log, anchor, 2)
    log.close()


def test_a_nul_in_an_audited_text_is_kept_escaped_not_a_lost_row(pg_url: str, tmp_path: Path) -> None:
    """A polled event holding a NUL reached get_events' response summary, and PostgreSQL refused the
    row: the call went unaudited. The NUL is stored as the six characters \\u0000, chained as stored."""
    anchor = FileAnchor(tmp_path / "keys")
    log = PostgresAuditLog(pg_url, anchor=anchor)
    entry = log.record("get_events", "error", context=CTX, path="/api/events/a\x00b", response_summary="n\x00te",
                       error="bad\x00", arguments={"filter": "x\x00"})
    [row] = log.query()
    assert row.path == entry.path == "/api/events/a\\u0000b" and row.response_summary == "n\\u0000te"
    assert row.error == "bad\\u0000" and row.arguments == {"filter": "x\x00"}
    intact(log, anchor, 1)
    log.close()
