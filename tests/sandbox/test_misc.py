"""Accounts, coupons and codes, tags, webhooks, images and forms in the sandbox."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import KlaviyoAPIError

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAAB"
                       "JRU5ErkJggg==")


def api_error(call: Any, *args: Any, **kwargs: Any) -> KlaviyoAPIError:
    with pytest.raises(KlaviyoAPIError) as err:
        call(*args, **kwargs)
    return err.value


# -- accounts -----------------------------------------------------------------------------------------
def test_a_key_sees_one_account_even_without_demo_data(client: Any) -> None:
    accounts = client.call("get_accounts").data
    assert len(accounts) == 1
    assert accounts[0]["id"] == "SbxPub"
    assert accounts[0]["attributes"]["public_api_key"] == "SbxPub"
    assert client.call("get_account", id="SbxPub").data["attributes"]["preferred_currency"] == "USD"
    assert api_error(client.call, "get_account", id="Other1").status == 404


# -- coupons ------------------------------------------------------------------------------------------
def test_coupon_id_is_its_external_id_and_duplicates_conflict(client: Any) -> None:
    coupon = client.call("create_coupon", external_id="SPRING15", description="15% off").data
    assert coupon["id"] == "SPRING15"
    err = api_error(client.call, "create_coupon", external_id="SPRING15")
    assert (err.status, err.source["pointer"]) == (409, "/data/attributes/external_id")
    err = api_error(client.call, "create_coupon", external_id="15 % OFF")
    assert (err.status, err.source["pointer"]) == (400, "/data/attributes/external_id")
    assert "letters, digits" in (err.detail or "")


def test_codes_are_unique_per_coupon_and_filterable(client: Any, clock: ManualClock) -> None:
    client.call("create_coupon", external_id="SPRING15")
    client.call("create_coupon", external_id="FALL20")
    code = client.call("create_coupon_code", unique_code="ABC123", coupon_id="SPRING15").data
    assert code["id"] == "SPRING15-ABC123"
    assert code["attributes"]["status"] == "UNASSIGNED"
    assert code["attributes"]["expires_at"].startswith("2024-11-")  # a year after the clock's 2023-11-14
    err = api_error(client.call, "create_coupon_code", unique_code="ABC123", coupon_id="SPRING15")
    assert (err.status, err.source["pointer"]) == (409, "/data/attributes/unique_code")
    assert client.call("create_coupon_code", unique_code="ABC123", coupon_id="FALL20").data["id"] == "FALL20-ABC123"
    client.call("create_coupon_code", unique_code="SOON", coupon_id="SPRING15", expires_at="2023-12-01T00:00:00+00:00")
    client.call("update_coupon_code", id="SPRING15-ABC123", status="USED")
    used = client.call("get_coupon_codes", filter="and(equals(coupon.id,'SPRING15'),equals(status,'USED'))").data
    assert [c["id"] for c in used] == ["SPRING15-ABC123"]
    soon = client.call("get_coupon_codes_for_coupon", id="SPRING15",
                       filter="less-than(expires_at,2024-01-01T00:00:00+00:00)").data
    assert [c["id"] for c in soon] == ["SPRING15-SOON"]
    linked = client.call("get_coupon_code_ids_for_coupon", id="SPRING15").data
    assert sorted(d["id"] for d in linked) == ["SPRING15-ABC123", "SPRING15-SOON"]
    err = api_error(client.call, "get_coupon_codes", filter="equals(status,'USED')")
    assert (err.status, err.source["parameter"]) == (400, "filter")
    assert "coupon.id" in (err.detail or "")


def test_an_unassigned_code_links_no_made_up_profile(raw: httpx.Client) -> None:
    raw.post("/api/coupons", json={"data": {"type": "coupon", "attributes": {"external_id": "WELCOME"}}})
    made = raw.post("/api/coupon-codes", json={"data": {"type": "coupon-code", "attributes": {"unique_code": "HI"},
                    "relationships": {"coupon": {"data": {"type": "coupon", "id": "WELCOME"}}}}})
    for resp in (made, raw.get("/api/coupon-codes/WELCOME-HI"),
                 raw.get("/api/coupon-codes", params={"filter": "equals(coupon.id,'WELCOME')"})):
        assert resp.status_code == 200, resp.text
        data = resp.json()["data"]
        rels = (data[0] if isinstance(data, list) else data)["relationships"]
        assert rels["coupon"]["data"] == {"type": "coupon", "id": "WELCOME"}
        # no profile yet: only links, never a linkage with an empty id that a client would follow
        assert "data" not in rels["profile"] and set(rels["profile"]["links"]) == {"self", "related"}


def test_missing_coupon_and_assigned_code_errors(sb: Sandbox, client: Any) -> None:
    err = api_error(client.call, "create_coupon_code", unique_code="X1", coupon_id="NOPE")
    assert (err.status, err.source["pointer"]) == (404, "/data/relationships/coupon/data/id")
    client.call("create_coupon", external_id="VIP")
    client.call("create_coupon_code", unique_code="X1", coupon_id="VIP")
    client.call("update_coupon_code", id="VIP-X1", status="ASSIGNED_TO_PROFILE")
    err = api_error(client.call, "delete_coupon_code", id="VIP-X1")
    assert err.status == 400 and "assigned" in (err.detail or "")
    client.call("delete_coupon", id="VIP")
    assert sb.store.count("coupon-code") == 0


def test_bulk_coupon_codes_job_reports_duplicates(sb: Sandbox, client: Any, clock: ManualClock) -> None:
    client.call("create_coupon", external_id="BULK")
    client.call("create_coupon_code", unique_code="TAKEN", coupon_id="BULK")
    codes = [{"unique_code": c, "coupon_id": "BULK"} for c in ("A1", "TAKEN", "B2")]
    job = client.call("bulk_create_coupon_codes", coupon_codes=codes).data
    assert job["attributes"]["status"] == "queued"
    clock.advance(5)
    sb.tick()
    done = client.call("get_bulk_create_coupon_codes_job", job_id=job["id"]).data["attributes"]
    assert (done["status"], done["completed_count"], done["failed_count"]) == ("complete", 2, 1)
    assert done["errors"][0]["source"]["pointer"] == "/data/attributes/coupon-codes/data/1/attributes/unique_code"
    assert len(client.call("get_coupon_codes_for_coupon", id="BULK").data) == 3


# -- tags -----------------------------------------------------------------------------------------------
def test_tags_default_group_links_and_exclusive_groups(client: Any) -> None:
    groups = client.call("get_tag_groups").data
    assert [(g["attributes"]["name"], g["attributes"]["default"]) for g in groups] == [("Default", True)]
    tag = client.call("create_tag", name="Q4").data
    assert tag["relationships"]["tag-group"]["data"]["id"] == groups[0]["id"]
    list_id = client.call("create_list", name="Hikers").data["id"]
    client.call("tag_lists", id=tag["id"], list_ids=[list_id])
    assert [d["id"] for d in client.call("get_list_ids_for_tag", id=tag["id"]).data] == [list_id]
    assert [t["id"] for t in client.call("get_tags_for_list", id=list_id).data] == [tag["id"]]
    err = api_error(client.call, "tag_lists", id=tag["id"], list_ids=["NoSuch"])
    assert (err.status, err.source["pointer"]) == (404, "/data/0/id")
    season = client.call("create_tag_group", name="Season", exclusive=True).data
    summer = client.call("create_tag", name="Summer", tag_group_id=season["id"]).data
    winter = client.call("create_tag", name="Winter", tag_group_id=season["id"]).data
    client.call("tag_lists", id=summer["id"], list_ids=[list_id])
    err = api_error(client.call, "tag_lists", id=winter["id"], list_ids=[list_id])
    assert err.status == 409 and "exclusive" in (err.detail or "")
    client.call("remove_tag_from_lists", id=summer["id"], list_ids=[list_id])
    client.call("tag_lists", id=winter["id"], list_ids=[list_id])
    client.call("delete_tag_group", id=season["id"])
    assert [t["id"] for t in client.call("get_tags_for_list", id=list_id).data] == [tag["id"]]


def test_default_group_cannot_be_deleted_and_tags_cannot_move(raw: httpx.Client, sb: Sandbox, client: Any) -> None:
    default = client.call("get_tag_groups").data[0]
    err = api_error(client.call, "delete_tag_group", id=default["id"])
    assert err.status == 400 and "default" in (err.detail or "")
    tag = client.call("create_tag", name="Q4").data
    client.call("update_tag", id=tag["id"], name="Q4 2026")
    assert client.call("get_tag", id=tag["id"]).data["attributes"]["name"] == "Q4 2026"
    body = {"data": {"type": "tag", "id": tag["id"], "attributes": {"name": "x"},
                     "relationships": {"tag-group": {"data": {"type": "tag-group", "id": default["id"]}}}}}
    response = raw.patch(f"/api/tags/{tag['id']}", json=body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["pointer"].startswith("/data")


# -- webhooks ---------------------------------------------------------------------------------------------
def test_webhook_crud_with_topics_and_no_secret_in_responses(sb: Sandbox, client: Any) -> None:
    topics = [t["id"] for t in client.call("get_webhook_topics").data]
    assert "event:klaviyo.sent_sms" in topics
    hook = client.call("create_webhook", name="SMS", endpoint_url="https://hooks.example.com/k",
                       secret_key="s3cret", webhook_topic_ids=["event:klaviyo.sent_sms"])
    assert "s3cret" not in str(hook.body)
    hook_id = hook.data["id"]
    assert hook.data["attributes"]["enabled"] is True
    fetched = client.call("get_webhook", id=hook_id, include=["webhook-topics"])
    assert [t["id"] for t in fetched.included] == ["event:klaviyo.sent_sms"]
    client.call("update_webhook", id=hook_id, enabled=False,
                webhook_topic_ids=["event:klaviyo.sent_sms", "event:klaviyo.opened_email"])
    assert client.call("get_webhook", id=hook_id).data["attributes"]["enabled"] is False
    assert sb.store.get("webhook", hook_id).private["secret_key"] == "s3cret"  # type: ignore[union-attr]
    client.call("delete_webhook", id=hook_id)
    assert client.call("get_webhooks").data == []


def test_an_update_cannot_leave_a_webhook_without_topics(sb: Sandbox, client: Any) -> None:
    """Create refuses a webhook with no topic; an update that replaces them with none is refused too
    (before, it stored a webhook that could never be delivered), and one that leaves them out keeps them."""
    hook_id = client.call("create_webhook", name="SMS", endpoint_url="https://hooks.example.com/k", secret_key="s",
                          webhook_topic_ids=["event:klaviyo.sent_sms"]).data["id"]
    err = api_error(client.call, "update_webhook", id=hook_id, webhook_topic_ids=[])
    assert (err.status, err.source["pointer"]) == (400, "/data/relationships/webhook-topics/data")
    assert "enabled to false" in (err.detail or "")
    client.call("update_webhook", id=hook_id, name="SMS sent")
    fetched = client.call("get_webhook", id=hook_id, include=["webhook-topics"])
    assert fetched.data["attributes"]["name"] == "SMS sent"
    assert [t["id"] for t in fetched.included] == ["event:klaviyo.sent_sms"]


def test_webhook_needs_https_and_known_topics(client: Any) -> None:
    err = api_error(client.call, "create_webhook", name="x", endpoint_url="http://hooks.example.com",
                    secret_key="s", webhook_topic_ids=["event:klaviyo.sent_sms"])
    assert (err.status, err.source["pointer"]) == (400, "/data/attributes/endpoint_url")
    assert "https" in (err.detail or "")
    err = api_error(client.call, "create_webhook", name="x", endpoint_url="https://hooks.example.com",
                    secret_key="s", webhook_topic_ids=["event:klaviyo.sent_sms", "event:nope"])
    assert (err.status, err.source["pointer"]) == (400, "/data/relationships/webhook-topics/data/1/id")
    assert api_error(client.call, "get_webhook_topic", id="event:nope").status == 404


# -- images -------------------------------------------------------------------------------------------------
def test_images_from_url_data_uri_and_file(client: Any) -> None:
    first = client.call("upload_image_from_url", import_from_url="https://cdn.example.com/img/hero.jpg").data
    assert (first["id"], first["attributes"]["name"], first["attributes"]["format"]) == ("1", "hero.jpg", "jpeg")
    again = client.call("upload_image_from_url", import_from_url="https://cdn.example.com/other/hero.jpg").data
    assert again["attributes"]["name"] == "hero.jpg (1)"
    data_uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    inline = client.call("upload_image_from_url", import_from_url=data_uri, name="pixel", hidden=True).data
    assert (inline["attributes"]["format"], inline["attributes"]["size"]) == ("png", len(PNG))
    uploaded = client.call("upload_image_from_file", file=base64.b64encode(PNG).decode(), name="logo.png").data
    assert (uploaded["attributes"]["name"], uploaded["attributes"]["format"]) == ("logo.png", "png")
    renamed = client.call("update_image", id=uploaded["id"], name="brand-logo", hidden=True).data
    assert renamed["attributes"]["name"] == "brand-logo" and renamed["attributes"]["hidden"] is True
    pngs = client.call("get_images", filter="equals(format,'png')").data
    assert sorted(i["id"] for i in pngs) == sorted([inline["id"], uploaded["id"]])


def test_unsupported_images_are_refused(client: Any) -> None:
    err = api_error(client.call, "upload_image_from_url", import_from_url="https://cdn.example.com/doc.pdf")
    assert (err.status, err.source["pointer"]) == (400, "/data/attributes/import_from_url")
    assert "jpeg, png, gif" in (err.detail or "")
    err = api_error(client.call, "upload_image_from_file", file=base64.b64encode(b"%PDF-1.4").decode(), name="a.pdf")
    assert (err.status, err.source["parameter"]) == (400, "file")


@pytest.mark.parametrize("content", [b"", b"hello, not an image", b"%PDF-1.4"], ids=["empty", "text", "pdf"])
def test_bytes_that_are_not_an_image_are_refused_whatever_their_name_says(
    client: Any, sb: Sandbox, content: bytes
) -> None:
    """A file named .png, or a data URI typed image/png, is read for what its bytes are; nothing is stored."""
    encoded = base64.b64encode(content).decode()
    err = api_error(client.call, "upload_image_from_file", file=encoded, name="logo.png")
    assert (err.status, err.source["parameter"]) == (400, "file") and "not a jpeg, png or gif" in (err.detail or "")
    err = api_error(client.call, "upload_image_from_url", import_from_url=f"data:image/png;base64,{encoded}")
    assert (err.status, err.source["pointer"]) == (400, "/data/attributes/import_from_url")
    assert sb.store.count("image") == 0
    jpeg_bytes = b"\xff\xd8\xff\xe0" + bytes(16)  # a JPEG whose URI says png: stored as what it is
    typed = client.call("upload_image_from_url", import_from_url="data:image/png;base64,"
                        + base64.b64encode(jpeg_bytes).decode()).data
    assert typed["attributes"]["format"] == "jpeg"


# -- forms ----------------------------------------------------------------------------------------------------
FORM_DEFINITION = {"versions": [{
    "name": "Footer", "type": "embed", "status": "draft",
    "steps": [{"name": "Sign up", "columns": [{"rows": [{"blocks": [
        {"type": "email", "properties": {"label": "Email", "property_name": "$email"}},
        {"type": "button", "properties": {"label": "Join"}, "action": {"type": "next_step", "submit": True}}]}]}]}],
}]}


def test_forms_get_versions_and_delete_together(sb: Sandbox, client: Any) -> None:
    form = client.call("create_form", name="Footer signup", status="draft", ab_test=False,
                       definition=FORM_DEFINITION).data
    assert form["attributes"]["status"] == "draft"
    versions = client.call("get_versions_for_form", id=form["id"]).data
    kinds = [(v["attributes"]["form_type"], v["attributes"]["variation_name"]) for v in versions]
    assert kinds == [("embed", "Footer")]
    assert form["attributes"]["definition"]["versions"][0]["id"] == int(versions[0]["id"])
    assert client.call("get_form_for_form_version", id=versions[0]["id"]).data["id"] == form["id"]
    assert [f["id"] for f in client.call("get_forms", filter="equals(name,'Footer signup')").data] == [form["id"]]
    client.call("delete_form", id=form["id"])
    assert sb.store.count("form-version") == 0
    assert api_error(client.call, "get_form", id=form["id"]).status == 404


def test_forms_are_created_as_drafts(raw: httpx.Client, sb: Sandbox) -> None:
    body = {"data": {"type": "form", "attributes": {"name": "x", "status": "live", "ab_test": False,
                                                    "definition": FORM_DEFINITION}}}
    response = raw.post("/api/forms", json=body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["pointer"] == "/data/attributes/status"
