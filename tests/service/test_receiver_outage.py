"""PostgreSQL outages: ``personas serve`` answers in seconds and recovers at once; a worker rides them out.

The outage is real (the test's database refuses connections and its open ones are ended, as in a
restart), and the receiver is the app ``personas serve`` runs, over HTTP. Its run store's pool used to
make every request wait 30 s for a connection while the database was away (``/healthz`` included,
past any load balancer's check timeout), and for up to minutes after it was back, while the pool
backed off between attempts to connect again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from klaviyo_toolkit.webhooks import format_timestamp, sign
from personas.kernel.config import Config
from personas.service.service import Service
from personas.service.serving import build_serve_app
from personas.service.store import RunStore

from .conftest import SECRET, serve_app
from .test_receiver import delivery
from .test_worker_outage import outage

#: Well under the pool's 30 s wait, well over what an answer takes on a busy machine.
PROMPT = 12.0


def deliver(base: str, event_id: str) -> tuple[float, httpx.Response]:
    body = delivery(event_id)
    stamp = format_timestamp(time.time())
    headers = {"Content-Type": "application/json", "Klaviyo-Webhook-Id": "WH1", "Klaviyo-Timestamp": stamp,
               "Klaviyo-Signature": sign(SECRET, body, stamp)}
    started = time.monotonic()
    answer = httpx.post(f"{base}/webhooks/klaviyo", content=body, headers=headers, timeout=60)
    return time.monotonic() - started, answer


def health(base: str) -> tuple[float, int]:
    started = time.monotonic()
    answer = httpx.get(f"{base}/healthz", timeout=60)
    return time.monotonic() - started, answer.status_code


def test_serve_answers_promptly_while_the_database_is_away_and_as_soon_as_it_is_back(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """...and says so in two lines: it used to log a warning for every one of its pools' attempts to
    connect again (``error connecting in 'pool-3': ...``), which operators read as a crash loop."""
    caplog.set_level(logging.INFO)
    config = Config(home=tmp_path / "home", webhook_secret=SECRET, database_url=pg_url)
    app = build_serve_app(config)
    with serve_app(app) as base:
        took, first = deliver(base, "01BEFORE")
        assert first.status_code == 202, first.text
        outage(pg_url, True)
        try:
            for _ in range(2):  # the first request finds the pool empty, the next ones too
                took, code = health(base)
                assert code == 503 and took < PROMPT, (code, took)
                took, refused = deliver(base, "01DURING")
                assert refused.status_code == 503 and took < PROMPT, (refused.status_code, took, refused.text)
                assert "not currently accepting connections" in refused.json()["error"]  # the database's answer
            time.sleep(4)  # the pools try to connect again meanwhile (after 1 s, 2 s, ...)
        finally:
            outage(pg_url, False)
        took, code = health(base)
        assert code == 200 and took < PROMPT, (code, took)
        took, again = deliver(base, "01DURING")  # Klaviyo's retry: taken now
        assert again.status_code == 202 and took < PROMPT, (again.status_code, took, again.text)
    said = [r.getMessage() for r in caplog.records if r.name.startswith("psycopg")]
    assert said == [], said  # folded into the lines below
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("personas serve: the database")]
    assert len(lines) == 2 and "is unreachable (" in lines[0] and "not currently accepting" in lines[0], lines
    assert "answers again after" in lines[1] and "127.0.0.1" in lines[0], lines
    store = RunStore.postgres(pg_url)
    try:
        assert sorted(r.key for r in store.runs()) == ["event:01BEFORE", "event:01DURING"]
    finally:
        store.close()


def test_a_workers_store_and_checkpoints_ride_out_a_restart_longer_than_the_pools_back_off(
    tmp_path: Path, pg_url: str
) -> None:
    """A worker's requests (patience 30 s) wait through a 17 s outage and go on as soon as the database
    is back. The pools used to try again 1, 3, 7, 15 and 31 s after it went away, so a request made as
    it went failed with PoolTimeout at 30 s, 13 s after the database answered: the run failed and waited
    for `personas runs retry`."""
    import threading

    service = Service.open(Config(home=tmp_path / "home", database_url=pg_url))
    run, _ = service.store.create_run("lead-magnet-sequencer", "event:01RIDE", "webhook", {"n": 1})
    config = {"configurable": {"thread_id": run.thread_id, "checkpoint_ns": ""}}
    service.saver.get_tuple(config)  # both pools hold a connection now, which the outage ends
    answers: dict[str, object] = {}

    def ask(name: str, call: Callable[[], object]) -> None:
        started = time.monotonic()
        try:
            answers[name] = (call(), time.monotonic() - started)
        except Exception as exc:
            answers[name] = (exc, time.monotonic() - started)

    outage(pg_url, True)
    askers = [threading.Thread(target=ask, args=("store", lambda: service.store.get(run.id))),
              threading.Thread(target=ask, args=("checkpoints", lambda: service.saver.get_tuple(config)))]
    try:
        for asker in askers:
            asker.start()
        time.sleep(17)
    finally:
        outage(pg_url, False)
    for asker in askers:
        asker.join(timeout=60)
    try:
        found, took = answers["store"]  # type: ignore[misc]
        assert getattr(found, "id", None) == run.id and took < 26, (found, took)
        found, took = answers["checkpoints"]  # type: ignore[misc]
        assert found is None and took < 26, (found, took)  # no checkpoint yet: answered, not PoolTimeout
    finally:
        service.close()
