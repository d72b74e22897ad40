"""Events, metrics and metric aggregates in the sandbox, over real HTTP (in-process transport)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_sandbox._store import Resource
from klaviyo_toolkit.clock import ManualClock

#: 2026-03-06T20:00:00Z, a Friday (15:00 in New York).
FRIDAY = 1772827200.0
MARCH_1 = "2026-03-01T00:00:00"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=FRIDAY)


def event_body(profile: dict[str, Any], metric: str = "Placed Order", props: dict[str, Any] | None = None,
               **attrs: Any) -> dict[str, Any]:
    return {"data": {"type": "event", "attributes": {
        "properties": props or {}, "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
        "profile": {"data": {"type": "profile", "attributes": profile}}, **attrs}}}


def post_event(http: httpx.Client, email: str, metric: str = "Placed Order", props: dict[str, Any] | None = None,
               **attrs: Any) -> httpx.Response:
    return http.post("/api/events", json=event_body({"email": email}, metric, props, **attrs))


def error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["errors"][0]
    return err


def metric_id(sb: Sandbox, name: str) -> str:
    found = sb.store.find("metric", "name", name)
    assert found is not None
    return found.id


# -- create_event --------------------------------------------------------------------------------
def test_create_event_records_value_profile_and_a_new_metric(sb: Sandbox, raw: httpx.Client) -> None:
    resp = post_event(raw, "Ada@Example.com", props={"Item": "Tent"}, value=129.5, value_currency="USD",
                      unique_id="order-1", time="2026-03-05T10:00:00+00:00")
    assert resp.status_code == 202 and resp.content == b""

    page = raw.get("/api/events", params={"include": "metric,profile"}).json()
    [event] = page["data"]
    assert event["attributes"]["datetime"] == "2026-03-05T10:00:00+00:00"
    assert event["attributes"]["timestamp"] == 1772704800
    props = event["attributes"]["event_properties"]
    assert props["Item"] == "Tent" and props["$value"] == 129.5 and props["$value_currency"] == "USD"
    included = {(r["type"], r["id"]): r for r in page["included"]}
    metric = included[("metric", event["relationships"]["metric"]["data"]["id"])]
    assert metric["attributes"]["name"] == "Placed Order"
    assert metric["attributes"]["integration"]["name"] == "API"
    profile = included[("profile", event["relationships"]["profile"]["data"]["id"])]
    assert profile["attributes"]["email"] == "Ada@Example.com"
    assert profile["attributes"]["last_event_date"] == "2026-03-05T10:00:00+00:00"


def test_events_with_an_existing_metric_name_reuse_it(sb: Sandbox, raw: httpx.Client) -> None:
    for i in range(3):
        assert post_event(raw, f"p{i}@example.com", "Viewed Product").status_code == 202
    metrics = raw.get("/api/metrics", params={"filter": "equals(integration.name,'API')"}).json()["data"]
    assert [m["attributes"]["name"] for m in metrics] == ["Viewed Product"]
    assert raw.get("/api/metrics", params={"filter": "equals(integration.category,'Internal')"}).json()["data"] == []


def test_unique_id_deduplicates_per_profile_and_metric(sb: Sandbox, raw: httpx.Client) -> None:
    for _ in range(2):  # a repeat is accepted, and stored once
        assert post_event(raw, "a@example.com", "Placed Order", unique_id="X1").status_code == 202
    assert post_event(raw, "b@example.com", "Placed Order", unique_id="X1").status_code == 202  # other profile
    assert post_event(raw, "a@example.com", "Started Checkout", unique_id="X1").status_code == 202  # other metric

    events = raw.get("/api/events", params={"include": "metric,profile"}).json()
    people = {r["id"]: r["attributes"]["email"] for r in events["included"] if r["type"] == "profile"}
    names = {r["id"]: r["attributes"]["name"] for r in events["included"] if r["type"] == "metric"}
    rels = [e["relationships"] for e in events["data"]]
    seen = sorted((people[r["profile"]["data"]["id"]], names[r["metric"]["data"]["id"]]) for r in rels)
    assert seen == [("a@example.com", "Placed Order"), ("a@example.com", "Started Checkout"),
                    ("b@example.com", "Placed Order")]


def test_without_unique_id_one_event_per_profile_and_second(raw: httpx.Client, clock: ManualClock) -> None:
    post_event(raw, "a@example.com")
    post_event(raw, "a@example.com")
    clock.advance(1)
    post_event(raw, "a@example.com")
    assert len(raw.get("/api/events").json()["data"]) == 2


def test_creating_an_event_never_grants_consent(sb: Sandbox, raw: httpx.Client) -> None:
    post_event(raw, "new@example.com", props={"consent": "yes"})
    profile = raw.get("/api/profiles", params={"filter": "equals(email,'new@example.com')",
                                                 "additional-fields[profile]": "subscriptions"}).json()["data"][0]
    marketing = profile["attributes"]["subscriptions"]["email"]["marketing"]
    # no explicit consent is recorded; implied email consent (no suppression) is Klaviyo's default
    assert marketing["consent"] == "NEVER_SUBSCRIBED" and marketing["consent_timestamp"] is None
    assert marketing["can_receive_email_marketing"] is True and marketing["suppression"] == []
    sms = profile["attributes"]["subscriptions"]["sms"]["marketing"]
    assert sms["consent"] == "NEVER_SUBSCRIBED" and sms["can_receive_sms_marketing"] is False


def test_an_event_finds_its_profile_by_external_id_and_patches_properties(sb: Sandbox, raw: httpx.Client) -> None:
    body = event_body({"external_id": "crm-7", "email": "x@example.com", "properties": {"skus": ["A"]}})
    assert raw.post("/api/events", json=body).status_code == 202
    body = event_body({"external_id": "crm-7", "first_name": "Xi"}, "Placed Order", unique_id="2")
    patch = {"patch_properties": {"append": {"skus": "B"}}}
    body["data"]["attributes"]["profile"]["data"]["attributes"]["meta"] = patch
    assert raw.post("/api/events", json=body).status_code == 202
    [profile] = sb.store.all("profile")
    assert profile.attributes["first_name"] == "Xi" and profile.attributes["properties"]["skus"] == ["A", "B"]
    assert len(sb.store.all("event")) == 2


@pytest.mark.parametrize(("profile", "attrs", "pointer", "says"), [
    ({"first_name": "No Identifier"}, {}, "/data/attributes/profile/data/attributes", "identifier"),
    ({"email": "a@example.com"}, {"time": "1999-12-31T23:59:59+00:00"}, "/data/attributes/time", "2000"),
    ({"email": "a@example.com"}, {"time": "2031-01-01T00:00:00+00:00"}, "/data/attributes/time", "future"),
])
def test_create_event_rejects_bad_input_naming_the_field(raw: httpx.Client, profile: dict[str, Any],
                                                         attrs: dict[str, Any], pointer: str, says: str) -> None:
    err = error(raw.post("/api/events", json=event_body(profile, **attrs)), 400)
    assert err["source"]["pointer"] == pointer and says in err["detail"]


def test_create_event_rejects_an_unknown_profile_id_and_a_long_metric_name(raw: httpx.Client) -> None:
    body = event_body({})
    body["data"]["attributes"]["profile"]["data"]["id"] = "01NOPE"
    err = error(raw.post("/api/events", json=body), 400)
    assert err["source"]["pointer"] == "/data/attributes/profile/data/id" and "01NOPE" in err["detail"]
    err = error(post_event(raw, "a@example.com", "M" * 130), 400)
    assert err["source"]["pointer"] == "/data/attributes/metric/data/attributes/name"
    err = error(raw.post("/api/events", json={"data": {"type": "event", "attributes": {"properties": {}}}}), 400)
    assert err["source"]["pointer"].startswith("/data/attributes")


# -- client events -------------------------------------------------------------------------------
def test_client_event_never_changes_an_existing_profiles_identifiers(sb: Sandbox, raw: httpx.Client) -> None:
    raw.post("/api/events", json=event_body({"external_id": "e1", "email": "old@example.com"}))
    client = httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL, headers={"revision": "2026-07-15"})
    body = event_body({"external_id": "e1", "email": "new@example.com", "first_name": "Kim"}, "Viewed Page",
                      unique_id="v1")
    resp = client.post("/client/events", params={"company_id": "SbxPub"}, json=body)
    assert resp.status_code == 202
    [profile] = sb.store.all("profile")
    assert profile.attributes["email"] == "old@example.com" and profile.attributes["first_name"] == "Kim"
    assert client.post("/client/events", params={"company_id": "nope"}, json=body).status_code == 400


def test_bulk_client_events_are_recorded_at_once(sb: Sandbox) -> None:
    client = sb.client()
    client.call("bulk_create_client_events", profile={"email": "c@example.com"}, events=[
        {"properties": "{}", "metric": {"name": "Viewed Page"}, "unique_id": "1"},
        {"properties": "{}", "metric": {"name": "Viewed Page"}, "unique_id": "2"}])
    assert len(sb.store.all("event")) == 2


# -- bulk events ---------------------------------------------------------------------------------
def bulk_entry(email: str, *events: dict[str, Any], backfill: bool | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
        "events": {"data": [{"type": "event", "attributes": e} for e in events]}}
    if backfill is not None:
        attrs["backfill"] = backfill
    return {"type": "event-bulk-create", "attributes": attrs}


def bulk_body(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": list(entries)}}}}


def ev(name: str, **attrs: Any) -> dict[str, Any]:
    metric = {"data": {"type": "metric", "attributes": {"name": name}}}
    return {"properties": attrs.pop("properties", {}), "metric": metric, **attrs}


def test_bulk_events_are_applied_when_the_job_is_due(sb: Sandbox, raw: httpx.Client, clock: ManualClock) -> None:
    body = bulk_body(bulk_entry("a@example.com", ev("Placed Order", unique_id="1", value=5),
                                ev("Placed Order", unique_id="2", value=7)),
                     bulk_entry("b@example.com", ev("Placed Order", unique_id="1")))
    resp = raw.post("/api/event-bulk-create-jobs", json=body)
    assert resp.status_code == 202 and resp.content == b""
    assert sb.store.all("event") == []
    clock.advance(5)
    sb.tick()
    events = sb.store.all("event")
    assert sorted(e.attributes["event_properties"].get("$value", 0) for e in events) == [0, 5, 7]
    assert {e.attributes["timestamp"] for e in events} == {int(FRIDAY)}  # the time the request was received
    [job] = sb.store.all("event-bulk-create-job")
    assert job.attributes["status"] == "complete" and job.attributes["completed_count"] == 3


def test_bulk_events_reject_a_repeated_unique_id_and_too_many_events(raw: httpx.Client, sb: Sandbox) -> None:
    body = bulk_body(bulk_entry("a@example.com", ev("Placed Order", unique_id="1"), ev("Placed Order", unique_id="1")))
    err = error(raw.post("/api/event-bulk-create-jobs", json=body), 400)
    entry = "/data/attributes/events-bulk-create/data/0/attributes"
    assert err["source"]["pointer"] == f"{entry}/events/data/1/attributes/unique_id"
    assert "no events were processed" in err["detail"]
    many = [ev("Viewed Page", unique_id=str(i)) for i in range(1001)]
    err = error(raw.post("/api/event-bulk-create-jobs", json=bulk_body(bulk_entry("a@example.com", *many))), 400)
    assert err["source"]["pointer"] == "/data/attributes/events-bulk-create/data" and "1000" in err["detail"]
    assert sb.store.all("event-bulk-create-job") == []


# -- reading events ------------------------------------------------------------------------------
def test_get_events_filters_sorts_and_pages_with_links_next(sb: Sandbox, raw: httpx.Client) -> None:
    for day in range(1, 6):
        post_event(raw, "a@example.com", "Placed Order", time=f"2026-03-0{day}T12:00:00+00:00", unique_id=str(day))
    post_event(raw, "b@example.com", "Viewed Page", time="2026-03-04T12:00:00+00:00")
    placed = metric_id(sb, "Placed Order")
    query = {"filter": f"and(equals(metric_id,'{placed}'),greater-or-equal(datetime,2026-03-02T00:00:00Z))",
             "sort": "-datetime", "page[size]": "3"}
    first = raw.get("/api/events", params=query).json()
    assert [e["attributes"]["datetime"][:10] for e in first["data"]] == ["2026-03-05", "2026-03-04", "2026-03-03"]
    second = raw.get(first["links"]["next"]).json()
    assert [e["attributes"]["datetime"][:10] for e in second["data"]] == ["2026-03-02"]
    assert "next" not in second["links"]

    by_time = raw.get("/api/events", params={"filter": "less-than(timestamp,1772452800)"}).json()["data"]
    assert [e["attributes"]["datetime"][:10] for e in by_time] == ["2026-03-01"]  # sorted by datetime by default
    err = error(raw.get("/api/events", params={"filter": "equals(email,'a@example.com')"}), 400)
    assert err["source"]["parameter"] == "filter"


def test_event_related_metric_profile_and_linkages(sb: Sandbox, raw: httpx.Client) -> None:
    post_event(raw, "a@example.com", "Placed Order")
    [event] = sb.store.all("event")
    assert raw.get(f"/api/events/{event.id}/metric").json()["data"]["attributes"]["name"] == "Placed Order"
    assert raw.get(f"/api/events/{event.id}/profile").json()["data"]["attributes"]["email"] == "a@example.com"
    linkage = raw.get(f"/api/events/{event.id}/relationships/profile").json()["data"]
    assert linkage == {"type": "profile", "id": event.linked("profile")[0][1]}
    assert raw.get("/api/events/NOPE").status_code == 404
    orphan = Resource("event", "01ORPHAN", {"timestamp": 0}, {}, 0, 0)
    sb.store.put(orphan)
    assert raw.get("/api/events/01ORPHAN/metric").json()["data"] is None  # the spec allows null


def test_metric_properties_are_derived_from_events(sb: Sandbox, raw: httpx.Client) -> None:
    post_event(raw, "a@example.com", "Placed Order", {"Items": ["a"], "Total": 3, "Gift": True}, unique_id="1")
    placed = metric_id(sb, "Placed Order")
    props = raw.get(f"/api/metrics/{placed}/metric-properties").json()["data"]
    kinds = {p["attributes"]["property"]: p["attributes"]["inferred_type"] for p in props}
    assert kinds["Items"] == "List" and kinds["Total"] == "Number" and kinds["Gift"] == "Boolean"
    one = raw.get(f"/api/metric-properties/{props[0]['id']}", params={"include": "metric"}).json()
    assert one["data"]["relationships"]["metric"]["data"]["id"] == placed
    sb.store.delete("metric-property", props[0]["id"])  # recomputed when asked for by id
    assert raw.get(f"/api/metric-properties/{props[0]['id']}").status_code == 200


# -- metric aggregates ---------------------------------------------------------------------------
def aggregate(http: httpx.Client, metric: str, **attrs: Any) -> httpx.Response:
    attrs.setdefault("measurements", ["count", "sum_value", "unique"])
    attrs.setdefault("filter", [f"greater-or-equal(datetime,{MARCH_1})", "less-than(datetime,2026-03-04T00:00:00)"])
    return http.post("/api/metric-aggregates", json={"data": {"type": "metric-aggregate",
                                                              "attributes": {"metric_id": metric, **attrs}}})


def seed_orders(http: httpx.Client) -> None:
    orders = [  # (email, time, value, $message)
        ("a@example.com", "2026-03-01T10:00:00+00:00", 10.0, "M1"),
        ("a@example.com", "2026-03-01T23:30:00+00:00", 5.5, "M2"),
        ("b@example.com", "2026-03-02T02:00:00+00:00", 20.0, "M1"),
        ("b@example.com", "2026-03-03T15:00:00+00:00", 4.25, "M1"),
        ("c@example.com", "2026-03-04T01:00:00+00:00", 100.0, "M1"),  # outside the range in UTC
    ]
    for i, (email, when, value, message) in enumerate(orders):
        post_event(http, email, "Placed Order", {"$message": message}, time=when, value=value, unique_id=str(i))


def test_aggregates_count_sum_and_unique_by_day(sb: Sandbox, raw: httpx.Client) -> None:
    seed_orders(raw)
    body = aggregate(raw, metric_id(sb, "Placed Order")).json()["data"]
    assert body["type"] == "metric-aggregate"
    assert body["attributes"]["dates"] == ["2026-03-01T00:00:00+00:00", "2026-03-02T00:00:00+00:00",
                                           "2026-03-03T00:00:00+00:00"]
    [row] = body["attributes"]["data"]
    assert row["dimensions"] == []
    assert row["measurements"] == {"count": [2.0, 1.0, 1.0], "sum_value": [15.5, 20.0, 4.25], "unique": [1.0, 1.0, 1.0]}


def test_aggregates_group_by_message_in_a_time_zone(sb: Sandbox, raw: httpx.Client) -> None:
    seed_orders(raw)
    resp = aggregate(raw, metric_id(sb, "Placed Order"), by=["$message"], measurements=["count", "sum_value"],
                     timezone="America/New_York", sort="-$message")
    attrs = resp.json()["data"]["attributes"]
    # New York days (EST, UTC-5): 03-01 holds 10:00Z; 03-01 23:30Z and 03-02 02:00Z fall on 03-01 local too;
    # 03-03 15:00Z is 03-03; 03-04 01:00Z is 03-03 20:00 local, inside the local range.
    assert attrs["dates"] == ["2026-03-01T05:00:00+00:00", "2026-03-02T05:00:00+00:00", "2026-03-03T05:00:00+00:00"]
    assert attrs["data"] == [
        {"dimensions": ["M2"], "measurements": {"count": [1.0, 0.0, 0.0], "sum_value": [5.5, 0.0, 0.0]}},
        {"dimensions": ["M1"], "measurements": {"count": [2.0, 0.0, 2.0], "sum_value": [30.0, 0.0, 104.25]}},
    ]


def test_aggregates_filter_on_a_dimension_and_week_and_month_intervals(sb: Sandbox, raw: httpx.Client) -> None:
    seed_orders(raw)
    placed = metric_id(sb, "Placed Order")
    rows = aggregate(raw, placed, measurements=["count"], interval="week",
                     filter=[f"greater-or-equal(datetime,{MARCH_1})", "less-than(datetime,2026-03-05T00:00:00)",
                             'equals($message,"M1")']).json()["data"]["attributes"]
    assert rows["dates"] == ["2026-02-23T00:00:00+00:00", "2026-03-02T00:00:00+00:00"]  # weeks start on Monday
    assert rows["data"][0]["measurements"]["count"] == [1.0, 3.0]
    month = aggregate(raw, placed, measurements=["count"], interval="month").json()["data"]["attributes"]
    assert month["dates"] == ["2026-03-01T00:00:00+00:00"] and month["data"][0]["measurements"]["count"] == [4.0]


@pytest.mark.parametrize(("attrs", "pointer", "says"), [
    ({"filter": ["greater-or-equal(datetime,2026-03-01T00:00:00)"]}, "/data/attributes/filter", "less-than"),
    ({"filter": ["greater-or-equal(datetime,2024-01-01)", "less-than(datetime,2026-01-01)"]},
     "/data/attributes/filter", "one year"),
    ({"filter": ["greater-or-equal(datetime,soon)", "less-than(datetime,2026-01-01)"]}, "/data/attributes/filter/0",
     "ISO 8601"),
    ({"timezone": "Mars/Olympus"}, "/data/attributes/timezone", "IANA"),
    ({"timezone": ""}, "/data/attributes/timezone", "IANA"),  # not UTC by default: no name is no time zone
    ({"timezone": "Europe/Kyiv"}, "/data/attributes/timezone", "Klaviyo does not take it"),  # the spec's exceptions
    ({"timezone": "Factory"}, "/data/attributes/timezone", "Klaviyo does not take it"),
    ({"filter": [f"greater-or-equal(datetime,{MARCH_1})", "less-than(datetime,2026-03-04T00:00:00)",
                 'equals(Coupon,"SPRING")']}, "/data/attributes/filter/2", "cannot be filtered on"),  # not a dimension
    ({"filter": [f"greater-or-equal(datetime,{MARCH_1})", "less-than(datetime,2026-03-04T00:00:00)",
                 'or(equals($message,"M1"),equals(sku,"B-1"))']}, "/data/attributes/filter/2", "'sku'"),
    ({"page_size": 0}, "/data/attributes/page_size", "at least 1"),  # not read as "unset" (500 rows)
    ({"page_size": -1}, "/data/attributes/page_size", "at least 1"),  # not a slice that drops the last row
])
def test_aggregates_reject_bad_queries(sb: Sandbox, raw: httpx.Client, attrs: dict[str, Any], pointer: str,
                                       says: str) -> None:
    post_event(raw, "a@example.com")
    err = error(aggregate(raw, metric_id(sb, "Placed Order"), **attrs), 400)
    assert err["source"]["pointer"] == pointer and says in err["detail"]


def test_aggregates_sum_only_numeric_values_and_never_fail_on_odd_ones(sb: Sandbox, raw: httpx.Client) -> None:
    # events keep whatever $value their properties were sent with; one bad value must not break the query
    for i, value in enumerate(["abc", [1], {"amount": 3}, True, "Infinity", "12.5", 7]):
        reply = post_event(raw, "a@example.com", "Placed Order", {"$value": value}, time="2026-03-01T10:00:00+00:00",
                           unique_id=str(i))
        assert reply.status_code == 202, reply.text
    resp = aggregate(raw, metric_id(sb, "Placed Order"), measurements=["count", "sum_value"])
    assert resp.status_code == 200, resp.text
    [row] = resp.json()["data"]["attributes"]["data"]
    assert row["measurements"] == {"count": [7.0, 0.0, 0.0], "sum_value": [19.5, 0.0, 0.0]}


def test_aggregates_bounds_on_datetime_all_hold_whatever_their_order(sb: Sandbox, raw: httpx.Client) -> None:
    seed_orders(raw)
    placed = metric_id(sb, "Placed Order")
    narrowed = aggregate(raw, placed, measurements=["count"], filter=[
        "greater-or-equal(datetime,2026-03-02T00:00:00)", f"greater-or-equal(datetime,{MARCH_1})",
        "less-than(datetime,2026-03-04T00:00:00)", "less-than(datetime,2026-03-05T00:00:00)"]).json()["data"]
    # the latest start and the earliest end, not the last of each written
    assert narrowed["attributes"]["dates"] == ["2026-03-02T00:00:00+00:00", "2026-03-03T00:00:00+00:00"]
    assert narrowed["attributes"]["data"][0]["measurements"]["count"] == [1.0, 1.0]
    nested = error(aggregate(raw, placed, filter=[
        f"greater-or-equal(datetime,{MARCH_1})", "less-than(datetime,2026-03-04T00:00:00)",
        "or(less-than(datetime,2026-03-02T00:00:00),equals($message,\"M2\"))"]), 400)
    assert nested["source"]["pointer"] == "/data/attributes/filter/2" and "separate filters" in nested["detail"]


def test_aggregates_rows_past_page_size_are_reached_through_links_next(sb: Sandbox, raw: httpx.Client) -> None:
    seed_orders(raw)
    metric = metric_id(sb, "Placed Order")
    everything = aggregate(raw, metric, by=["$message"]).json()
    assert [row["dimensions"] for row in everything["data"]["attributes"]["data"]] == [["M1"], ["M2"]]
    assert "next" not in everything["links"]
    first = aggregate(raw, metric, by=["$message"], page_size=1).json()
    assert first["data"]["attributes"]["data"] == everything["data"]["attributes"]["data"][:1]
    next_url = first["links"]["next"]  # rows left over are never dropped without a way to them
    [cursor] = parse_qs(urlsplit(next_url).query)["page_cursor"]
    for given in (cursor, next_url):  # the cursor, or the whole link as the SDKs pass it
        second = aggregate(raw, metric, by=["$message"], page_size=1, page_cursor=given).json()
        assert second["data"]["attributes"]["data"] == everything["data"]["attributes"]["data"][1:]
        assert "next" not in second["links"]
    other_query = error(aggregate(raw, metric, by=["$message"], page_size=2, page_cursor=cursor), 400)
    assert other_query["source"]["pointer"] == "/data/attributes/page_cursor"


def test_aggregates_reject_an_unknown_metric(raw: httpx.Client) -> None:
    err = error(aggregate(raw, "NOPE"), 400)
    assert err["source"]["pointer"] == "/data/attributes/metric_id" and "GET /api/metrics" in err["detail"]


def test_aggregates_through_the_client(sb: Sandbox, raw: httpx.Client) -> None:
    seed_orders(raw)
    resp = sb.client().call("query_metric_aggregates", metric_id=metric_id(sb, "Placed Order"), measurements=["count"],
                            filter=["greater-or-equal(datetime,2026-03-01T00:00:00)",
                                    "less-than(datetime,2026-03-02T00:00:00)"], interval="hour")
    counts = resp.data["attributes"]["data"][0]["measurements"]["count"]
    assert len(counts) == 24 and counts[10] == 1.0 and counts[23] == 1.0 and sum(counts) == 2.0
