"""Webhook batches judged event by event, and a second secret while the webhook's secret is rotated.

Klaviyo delivers events in batches and retries a non-2xx delivery whole, then gives up: a batch with one
event not of Klaviyo's shape used to be refused whole (400), so its good events never ran. Now each item
is judged alone (202 saying per item what happened and why), the refused ones are kept as refused runs
(``personas runs --status failed``), and a retried batch runs nothing twice. Only one secret used to be
accepted, so rotating it in Klaviyo refused deliveries signed with the other one for a while.

Real HTTP to the real Starlette app (httpx over ASGI), a real SQLite store, and a real ``personas serve``
and ``personas runs`` in subprocesses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from personas.kernel.config import Config
from personas.service.app import build_app
from personas.service.service import Service

from .conftest import FORM_TOPIC, SECRET, free_port
from .test_commands import env_for, personas, wait_until
from .test_receiver import NOW, Recorder, delivery, headers
from .test_receiver_limits import results

OTHER_TOPIC = "event:klaviyo.opened_email"


def item(event_id: str, topic: str = FORM_TOPIC) -> dict[str, Any]:
    return dict(json.loads(delivery(event_id, topic=topic))["data"][0])


def batch(*items: dict[str, Any]) -> bytes:
    document = json.loads(delivery())
    document["data"] = list(items)
    return json.dumps(document).encode()  # ensure_ascii: a NUL travels as \\u0000


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Service, Recorder, httpx.AsyncClient]]:
    service = Service.open(Config(home=tmp_path / "home", webhook_secret=SECRET))
    queue = Recorder()
    app = build_app(service, queue, clock=lambda: NOW + 3)
    yield service, queue, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver")
    service.close()


async def test_a_bad_event_in_a_batch_is_refused_alone_and_the_rest_runs_once(
    receiver: tuple[Service, Recorder, httpx.AsyncClient], tmp_path: Path
) -> None:
    service, queue, http = receiver
    no_profile = item("01NOPROFILE")
    no_profile["payload"]["data"]["relationships"]["profile"] = None
    nul = item("01NUL")
    nul["payload"]["data"]["attributes"]["event_properties"]["company"] = "Acme\x00"
    body = batch(item("01A"), no_profile, item("01A"), item("01B", OTHER_TOPIC), nul, item("01C"), {"topic": 7})
    async with http:
        answer = await http.post("/webhooks/klaviyo", content=body, headers=headers(body))
        assert answer.status_code == 202, answer.text
        events = answer.json()["events"]
        assert [(e["index"], e["result"]) for e in events] == [
            (0, "queued"), (1, "refused"), (2, "duplicate"), (3, "ignored"), (4, "refused"), (5, "queued"),
            (6, "refused")]
        assert events[1]["reason"].startswith("data[1].payload.data.relationships.profile does not name a profile")
        assert events[4]["reason"].startswith("data[4].payload.data.attributes.event_properties.company holds a NUL")
        assert events[6]["reason"] == "data[6] has no payload object" and "topic" not in events[6]
        assert all("correct the event where it is sent to Klaviyo" in events[n]["fix"] for n in (1, 4, 6))
        assert events[2]["reason"] == "the same event as data[0]" and events[2]["runs"] == events[0]["runs"]
        assert events[3]["reason"] == f"no persona starts on {OTHER_TOPIC}"
        ran = {r.key: r for r in service.store.runs()}
        assert ran["event:01A"].status == ran["event:01C"].status == "queued"
        assert queue.ids == [ran["event:01A"].id, ran["event:01C"].id]
        refused = [r for r in ran.values() if r.refused]
        assert sorted((r.status, r.input["data"]["id"]) for r in refused) == [("failed", "01NOPROFILE"),
                                                                               ("failed", "01NUL")]
        assert len(ran) == 4  # the item with no payload names no persona's topic: answered and logged only

        # Klaviyo's retry of the same batch (a new timestamp, so a new signature): nothing new is recorded
        again = await http.post("/webhooks/klaviyo", content=body, headers=headers(body, at=NOW + 1))
        assert again.status_code == 202 and not any(r["new"] for r in again.json()["runs"])
        assert [e["result"] for e in again.json()["events"]][1:5] == ["refused", "duplicate", "ignored", "refused"]
        replay = await http.post("/webhooks/klaviyo", content=body, headers=headers(body))
        assert replay.status_code == 200 and replay.json()["duplicate"] is True
        assert len(service.store.runs()) == 4
        counted = await results(http)
        scraped = (await http.get("/metrics")).text
    assert counted["accepted"] == 2 and counted["malformed"] == 0 and counted["duplicate"] == 1
    assert "personas_webhook_events_refused_total 6.0" in scraped
    # an operator sees them, naming the field, with `personas runs`
    listed = personas(env_for(tmp_path / "home", "http://127.0.0.1:9"), "runs", "--status", "failed")
    assert listed.returncode == 0, listed.stderr
    assert "01NOPROFILE" not in listed.stderr and "relationships.profile does not name a profile" in listed.stdout
    assert "event_properties.company holds a NUL" in listed.stdout


async def test_a_batch_with_no_usable_event_is_taken_and_counted_malformed(
    receiver: tuple[Service, Recorder, httpx.AsyncClient],
) -> None:
    service, queue, http = receiver
    bad = item("01BAD")
    bad["payload"]["data"]["id"] = ""
    body = batch(bad, [1], bad)  # type: ignore[arg-type]
    async with http:
        answer = await http.post("/webhooks/klaviyo", content=body, headers=headers(body))
        counted = await results(http)
    assert answer.status_code == 202, answer.text  # a retry of it cannot help: not a 4xx Klaviyo retries
    assert answer.json()["runs"] == [] and answer.json()["ignored"] == "no event in the delivery can run"
    assert [e["reason"] for e in answer.json()["events"]] == [
        "data[0].payload.data.id must be a non-empty string (the event's id)", "data[1] has no payload object",
        "data[2].payload.data.id must be a non-empty string (the event's id)"]
    assert counted["malformed"] == 1 and counted["accepted"] == 0 and queue.ids == []
    [kept] = service.store.runs()  # the same item twice: kept once
    assert kept.status == "failed" and kept.refused and kept.input == {"data": {"type": "event", "id": ""}}


async def test_a_large_batch_of_bad_items_gets_a_small_answer(
    receiver: tuple[Service, Recorder, httpx.AsyncClient],
) -> None:
    """Each item is judged, but the answer lists the first MAX_LISTED and counts the rest: a batch of a
    few thousand tiny bad items must not be answered with megabytes."""
    from personas.service.app import MAX_LISTED

    service, queue, http = receiver
    body = batch(item("01GOOD"), *([{"topic": 7}] * 3000))
    async with http:
        answer = await http.post("/webhooks/klaviyo", content=body, headers=headers(body))
    assert answer.status_code == 202, answer.text
    said = answer.json()
    assert len(said["events"]) == MAX_LISTED and said["events_not_listed"] == 3001 - MAX_LISTED
    assert said["events"][0]["result"] == "queued" and len(answer.content) < len(body)
    assert [r.key for r in service.store.runs()] == ["event:01GOOD"] and len(queue.ids) == 1


async def test_the_previous_secret_signs_during_a_rotation_and_a_wrong_one_does_not(tmp_path: Path) -> None:
    old, new = "whsec-old-rotating-out-1111", "whsec-new-rotating-in-2222"
    config = Config.from_env({"PERSONAS_HOME": str(tmp_path / "home"), "KLAVIYO_WEBHOOK_SECRET": new,
                              "KLAVIYO_WEBHOOK_SECRET_PREVIOUS": f" {old} "})
    assert config.webhook_secret_previous == old and old in config.secrets() and old not in repr(config)
    service = Service.open(config)
    app = build_app(service, Recorder(), clock=lambda: NOW + 3)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as http:
            for n, secret in enumerate((new, old)):
                body = delivery(f"01ROT{n}")
                answer = await http.post("/webhooks/klaviyo", content=body, headers=headers(body, secret=secret))
                assert answer.status_code == 202 and answer.json()["runs"][0]["new"] is True, answer.text
            body = delivery("01WRONG")
            wrong = await http.post("/webhooks/klaviyo", content=body, headers=headers(body, secret="whsec-other"))
            health = (await http.get("/healthz")).json()
        assert wrong.status_code == 401 and "wrong Klaviyo-Signature" in wrong.json()["error"]
        assert old not in wrong.text and new not in wrong.text
        assert health["rotating"] is True and health["secret"] is True
        assert sorted(r.key for r in service.store.runs()) == ["event:01ROT0", "event:01ROT1"]
    finally:
        service.close()
    # without the previous secret, the old one is refused as before
    alone = Service.open(Config(home=tmp_path / "home2", webhook_secret=new))
    try:
        app = build_app(alone, Recorder(), clock=lambda: NOW + 3)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as http:
            body = delivery("01OLD")
            refused = await http.post("/webhooks/klaviyo", content=body, headers=headers(body, secret=old))
            assert refused.status_code == 401 and "rotating" not in (await http.get("/healthz")).json()
    finally:
        alone.close()


def test_personas_serve_takes_both_secrets_says_how_to_rotate_and_logs_neither(tmp_path: Path) -> None:
    old, new = "whsec-old-served-3333", "whsec-new-served-4444"
    env = env_for(tmp_path / "home", "http://127.0.0.1:9", KLAVIYO_WEBHOOK_SECRET_PREVIOUS=old)
    env["KLAVIYO_WEBHOOK_SECRET"] = new
    helped = personas(env, "serve", "--help")
    assert helped.returncode == 0 and "KLAVIYO_WEBHOOK_SECRET_PREVIOUS" in helped.stdout
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "personas.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/webhooks/klaviyo"
    codes = []
    try:
        wait_until(lambda: _up(port), 60, "personas serve to listen")
        for secret in (new, old, "whsec-neither"):  # a topic that starts nothing: no run reaches Klaviyo
            body = delivery("01SERVED", topic=OTHER_TOPIC)
            signed = headers(body, at=time.time(), secret=secret)
            codes.append(httpx.post(base, content=body, headers=signed).status_code)
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[1]
    assert codes == [202, 202, 401], log
    assert "KLAVIYO_WEBHOOK_SECRET_PREVIOUS is set" in log
    assert old not in log and new not in log


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
