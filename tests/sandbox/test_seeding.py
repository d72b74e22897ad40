"""The public seeding API: ``sandbox.seeding`` writes data straight into a sandbox's store."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from klaviyo_sandbox import DEFAULT_DOMAINS, DEMO_CAMPAIGNS, Domain, Sandbox
from klaviyo_sandbox.seeding import iso
from klaviyo_toolkit.clock import ManualClock

DAY = 86_400.0


def test_seeded_data_reads_back_through_the_api(sb: Sandbox, client: Any, clock: ManualClock) -> None:
    then = clock.time() - 3 * DAY
    ada = sb.seeding.profile(email="ada@example.com", first_name="Ada", at=then)
    metric = sb.seeding.metric("Placed Order", at=then)
    order = sb.seeding.event(ada, metric, {"OrderId": "A-1"}, value=42.5, at=then + 60, unique_id="A-1")
    again = sb.seeding.event(ada.id, "Placed Order", {"OrderId": "A-1"}, at=then + 120, unique_id="A-1")
    assert again.id == order.id  # deduplicated per profile, metric and unique_id, as Klaviyo does
    profile = client.call("get_profile", id=ada.id).data
    assert profile["attributes"]["first_name"] == "Ada" and profile["attributes"]["created"] == iso(then)
    events = client.call("get_events", filter=f"equals(metric_id,'{metric.id}')").data
    assert [e["id"] for e in events] == [order.id]
    assert events[0]["attributes"]["event_properties"] == {"OrderId": "A-1", "$value": 42.5}
    assert events[0]["attributes"]["datetime"] == iso(then + 60)
    assert sb.seeding.metric("Placed Order").id == metric.id


def test_seeded_events_are_announced_unless_told_not_to(clock: ManualClock) -> None:
    seen: list[str] = []
    recorder = Domain("recorder", hooks={"event_created": (lambda svc, event: seen.append(event.id),)})
    sb = Sandbox(domains=(*DEFAULT_DOMAINS, recorder), demo_data=False, rate_limit_factor=None, clock=clock)
    profile = sb.seeding.profile(email="bo@example.com")
    quiet = sb.seeding.event(profile, "Signed Up", trigger_flows=False, unique_id="1")
    loud = sb.seeding.event(profile, "Signed Up", unique_id="2")
    assert quiet.attributes["event_properties"] == {} and seen == [loud.id]  # flows hear of the second only
    with pytest.raises(KeyError, match="no profile"):
        sb.seeding.event("no-such-profile", "Signed Up")


def test_seeding_any_resource(sb: Sandbox, client: Any) -> None:
    lst = sb.seeding.resource("list", {"name": "Imported", "opt_in_process": "single_opt_in"}, {"profiles": []})
    assert client.call("get_list", id=lst.id).data["attributes"]["name"] == "Imported"
    fixed = sb.seeding.resource("coupon", {"external_id": "SPRING"}, id="SPRING")
    assert fixed.id == "SPRING" and sb.store.get("coupon", "SPRING") is fixed


def test_demo_campaigns_name_the_two_sends_of_yesterday() -> None:
    now = dt.datetime(2026, 11, 26, 15, 0, tzinfo=dt.UTC).timestamp()
    demo = Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock(now))
    sent = {c.attributes["name"]: c.attributes["send_time"] for c in demo.store.iter("campaign")}
    assert set(sent) == set(DEMO_CAMPAIGNS) and len(DEMO_CAMPAIGNS) == 20
    times = [sent[name] for name in DEMO_CAMPAIGNS]
    assert times[0] < times[1] and times[2:] == sorted(times[2:], reverse=True) and times[2] < times[0]
    yesterday = dt.datetime(2026, 11, 25, tzinfo=ZoneInfo("America/New_York"))
    assert [dt.datetime.fromisoformat(t).astimezone(yesterday.tzinfo).date() for t in times[:3]].count(
        yesterday.date()) == 2
    demo.close()
