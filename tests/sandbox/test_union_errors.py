"""A body whose value fits none of a ``oneOf``/``anyOf``'s branches gets the 400 of the branch it meant.

The branch is told by the value's discriminators (``type``, ``method``, ``channel``, ``is_member``) or,
without one, by the keys it gives. Before, the sandbox answered "... is not valid under any of the
given schemas", or the error of another branch: a group-membership condition missing ``group_ids``
came back as "True is not one of [False]" at ``is_member``, the one field that was right. Over HTTP,
on the in-process sandbox; nothing is stored by a refused request.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox


def _error(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 400, resp.text
    err: dict[str, Any] = resp.json()["errors"][0]
    return err


@pytest.fixture
def list_id(raw: httpx.Client) -> str:
    resp = raw.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": "Hikers"}}})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["data"]["id"])


def _campaign(list_id: str, definition: Any = None, **attrs: Any) -> dict[str, Any]:
    message = {"type": "campaign-message",
               "attributes": {"definition": definition or {"channel": "email", "content": {"subject": "Hi"}}}}
    return {"data": {"type": "campaign", "attributes": {
        "name": "Trails", "audiences": {"included": [list_id]}, "campaign-messages": {"data": [message]}, **attrs}}}


def _segment(condition: Any) -> dict[str, Any]:
    definition = {"condition_groups": [{"conditions": [condition]}]}
    return {"data": {"type": "segment", "attributes": {"name": "Members", "definition": definition}}}


CONDITION = "/data/attributes/definition/condition_groups/0/conditions/0"
STRATEGY = "/data/attributes/send_strategy"


@pytest.mark.parametrize(("condition", "pointer", "says", "not_says"), [
    ({"type": "profile-group-membership", "is_member": True}, f"{CONDITION}/group_ids", "'group_ids' is required",
     "is_member"),
    ({"type": "profile-group-membership", "is_member": False}, f"{CONDITION}/group_ids", "'group_ids' is required",
     "is_member"),
    ({"type": "profile-bogus"}, f"{CONDITION}/type", "'profile-group-membership'", "any of the given schemas"),
    ({"type": "profile-property", "property": "properties['plan']",
      "filter": {"type": "string", "operator": "greater-than", "value": "gold"}},
     f"{CONDITION}/filter/operator", "'starts-with'", "is not of type"),
    ({"type": "profile-property", "property": "properties['plan']",
      "filter": {"type": "string", "operator": "in", "value": "gold"}},
     f"{CONDITION}/filter/value", "is not of type 'array'", "any of the given schemas"),
], ids=["member-without-groups", "non-member-without-groups", "unknown-type", "string-operator", "in-takes-a-list"])
def test_a_segment_condition_is_checked_as_the_kind_it_names(
    raw: httpx.Client, sb: Sandbox, condition: Any, pointer: str, says: str, not_says: str
) -> None:
    err = _error(raw.post("/api/segments", json=_segment(condition)))
    assert err["source"]["pointer"] == pointer and says in err["detail"] and not_says not in err["detail"], err
    assert sb.store.count("segment") == 0


@pytest.mark.parametrize(("strategy", "pointer", "says"), [
    ({"method": "static"}, f"{STRATEGY}/datetime", "'datetime' is required"),
    ({"method": "throttled", "datetime": "2027-01-01T10:00:00+00:00", "throttle_percentage": 7},
     f"{STRATEGY}/throttle_percentage", "7 is not one of"),
    ({"method": "static", "datetime": "tomorrow"}, f"{STRATEGY}/datetime", "ISO 8601"),
    ({"method": "later"}, f"{STRATEGY}/method", "'static', 'throttled', 'immediate', 'smart_send_time'"),
    ({}, f"{STRATEGY}/method", "'method' is required"),
    ("now", STRATEGY, "send_strategy must be an object"),
], ids=["static-without-datetime", "bad-throttle", "bad-datetime", "unknown-method", "no-method", "not-an-object"])
def test_a_send_strategy_is_checked_as_the_method_it_names(
    raw: httpx.Client, sb: Sandbox, list_id: str, strategy: Any, pointer: str, says: str
) -> None:
    err = _error(raw.post("/api/campaigns", json=_campaign(list_id, send_strategy=strategy)))
    assert err["source"]["pointer"] == pointer and says in err["detail"], err
    assert "any of the given schemas" not in err["detail"]
    assert sb.store.count("campaign") == 0
    good = {"method": "static", "datetime": "2027-01-01T10:00:00+00:00"}
    assert raw.post("/api/campaigns", json=_campaign(list_id, send_strategy=good)).status_code == 201


def test_a_message_channel_no_definition_has_names_the_channels(raw: httpx.Client, sb: Sandbox, list_id: str) -> None:
    err = _error(raw.post("/api/campaigns", json=_campaign(list_id, {"channel": "fax"})))
    assert err["source"]["pointer"] == "/data/attributes/campaign-messages/data/0/attributes/definition/channel"
    assert "'email', 'sms', 'mobile_push'" in err["detail"]
    assert sb.store.count("campaign") == 0


def test_a_custom_timeframe_without_end_says_end_is_required(raw: httpx.Client) -> None:
    body = {"data": {"type": "campaign-values-report", "attributes": {
        "statistics": ["opens"], "timeframe": {"start": "2026-01-01T00:00:00+00:00"},
        "conversion_metric_id": "UNUSED"}}}  # the body is checked first
    err = _error(raw.post("/api/campaign-values-reports", json=body))
    assert err["source"]["pointer"] == "/data/attributes/timeframe/end" and "'end' is required" in err["detail"]
