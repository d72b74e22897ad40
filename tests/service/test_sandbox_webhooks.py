"""The sandbox's system webhook deliveries: Klaviyo's topics, headers, body and signature; only to
enabled webhooks subscribed to the event's topic; retried with backoff on the sandbox clock."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from klaviyo_sandbox import DEFAULT_DOMAINS, Sandbox
from klaviyo_sandbox import webhook_deliveries as deliveries
from klaviyo_sandbox import with_webhook_sender as with_sender
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import KlaviyoAPIError
from klaviyo_toolkit.webhooks import parse_timestamp, verify_delivery
from tests.graphs.leads import HOT, sign_up

from .conftest import FORM_TOPIC, SECRET, register_webhook


class Receiver:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.got: list[tuple[str, dict[str, str], bytes]] = []

    def __call__(self, url: str, headers: dict[str, str], body: bytes) -> int:
        self.got.append((url, headers, body))
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return int(answer)


def test_a_delivery_is_what_klaviyo_sends() -> None:
    clock = ManualClock(1_796_000_000.0)
    receiver = Receiver([])
    sb = Sandbox(seed=1, clock=clock, domains=with_sender(DEFAULT_DOMAINS, receiver))
    topics = {t["id"] for t in sb.client().call("get_webhook_topics").data}
    assert FORM_TOPIC in topics and "event:klaviyo.opened_email" in topics
    hook = register_webhook(sb)
    event = sign_up(sb, "shape@example.com", HOT)
    sb.tick()
    [(url, headers, body)] = receiver.got
    assert url.endswith("/webhooks/klaviyo") and headers["Klaviyo-Webhook-Id"] == hook
    assert parse_timestamp(headers["Klaviyo-Timestamp"]) == clock.time()
    assert headers["Klaviyo-Timestamp"].endswith(" GMT")  # an HTTP date, as Klaviyo sends it
    document = json.loads(body)
    assert set(document) == {"data", "meta"} and set(document["meta"]) == {
        "klaviyo_account_id", "klaviyo_webhook_id", "timestamp", "version"}
    [item] = document["data"]
    assert item["topic"] == FORM_TOPIC and item["external_id"] == event["data"]["id"]
    assert item["payload"]["data"]["attributes"]["event_properties"] == event["data"]["attributes"]["event_properties"]
    profile = event["data"]["relationships"]["profile"]["data"]
    assert item["payload"]["data"]["relationships"]["profile"]["data"] == profile
    assert verify_delivery(SECRET, body, headers, now=clock.time()).events[0].event_id == event["data"]["id"]


def test_only_subscribed_enabled_webhooks_get_deliveries() -> None:
    receiver = Receiver([])
    sb = Sandbox(seed=1, domains=with_sender(DEFAULT_DOMAINS, receiver))
    client = sb.client()
    client.call("create_webhook", name="opens", endpoint_url="https://example.com/opens", secret_key=SECRET,
                webhook_topic_ids=["event:klaviyo.opened_email"])
    off = register_webhook(sb)
    client.call("update_webhook", id=off, enabled=False)
    sign_up(sb, "nobody@example.com", HOT)
    sb.tick()
    assert receiver.got == [] and deliveries(sb) == []


def test_failed_attempts_are_retried_with_backoff_on_the_sandbox_clock() -> None:
    clock = ManualClock(1_796_000_000.0)
    receiver = Receiver([503, ConnectionError("refused"), 202])
    sb = Sandbox(seed=1, clock=clock, domains=with_sender(DEFAULT_DOMAINS, receiver, backoff=2.0))
    register_webhook(sb)
    sign_up(sb, "retry@example.com", HOT)
    sb.tick()
    assert [d["attempts"] for d in deliveries(sb)] == [1]
    sb.settle()  # a retry waits for the clock: settle does not rush it
    assert len(receiver.got) == 1
    clock.advance(2.0)
    sb.tick()
    assert deliveries(sb)[0]["attempts"] == 2 and "refused" in deliveries(sb)[0]["error"]
    clock.advance(3.9)
    sb.tick()
    assert len(receiver.got) == 2
    clock.advance(0.2)
    sb.tick()
    [record] = deliveries(sb)
    assert (record["status"], record["attempts"], record["last_status"]) == ("delivered", 3, 202)
    stamps = [parse_timestamp(h["Klaviyo-Timestamp"]) for _, h, _ in receiver.got]
    assert stamps == sorted(stamps) and len(set(h["Klaviyo-Signature"] for _, h, _ in receiver.got)) == 3


def test_a_delivery_that_keeps_failing_gives_up() -> None:
    clock = ManualClock(1_796_000_000.0)
    receiver = Receiver([500] * 10)
    sb = Sandbox(seed=1, clock=clock, domains=with_sender(DEFAULT_DOMAINS, receiver, max_attempts=3, backoff=1.0))
    register_webhook(sb)
    sign_up(sb, "down@example.com", HOT)
    for _ in range(5):
        sb.tick()
        clock.advance(10)
    assert len(receiver.got) == 3 and deliveries(sb)[0]["status"] == "failed"


def test_background_delivery_never_holds_up_the_api() -> None:
    release = threading.Event()

    def slow(url: str, headers: dict[str, str], body: bytes) -> int:
        release.wait(10)
        return 200

    sb = Sandbox(seed=1, domains=with_sender(DEFAULT_DOMAINS, slow, background=2))
    register_webhook(sb)
    sign_up(sb, "slowhook@example.com", HOT)
    started = time.monotonic()
    sb.client().call("get_lists")  # ticks: the delivery starts, on its own thread
    assert time.monotonic() - started < 5 and deliveries(sb)[0]["status"] == "sending"
    release.set()
    deadline = time.monotonic() + 10
    while deliveries(sb)[0]["status"] != "delivered" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert deliveries(sb)[0]["status"] == "delivered"


def test_plain_http_is_for_loopback_receivers_only() -> None:
    sb = Sandbox(seed=1)
    with pytest.raises(KlaviyoAPIError, match="https"):
        sb.client().call("create_webhook", name="x", endpoint_url="http://example.com/hook", secret_key=SECRET,
                         webhook_topic_ids=[FORM_TOPIC])
