"""A worker's ``/metrics`` (``personas worker --metrics-port``) says what the shared store holds at each
scrape, with the same series as ``personas serve``'s: it used to answer ``personas_queue_depth 0`` and
no ``personas_runs`` at all. A real worker process on a real PostgreSQL, scraped over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from personas.service.store import RunStore

from .conftest import free_port
from .test_postgres import start_worker, stop


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out = {}
    for line in text.splitlines():
        if line.startswith(("personas_queue_depth", "personas_runs{", "personas_store_up")):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_workers_metrics_count_the_runs_in_the_store_at_each_scrape(tmp_path: Path, pg_url: str) -> None:
    # recorded "a day from now", so that the worker's minute tick never takes these queued runs for
    # orphans (a queued run untouched for a minute) and runs them while the test reads the counts
    store = RunStore.postgres(pg_url, clock=lambda: time.time() + 86400)
    port = free_port()
    worker = start_worker(tmp_path / "home", pg_url, "http://127.0.0.1:9", "--metrics-port", str(port))
    try:
        for n in range(2):
            store.create_run("lead-magnet-sequencer", f"event:Q{n}", "webhook", {})
        failed, _ = store.create_run("lead-magnet-sequencer", "event:F", "webhook", {})
        store.finish(failed.id, "failed", error="HTTP 400")
        wait_for(lambda: "personas_queue_depth" in scrape(port), 90, "the worker's /metrics")
        first = scrape(port)
        assert first["personas_queue_depth"] == 2.0, first
        assert first['personas_runs{status="queued"}'] == 2.0 and first['personas_runs{status="failed"}'] == 1.0
        assert first['personas_runs{status="done"}'] == 0.0 and first["personas_store_up"] == 1.0
        again, _ = store.create_run("lead-magnet-sequencer", "event:F2", "webhook", {})
        store.finish(again.id, "failed", error="HTTP 400")
        assert scrape(port)['personas_runs{status="failed"}'] == 2.0  # read at the scrape, not at start
    finally:
        log = stop(worker)
        store.close()
    assert "Traceback" not in log, log


def test_a_metrics_port_in_use_is_refused_naming_the_option(tmp_path: Path, pg_url: str) -> None:
    """Two workers on one machine given the same --metrics-port: the second says which option to
    change (exit 2), not ``OSError: [Errno 98] Address already in use`` (exit 1)."""
    import socket

    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        worker = start_worker(tmp_path / "home", pg_url, "http://127.0.0.1:9", "--metrics-port", str(port))
        try:
            code = worker.wait(timeout=120)
        finally:
            log = stop(worker)
    assert code == 2, log
    assert f"--metrics-port {port}" in log and "already in use" in log and "OSError" not in log, log
