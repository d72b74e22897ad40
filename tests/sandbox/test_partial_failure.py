"""Klaviyo's partial failure for phone numbers (``klaviyo_sandbox/_partial.py``): in Create Profile,
Create Event and Subscribe, an invalid phone number beside a valid identifier is ignored, the rest is
processed and the answer says ``X-Klaviyo-Partial-Failure: phone_number``; a phone number that is the
only identifier is still a 400. Over HTTP, as any client would see it; then the toolkit's client,
which tells its log and its hooks when Klaviyo ignored part of a request."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.client import CallRecord, KlaviyoClient

Json = dict[str, Any]
BAD_PHONES = ("555-1234", "+1 500 555 0006", "15005550006", "+0")
EMAIL_AND_SMS = {"email": {"marketing": {"consent": "SUBSCRIBED"}}, "sms": {"marketing": {"consent": "SUBSCRIBED"}}}


def profile(**attributes: Any) -> Json:
    return {"data": {"type": "profile", "attributes": attributes}}


def event(**who: Any) -> Json:
    return {"data": {"type": "event", "attributes": {
        "metric": {"data": {"type": "metric", "attributes": {"name": "Viewed Trail"}}},
        "properties": {"trail": "Ridge"},
        "profile": {"data": {"type": "profile", **who}},
    }}}


def subscribe(*profiles: Json) -> Json:
    return {"data": {"type": "profile-subscription-bulk-create-job", "attributes": {
        "profiles": {"data": [{"type": "profile", "attributes": p} for p in profiles]}}}}


def found(client: KlaviyoClient, email: str) -> Json:
    rows = client.call("get_profiles", filter=f'equals(email,"{email}")',
                       additional_fields_profile=["subscriptions"]).data
    assert len(rows) == 1, rows
    return rows[0]["attributes"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("phone", BAD_PHONES)
def test_create_profile_ignores_an_invalid_phone_beside_a_valid_email(raw: httpx.Client, client: KlaviyoClient,
                                                                      phone: str) -> None:
    res = raw.post("/api/profiles", json=profile(email="ada@example.com", phone_number=phone, first_name="Ada"))
    assert res.status_code == 201, res.text
    assert res.headers["X-Klaviyo-Partial-Failure"] == "phone_number"
    attrs = found(client, "ada@example.com")
    assert attrs["phone_number"] is None and attrs["first_name"] == "Ada"  # the rest was taken


@pytest.mark.parametrize("attributes", [
    {"phone_number": "555-1234"},  # the only identifier
    {"phone_number": "555-1234", "email": "not-an-email"},  # no valid one beside it
    {"phone_number": "555-1234", "first_name": "Ada"},  # a name is not an identifier
])
def test_create_profile_without_another_valid_identifier_is_400(raw: httpx.Client, attributes: Json) -> None:
    res = raw.post("/api/profiles", json=profile(**attributes))
    assert res.status_code == 400
    assert "X-Klaviyo-Partial-Failure" not in res.headers
    err = res.json()["errors"][0]
    assert err["source"]["pointer"].startswith("/data/attributes/")
    assert "+15005550006" in err["detail"] or "name@example.com" in err["detail"]
    assert raw.get("/api/profiles").json()["data"] == []  # nothing was made


def test_a_valid_request_has_no_partial_failure_header(raw: httpx.Client) -> None:
    res = raw.post("/api/profiles", json=profile(email="bo@example.com", phone_number="+15005550006"))
    assert res.status_code == 201 and "X-Klaviyo-Partial-Failure" not in res.headers
    assert res.json()["data"]["attributes"]["phone_number"] == "+15005550006"


@pytest.mark.parametrize("who", [
    {"attributes": {"email": "eve@example.com", "phone_number": "12"}},
    {"attributes": {"external_id": "crm-7", "phone_number": "12"}},
])
def test_create_event_ignores_an_invalid_phone_beside_another_identifier(raw: httpx.Client, client: KlaviyoClient,
                                                                         who: Json) -> None:
    res = raw.post("/api/events", json=event(**who))
    assert res.status_code == 202, res.text
    assert res.headers["X-Klaviyo-Partial-Failure"] == "phone_number"
    events = client.call("get_events", include=["profile"]).data
    assert len(events) == 1 and events[0]["attributes"]["event_properties"]["trail"] == "Ridge"


def test_create_event_with_only_an_invalid_phone_is_400(raw: httpx.Client, client: KlaviyoClient) -> None:
    res = raw.post("/api/events", json=event(attributes={"phone_number": "12"}))
    assert res.status_code == 400 and "phone_number" in res.json()["errors"][0]["source"]["pointer"]
    assert client.call("get_events").data == []


def test_subscribe_takes_the_email_and_leaves_sms_of_an_invalid_phone(raw: httpx.Client, client: KlaviyoClient,
                                                                     sb: Sandbox) -> None:
    res = raw.post("/api/profile-subscription-bulk-create-jobs", json=subscribe(
        {"email": "sam@example.com", "phone_number": "bad", "subscriptions": EMAIL_AND_SMS},
        {"email": "kim@example.com", "phone_number": "+15005550011", "subscriptions": EMAIL_AND_SMS},
    ))
    assert res.status_code == 202, res.text
    assert res.headers["X-Klaviyo-Partial-Failure"] == "phone_number"
    sb.clock.advance(5)  # type: ignore[attr-defined]
    sam, kim = found(client, "sam@example.com"), found(client, "kim@example.com")
    assert sam["subscriptions"]["email"]["marketing"]["consent"] == "SUBSCRIBED"
    assert sam["phone_number"] is None and sam["subscriptions"]["sms"]["marketing"]["consent"] != "SUBSCRIBED"
    assert kim["phone_number"] == "+15005550011"  # the other profile is untouched


def test_subscribe_to_sms_only_with_an_invalid_phone_is_400(raw: httpx.Client) -> None:
    res = raw.post("/api/profile-subscription-bulk-create-jobs", json=subscribe(
        {"email": "sol@example.com", "phone_number": "bad", "subscriptions": {"sms": EMAIL_AND_SMS["sms"]}}))
    assert res.status_code == 400 and res.json()["errors"][0]["source"]["pointer"].endswith("/phone_number")


def test_the_client_tells_its_log_and_hooks_what_klaviyo_ignored(client: KlaviyoClient,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The toolkit refuses an invalid phone before sending; a request that carries one anyway (another
    client's, a future rule) gets Klaviyo's answer, and the client says what was ignored."""
    seen: list[CallRecord] = []
    client.hooks.append(seen.append)
    prep = client.prepare("create_profile", {"email": "lee@example.com"})
    body = {"data": {**prep.json_body["data"], "attributes": {"email": "lee@example.com", "phone_number": "555"}}}
    with caplog.at_level(logging.WARNING, logger="klaviyo_toolkit.client"):
        res = client.send(dataclasses.replace(prep, json_body=body))
    assert res.status == 201 and res.partial_failure == ("phone_number",)
    assert "create_profile: Klaviyo ignored phone_number" in caplog.text
    assert seen[-1].extra == {"partial_failure": ["phone_number"]}
    assert client.call("create_profile", email="max@example.com").partial_failure == ()
