"""The flow engine: what a live flow does when an event or a list addition triggers it.

On ``event_created`` every **live** flow whose metric trigger is the event's metric, whose
``trigger_filter`` matches the event's properties and whose ``profile_filter`` matches the profile
is walked from its entry action; on ``profile_added_to_list`` (payload ``{"list", "profile"}``) the
same happens for live flows triggered by that list. Walking a flow:

- ``time-delay`` moves the send time: ``value`` days (wall clock, so DST days stay days), hours or
  minutes (``secondary_value`` adds the next smaller unit), then waits until ``delay_until_time``
  on one of ``delay_until_weekdays``, in the profile's time zone (``timezone: "profile"``) or the
  zone named;
- every ``send-email`` / ``send-sms`` action is put in the outbox by ``schedule_message`` (which
  records consent and suppression skips), with source "flow", flow_id, flow_action_id,
  flow_message_id, position (1-based among message actions), subject, preview and
  trigger_event_id; a send action whose own status is not live is recorded as skipped;
- ``conditional-split`` evaluates its ``profile_filter`` and ``trigger-split`` its
  ``trigger_filter`` against the triggering event, and follow ``next_if_true`` / ``next_if_false``;
- any other action is passed through along ``links.next`` (push, webhook, update-profile, ...);
  an action without ``links.next`` (A/B tests, multi-branch splits) ends the walk.

Sandbox convention (``_common.py``): a ``send_at`` event property (ISO 8601) schedules the first
message at that time, standing in for the delays before it; later delays count from it.

Conditions (condition groups are ANDed, the conditions in a group ORed): profile-property and
metric-property conditions with string, string-list, numeric, boolean, existence, list-contains
and static-date filters; profile-marketing-consent; profile-group-membership (lists and
segments). Other conditions (predictive analytics, regions, relative dates, ...) count as met.
The profile filter is checked once, on entry, not again before each action.
``reentry_criteria`` is honoured; without it a profile may enter a flow each time it is triggered.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from .._services import Services
from .._store import Resource, Store
from ..domain import DomainBuilder
from ._common import (
    can_receive_email_marketing,
    can_receive_sms_marketing,
    event_profile,
    parse_time,
    profile_zone,
    schedule_message,
)

Json = dict[str, Any]
_d = DomainBuilder("flow_engine")
OUTBOX_CHANNELS = {"send-email": "email", "send-sms": "sms"}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MAX_STEPS = 500
_UNITS = {"days": 86400, "hours": 3600, "minutes": 60}
_SECONDARY = {"days": 3600, "hours": 60, "minutes": 1}


# -- reading flows -----------------------------------------------------------------------------
def flow_trigger(flow: Resource) -> Json:
    triggers = ((flow.attributes.get("definition") or {}).get("triggers")) or []
    return dict(triggers[0]) if triggers and isinstance(triggers[0], Mapping) else {}


def flow_actions(store: Store, flow: Resource) -> list[Resource]:
    return [a for a in (store.get(t, i) for t, i in flow.linked("flow-actions")) if a is not None]


def live_flows(svc: Services, trigger_type: str, trigger_id: str) -> list[Resource]:
    out = []
    for flow in svc.store.iter("flow"):
        trigger = flow_trigger(flow)
        if (
            flow.attributes.get("status") == "live"
            and not flow.attributes.get("archived")
            and trigger.get("type") == trigger_type
            and str(trigger.get("id")) == trigger_id
        ):
            out.append(flow)
    return out


# -- hooks -------------------------------------------------------------------------------------
@_d.on("event_created")
def on_event_created(svc: Services, event: Resource) -> None:
    metric = event.linked("metric")
    profile = event_profile(svc, event)
    if not metric or profile is None:
        return
    props = event.attributes.get("event_properties") or {}
    for flow in live_flows(svc, "metric", metric[0][1]):
        if groups_match(flow_trigger(flow).get("trigger_filter"), lambda c: metric_condition(c, props)):
            run_flow(svc, flow, profile, event)


@_d.on("profile_added_to_list")
def on_profile_added_to_list(svc: Services, payload: Mapping[str, Any]) -> None:
    lst, profile = payload.get("list"), payload.get("profile")
    if not isinstance(lst, Resource) or not isinstance(profile, Resource):
        return
    for flow in live_flows(svc, "list", lst.id):
        run_flow(svc, flow, profile, None)


# -- walking a flow ----------------------------------------------------------------------------
def run_flow(svc: Services, flow: Resource, profile: Resource, event: Resource | None) -> list[Resource]:
    """Enter ``profile`` into ``flow`` and schedule its messages; the outbox entries made."""
    definition = flow.attributes.get("definition") or {}
    if not groups_match(definition.get("profile_filter"), lambda c: profile_condition(svc, c, profile)):
        return []
    now = svc.clock.time()
    if not _may_enter(svc, flow, profile, definition.get("reentry_criteria"), now):
        return []
    props = (event.attributes.get("event_properties") or {}) if event is not None else {}
    send_at = parse_time(props.get("send_at")) if props.get("send_at") else None
    actions = {a.id: a for a in flow_actions(svc.store, flow)}
    when, position, made = now, 0, []
    current = definition.get("entry_action_id")
    for _ in range(_MAX_STEPS):
        action = actions.get(str(current)) if current else None
        if action is None:
            break
        body = action.attributes.get("definition") or {}
        kind, data = body.get("type"), body.get("data") or {}
        links = body.get("links") or {}
        if kind == "time-delay":
            when = delay(when, data, profile)
        elif kind in OUTBOX_CHANNELS:
            position += 1
            if position == 1 and send_at is not None:
                when = send_at
            made.append(_schedule(svc, flow, action, profile, event, when, position))
        elif kind == "conditional-split":
            ok = groups_match(data.get("profile_filter"), lambda c: profile_condition(svc, c, profile))
            current = links.get("next_if_true" if ok else "next_if_false")
            continue
        elif kind == "trigger-split":
            ok = event is not None and groups_match(data.get("trigger_filter"), lambda c: metric_condition(c, props))
            current = links.get("next_if_true" if ok else "next_if_false")
            continue
        current = links.get("next")
    return made


def _schedule(
    svc: Services,
    flow: Resource,
    action: Resource,
    profile: Resource,
    event: Resource | None,
    when: float,
    position: int,
) -> Resource:
    body = action.attributes.get("definition") or {}
    data = body.get("data") or {}
    message = data.get("message") or {}
    channel = OUTBOX_CHANNELS[str(body.get("type"))]
    details: Json = {
        "flow_id": flow.id,
        "flow_action_id": action.id,
        "flow_message_id": message.get("id"),
        "position": position,
        "subject": message.get("subject_line"),
        "preview": message.get("preview_text"),
        "trigger_event_id": event.id if event is not None else None,
    }
    if channel == "sms":
        details["body"] = message.get("body")
    trigger = flow_trigger(flow)
    via = str(trigger.get("id")) if channel == "email" and trigger.get("type") == "list" else None
    entry = schedule_message(svc, profile, channel=channel, source="flow", send_at=when, list_id=via, **details)
    status = data.get("status", "live")
    if status != "live" and entry.attributes.get("status") == "scheduled":
        entry.attributes.update({"status": "skipped", "skip_reason": f"flow action is {status}"})
        svc.store.put(entry)
    return entry


def _may_enter(svc: Services, flow: Resource, profile: Resource, criteria: Any, now: float) -> bool:
    """Whether ``profile`` may enter ``flow`` now (``reentry_criteria``); records the entry if so."""
    last_entry: dict[str, float] = svc.store.mutable("flow_entries", dict).setdefault(flow.id, {})
    last = last_entry.get(profile.id)
    if isinstance(criteria, Mapping) and last is not None:
        unit, duration = criteria.get("unit"), int(criteria.get("duration") or 0)
        if unit == "alltime" and duration >= 1:
            return False
        window = {"hour": 3600, "day": 86400, "week": 604800}.get(str(unit), 0) * duration
        if window and now - last < window:
            return False
    last_entry[profile.id] = now
    return True


def delay(start: float, data: Mapping[str, Any], profile: Resource | None) -> float:
    """When a profile leaves a time-delay action it reached at ``start`` (epoch seconds)."""
    tz_name = data.get("timezone") or "profile"
    zone = profile_zone(profile) if tz_name == "profile" else _zone(str(tz_name))
    unit = str(data.get("unit") or "days")
    value = int(data.get("value") or 0)
    local = _dt.datetime.fromtimestamp(start, zone)
    if unit == "days":
        local = (local.replace(tzinfo=None) + _dt.timedelta(days=value)).replace(tzinfo=zone)
        when = local.timestamp()
    else:
        when = start + value * _UNITS.get(unit, 60)
    when += int(data.get("secondary_value") or 0) * _SECONDARY.get(unit, 0)
    until, days = data.get("delay_until_time"), data.get("delay_until_weekdays")
    if not until and not days:
        return when
    allowed = {WEEKDAYS.index(d) for d in days or [] if d in WEEKDAYS} or set(range(7))
    local = _dt.datetime.fromtimestamp(when, zone).replace(tzinfo=None)
    hour, minute, second = _clock(until) if until else (0, 0, 0)
    candidate = local.replace(hour=hour, minute=minute, second=second, microsecond=0) if until else local
    if candidate < local:
        candidate += _dt.timedelta(days=1)
    while candidate.weekday() not in allowed:
        candidate = (candidate + _dt.timedelta(days=1)).replace(hour=hour, minute=minute, second=second, microsecond=0)
    return candidate.replace(tzinfo=zone).timestamp()


def _clock(text: Any) -> tuple[int, int, int]:
    parts = [int(p) for p in re.findall(r"\d+", str(text))[:3]]
    parts += [0] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


# -- conditions --------------------------------------------------------------------------------
def groups_match(node: Any, check: Any) -> bool:
    """Condition groups: every group must hold; a group holds when one of its conditions does."""
    if not isinstance(node, Mapping):
        return True
    for group in node.get("condition_groups") or []:
        conditions = (group or {}).get("conditions") or []
        if conditions and not any(check(c) for c in conditions):
            return False
    return True


def metric_condition(condition: Mapping[str, Any], props: Mapping[str, Any]) -> bool:
    if condition.get("type") != "metric-property":
        return True
    field = str(condition.get("field") or "")
    value = props.get(field, _lookup(props, field))
    return filter_matches(condition.get("filter") or {}, value)


def profile_condition(svc: Services, condition: Mapping[str, Any], profile: Resource) -> bool:
    kind = condition.get("type")
    if kind == "profile-property":
        return filter_matches(condition.get("filter") or {}, profile_value(profile, str(condition.get("property"))))
    if kind == "profile-marketing-consent":
        consent = condition.get("consent") or {}
        can = (
            can_receive_sms_marketing(profile)
            if consent.get("channel") == "sms"
            else (can_receive_email_marketing(profile))
        )
        return can == bool(consent.get("can_receive_marketing"))
    if kind == "profile-group-membership":
        groups = {i for rel in ("lists", "segments") for _, i in svc.related(profile, rel)}
        member = bool(groups & {str(g) for g in condition.get("group_ids") or []})
        return member == bool(condition.get("is_member", True))
    return True


def profile_value(profile: Resource, prop: str) -> Any:
    """A profile property as conditions name it: ``email``, ``properties['Plan']``, ``location['city']``."""
    match = re.fullmatch(r"(\w+)\[['\"](.+)['\"]\]", prop)
    if match:
        return (profile.attributes.get(match.group(1)) or {}).get(match.group(2))
    if prop in profile.attributes:
        return profile.attributes[prop]
    for container in ("location", "properties"):
        value = (profile.attributes.get(container) or {}).get(prop)
        if value is not None:
            return value
    return None


def _lookup(props: Mapping[str, Any], field: str) -> Any:
    value: Any = props
    for part in field.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def filter_matches(spec: Mapping[str, Any], value: Any) -> bool:
    """One Klaviyo condition filter (``{"type", "operator", "value"}``) against a value."""
    kind, op, expected = spec.get("type"), str(spec.get("operator") or ""), spec.get("value")
    if kind == "existence":
        present = value not in (None, "", [], {})
        return present if op == "is-set" else not present
    negate = op.startswith("not-") or op == "nregex"
    base = {"nregex": "regex", "not-in": "in"}.get(op, op[4:] if op.startswith("not-") else op)
    result = _positive(kind, base, value, expected, spec)
    return (not result) if negate else result


def _positive(kind: Any, op: str, value: Any, expected: Any, spec: Mapping[str, Any]) -> bool:
    if kind == "string":
        text = "" if value is None else str(value).lower()
        if op == "in":
            return text in {str(e).lower() for e in expected or []}
        wanted = "" if expected is None else str(expected).lower()
        checks = {
            "equals": text == wanted,
            "contains": wanted in text,
            "starts-with": text.startswith(wanted),
            "ends-with": text.endswith(wanted),
        }
        if op == "regex":
            return value is not None and re.search(str(expected), str(value)) is not None
        return checks.get(op, True)
    if kind == "numeric":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        if op == "between":
            return float(spec.get("start", 0)) <= number <= float(spec.get("end", 0))
        target = float(expected)
        return {
            "equals": number == target,
            "greater-than": number > target,
            "greater-than-or-equal": number >= target,
            "less-than": number < target,
            "less-than-or-equal": number <= target,
        }.get(op, True)
    if kind == "boolean":
        return (value in (True, "true", "True", 1)) == bool(expected)
    if kind == "list":
        items = value if isinstance(value, list) else []
        return expected in items if op == "contains" else True
    if kind == "date" and op in ("before", "after"):
        actual, bound = parse_time(value), parse_time(spec.get("date"))
        if actual is None or bound is None:
            return False
        return actual < bound if op == "before" else actual > bound
    return True


DOMAIN = _d.build()

__all__ = [
    "DOMAIN",
    "delay",
    "filter_matches",
    "flow_actions",
    "flow_trigger",
    "groups_match",
    "live_flows",
    "run_flow",
]
