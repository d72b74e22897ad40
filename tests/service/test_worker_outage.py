"""``personas worker`` rides out a short database outage, and logs a failed run in one line.

The outage is real: the test's database stops taking connections (``ALLOW_CONNECTIONS false``) and the
worker's are ended (``pg_terminate_backend``), as when PostgreSQL restarts; the worker used to exit
("Side task listener failed ... stopping worker"). A real worker process, a served sandbox (HTTP).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from klaviyo_sandbox import Faults, Sandbox
from personas.kernel.config import Config
from personas.service.queues import ProcrastinateQueue
from personas.service.service import Service
from personas.service.tasks import build_app, ensure_schema
from tests.graphs.leads import HOT, first_touchpoints, sign_up

from .conftest import SECRET, serve_app
from .test_postgres import start_worker, stop

LONG = 180.0  # an upper bound on a busy machine, never a duration asserted


@pytest.fixture
def served() -> Iterator[tuple[Sandbox, str]]:
    sb = Sandbox(seed=17, rate_limit_factor=None)
    with serve_app(sb.app) as url:
        yield sb, url
    sb.close()


def wait_for(check: Callable[[], bool], what: str, timeout: float = LONG) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Log:
    """A process's stderr, collected line by line as it comes."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)


def outage(pg_url: str, on: bool) -> None:
    """The test's database refuses new connections and drops the open ones (on), or takes them again.

    The open ones are gone when this returns: ``pg_terminate_backend`` only signals each backend, so a
    query sent in the next moments could still reach one and be cut mid-way (a connection dying under
    a query, which no pool can hide) instead of finding its connection already ended."""
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(os.environ["PERSONAS_TEST_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {'false' if on else 'true'}")
        if on:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            for _ in range(200):  # each backend exits within milliseconds of its signal
                if not conn.execute("SELECT 1 FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone():
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"the backends of {name} were signalled but did not exit in 10 s")


def queue(pg_url: str, run_id: str) -> None:
    tasks = build_app(pg_url)
    with tasks.open():
        ProcrastinateQueue(tasks).enqueue(run_id)


def test_a_worker_keeps_going_through_a_database_outage(
    tmp_path: Path, pg_url: str, served: tuple[Sandbox, str]
) -> None:
    sb, url = served
    home = tmp_path / "home"
    service = Service.open(Config(home=home, database_url=pg_url))
    ensure_schema(build_app(pg_url), pg_url)
    spec = service.persona("lead-magnet-sequencer")
    before, after = (sign_up(sb, f"{n}@example.com", HOT) for n in ("before", "after"))
    first, _ = service.record_event(spec, before["data"]["id"], before, trigger="webhook")
    service.close()
    worker = start_worker(home, pg_url, url)
    log = Log(worker.stderr)
    down = False
    try:
        queue(pg_url, first.id)
        wait_for(lambda: len(first_touchpoints(sb, before["data"]["relationships"]["profile"]["data"]["id"])) == 1,
                 "the run queued before the outage")
        outage(pg_url, on=True)
        down = True
        wait_for(lambda: worker.poll() is not None or "is unreachable" in log.text, "the worker to notice")
        assert worker.poll() is None, f"the worker exited on the outage: {log.text[-3000:]}"
        assert "asking again in 1 s" in log.text, log.text
        time.sleep(8)  # the pools and the worker keep trying meanwhile: each attempt used to log a warning
        outage(pg_url, on=False)
        down = False
        wait_for(lambda: "the worker starts afresh" in log.text, "the worker to see it back")
        # one line when it went away (with the database's reason), one when it came back: no traceback, no
        # line per attempt, which operators read as a crash
        text = log.text
        during = text[text.index("\n", text.index(": runs and schedules of ")):text.index("the worker starts afresh")]
        assert "Traceback" not in during and "error connecting in" not in during, during
        assert "Side task" not in during and "listener error" not in during, during
        [away, back] = [line for line in during.splitlines() if "the database at" in line]
        assert "is unreachable (" in away and "asking again in 1 s" in away, during
        assert "answers again after" in back, during
        again = Service.open(Config(home=home, database_url=pg_url))
        second, _ = again.record_event(spec, after["data"]["id"], after, trigger="webhook")
        queue(pg_url, second.id)
        try:
            wait_for(lambda: (again.store.get(second.id) or second).status == "done", "the run queued after it")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {again.store.get(second.id)}; {log.text[-4000:]}") from None
        again.close()
    finally:
        if down:
            outage(pg_url, on=False)
        stop(worker)
    assert len(first_touchpoints(sb, after["data"]["relationships"]["profile"]["data"]["id"])) == 1


def test_a_failed_run_is_one_line_in_the_workers_log(
    tmp_path: Path, pg_url: str, served: tuple[Sandbox, str]
) -> None:
    sb, url = served
    home = tmp_path / "home"
    service = Service.open(Config(home=home, database_url=pg_url))
    ensure_schema(build_app(pg_url), pg_url)
    event = sign_up(sb, "refused@example.com", HOT)
    run, _ = service.record_event(service.persona("lead-magnet-sequencer"), event["data"]["id"], event,
                                  trigger="webhook")
    sb.faults = Faults(error_rate=1.0, status=400, operations=["create_event"])  # the send is refused
    worker = start_worker(home, pg_url, url)
    try:
        queue(pg_url, run.id)
        wait_for(lambda: (service.store.get(run.id) or run).status == "failed", "the run to fail")
    finally:
        text = stop(worker)
        service.close()
    lines = [line for line in text.splitlines() if f"run {run.id} of lead-magnet-sequencer failed:" in line]
    assert len(lines) == 1, text
    assert "400" in lines[0]
    assert lines[0].endswith(f"`personas runs retry {run.id}` continues it from its last checkpoint")
    assert SECRET not in text and "pk_sandbox_demo" not in text


def test_only_lost_connections_are_folded_into_the_outage_line(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection refused or ended is the outage (one line); a statement's own error (a timeout, here)
    in the same loggers is a real error and keeps its traceback."""
    from personas.service.outage_log import OutageLog

    port = pg_url.rsplit(":", 1)[1].split("/")[0]
    errors: list[BaseException] = []
    for url, sql in ((pg_url.replace(f":{port}/", ":9/"), "SELECT 1"), (pg_url, "SELECT pg_sleep(1)")):
        try:
            with psycopg.connect(url, connect_timeout=3, options="-c statement_timeout=50") as conn:
                conn.execute(sql)
        except psycopg.Error as exc:
            errors.append(exc)
    refused, timed_out = errors
    said: list[str] = []
    worker = logging.getLogger("procrastinate.worker")
    with caplog.at_level(logging.WARNING), OutageLog("personas worker", "db", "asking again", say=said.append):
        for _ in range(3):
            logging.getLogger("psycopg.pool").warning("error connecting in %r: %s", "pool-1", refused)
            worker.error("Side task listener failed", exc_info=refused)
        worker.error("Side task deferrer failed", exc_info=timed_out)
    assert len(said) == 1 and said[0].startswith("personas worker: the database at db is unreachable ("), said
    shown = [r for r in caplog.records if r.name.startswith(("psycopg", "procrastinate"))]
    assert [r.getMessage() for r in shown] == ["Side task deferrer failed"] and shown[0].exc_info
