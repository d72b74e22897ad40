"""The webhook receiver: Klaviyo's signature scheme, refusals that start nothing, replays, health
and metrics. Deliveries are signed here the way the sandbox signs them (``klaviyo_toolkit.webhooks``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.webhooks import WebhookRejected, format_timestamp, parse_timestamp, sign, verify_delivery
from personas.kernel.config import Config
from personas.service.app import build_app
from personas.service.queues import LocalQueue
from personas.service.service import Service

from .conftest import FORM_TOPIC, SECRET

NOW = 1_796_000_000.0


def delivery(event_id: str = "01EVENT", topic: str = FORM_TOPIC, webhook: str = "WH1") -> bytes:
    return json.dumps({
        "data": [{"topic": topic, "external_id": event_id, "payload": {"data": {
            "type": "event", "id": event_id,
            "attributes": {"timestamp": int(NOW), "datetime": "2026-11-30T10:13:20+00:00",
                           "event_properties": {"form_id": "TRAILG", "timeline": "this month"}},
            "relationships": {"profile": {"data": {"type": "profile", "id": "01PROFILE"}},
                              "metric": {"data": {"type": "metric", "id": "M1"}}}}}}],
        "meta": {"klaviyo_account_id": "SbxPub", "klaviyo_webhook_id": webhook,
                 "timestamp": "2026-11-30T10:13:20+00:00", "version": "2024-06-28"},
    }).encode()


def headers(body: bytes, *, at: float = NOW, secret: str = SECRET, webhook: str = "WH1") -> dict[str, str]:
    stamp = format_timestamp(at)
    return {"Content-Type": "application/json", "Klaviyo-Webhook-Id": webhook, "Klaviyo-Timestamp": stamp,
            "Klaviyo-Signature": sign(secret, body, stamp)}


class Recorder:
    """A queue that only remembers what it was handed (the runs are not the point here); like the real
    queues (procrastinate's queueing lock, LocalQueue's in-flight set), a run waiting in it is not
    queued twice."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def enqueue(self, run_id: str) -> None:
        if run_id not in self.ids:
            self.ids.append(run_id)

    async def enqueue_async(self, run_id: str) -> None:
        self.enqueue(run_id)


@pytest.fixture
def receiver(tmp_path: Path) -> Any:
    service = Service.open(Config(home=tmp_path / "home", webhook_secret=SECRET))
    queue = Recorder()
    client = TestClient(build_app(service, queue, clock=lambda: NOW + 3))
    yield service, queue, client
    service.close()


def test_the_signature_is_hmac_sha256_of_the_body_then_the_timestamp_in_hex() -> None:
    import hashlib
    import hmac

    body = b'{"data": []}'
    stamp = "Tue, 14 Apr 2026 03:50:12 GMT"
    assert sign("k", body, stamp) == hmac.new(b"k", body + stamp.encode(), hashlib.sha256).hexdigest()
    assert parse_timestamp(stamp) == parse_timestamp("2026-04-14T03:50:12+00:00") == 1776138612.0
    assert parse_timestamp("1776138612") == 1776138612.0 and parse_timestamp("yesterday") is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h, b: {k: v for k, v in h.items() if k != "Klaviyo-Signature"}, "missing Klaviyo-Signature"),
        (lambda h, b: {k: v for k, v in h.items() if k != "Klaviyo-Timestamp"}, "missing Klaviyo-Timestamp"),
        (lambda h, b: {**h, "Klaviyo-Signature": "not-hex"}, "malformed Klaviyo-Signature"),
        (lambda h, b: {**h, "Klaviyo-Timestamp": "soon"}, "malformed Klaviyo-Timestamp"),
        (lambda h, b: {**h, "Klaviyo-Signature": sign("another-secret", b, h["Klaviyo-Timestamp"])},
         "wrong Klaviyo-Signature"),
        (lambda h, b: headers(b, at=NOW - 301), "s old, outside the 300 s window"),
        (lambda h, b: headers(b, at=NOW + 400), "s ahead of this machine's clock"),
        (lambda h, b: {**h, "Klaviyo-Webhook-Id": "OTHER"}, "does not match the Klaviyo-Webhook-Id"),
    ],
)
def test_a_bad_signature_is_401_and_starts_nothing(receiver: Any, change: Any, reason: str) -> None:
    service, queue, client = receiver
    body = delivery()
    answer = client.post("/webhooks/klaviyo", content=body, headers=change(headers(body), body))
    assert answer.status_code == 401 and reason in answer.json()["error"]
    assert SECRET not in answer.text
    assert queue.ids == [] and service.store.runs() == []


def test_a_tampered_body_is_refused(receiver: Any) -> None:
    _service, queue, client = receiver
    body = delivery()
    answer = client.post("/webhooks/klaviyo", content=body.replace(b"this month", b"this year!"), headers=headers(body))
    assert answer.status_code == 401 and queue.ids == []


def test_a_replayed_delivery_starts_nothing_new(receiver: Any) -> None:
    service, queue, client = receiver
    body = delivery()
    first = client.post("/webhooks/klaviyo", content=body, headers=headers(body))
    again = client.post("/webhooks/klaviyo", content=body, headers=headers(body))
    assert first.status_code == 202 and [r["new"] for r in first.json()["runs"]] == [True]
    assert again.status_code == 200 and again.json() == {"duplicate": True, "runs": []}
    # the same event in a fresh delivery (signed later): recorded once, queued once
    later = client.post("/webhooks/klaviyo", content=body, headers=headers(body, at=NOW + 1))
    assert later.status_code == 202 and [r["new"] for r in later.json()["runs"]] == [False]
    assert len(queue.ids) == 1 and len(service.store.runs()) == 1


def test_topics_that_start_no_persona_are_taken_counted_and_logged_as_ignored(
    receiver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _service, queue, client = receiver
    body = delivery(topic="event:klaviyo.opened_email")
    with caplog.at_level(logging.INFO, logger="personas.service"):
        answer = client.post("/webhooks/klaviyo", content=body, headers=headers(body))
    assert answer.status_code == 202 and answer.json()["runs"] == [] and queue.ids == []
    assert answer.json()["ignored"] == "no persona starts on event:klaviyo.opened_email"
    assert "starts no persona (topics: event:klaviyo.opened_email)" in caplog.text
    text = client.get("/metrics").text
    assert 'personas_webhook_deliveries_total{result="ignored"} 1.0' in text
    assert 'personas_webhook_deliveries_total{result="accepted"} 0.0' in text


def test_without_a_secret_every_delivery_is_refused(tmp_path: Path) -> None:
    service = Service.open(Config(home=tmp_path / "home"))
    client = TestClient(build_app(service, Recorder(), clock=lambda: NOW))
    body = delivery()
    answer = client.post("/webhooks/klaviyo", content=body, headers=headers(body))
    assert answer.status_code == 401 and "KLAVIYO_WEBHOOK_SECRET" in answer.json()["error"]


def test_health_and_metrics(receiver: Any) -> None:
    _service, _queue, client = receiver
    body = delivery()
    client.post("/webhooks/klaviyo", content=body, headers=headers(body))
    client.post("/webhooks/klaviyo", content=body, headers={**headers(body), "Klaviyo-Signature": "0" * 64})
    assert client.get("/healthz").json() == {"ok": True, "store": "sqlite", "queued": 1, "secret": True}
    text = client.get("/metrics").text
    assert 'personas_webhook_deliveries_total{result="accepted"} 1.0' in text
    assert 'personas_webhook_deliveries_total{result="rejected"} 1.0' in text
    assert "personas_queue_depth 1.0" in text and 'personas_runs{status="queued"} 1.0' in text
    assert "personas_webhook_enqueue_seconds_count 1.0" in text
    assert "personas_klaviyo_call_seconds" in text and "personas_klaviyo_throttled" in text


def test_verify_delivery_reads_the_events() -> None:
    body = delivery("E9")
    found = verify_delivery(SECRET, body, headers(body), now=NOW)
    assert (found.webhook_id, found.account_id, [e.event_id for e in found.events]) == ("WH1", "SbxPub", ["E9"])
    with pytest.raises(WebhookRejected, match="not JSON"):
        verify_delivery(SECRET, b"nope", headers(b"nope"), now=NOW)


def test_the_endpoint_answers_fast(receiver: Any) -> None:
    """Not a timing assertion: the receiver records and queues, it never runs a persona inline."""
    service, _queue, client = receiver
    body = delivery()
    client.post("/webhooks/klaviyo", content=body, headers=headers(body))
    assert service.store.runs()[0].status == "queued" and service.store.runs()[0].attempts == 0


def test_local_queue_picks_up_unfinished_runs_after_a_restart(tmp_path: Path) -> None:
    config = Config(home=tmp_path / "home", webhook_secret=SECRET)
    service = Service.open(config)
    run, _ = service.store.create_run("lead-magnet-sequencer", "event:X", "webhook", {"input": {}})
    service.store.claim(run.id, "dead-worker")  # it was running when the process died
    service.close()
    again = Service.open(config, sandbox=Sandbox(seed=3))
    queue = LocalQueue(again)
    assert queue.recover() == 1
    queue.drain(timeout=30)
    found = again.store.get(run.id)
    assert found is not None and found.status == "failed" and found.attempts == 2  # bad input: recorded, not lost
    assert "data" in (found.error or "")
    again.close()



def test_a_run_is_keyed_by_the_event_in_the_payload_not_by_external_id(receiver: Any) -> None:
    """Runs used to be keyed by ``external_id``: two items of one event with different external ids made
    two runs (the lead sent twice), and so did a poll of Get Events (keyed by the event's id) after a
    delivery whose external_id was not that id."""
    service, queue, client = receiver
    document = json.loads(delivery("01SAME"))
    document["data"][0]["external_id"] = "ext-1"
    twin = json.loads(json.dumps(document["data"][0]))
    twin["external_id"] = "ext-2"
    document["data"].append(twin)
    body = json.dumps(document).encode()
    answer = client.post("/webhooks/klaviyo", content=body, headers=headers(body))
    assert answer.status_code == 202 and [r["new"] for r in answer.json()["runs"]] == [True, False]
    assert len(service.store.runs()) == 1 and len(queue.ids) == 1
    # the poll (``personas watch``) records the same event by its id: the run it finds is that one
    spec = service.persona("lead-magnet-sequencer")
    polled, created = service.record_event(spec, "01SAME", document["data"][0]["payload"], trigger="poll")
    assert not created and polled.id == queue.ids[0] and len(service.store.runs()) == 1


def test_a_delivery_with_one_unusable_event_runs_the_others(receiver: Any) -> None:
    """A lone surrogate in one event used to raise after the events before it were recorded (a 500),
    and Klaviyo's retry found them recorded and queued nothing: those leads waited for a restart. Then
    the whole delivery was refused (400), and Klaviyo gave up on its good events after its retries."""
    service, queue, client = receiver
    document = json.loads(delivery("01GOOD"))
    bad = json.loads(delivery("01BAD"))["data"][0]
    bad["payload"]["data"]["attributes"]["event_properties"]["company"] = "\ud800"
    document["data"].append(bad)
    body = json.dumps(document).encode()  # ensure_ascii: the lone surrogate travels as \\ud800
    answer = client.post("/webhooks/klaviyo", content=body, headers=headers(body))
    assert answer.status_code == 202, answer.text
    assert [e["result"] for e in answer.json()["events"]] == ["queued", "refused"]
    assert answer.json()["events"][1]["reason"].startswith("data[1].payload.data.attributes.event_properties.company")
    good = service.store.find("lead-magnet-sequencer", "event:01GOOD")
    assert good is not None and queue.ids == [good.id]
    [kept] = [r for r in service.store.runs() if r.refused]
    assert kept.status == "failed" and "lone surrogate" in (kept.error or "")


def test_a_run_recorded_but_never_queued_is_queued_by_the_next_delivery_of_its_event(receiver: Any) -> None:
    service, queue, client = receiver
    spec = service.persona("lead-magnet-sequencer")
    body = delivery("01STRANDED")
    stranded, created = service.record_event(spec, "01STRANDED", json.loads(body)["data"][0]["payload"],
                                             trigger="webhook")  # as a delivery that failed after recording
    assert created and queue.ids == []
    retried = client.post("/webhooks/klaviyo", content=body, headers=headers(body, at=NOW + 1))
    assert retried.status_code == 202 and [r["new"] for r in retried.json()["runs"]] == [False]
    assert queue.ids == [stranded.id], "the retry hands the waiting run to the queue"


class QueueAwayOnce(Recorder):
    """The queue's database away for one delivery (a procrastinate connection refused), then back."""

    def __init__(self) -> None:
        super().__init__()
        self.away = True

    async def enqueue_async(self, run_id: str) -> None:
        if self.away:
            self.away = False
            raise ConnectionError("connection refused: the queue's database is away")
        self.enqueue(run_id)


def test_a_delivery_that_could_not_be_queued_is_taken_when_it_comes_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The delivery's signature used to be remembered before its runs were queued: when the queue failed
    (a 500), the same bytes sent again (Klaviyo's retry, a proxy's) were a "duplicate", and the run
    stayed recorded as queued in no queue, never run, with nothing in the log or the metrics."""
    service = Service.open(Config(home=tmp_path / "home", webhook_secret=SECRET))
    queue = QueueAwayOnce()
    client = TestClient(build_app(service, queue, clock=lambda: NOW + 3), raise_server_exceptions=False)
    body = delivery("01AWAY")
    sent = headers(body)
    with caplog.at_level("ERROR", logger="personas.service"):
        first = client.post("/webhooks/klaviyo", content=body, headers=sent)
    assert first.status_code == 503 and "send it again" in first.json()["error"]
    assert "not taken (ConnectionError" in caplog.text
    again = client.post("/webhooks/klaviyo", content=body, headers=sent)
    assert again.status_code == 202, again.text
    [run] = service.store.runs()
    assert queue.ids == [run.id] and run.status == "queued", "the run is in the queue: it will run"
    replay = client.post("/webhooks/klaviyo", content=body, headers=sent)
    assert replay.status_code == 200 and replay.json()["duplicate"] is True, "once taken, it is a replay"
    assert queue.ids == [run.id] and len(service.store.runs()) == 1
    scraped = client.get("/metrics").text
    assert 'personas_webhook_deliveries_total{result="failed"} 1.0' in scraped
    assert 'personas_webhook_deliveries_total{result="accepted"} 1.0' in scraped
    service.close()


def test_serve_names_the_persona_files_that_do_not_load_when_it_starts(tmp_path: Path) -> None:
    """A broken persona file starts nothing (its deliveries are taken and ignored): `personas serve`
    says so when it starts, naming the file, the field and that a restart is needed once it loads."""
    from personas.service.serving import serve_notes

    folder = tmp_path / "home" / "personas"
    folder.mkdir(parents=True)
    (folder / "lead-magnet-sequencer.yaml").write_text("name: lead-magnet-sequencer\ncolour: blue\n", encoding="utf-8")
    config = Config(home=tmp_path / "home", webhook_secret=SECRET)
    [note] = [n for n in serve_notes(config) if "lead-magnet-sequencer.yaml" in n]
    assert "does not run until the file loads" in note and "\n" not in note
    service = Service.open(config)
    assert service.triggered_by(FORM_TOPIC) == [], "the shipped sequencer does not run in its place"
    service.close()


@pytest.mark.parametrize(("secret", "noted"), [('"whsec-a1b2"', True), ("'whsec-a1b2'", True),
                                              ("whsec-a1b2", False), ('"whsec"a1b2', False), ('"', False)])
def test_serve_notes_a_webhook_secret_in_quotes(tmp_path: Path, secret: str, noted: bool) -> None:
    """A secret in quotes (an env file whose quotes a tool kept) made every delivery a 401 "wrong
    signature" with nothing pointing at the quotes: `personas serve` now says so when it starts,
    without the secret itself."""
    from personas.service.serving import serve_notes

    notes = [n for n in serve_notes(Config(home=tmp_path / "home", webhook_secret=secret))
             if "KLAVIYO_WEBHOOK_SECRET" in n]
    assert bool(notes) == noted, notes
    assert all("a1b2" not in n and "remove them" in n for n in notes)
