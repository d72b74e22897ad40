"""Sends produce what Klaviyo would: delivery and engagement events, counted by the reports.

A campaign sent through the API (or a flow message) is delivered when the clock reaches its send
time; each recipient's engagement is drawn from a seeded model and recorded as events when their
time comes (``settle()`` records a delivered message's whole trail at once). The campaign reporter
run on a campaign sent in the same session reports it. Time is a ManualClock.
"""

from __future__ import annotations

import collections
import datetime as _dt
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.ratelimit import RateLimiter
from personas.kernel.models import ModelChoice
from personas.runtime import run_persona

TEN_AM_NY = _dt.datetime(2026, 3, 10, 14, 0, tzinfo=_dt.UTC).timestamp()  # 10:00 on the 10th in New York
DAY = 86_400.0
ENGAGEMENT = ("Received Email", "Bounced Email", "Opened Email", "Clicked Email", "Placed Order",
              "Unsubscribed from Email Marketing", "Marked Email as Spam")


def demo(clock: ManualClock) -> tuple[Sandbox, KlaviyoClient]:
    sb = Sandbox(seed=42, rate_limit_factor=None, clock=clock, validate_responses=True)
    return sb, sb.client(rate_limiter=RateLimiter(factor=None))


def send(client: KlaviyoClient, name: str, list_name: str = "Newsletter", **attrs: Any) -> str:
    lists = client.call("get_lists").data
    list_id = next(x["id"] for x in lists if x["attributes"]["name"] == list_name)
    template = client.call("create_template", name=name, editor_type="CODE", html="<p>Hello</p>").data["id"]
    campaign = client.call("create_campaign", name=name, audiences={"included": [list_id]},
                           campaign_messages=[{"definition": {"channel": "email", "content": {"subject": name}}}],
                           **attrs).data
    message = campaign["relationships"]["campaign-messages"]["data"][0]["id"]
    client.call("assign_template_to_campaign_message", id=message, template_id=template)
    client.call("send_campaign", id=campaign["id"])
    return str(campaign["id"])


def trail(client: KlaviyoClient, campaign_id: str) -> collections.Counter[str]:
    """Engagement events of a campaign, by metric name, read through the API (since the send day)."""
    names = {m["id"]: m["attributes"]["name"] for m in client.call("get_metrics").data}
    since = _dt.datetime.fromtimestamp(TEN_AM_NY, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    counts: collections.Counter[str] = collections.Counter()
    for metric_id, name in names.items():
        if name not in ENGAGEMENT:
            continue
        query = f"and(equals(metric_id,'{metric_id}'),greater-or-equal(datetime,{since}))"
        for page in client.pages("get_events", filter=query, page_size=200):
            for ev in page.data:
                props = ev["attributes"]["event_properties"]
                if campaign_id in (props.get("$campaign"), props.get("$attributed_campaign")):
                    counts[name] += 1
    return counts


def figures(client: KlaviyoClient, campaign_id: str, timeframe: dict[str, Any]) -> dict[str, Any]:
    placed = next(m["id"] for m in client.call("get_metrics").data if m["attributes"]["name"] == "Placed Order")
    results = client.call("query_campaign_values", timeframe=timeframe, conversion_metric_id=placed,
                          statistics=["recipients", "delivered", "bounced", "opens_unique", "clicks_unique",
                                      "conversions", "conversion_value", "unsubscribe_uniques", "open_rate"]
                          ).data["attributes"]["results"]
    return next(r["statistics"] for r in results if r["groupings"]["campaign_id"] == campaign_id)


def test_a_sent_campaign_leaves_klaviyos_trail_of_events() -> None:
    clock = ManualClock(TEN_AM_NY)
    sb, client = demo(clock)
    campaign = send(client, "Spring boots")
    assert sum(trail(client, campaign).values()) == 0  # the send job has not run yet
    sb.settle()  # the job runs, messages go now, their engagement plays out "as if time passed"
    scheduled = [m for m in sb.outbox(campaign_id=campaign) if m["status"] == "scheduled"]
    counts = trail(client, campaign)
    assert counts["Received Email"] + counts["Bounced Email"] == len(scheduled) > 1000
    assert 0.05 * len(scheduled) > counts["Bounced Email"] > 0  # 2.5% expected
    assert counts["Opened Email"] > counts["Clicked Email"] > counts["Placed Order"] > 0
    stats = figures(client, campaign, {"key": "today"})
    assert stats["recipients"] == len(scheduled) and stats["bounced"] == counts["Bounced Email"]
    assert stats["delivered"] == counts["Received Email"]
    assert 0.2 < stats["open_rate"] < 0.5 and stats["conversions"] == counts["Placed Order"]
    assert stats["conversion_value"] > 25 * stats["conversions"]
    assert client.call("get_campaign", id=campaign).data["attributes"]["status"] == "Sent"


def test_engagement_is_seeded_the_same_sandbox_gives_the_same_figures() -> None:
    runs = []
    for _ in range(2):
        sb, client = demo(ManualClock(TEN_AM_NY))
        campaign = send(client, "Same every time")
        sb.settle()
        runs.append(figures(client, campaign, {"key": "today"}))
    assert runs[0] == runs[1]


def test_events_arrive_when_their_time_comes() -> None:
    clock = ManualClock(TEN_AM_NY)
    _, client = demo(clock)
    campaign = send(client, "Over the day")
    clock.advance(2.0)  # the send job was due after half a second: it runs as of then, messages go then
    client.call("get_lists")  # any request applies what is due
    assert trail(client, campaign)["Opened Email"] == 0  # nobody has opened it yet
    clock.advance(90)
    early = trail(client, campaign)
    assert early["Received Email"] > 1000 and early["Opened Email"] < 200
    clock.advance(DAY)
    later = trail(client, campaign)
    assert later["Opened Email"] > 3 * max(1, early["Opened Email"]) and later["Received Email"] == early[
        "Received Email"]


def test_a_future_send_waits_for_its_time_and_a_cancelled_one_leaves_nothing() -> None:
    clock = ManualClock(TEN_AM_NY)
    sb, client = demo(clock)
    tomorrow = _dt.datetime.fromtimestamp(TEN_AM_NY + DAY, _dt.UTC).isoformat()
    strategy = {"method": "static", "datetime": tomorrow}
    cancelled = send(client, "Never", send_strategy=strategy)
    client.call("cancel_campaign_send", id=cancelled, action="cancel")
    later = send(client, "Tomorrow", send_strategy=strategy)
    sb.settle()  # the send job runs; its messages stay scheduled for tomorrow
    assert client.call("get_campaign", id=later).data["attributes"]["status"] == "Scheduled"
    assert sum(trail(client, later).values()) == 0
    clock.advance(DAY + 60)
    sb.settle()
    assert trail(client, later)["Received Email"] > 1000
    assert sum(trail(client, cancelled).values()) == 0


def test_bounces_suppress_and_unsubscribes_revoke_consent() -> None:
    clock = ManualClock(TEN_AM_NY)
    sb, client = demo(clock)
    campaign = send(client, "Consequences")
    sb.settle()
    names = {m["id"]: m["attributes"]["name"] for m in client.call("get_metrics").data}
    by_name = {name: mid for mid, name in names.items()}
    bounced = [e for e in client.call("get_events", filter=f"equals(metric_id,'{by_name['Bounced Email']}')",
                                      include=["profile"]).data
               if e["attributes"]["event_properties"].get("Bounce Type") == "hard"
               and e["attributes"]["event_properties"].get("$campaign") == campaign]
    assert bounced
    profile = bounced[0]["relationships"]["profile"]["data"]["id"]
    marketing = client.call("get_profile", id=profile, additional_fields_profile=["subscriptions"]).data[
        "attributes"]["subscriptions"]["email"]["marketing"]
    assert marketing["can_receive_email_marketing"] is False
    assert [s["reason"] for s in marketing["suppression"]] == ["HARD_BOUNCE"]


def test_a_flow_message_is_delivered_after_its_delay_and_counted_by_the_flow_report() -> None:
    clock = ManualClock(TEN_AM_NY)
    sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=clock, validate_responses=True)
    client = sb.client(rate_limiter=RateLimiter(factor=None))
    trigger = client.call("create_event", metric={"name": "Started Checkout"},
                          profile={"email": "seed@example.com"}, properties={})
    assert trigger.status == 202
    metric = next(m["id"] for m in client.call("get_metrics").data if m["attributes"]["name"] == "Started Checkout")
    flow = client.call("create_flow", name="Checkout follow-up", definition={
        "triggers": [{"type": "metric", "id": metric}], "entry_action_id": "wait",
        "actions": [
            {"temporary_id": "wait", "type": "time-delay", "links": {"next": "mail"},
             "data": {"unit": "hours", "value": 2, "timezone": "profile"}},
            {"temporary_id": "mail", "type": "send-email", "links": {"next": None},
             "data": {"message": {"subject_line": "You left something", "from_email": "shop@example.com",
                                  "from_label": "Shop"}, "status": "live"}},
        ]}).data["id"]
    client.call("update_flow", id=flow, status="live")
    people = [f"buyer{i}@example.com" for i in range(40)]
    client.call("bulk_subscribe_profiles", profiles=[
        {"email": e, "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}} for e in people])
    sb.settle()
    for email in people:
        client.call("create_event", metric={"name": "Started Checkout"}, profile={"email": email}, properties={})
    sb.settle()  # nothing is due before the two hours have passed
    assert not any(e.attributes["event_properties"].get("$flow") == flow for e in sb.store.iter("event"))
    clock.advance(2 * 3600 + 5)
    sb.settle()
    received = [e for e in sb.store.iter("event") if e.attributes["event_properties"].get("$flow") == flow]
    assert len(received) >= 40 and all(e.attributes["timestamp"] >= TEN_AM_NY + 7200 for e in received)
    placed = client.call("create_event", metric={"name": "Placed Order"}, profile={"email": "seed@example.com"},
                         properties={})
    assert placed.status == 202
    order = next(m["id"] for m in client.call("get_metrics").data if m["attributes"]["name"] == "Placed Order")
    report = client.call("query_flow_values", timeframe={"key": "today"}, conversion_metric_id=order,
                         statistics=["recipients", "opens_unique"]).data["attributes"]["results"]
    mine = [r for r in report if r["groupings"]["flow_id"] == flow]
    assert mine and sum(r["statistics"]["recipients"] for r in mine) == 40


def test_the_campaign_reporter_reports_a_campaign_sent_in_the_same_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    clock = ManualClock(TEN_AM_NY)
    sb, client = demo(clock)
    campaign = send(client, "Reported the same day")
    clock.advance(14 * 3600)  # midnight in New York: the send and the day's engagement are over
    sb.tick()
    result = run_persona("campaign-reporter", {"date": "2026-03-10"}, sandbox=sb, client=client,
                         model=ModelChoice(None, "no model (test)", "none"), clock=clock, saver=InMemorySaver(),
                         audit=False)
    rows = {row["campaign_id"]: row for row in result.state["campaigns"]}
    assert campaign in rows, sorted(rows)
    row = rows[campaign]
    direct = figures(client, campaign, {"start": "2026-03-10T00:00:00", "end": "2026-03-11T00:00:00"})
    assert row["recipients"] == direct["recipients"] > 1000
    assert row["opens_unique"] == direct["opens_unique"] > 0 and row["conversions"] == direct["conversions"]
    assert row["revenue"] == pytest.approx(direct["conversion_value"])
    assert row["name"] == "Reported the same day"
