"""The seeded demo account (Northwind Outfitters): deterministic, realistic, spec-conforming, fast."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_sandbox.domains._common import find_or_create_metric, record_event
from klaviyo_sandbox.domains.demo import words as seed_data
from klaviyo_toolkit.clock import ManualClock

NEW_YORK = ZoneInfo("America/New_York")
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
ZONES = {city[2]: (city[0], city[5]) for city in seed_data.CITIES}


@pytest.fixture(scope="module")
def seeded() -> Sandbox:
    return Sandbox(seed=42, validate_responses=True, rate_limit_factor=None, clock=ManualClock())


def metric_names(sb: Sandbox) -> dict[str, str]:
    return {m.id: m.attributes["name"] for m in sb.store.iter("metric")}


def events_of(sb: Sandbox, name: str) -> list[Any]:
    names = metric_names(sb)
    return [e for e in sb.store.iter("event") if names[e.relationships["metric"][1]] == name]  # type: ignore[index]


def snapshot(sb: Sandbox) -> dict[str, Any]:
    store = sb.store
    return {
        "ids": {t: sorted(r.id for r in store.iter(t)) for t in sorted(store.types())},
        "profiles": [(p.attributes["email"], p.attributes.get("phone_number"),
                      p.attributes["subscriptions"]["email"]["marketing"]["consent"]) for p in store.iter("profile")],
        "campaigns": sorted((c.attributes["name"], c.attributes["send_time"]) for c in store.iter("campaign")),
        "lists": {lst.attributes["name"]: len(lst.relationships["profiles"]) for lst in store.iter("list")},  # type: ignore[arg-type]
        "events": Counter(e.relationships["metric"][1] for e in store.iter("event")),  # type: ignore[index]
    }


def test_seeding_time_is_reported() -> None:
    started = time.perf_counter()
    sb = Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock())
    elapsed = time.perf_counter() - started
    print(f"\nSandbox(seed=42) with demo data: {elapsed:.2f}s, {sb.store.count('event')} events")
    assert sb.store.count("profile") == 2000


def test_same_seed_same_account_other_seed_other_account(seeded: Sandbox) -> None:
    sb = Sandbox(seed=43, rate_limit_factor=None, clock=ManualClock())
    other, expected = snapshot(sb), snapshot(seeded)
    assert other["ids"]["profile"] != expected["ids"]["profile"]
    assert other["profiles"] != expected["profiles"]
    assert other["lists"] != expected["lists"]
    sb.reset(seed=42)  # same seed, same day: the very same account
    assert snapshot(sb) == expected


@pytest.mark.parametrize("local", ["2024-03-11T00:30:00", "2024-11-04T23:59:00"])
def test_yesterday_has_data_at_any_time_of_day_and_across_dst(local: str) -> None:
    now = dt.datetime.fromisoformat(local).replace(tzinfo=NEW_YORK)
    sb = Sandbox(seed=1, rate_limit_factor=None, clock=ManualClock(start=now.timestamp()))
    yesterday = (now - dt.timedelta(days=1)).date()
    sends = [dt.datetime.fromisoformat(c.attributes["send_time"]).astimezone(NEW_YORK).date()
             for c in sb.store.iter("campaign")]
    assert sends.count(yesterday) == 2
    assert max(e.attributes["timestamp"] for e in sb.store.iter("event")) < now.timestamp()


def test_profiles_are_realistic(seeded: Sandbox) -> None:
    profiles = seeded.store.all("profile")
    assert len(profiles) == 2000
    emails = [p.attributes["email"] for p in profiles]
    assert len(set(emails)) == 2000 and all(e.split("@")[1].endswith(("example.com", "example.net", "example.org"))
                                            for e in emails)
    phones = [p.attributes["phone_number"] for p in profiles if p.attributes.get("phone_number")]
    assert 0.55 <= len(phones) / 2000 <= 0.65
    assert len(set(phones)) == len(phones) and all(E164.match(p) for p in phones)
    countries = Counter(p.attributes["location"]["country"] for p in profiles)
    assert len(countries) >= 5 and countries["US"] > 1000
    for p in profiles:
        loc = p.attributes["location"]
        assert ZONES[loc["city"]] == (loc["country"], loc["timezone"])
        ZoneInfo(loc["timezone"])
        assert {"company_size", "role", "industry", "plan", "lifetime_orders", "preferred_activity"} <= set(
            p.attributes["properties"])
    predicted = sum(1 for p in profiles if p.attributes.get("predictive_analytics"))
    assert 0.35 <= predicted / 2000 <= 0.45
    first = profiles[0]
    assert seeded.store.find("profile", "email", first.attributes["email"].upper()) is first


def test_consent_mix(seeded: Sandbox) -> None:
    mix: Counter[str] = Counter()
    sms, with_phone = 0, 0
    for p in seeded.store.iter("profile"):
        em = p.attributes["subscriptions"]["email"]["marketing"]
        reasons = [s["reason"] for s in em["suppression"]]
        unsubscribed = em["consent"] == "UNSUBSCRIBED"
        assert unsubscribed == ("UNSUBSCRIBE" in reasons)  # an unsubscribe shows as a global suppression
        mix[em["consent"] if unsubscribed or not reasons else reasons[0]] += 1
        # implied consent: an address and no global suppression (never-subscribed profiles included)
        assert em["can_receive_email_marketing"] == (bool(p.attributes.get("email")) and not reasons)
        if p.attributes.get("phone_number"):
            with_phone += 1
            sms += p.attributes["subscriptions"]["sms"]["marketing"]["consent"] == "SUBSCRIBED"
    share = {k: v / 2000 for k, v in mix.items()}
    assert 0.62 <= share["SUBSCRIBED"] <= 0.68
    assert 0.17 <= share["NEVER_SUBSCRIBED"] <= 0.23
    assert 0.10 <= share["UNSUBSCRIBED"] <= 0.14
    assert 0.02 <= share["HARD_BOUNCE"] + share["USER_SUPPRESSED"] <= 0.04
    assert share["HARD_BOUNCE"] > 0 and share["USER_SUPPRESSED"] > 0
    assert 0.29 <= sms / with_phone <= 0.41


def test_lists_and_segments(seeded: Sandbox) -> None:
    lists = {lst.attributes["name"]: lst for lst in seeded.store.iter("list")}
    assert set(lists) == {"Newsletter", "Lead Magnet — Trail Guide", "VIP Customers", "Webinar Attendees"}
    for profile_type, pid in lists["Newsletter"].linked("profiles"):
        profile = seeded.store.get(profile_type, pid)
        assert profile is not None
        assert profile.attributes["subscriptions"]["email"]["marketing"]["consent"] == "SUBSCRIBED"
    submitters = {e.relationships["profile"][1] for e in events_of(seeded, "Form submitted by profile")}
    assert {pid for _, pid in lists["Lead Magnet — Trail Guide"].linked("profiles")} == submitters
    segments = {s.attributes["name"]: s for s in seeded.store.iter("segment")}
    assert set(segments) == {"Engaged (30 days)", "Repeat Buyers", "Unengaged (90 days)"}
    for seg in segments.values():
        assert list(seeded.schemas.errors("SegmentDefinition", seg.attributes["definition"])) == []
        assert len(seg.private["members"]) > 50
    orders = Counter(e.relationships["profile"][1] for e in events_of(seeded, "Placed Order"))
    assert all(orders[pid] >= 2 for pid in segments["Repeat Buyers"].private["members"])
    opened = {e.relationships["profile"][1] for e in events_of(seeded, "Opened Email")}
    assert not opened & set(segments["Unengaged (90 days)"].private["members"])


def test_yesterday_has_two_sends_one_anomalous(seeded: Sandbox) -> None:
    now = dt.datetime.fromtimestamp(seeded.clock.time(), NEW_YORK)
    yesterday = (now - dt.timedelta(days=1)).date()
    campaigns = seeded.store.all("campaign")
    assert len(campaigns) == 20 and all(c.attributes["status"] == "Sent" for c in campaigns)
    sent_yesterday = [c for c in campaigns
                      if dt.datetime.fromisoformat(c.attributes["send_time"]).astimezone(NEW_YORK).date() == yesterday]
    assert len(sent_yesterday) >= 2
    rates = {}
    for camp in sent_yesterday:
        received = sum(1 for e in events_of(seeded, "Received Email")
                       if e.attributes["event_properties"]["$campaign"] == camp.id)
        bounced = sum(1 for e in events_of(seeded, "Bounced Email")
                      if e.attributes["event_properties"]["$campaign"] == camp.id)
        rates[camp.attributes["name"]] = bounced / (received + bounced)
    assert max(rates.values()) > 0.10 and min(rates.values()) < 0.02
    oldest = min(dt.datetime.fromisoformat(c.attributes["send_time"]) for c in campaigns)
    assert (now - oldest).days <= 90


def test_events_follow_the_shared_conventions(seeded: Sandbox) -> None:
    messages = {m.id: m for m in seeded.store.iter("campaign-message")}
    for event in events_of(seeded, "Received Email")[:500]:
        props = event.attributes["event_properties"]
        assert messages[props["$message"]].relationships["campaign"] == ("campaign", props["$campaign"])
    orders = events_of(seeded, "Placed Order")
    attributed = [o for o in orders if "$attributed_message" in o.attributes["event_properties"]]
    assert attributed and len(attributed) < len(orders)
    assert all(o.attributes["event_properties"]["$attributed_message"] in messages for o in attributed)
    assert all(o.attributes["event_properties"]["$value"] > 0 for o in orders)
    assert max(e.attributes["timestamp"] for e in seeded.store.iter("event")) < seeded.clock.time()
    fresh = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock())
    profile = fresh.store.all("profile") or [None]
    from klaviyo_sandbox.domains._common import new_profile

    person = profile[0] or new_profile(fresh.services, {"email": "a@example.com"}, fresh.clock.time())
    svc = fresh.services
    recorded, _ = record_event(svc, person, find_or_create_metric(svc, "Placed Order", 0), {"$value": 1},
                               fresh.clock.time(), trigger_flows=False)
    sample = orders[0]
    assert set(sample.attributes) == set(recorded.attributes)
    assert set(sample.relationships) == set(recorded.relationships)
    assert set(sample.private) == set(recorded.private)
    key = f"{sample.relationships['profile'][1]}|{sample.relationships['metric'][1]}|{sample.private['unique_id']}"
    assert seeded.store.value("event_unique_ids")[key] == sample.id


def test_form_submissions_carry_answers(seeded: Sandbox) -> None:
    form = seeded.store.all("form")[0]
    submissions = events_of(seeded, "Form submitted by profile")
    assert 140 <= len(submissions) <= 160
    answers = set()
    for event in submissions:
        props = event.attributes["event_properties"]
        assert (props["form_id"], props["form_name"]) == (form.id, "Trail Guide")
        answers.add(tuple(props[f] for f, _, _ in seed_data.FORM_FIELDS))
    assert len(answers) > 100
    people = [seeded.store.get("profile", e.relationships["profile"][1]) for e in submissions]
    consent = Counter(p.attributes["subscriptions"]["email"]["marketing"]["consent"] for p in people if p)
    assert consent["NEVER_SUBSCRIBED"] > 0
    assert any(p and p.attributes["subscriptions"]["email"]["marketing"]["suppression"] for p in people)
    started = events_of(seeded, "Lead Sequence Started")
    sequences = Counter(e.attributes["event_properties"]["sequence"] for e in started)
    assert set(sequences) == {"fast-track", "nurture", "education"}


def test_lead_sequence_flows_follow_the_flow_definition_schema(seeded: Sandbox) -> None:
    started = seeded.store.find("metric", "name", "Lead Sequence Started")
    newsletter = next(lst for lst in seeded.store.iter("list") if lst.attributes["name"] == "Newsletter")
    flows = {f.attributes["name"]: f for f in seeded.store.iter("flow")}
    for sequence, touches in (("fast-track", 2), ("nurture", 3), ("education", 3)):
        flow = flows[f"Lead sequence: {sequence}"]
        assert (flow.attributes["status"], flow.attributes["trigger_type"]) == ("live", "Metric")
        definition = flow.attributes["definition"]
        assert list(seeded.schemas.errors("FlowDefinition", definition)) == []
        trigger = definition["triggers"][0]
        assert (trigger["type"], trigger["id"]) == ("metric", started.id)  # type: ignore[union-attr]
        condition = trigger["trigger_filter"]["condition_groups"][0]["conditions"][0]
        assert (condition["field"], condition["filter"]["operator"], condition["filter"]["value"]) == (
            "sequence", "equals", sequence)
        kinds = [a["type"] for a in definition["actions"]]
        assert kinds == ["send-email", "time-delay", "send-email", "time-delay", "send-email"][: 2 * touches - 1]
        assert definition["actions"][1]["data"] == {**definition["actions"][1]["data"], "unit": "days", "value": 2}
        assert definition["actions"][0]["data"]["message"]["subject_line"]
        assert definition["entry_action_id"] == definition["actions"][0]["id"]
    welcome = flows["Welcome series"].attributes["definition"]
    assert welcome["triggers"] == [{"type": "list", "id": newsletter.id}]


def get_all(client: Any, op: str, **args: Any) -> list[dict[str, Any]]:
    out, cursor = [], None
    while True:
        page = client.call(op, **args, **({"page_cursor": cursor} if cursor else {}))
        out.extend(page.data)
        nxt = (page.body.get("links") or {}).get("next")
        if not nxt:
            return out
        cursor = nxt.split("page%5Bcursor%5D=")[-1].split("&")[0]


def test_every_seeded_type_conforms_through_its_endpoints(seeded: Sandbox) -> None:
    client = seeded.client(clock=ManualClock())  # its rate limiter waits on a manual clock, not for real
    store = seeded.store
    profiles = get_all(client, "get_profiles", page_size=100,
                       additional_fields_profile=["subscriptions", "predictive_analytics"])
    assert len(profiles) == 2000
    singles = {"campaign": "get_campaign", "campaign-message": "get_campaign_message", "flow-action": "get_flow_action",
               "flow-message": "get_flow_message", "form-version": "get_form_version", "template": "get_template"}
    for rtype, op in singles.items():
        for res in store.iter(rtype):
            assert client.call(op, id=res.id).data["id"] == res.id
    for flow in store.iter("flow"):
        got = client.call("get_flow", id=flow.id, additional_fields_flow=["definition"],
                          include=["flow-actions", "tags"])
        assert got.data["attributes"]["definition"]["entry_action_id"]
    lists = {"get_accounts": 1, "get_lists": 4, "get_segments": 3, "get_templates": 5, "get_flows": 4,
             "get_forms": 1, "get_metrics": 10, "get_catalog_items": 12, "get_catalog_variants": 24,
             "get_catalog_categories": 4, "get_tags": 4, "get_tag_groups": 2, "get_coupons": 1, "get_images": 3}
    for op, count in lists.items():
        assert len(get_all(client, op)) == count, op
    for res in store.iter("form"):
        assert client.call("get_form", id=res.id).data["attributes"]["definition"]["versions"]
    for seg in store.iter("segment"):
        client.call("get_segment", id=seg.id)
    assert len(get_all(client, "get_coupon_codes", filter="equals(coupon.id,'WELCOME10')", include=["coupon"])) == 25
    assert len(client.call("get_events", page_size=200).data) == 200
