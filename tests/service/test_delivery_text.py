"""An event of a correctly signed delivery holding text no store keeps is refused alone, naming the
field, in both modes, and kept once as a refused run; the rest of the batch runs.

A NUL in an event's id reached PostgreSQL's text column (the run's key) and made a 500 with a
traceback, so Klaviyo retried the whole batch for ever; on SQLite it was recorded. Real HTTP to the
real Starlette app (httpx over ASGI), a real SQLite file and a real PostgreSQL (``scripts/postgres.sh``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from personas.kernel.config import Config
from personas.service.app import build_app
from personas.service.service import Service

from .conftest import SECRET
from .test_receiver import NOW, Recorder, delivery, headers


def _event(document: dict[str, Any]) -> dict[str, Any]:
    return dict(document["data"][0]["payload"]["data"])


def _nul_external_id(document: dict[str, Any]) -> None:
    document["data"][0]["external_id"] = "01EVENT\x00nul"


def _nul_event_id(document: dict[str, Any]) -> None:
    document["data"][0].pop("external_id")
    document["data"][0]["payload"]["data"]["id"] = "01EVENT\x00nul"


def _nul_profile(document: dict[str, Any]) -> None:
    document["data"][0]["payload"]["data"]["relationships"]["profile"]["data"]["id"] = "01PRO\x00FILE"


def _nul_property(document: dict[str, Any]) -> None:
    document["data"][0]["payload"]["data"]["attributes"]["event_properties"]["company"] = "Acme\x00"


def _nul_key(document: dict[str, Any]) -> None:
    document["data"][0]["payload"]["data"]["attributes"]["event_properties"]["com\x00pany"] = "Acme"


def _nul_included(document: dict[str, Any]) -> None:
    document["data"][0]["payload"]["included"] = [{"type": "profile", "id": "01PROFILE",
                                                   "attributes": {"email": ["a@example.com", "b\x00@example.com"]}}]


CASES: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (_nul_external_id, "data[0].external_id"),
    (_nul_event_id, "data[0].payload.data.id"),
    (_nul_profile, "data[0].payload.data.relationships.profile.data.id"),
    (_nul_property, "data[0].payload.data.attributes.event_properties.company"),
    (_nul_key, "data[0].payload.data.attributes.event_properties"),
    (_nul_included, "data[0].payload.included[0].attributes.email[1]"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    found = Service.open(Config(home=tmp_path / "home", webhook_secret=SECRET, database_url=url))
    yield found
    found.close()


@pytest.mark.parametrize(("spoil", "field"), CASES, ids=[c[0].__name__.strip("_") for c in CASES])
async def test_a_nul_anywhere_in_an_event_refuses_it_alone_naming_the_field(
    service: Service, spoil: Callable[[dict[str, Any]], None], field: str
) -> None:
    good = json.loads(delivery("01GOOD"))["data"][0]
    document = json.loads(delivery())
    spoil(document)
    document["data"].insert(0, good)  # the good event before it runs: each event is judged alone
    field = field.replace("data[0]", "data[1]", 1)
    body = json.dumps(document).encode()  # ensure_ascii: the NUL travels as \\u0000, as JSON allows
    app = build_app(service, Recorder(), clock=lambda: NOW + 3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as http:
        answer = await http.post("/webhooks/klaviyo", content=body, headers=headers(body))
        again = await http.post("/webhooks/klaviyo", content=body, headers=headers(body, at=NOW + 1))
        metrics = (await http.get("/metrics")).text
    assert answer.status_code == again.status_code == 202, answer.text
    error = answer.json()["events"][1]["reason"]
    assert error.startswith(field + " ") and "NUL" in error, error
    runs = service.store.runs()
    assert sorted((r.key, r.status) for r in runs if not r.refused) == [("event:01GOOD", "queued")]
    [kept] = [r for r in runs if r.refused]  # once, though the batch came twice
    assert kept.status == "failed" and kept.refused == error and "\\u0000" not in json.dumps(kept.input)
    assert 'personas_webhook_deliveries_total{result="accepted"} 2.0' in metrics


async def test_the_same_event_without_the_nul_is_recorded(service: Service) -> None:
    body = delivery("01CLEAN")
    app = build_app(service, Recorder(), clock=lambda: NOW + 3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as http:
        answer = await http.post("/webhooks/klaviyo", content=body, headers=headers(body))
    assert answer.status_code == 202 and [r.key for r in service.store.runs()] == ["event:01CLEAN"]
