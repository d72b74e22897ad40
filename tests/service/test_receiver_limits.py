"""The receiver's answers beyond the signature: a body over the cap is 413 and never buffered whole,
a correctly signed body that is not a delivery is 400 (not a secret or clock problem), an item of it
that is not an event is refused alone (202 naming the field), a timestamp
that is not a finite number is refused, each counted under its own result; and watch's wording.
Real HTTP to the real Starlette app (httpx over ASGI), real SQLite."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.webhooks import WebhookMalformed, parse_timestamp, sign, verify_delivery
from personas.kernel.config import Config
from personas.service.app import MAX_BODY, build_app
from personas.service.service import Service
from personas.service.serving import watch
from tests.graphs.leads import HOT, sign_up

from .conftest import SECRET
from .test_receiver import NOW, Recorder, delivery, headers


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    found = Service.open(Config(home=tmp_path / "home", webhook_secret=SECRET))
    yield found
    found.close()


def client(service: Service) -> httpx.AsyncClient:
    app = build_app(service, Recorder(), clock=lambda: NOW + 3)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver")


async def results(http: httpx.AsyncClient) -> dict[str, float]:
    text = (await http.get("/metrics")).text
    out = {}
    for line in text.splitlines():
        if line.startswith("personas_webhook_deliveries_total{"):
            label, value = line.split(" ")
            out[label.split('"')[1]] = float(value)
    return out


async def test_a_body_over_the_cap_is_413_by_its_content_length(service: Service) -> None:
    body = b"x" * (MAX_BODY + 1)
    async with client(service) as http:
        answer = await http.post("/webhooks/klaviyo", content=body, headers=headers(body))
        assert answer.status_code == 413 and "over" in answer.json()["error"]
        counted = await results(http)
    assert counted["too_large"] == 1 and counted["rejected"] == 0 and service.store.runs() == []


async def test_a_chunked_body_is_read_only_up_to_the_cap(service: Service) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:  # no Content-Length: 100 MiB if it were all read
        nonlocal sent
        for _ in range(100 * 16):
            sent += 1
            yield b"y" * 65536

    async with client(service) as http:
        answer = await http.post("/webhooks/klaviyo", content=endless(), headers=headers(b""))
        assert answer.status_code == 413
        assert (await results(http))["too_large"] == 1
    assert sent <= MAX_BODY // 65536 + 2  # it stopped reading at the cap


async def test_a_delivery_just_under_the_cap_is_read(service: Service) -> None:
    body = json.dumps({"data": [], "meta": {"padding": "p" * (MAX_BODY - 100)}}).encode()
    assert len(body) <= MAX_BODY
    async with client(service) as http:
        answer = await http.post("/webhooks/klaviyo", content=body, headers=headers(body))
    assert answer.status_code == 202
    assert answer.json() == {"runs": [], "ignored": "the delivery holds no event", "events": []}


def _event(**changes: object) -> dict[str, object]:
    """The one event of a valid delivery, with ``changes`` at dotted paths (None removes the field)."""
    item: dict[str, object] = json.loads(delivery("01E"))["data"][0]
    for path, value in changes.items():
        *parents, last = path.split("__")
        node: dict[str, object] = item
        for key in parents:
            node = node[key]  # type: ignore[assignment]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return item


#: Signed, and JSON, but not Klaviyo's shape: each used to start a run that could only fail.
NOT_EVENTS = [
    (_event(payload={}), "data[0].payload.data is missing, not an object"),
    (_event(payload={"data": {"id": "01BARE"}}), "data[0].payload.data.type is not 'event'"),
    (_event(payload={"data": {"type": "profile", "id": "X", "attributes": {"email": "a@b.c"}}}),
     "data[0].payload.data.type is not 'event'"),
    (_event(external_id=True), "data[0].external_id must be a string (the event's id), not bool"),
    (_event(external_id=7), "data[0].external_id must be a string (the event's id), not int"),
    (_event(topic=["x"]), "data[0].topic must be a string, not list"),
    (_event(payload__data__id=12), "data[0].payload.data.id must be a non-empty string"),
    (_event(payload__data__id=""), "data[0].payload.data.id must be a non-empty string"),
    (_event(payload__data__attributes=None), "data[0].payload.data.attributes must be an object"),
    (_event(payload__data__relationships=None), "data[0].payload.data.relationships.profile does not name a profile"),
    (_event(payload__data__relationships__profile={"data": None}), "relationships.profile does not name a profile"),
    (_event(payload__data__relationships__metric=None), "data[0].payload.data.relationships.metric does not name a"),
    (_event(payload__data__relationships__metric={"data": {"type": "profile", "id": "P"}}),
     "relationships.metric does not name a metric"),
]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json at all", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),  # nesting deeper than the parser goes
        (b'{"data": "x"}', "no data array"),
        (b"[]", "no data array"),
        (b"{}", "no data array"),
    ],
)
async def test_a_signed_malformed_body_is_400_and_counted_apart(service: Service, body: bytes, reason: str) -> None:
    async with client(service) as http:
        answer = await http.post("/webhooks/klaviyo", content=body, headers=headers(body))
        assert answer.status_code == 400 and reason in answer.json()["error"]
        counted = await results(http)
    assert counted["malformed"] == 1 and counted["rejected"] == 0 and service.store.runs() == []
    with pytest.raises(WebhookMalformed):
        verify_delivery(SECRET, body, headers(body), now=NOW, partial=True)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"data": [1]}', "no payload"),
        (b'{"data": [{"payload": {}}]}', "data[0].payload.data is missing, not an object"),
        *((json.dumps({"data": [item]}).encode(), reason) for item, reason in NOT_EVENTS),
    ],
)
async def test_a_signed_item_that_is_not_an_event_is_refused_alone(service: Service, body: bytes, reason: str) -> None:
    """Judged alone (the rest of a batch runs, ``test_webhook_batches``): 202 naming the field, kept as a
    refused run when its topic starts a persona, never queued; the delivery is counted malformed."""
    async with client(service) as http:
        answer = await http.post("/webhooks/klaviyo", content=body, headers=headers(body))
        assert answer.status_code == 202, answer.text
        [event] = answer.json()["events"]
        assert event["result"] == "refused" and reason in event["reason"] and answer.json()["runs"] == []
        counted = await results(http)
    assert counted["malformed"] == 1 and counted["rejected"] == 0 and counted["accepted"] == 0
    assert all(run.status == "failed" and run.refused and reason in run.refused for run in service.store.runs())
    with pytest.raises(WebhookMalformed):  # without ``partial``, as before: the whole delivery
        verify_delivery(SECRET, body, headers(body), now=NOW)
    assert [r.reason for r in verify_delivery(SECRET, body, headers(body), now=NOW, partial=True).refused] == [
        event["reason"]]


async def test_an_unsigned_malformed_body_is_still_401(service: Service) -> None:
    body = b"not json"
    async with client(service) as http:
        unsigned = {**headers(body), "Klaviyo-Signature": "0" * 64}
        answer = await http.post("/webhooks/klaviyo", content=body, headers=unsigned)
        assert answer.status_code == 401
        counted = await results(http)
    assert counted["rejected"] == 1 and counted["malformed"] == 0


@pytest.mark.parametrize("stamp", ["nan", "NaN", "-nan", "inf", "-Infinity", "1e999"])
async def test_a_signed_non_finite_timestamp_is_refused(service: Service, stamp: str) -> None:
    assert parse_timestamp(stamp) is None
    body = delivery()
    signed = {"Content-Type": "application/json", "Klaviyo-Webhook-Id": "WH1", "Klaviyo-Timestamp": stamp,
              "Klaviyo-Signature": sign(SECRET, body, stamp)}
    async with client(service) as http:
        answer = await http.post("/webhooks/klaviyo", content=body, headers=signed)
    assert answer.status_code == 401 and "Klaviyo-Timestamp" in answer.json()["error"]
    assert service.store.runs() == []


def test_watch_on_sqlite_says_the_runs_ran_here(tmp_path: Path) -> None:
    sandbox = Sandbox(seed=9)
    sign_up(sandbox, "hot@example.com", HOT)
    lines: list[str] = []
    total = watch(Config(home=tmp_path / "h"), "lead-magnet-sequencer", once=True, lookback=600,
                  report=lines.append, sandbox=sandbox)
    assert total == 1 and len(lines) == 1
    assert "queued" not in lines[0] and "run here: 1 done" in lines[0], lines


