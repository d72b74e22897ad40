"""Requests real Klaviyo refuses, which the sandbox once accepted (a second review's findings), over HTTP.

- lengths the spec states only in words: a data source's title "between 1 and 255 characters", a
  push button's label "max 40 characters" (checked on the branch of a definition the body fits);
- a blank ``name`` or ``title`` names nothing (tags, tag groups, templates, webhooks, renames);
- a linkage to a resource that does not exist is a 404 pointing at its id, on the operations the
  generic engine serves too (a client back-in-stock subscription, a data-source record, a relationship
  endpoint such as a campaign message's image);
- a campaign channel filter names a channel campaigns have.

Each case is refused with nothing stored.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from klaviyo_sandbox import PUBLIC_KEY, Sandbox


def error(resp: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["errors"][0]
    return err


def make(raw: httpx.Client, path: str, rtype: str, **attrs: Any) -> str:
    resp = raw.post(path, json={"data": {"type": rtype, "attributes": attrs}})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["data"]["id"])


# -- lengths stated in words --------------------------------------------------------------------
@pytest.mark.parametrize(("title", "says"), [("", "at least 1 character"), ("t" * 256, "at most 255 characters")])
def test_a_data_source_title_is_1_to_255_characters(raw: httpx.Client, sb: Sandbox, title: str, says: str) -> None:
    body = {"data": {"type": "data-source", "attributes": {"title": title}}}
    err = error(raw.post("/api/data-sources", json=body))
    assert err["source"]["pointer"] == "/data/attributes/title" and says in err["detail"]
    assert sb.store.count("data-source") == 0
    make(raw, "/api/data-sources", "data-source", title="t" * 255)


def _push_campaign(list_id: str, label: str) -> dict[str, Any]:
    definition = {"channel": "mobile_push",
                  "content": {"body": "Back in stock", "action_buttons": [{"label": label, "action_type": "open_app"}]}}
    message = {"type": "campaign-message", "attributes": {"definition": definition}}
    return {"data": {"type": "campaign", "attributes": {
        "name": "Push", "audiences": {"included": [list_id]}, "campaign-messages": {"data": [message]}}}}


def test_a_push_button_label_is_at_most_40_characters(raw: httpx.Client, sb: Sandbox) -> None:
    list_id = make(raw, "/api/lists", "list", name="Push fans")
    err = error(raw.post("/api/campaigns", json=_push_campaign(list_id, "x" * 41)))
    assert err["source"]["pointer"].startswith("/data/attributes/campaign-messages/data/0/attributes/definition")
    assert sb.store.count("campaign") == 0
    assert raw.post("/api/campaigns", json=_push_campaign(list_id, "x" * 40)).status_code == 201


# -- blank names --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "rtype", "attrs"),
    [
        ("/api/tags", "tag", {}),
        ("/api/tag-groups", "tag-group", {}),
        ("/api/templates", "template", {"editor_type": "CODE", "html": "<p>Hi</p>"}),
        ("/api/custom-metrics", "custom-metric", {"definition": {"aggregation_method": "value", "metric_groups": []}}),
    ],
)
@pytest.mark.parametrize("name", ["", "   "])
def test_a_name_is_not_blank(raw: httpx.Client, sb: Sandbox, path: str, rtype: str, attrs: Any, name: str) -> None:
    err = error(raw.post(path, json={"data": {"type": rtype, "attributes": {"name": name, **attrs}}}))
    assert err["source"]["pointer"] == "/data/attributes/name" and "blank" in err["detail"]
    assert sb.store.count(rtype) == 0


def test_a_webhook_and_a_rename_need_a_name_too(raw: httpx.Client) -> None:
    webhook = {"data": {"type": "webhook",
                        "attributes": {"name": " ", "endpoint_url": "https://example.com/hook", "secret_key": "s"},
                        "relationships": {"webhook-topics": {"data": [{"type": "webhook-topic",
                                                                       "id": "event:klaviyo.sent_sms"}]}}}}
    assert error(raw.post("/api/webhooks", json=webhook))["source"]["pointer"] == "/data/attributes/name"
    tag_id = make(raw, "/api/tags", "tag", name="VIP")
    rename = {"data": {"type": "tag", "id": tag_id, "attributes": {"name": ""}}}
    assert error(raw.patch(f"/api/tags/{tag_id}", json=rename))["source"]["pointer"] == "/data/attributes/name"
    assert raw.get(f"/api/tags/{tag_id}").json()["data"]["attributes"]["name"] == "VIP"


# -- linkages to nothing --------------------------------------------------------------------------
def test_a_client_back_in_stock_subscription_names_a_variant_that_exists(raw: httpx.Client, sb: Sandbox) -> None:
    body = {"data": {"type": "back-in-stock-subscription",
                     "attributes": {"channels": ["EMAIL"],
                                    "profile": {"data": {"type": "profile", "attributes": {"email": "a@example.com"}}}},
                     "relationships": {"variant": {"data": {"type": "catalog-variant",
                                                            "id": "$custom:::$default:::NOPE"}}}}}
    err = error(raw.post(f"/client/back-in-stock-subscriptions?company_id={PUBLIC_KEY}", json=body), 404)
    assert err["code"] == "not_found" and err["source"]["pointer"] == "/data/relationships/variant/data/id"
    assert sb.store.count("back-in-stock-subscription") == 0


def test_a_data_source_record_names_a_data_source_that_exists(raw: httpx.Client) -> None:
    record = {"data": {"type": "data-source-record", "attributes": {"record": {"sku": "A1"}}}}
    body = {"data": {"type": "data-source-record-create-job", "attributes": {"data-source-record": record},
                     "relationships": {"data-source": {"data": {"type": "data-source", "id": "NOPE"}}}}}
    err = error(raw.post("/api/data-source-record-create-jobs", json=body), 404)
    assert err["source"]["pointer"] == "/data/relationships/data-source/data/id"


def test_a_relationship_endpoint_links_only_what_exists(raw: httpx.Client, sb: Sandbox) -> None:
    list_id = make(raw, "/api/lists", "list", name="Readers")
    message = {"type": "campaign-message", "attributes": {"definition": {
        "channel": "email", "content": {"subject": "Hi", "from_email": "shop@example.com", "from_label": "Shop"}}}}
    created = raw.post("/api/campaigns", json={"data": {"type": "campaign", "attributes": {
        "name": "Hello", "audiences": {"included": [list_id]}, "campaign-messages": {"data": [message]}}}})
    assert created.status_code == 201, created.text
    message_id = created.json()["data"]["relationships"]["campaign-messages"]["data"][0]["id"]
    resp = raw.patch(f"/api/campaign-messages/{message_id}/relationships/image",
                     json={"data": {"type": "image", "id": "NOPE"}})
    assert error(resp, 404)["source"]["pointer"] == "/data/id"
    assert sb.store.get("campaign-message", message_id).relationships.get("image") is None


# -- filters ------------------------------------------------------------------------------------
def test_a_campaign_channel_filter_names_a_channel(raw: httpx.Client) -> None:
    err = error(raw.get("/api/campaigns", params={"filter": "equals(messages.channel,'fax')"}))
    assert err["source"]["parameter"] == "filter" and "email" in err["detail"]
    assert raw.get("/api/campaigns", params={"filter": "equals(messages.channel,'sms')"}).status_code == 200
