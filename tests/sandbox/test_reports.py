"""The Reporting API computed from hand-built events, through real HTTP to an in-process sandbox."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from klaviyo_sandbox import PUBLIC_KEY, Sandbox
from klaviyo_sandbox._store import Resource
from klaviyo_sandbox.domains._common import find_or_create_metric, new_profile, record_event
from klaviyo_toolkit.clock import ManualClock

NEW_YORK = ZoneInfo("America/New_York")
#: 2026-07-20 10:00 in New York (14:00 UTC); "yesterday" there is July 19, 04:00 UTC to July 20, 04:00 UTC.
START = dt.datetime(2026, 7, 20, 10, 0, tzinfo=NEW_YORK).timestamp()
HEADERS = {"Authorization": "Klaviyo-API-Key pk_sandbox_demo", "revision": "2026-07-15",
           "Content-Type": "application/vnd.api+json"}
ALL = ["recipients", "delivered", "bounced", "delivery_rate", "bounce_rate", "opens", "opens_unique", "open_rate",
       "clicks", "clicks_unique", "click_rate", "click_to_open_rate", "conversions", "conversion_uniques",
       "conversion_value", "conversion_rate", "revenue_per_recipient", "average_order_value", "unsubscribes",
       "unsubscribe_uniques", "unsubscribe_rate"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
def sb(sb: Sandbox) -> Sandbox:
    """The shared empty sandbox, its account in New York."""
    sb.store.put(Resource("account", PUBLIC_KEY, {"timezone": "America/New_York"}, {}, START, START))
    return sb


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    """A July 2026 time in New York."""
    return dt.datetime(2026, 7, day, hour, minute, second, tzinfo=NEW_YORK).timestamp()


class Events:
    """Builds profiles and events directly in the store, the way Klaviyo would have logged them."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.profiles: dict[str, Resource] = {}

    def profile(self, name: str) -> Resource:
        if name not in self.profiles:
            self.profiles[name] = new_profile(self.sb.services, {"email": f"{name}@example.com"}, START - 86_400 * 30)
        return self.profiles[name]

    def metric(self, name: str) -> Resource:
        return find_or_create_metric(self.sb.services, name, START - 86_400 * 30)

    def add(self, who: str, metric: str, when: float, **props: Any) -> None:
        record_event(self.sb.services, self.profile(who), self.metric(metric), props, when,
                     unique_id=f"{who}-{metric}-{when}-{len(self.sb.store.all('event'))}", trigger_flows=False)


def campaign_with_message(client: Any, name: str) -> tuple[str, str]:
    list_id = client.call("create_list", name=f"{name} list").body["data"]["id"]
    body = client.call("create_campaign", name=name, audiences={"included": [list_id]},
                       campaign_messages=[{"definition": {"channel": "email", "content": {"subject": name}}}]).body
    return body["data"]["id"], body["data"]["relationships"]["campaign-messages"]["data"][0]["id"]


def values(client: Any, metric_id: str, **attrs: Any) -> list[dict[str, Any]]:
    attrs.setdefault("statistics", ALL)
    attrs.setdefault("timeframe", {"key": "yesterday"})
    body = client.call("query_campaign_values", conversion_metric_id=metric_id, **attrs).body
    assert body["data"]["type"] == "campaign-values-report"
    return list(body["data"]["attributes"]["results"])


@pytest.fixture
def two_campaigns(sb: Sandbox, client: Any) -> dict[str, str]:
    """Campaign A: 4 recipients, 1 bounce, 3 opens by 2 people, 1 click, 2 orders ($80) by 1 person,
    1 unsubscribe. Campaign B: 2 recipients, 1 open. Plus noise the report must ignore."""
    a, a_msg = campaign_with_message(client, "A")
    b, b_msg = campaign_with_message(client, "B")
    ev = Events(sb)
    order = ev.metric("Placed Order")
    day = 19
    for who in ("p1", "p2", "p3", "p4"):
        ev.add(who, "Received Email", at(day, 9), **{"$message": a_msg, "$campaign": a})
    ev.add("p4", "Bounced Email", at(day, 9, 1), **{"$message": a_msg, "$campaign": a})
    ev.add("p1", "Opened Email", at(day, 10), **{"$message": a_msg})
    ev.add("p1", "Opened Email", at(day, 11), **{"$message": a_msg})
    ev.add("p2", "Opened Email", at(day, 12), **{"$message": a_msg})
    ev.add("p1", "Clicked Email", at(day, 12, 5), **{"$message": a_msg})
    ev.add("p1", "Placed Order", at(day, 13), **{"$attributed_message": a_msg, "$value": 50.0})
    ev.add("p1", "Placed Order", at(day, 14), **{"$attributed_message": a_msg, "$value": 30.0})
    ev.add("p3", "Unsubscribed from Email Marketing", at(day, 15), **{"$message": a_msg})
    for who in ("p5", "p6"):
        ev.add(who, "Received Email", at(day, 9), **{"$message": b_msg, "$campaign": b})
    ev.add("p5", "Opened Email", at(day, 10), **{"$message": b_msg})
    # noise: an unattributed order, a flow email, and an open from the day before yesterday
    ev.add("p2", "Placed Order", at(day, 16), **{"$value": 99.0})
    ev.add("p2", "Received Email", at(day, 9), **{"$flow": "FLOW1", "$flow_message": "FM1", "$message": "FM1"})
    ev.add("p6", "Opened Email", at(18, 12), **{"$message": b_msg})
    return {"a": a, "a_msg": a_msg, "b": b, "b_msg": b_msg, "order": order.id}


# -- campaign values ------------------------------------------------------------------------------------------
def test_campaign_values_match_hand_computed_statistics(client: Any, two_campaigns: dict[str, str]) -> None:
    ids = two_campaigns
    results = values(client, ids["order"])
    assert [r["groupings"] for r in results] == sorted(
        [{"campaign_id": ids["a"], "campaign_message_id": ids["a_msg"], "send_channel": "email"},
         {"campaign_id": ids["b"], "campaign_message_id": ids["b_msg"], "send_channel": "email"}],
        key=lambda g: g["campaign_id"])
    a = next(r["statistics"] for r in results if r["groupings"]["campaign_id"] == ids["a"])
    assert a == {
        "recipients": 4, "delivered": 3, "bounced": 1, "delivery_rate": 0.75, "bounce_rate": 0.25,
        "opens": 3, "opens_unique": 2, "open_rate": pytest.approx(2 / 3), "clicks": 1, "clicks_unique": 1,
        "click_rate": pytest.approx(1 / 3), "click_to_open_rate": 0.5, "conversions": 2, "conversion_uniques": 1,
        "conversion_value": 80.0, "conversion_rate": pytest.approx(1 / 3),
        "revenue_per_recipient": pytest.approx(80 / 3), "average_order_value": 40.0, "unsubscribes": 1,
        "unsubscribe_uniques": 1, "unsubscribe_rate": pytest.approx(1 / 3),
    }
    b = next(r["statistics"] for r in results if r["groupings"]["campaign_id"] == ids["b"])
    assert (b["recipients"], b["opens"], b["open_rate"], b["conversions"]) == (2, 1, 0.5, 0)


def test_an_order_whose_value_is_no_number_counts_without_revenue(client: Any, sb: Sandbox,
                                                                  two_campaigns: dict[str, str]) -> None:
    ids = two_campaigns
    ev = Events(sb)  # events keep whatever $value they were sent with; a report must still answer
    ev.add("p5", "Placed Order", at(19, 17), **{"$attributed_message": ids["b_msg"], "$value": "n/a"})
    ev.add("p6", "Placed Order", at(19, 18), **{"$attributed_message": ids["b_msg"], "$value": "12.5"})
    b = next(r["statistics"] for r in values(client, ids["order"]) if r["groupings"]["campaign_id"] == ids["b"])
    assert (b["conversions"], b["conversion_uniques"], b["conversion_value"]) == (2, 2, 12.5)


def test_group_by_and_filter(client: Any, raw: httpx.Client, two_campaigns: dict[str, str]) -> None:
    ids = two_campaigns
    grouped = values(client, ids["order"], statistics=["recipients"], group_by=["campaign_id", "campaign_message_id"])
    assert {tuple(r["groupings"]) for r in grouped} == {("campaign_id", "campaign_message_id")}
    only_a = values(client, ids["order"], statistics=["recipients"],
                    filter=f"and(equals(send_channel,'email'),contains-any(campaign_id,['{ids['a']}']))")
    assert [(r["groupings"]["campaign_id"], r["statistics"]) for r in only_a] == [(ids["a"], {"recipients": 4})]
    assert values(client, ids["order"], statistics=["recipients"], filter="equals(send_channel,'sms')") == []

    def post(**attributes: Any) -> httpx.Response:
        attributes = {"statistics": ["opens"], "timeframe": {"key": "yesterday"},
                      "conversion_metric_id": ids["order"], **attributes}
        return raw.post("/api/campaign-values-reports",
                        json={"data": {"type": "campaign-values-report", "attributes": attributes}})

    for attributes, pointer, words in (
        ({"group_by": ["send_channel"]}, "/data/attributes/group_by", "campaign_id"),
        ({"filter": "or(equals(send_channel,'email'),equals(send_channel,'sms'))"}, "/data/attributes/filter", "and()"),
        ({"filter": "equals(subject,'x')"}, "/data/attributes/filter", "send_channel"),
        ({"conversion_metric_id": "NOPE"}, "/data/attributes/conversion_metric_id", "GET /api/metrics"),
        ({"timeframe": {"start": "2026-07-10T00:00:00", "end": "2026-07-01T00:00:00"}},
         "/data/attributes/timeframe/end", "after"),
        ({"timeframe": {"start": "2024-01-01T00:00:00", "end": "2026-01-01T00:00:00"}},
         "/data/attributes/timeframe", "one year"),
    ):
        reply = post(**attributes)
        assert reply.status_code == 400, attributes
        err = reply.json()["errors"][0]
        assert err["source"]["pointer"] == pointer and words in err["detail"], err


def test_yesterday_is_the_account_days_not_utc(client: Any, sb: Sandbox) -> None:
    _, msg = campaign_with_message(client, "Edges")
    ev = Events(sb)
    order = ev.metric("Placed Order")
    ev.add("early", "Received Email", at(18, 23, 59, 59), **{"$message": msg})  # day before yesterday (local)
    ev.add("first", "Received Email", at(19, 0, 0, 0), **{"$message": msg})  # yesterday's first second
    ev.add("last", "Received Email", at(19, 23, 59, 59), **{"$message": msg})  # yesterday's last second
    ev.add("today", "Received Email", at(20, 0, 0, 0), **{"$message": msg})  # today (local)
    [row] = values(client, order.id, statistics=["recipients"])
    assert row["statistics"] == {"recipients": 2}
    # The same instants in UTC days: 'early' (03:59:59 UTC on the 19th) would count, 'last' would not.
    assert dt.datetime.fromtimestamp(at(18, 23, 59, 59), dt.UTC).day == 19
    custom = values(client, order.id, statistics=["recipients"],
                    timeframe={"start": "2026-07-18T23:00:00+00:00", "end": "2026-07-19T00:00:01Z"})
    assert custom[0]["statistics"] == {"recipients": 2}  # offsets ignored: New York wall-clock times


def test_no_campaigns_is_an_empty_report(client: Any, sb: Sandbox) -> None:
    order = find_or_create_metric(sb.services, "Placed Order", START)
    assert values(client, order.id, timeframe={"key": "last_30_days"}) == []


def test_one_call_covers_many_campaigns(client: Any, sb: Sandbox) -> None:
    ev = Events(sb)
    order = ev.metric("Placed Order")
    messages = [campaign_with_message(client, f"C{i}") for i in range(12)]
    for i, (_, msg) in enumerate(messages):
        for n in range(i + 1):
            ev.add(f"p{n}", "Received Email", at(15, 9), **{"$message": msg})
    results = values(client, order.id, statistics=["recipients"], timeframe={"key": "last_7_days"})
    counts = {r["groupings"]["campaign_id"]: r["statistics"]["recipients"] for r in results}
    assert counts == {cid: i + 1 for i, (cid, _) in enumerate(messages)}


# -- flows, forms, segments -------------------------------------------------------------------------------------
def test_flow_values_and_series(client: Any, sb: Sandbox, two_campaigns: dict[str, str]) -> None:
    ev = Events(sb)
    for day, who in ((14, "f1"), (16, "f2"), (16, "f3")):
        ev.add(who, "Received Email", at(day, 8), **{"$flow": "FLOW1", "$flow_message": "FM1", "$message": "FM1"})
    ev.add("f2", "Opened Email", at(16, 9), **{"$flow": "FLOW1", "$flow_message": "FM1"})
    ev.add("f2", "Placed Order", at(16, 10), **{"$attributed_flow": "FLOW1", "$attributed_message": "FM1",
                                                "$value": 20.0})
    body = client.call("query_flow_values", statistics=["recipients", "opens_unique", "conversion_value"],
                       timeframe={"key": "last_7_days"}, conversion_metric_id=two_campaigns["order"]).body
    rows = body["data"]["attributes"]["results"]
    assert rows == [{"groupings": {"flow_id": "FLOW1", "flow_message_id": "FM1", "send_channel": "email"},
                     "statistics": {"recipients": 4, "opens_unique": 1, "conversion_value": 20.0}}]
    series = client.call("query_flow_series", statistics=["recipients"], timeframe={"key": "last_7_days"},
                         interval="daily", conversion_metric_id=two_campaigns["order"]).body["data"]["attributes"]
    assert series["date_times"][0] == "2026-07-13T00:00:00-04:00" and len(series["date_times"]) == 7
    [row] = series["results"]
    assert row["statistics"]["recipients"] == [0, 1, 0, 2, 0, 0, 1]


def test_series_intervals_are_limited(raw: httpx.Client, sb: Sandbox) -> None:
    order = find_or_create_metric(sb.services, "Placed Order", START)
    reply = raw.post("/api/flow-series-reports", json={"data": {"type": "flow-series-report", "attributes": {
        "statistics": ["opens"], "timeframe": {"key": "last_90_days"}, "interval": "daily",
        "conversion_metric_id": order.id}}})
    assert reply.status_code == 400
    err = reply.json()["errors"][0]
    assert err["source"]["pointer"] == "/data/attributes/interval" and "60 days" in err["detail"]


def test_form_values(client: Any, sb: Sandbox) -> None:
    ev = Events(sb)
    for who in ("v1", "v2", "v3", "v4"):
        ev.add(who, "Form viewed by profile", at(19, 9), form_id="F1")
    ev.add("v1", "Form viewed by profile", at(19, 10), form_id="F1")
    ev.add("v1", "Form submitted by profile", at(19, 10), form_id="F1")
    ev.add("x", "Form submitted by profile", at(19, 10), form_id="F2")
    body = client.call("query_form_values", statistics=["viewed_form", "viewed_form_uniques", "submits", "submit_rate"],
                       timeframe={"key": "yesterday"}, filter="equals(form_id,'F1')").body
    assert body["data"]["attributes"]["results"] == [
        {"groupings": {"form_id": "F1"},
         "statistics": {"viewed_form": 5, "viewed_form_uniques": 4, "submits": 1, "submit_rate": 0.25}}]


def test_segment_values_report_current_members(client: Any, sb: Sandbox) -> None:
    for name in ("s1", "s2"):
        profile = new_profile(sb.services, {"email": f"{name}@example.com"}, START)
        profile.attributes["properties"] = {"plan": "pro"}
    condition = {"type": "profile-property", "property": "properties['plan']",
                 "filter": {"type": "string", "operator": "equals", "value": "pro"}}
    seg = client.call("create_segment", name="Pro", definition={"condition_groups": [{"conditions": [condition]}]})
    sid = seg.body["data"]["id"]
    body = client.call("query_segment_values", statistics=["total_members", "net_members_changed"],
                       timeframe={"key": "last_30_days"}, filter=f"equals(segment_id,'{sid}')").body
    assert body["data"]["attributes"]["results"] == [
        {"groupings": {"segment_id": sid}, "statistics": {"total_members": 2, "net_members_changed": 0}}]


# -- the daily limit ----------------------------------------------------------------------------------------------
def test_the_226th_report_of_the_day_is_throttled() -> None:
    clock = ManualClock(start=START)
    sb = Sandbox(validate_responses=True, demo_data=False, rate_limit_factor=1.0, clock=clock)
    order = find_or_create_metric(sb.services, "Placed Order", START)
    body = {"data": {"type": "campaign-values-report", "attributes": {
        "statistics": ["opens"], "timeframe": {"key": "yesterday"}, "conversion_metric_id": order.id}}}
    with httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL, headers=HEADERS) as http:
        first = http.post("/api/campaign-values-reports", json=body)
        assert first.status_code == 200
        assert http.post("/api/campaign-values-reports", json=body).status_code == 429  # 1/s burst
        for _ in range(224):
            clock.advance(30.5)  # inside the 1/s and 2/min limits
            assert http.post("/api/campaign-values-reports", json=body).status_code == 200
        clock.advance(30.5)
        over = http.post("/api/campaign-values-reports", json=body)
    assert over.status_code == 429
    err = over.json()["errors"][0]
    assert err["code"] == "throttled" and "day" in err["detail"]
    elapsed = 225 * 30.5
    assert int(over.headers["Retry-After"]) == pytest.approx(86_400 - elapsed, abs=2)


def test_a_bounce_without_a_receipt_still_counts_as_a_recipient(client: Any, sb: Sandbox) -> None:
    _, msg = campaign_with_message(client, "Bounces")
    ev = Events(sb)
    order = ev.metric("Placed Order")
    ev.add("r1", "Received Email", at(19, 9), **{"$message": msg})
    ev.add("r2", "Received Email", at(19, 9), **{"$message": msg})
    ev.add("r2", "Bounced Email", at(19, 9, 5), **{"$message": msg})  # after its receipt
    ev.add("r3", "Bounced Email", at(19, 9, 5), **{"$message": msg})  # instead of a receipt
    [row] = values(client, order.id, statistics=["recipients", "delivered", "bounced", "bounce_rate"])
    assert row["statistics"] == {"recipients": 3, "delivered": 1, "bounced": 2, "bounce_rate": pytest.approx(2 / 3)}
