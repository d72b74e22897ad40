"""An update's ``null`` in the sandbox, over HTTP: it clears what the resource may hold empty, as Klaviyo
does ("setting a field to null will clear out the field"), and is a 400 naming the attribute where the
resource always has a value; never silently ignored, never stored where the answer cannot hold it."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit._clear import clearable_paths
from klaviyo_toolkit.catalog import Operation, load_catalog
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import BadRequestError
from klaviyo_toolkit.ratelimit import RateLimiter
from tests.sandbox.conftest import HEADERS
from tests.sandbox.sweep import minimal_args

Json = dict[str, Any]

#: Clears a domain refuses, as it refuses the same attribute empty: the resource is nothing without it.
REFUSED_BY_RULE = {
    ("update_list", "name"),
    ("update_segment", "name"),
    ("update_segment", "definition"),
    ("update_campaign_message", "definition"),
    ("update_coupon_code", "status"),
}
#: Clears that set what a new resource gets when the attribute is left out.
DEFAULTS = {("update_list", "opt_in_process"): "single_opt_in"}


@pytest.fixture(scope="module")
def demo() -> Iterator[Sandbox]:
    sandbox = Sandbox(seed=42, validate_responses=True, rate_limit_factor=None, demo_data=True,
                      clock=ManualClock(_dt.datetime(2026, 11, 25, 15, 0, tzinfo=_dt.UTC).timestamp()))
    yield sandbox
    sandbox.close()


def _updates() -> list[Operation]:
    return [op for op in load_catalog() if op.method == "PATCH" and (op.body or {}).get("root") == "resource"]


def _at(attributes: Any, path: str) -> Any:
    value = attributes
    for part in path.split("."):
        value = value.get(part, "<absent>") if isinstance(value, dict) else value
    return value


def _null_body(demo: Sandbox, op: Operation, wire: str) -> tuple[str, Json]:
    """The path and body of ``op`` with its minimal arguments, and ``wire`` sent as null."""
    client = demo.client(rate_limiter=RateLimiter(factor=None))
    prepared = client.prepare(op, minimal_args(op, demo))
    body: Json = prepared.json_body
    body["data"].setdefault("attributes", {})[wire] = None
    return prepared.path, body


NOT_CLEARABLE = [
    pytest.param(op, f, id=f"{op.operation_id}.{f['wire']}")
    for op in _updates() for f in op.args
    if f.get("section") == "attributes" and not f.get("clearable") and not f.get("required")
]


@pytest.mark.parametrize(("op", "field"), NOT_CLEARABLE)
def test_null_where_the_resource_always_has_a_value_is_a_400_naming_it(
    demo: Sandbox, op: Operation, field: Json
) -> None:
    path, body = _null_body(demo, op, field["wire"])
    with httpx.Client(transport=demo.transport(), base_url=Sandbox.BASE_URL, headers=HEADERS) as raw:
        before = raw.get(path)
        answer = raw.patch(path, json=body)
        after = raw.get(path)
    assert answer.status_code == 400, (answer.status_code, answer.text[:300])
    error = answer.json()["errors"][0]
    assert (error["status"], error["code"], error["title"]) == (400, "invalid", "Invalid input.")
    assert error["source"]["pointer"] == f"/data/attributes/{field['wire']}"
    assert field["wire"] in error["detail"]
    if before.status_code == 200:  # nothing changed
        assert after.json()["data"]["attributes"] == before.json()["data"]["attributes"]


def test_a_required_attribute_sent_null_is_the_same_400(demo: Sandbox) -> None:
    op = load_catalog().get("update_tag")
    path, body = _null_body(demo, op, "name")
    with httpx.Client(transport=demo.transport(), base_url=Sandbox.BASE_URL, headers=HEADERS) as raw:
        error = raw.patch(path, json=body).json()["errors"][0]
    assert error["status"] == 400 and error["source"]["pointer"] == "/data/attributes/name"


CLEARABLE = [
    pytest.param(op, path, id=f"{op.operation_id}.{path}")
    for op in _updates() for path in clearable_paths(op)
    if "." not in path or not any(  # a field of an object with required fields: the object is given whole
        g.get("required") for f in op.args if f["name"] == path.split(".")[0] for g in f["shape"]["fields"]
    )
]


@pytest.mark.parametrize(("op", "path"), CLEARABLE)
def test_every_field_an_update_can_clear_is_cleared(demo: Sandbox, op: Operation, path: str) -> None:
    client = demo.client(rate_limiter=RateLimiter(factor=None))
    args = minimal_args(op, demo)
    args.pop(path.split(".")[0], None)
    if (op.operation_id, path) in REFUSED_BY_RULE:
        with pytest.raises(BadRequestError) as refused:
            client.call(op, **args, clear=[path])
        assert refused.value.status == 400 and "cannot be" in str(refused.value)
        return
    answer = client.call(op, **args, clear=[path])
    assert 200 <= answer.status < 300
    value = _at(answer.data["attributes"], path)
    expected = DEFAULTS.get((op.operation_id, path))
    if expected is not None:
        assert value == expected
    elif (op.operation_id, path) == ("update_campaign", "tracking_options"):
        assert value == {"add_tracking_params": False, "custom_tracking_params": None,
                         "is_tracking_clicks": True, "is_tracking_opens": True}  # a new email campaign's
    else:
        assert value in (None, [], {}, "<absent>"), value


def test_clearing_a_lists_opt_in_and_a_campaigns_exclusions(client: Any, raw: httpx.Client) -> None:
    kept = client.call("create_list", name="Kept").data["id"]
    lid = client.call("create_list", name="News", opt_in_process="double_opt_in").data["id"]
    res = raw.patch(f"/api/lists/{lid}", json={"data": {"type": "list", "id": lid,
                                                        "attributes": {"opt_in_process": None}}})
    assert res.status_code == 200 and res.json()["data"]["attributes"]["opt_in_process"] == "single_opt_in"
    campaign = client.call(
        "create_campaign", name="July", audiences={"included": [lid], "excluded": [kept]},
        campaign_messages=[{"definition": {"channel": "email", "content": {"subject": "Hi"}}}],
    ).data["id"]
    res = raw.patch(f"/api/campaigns/{campaign}", json={"data": {"type": "campaign", "id": campaign, "attributes": {
        "audiences": {"excluded": None}, "tracking_options": None}}})
    assert res.status_code == 200, res.text
    attrs = res.json()["data"]["attributes"]
    assert attrs["audiences"] == {"included": [lid], "excluded": []}
    assert attrs["tracking_options"]["is_tracking_opens"] is True  # back to a new campaign's
    named = raw.patch(f"/api/campaigns/{campaign}", json={"data": {"type": "campaign", "id": campaign,
                                                                   "attributes": {"name": None}}})
    assert named.status_code == 400 and named.json()["errors"][0]["source"]["pointer"] == "/data/attributes/name"
