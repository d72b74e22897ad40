"""``meta.patch_identifiers`` (secondary email addresses) on every profile write, over real HTTP.

The spec (revision 2026-07-15) documents only ``email``, to add or remove secondary addresses; the
sandbox used to answer 200 and drop the patch. Now it keeps them (private data: the profile resource
has no attribute for them), refuses what the spec does not allow with a 400 naming the field, and a
refused patch changes nothing else in the request.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_sandbox.domains._secondary_emails import secondary_emails

Json = dict[str, Any]


def _update(pid: str, patch: Any, **attributes: Any) -> Json:
    return {"data": {"type": "profile", "id": pid, "attributes": attributes, "meta": {"patch_identifiers": patch}}}


def _error(res: httpx.Response, status: int) -> Json:
    assert res.status_code == status, res.text
    return res.json()["errors"][0]  # type: ignore[no-any-return]


def test_update_profile_appends_and_unappends_secondary_emails(sb: Sandbox, client: Any, raw: httpx.Client) -> None:
    pid = client.call("create_profile", email="ada@example.com").data["id"]
    patch = {"append": {"email": ["ada.work@example.com", "ADA@example.com", "ada.home@example.com"]}}
    assert raw.patch(f"/api/profiles/{pid}", json=_update(pid, patch)).status_code == 200
    # its own email is never a secondary one; an address already there is not added twice
    assert secondary_emails(sb.store.get("profile", pid)) == ["ada.work@example.com", "ada.home@example.com"]
    again = {"append": {"email": ["Ada.Work@example.com"]}, "unappend": {"email": ["ADA.HOME@example.com"]}}
    assert raw.patch(f"/api/profiles/{pid}", json=_update(pid, again)).status_code == 200
    assert secondary_emails(sb.store.get("profile", pid)) == ["ada.work@example.com"]
    # through our client too: the tool argument reaches the sandbox as the spec's meta
    client.call("update_profile", id=pid, patch_identifiers={"unappend": {"email": ["ada.work@example.com"]}})
    assert secondary_emails(sb.store.get("profile", pid)) == []


@pytest.mark.parametrize(("patch", "pointer", "says"), [
    ({"append": {"phone_number": ["+15005550006"]}}, "/append/phone_number", "only email"),
    ({"unappend": {"external_id": ["crm-1"]}}, "/unappend/external_id", "only email"),
    ({"append": {"email": ["not-an-email"]}}, "/append/email/0", "Invalid email address"),
    ({"append": {"email": "x@example.com"}, "unset": ["email"]}, "/unset", "unset"),  # refused by the spec check
    ({"append": ["x@example.com"]}, "/append", "object"),
])
def test_a_patch_the_spec_does_not_allow_is_a_400_and_changes_nothing(
    sb: Sandbox, client: Any, raw: httpx.Client, patch: Json, pointer: str, says: str
) -> None:
    pid = client.call("create_profile", email="ada@example.com", first_name="Ada").data["id"]
    err = _error(raw.patch(f"/api/profiles/{pid}", json=_update(pid, patch, first_name="Changed")), 400)
    assert err["source"]["pointer"] == f"/data/meta/patch_identifiers{pointer}" and says in err["detail"]
    profile = sb.store.get("profile", pid)
    assert profile.attributes["first_name"] == "Ada" and secondary_emails(profile) == []


def test_an_address_another_profile_has_is_a_409_naming_it(sb: Sandbox, client: Any, raw: httpx.Client) -> None:
    ada = client.call("create_profile", email="ada@example.com").data["id"]
    bob = client.call("create_profile", email="bob@example.com").data["id"]
    raw.patch(f"/api/profiles/{bob}", json=_update(bob, {"append": {"email": ["bob.work@example.com"]}}))
    for taken in ("BOB@example.com", "bob.work@example.com"):  # its email, or one of its secondary ones
        err = _error(raw.patch(f"/api/profiles/{ada}", json=_update(ada, {"append": {"email": [taken]}})), 409)
        assert err["code"] == "duplicate_profile" and err["meta"]["duplicate_profile_id"] == bob
        assert err["source"]["pointer"] == "/data/meta/patch_identifiers/append/email/0"
    assert secondary_emails(sb.store.get("profile", ada)) == []


def test_the_upsert_and_an_events_profile_take_the_patch_too(sb: Sandbox, raw: httpx.Client) -> None:
    upsert = {"data": {"type": "profile", "attributes": {"email": "cy@example.com"},
                       "meta": {"patch_identifiers": {"append": {"email": ["cy.work@example.com"]}}}}}
    res = raw.post("/api/profile-import", json=upsert)
    assert res.status_code == 201
    pid = res.json()["data"]["id"]
    assert secondary_emails(sb.store.get("profile", pid)) == ["cy.work@example.com"]
    profile = {"email": "cy@example.com", "meta": {"patch_identifiers": {"append": {"email": ["cy.home@example.com"]}}}}
    event = {"data": {"type": "event", "attributes": {
        "properties": {}, "metric": {"data": {"type": "metric", "attributes": {"name": "Viewed"}}},
        "profile": {"data": {"type": "profile", "attributes": profile}}}}}
    assert raw.post("/api/events", json=event).status_code == 202
    assert secondary_emails(sb.store.get("profile", pid)) == ["cy.work@example.com", "cy.home@example.com"]
    profile["meta"] = {"patch_identifiers": {"append": {"phone_number": ["+15005550006"]}}}
    err = _error(raw.post("/api/events", json=event), 400)
    assert err["source"]["pointer"].endswith("/attributes/meta/patch_identifiers/append/phone_number")


def test_a_merge_keeps_both_profiles_secondary_emails(sb: Sandbox, client: Any, raw: httpx.Client) -> None:
    ada = client.call("create_profile", email="ada@example.com").data["id"]
    old = client.call("create_profile", phone_number="+15005550006").data["id"]
    raw.patch(f"/api/profiles/{ada}", json=_update(ada, {"append": {"email": ["ada.work@example.com"]}}))
    raw.patch(f"/api/profiles/{old}", json=_update(old, {"append": {"email": ["ada.old@example.com"]}}))
    merge = {"data": {"type": "profile-merge", "id": ada,
                      "relationships": {"profiles": {"data": [{"type": "profile", "id": old}]}}}}
    assert raw.post("/api/profile-merge", json=merge).status_code == 201
    assert secondary_emails(sb.store.get("profile", ada)) == ["ada.work@example.com", "ada.old@example.com"]
