"""Campaigns, campaign messages, templates and sending, through real HTTP to an in-process sandbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_sandbox._store import Resource
from klaviyo_sandbox.domains._common import new_profile, set_email_consent, suppress_email
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import KlaviyoAPIError

START = dt.datetime(2026, 7, 20, 14, 0, tzinfo=dt.UTC).timestamp()
HEADERS = {"Authorization": "Klaviyo-API-Key pk_sandbox_demo", "revision": "2026-07-15",
           "Content-Type": "application/vnd.api+json"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


# -- helpers ----------------------------------------------------------------------------------------------
def person(sb: Sandbox, email: str, *, subscribed: bool = True, suppressed: bool = False) -> Resource:
    now = sb.clock.time()
    profile = new_profile(sb.services, {"email": email}, now)
    if subscribed:
        set_email_consent(profile, "SUBSCRIBED", now)
    if suppressed:
        suppress_email(profile, "HARD_BOUNCE", now)
    sb.store.put(profile)
    return profile


def make_list(client: Any, name: str, profiles: list[Resource]) -> str:
    list_id = str(client.call("create_list", name=name).body["data"]["id"])
    if profiles:
        client.call("add_profiles_to_list", id=list_id, profile_ids=[p.id for p in profiles])
    return list_id


def make_template(client: Any, html: str = "<p>Hi {{ first_name|default:'there' }}</p>") -> str:
    return str(client.call("create_template", name="Newsletter", editor_type="CODE", html=html).body["data"]["id"])


def make_campaign(client: Any, included: list[str], *, excluded: list[str] | None = None, channel: str = "email",
                  subject: str | None = "Summer sale", template: bool = True, **attrs: Any) -> tuple[str, str]:
    """(campaign id, message id) of a draft, with a template assigned unless told not to."""
    content = {"subject": subject} if channel == "email" else {"body": "Sale today"}
    body = client.call("create_campaign", name=attrs.pop("name", "Summer"),
                       audiences={"included": included, "excluded": excluded or []},
                       campaign_messages=[{"definition": {"channel": channel, "content": content}}], **attrs).body
    cid = body["data"]["id"]
    mid = body["data"]["relationships"]["campaign-messages"]["data"][0]["id"]
    if template and channel == "email":
        client.call("assign_template_to_campaign_message", id=mid, template_id=make_template(client))
    return cid, mid


def run_jobs(sb: Sandbox, clock: ManualClock, seconds: float = 1.0) -> None:
    clock.advance(seconds)
    sb.tick()


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/vnd.api+json")
    return dict(response.json()["errors"][0])


def status_of(client: Any, cid: str) -> str:
    return str(client.call("get_campaign", id=cid).body["data"]["attributes"]["status"])


# -- creating and reading --------------------------------------------------------------------------------
def test_create_campaign_builds_a_draft_with_its_message(client: Any, sb: Sandbox) -> None:
    list_id = make_list(client, "Newsletter", [])
    body = client.call("create_campaign", name="July news", audiences={"included": [list_id]},
                       campaign_messages=[{"definition": {"channel": "email", "content": {"subject": "Hello"}}}]).body
    attrs = body["data"]["attributes"]
    assert attrs["status"] == "Draft" and attrs["archived"] is False
    assert attrs["send_strategy"] == {"method": "immediate"}
    assert attrs["send_options"] == {"use_smart_sending": True}
    assert attrs["tracking_options"]["is_tracking_opens"] is True
    assert attrs["audiences"] == {"included": [list_id], "excluded": []}
    assert attrs["send_time"] is None
    links = body["data"]["relationships"]["campaign-messages"]["data"]
    assert len(links) == 1 and links[0]["type"] == "campaign-message"
    message = client.call("get_campaign_message", id=links[0]["id"], include=["campaign"]).body
    definition = message["data"]["attributes"]["definition"]
    assert definition["label"] == "July news" and definition["content"]["subject"] == "Hello"
    assert message["data"]["relationships"]["campaign"]["data"]["id"] == body["data"]["id"]
    assert message["included"][0]["id"] == body["data"]["id"]
    listed = client.call("get_messages_for_campaign", id=body["data"]["id"]).body["data"]
    assert [m["id"] for m in listed] == [links[0]["id"]]


def test_create_campaign_rejects_unknown_audiences_and_missing_messages(raw: httpx.Client) -> None:
    def post(attributes: dict[str, Any]) -> httpx.Response:
        return raw.post("/api/campaigns", json={"data": {"type": "campaign", "attributes": attributes}})

    message = {"data": [{"type": "campaign-message", "attributes": {"definition": {"channel": "email"}}}]}
    reply = post({"name": "x", "audiences": {"included": ["nope"]}, "campaign-messages": message})
    assert reply.status_code == 400
    err = error_of(reply)
    assert err["source"]["pointer"] == "/data/attributes/audiences/included/0"
    assert "GET /api/lists" in err["detail"]
    reply = post({"name": "x", "audiences": {"included": []}, "campaign-messages": {"data": []}})
    assert reply.status_code == 400
    assert error_of(reply)["source"]["pointer"] == "/data/attributes/campaign-messages/data"
    reply = post({"name": "x", "audiences": {"included": []}})
    assert reply.status_code == 400
    assert "campaign-messages" in error_of(reply)["detail"]


def test_a_campaign_goes_to_at_most_15_lists_or_segments(client: Any, raw: httpx.Client) -> None:
    lists = [make_list(client, f"L{i}", []) for i in range(16)]
    cid, _ = make_campaign(client, lists[:15])  # the most Klaviyo sends one campaign to
    with pytest.raises(KlaviyoAPIError) as err:
        make_campaign(client, lists)
    assert (err.value.status, err.value.source["pointer"]) == (400, "/data/attributes/audiences/included")
    assert "at most 15" in (err.value.detail or "")
    patched = raw.patch(f"/api/campaigns/{cid}", json={"data": {"type": "campaign", "id": cid, "attributes": {
        "audiences": {"included": lists}}}})
    assert patched.status_code == 400
    assert error_of(patched)["source"]["pointer"] == "/data/attributes/audiences/included"
    kept = client.call("get_campaign", id=cid).body["data"]["attributes"]["audiences"]["included"]
    assert kept == lists[:15]


def test_get_campaigns_requires_a_channel_filter(client: Any, raw: httpx.Client) -> None:
    list_id = make_list(client, "All", [])
    email_id, _ = make_campaign(client, [list_id], name="Email one", template=False)
    sms_id, _ = make_campaign(client, [list_id], name="Text one", channel="sms")
    missing = raw.get("/api/campaigns")
    assert missing.status_code == 400 and error_of(missing)["source"]["parameter"] == "filter"
    reply = raw.get("/api/campaigns", params={"filter": "contains(name,'one')"})
    assert reply.status_code == 400
    err = error_of(reply)
    assert err["source"]["parameter"] == "filter"
    assert "equals(messages.channel,'email')" in err["detail"]
    email = client.call("get_campaigns", filter="equals(messages.channel,'email')").body["data"]
    assert [c["id"] for c in email] == [email_id]
    assert email[0]["relationships"]["campaign-messages"]["data"][0]["type"] == "campaign-message"
    sms = client.call("get_campaigns", filter="and(equals(messages.channel,'sms'),contains(name,'Text'))").body
    assert [c["id"] for c in sms["data"]] == [sms_id]
    none = client.call("get_campaigns", filter="and(equals(messages.channel,'email'),equals(status,'Sent'))")
    assert none.body["data"] == []


def test_get_campaigns_sorts_and_includes_messages(client: Any, clock: ManualClock) -> None:
    list_id = make_list(client, "All", [])
    first, first_msg = make_campaign(client, [list_id], name="B first", template=False)
    clock.advance(60)
    second, _ = make_campaign(client, [list_id], name="A second", template=False)
    body = client.call("get_campaigns", filter="equals(messages.channel,'email')", sort="-created_at",
                       include=["campaign-messages"]).body
    assert [c["id"] for c in body["data"]] == [second, first]
    assert first_msg in {i["id"] for i in body["included"]}
    by_name = client.call("get_campaigns", filter="equals(messages.channel,'email')", sort="name").body["data"]
    assert [c["id"] for c in by_name] == [second, first]


# -- sending ------------------------------------------------------------------------------------------------
def test_estimate_and_send_reach_exactly_the_eligible_audience(client: Any, sb: Sandbox, clock: ManualClock) -> None:
    ann, bob = person(sb, "ann@example.com"), person(sb, "bob@example.com")
    cat = person(sb, "cat@example.com", subscribed=False)
    dan = person(sb, "dan@example.com", suppressed=True)
    eve = person(sb, "eve@example.com")
    included = make_list(client, "Newsletter", [ann, bob, cat, dan, eve])
    excluded = make_list(client, "Staff", [eve])
    cid, mid = make_campaign(client, [included], excluded=[excluded])
    estimate = client.call("get_campaign_recipient_estimation", id=cid).body["data"]
    assert estimate == {**estimate, "id": cid, "type": "campaign-recipient-estimation"}
    assert estimate["attributes"]["estimated_recipient_count"] == 3  # never-subscribed cat has implied consent

    job = client.call("send_campaign", id=cid)
    assert job.status == 202
    assert job.body["data"] == {**job.body["data"], "type": "campaign-send-job", "id": cid}
    assert job.body["data"]["attributes"]["status"] == "queued"
    assert status_of(client, cid) == "Sending"
    assert sb.outbox(campaign_id=cid) == []

    run_jobs(sb, clock)
    assert client.call("get_campaign_send_job", id=cid).body["data"]["attributes"]["status"] == "complete"
    campaign = client.call("get_campaign", id=cid).body["data"]["attributes"]
    assert campaign["status"] == "Sent" and campaign["send_time"] is not None
    outbox = {entry["to"]: entry for entry in sb.outbox(campaign_id=cid)}
    assert set(outbox) == {"ann@example.com", "bob@example.com", "cat@example.com", "dan@example.com"}
    scheduled = [e for e in outbox.values() if e["status"] == "scheduled"]
    assert sorted(e["to"] for e in scheduled) == ["ann@example.com", "bob@example.com", "cat@example.com"]
    for entry in scheduled:
        assert entry["source"] == "campaign" and entry["campaign_message_id"] == mid
        assert entry["subject"] == "Summer sale" and entry["channel"] == "email"
    assert outbox["dan@example.com"]["skip_reason"] == "suppressed"
    message = client.call("get_campaign_message", id=mid).body["data"]["attributes"]
    assert message["send_times"][0]["is_local"] is False


def test_a_static_send_waits_for_its_time(client: Any, sb: Sandbox, clock: ManualClock) -> None:
    ann = person(sb, "ann@example.com")
    list_id = make_list(client, "Newsletter", [ann])
    send_at = "2026-07-21T15:00:00+00:00"
    cid, _ = make_campaign(client, [list_id], send_strategy={"method": "static", "datetime": send_at})
    client.call("send_campaign", id=cid)
    assert status_of(client, cid) == "Scheduled"
    run_jobs(sb, clock)
    [entry] = sb.outbox(campaign_id=cid)
    assert entry["status"] == "scheduled"
    assert dt.datetime.fromisoformat(entry["send_at"]) == dt.datetime.fromisoformat(send_at)
    assert status_of(client, cid) == "Scheduled"
    clock.advance(2 * 86_400)
    assert status_of(client, cid) == "Sent"


def test_a_local_send_reaches_each_recipient_at_their_own_time(client: Any, sb: Sandbox, clock: ManualClock) -> None:
    tokyo, new_york = person(sb, "tokyo@example.com"), person(sb, "ny@example.com")
    tokyo.attributes["location"] = {"timezone": "Asia/Tokyo"}
    new_york.attributes["location"] = {"timezone": "America/New_York"}
    list_id = make_list(client, "Everyone", [tokyo, new_york])
    strategy = {"method": "static", "datetime": "2026-07-21T15:00:00+00:00", "options": {"is_local": True}}
    cid, mid = make_campaign(client, [list_id], send_strategy=strategy)
    client.call("send_campaign", id=cid)
    run_jobs(sb, clock)
    times = {e["to"]: dt.datetime.fromisoformat(e["send_at"]) for e in sb.outbox(campaign_id=cid)}
    assert times == {"tokyo@example.com": dt.datetime(2026, 7, 21, 6, tzinfo=dt.UTC),
                     "ny@example.com": dt.datetime(2026, 7, 21, 19, tzinfo=dt.UTC)}
    assert client.call("get_campaign_message", id=mid).body["data"]["attributes"]["send_times"][0]["is_local"] is True
    clock.advance(86_400)  # Tokyo's 15:00 has passed, New York's has not
    assert status_of(client, cid) == "Scheduled"
    clock.advance(6 * 3600)
    assert status_of(client, cid) == "Sent"


def test_a_campaign_is_sent_once(client: Any, sb: Sandbox, clock: ManualClock, raw: httpx.Client) -> None:
    list_id = make_list(client, "Newsletter", [person(sb, "ann@example.com")])
    cid, _ = make_campaign(client, [list_id])
    client.call("send_campaign", id=cid)
    run_jobs(sb, clock)
    again = raw.post("/api/campaign-send-jobs", json={"data": {"type": "campaign-send-job", "id": cid}})
    assert again.status_code == 400
    err = error_of(again)
    assert err["source"]["pointer"] == "/data/id" and "'Sent'" in err["detail"] and "campaign-clone" in err["detail"]
    assert len(sb.outbox(campaign_id=cid)) == 1


def test_send_needs_a_template_a_subject_and_an_audience(client: Any, sb: Sandbox, raw: httpx.Client) -> None:
    list_id = make_list(client, "Newsletter", [person(sb, "ann@example.com")])

    def send(cid: str) -> dict[str, Any]:
        reply = raw.post("/api/campaign-send-jobs", json={"data": {"type": "campaign-send-job", "id": cid}})
        assert reply.status_code == 400
        return error_of(reply)

    no_template, _ = make_campaign(client, [list_id], template=False)
    assert "campaign-message-assign-template" in send(no_template)["detail"]
    no_subject, _ = make_campaign(client, [list_id], subject=None)
    assert "subject" in send(no_subject)["detail"]
    no_audience, _ = make_campaign(client, [])
    err = send(no_audience)
    assert err["source"]["pointer"] == "/data/id" and "audiences.included" in err["detail"]
    past, _ = make_campaign(client, [list_id], send_strategy={"method": "static", "datetime": "2026-07-01T00:00:00Z"})
    assert "in the past" in send(past)["detail"]
    missing = raw.post("/api/campaign-send-jobs", json={"data": {"type": "campaign-send-job", "id": "NOPE"}})
    assert missing.status_code == 404
    assert sb.outbox() == []


def test_cancel_and_revert_stop_messages_that_have_not_gone_out(client: Any, sb: Sandbox, clock: ManualClock,
                                                                raw: httpx.Client) -> None:
    list_id = make_list(client, "Newsletter", [person(sb, "ann@example.com")])
    later = {"method": "static", "datetime": "2026-07-22T12:00:00+00:00"}
    cid, _ = make_campaign(client, [list_id], send_strategy=later)
    client.call("send_campaign", id=cid)
    run_jobs(sb, clock)
    client.call("cancel_campaign_send", id=cid, action="revert")
    assert status_of(client, cid) == "Draft"
    [entry] = sb.outbox(campaign_id=cid)
    assert entry["status"] == "skipped" and entry["skip_reason"] == "campaign reverted to draft"

    client.call("send_campaign", id=cid)  # a reverted draft can go again
    client.call("cancel_campaign_send", id=cid, action="cancel")  # before its job ran
    assert status_of(client, cid) == "Cancelled"
    assert client.call("get_campaign_send_job", id=cid).body["data"]["attributes"]["status"] == "cancelled"
    run_jobs(sb, clock)
    assert [e["status"] for e in sb.outbox(campaign_id=cid)] == ["skipped"]

    sent, _ = make_campaign(client, [list_id], name="Now", send_options={"use_smart_sending": False})
    client.call("send_campaign", id=sent)
    run_jobs(sb, clock)
    reply = raw.patch(f"/api/campaign-send-jobs/{sent}", json={
        "data": {"type": "campaign-send-job", "id": sent, "attributes": {"action": "cancel"}}})
    assert reply.status_code == 400 and "'Sent'" in error_of(reply)["detail"]


def test_smart_sending_skips_recent_recipients(client: Any, sb: Sandbox, clock: ManualClock) -> None:
    ann = person(sb, "ann@example.com")
    list_id = make_list(client, "Newsletter", [ann])
    first, _ = make_campaign(client, [list_id], name="First")
    client.call("send_campaign", id=first)
    run_jobs(sb, clock)
    second, _ = make_campaign(client, [list_id], name="Second")
    client.call("send_campaign", id=second)
    run_jobs(sb, clock)
    [skipped] = sb.outbox(campaign_id=second)
    assert skipped["status"] == "skipped" and skipped["skip_reason"].startswith("smart sending")
    third, _ = make_campaign(client, [list_id], name="Third", send_options={"use_smart_sending": False})
    client.call("send_campaign", id=third)
    run_jobs(sb, clock)
    assert [e["status"] for e in sb.outbox(campaign_id=third)] == ["scheduled"]
    clock.advance(17 * 3600)
    fourth, _ = make_campaign(client, [list_id], name="Fourth")
    client.call("send_campaign", id=fourth)
    run_jobs(sb, clock)
    assert [e["status"] for e in sb.outbox(campaign_id=fourth)] == ["scheduled"]


def test_segment_audiences_and_estimation_refresh(client: Any, sb: Sandbox, clock: ManualClock) -> None:
    pro, free = person(sb, "pro@example.com"), person(sb, "free@example.com")
    pro.attributes["properties"] = {"plan": "pro"}
    free.attributes["properties"] = {"plan": "free"}
    condition = {"type": "profile-property", "property": "properties['plan']",
                 "filter": {"type": "string", "operator": "equals", "value": "pro"}}
    segment = client.call("create_segment", name="Pro", definition={"condition_groups": [{"conditions": [condition]}]})
    cid, _ = make_campaign(client, [segment.body["data"]["id"]])
    assert client.call("get_campaign_recipient_estimation", id=cid).body["data"]["attributes"] == {
        "estimated_recipient_count": 1}
    later = person(sb, "later@example.com")
    later.attributes["properties"] = {"plan": "pro"}
    stale = client.call("get_campaign_recipient_estimation", id=cid).body["data"]["attributes"]
    assert stale["estimated_recipient_count"] == 1  # stored until refreshed, as in Klaviyo
    job = client.call("refresh_campaign_recipient_estimation", id=cid)
    assert job.status == 202 and job.body["data"]["attributes"]["status"] == "queued"
    run_jobs(sb, clock)
    estimation_job = client.call("get_campaign_recipient_estimation_job", id=cid).body["data"]
    assert estimation_job["attributes"]["status"] == "complete"
    fresh = client.call("get_campaign_recipient_estimation", id=cid).body["data"]["attributes"]
    assert fresh["estimated_recipient_count"] == 2


# -- editing ------------------------------------------------------------------------------------------------
def test_only_drafts_change_or_are_deleted(client: Any, sb: Sandbox, clock: ManualClock, raw: httpx.Client) -> None:
    list_id = make_list(client, "Newsletter", [person(sb, "ann@example.com")])
    other = make_list(client, "Other", [])
    cid, mid = make_campaign(client, [list_id])
    updated = client.call("update_campaign", id=cid, name="Renamed", audiences={"included": [other]}).body
    assert updated["data"]["attributes"]["name"] == "Renamed"
    assert updated["data"]["attributes"]["audiences"] == {"included": [other], "excluded": []}
    client.call("update_campaign", id=cid, audiences={"included": [list_id]})
    client.call("send_campaign", id=cid)
    run_jobs(sb, clock)
    reply = raw.patch(f"/api/campaigns/{cid}", json={"data": {"type": "campaign", "id": cid,
                                                             "attributes": {"audiences": {"included": [other]}}}})
    assert reply.status_code == 400
    assert error_of(reply)["source"]["pointer"] == "/data/attributes/audiences"
    assert client.call("update_campaign", id=cid, name="Still renamable").body["data"]["attributes"]["status"] == "Sent"
    reply = raw.delete(f"/api/campaigns/{cid}")
    assert reply.status_code == 400 and "only Draft" in error_of(reply)["detail"]

    draft, draft_msg = make_campaign(client, [list_id], name="Draft")
    assert raw.delete(f"/api/campaigns/{draft}").status_code == 204
    assert raw.get(f"/api/campaigns/{draft}").status_code == 404
    assert raw.get(f"/api/campaign-messages/{draft_msg}").status_code == 404
    assert raw.get(f"/api/campaign-messages/{mid}").status_code == 200


def test_update_campaign_message_merges_content_and_keeps_its_channel(client: Any, raw: httpx.Client) -> None:
    list_id = make_list(client, "Newsletter", [])
    _, mid = make_campaign(client, [list_id], template=False)
    body = client.call("update_campaign_message", id=mid,
                       definition={"channel": "email", "content": {"preview_text": "Ends Sunday"}}).body
    content = body["data"]["attributes"]["definition"]["content"]
    assert content["subject"] == "Summer sale" and content["preview_text"] == "Ends Sunday"
    reply = raw.patch(f"/api/campaign-messages/{mid}", json={"data": {
        "type": "campaign-message", "id": mid, "attributes": {"definition": {"channel": "sms"}}}})
    assert reply.status_code == 400
    assert error_of(reply)["source"]["pointer"] == "/data/attributes/definition/channel"


@pytest.mark.parametrize(("given", "kind"), [({"content": {"title": "Back", "body": "In stock"}}, "standard"),
                                              ({"notification_type": "silent", "kv_pairs": {"k": "v"}}, "silent")])
def test_a_push_message_has_its_notification_type_in_every_answer(
    sb: Sandbox, raw: httpx.Client, given: dict[str, Any], kind: str
) -> None:
    """The create schema defaults notification_type to "standard"; the message Klaviyo answers with
    always has one (it is required there). The sandbox validates its answers here (``sb``), so a
    message stored without it was a 500 on every read, and a spec-invalid document without that check."""
    list_id = raw.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": "App users"}}}).json()
    message = {"type": "campaign-message", "attributes": {"definition": {"channel": "mobile_push", **given}}}
    made = raw.post("/api/campaigns", json={"data": {"type": "campaign", "attributes": {
        "name": "Push", "audiences": {"included": [list_id["data"]["id"]]}, "campaign-messages": {"data": [message]}}}})
    assert made.status_code == 201, made.text
    cid = made.json()["data"]["id"]
    mid = made.json()["data"]["relationships"]["campaign-messages"]["data"][0]["id"]
    clone = raw.post("/api/campaign-clone", json={"data": {"type": "campaign", "id": cid, "attributes": {}}})
    assert clone.status_code == 201, clone.text
    for campaign in (cid, clone.json()["data"]["id"]):
        listed = raw.get(f"/api/campaigns/{campaign}/campaign-messages")
        assert listed.status_code == 200, listed.text
        assert listed.json()["data"][0]["attributes"]["definition"]["notification_type"] == kind
    one = raw.get(f"/api/campaign-messages/{mid}")
    assert one.status_code == 200 and one.json()["data"]["attributes"]["definition"]["notification_type"] == kind


def test_clone_copies_the_campaign_message_and_template(client: Any) -> None:
    list_id = make_list(client, "Newsletter", [])
    cid, mid = make_campaign(client, [list_id], name="Original")
    clone = client.call("create_campaign_clone", id=cid).body["data"]
    assert clone["id"] != cid and clone["attributes"]["name"] == "Original (Clone)"
    assert clone["attributes"]["status"] == "Draft"
    [clone_msg] = clone["relationships"]["campaign-messages"]["data"]
    assert clone_msg["id"] != mid
    source_tpl = client.call("get_template_for_campaign_message", id=mid).body["data"]
    clone_tpl = client.call("get_template_for_campaign_message", id=clone_msg["id"]).body["data"]
    assert clone_tpl["id"] != source_tpl["id"] and clone_tpl["attributes"]["html"] == source_tpl["attributes"]["html"]
    named = client.call("create_campaign_clone", id=cid, new_name="Again").body["data"]
    assert named["attributes"]["name"] == "Again"


def test_assign_template_stores_a_message_copy(client: Any, raw: httpx.Client) -> None:
    list_id = make_list(client, "Newsletter", [])
    _, mid = make_campaign(client, [list_id], template=False)
    template_id = make_template(client, "<h1>Sale</h1>")
    body = client.call("assign_template_to_campaign_message", id=mid, template_id=template_id).body["data"]
    assert body["attributes"]["channel"] == "email" and body["attributes"]["label"] == "Summer"
    assert body["attributes"]["content"]["subject"] == "Summer sale"
    copy_id = body["relationships"]["template"]["data"]["id"]
    assert copy_id != template_id
    assigned = client.call("get_template_for_campaign_message", id=mid).body["data"]
    assert assigned["id"] == copy_id and assigned["attributes"]["html"] == "<h1>Sale</h1>"
    assert [t["id"] for t in client.call("get_templates").body["data"]] == [template_id]
    reply = raw.post("/api/campaign-message-assign-template", json={"data": {
        "type": "campaign-message", "id": mid,
        "relationships": {"template": {"data": {"type": "template", "id": "NOPE"}}}}})
    assert reply.status_code == 404
    assert error_of(reply)["source"]["pointer"] == "/data/relationships/template/data/id"


# -- templates -------------------------------------------------------------------------------------------------
def test_template_editor_types_and_their_fields(raw: httpx.Client) -> None:
    def create(attributes: dict[str, Any]) -> httpx.Response:
        return raw.post("/api/templates", json={"data": {"type": "template", "attributes": attributes}})

    assert create({"name": "a", "editor_type": "CODE", "html": "<p>a</p>"}).status_code == 201
    for attributes, pointer in (
        ({"name": "b", "editor_type": "FANCY", "html": "<p/>"}, "/data/attributes/editor_type"),
        ({"name": "c", "editor_type": "CODE"}, "/data/attributes/html"),
        ({"name": "d", "editor_type": "SYSTEM_DRAGGABLE", "html": "<p/>"}, "/data/attributes/html"),
    ):
        reply = create(attributes)
        assert reply.status_code == 400, attributes
        assert error_of(reply)["source"]["pointer"] == pointer
    tid = create({"name": "e", "editor_type": "CODE", "html": "<p>e</p>"}).json()["data"]["id"]
    reply = raw.patch(f"/api/templates/{tid}", json={"data": {"type": "template", "id": tid, "attributes": {
        "definition": {"body": {"properties": {}, "styles": {}}, "styles": []}}}})
    assert reply.status_code == 400
    assert error_of(reply)["source"]["pointer"] == "/data/attributes/definition"


def test_render_and_clone_template(client: Any) -> None:
    html = ("<p>Hi {{ first_name|default:'there' }} {{ person.last_name }}</p>"
            "{% if vip %}<b>VIP</b>{% else %}<i>member</i>{% endif %}<span>{{ missing }}</span>")
    tid = make_template(client, html)
    client.call("update_template", id=tid, text="Hi {{ first_name }}")
    rendered = client.call("render_template", id=tid,
                           context={"first_name": "Jo & Al", "person": {"last_name": "Ray"}, "vip": True})
    assert rendered.status == 201
    attrs = rendered.body["data"]["attributes"]
    assert attrs["html"] == "<p>Hi Jo &amp; Al Ray</p><b>VIP</b><span></span>"
    assert attrs["text"] == "Hi Jo & Al"
    plain = client.call("render_template", id=tid, context={}).body["data"]["attributes"]
    assert plain["html"] == "<p>Hi there </p><i>member</i><span></span>"
    stored = client.call("get_template", id=tid).body["data"]["attributes"]
    assert stored["html"] == html  # rendering does not change the template
    clone = client.call("clone_template", id=tid).body["data"]
    assert clone["id"] != tid and clone["attributes"]["name"] == "Clone of Newsletter"
    assert clone["attributes"]["html"] == html


# -- conformance ---------------------------------------------------------------------------------------------
CAMPAIGN_OPERATIONS = {
    "assign_template_to_campaign_message", "cancel_campaign_send", "clone_template", "create_campaign",
    "create_campaign_clone", "create_template", "delete_campaign", "delete_template", "get_campaign",
    "get_campaign_for_campaign_message", "get_campaign_id_for_campaign_message", "get_campaign_message",
    "get_campaign_recipient_estimation", "get_campaign_recipient_estimation_job", "get_campaign_send_job",
    "get_campaigns", "get_message_ids_for_campaign", "get_messages_for_campaign", "get_template",
    "get_template_for_campaign_message", "get_template_id_for_campaign_message", "get_templates",
    "refresh_campaign_recipient_estimation", "render_template", "send_campaign", "update_campaign",
    "update_campaign_message", "update_template", "get_image_for_campaign_message",
    "get_image_id_for_campaign_message", "update_image_for_campaign_message", "get_tags_for_campaign",
    "get_tag_ids_for_campaign",
}


def test_sweep_minimal_calls_succeed_and_conform(sb: Sandbox) -> None:
    from tests.sandbox.sweep import sweep

    problems = sweep(sb)
    assert {op: problems[op] for op in CAMPAIGN_OPERATIONS if op in problems} == {}

