"""Sandbox profiles, identity and consent: real HTTP through the in-process transport.

Setup goes through the API where one exists; facts no endpoint can produce (a hard bounce, an
event) use the shared domain helpers, exactly as the event and campaign domains do.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_sandbox.domains._common import add_email_suppression, find_or_create_metric, record_event
from klaviyo_sandbox.domains.consent import confirm_opt_in
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import KlaviyoAPIError

Json = dict[str, Any]
SUBSCRIBE_EMAIL = {"email": {"marketing": {"consent": "SUBSCRIBED"}}}


def error(response: httpx.Response) -> Json:
    assert response.headers["content-type"].startswith("application/vnd.api+json")
    return response.json()["errors"][0]  # type: ignore[no-any-return]


def body(rtype: str, attributes: Json, **extra: Any) -> Json:
    return {"data": {"type": rtype, "attributes": attributes, **extra}}


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_jobs(sb: Sandbox, clock: ManualClock, seconds: float = 5.0) -> None:
    clock.advance(seconds)
    sb.tick()


def email_consent(client: Any, profile_id: str) -> Json:
    data = client.call("get_profile", id=profile_id, additional_fields_profile=["subscriptions"]).data
    return data["attributes"]["subscriptions"]["email"]["marketing"]  # type: ignore[no-any-return]


def profile_by_email(client: Any, email: str) -> Json | None:
    found = client.call("get_profiles", filter=f"equals(email,'{email}')").data
    return found[0] if found else None


# -- create and identity -----------------------------------------------------------------------------
def test_create_profile_is_201_and_never_subscribed(client: Any) -> None:
    res = client.call("create_profile", email="ann@example.com", first_name="Ann", properties={"plan": "pro"})
    assert res.status == 201
    attrs = res.data["attributes"]
    assert (attrs["email"], attrs["first_name"], attrs["properties"]) == ("ann@example.com", "Ann", {"plan": "pro"})
    assert "subscriptions" not in attrs and "predictive_analytics" not in attrs  # only with additional-fields
    extra = ["subscriptions", "predictive_analytics"]
    both = client.call("get_profile", id=res.data["id"], additional_fields_profile=extra)
    assert {"subscriptions", "predictive_analytics"} <= set(both.data["attributes"])
    consent = email_consent(client, res.data["id"])  # never subscribed: implied consent, no suppression
    assert consent["consent"] == "NEVER_SUBSCRIBED" and consent["can_receive_email_marketing"] is True


@pytest.mark.parametrize(("field", "first", "again"), [
    ("email", "Ann@Example.com", "ann@example.com"),
    ("phone_number", "+15005550006", "+15005550006"),
    ("external_id", "crm-1", "crm-1"),
])
def test_an_identifier_belongs_to_one_profile(raw: httpx.Client, field: str, first: str, again: str) -> None:
    created = raw.post("/api/profiles", json=body("profile", {field: first}))
    assert created.status_code == 201
    dup = raw.post("/api/profiles", json=body("profile", {field: again, "first_name": "B"}))
    assert dup.status_code == 409
    err = error(dup)
    assert err["code"] == "duplicate_profile"
    assert err["meta"]["duplicate_profile_id"] == created.json()["data"]["id"]
    assert err["source"]["pointer"] == "/data/attributes" and field in err["detail"]


@pytest.mark.parametrize(("field", "value"), [
    ("email", "not-an-email"), ("email", "a@b"), ("phone_number", "5005550006"), ("phone_number", "+1 500 555 0006"),
])
def test_invalid_identifiers_are_400_naming_the_field(raw: httpx.Client, field: str, value: str) -> None:
    for path, payload in (("/api/profiles", body("profile", {field: value})),
                          ("/api/profile-import", body("profile", {field: value}))):
        res = raw.post(path, json=payload)
        assert res.status_code == 400
        err = error(res)
        assert err["source"]["pointer"] == f"/data/attributes/{field}"
        assert ("name@example.com" if field == "email" else "+15005550006") in err["detail"]


def test_a_profile_needs_an_identifier(raw: httpx.Client) -> None:
    res = raw.post("/api/profiles", json=body("profile", {"first_name": "Nobody"}))
    assert res.status_code == 400 and error(res)["source"]["pointer"] == "/data/attributes"


def test_update_merges_properties_clears_nulls_and_patches(client: Any, raw: httpx.Client) -> None:
    pid = client.call("create_profile", email="p@example.com", first_name="P", last_name="Q",
                      properties={"plan": "free", "skus": ["a"], "tmp": 1}, location={"city": "Oslo"}).data["id"]
    res = raw.patch(f"/api/profiles/{pid}", json={"data": {
        "type": "profile", "id": pid,
        "attributes": {"last_name": None, "properties": {"plan": "pro"}, "location": {"country": "NO"}},
        "meta": {"patch_properties": {"append": {"skus": ["b", "c"], "tags": "new"}, "unappend": {"skus": "a"},
                                      "unset": "tmp"}}}})
    assert res.status_code == 200
    attrs = res.json()["data"]["attributes"]
    assert attrs["first_name"] == "P" and attrs["last_name"] is None
    assert attrs["properties"] == {"plan": "pro", "skus": ["b", "c"], "tags": ["new"]}
    assert attrs["location"]["city"] == "Oslo" and attrs["location"]["country"] == "NO"


def test_update_into_another_profiles_identifier_is_409(client: Any, raw: httpx.Client) -> None:
    a = client.call("create_profile", email="a@example.com").data["id"]
    b = client.call("create_profile", email="b@example.com", phone_number="+15005550001").data["id"]
    for attrs in ({"email": "B@example.com"}, {"phone_number": "+15005550001"}):
        res = raw.patch(f"/api/profiles/{a}", json={"data": {"type": "profile", "id": a, "attributes": attrs}})
        assert res.status_code == 409 and error(res)["meta"]["duplicate_profile_id"] == b
    mismatch = raw.patch(f"/api/profiles/{a}", json={"data": {"type": "profile", "id": b, "attributes": {}}})
    assert mismatch.status_code == 409 and error(mismatch)["source"]["pointer"] == "/data/id"


def test_a_changed_email_frees_the_old_one(client: Any) -> None:
    pid = client.call("create_profile", email="old@example.com").data["id"]
    client.call("update_profile", id=pid, email="new@example.com")
    assert profile_by_email(client, "old@example.com") is None
    assert client.call("create_profile", email="old@example.com").status == 201
    assert client.call("create_or_update_profile", email="new@example.com").data["id"] == pid


# -- upsert -----------------------------------------------------------------------------------------------
def test_upsert_creates_then_updates_by_each_identifier(client: Any) -> None:
    first = client.call("create_or_update_profile", email="u@example.com", phone_number="+15005550002",
                        external_id="x-9")
    assert first.status == 201
    pid = first.data["id"]
    for ident in ({"email": "U@EXAMPLE.com"}, {"phone_number": "+15005550002"}, {"external_id": "x-9"}):
        again = client.call("create_or_update_profile", first_name="Una", **ident)
        assert (again.status, again.data["id"], again.data["attributes"]["first_name"]) == (200, pid, "Una")
    by_id = client.call("create_or_update_profile", id=pid, email="u2@example.com", title=None)
    assert (by_id.status, by_id.data["attributes"]["email"]) == (200, "u2@example.com")
    assert len(client.call("get_profiles").data) == 1


def test_upsert_with_identifiers_of_two_profiles_is_409(client: Any, raw: httpx.Client) -> None:
    client.call("create_profile", email="one@example.com")
    two = client.call("create_profile", phone_number="+15005550003").data["id"]
    res = raw.post("/api/profile-import", json=body("profile", {"email": "one@example.com",
                                                                "phone_number": "+15005550003"}))
    assert res.status_code == 409 and error(res)["meta"]["duplicate_profile_id"] == two
    missing = raw.post("/api/profile-import", json=body("profile", {"email": "z@example.com"}, id="01NOPE"))
    assert missing.status_code == 404 and error(missing)["source"]["pointer"] == "/data/id"


# -- reading: paging, filters, sorting, additional fields ---------------------------------------------------
def import_profiles(client: Any, sb: Sandbox, clock: ManualClock, items: list[Json], **kw: Any) -> str:
    job = client.call("bulk_import_profiles", profiles=items, **kw).data["id"]
    run_jobs(sb, clock, 30)
    return job  # type: ignore[no-any-return]


def test_paging_250_profiles_100_at_a_time(client: Any, sb: Sandbox, clock: ManualClock, raw: httpx.Client) -> None:
    import_profiles(client, sb, clock, [{"email": f"p{i:03}@example.com"} for i in range(250)])
    url: str | None = "/api/profiles?page[size]=100"
    sizes, ids = [], []
    while url:
        page = raw.get(url)
        assert page.status_code == 200
        sizes.append(len(page.json()["data"]))
        ids += [p["id"] for p in page.json()["data"]]
        url = page.json()["links"].get("next")
    assert sizes == [100, 100, 50] and len(set(ids)) == 250
    assert raw.get("/api/profiles?page[size]=101").status_code == 400
    bad = raw.get("/api/profiles?page[cursor]=garbage")
    assert bad.status_code == 400 and error(bad)["source"]["parameter"] == "page[cursor]"


def test_filters_and_sorting(client: Any, sb: Sandbox, clock: ManualClock) -> None:
    a = client.call("create_profile", email="b-first@example.com", phone_number="+15005550004").data["id"]
    clock.advance(60)
    b = client.call("create_profile", email="a-second@example.com", external_id="ext-2").data["id"]

    def ids(**query: Any) -> list[str]:
        return [p["id"] for p in client.call("get_profiles", **query).data]

    assert ids(filter="equals(email,'B-FIRST@example.com')") == [a]
    assert sorted(ids(filter="any(email,['b-first@example.com','a-second@example.com'])")) == sorted([a, b])
    assert ids(filter="equals(phone_number,'+15005550004')") == [a]
    assert ids(filter="equals(external_id,'ext-2')") == [b]
    assert ids(filter=f"any(id,['{b}'])") == [b]
    assert ids(filter=f"greater-than(created,{iso(clock.time() - 30)})") == [b]
    assert ids(sort="email") == [b, a] and ids(sort="-created") == [b, a]
    clock.advance(60)
    client.call("update_profile", id=a, first_name="Touched")
    assert ids(filter=f"greater-than(updated,{iso(clock.time() - 30)})") == [a]
    client.call("bulk_suppress_profiles", profiles=[{"email": "a-second@example.com"}])
    run_jobs(sb, clock)
    assert ids(filter="equals(subscriptions.email.marketing.suppression.reason,'USER_SUPPRESSED')") == [b]
    assert ids(filter="greater-than(subscriptions.email.marketing.suppression.timestamp,2023-01-01T00:00:00Z)") == [b]


# -- merge ----------------------------------------------------------------------------------------------------
def test_merge_moves_events_and_lists_then_deletes_the_source(client: Any, sb: Sandbox, raw: httpx.Client) -> None:
    dest = client.call("create_profile", email="keep@example.com", properties={"plan": "pro"}).data["id"]
    src = client.call("create_profile", email="dup@example.com", phone_number="+15005550005", first_name="Dee",
                      properties={"plan": "free", "source": "ads"}).data["id"]
    lst = client.call("create_list", name="Leads").data["id"]
    client.call("add_profiles_to_list", id=lst, profile_ids=[src])
    metric = find_or_create_metric(sb.services, "Viewed Page", sb.clock.time())
    source_profile = sb.store.get("profile", src)
    assert source_profile is not None
    event, _ = record_event(sb.services, source_profile, metric, {"url": "/"}, sb.clock.time(), unique_id="v1")

    res = client.call("merge_profiles", id=dest, profile_ids=[src])
    assert (res.status, res.data["id"]) == (201, dest)
    assert raw.get(f"/api/profiles/{src}").status_code == 404
    merged = client.call("get_profile", id=dest).data["attributes"]
    assert merged["email"] == "keep@example.com" and merged["phone_number"] == "+15005550005"
    assert merged["first_name"] == "Dee" and merged["properties"] == {"plan": "pro", "source": "ads"}
    assert [p["id"] for p in client.call("get_profiles_for_list", id=lst).data] == [dest]
    moved = sb.store.get("event", event.id)
    assert moved is not None and moved.linked("profile") == [("profile", dest)]
    dest_profile = sb.store.get("profile", dest)
    assert dest_profile is not None
    again, created = record_event(sb.services, dest_profile, metric, {"url": "/"}, sb.clock.time(), unique_id="v1")
    assert (again.id, created) == (event.id, False)  # deduplication follows the events


def test_merge_errors_name_the_problem(client: Any, raw: httpx.Client) -> None:
    pid = client.call("create_profile", email="m@example.com").data["id"]

    def merge(dest: str, sources: list[str]) -> httpx.Response:
        return raw.post("/api/profile-merge", json={"data": {"type": "profile-merge", "id": dest, "relationships": {
            "profiles": {"data": [{"type": "profile", "id": s} for s in sources]}}}})

    assert error(merge(pid, ["01MISSING"]))["source"]["pointer"] == "/data/relationships/profiles/data/0/id"
    assert merge("01MISSING", [pid]).status_code == 404
    assert merge(pid, [pid]).status_code == 400


# -- bulk import, deletion, client profile, push tokens ----------------------------------------------------
def test_bulk_import_job_progress_counts_and_errors(client: Any, sb: Sandbox, clock: ManualClock,
                                                    added_to_list: list[tuple[str, str]]) -> None:
    lst = client.call("create_list", name="Imported").data["id"]
    existing = client.call("create_profile", email="known@example.com").data["id"]
    items = [{"email": "known@example.com", "first_name": "Known"}, {"email": "fresh@example.com"},
             {"email": "fresh2@example.com", "properties": {"tier": "gold"}}]
    job = client.call("bulk_import_profiles", profiles=items, list_ids=[lst]).data
    assert job["attributes"]["status"] == "queued" and job["attributes"]["total_count"] == 3
    assert profile_by_email(client, "fresh@example.com") is None
    run_jobs(sb, clock)
    done = client.call("get_bulk_import_profiles_job", job_id=job["id"]).data["attributes"]
    assert (done["status"], done["completed_count"], done["failed_count"]) == ("complete", 3, 0)
    assert done["completed_at"] is not None
    profiles = client.call("get_profiles_for_bulk_import_profiles_job", id=job["id"]).data
    assert existing in [p["id"] for p in profiles] and len(profiles) == 3
    assert client.call("get_profile", id=existing).data["attributes"]["first_name"] == "Known"
    assert len(client.call("get_profiles_for_list", id=lst).data) == 3 and len(added_to_list) == 3
    assert [x["id"] for x in client.call("get_list_ids_for_bulk_import_profiles_job", id=job["id"]).data] == [lst]
    assert [j["id"] for j in client.call("get_bulk_import_profiles_jobs", filter="equals(status,'complete')").data] \
        == [job["id"]]


def test_bulk_import_total_count_counts_profiles_not_lists_or_property_arrays(
    client: Any, sb: Sandbox, clock: ManualClock
) -> None:
    lists = [client.call("create_list", name=f"Import {i}").data["id"] for i in range(3)]
    items = [{"email": "one@example.com", "properties": {"sizes": ["S", "M", "L", "XL"]}}]
    job = client.call("bulk_import_profiles", profiles=items, list_ids=lists).data
    assert job["attributes"]["total_count"] == 1
    run_jobs(sb, clock)
    done = client.call("get_bulk_import_profiles_job", job_id=job["id"]).data["attributes"]
    assert (done["total_count"], done["completed_count"], done["failed_count"]) == (1, 1, 0)


def test_bulk_import_reports_invalid_items(raw: httpx.Client, sb: Sandbox, clock: ManualClock) -> None:
    items = [{"type": "profile", "attributes": {"email": "ok@example.com"}},
             {"type": "profile", "attributes": {"email": "broken"}},
             {"type": "profile", "attributes": {"first_name": "no identifier"}}]
    job = raw.post("/api/profile-bulk-import-jobs", json=body("profile-bulk-import-job", {"profiles": {"data": items}}))
    assert job.status_code == 202
    jid = job.json()["data"]["id"]
    run_jobs(sb, clock)
    attrs = raw.get(f"/api/profile-bulk-import-jobs/{jid}").json()["data"]["attributes"]
    assert (attrs["completed_count"], attrs["failed_count"]) == (1, 2)
    errors = raw.get(f"/api/profile-bulk-import-jobs/{jid}/import-errors").json()["data"]
    pointers = sorted(e["attributes"]["source"]["pointer"] for e in errors)
    items_at = "/data/attributes/profiles/data"
    assert pointers == [f"{items_at}/1/attributes/email", f"{items_at}/2/attributes"]
    assert any(e["attributes"]["original_payload"] == {"email": "broken"} for e in errors)
    too_many = [{"type": "profile", "attributes": {"email": f"x{i}@example.com"}} for i in range(10_001)]
    res = raw.post("/api/profile-bulk-import-jobs",
                   json=body("profile-bulk-import-job", {"profiles": {"data": too_many}}))
    assert res.status_code == 400 and "10000" in error(res)["detail"]


def test_bulk_import_nulls_never_clear_what_a_profile_has(raw: httpx.Client, sb: Sandbox, clock: ManualClock,
                                                         client: Any) -> None:
    """Klaviyo's bulk import updates only the fields given non-null: a null email beside a known phone
    number (a CRM export with an empty cell) must not take the email from the profile it lands on."""
    pid = client.call("create_profile", email="kept@example.com", phone_number="+15005550006", first_name="Ann",
                      location={"city": "Boston", "country": "US"}).data["id"]
    item = {"email": None, "phone_number": "+15005550006", "first_name": "Anna", "last_name": None,
            "location": {"city": None, "country": "USA"}}
    job = raw.post("/api/profile-bulk-import-jobs", json=body("profile-bulk-import-job", {"profiles": {"data": [
        {"type": "profile", "attributes": item}]}}))
    assert job.status_code == 202
    run_jobs(sb, clock)
    attrs = raw.get(f"/api/profiles/{pid}").json()["data"]["attributes"]
    assert (attrs["email"], attrs["phone_number"], attrs["first_name"]) == ("kept@example.com", "+15005550006", "Anna")
    assert (attrs["location"]["city"], attrs["location"]["country"]) == ("Boston", "USA")


def test_deletion_request_removes_profile_events_and_memberships(client: Any, sb: Sandbox, clock: ManualClock,
                                                                 raw: httpx.Client) -> None:
    pid = client.call("create_profile", email="gone@example.com").data["id"]
    keep = client.call("create_profile", email="stay@example.com").data["id"]
    lst = client.call("create_list", name="L").data["id"]
    client.call("add_profiles_to_list", id=lst, profile_ids=[pid, keep])
    metric = find_or_create_metric(sb.services, "Active on Site", clock.time())
    for who in (pid, keep):
        profile = sb.store.get("profile", who)
        assert profile is not None
        record_event(sb.services, profile, metric, {}, clock.time())
    assert client.call("request_profile_deletion", profile={"email": "GONE@example.com"}).status == 202
    assert raw.get(f"/api/profiles/{pid}").status_code == 200  # not yet: the job is queued
    run_jobs(sb, clock)
    assert raw.get(f"/api/profiles/{pid}").status_code == 404
    assert [p["id"] for p in client.call("get_profiles_for_list", id=lst).data] == [keep]
    owners = {e.linked("profile")[0][1] for e in sb.store.iter("event")}
    assert owners == {keep}
    two = raw.post("/api/data-privacy-deletion-jobs", json=body("data-privacy-deletion-job", {"profile": {"data": {
        "type": "profile", "id": keep, "attributes": {"email": "stay@example.com"}}}}))
    assert two.status_code == 400 and error(two)["source"]["pointer"] == "/data/attributes/profile/data/attributes"


def test_client_profile_upserts_but_never_changes_identifiers(client: Any) -> None:
    pid = client.call("create_profile", email="c@example.com", external_id="c-1").data["id"]
    assert client.call("create_client_profile", email="c@example.com", external_id="c-2", first_name="Cee",
                       phone_number="+15005550007").status == 202
    attrs = client.call("get_profile", id=pid).data["attributes"]
    assert (attrs["external_id"], attrs["first_name"], attrs["phone_number"]) == ("c-1", "Cee", "+15005550007")
    client.call("create_client_profile", email="new-client@example.com")
    assert profile_by_email(client, "new-client@example.com") is not None


def test_push_token_links_to_its_profile(client: Any) -> None:
    client.call("create_push_token", token="tok-1", platform="ios", vendor="apns",
                profile={"email": "push@example.com"})
    profile = profile_by_email(client, "push@example.com")
    assert profile is not None
    tokens = client.call("get_push_tokens_for_profile", id=profile["id"]).data
    assert [t["attributes"]["token"] for t in tokens] == ["tok-1"]
    assert client.call("get_profile_for_push_token", id=tokens[0]["id"]).data["id"] == profile["id"]
    found = client.call("get_profiles_for_list", id=client.call("create_list", name="x").data["id"]).data
    assert found == []


# -- consent ----------------------------------------------------------------------------------------------------
def subscribe(client: Any, emails: list[str], list_id: str | None = None, **kw: Any) -> None:
    args = {"list_id": list_id} if list_id else {}
    client.call("bulk_subscribe_profiles", profiles=[{"email": e, "subscriptions": SUBSCRIBE_EMAIL} for e in emails],
                **args, **kw)


def test_adding_to_a_list_never_subscribes(client: Any) -> None:
    pid = client.call("create_profile", email="l@example.com").data["id"]
    lst = client.call("create_list", name="News").data["id"]
    client.call("add_profiles_to_list", id=lst, profile_ids=[pid])
    consent = email_consent(client, pid)
    assert consent["consent"] == "NEVER_SUBSCRIBED" and consent["consent_timestamp"] is None
    assert consent["can_receive_email_marketing"] is True  # implied consent, not a subscription


def test_subscribe_job_records_consent_and_joins_the_list(client: Any, sb: Sandbox, clock: ManualClock,
                                                          added_to_list: list[tuple[str, str]]) -> None:
    lst = client.call("create_list", name="News").data["id"]
    subscribe(client, ["s@example.com"], lst, custom_source="Footer form")
    assert profile_by_email(client, "s@example.com") is None  # applied when the job runs
    run_jobs(sb, clock)
    profile = profile_by_email(client, "s@example.com")
    assert profile is not None
    consent = email_consent(client, profile["id"])
    assert consent["consent"] == "SUBSCRIBED" and consent["can_receive_email_marketing"] is True
    assert consent["method"] == "API" and consent["method_detail"] == "Footer form"
    assert consent["consent_timestamp"] is not None
    assert added_to_list == [(lst, profile["id"])]


def test_historical_import_keeps_the_consent_date_and_triggers_no_flows(
        client: Any, sb: Sandbox, clock: ManualClock, raw: httpx.Client, added_to_list: list[tuple[str, str]]) -> None:
    lst = client.call("create_list", name="Old").data["id"]
    sub = {"email": {"marketing": {"consent": "SUBSCRIBED", "consented_at": "2020-05-01T10:00:00+00:00"}}}
    client.call("bulk_subscribe_profiles", list_id=lst, historical_import=True,
                profiles=[{"email": "h@example.com", "subscriptions": sub}])
    run_jobs(sb, clock)
    profile = profile_by_email(client, "h@example.com")
    assert profile is not None
    assert email_consent(client, profile["id"])["consent_timestamp"] == "2020-05-01T10:00:00+00:00"
    assert added_to_list == [] and len(client.call("get_profiles_for_list", id=lst).data) == 1
    undated = raw.post("/api/profile-subscription-bulk-create-jobs", json=body(
        "profile-subscription-bulk-create-job", {"historical_import": True, "profiles": {"data": [
            {"type": "profile", "attributes": {"email": "h2@example.com", "subscriptions": SUBSCRIBE_EMAIL}}]}}))
    assert undated.status_code == 400
    assert error(undated)["source"]["pointer"].endswith("/subscriptions/email/marketing/consented_at")


def test_subscribe_rejects_what_it_cannot_apply(raw: httpx.Client) -> None:
    def post(profiles: list[Json], rels: Json | None = None) -> httpx.Response:
        data: Json = {"type": "profile-subscription-bulk-create-job", "attributes": {"profiles": {"data": profiles}}}
        if rels:
            data["relationships"] = rels
        return raw.post("/api/profile-subscription-bulk-create-jobs", json={"data": data})

    no_email = post([{"type": "profile",
                      "attributes": {"phone_number": "+15005550008", "subscriptions": SUBSCRIBE_EMAIL}}])
    assert error(no_email)["source"]["pointer"] == "/data/attributes/profiles/data/0/attributes/email"
    many = [{"type": "profile", "attributes": {"email": f"m{i}@example.com", "subscriptions": SUBSCRIBE_EMAIL}}
            for i in range(1001)]
    assert post(many).status_code == 400
    unknown = post(many[:1], {"list": {"data": {"type": "list", "id": "NoSuch"}}})
    assert unknown.status_code == 404 and error(unknown)["source"]["pointer"] == "/data/relationships/list/data/id"


def test_suppressed_profiles_cannot_receive_until_unsuppressed(client: Any, sb: Sandbox, clock: ManualClock) -> None:
    subscribe(client, ["sup@example.com"])
    run_jobs(sb, clock)
    pid = profile_by_email(client, "sup@example.com")["id"]  # type: ignore[index]
    job = client.call("bulk_suppress_profiles", profiles=[{"email": "sup@example.com"}]).data
    assert job["attributes"]["status"] == "queued"
    run_jobs(sb, clock)
    done = client.call("get_bulk_suppress_profiles_job", job_id=job["id"]).data["attributes"]
    assert (done["status"], done["completed_count"], done["skipped_count"]) == ("complete", 1, 0)
    consent = email_consent(client, pid)
    assert consent["consent"] == "SUBSCRIBED" and consent["can_receive_email_marketing"] is False
    assert [s["reason"] for s in consent["suppression"]] == ["USER_SUPPRESSED"]
    client.call("bulk_suppress_profiles", profiles=[{"email": "sup@example.com"}])
    run_jobs(sb, clock)
    again = client.call("get_bulk_suppress_profiles_jobs").data[-1]["attributes"]
    assert (again["completed_count"], again["skipped_count"]) == (0, 1)  # already suppressed
    client.call("bulk_unsuppress_profiles", profiles=[{"email": "sup@example.com"}])
    run_jobs(sb, clock)
    assert email_consent(client, pid)["can_receive_email_marketing"] is True


def test_a_hard_bounce_outlives_subscribe_and_unsuppress(client: Any, sb: Sandbox, clock: ManualClock) -> None:
    pid = client.call("create_profile", email="bounce@example.com").data["id"]
    profile = sb.store.get("profile", pid)
    assert profile is not None
    add_email_suppression(profile, "HARD_BOUNCE", clock.time())
    sb.store.put(profile)
    subscribe(client, ["bounce@example.com"])
    client.call("bulk_unsuppress_profiles", profiles=[{"email": "bounce@example.com"}])
    run_jobs(sb, clock)
    consent = email_consent(client, pid)
    assert consent["consent"] == "SUBSCRIBED" and consent["can_receive_email_marketing"] is False
    assert [s["reason"] for s in consent["suppression"]] == ["HARD_BOUNCE"]


def test_subscribe_lifts_a_manual_suppression_as_klaviyo_documents(client: Any, sb: Sandbox,
                                                                     clock: ManualClock) -> None:
    client.call("bulk_suppress_profiles", profiles=[{"email": "back@example.com"}])
    run_jobs(sb, clock)
    subscribe(client, ["back@example.com"])
    run_jobs(sb, clock)
    pid = profile_by_email(client, "back@example.com")["id"]  # type: ignore[index]
    consent = email_consent(client, pid)
    assert consent["suppression"] == [] and consent["can_receive_email_marketing"] is True


def test_suppress_a_whole_list_and_the_one_source_rule(client: Any, sb: Sandbox, clock: ManualClock,
                                                       raw: httpx.Client) -> None:
    lst = client.call("create_list", name="Cold").data["id"]
    ids = [client.call("create_profile", email=f"cold{i}@example.com").data["id"] for i in range(3)]
    client.call("add_profiles_to_list", id=lst, profile_ids=ids[:2])
    job = client.call("bulk_suppress_profiles", list_id=lst).data["id"]
    run_jobs(sb, clock)
    assert client.call("get_bulk_suppress_profiles_job", job_id=job).data["attributes"]["total_count"] == 2
    assert [bool(email_consent(client, pid)["suppression"]) for pid in ids] == [True, True, False]
    listed = client.call("get_bulk_suppress_profiles_jobs", filter=f"equals(list_id,'{lst}')").data
    assert [j["id"] for j in listed] == [job]
    both = raw.post("/api/profile-suppression-bulk-create-jobs", json={"data": {
        "type": "profile-suppression-bulk-create-job",
        "attributes": {"profiles": {"data": [{"type": "profile", "attributes": {"email": "x@example.com"}}]}},
        "relationships": {"list": {"data": {"type": "list", "id": lst}}}}})
    assert both.status_code == 400 and "exactly one" in error(both)["detail"]


def test_unsubscribe_from_a_list_or_globally(client: Any, sb: Sandbox, clock: ManualClock) -> None:
    lst = client.call("create_list", name="News").data["id"]
    subscribe(client, ["member@example.com", "other@example.com"], lst)
    run_jobs(sb, clock)
    member = profile_by_email(client, "member@example.com")["id"]  # type: ignore[index]
    other = profile_by_email(client, "other@example.com")["id"]  # type: ignore[index]
    unsub = {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}
    client.call("bulk_unsubscribe_profiles", list_id=lst,
                profiles=[{"email": "member@example.com", "subscriptions": unsub}])
    client.call("remove_profiles_from_list", id=lst, profile_ids=[other])
    run_jobs(sb, clock)
    scoped = email_consent(client, member)
    assert scoped["consent"] == "SUBSCRIBED" and [s["list_id"] for s in scoped["list_suppressions"]] == [lst]
    assert client.call("get_profiles_for_list", id=lst).data == []
    assert email_consent(client, other)["can_receive_email_marketing"] is True  # removal keeps consent
    client.call("bulk_unsubscribe_profiles", list_id=lst,
                profiles=[{"email": "other@example.com", "subscriptions": unsub}])
    run_jobs(sb, clock)
    globally = email_consent(client, other)
    assert globally["consent"] == "UNSUBSCRIBED" and globally["can_receive_email_marketing"] is False
    assert [s["reason"] for s in globally["suppression"]] == ["UNSUBSCRIBE"]


def test_sms_consent_needs_a_phone_and_can_be_withdrawn(client: Any, sb: Sandbox, clock: ManualClock) -> None:
    sms = {"sms": {"marketing": {"consent": "SUBSCRIBED"}}}
    client.call("bulk_subscribe_profiles", profiles=[{"phone_number": "+15005550009", "subscriptions": sms}])
    run_jobs(sb, clock)
    pid = client.call("get_profiles", filter="equals(phone_number,'+15005550009')").data[0]["id"]

    def sms_consent() -> Json:
        data = client.call("get_profile", id=pid, additional_fields_profile=["subscriptions"]).data
        return data["attributes"]["subscriptions"]["sms"]["marketing"]  # type: ignore[no-any-return]

    assert sms_consent()["can_receive_sms_marketing"] is True
    stop = {"sms": {"marketing": {"consent": "UNSUBSCRIBED"}}}
    client.call("bulk_unsubscribe_profiles", profiles=[{"phone_number": "+15005550009", "subscriptions": stop}])
    run_jobs(sb, clock)
    assert sms_consent()["consent"] == "UNSUBSCRIBED" and sms_consent()["can_receive_sms_marketing"] is False


@pytest.mark.parametrize("phone", ["+81312345678", "+5511987654321", "+919876543210"])
def test_sms_consent_for_a_country_without_a_sending_number_is_400(raw: httpx.Client, client: Any, sb: Sandbox,
                                                                   clock: ManualClock, phone: str) -> None:
    """Klaviyo refuses SMS consent where the account has no sending number for the number's region;
    the sandbox account sends SMS to the countries of its demo profiles (+1, +44, +61, ...)."""
    both = {"email": {"marketing": {"consent": "SUBSCRIBED"}}, "sms": {"marketing": {"consent": "SUBSCRIBED"}}}
    job = {"data": {"type": "profile-subscription-bulk-create-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": {"email": "uk@example.com", "phone_number": "+447700900123",
                                           "subscriptions": both}},
        {"type": "profile", "attributes": {"email": "far@example.com", "phone_number": phone, "subscriptions": both}},
    ]}}}}
    res = raw.post("/api/profile-subscription-bulk-create-jobs", json=job)
    assert res.status_code == 400
    err = error(res)
    assert err["source"]["pointer"] == "/data/attributes/profiles/data/1/attributes/phone_number"
    assert phone in err["detail"] and "leave the sms block out" in err["detail"]
    run_jobs(sb, clock)
    assert profile_by_email(client, "uk@example.com") is None, "the whole request was refused"
    del job["data"]["attributes"]["profiles"]["data"][1]["attributes"]["subscriptions"]["sms"]
    assert raw.post("/api/profile-subscription-bulk-create-jobs", json=job).status_code == 202  # email only
    stop = {"sms": {"marketing": {"consent": "UNSUBSCRIBED"}}}  # withdrawing is never refused
    client.call("bulk_unsubscribe_profiles", profiles=[{"phone_number": phone, "subscriptions": stop}])


def test_double_opt_in_waits_for_confirmation(client: Any, sb: Sandbox, clock: ManualClock,
                                              added_to_list: list[tuple[str, str]]) -> None:
    lst = client.call("create_list", name="Confirmed", opt_in_process="double_opt_in").data["id"]
    subscribe(client, ["doi@example.com"], lst)
    run_jobs(sb, clock)
    pid = profile_by_email(client, "doi@example.com")["id"]  # type: ignore[index]
    assert email_consent(client, pid)["consent"] == "NEVER_SUBSCRIBED"  # waits for confirmation
    assert [m["source"] for m in sb.outbox(to="doi@example.com")] == ["double_opt_in"]
    assert added_to_list == []
    profile = sb.store.get("profile", pid)
    assert profile is not None and confirm_opt_in(sb.services, profile, lst) is True
    consent = email_consent(client, pid)
    assert consent["consent"] == "SUBSCRIBED" and consent["double_optin"] is True
    assert added_to_list == [(lst, pid)]


def test_client_subscription_applies_at_once(client: Any, raw: httpx.Client) -> None:
    lst = client.call("create_list", name="Popup").data["id"]
    assert client.call("create_client_subscription", list_id=lst,
                       profile={"email": "popup@example.com", "first_name": "Pop"}).status == 202
    profile = profile_by_email(client, "popup@example.com")
    assert profile is not None and profile["attributes"]["first_name"] == "Pop"
    assert email_consent(client, profile["id"])["consent"] == "SUBSCRIBED"
    assert [p["id"] for p in client.call("get_profiles_for_list", id=lst).data] == [profile["id"]]
    with pytest.raises(KlaviyoAPIError) as exc:
        client.call("create_client_subscription", list_id="NoSuch", profile={"email": "x@example.com"})
    assert exc.value.status == 404
