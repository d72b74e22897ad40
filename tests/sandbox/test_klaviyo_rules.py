"""Rules where the sandbox must behave like Klaviyo (a review's findings), over real HTTP (in-process).

- email marketing is implied consent: an address and no global suppression (an unsubscribe is one);
  SMS needs explicit consent; a list suppression keeps a profile out of that list's sends;
- Bulk Subscribe: ``consented_at`` only with ``historical_import``; each profile carries the
  channel's identifier; at least one profile and one channel;
- every profile-bearing write checks identifiers as profile writes do;
- ``format: date-time`` / ``date`` and email fields in request bodies are checked (400, pointer);
- only emails are matched without regard to case;
- cursors are bound to the query that made them;
- a body without Content-Type is a 415; integer parameters are digits only.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock

#: 2026-03-06T20:00:00Z.
START = 1772827200.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


# -- helpers ----------------------------------------------------------------------------------------
def error(resp: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["errors"][0]
    return err


def make_profile(raw: httpx.Client, **attrs: Any) -> str:
    resp = raw.post("/api/profiles", json={"data": {"type": "profile", "attributes": attrs}})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["data"]["id"])


def make_list(raw: httpx.Client, name: str, profile_ids: list[str]) -> str:
    resp = raw.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": name}}})
    assert resp.status_code == 201, resp.text
    list_id = str(resp.json()["data"]["id"])
    if profile_ids:
        add = raw.post(f"/api/lists/{list_id}/relationships/profiles",
                       json={"data": [{"type": "profile", "id": p} for p in profile_ids]})
        assert add.status_code == 204, add.text
    return list_id


def marketing(raw: httpx.Client, pid: str, channel: str = "email") -> dict[str, Any]:
    resp = raw.get(f"/api/profiles/{pid}", params={"additional-fields[profile]": "subscriptions"})
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["data"]["attributes"]["subscriptions"][channel]["marketing"])


def subscribe_body(profiles: list[dict[str, Any]], list_id: str | None = None, **attrs: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"data": {"type": "profile-subscription-bulk-create-job", "attributes": {
        "profiles": {"data": profiles}, **attrs}}}
    if list_id:
        body["data"]["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
    return body


def sub_item(attrs: dict[str, Any], pid: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "profile", "attributes": attrs}
    if pid:
        item["id"] = pid
    return item


def email_sub(**extra: Any) -> dict[str, Any]:
    return {"email": {"marketing": {"consent": "SUBSCRIBED", **extra}}}


def unsubscribe(raw: httpx.Client, sb: Sandbox, clock: ManualClock, email: str, list_id: str | None = None) -> None:
    body: dict[str, Any] = {"data": {"type": "profile-subscription-bulk-delete-job", "attributes": {"profiles": {
        "data": [sub_item({"email": email, "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}})]}}}}
    if list_id:
        body["data"]["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
    resp = raw.post("/api/profile-subscription-bulk-delete-jobs", json=body)
    assert resp.status_code == 202, resp.text
    run_due(sb, clock)


def run_due(sb: Sandbox, clock: ManualClock, seconds: float = 5.0) -> None:
    clock.advance(seconds)
    sb.tick()


def campaign(raw: httpx.Client, included: list[str], channel: str = "email", **attrs: Any) -> str:
    content = {"subject": "Hello", "from_email": "shop@example.com"} if channel == "email" else {"body": "Sale"}
    content.update(attrs.pop("content", {}))
    resp = raw.post("/api/campaigns", json={"data": {"type": "campaign", "attributes": {
        "name": "C", "audiences": {"included": included, "excluded": []},
        "campaign-messages": {"data": [{"type": "campaign-message", "attributes": {
            "definition": {"channel": channel, "content": content}}}]}, **attrs}}})
    assert resp.status_code == 201, resp.text
    data = resp.json()["data"]
    if channel == "email":
        template = raw.post("/api/templates", json={"data": {"type": "template", "attributes": {
            "name": "T", "editor_type": "CODE", "html": "<p>hi</p>"}}}).json()["data"]["id"]
        mid = data["relationships"]["campaign-messages"]["data"][0]["id"]
        assigned = raw.post("/api/campaign-message-assign-template", json={"data": {
            "type": "campaign-message", "id": mid,
            "relationships": {"template": {"data": {"type": "template", "id": template}}}}})
        assert assigned.status_code in (200, 201), assigned.text
    return str(data["id"])


def send(raw: httpx.Client, sb: Sandbox, clock: ManualClock, cid: str) -> dict[str, dict[str, Any]]:
    resp = raw.post("/api/campaign-send-jobs", json={"data": {"type": "campaign-send-job", "id": cid}})
    assert resp.status_code == 202, resp.text
    run_due(sb, clock)
    return {str(e["to"]): e for e in sb.outbox(campaign_id=cid)}


def estimate(raw: httpx.Client, cid: str) -> int:
    resp = raw.get(f"/api/campaign-recipient-estimations/{cid}")
    assert resp.status_code == 200, resp.text
    return int(resp.json()["data"]["attributes"]["estimated_recipient_count"])


# -- 1. implied email consent --------------------------------------------------------------------------
def test_never_subscribed_profiles_receive_email_campaigns(sb: Sandbox, raw: httpx.Client,
                                                           clock: ManualClock) -> None:
    never = make_profile(raw, email="never@example.com")
    subscribed = make_profile(raw, email="yes@example.com")
    phone_only = make_profile(raw, phone_number="+15005550006")
    resp = raw.post("/api/profile-subscription-bulk-create-jobs",
                    json=subscribe_body([sub_item({"email": "yes@example.com", "subscriptions": email_sub()})]))
    assert resp.status_code == 202
    run_due(sb, clock)
    em = marketing(raw, never)
    assert em["consent"] == "NEVER_SUBSCRIBED" and em["can_receive_email_marketing"] is True
    assert marketing(raw, subscribed)["can_receive_email_marketing"] is True
    assert marketing(raw, phone_only)["can_receive_email_marketing"] is False  # no address to email
    list_id = make_list(raw, "All", [never, subscribed, phone_only])
    cid = campaign(raw, [list_id])
    assert estimate(raw, cid) == 2
    outbox = send(raw, sb, clock, cid)
    assert outbox["never@example.com"]["status"] == "scheduled"
    assert outbox["yes@example.com"]["status"] == "scheduled"
    assert outbox["None"]["skip_reason"] == "no email"


def test_an_unsubscribe_is_a_global_suppression_and_stops_email(sb: Sandbox, raw: httpx.Client,
                                                              clock: ManualClock) -> None:
    gone = make_profile(raw, email="gone@example.com")
    stays = make_profile(raw, email="stays@example.com")
    unsubscribe(raw, sb, clock, "gone@example.com")
    em = marketing(raw, gone)
    assert em["consent"] == "UNSUBSCRIBED" and em["can_receive_email_marketing"] is False
    assert [s["reason"] for s in em["suppression"]] == ["UNSUBSCRIBE"]
    found = raw.get("/api/profiles", params={
        "filter": "equals(subscriptions.email.marketing.suppression.reason,'UNSUBSCRIBE')"}).json()["data"]
    assert [p["id"] for p in found] == [gone]
    outbox = send(raw, sb, clock, campaign(raw, [make_list(raw, "L", [gone, stays])]))
    assert outbox["gone@example.com"]["status"] == "skipped"
    assert outbox["gone@example.com"]["skip_reason"] == "suppressed"
    assert outbox["stays@example.com"]["status"] == "scheduled"
    # subscribing again lifts the UNSUBSCRIBE suppression
    raw.post("/api/profile-subscription-bulk-create-jobs",
             json=subscribe_body([sub_item({"email": "gone@example.com", "subscriptions": email_sub()})]))
    run_due(sb, clock)
    em = marketing(raw, gone)
    assert em["consent"] == "SUBSCRIBED" and em["suppression"] == [] and em["can_receive_email_marketing"] is True


def test_a_list_unsubscribe_keeps_the_profile_out_of_that_lists_sends_only(sb: Sandbox, raw: httpx.Client,
                                                                         clock: ManualClock) -> None:
    pid = make_profile(raw, email="picky@example.com")
    news = make_list(raw, "News", [pid])
    deals = make_list(raw, "Deals", [pid])
    unsubscribe(raw, sb, clock, "picky@example.com", news)
    em = marketing(raw, pid)
    assert em["can_receive_email_marketing"] is True and em["suppression"] == []
    assert [s["list_id"] for s in em["list_suppressions"]] == [news]
    make_list(raw, "ignored", [])
    add = raw.post(f"/api/lists/{news}/relationships/profiles", json={"data": [{"type": "profile", "id": pid}]})
    assert add.status_code == 204  # back on the list, still suppressed for it
    to_news = campaign(raw, [news])
    assert estimate(raw, to_news) == 0
    assert send(raw, sb, clock, to_news)["picky@example.com"]["status"] == "skipped"
    assert send(raw, sb, clock, campaign(raw, [deals]))["picky@example.com"]["status"] == "scheduled"


def test_sms_still_needs_explicit_consent(sb: Sandbox, raw: httpx.Client, clock: ManualClock) -> None:
    never = make_profile(raw, phone_number="+15005550006", email="a@example.com")
    yes = make_profile(raw, phone_number="+15005550007")
    sms = {"sms": {"marketing": {"consent": "SUBSCRIBED"}}}
    resp = raw.post("/api/profile-subscription-bulk-create-jobs",
                    json=subscribe_body([sub_item({"phone_number": "+15005550007", "subscriptions": sms})]))
    assert resp.status_code == 202
    run_due(sb, clock)
    assert marketing(raw, never, "sms")["can_receive_sms_marketing"] is False
    assert marketing(raw, never)["can_receive_email_marketing"] is True  # the same profile's email: implied
    assert marketing(raw, yes, "sms")["can_receive_sms_marketing"] is True
    outbox = send(raw, sb, clock, campaign(raw, [make_list(raw, "SMS", [never, yes])], channel="sms"))
    assert outbox["+15005550006"]["skip_reason"] == "no marketing consent"
    assert outbox["+15005550007"]["status"] == "scheduled"


def test_a_flow_emails_a_never_subscribed_profile(sb: Sandbox, raw: httpx.Client, clock: ManualClock) -> None:
    def event(email: str, **attrs: Any) -> None:
        resp = raw.post("/api/events", json={"data": {"type": "event", "attributes": {
            "properties": {}, "metric": {"data": {"type": "metric", "attributes": {"name": "Signed Up"}}},
            "profile": {"data": {"type": "profile", "attributes": {"email": email}}}, **attrs}}})
        assert resp.status_code == 202, resp.text

    event("setup@example.com", backfill=True)
    metric_id = raw.get("/api/metrics").json()["data"][0]["id"]
    flow = raw.post("/api/flows", json={"data": {"type": "flow", "attributes": {"name": "Welcome", "definition": {
        "triggers": [{"type": "metric", "id": metric_id}], "entry_action_id": "a1",
        "actions": [{"temporary_id": "a1", "type": "send-email", "links": {"next": None},
                     "data": {"message": {"subject_line": "Welcome", "name": "Welcome"}}}]}}}})
    assert flow.status_code == 201, flow.text
    fid = flow.json()["data"]["id"]
    live = raw.patch(f"/api/flows/{fid}", json={"data": {"type": "flow", "id": fid, "attributes": {"status": "live"}}})
    assert live.status_code == 200, live.text
    event("fresh@example.com")
    entries = [e for e in sb.outbox() if e.get("flow_id") == fid]
    assert [(e["to"], e["status"]) for e in entries] == [("fresh@example.com", "scheduled")]


def test_removing_the_email_removes_implied_consent(raw: httpx.Client) -> None:
    pid = make_profile(raw, email="x@example.com", external_id="x-1")
    assert marketing(raw, pid)["can_receive_email_marketing"] is True
    body = {"data": {"type": "profile", "id": pid, "attributes": {"email": None}}}
    resp = raw.patch(f"/api/profiles/{pid}", json=body)
    assert resp.status_code == 200, resp.text
    assert marketing(raw, pid)["can_receive_email_marketing"] is False


# -- 2. bulk subscribe ------------------------------------------------------------------------------------
def test_consented_at_needs_historical_import(sb: Sandbox, raw: httpx.Client) -> None:
    item = sub_item({"email": "a@example.com", "subscriptions": email_sub(consented_at="2020-01-01T00:00:00Z")})
    err = error(raw.post("/api/profile-subscription-bulk-create-jobs", json=subscribe_body([item])))
    assert err["source"]["pointer"] == (
        "/data/attributes/profiles/data/0/attributes/subscriptions/email/marketing/consented_at")
    assert "historical_import" in err["detail"]
    sms = sub_item({"phone_number": "+15005550006",
                    "subscriptions": {"sms": {"marketing": {"consent": "SUBSCRIBED",
                                                            "consented_at": "2020-01-01T00:00:00Z"}}}})
    err = error(raw.post("/api/profile-subscription-bulk-create-jobs",
                         json=subscribe_body([sub_item({"email": "ok@example.com", "subscriptions": email_sub()}),
                                              sms])))
    assert err["source"]["pointer"].startswith("/data/attributes/profiles/data/1/attributes/subscriptions/sms")
    ok = raw.post("/api/profile-subscription-bulk-create-jobs", json=subscribe_body([item], historical_import=True))
    assert ok.status_code == 202, ok.text


def test_each_subscribed_profile_carries_the_channels_identifier(sb: Sandbox, raw: httpx.Client,
                                                                clock: ManualClock) -> None:
    known = make_profile(raw, email="known@example.com")
    post = lambda items: raw.post("/api/profile-subscription-bulk-create-jobs", json=subscribe_body(items))  # noqa: E731
    sms = {"sms": {"marketing": {"consent": "SUBSCRIBED"}}}
    err = error(post([sub_item({"subscriptions": sms}, pid="NOPE")]))  # unknown id, no phone
    assert err["source"]["pointer"].startswith("/data/attributes/profiles/data/0")
    err = error(post([sub_item({"subscriptions": sms}, pid=known)]))  # known id, no phone anywhere
    assert err["source"]["pointer"] == "/data/attributes/profiles/data/0/attributes/phone_number"
    err = error(post([sub_item({"email": "b@example.com", "subscriptions": email_sub()}),
                      sub_item({"subscriptions": email_sub()}, pid=known)]))  # id alone, email channel
    assert err["source"]["pointer"] == "/data/attributes/profiles/data/1/attributes/email"
    err = error(post([sub_item({"email": "c@example.com", "subscriptions": email_sub()}, pid="NOPE")]))
    assert err["source"]["pointer"] == "/data/attributes/profiles/data/0/id"
    run_due(sb, clock)
    profiles = raw.get("/api/profiles").json()["data"]
    assert [p["id"] for p in profiles] == [known]  # nothing was created
    ok = post([sub_item({"email": "known@example.com", "subscriptions": email_sub()}, pid=known)])
    assert ok.status_code == 202, ok.text


def test_subscribe_needs_a_profile_and_a_channel(raw: httpx.Client) -> None:
    err = error(raw.post("/api/profile-subscription-bulk-create-jobs", json=subscribe_body([])))
    assert err["source"]["pointer"] == "/data/attributes/profiles/data"
    err = error(raw.post("/api/profile-subscription-bulk-create-jobs",
                         json=subscribe_body([sub_item({"email": "a@example.com", "subscriptions": {}})])))
    assert err["source"]["pointer"] == "/data/attributes/profiles/data/0/attributes/subscriptions"
    err = error(raw.post("/api/profile-subscription-bulk-create-jobs", json=subscribe_body([
        sub_item({"email": "a@example.com", "subscriptions": email_sub()}),
        sub_item({"email": "b@example.com", "subscriptions": {"email": None, "sms": None}})])))
    assert err["source"]["pointer"] == "/data/attributes/profiles/data/1/attributes/subscriptions"
    unsub = {"data": {"type": "profile-subscription-bulk-delete-job", "attributes": {"profiles": {"data": []}}}}
    err = error(raw.post("/api/profile-subscription-bulk-delete-jobs", json=unsub))
    assert err["source"]["pointer"] == "/data/attributes/profiles/data"


# -- 3. identifiers on every profile-bearing write ----------------------------------------------------------
def event_body(profile: dict[str, Any], metric: str = "Viewed") -> dict[str, Any]:
    return {"data": {"type": "event", "attributes": {
        "properties": {}, "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
        "profile": {"data": {"type": "profile", "attributes": profile}}}}}


@pytest.mark.parametrize(("field", "value"), [("email", "not-an-email"), ("email", "a@b"),
                                              ("phone_number", "12345"), ("phone_number", "+1 500 555 0006")])
def test_events_refuse_identifiers_profile_writes_refuse(sb: Sandbox, raw: httpx.Client, field: str,
                                                         value: str) -> None:
    base = "/data/attributes/profile/data/attributes"
    err = error(raw.post("/api/events", json=event_body({field: value})))
    assert err["source"]["pointer"] == f"{base}/{field}"
    bulk = {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [
        {"type": "event-bulk-create", "attributes": {
            "profile": {"data": {"type": "profile", "attributes": {"email": "fine@example.com"}}},
            "events": {"data": [{"type": "event", "attributes": {
                "properties": {}, "metric": {"data": {"type": "metric", "attributes": {"name": "M"}}}}}]}}},
        {"type": "event-bulk-create", "attributes": {
            "profile": {"data": {"type": "profile", "attributes": {field: value}}},
            "events": {"data": [{"type": "event", "attributes": {
                "properties": {}, "metric": {"data": {"type": "metric", "attributes": {"name": "M"}}}}}]}}},
    ]}}}}
    err = error(raw.post("/api/event-bulk-create-jobs", json=bulk))
    entry = "/data/attributes/events-bulk-create/data/1/attributes"
    assert err["source"]["pointer"] == f"{entry}/profile/data/attributes/{field}"
    assert raw.get("/api/profiles").json()["data"] == []  # nothing stored


def test_client_writes_refuse_bad_identifiers(sb: Sandbox) -> None:
    from klaviyo_sandbox import PUBLIC_KEY

    with httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL,
                      headers={"revision": "2026-07-15", "Content-Type": "application/vnd.api+json"}) as pub:
        params = {"company_id": PUBLIC_KEY}
        err = error(pub.post("/client/events", params=params, json=event_body({"email": "bad"})))
        assert err["source"]["pointer"] == "/data/attributes/profile/data/attributes/email"
        sub = {"data": {"type": "subscription", "attributes": {"profile": {"data": {"type": "profile", "attributes": {
            "phone_number": "555-0100"}}}}, "relationships": {"list": {"data": {"type": "list", "id": "Xyz123"}}}}}
        err = error(pub.post("/client/subscriptions", params=params, json=sub))
        assert err["source"]["pointer"] == "/data/attributes/profile/data/attributes/phone_number"
        token = {"data": {"type": "push-token", "attributes": {
            "token": "tok", "platform": "ios", "vendor": "apns",
            "profile": {"data": {"type": "profile", "attributes": {"email": "nope"}}}}}}
        err = error(pub.post("/client/push-tokens", params=params, json=token))
        assert err["source"]["pointer"] == "/data/attributes/profile/data/attributes/email"


# -- 4. date-time, date and email formats in request bodies ---------------------------------------------------
def test_date_times_and_dates_are_checked_everywhere(sb: Sandbox, raw: httpx.Client, clock: ManualClock) -> None:
    coupon = raw.post("/api/coupons", json={"data": {"type": "coupon", "attributes": {"external_id": "SUMMER"}}})
    assert coupon.status_code == 201, coupon.text

    def code(expires: Any) -> httpx.Response:
        return raw.post("/api/coupon-codes", json={"data": {"type": "coupon-code", "attributes": {
            "unique_code": "ABC1", "expires_at": expires},
            "relationships": {"coupon": {"data": {"type": "coupon", "id": "SUMMER"}}}}})

    for bad in ("garbage", "2026-13-01T00:00:00Z", "2026-07-15", "15/07/2026 10:00", "2026-07-15T25:00:00Z"):
        err = error(code(bad))
        assert err["source"]["pointer"] == "/data/attributes/expires_at", bad
        assert "expires_at" in err["detail"] and "ISO 8601" in err["detail"]
    assert code("2026-07-15T10:00:00").status_code in (200, 201)  # naive: read as UTC

    lst = make_list(raw, "L", [make_profile(raw, email="a@example.com")])
    for strategy, pointer in (({"method": "static", "datetime": "not-a-date"}, "datetime"),
                              ({"method": "smart_send_time", "date": "garbage"}, "date"),
                              ({"method": "smart_send_time", "date": "2026-02-30"}, "date")):
        resp = raw.post("/api/campaigns", json={"data": {"type": "campaign", "attributes": {
            "name": "C", "audiences": {"included": [lst], "excluded": []}, "send_strategy": strategy,
            "campaign-messages": {"data": [{"type": "campaign-message", "attributes": {
                "definition": {"channel": "email", "content": {"subject": "s"}}}}]}}}})
        err = error(resp)
        assert err["source"]["pointer"] == f"/data/attributes/send_strategy/{pointer}", strategy
    cid = campaign(raw, [lst])
    patch = raw.patch(f"/api/campaigns/{cid}", json={"data": {"type": "campaign", "id": cid, "attributes": {
        "send_strategy": {"method": "static", "datetime": "soon"}}}})
    assert error(patch)["source"]["pointer"] == "/data/attributes/send_strategy/datetime"
    err = error(raw.post("/api/events", json={"data": {"type": "event", "attributes": {
        **event_body({"email": "a@example.com"})["data"]["attributes"], "time": "yesterday"}}}))
    assert err["source"]["pointer"] == "/data/attributes/time"


def test_email_fields_in_bodies_are_checked(sb: Sandbox, raw: httpx.Client) -> None:
    lst = make_list(raw, "L", [])
    for field in ("from_email", "reply_to_email"):
        resp = raw.post("/api/campaigns", json={"data": {"type": "campaign", "attributes": {
            "name": "C", "audiences": {"included": [lst], "excluded": []},
            "campaign-messages": {"data": [{"type": "campaign-message", "attributes": {"definition": {
                "channel": "email", "content": {"subject": "s", field: "not-email"}}}}]}}}})
        err = error(resp)
        assert err["source"]["pointer"].endswith(f"/definition/content/{field}"), err
        assert "not-email" in err["detail"]
    cid = campaign(raw, [lst])
    mid = raw.get(f"/api/campaigns/{cid}/campaign-messages").json()["data"][0]["id"]
    patch = raw.patch(f"/api/campaign-messages/{mid}", json={"data": {"type": "campaign-message", "id": mid,
        "attributes": {"definition": {"channel": "email", "content": {"from_email": "shop@@example.com"}}}}})
    assert error(patch)["source"]["pointer"] == "/data/attributes/definition/content/from_email"


# -- 5. case ------------------------------------------------------------------------------------------------
def test_only_emails_ignore_case(sb: Sandbox, raw: httpx.Client, clock: ManualClock) -> None:
    upper = make_profile(raw, external_id="ABC")
    lower = make_profile(raw, external_id="abc")  # another profile, not a 409
    assert upper != lower
    found = raw.get("/api/profiles", params={"filter": "equals(external_id,'abc')"}).json()["data"]
    assert [p["id"] for p in found] == [lower]
    make_profile(raw, email="Ada@Example.com")
    dup = raw.post("/api/profiles", json={"data": {"type": "profile", "attributes": {"email": "ada@example.com"}}})
    assert error(dup, 409)["code"] == "duplicate_profile"
    for name in ("Placed Order", "placed order", "Placed Order"):
        body = event_body({"email": "buyer@example.com"}, name)
        body["data"]["attributes"]["unique_id"] = "order-1"
        assert raw.post("/api/events", json=body).status_code == 202
    names = sorted(m["attributes"]["name"] for m in raw.get("/api/metrics").json()["data"])
    assert names == ["Placed Order", "placed order"]
    assert len(raw.get("/api/events").json()["data"]) == 2  # one per metric: unique_id is per metric
    # an event by external_id finds only the exact one
    ext = raw.post("/api/events", json=event_body({"external_id": "ABC"}, "Viewed"))
    assert ext.status_code == 202
    events = raw.get("/api/events", params={"filter": f"equals(profile_id,'{upper}')"}).json()["data"]
    assert len(events) == 1


def test_push_tokens_are_case_sensitive(sb: Sandbox, raw: httpx.Client) -> None:
    pid = make_profile(raw, email="app@example.com")
    for token in ("TokenA", "tokena"):
        resp = raw.post("/api/push-tokens", json={"data": {"type": "push-token", "attributes": {
            "token": token, "platform": "ios", "vendor": "apns", "enablement_status": "AUTHORIZED",
            "background": "AVAILABLE",
            "profile": {"data": {"type": "profile", "attributes": {"email": "app@example.com"}}}}}})
        assert resp.status_code == 202, resp.text
    tokens = sorted(t["attributes"]["token"] for t in raw.get("/api/push-tokens").json()["data"])
    assert tokens == ["TokenA", "tokena"]
    assert pid


# -- 6. cursors -----------------------------------------------------------------------------------------------
def cursor_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["page[cursor]"][0]


def test_a_cursor_only_works_with_the_query_that_made_it(raw: httpx.Client) -> None:
    pids = [make_profile(raw, email=f"p{i}@example.com") for i in range(5)]
    lst = make_list(raw, "L", pids)
    first = raw.get(f"/api/lists/{lst}/profiles", params={"page[size]": 2}).json()
    cursor = cursor_of(first["links"]["next"])
    same = raw.get(f"/api/lists/{lst}/profiles", params={"page[size]": 2, "page[cursor]": cursor})
    assert same.status_code == 200
    other_list = make_list(raw, "M", pids)
    for path, params in (("/api/profiles", {"page[size]": 2}),
                         (f"/api/lists/{lst}/profiles", {"page[size]": 3}),
                         (f"/api/lists/{lst}/profiles", {}),
                         (f"/api/lists/{other_list}/profiles", {"page[size]": 2}),
                         (f"/api/lists/{lst}/profiles", {"page[size]": 2, "filter": "equals(email,'p1@example.com')"})):
        err = error(raw.get(path, params={**params, "page[cursor]": cursor}))
        assert err["source"] == {"parameter": "page[cursor]"}, (path, params)
        assert "first page" in err["detail"]
    by_created = raw.get("/api/profiles", params={"page[size]": 2}).json()["links"]["next"]
    err = error(raw.get("/api/profiles", params={"page[size]": 2, "sort": "email",
                                                 "page[cursor]": cursor_of(by_created)}))
    assert err["source"] == {"parameter": "page[cursor]"}
    handmade = base64.urlsafe_b64encode(json.dumps({"o": 2}).encode()).decode().rstrip("=")
    assert error(raw.get("/api/profiles", params={"page[cursor]": handmade}))["source"] == {"parameter": "page[cursor]"}


def test_following_next_links_visits_every_item_once_even_when_items_change(raw: httpx.Client) -> None:
    pids = [make_profile(raw, email=f"p{i}@example.com") for i in range(7)]
    seen: list[str] = []
    url: str | None = "/api/profiles?page[size]=3&sort=email"
    added = False
    while url:
        page = raw.get(url).json()
        seen += [p["id"] for p in page["data"]]
        url = page["links"].get("next")
        if url and not added:  # a profile that sorts first arrives between pages (an offset would repeat one)
            added = True
            make_profile(raw, email="a0@example.com")
    assert seen == pids and len(seen) == len(set(seen))


def test_a_next_link_continues_after_its_item_when_it_and_those_before_it_are_gone(raw: httpx.Client) -> None:
    lists = [make_list(raw, f"L{i:02d}", []) for i in range(15)]
    first = raw.get("/api/lists", params={"page[size]": 5, "sort": "name"}).json()
    third = raw.get(first["links"]["next"]).json()["links"]["next"]  # after L09
    for list_id in lists[:11]:  # L09 and everything before it goes (an offset of 10 would now skip L11-L14)
        assert raw.delete(f"/api/lists/{list_id}").status_code == 204
    page = raw.get(third)
    assert page.status_code == 200, page.text
    assert [x["attributes"]["name"] for x in page.json()["data"]] == ["L11", "L12", "L13", "L14"]
    assert set(page.json()["links"]) == {"self"}


def test_a_next_link_past_the_end_after_deletions_is_an_empty_page_not_a_500(raw: httpx.Client) -> None:
    lists = [make_list(raw, f"L{i:02d}", []) for i in range(15)]
    first = raw.get("/api/lists", params={"page[size]": 5, "sort": "name"}).json()
    third = raw.get(first["links"]["next"]).json()["links"]["next"]  # after L09
    for list_id in lists[8:]:  # L09 and everything after it goes
        assert raw.delete(f"/api/lists/{list_id}").status_code == 204
    page = raw.get(third)
    assert page.status_code == 200, page.text
    assert page.json()["data"] == [] and "next" not in page.json()["links"]
    before = raw.get(page.json()["links"]["prev"]).json()  # the last full page
    assert [x["attributes"]["name"] for x in before["data"]] == ["L03", "L04", "L05", "L06", "L07"]
    assert "next" not in before["links"]
    earliest = raw.get(before["links"]["prev"]).json()
    assert [x["attributes"]["name"] for x in earliest["data"]] == ["L00", "L01", "L02"]
    assert "prev" not in earliest["links"]


@pytest.mark.parametrize("payload", ['{"o":Infinity,"q":"x"}', '{"o":1e400,"q":"x"}', "[" * 5000 + "]" * 5000])
def test_a_tampered_cursor_is_400_not_500(raw: httpx.Client, payload: str) -> None:
    cursor = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    assert error(raw.get("/api/profiles", params={"page[cursor]": cursor}))["source"] == {"parameter": "page[cursor]"}


# -- 7. Content-Type and integer parameters ---------------------------------------------------------------------
def test_a_body_without_content_type_is_415(sb: Sandbox, raw: httpx.Client) -> None:
    body = json.dumps({"data": {"type": "list", "attributes": {"name": "L"}}}).encode()
    headers = {k: v for k, v in raw.headers.items() if k.lower() != "content-type"}
    with httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL, headers=headers) as bare:
        resp = bare.post("/api/lists", content=body)
        err = error(resp, 415)
        assert err["code"] == "unsupported_media_type" and "Content-Type" in err["detail"]
        assert bare.get("/api/lists").json()["data"] == []


@pytest.mark.parametrize("size", ["+5", " 5", "5 ", "5_0", "٥"])
def test_integer_parameters_are_digits_only(raw: httpx.Client, size: str) -> None:
    err = error(raw.get("/api/profiles", params={"page[size]": size}))
    assert err["source"] == {"parameter": "page[size]"}


@pytest.mark.parametrize("when", ["2024-13-01T00:00:00Z", "2024-02-30", "2024-01-01T24:00:00Z"])
def test_a_filter_datetime_that_is_no_real_moment_is_400_not_500(raw: httpx.Client, when: str) -> None:
    res = raw.get("/api/profiles", params={"filter": f"greater-than(updated,{when})"})
    assert res.status_code == 400
    err = res.json()["errors"][0]
    assert err["source"] == {"parameter": "filter"} and "is not a real date and time" in err["detail"]



def _event(**attributes: Any) -> str:
    return json.dumps({"data": {"type": "event", "attributes": {
        "metric": {"data": {"type": "metric", "attributes": {"name": "Big"}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": "big@example.com"}}},
        "properties": {}, **attributes}}})


@pytest.mark.parametrize(("attributes", "pointer"), [
    ({"value": 10**400}, "/data/attributes/value"),
    ({"properties": {"items": [1, -(10**309)]}}, "/data/attributes/properties/items/1"),
])
def test_a_number_no_double_holds_is_400_naming_it(raw: httpx.Client, attributes: dict[str, Any], pointer: str) -> None:
    """Accepted, it broke every report that added it up (a 500 from metric aggregates)."""
    res = raw.post("/api/events", content=_event(**attributes))
    assert res.status_code == 400
    err = res.json()["errors"][0]
    assert err["source"]["pointer"] == pointer and "too large" in err["detail"]
    assert raw.get("/api/events").json()["data"] == []


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_numbers_json_does_not_have_are_a_parse_error(raw: httpx.Client, literal: str) -> None:
    res = raw.post("/api/events", content=_event().replace('"properties": {}', f'"properties": {{"a": {literal}}}'))
    assert res.status_code == 400 and res.json()["errors"][0]["code"] == "parse_error"



def test_a_filter_nested_thousands_deep_is_400_not_500(raw: httpx.Client) -> None:
    res = raw.get("/api/profiles", params={"filter": "and(" * 3000 + "equals(email,'a@b.co')" + ")" * 3000})
    assert res.status_code == 400 and "nested deeper" in res.json()["errors"][0]["detail"]



@pytest.mark.parametrize(("opener", "closer"), [(b"[", b"]"), (b'{"a":', b"}")])
def test_a_body_nested_thousands_deep_is_400_not_500(raw: httpx.Client, opener: bytes, closer: bytes) -> None:
    deep = opener * 3000 + b"1" + closer * 3000
    body = b'{"data": {"type": "profile", "attributes": {"email": "deep@example.com", "properties": {"a": ' + deep
    res = raw.post("/api/profiles", content=body + b"}}}}")
    assert res.status_code == 400 and "nested too deeply" in res.json()["errors"][0]["detail"]



@pytest.mark.parametrize(("escaped", "why"), [("\\udc80", "lone surrogate"), ("a\\u0000b", "NUL character")])
def test_text_no_field_can_keep_is_400_and_never_stored(raw: httpx.Client, escaped: str, why: str) -> None:
    """Stored, a lone surrogate broke every later listing of the resource with a 500 (UTF-8 cannot
    encode it); a NUL, which the toolkit already refuses, is no text a field keeps either."""
    named = '{"data": {"type": "list", "attributes": {"name": "NAME"}}}'
    keyed = '{"data": {"type": "profile", "attributes": {"email": "u@example.com", "properties": {"NAME": 1}}}}'
    for body, pointer in ((named.replace("NAME", escaped), "/data/attributes/name"),
                          (keyed.replace("NAME", escaped), "/data/attributes/properties/")):
        res = raw.post("/api/lists" if '"list"' in body else "/api/profiles", content=body.encode())
        assert res.status_code == 400, res.text
        err = res.json()["errors"][0]
        assert err["source"]["pointer"].startswith(pointer) and why in err["detail"]
    assert raw.get("/api/lists").status_code == 200 and raw.get("/api/profiles").json()["data"] == []
    paired = raw.post("/api/lists", content=named.replace("NAME", "\\ud83c\\udf32 Trail").encode())
    assert paired.status_code == 201 and paired.json()["data"]["attributes"]["name"] == "\U0001f332 Trail"
