"""Sandbox domain: what happens after a campaign or flow message goes out — delivery and engagement.

In Klaviyo a sent message leaves a trail of events on the recipient's profile, and those events are
what the Reporting API counts: "Received Email" (or "Bounced Email"), "Opened Email", "Clicked
Email", "Unsubscribed from Email Marketing", "Marked Email as Spam", and conversions ("Placed
Order", with ``$value``) attributed to the message. The sandbox makes the same trail:

- every message ``schedule_message`` puts in the outbox as scheduled is **delivered** when the
  clock reaches its ``send_at`` (unless the entry was skipped or cancelled meanwhile, or the
  recipient can no longer receive marketing on its channel);
- delivery draws the recipient's **engagement** from a seeded model — the same recipient and
  message always engage the same way — and queues each event for the time it happens: the receipt
  within a minute, opens over the following hours, a click minutes after an open, an order within
  two hours of a click; a hard bounce suppresses the address and an unsubscribe revokes consent,
  as they would in Klaviyo;
- each event is recorded when its time comes (``Sandbox.settle()`` records a delivered message's
  whole trail at once, as if the hours had passed), carrying ``$message`` and ``$campaign`` (or
  ``$flow`` and ``$flow_message``), so campaign and flow reports count it. Conversions are
  attributed with ``$attributed_message`` and ``$attributed_campaign`` / ``$attributed_flow``.

Rates (of delivered messages unless said): email 1% hard and 1.5% soft bounces, opens 35% (times a
per-recipient affinity of 0.5-1.5), clicks 25% of openers, orders 15% of clickers (25-250 in value),
unsubscribes 0.6% and spam complaints 0.1% of openers; SMS 2% failed, clicks 10%, orders 12% of
clickers, unsubscribes 1%; push 10% opens.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._services import Services
from .._store import Resource
from ..domain import DomainBuilder
from ._common import (
    add_email_suppression,
    can_receive_email_marketing,
    can_receive_sms_marketing,
    find_or_create_metric,
    record_event,
    set_email_consent,
    set_sms_consent,
)

Json = dict[str, Any]
_d = DomainBuilder("deliveries")
#: Deferred-work runners: one delivery at the message's send time, then one per engagement event.
DELIVER = "deliveries:deliver"
ENGAGE = "deliveries:engage"
CONVERSION_METRIC = "Placed Order"
HOUR = 3600.0


@dataclass
class Step:
    """One event of a recipient's engagement with a message."""

    at: float
    metric: str
    kind: str
    value: float | None = None
    effect: str | None = None  # "hard_bounce" | "unsubscribe_email" | "unsubscribe_sms" | "spam"
    extra: Json = field(default_factory=dict)


# -- scheduling a delivery ------------------------------------------------------------------------
@_d.on("message_scheduled")
def on_message_scheduled(svc: Services, entry: Resource) -> None:
    """Deliver the message when its send time comes (not before, even on ``settle``)."""
    svc.jobs.defer(DELIVER, {"outbox_id": entry.id}, float(entry.private.get("send_at", entry.created)),
                   settles=False)


@_d.job(DELIVER)
def deliver(svc: Services, item: Resource) -> None:
    entry = svc.store.get("outbox-message", str(item.private["payload"]["outbox_id"]))
    if entry is None or entry.attributes.get("status") != "scheduled":
        return  # skipped, cancelled or reverted since it was scheduled
    profile = svc.store.get("profile", str(entry.attributes.get("profile_id")))
    channel = str(entry.attributes.get("channel") or "email")
    if profile is None or not _can_receive(profile, channel):
        entry.private["undelivered"] = "the recipient can no longer receive marketing on this channel"
        svc.store.put(entry)
        return
    sent = float(item.private.get("due", svc.clock.time()))
    base = message_properties(svc, entry)
    for n, step in enumerate(engagement(entry, profile, channel, sent)):
        payload = {
            "profile_id": profile.id,
            "metric": step.metric,
            "properties": {**(_conversion(base, entry) if step.metric == CONVERSION_METRIC else base), **step.extra},
            "at": step.at,
            "value": step.value,
            "unique_id": f"{entry.id}:{step.kind}:{n}",
            "effect": step.effect,
            "channel": channel,
        }
        svc.jobs.defer(ENGAGE, payload, step.at)
    entry.private["delivered"] = sent
    svc.store.put(entry)


@_d.job(ENGAGE)
def engage(svc: Services, item: Resource) -> None:
    step = item.private["payload"]
    profile = svc.store.get("profile", str(step["profile_id"]))
    if profile is None:
        return  # deleted (or merged away) since
    when = float(step["at"])
    service = None if step["metric"] == CONVERSION_METRIC else "klaviyo"
    metric = find_or_create_metric(svc, str(step["metric"]), when, service)
    record_event(svc, profile, metric, step["properties"], when, unique_id=str(step["unique_id"]),
                 value=step.get("value"))
    effect = step.get("effect")
    if effect == "hard_bounce":
        add_email_suppression(profile, "HARD_BOUNCE", when)
    elif effect == "spam":
        add_email_suppression(profile, "SPAM_COMPLAINT", when)
    elif effect == "unsubscribe_email":
        set_email_consent(profile, "UNSUBSCRIBED", when, method="EMAIL_UNSUBSCRIBE")
    elif effect == "unsubscribe_sms":
        set_sms_consent(profile, "UNSUBSCRIBED", when, method="SMS_UNSUBSCRIBE")
    if effect:
        svc.store.put(profile)


# -- what a message's events carry ----------------------------------------------------------------
def message_properties(svc: Services, entry: Resource) -> Json:
    """The properties Klaviyo puts on a message's events: the campaign's or the flow's message ids."""
    attrs = entry.attributes
    props: Json = {"Subject": attrs.get("subject")} if attrs.get("subject") else {}
    if attrs.get("source") == "campaign":
        campaign = svc.store.get("campaign", str(attrs.get("campaign_id")))
        props.update({"$message": attrs.get("campaign_message_id"), "$campaign": attrs.get("campaign_id"),
                      "Campaign Name": campaign.attributes.get("name") if campaign else None})
    else:
        flow = svc.store.get("flow", str(attrs.get("flow_id")))
        message = attrs.get("flow_message_id") or attrs.get("flow_action_id")
        props.update({"$flow": attrs.get("flow_id"), "$flow_message": message, "$message": message,
                      "Flow Name": flow.attributes.get("name") if flow else None})
    return {k: v for k, v in props.items() if v is not None}


def _conversion(base: Mapping[str, Any], entry: Resource) -> Json:
    """An order attributed to the message (and its campaign or flow), as Klaviyo attributes it."""
    props: Json = {"$attributed_message": base.get("$message")}
    if entry.attributes.get("source") == "campaign":
        props["$attributed_campaign"] = base.get("$campaign")
    else:
        props["$attributed_flow"] = base.get("$flow")
    return {k: v for k, v in props.items() if v is not None}


def _can_receive(profile: Resource, channel: str) -> bool:
    if channel == "email":
        return can_receive_email_marketing(profile)
    if channel == "sms":
        return can_receive_sms_marketing(profile)
    return True


# -- the engagement model -------------------------------------------------------------------------
def engagement(entry: Resource, profile: Resource, channel: str, sent: float) -> list[Step]:
    """The events one recipient's engagement with one message makes (seeded; see module docstring)."""
    rng = random.Random(_seed(entry.id, profile.id, str(entry.attributes.get("campaign_message_id")
                                                          or entry.attributes.get("flow_action_id"))))
    affinity = 0.5 + (_seed(profile.id) % 1000) / 1000  # how engaged this person is, 0.5-1.5
    if channel == "sms":
        return _sms(rng, affinity, sent)
    if channel != "email":
        received = sent + rng.uniform(1, 30)
        steps = [Step(received, "Received Push", "received")]
        if rng.random() < 0.10 * affinity:
            steps.append(Step(received + rng.expovariate(1 / HOUR), "Opened Push", "open"))
        return steps
    return _email(rng, affinity, sent)


def _email(rng: random.Random, affinity: float, sent: float) -> list[Step]:
    received = sent + rng.uniform(2, 60)
    bounce = rng.random()
    if bounce < 0.01:
        return [Step(received, "Bounced Email", "bounce", effect="hard_bounce", extra={"Bounce Type": "hard"})]
    if bounce < 0.025:
        return [Step(received, "Bounced Email", "bounce", extra={"Bounce Type": "soft"})]
    steps = [Step(received, "Received Email", "received")]
    if rng.random() >= 0.35 * affinity:
        return steps
    opened = received + min(rng.expovariate(1 / (1.5 * HOUR)), 72 * HOUR)
    steps.append(Step(opened, "Opened Email", "open"))
    if rng.random() < 0.35:
        steps.append(Step(opened + rng.expovariate(1 / (4 * HOUR)), "Opened Email", "open"))
    if rng.random() < 0.006:
        steps.append(Step(opened + rng.uniform(30, 300), "Unsubscribed from Email Marketing", "unsubscribe",
                          effect="unsubscribe_email"))
        return steps
    if rng.random() < 0.001:
        steps.append(Step(opened + rng.uniform(30, 300), "Marked Email as Spam", "spam", effect="spam"))
        return steps
    if rng.random() < 0.25 * affinity:
        clicked = opened + rng.uniform(10, 600)
        steps.append(Step(clicked, "Clicked Email", "click"))
        if rng.random() < 0.15:
            steps.append(_order(rng, clicked))
    return steps


def _sms(rng: random.Random, affinity: float, sent: float) -> list[Step]:
    received = sent + rng.uniform(1, 10)
    if rng.random() < 0.02:
        return [Step(received, "Failed to Deliver SMS", "failed")]
    steps = [Step(received, "Received SMS", "received")]
    if rng.random() < 0.01:
        steps.append(Step(received + rng.uniform(60, 3600), "Unsubscribed from SMS Marketing", "unsubscribe",
                          effect="unsubscribe_sms"))
        return steps
    if rng.random() < 0.10 * affinity:
        clicked = received + rng.expovariate(1 / (0.5 * HOUR))
        steps.append(Step(clicked, "Clicked SMS", "click"))
        if rng.random() < 0.12:
            steps.append(_order(rng, clicked))
    return steps


def _order(rng: random.Random, clicked: float) -> Step:
    value = round(rng.uniform(25, 250), 2)
    return Step(clicked + rng.uniform(5 * 60, 2 * HOUR), CONVERSION_METRIC, "order", value=value,
                extra={"OrderId": f"SBX-{rng.randrange(10**8):08d}", "ItemCount": rng.randint(1, 4)})


def _seed(*parts: str) -> int:
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:16], 16)


DOMAIN = _d.build()

__all__ = ["CONVERSION_METRIC", "DOMAIN", "engagement", "message_properties"]
