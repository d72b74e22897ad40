"""Business rules Klaviyo documents in words that its spec's schemas do not express, over real HTTP
(in-process). Each test names where Klaviyo says it.

- an account holds at most 1,000 lists and segments together (Help Center, "Create and add contacts
  to a new list");
- the API makes at most 1,000 templates, clones as well as creates (clone_template's description);
- a Reporting API filter lists at most 100 items, and ``send_channel`` takes only email, sms,
  push-notification or whatsapp (the ``filter`` description of the campaign and flow reports; "Max of
  100 messages per ANY filter" for the form and segment reports).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox

SEGMENT_DEFINITION = {"condition_groups": [{"conditions": [{
    "type": "profile-property", "property": "properties['plan']",
    "filter": {"type": "existence", "operator": "is-set"}}]}]}


def error(resp: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["errors"][0]
    return err


def create_list(raw: httpx.Client, name: str) -> httpx.Response:
    return raw.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": name}}})


def create_segment(raw: httpx.Client, name: str) -> httpx.Response:
    return raw.post("/api/segments", json={"data": {"type": "segment", "attributes": {
        "name": name, "definition": SEGMENT_DEFINITION}}})


# -- lists and segments: 1,000 in an account ------------------------------------------------------------
def test_an_account_holds_at_most_1000_lists_and_segments(raw: httpx.Client) -> None:
    """"You can have up to 1,000 lists and segments in your account at any given time." (Klaviyo Help
    Center, Create and add contacts to a new list.) Lists and segments count together."""
    for i in range(998):
        assert create_list(raw, f"List {i}").status_code == 201
    segment = create_segment(raw, "Segment 999")
    assert segment.status_code == 201, segment.text
    last = create_list(raw, "List 1000")
    assert last.status_code == 201, last.text

    for refused in (create_list(raw, "List 1001"), create_segment(raw, "Segment 1001")):
        err = error(refused)
        assert err["code"] == "invalid" and err["source"] == {"pointer": "/data"}
        assert "1,000 lists and segments" in err["detail"] and "Delete a list or segment" in err["detail"]
    assert raw.get("/api/lists", params={"filter": 'equals(name,"List 1001")'}).json()["data"] == []

    assert raw.delete(f"/api/segments/{segment.json()['data']['id']}").status_code == 204
    assert create_list(raw, "List 1001").status_code == 201  # room again once one is gone


# -- templates: 1,000 made through the API, cloned ones too -----------------------------------------------
def test_a_clone_past_1000_templates_is_refused_as_a_create_is(raw: httpx.Client, sb: Sandbox) -> None:
    """clone_template: "If there are 1,000 or more templates in an account, cloning will fail as there
    is a limit of 1,000 templates that can be created via the API" (create_template says the same)."""
    for i in range(998):
        sb.seeding.resource("template", {"name": f"T{i}", "editor_type": "CODE", "html": "<p>hi</p>"})  # quicker
    made = raw.post("/api/templates", json={"data": {"type": "template", "attributes": {
        "name": "T998", "editor_type": "CODE", "html": "<p>hi</p>"}}})
    assert made.status_code == 201, made.text
    source = made.json()["data"]["id"]
    clone = {"data": {"type": "template", "id": source, "attributes": {"name": "T999"}}}
    assert raw.post("/api/template-clone", json=clone).status_code == 201  # the 1,000th
    for path, body in (("/api/template-clone", clone), ("/api/templates", {"data": {"type": "template",
                       "attributes": {"name": "T1000", "editor_type": "CODE", "html": "<p>hi</p>"}}})):
        err = error(raw.post(path, json=body))
        assert err["source"] == {"pointer": "/data"} and "1000 templates" in err["detail"], path
    assert sb.store.count("template") == 1000
    other = next(t.id for t in sb.store.iter("template") if t.id != source)
    assert raw.delete(f"/api/templates/{other}").status_code == 204
    assert raw.post("/api/template-clone", json=clone).status_code == 201  # room again once one is gone


# -- reporting filters ----------------------------------------------------------------------------------
def _placed_order(raw: httpx.Client) -> str:
    event = {"data": {"type": "event", "attributes": {
        "properties": {}, "metric": {"data": {"type": "metric", "attributes": {"name": "Placed Order"}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": "buyer@example.com"}}}}}}
    assert raw.post("/api/events", json=event).status_code == 202
    return str(raw.get("/api/metrics").json()["data"][0]["id"])


REPORTS = {
    "campaign": ("/api/campaign-values-reports", "campaign-values-report", "campaign_id", True),
    "flow": ("/api/flow-values-reports", "flow-values-report", "flow_id", True),
    "flow series": ("/api/flow-series-reports", "flow-series-report", "flow_id", True),
    "form": ("/api/form-values-reports", "form-values-report", "form_id", False),
    "segment": ("/api/segment-values-reports", "segment-values-report", "segment_id", False),
}


def _report(raw: httpx.Client, which: str, filt: str) -> httpx.Response:
    path, rtype, _, conversion = REPORTS[which]
    stats = {"form": ["viewed_form"], "segment": ["total_members"]}.get(which, ["opens"])
    attrs: dict[str, Any] = {"statistics": stats, "timeframe": {"key": "last_30_days"}, "filter": filt}
    if conversion:
        attrs["conversion_metric_id"] = _placed_order(raw)
    if which == "flow series":
        attrs["interval"] = "daily"
    return raw.post(path, json={"data": {"type": rtype, "attributes": attrs}})


@pytest.mark.parametrize("which", list(REPORTS))
def test_a_report_filter_lists_at_most_100_items(raw: httpx.Client, which: str) -> None:
    """"Max of 100 items per list filter." (campaign and flow reports) / "Max of 100 messages per ANY
    filter." (form and segment reports): the ``filter`` description of each Reporting API request."""
    field = REPORTS[which][2]
    operator = "contains-any" if REPORTS[which][3] else "any"
    hundred = ",".join(f'"id{i}"' for i in range(100))
    assert _report(raw, which, f"{operator}({field},[{hundred}])").status_code == 200
    err = error(_report(raw, which, f'{operator}({field},[{hundred},"id100"])'))
    assert err["source"] == {"pointer": "/data/attributes/filter"}
    assert "at most 100" in err["detail"] and "101" in err["detail"] and field in err["detail"]


@pytest.mark.parametrize("which", ["campaign", "flow", "flow series"])
def test_a_report_send_channel_filter_names_a_channel_klaviyo_reports(raw: httpx.Client, which: str) -> None:
    """"When filtering on send_channel, allowed values are email, sms, push-notification, whatsapp."
    (the campaign and flow reports' ``filter`` description). ``mobile_push``, the campaign message's
    own channel name, is not one of them."""
    for channel in ("email", "sms", "push-notification", "whatsapp"):
        assert _report(raw, which, f'equals(send_channel,"{channel}")').status_code == 200
    for filt in ('equals(send_channel,"mobile_push")', 'contains-any(send_channel,["email","fax"])'):
        err = error(_report(raw, which, filt))
        assert err["source"] == {"pointer": "/data/attributes/filter"}
        assert "email, sms, push-notification, whatsapp" in err["detail"]

