"""Conventions every domain module shares: how profiles, consent, metrics, events and outbox
messages are stored, and the helpers to read and change them consistently.

Storage (``Resource.attributes`` mirror the shapes Klaviyo returns):

- **profile**: email, phone_number, external_id, first_name, last_name, organization, locale,
  title, image, created, updated, last_event_date, location{...}, properties{...},
  subscriptions{email.marketing, sms.marketing, ...} (always present, see ``default_subscriptions``),
  predictive_analytics (optional). Identity lookups use exact indexes on email (case-insensitive),
  phone_number and external_id (case-sensitive, as metric names are).
- **metric**: name, created, updated, integration{object, id, key, name, category}.
- **event**: timestamp (int seconds), datetime (ISO), event_properties{...}, uuid; relationships
  ``profile`` and ``metric``; ``private["unique_id"]``. Revenue is ``event_properties["$value"]``.
  Campaign engagement events carry ``$message`` (campaign-message id) and ``$campaign``; conversions
  carry ``$attributed_message`` / ``$attributed_flow``; flow sends carry ``$flow`` and ``$flow_message``.
- **outbox-message** (sandbox only, ``/sandbox/outbox``): to, channel, profile_id, source ("flow" |
  "campaign"), flow_id, flow_action_id, campaign_id, campaign_message_id, subject, preview, send_at
  (ISO UTC), status ("scheduled" | "skipped"), skip_reason, trigger_event_id, created.

Sandbox convention (documented in the README): when a flow's triggering event has a ``send_at``
property (ISO 8601), the flow's first message is scheduled then, standing in for a time delay
configured in the account; otherwise the flow's time-delay actions decide.
"""

from __future__ import annotations

import datetime as _dt
import math
import uuid
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from .._context import Ctx
from .._jsonapi import SandboxError, bad_request, iso
from .._services import Services
from .._store import Resource

Json = dict[str, Any]
IDENTIFIERS = ("email", "phone_number", "external_id")
EMAIL_METRICS = (
    "Received Email",
    "Opened Email",
    "Clicked Email",
    "Bounced Email",
    "Unsubscribed from Email Marketing",
)
KLAVIYO_INTEGRATION: Json = {
    "object": "integration",
    "id": "0rG4eQ",
    "key": "klaviyo",
    "name": "Klaviyo",
    "category": "Internal",
}
API_INTEGRATION: Json = {"object": "integration", "id": "7FtS4J", "key": "api", "name": "API", "category": "API"}


# -- time ----------------------------------------------------------------------------------------
def utc(ts: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC)


def parse_time(value: Any) -> float | None:
    """Epoch seconds from an ISO string, datetime or number (None if not a time)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, _dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=_dt.UTC)).timestamp()
    try:
        when = _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=_dt.UTC)).timestamp()


def profile_zone(profile: Resource | None, default: str = "UTC") -> ZoneInfo:
    name = ((profile.attributes.get("location") or {}).get("timezone") if profile else None) or default
    try:
        return ZoneInfo(str(name))
    except (KeyError, ValueError):
        return ZoneInfo(default)


# -- consent ---------------------------------------------------------------------------------------
# Klaviyo's rule, as its spec states it for ``EmailMarketing.can_receive_email_marketing``: "Whether
# or not this profile has implicit consent to receive email marketing. True if [the] profile does
# not have any global suppressions." A profile with an email address and no global suppression can
# be emailed (campaigns and flows), NEVER_SUBSCRIBED or SUBSCRIBED alike; unsubscribing is recorded
# as consent UNSUBSCRIBED *and* an ``UNSUBSCRIBE`` suppression, so an unsubscribed profile cannot.
# A list suppression (an unsubscribe from one list) keeps the profile out of that list's sends only.
# SMS needs explicit consent: SUBSCRIBED and a phone number.
def default_subscriptions() -> Json:
    """A profile that never subscribed to anything (``can_receive_email_marketing`` is set from its
    email by ``refresh_consent``)."""
    return {
        "email": {
            "marketing": {
                "can_receive_email_marketing": False,
                "consent": "NEVER_SUBSCRIBED",
                "consent_timestamp": None,
                "last_updated": None,
                "method": None,
                "method_detail": None,
                "custom_method_detail": None,
                "double_optin": None,
                "suppression": [],
                "list_suppressions": [],
            }
        },
        "sms": {
            "marketing": {
                "can_receive_sms_marketing": False,
                "consent": "NEVER_SUBSCRIBED",
                "consent_timestamp": None,
                "method": None,
                "method_detail": None,
                "last_updated": None,
            }
        },
    }


def subscriptions(profile: Resource) -> Json:
    subs = profile.attributes.get("subscriptions")
    if not isinstance(subs, dict) or "email" not in subs:
        subs = default_subscriptions()
        profile.attributes["subscriptions"] = subs
    _refresh_flags(profile, subs)
    return subs


def _refresh_flags(profile: Resource, subs: Json) -> None:
    defaults = default_subscriptions()
    for channel in ("email", "sms"):
        if not isinstance(subs.get(channel), dict) or not isinstance(subs[channel].get("marketing"), dict):
            subs[channel] = {**(subs.get(channel) or {}), "marketing": defaults[channel]["marketing"]}
    em, sm = subs["email"]["marketing"], subs["sms"]["marketing"]
    em["can_receive_email_marketing"] = _email_ok(profile, em)
    sm["can_receive_sms_marketing"] = _sms_ok(profile, sm)


def refresh_consent(profile: Resource) -> None:
    """Bring the stored ``can_receive_*_marketing`` flags in line with the profile (after its email
    or phone number changed): they are derived, never set on their own."""
    subscriptions(profile)


def email_marketing(profile: Resource) -> Json:
    return subscriptions(profile)["email"]["marketing"]  # type: ignore[no-any-return]


def sms_marketing(profile: Resource) -> Json:
    return subscriptions(profile)["sms"]["marketing"]  # type: ignore[no-any-return]


def is_suppressed(profile: Resource) -> bool:
    """Whether the profile has a global email suppression (an unsubscribe counts as one)."""
    em = email_marketing(profile)
    return bool(em.get("suppression")) or em.get("consent") == "UNSUBSCRIBED"


def is_list_suppressed(profile: Resource, list_id: str) -> bool:
    """Whether the profile unsubscribed from the list ``list_id`` (its sends skip the profile)."""
    entries = email_marketing(profile).get("list_suppressions") or []
    return any(isinstance(s, dict) and s.get("list_id") == list_id for s in entries)


def _email_ok(profile: Resource, em: Mapping[str, Any]) -> bool:
    return bool(profile.attributes.get("email")) and not em.get("suppression") and em.get("consent") != "UNSUBSCRIBED"


def _sms_ok(profile: Resource, sm: Mapping[str, Any]) -> bool:
    return bool(profile.attributes.get("phone_number")) and sm.get("consent") == "SUBSCRIBED"


def can_receive_email_marketing(profile: Resource, list_id: str | None = None) -> bool:
    """Implied consent: an email and no global suppression (see above); with ``list_id``, also no
    suppression for that list."""
    ok = _email_ok(profile, email_marketing(profile))
    return ok and not (list_id is not None and is_list_suppressed(profile, list_id))


def can_receive_sms_marketing(profile: Resource) -> bool:
    """Explicit consent: SMS marketing SUBSCRIBED and a phone number."""
    return _sms_ok(profile, sms_marketing(profile))


def set_email_consent(
    profile: Resource,
    consent: str,
    now: float,
    method: str = "API",
    method_detail: str | None = None,
    consented_at: float | None = None,
) -> None:
    """Record an email marketing consent change; an unsubscribe is also a global ``UNSUBSCRIBE``
    suppression, as Klaviyo shows it (other suppressions still block sending after a subscribe)."""
    em = email_marketing(profile)
    em["consent"] = consent
    em["method"] = method
    em["method_detail"] = method_detail
    em["last_updated"] = iso(now)
    if consent == "SUBSCRIBED":
        em["consent_timestamp"] = iso(consented_at if consented_at is not None else now)
    if consent == "UNSUBSCRIBED":
        add_email_suppression(profile, "UNSUBSCRIBE", now)
    refresh_consent(profile)


def set_sms_consent(profile: Resource, consent: str, now: float, method: str = "API") -> None:
    sm = sms_marketing(profile)
    sm["consent"] = consent
    sm["method"] = method
    sm["last_updated"] = iso(now)
    if consent == "SUBSCRIBED":
        sm["consent_timestamp"] = iso(now)
    refresh_consent(profile)


def suppress_email(profile: Resource, reason: str, now: float) -> None:
    em = email_marketing(profile)
    em["suppression"] = [{"reason": reason, "timestamp": iso(now)}]
    em["last_updated"] = iso(now)
    refresh_consent(profile)


def unsuppress_email(profile: Resource, now: float) -> None:
    em = email_marketing(profile)
    em["suppression"] = []
    em["last_updated"] = iso(now)
    refresh_consent(profile)


def add_email_suppression(profile: Resource, reason: str, now: float) -> bool:
    """Add a suppression ``reason`` keeping any others (a hard bounce outlives a manual
    suppression); False when the profile already had it."""
    em = email_marketing(profile)
    current = [s for s in em.get("suppression") or [] if isinstance(s, dict)]
    if any(s.get("reason") == reason for s in current):
        return False
    em["suppression"] = [*current, {"reason": reason, "timestamp": iso(now)}]
    em["last_updated"] = iso(now)
    refresh_consent(profile)
    return True


def remove_email_suppressions(profile: Resource, reasons: tuple[str, ...], now: float) -> list[str]:
    """Remove suppressions whose reason is in ``reasons`` (others stay); the reasons removed."""
    em = email_marketing(profile)
    current = [s for s in em.get("suppression") or [] if isinstance(s, dict)]
    removed = [str(s.get("reason")) for s in current if s.get("reason") in reasons]
    if removed:
        em["suppression"] = [s for s in current if s.get("reason") not in reasons]
        em["last_updated"] = iso(now)
        refresh_consent(profile)
    return removed


# -- profiles ---------------------------------------------------------------------------------------
def new_profile(svc: Services, attrs: Mapping[str, Any], now: float, rid: str | None = None) -> Resource:
    """A stored profile with the given attributes and default consent (never subscribed)."""
    res = Resource("profile", rid or svc.store.new_id("profile", now), {}, {}, now, now)
    res.attributes.update({k: v for k, v in attrs.items() if v is not None and k not in ("subscriptions",)})
    res.attributes.setdefault("properties", {})
    res.attributes.setdefault("location", None)
    res.attributes["created"] = iso(now)
    res.attributes["updated"] = iso(now)
    res.attributes["subscriptions"] = default_subscriptions()
    refresh_consent(res)
    svc.store.put(res)
    return res


def find_profile(svc: Services, identifiers: Mapping[str, Any]) -> Resource | None:
    """The profile matching ``id``, then email, phone number or external id (first found)."""
    if identifiers.get("id"):
        return svc.store.get("profile", str(identifiers["id"]))
    for key in IDENTIFIERS:
        if identifiers.get(key):
            found = svc.store.find("profile", key, identifiers[key])
            if found is not None:
                return found
    return None


def find_or_create_profile(svc: Services, attrs: Mapping[str, Any], now: float) -> tuple[Resource, bool]:
    """(profile, created) for the identifiers in ``attrs``; updates given attributes on a match."""
    profile = find_profile(svc, attrs)
    if profile is None:
        if not any(attrs.get(k) for k in (*IDENTIFIERS, "id", "anonymous_id", "_kx")):
            raise bad_request("A profile needs an id, email, phone_number or external_id.", pointer="/data/attributes")
        return new_profile(svc, attrs, now), True
    for key, value in attrs.items():
        if key in ("id", "subscriptions") or value is None:
            continue
        if key == "properties" and isinstance(value, dict):
            profile.attributes.setdefault("properties", {}).update(value)
        else:
            profile.attributes[key] = value
    profile.attributes["updated"] = iso(now)
    profile.updated = now
    refresh_consent(profile)
    svc.store.put(profile)
    return profile, False


# -- metrics and events -------------------------------------------------------------------------------
def find_or_create_metric(svc: Services, name: str, now: float, service: str | None = None) -> Resource:
    metric = svc.store.find("metric", "name", name)
    if metric is not None:
        return metric
    integration = KLAVIYO_INTEGRATION if name in EMAIL_METRICS or service == "klaviyo" else API_INTEGRATION
    if service and service not in ("api", "API", "klaviyo"):
        integration = {**API_INTEGRATION, "key": service, "name": service}
    metric = Resource(
        "metric",
        svc.store.new_id("metric", now),
        {"name": name, "created": iso(now), "updated": iso(now), "integration": integration},
        {},
        now,
        now,
    )
    svc.store.put(metric)
    return metric


def event_unique_id(unique_id: str | None, when: float) -> str:
    """The ``unique_id`` an event is stored under: its own, or else its time to the second (the spec:
    "If this is not present, this will use the time to the second")."""
    return str(unique_id or int(when))


def event_value(value: Any) -> float:
    """An event's ``$value`` as revenue is summed (metric aggregates, reports): a number, or a string
    holding one; anything else (text, a list, an object, a boolean, NaN or infinity) adds nothing
    rather than failing the whole query, since events keep whatever properties they were sent with."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return 0.0
    try:
        number = float(value)
    except ValueError:
        return 0.0
    return number if math.isfinite(number) else 0.0


def record_event(
    svc: Services,
    profile: Resource,
    metric: Resource,
    properties: Mapping[str, Any] | None,
    when: float,
    *,
    unique_id: str | None = None,
    value: float | None = None,
    trigger_flows: bool = True,
) -> tuple[Resource, bool]:
    """Store an event (deduplicated by ``unique_id`` per profile and metric); (event, created).

    A new event updates the profile's last_event_date and is announced as ``event_created`` so
    flows can react (unless ``trigger_flows`` is false, as for backfills).
    """
    uid = event_unique_id(unique_id, when)
    key = f"{profile.id}|{metric.id}|{uid}"
    dedup: dict[str, str] = svc.store.mutable("event_unique_ids", dict)
    if key in dedup:
        existing = svc.store.get("event", dedup[key])
        if existing is not None:
            return existing, False
    props = dict(properties or {})
    if value is not None:
        props["$value"] = value
    event = Resource(
        "event",
        svc.store.new_id("event", when),
        {
            "timestamp": int(when),
            "datetime": iso(when),
            "event_properties": props,
            "uuid": str(uuid.UUID(int=svc.store.rng.getrandbits(128))),
        },
        {"profile": ("profile", profile.id), "metric": ("metric", metric.id)},
        when,
        when,
        {"unique_id": uid},
    )
    svc.store.put(event)
    dedup[key] = event.id
    last = parse_time(profile.attributes.get("last_event_date"))
    if last is None or when > last:
        profile.attributes["last_event_date"] = iso(when)
        svc.store.put(profile)
    if trigger_flows:
        svc.emit("event_created", event)
    return event, True


def event_metric_name(svc: Services, event: Resource) -> str | None:
    links = event.linked("metric")
    metric = svc.store.get("metric", links[0][1]) if links else None
    return str(metric.attributes.get("name")) if metric else None


def event_profile(svc: Services, event: Resource) -> Resource | None:
    links = event.linked("profile")
    return svc.store.get("profile", links[0][1]) if links else None


# -- outbox --------------------------------------------------------------------------------------------
def schedule_message(
    svc: Services,
    profile: Resource,
    *,
    channel: str,
    source: str,
    send_at: float,
    list_id: str | None = None,
    **details: Any,
) -> Resource:
    """Put a message for ``profile`` in the outbox, or a skipped entry saying why it cannot go.

    Email goes to every profile with an address and no global suppression (implied consent), and
    not to one suppressed for ``list_id`` (the list the send reached it through); SMS needs
    explicit consent. The skip is recorded, not silently dropped. A scheduled message is announced
    as ``message_scheduled`` (the deliveries domain delivers it at ``send_at`` and records what follows).
    """
    to = profile.attributes.get("email") if channel == "email" else profile.attributes.get("phone_number")
    allowed = (
        can_receive_email_marketing(profile, list_id) if channel == "email" else can_receive_sms_marketing(profile)
    )
    reason = None
    if not to:
        reason = f"no {'email' if channel == 'email' else 'phone number'}"
    elif not allowed:
        if channel != "email":
            reason = "no marketing consent"
        elif is_suppressed(profile):
            reason = "suppressed"
        else:
            reason = "suppressed for this list"
    entry = svc.outbox.add(
        to=to,
        channel=channel,
        profile_id=profile.id,
        source=source,
        send_at=iso(send_at),
        status="skipped" if reason else "scheduled",
        skip_reason=reason,
        **details,
    )
    entry.private["send_at"] = send_at
    svc.store.put(entry)
    if reason is None:
        svc.emit("message_scheduled", entry)
    return entry


def require(condition: bool, detail: str, pointer: str | None = None) -> None:
    if not condition:
        raise bad_request(detail, pointer=pointer)


def conflict(detail: str, **meta: Any) -> SandboxError:
    return SandboxError(
        409, "duplicate_profile" if "duplicate_profile_id" in meta else "conflict", "Conflict.", detail, meta=meta
    )


__all__ = [
    "Ctx",
    "Json",
    "Resource",
    "SandboxError",
    "add_email_suppression",
    "bad_request",
    "can_receive_email_marketing",
    "can_receive_sms_marketing",
    "conflict",
    "default_subscriptions",
    "email_marketing",
    "event_metric_name",
    "event_unique_id",
    "event_value",
    "event_profile",
    "find_or_create_metric",
    "find_or_create_profile",
    "find_profile",
    "is_list_suppressed",
    "is_suppressed",
    "iso",
    "new_profile",
    "parse_time",
    "profile_zone",
    "record_event",
    "refresh_consent",
    "remove_email_suppressions",
    "require",
    "schedule_message",
    "set_email_consent",
    "set_sms_consent",
    "sms_marketing",
    "subscriptions",
    "suppress_email",
    "unsuppress_email",
    "utc",
]
