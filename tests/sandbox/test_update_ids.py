"""Every ``PATCH /things/{id}`` refuses a body whose ``data.id`` names another resource: 409 at ``/data/id``.

JSON:API and Klaviyo answer 409 when an update's resource object names another id than its URL. Each
handler once checked this itself and two did not: ``update_image`` and ``update_webhook`` renamed the
URL's image or webhook whatever id the body gave. For each stable update, over HTTP on a demo sandbox:
the body the sweep builds with another id is a 409 that changes nothing, and the same body with the
URL's id is accepted (so the 409 is about the id, not the body).
"""

from __future__ import annotations

import copy
import datetime as _dt
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_sandbox._generic import shape_of
from klaviyo_toolkit._arguments import prepare
from klaviyo_toolkit.catalog import Operation, load_catalog
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.ratelimit import RateLimiter
from tests.sandbox.conftest import HEADERS
from tests.sandbox.sweep import minimal_args
from tests.sandbox.test_conformance import ARGS, Fixtures

UPDATES = [op for op in load_catalog() if op.method == "PATCH" and shape_of(op.path)[0] == "item"]


@pytest.fixture(scope="module")
def world() -> Any:
    sb = Sandbox(seed=42, validate_responses=True, rate_limit_factor=None,
                 clock=ManualClock(_dt.datetime(2026, 11, 25, 15, 0, tzinfo=_dt.UTC).timestamp()))
    fixtures = Fixtures(sb, sb.client(rate_limiter=RateLimiter(factor=None), clock=ManualClock()))
    with httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL, headers=HEADERS) as raw:
        yield sb, fixtures, raw
    sb.close()


def _other_id(sb: Sandbox, op: Operation, rid: str) -> str:
    """An id that is not ``rid`` but that the request schema accepts (some ids are an enum)."""
    schema = sb.schemas.prop({"$ref": f"#/$defs/{op.record['request_schema']}"}, "data", "id")
    return next((str(v) for v in schema.get("enum") or () if v is not None and str(v) != rid), "NOT-" + rid)


def test_every_update_is_listed() -> None:
    assert {"update_image", "update_webhook", "update_profile", "update_campaign"} <= {
        op.operation_id for op in UPDATES}


@pytest.mark.parametrize("op", UPDATES, ids=lambda op: op.operation_id)
def test_an_update_whose_body_names_another_id_is_409_and_changes_nothing(world: Any, op: Operation) -> None:
    sb, fixtures, raw = world
    args = minimal_args(op, sb)
    args.update(ARGS.get(op.operation_id, lambda f: {})(fixtures))
    req = prepare(op, args)
    rid = str(req.arguments["id"])
    rtype = sb.routes.collection_type(shape_of(op.path)[1][0])
    before = copy.deepcopy(sb.store.get(rtype, rid))
    wrong = copy.deepcopy(req.json_body)
    wrong["data"]["id"] = _other_id(sb, op, rid)
    resp = raw.patch(req.path, params=req.params, json=wrong)
    assert resp.status_code == 409, (op.operation_id, resp.text)
    assert resp.json()["errors"][0]["source"]["pointer"] == "/data/id"
    after = sb.store.get(rtype, rid)
    assert (after.attributes, after.relationships) == (before.attributes, before.relationships)
    right = raw.patch(req.path, params=req.params, json=req.json_body)
    assert 200 <= right.status_code < 300, (op.operation_id, right.text)
