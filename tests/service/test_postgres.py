"""Scale-out on a real PostgreSQL: the run store, procrastinate workers as real processes, a worker
killed mid-run. Needs ``PERSONAS_TEST_DATABASE_URL`` (``.ci/run`` starts one; see conftest)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from klaviyo_sandbox import Faults, Sandbox
from personas.kernel.config import Config
from personas.service.queues import ProcrastinateQueue
from personas.service.service import Service
from personas.service.store import RunStore
from personas.service.tasks import RUN_TASK, build_app, ensure_schema
from tests.graphs.leads import HOT, WARM, first_touchpoints, sequence_starts, sign_up
from tests.warm_cli import run_personas

from .conftest import serve_app, worker_env


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def served_sandbox() -> Iterator[tuple[Sandbox, str]]:
    sb = Sandbox(seed=11, rate_limit_factor=None)
    with serve_app(sb.app) as url:
        yield sb, url
    sb.close()


def start_worker(home: Path, pg_url: str, klaviyo_url: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "personas.cli", "worker", "--stalled-after", "2", *extra],
        env=worker_env(home, pg_url, klaviyo_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.stderr.read() if proc.stderr else ""


def test_one_run_per_event_when_many_receivers_record_it_at_once(pg_url: str) -> None:
    stores = [RunStore.postgres(pg_url) for _ in range(4)]
    made: list[bool] = []

    def record(store: RunStore) -> None:
        for n in range(10):
            made.append(store.create_run("lead-magnet-sequencer", f"event:E{n}", "webhook", {"n": n})[1])

    threads = [threading.Thread(target=record, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made.count(True) == 10 and len(made) == 40
    assert len(stores[0].runs(limit=100)) == 10
    for s in stores:
        s.close()


def _record_leads(service: Service, sb: Sandbox, emails: list[str]) -> list[tuple[str, str]]:
    spec = service.persona("lead-magnet-sequencer")
    out = []
    for n, email in enumerate(emails):
        event = sign_up(sb, email, HOT if n % 2 else WARM)
        run, _ = service.record_event(spec, event["data"]["id"], event, trigger="webhook")
        out.append((run.id, event["data"]["relationships"]["profile"]["data"]["id"]))
    return out


def test_two_workers_never_run_the_same_event(
    tmp_path: Path, pg_url: str, served_sandbox: tuple[Sandbox, str]
) -> None:
    sb, url = served_sandbox
    service = Service.open(Config(home=tmp_path / "home", database_url=pg_url))
    tasks = build_app(pg_url)
    ensure_schema(tasks, pg_url)
    runs = _record_leads(service, sb, [f"lead{n}@example.com" for n in range(8)])
    with tasks.open():
        queue = ProcrastinateQueue(tasks)
        for run_id, _ in runs:
            queue.enqueue(run_id)
            queue.enqueue(run_id)  # a second delivery of the same event adds no job
    workers = [start_worker(tmp_path / "home", pg_url, url, "--concurrency", "2") for _ in range(2)]
    try:
        wait_for(lambda: service.store.counts()["done"] == len(runs), 90, "every run to finish")
    except AssertionError:
        errors = [r.error for r in service.store.runs(status="failed")]
        raise AssertionError(f"{service.store.counts()} {errors}; logs: {[stop(w)[-2000:] for w in workers]}") from None
    logs = [stop(w) for w in workers]
    for run_id, pid in runs:
        run = service.store.get(run_id)
        assert run is not None and run.status == "done" and run.attempts == 1, (run, logs)
        assert len(sequence_starts(sb, pid)) == 1 and len(first_touchpoints(sb, pid)) == 1
    with tasks.open():
        jobs = tasks.job_manager.list_jobs(task=RUN_TASK)
    assert len(jobs) == len(runs) and {j.status for j in jobs} == {"succeeded"}
    service.close()


def test_a_worker_killed_mid_run_leaves_the_run_to_another(
    tmp_path: Path, pg_url: str, served_sandbox: tuple[Sandbox, str]
) -> None:
    sb, url = served_sandbox
    service = Service.open(Config(home=tmp_path / "home", database_url=pg_url))
    tasks = build_app(pg_url)
    ensure_schema(tasks, pg_url)
    [(run_id, pid)] = _record_leads(service, sb, ["killed@example.com"])
    sb.faults = Faults(slow_rate=1.0, delay=4.0, operations=["create_event"], count=1)  # the send hangs
    first = start_worker(tmp_path / "home", pg_url, url)
    with tasks.open():
        ProcrastinateQueue(tasks).enqueue(run_id)
    try:
        # the fault was drawn: the worker's send is hanging in the sandbox right now
        wait_for(lambda: sb.faults._faulted == 1, 60, "the first worker to reach the send")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    killed = service.store.get(run_id)
    assert killed is not None and killed.status == "running" and killed.attempts == 1
    second = start_worker(tmp_path / "home", pg_url, url)
    try:
        wait_for(lambda: (service.store.get(run_id) or killed).status == "done", 60, "the second worker")
    finally:
        log = stop(second)
    run = service.store.get(run_id)
    assert run is not None and run.attempts == 2 and run.worker != killed.worker, log
    assert len(sequence_starts(sb, pid)) == 1 and len(first_touchpoints(sb, pid)) == 1
    service.close()


def test_a_run_handed_out_twice_is_run_by_one_worker_at_a_time(tmp_path: Path, pg_url: str) -> None:
    """A live worker starved of CPU misses heartbeats and its job is handed out again: the second
    worker waits for the first instead of running the same run beside it."""
    sb = Sandbox(seed=13)
    config = Config(home=tmp_path / "home", database_url=pg_url)
    first, second = (Service.open(config, sandbox=sb) for _ in range(2))
    [(run_id, pid)] = _record_leads(first, sb, ["twice@example.com"])
    sb.faults = Faults(slow_rate=1.0, delay=1.5, operations=["create_event"], count=1)  # the first send is slow
    ended: dict[str, object] = {}

    def execute(name: str, service: Service) -> None:
        ended[name] = service.execute(run_id)

    threads = [threading.Thread(target=execute, args=("first", first))]
    threads[0].start()
    wait_for(lambda: sb.faults._faulted == 1, 60, "the first worker to reach the send")
    threads.append(threading.Thread(target=execute, args=("second", second)))
    threads[1].start()
    for t in threads:
        t.join(timeout=60)
    run = first.store.get(run_id)
    assert run is not None and run.status == "done" and run.attempts == 1, run
    assert [getattr(ended[n], "status", None) for n in ("first", "second")] == ["done", "done"]
    assert len(sequence_starts(sb, pid)) == 1 and len(first_touchpoints(sb, pid)) == 1
    first.close()
    second.close()
    sb.close()


def test_a_process_waiting_to_set_up_never_hangs_the_one_setting_up(pg_url: str) -> None:
    """Two processes starting at once on a fresh database (`personas serve` and a worker): one sets the
    checkpoint tables up under the set-up lock (`CREATE INDEX CONCURRENTLY` waits for every open
    statement), the other waits for the lock. Waiting must not be one long statement, or both wait
    for ever (PostgreSQL cannot see the cycle: it goes through two connections of one process)."""
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    from personas.service.postgres import setup_lock

    got: list[str] = []

    def wait_for_lock() -> None:
        with setup_lock(pg_url):
            got.append("waiter")

    with setup_lock(pg_url):
        waiter = threading.Thread(target=wait_for_lock)
        waiter.start()
        time.sleep(0.5)  # the waiter is waiting now
        limit = "-c statement_timeout=20000"
        with psycopg.connect(pg_url, autocommit=True, row_factory=dict_row, options=limit) as conn:
            PostgresSaver(conn).setup()  # raises QueryCanceled after 20 s if it waits for the waiter
        got.append("holder")
    waiter.join(timeout=20)
    assert got == ["holder", "waiter"]


def test_postgres_tests_say_how_to_get_a_database(monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import postgres_url

    monkeypatch.delenv("PERSONAS_TEST_DATABASE_URL", raising=False)
    with pytest.raises(pytest.fail.Exception, match=r"scripts/postgres.sh start"):
        postgres_url()


def test_the_whole_path_on_postgres_serve_watch_and_a_worker(
    tmp_path: Path, pg_url: str, served_sandbox: tuple[Sandbox, str]
) -> None:
    """A form submission -> the sandbox's webhook -> `personas serve` (PostgreSQL) -> a worker ->
    the touchpoint; then `personas watch --once` finds the same event (nothing new) and a second one."""
    import httpx

    from .conftest import free_port, register_webhook

    sb, url = served_sandbox
    home = tmp_path / "home"
    env = worker_env(home, pg_url, url)
    port = free_port()
    serve = subprocess.Popen([sys.executable, "-m", "personas.cli", "serve", "--port", str(port)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    worker = start_worker(home, pg_url, url)
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).json().get("store") == "postgres"
            except httpx.HTTPError:
                return False

        try:
            wait_for(up, 60, "personas serve on PostgreSQL")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {stop(serve)[-2000:]} {stop(worker)[-2000:]}") from None
        register_webhook(sb, url=f"{base}/webhooks/klaviyo")
        first = sign_up(sb, "pg.webhook@example.com", HOT)
        first_pid = first["data"]["relationships"]["profile"]["data"]["id"]
        wait_for(lambda: len(first_touchpoints(sb, first_pid)) == 1, 60, "the webhook's touchpoint")
        sb.client().call("delete_webhook", id=sb.client().call("get_webhooks").data[0]["id"])
        second = sign_up(sb, "pg.polled@example.com", WARM)
        watched = run_personas([sys.executable, "-m", "personas.cli", "watch", "lead-magnet-sequencer", "--once"],
                                 env=env, capture_output=True, text=True, timeout=120)
        assert watched.returncode == 0 and "1 new event(s)" in watched.stdout, watched.stderr
        second_pid = second["data"]["relationships"]["profile"]["data"]["id"]
        wait_for(lambda: len(first_touchpoints(sb, second_pid)) == 1, 60, "the polled event's touchpoint")
    finally:
        logs = stop(worker) + stop(serve)
    store = RunStore.postgres(pg_url)
    runs = store.runs()
    store.close()
    assert sorted((r.trigger, r.status) for r in runs) == [("poll", "done"), ("webhook", "done")], logs
    assert len(sequence_starts(sb, first_pid)) == 1 and len(sequence_starts(sb, second_pid)) == 1
