"""Sandbox domain: segments. The definition is stored; membership is computed by evaluating it.

A definition's ``condition_groups`` are combined with AND, the conditions inside a group with OR
(Klaviyo's Segments API overview). Conditions the sandbox evaluates:

- ``profile-property``: string, numeric, boolean, date (absolute and relative), list and
  existence filters on a profile attribute (``first_name``, ``location['city']``) or a custom
  property (``properties['plan']``, or a bare name that is not a standard attribute). A property
  that is not set matches only ``not-set``;
- ``profile-group-membership``: in (or in none of) the given lists/segments, optionally joined
  within a timeframe; a segment is never defined through itself, directly or by way of other
  segments (each would be empty);
- ``profile-marketing-consent``: email and SMS, following the shared consent helpers (can receive =
  subscribed, has the identifier and, for email, is not suppressed); consent filters are not
  evaluated;
- ``profile-metric``: count or sum (``$value``) of the profile's events for a metric within a
  timeframe, with ``metric_filters`` on event properties;
- ``profile-predictive-analytics`` numeric dimensions, read from stored ``predictive_analytics``.

Anything else (regions, postal-code distance, push consent, custom objects, funnels, anniversary
dates, phone country codes, consent filters) is **not evaluated**: such a segment's members are the
ones stored in ``private["members"]`` (profile ids, or id -> joined epoch), as a seeder may set.
``joined_group_at`` is when the sandbox first saw the profile in the segment
(``private["joined"]``). Other domains read members with ``svc.related(segment, "profiles")``.
A segment counts toward the account's 1,000 lists and segments (``lists.check_group_room``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._context import Ctx, Reply
from .._jsonapi import bad_request, iso
from .._services import Services
from .._store import Linkage, Resource, Store
from ..domain import DomainBuilder
from ._common import can_receive_email_marketing, can_receive_sms_marketing, email_marketing, parse_time, sms_marketing
from .lists import check_group_room, joined_at, member_ids, member_view, members_reply

Json = dict[str, Any]
_d = DomainBuilder("segments")
UNITS = {"hour": 3600.0, "day": 86400.0, "week": 604800.0}
STANDARD = {
    "email",
    "phone_number",
    "external_id",
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
    "created",
    "updated",
    "last_event_date",
}


class Unsupported(Exception):
    """A condition the sandbox does not evaluate (the segment falls back to stored members)."""


@dataclass
class Env:
    """What evaluating one definition needs: the services, the time, and a per-run events index."""

    svc: Services
    now: float
    stack: tuple[str, ...] = ()
    _events: dict[str, dict[str, list[tuple[float, Json]]]] = field(default_factory=dict)
    only: str | None = None  # index just this profile's events (evaluating one profile)

    _lists: dict[str, set[str]] = field(default_factory=dict)

    def nested(self, segment_id: str) -> Env:
        """The same run, one segment deeper (for group-membership conditions naming a segment)."""
        return Env(self.svc, self.now, (*self.stack, segment_id), self._events, self.only, self._lists)

    def in_list(self, lst: Resource, profile_id: str) -> bool:
        if lst.id not in self._lists:
            self._lists[lst.id] = set(member_ids(lst))
        return profile_id in self._lists[lst.id]

    def events(self, metric_id: str) -> dict[str, list[tuple[float, Json]]]:
        """Profile id -> [(timestamp, event properties)] for one metric (all indexed in one pass)."""
        if not self._events:
            self._events[""] = {}
            for event in self.svc.store.iter("event"):
                metric, profile = event.relationships.get("metric"), event.relationships.get("profile")
                if isinstance(metric, tuple) and isinstance(profile, tuple) and self.only in (None, profile[1]):
                    self._events.setdefault(metric[1], {}).setdefault(profile[1], []).append(
                        (
                            float(event.attributes.get("timestamp") or event.created),
                            event.attributes.get("event_properties") or {},
                        )
                    )
        return self._events.get(metric_id, {})


Predicate = Callable[[Resource, Env], bool]
ValueTest = Callable[[Any, float], bool]


# -- filters on values -----------------------------------------------------------------------------
def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _compare_numbers(op: str, a: float, b: float) -> bool:
    return {
        "equals": a == b,
        "not-equals": a != b,
        "greater-than": a > b,
        "greater-than-or-equal": a >= b,
        "less-than": a < b,
        "less-than-or-equal": a <= b,
    }[op]


def time_window(spec: Json) -> Callable[[float, float], bool]:
    """A test on (epoch, now) for a date filter or timeframe; Unsupported for anniversaries."""
    op = spec.get("operator")
    if op == "alltime":
        return lambda t, now: True
    if op in ("after", "before"):
        at = parse_time(spec.get("date"))
        if at is None:
            raise Unsupported("date")
        return (lambda t, now: t > at) if op == "after" else (lambda t, now: t < at)
    if op == "between-static":
        start, end = parse_time(spec.get("start")), parse_time(spec.get("end"))
        if start is None or end is None:
            raise Unsupported("date range")
        return lambda t, now: start <= t <= end
    unit = UNITS.get(str(spec.get("unit")))
    if unit is None:
        raise Unsupported(f"date operator {op}")
    if op in ("in-the-last", "at-least", "in-the-next"):
        span = float(spec.get("quantity") or 0) * unit
        if op == "in-the-last":
            return lambda t, now: now - span <= t <= now
        if op == "at-least":
            return lambda t, now: t <= now - span
        return lambda t, now: now <= t <= now + span
    if op == "between":
        lo, hi = sorted((float(spec.get("start") or 0), float(spec.get("end") or 0)))
        return lambda t, now: now - hi * unit <= t <= now - lo * unit
    raise Unsupported(f"date operator {op}")


def value_test(spec: Json) -> ValueTest:
    """Compile a property filter into a test on (value, now); a missing value fails all but not-set."""
    kind, op, expected = spec.get("type"), str(spec.get("operator")), spec.get("value")
    if kind == "existence":
        if op == "is-set":
            return lambda v, now: v not in (None, "", [], {})
        return lambda v, now: v in (None, "", [], {})
    test: ValueTest
    if kind == "string" and op in ("in", "not-in"):
        options = {str(x) for x in expected or []}
        test = (lambda v, now: str(v) in options) if op == "in" else (lambda v, now: str(v) not in options)
    elif kind == "string":
        if op.startswith("phone-country-code"):
            raise Unsupported(op)
        text = "" if expected is None else str(expected)
        if op in ("regex", "nregex"):
            pattern = re.compile(text)
            test = (
                (lambda v, now: bool(pattern.search(str(v))))
                if op == "regex"
                else (lambda v, now: not pattern.search(str(v)))
            )
        else:
            base = op.removeprefix("not-")
            checks: dict[str, Callable[[str], bool]] = {
                "equals": lambda s: s == text,
                "contains": lambda s: text in s,
                "starts-with": lambda s: s.startswith(text),
                "ends-with": lambda s: s.endswith(text),
            }
            check = checks[base]
            negate = op.startswith("not-")
            test = lambda v, now: check(str(v)) != negate  # noqa: E731
    elif kind == "numeric":
        target = _number(expected)
        if target is None:
            raise Unsupported("numeric value")
        test = lambda v, now: (n := _number(v)) is not None and _compare_numbers(op, n, target)  # noqa: E731
    elif kind == "boolean":
        want = bool(expected)
        test = lambda v, now: (v if isinstance(v, bool) else str(v).lower() == "true") == want  # noqa: E731
    elif kind == "date":
        window = time_window(spec)
        test = lambda v, now: (t := parse_time(v)) is not None and window(t, now)  # noqa: E731
    elif kind == "list" and op in ("contains", "not-contains"):
        test = (
            (lambda v, now: isinstance(v, list) and expected in v)
            if op == "contains"
            else (lambda v, now: isinstance(v, list) and expected not in v)
        )
    elif kind == "list" and op.startswith("length-"):
        size_op = op.removeprefix("length-")
        target_len = float(expected or 0)
        test = lambda v, now: isinstance(v, list) and _compare_numbers(size_op, len(v), target_len)  # noqa: E731
    else:
        raise Unsupported(f"{kind} filter {op}")
    return lambda v, now: v not in (None, "") and test(v, now)


# -- conditions ------------------------------------------------------------------------------------
def property_reader(name: str) -> Callable[[Resource], Any]:
    """How a condition's ``property`` is read: ``location['city']``, ``properties['x']``, ``first_name``."""
    match = re.fullmatch(r"(\w+)\[['\"](.+)['\"]\]", name)
    if match:
        head, key = match.groups()
        return lambda p: (p.attributes.get(head) or {}).get(key)
    if name.startswith("properties."):
        key = name.removeprefix("properties.")
        return lambda p: (p.attributes.get("properties") or {}).get(key)
    if name in STANDARD:
        return lambda p: p.attributes.get(name)
    return lambda p: (p.attributes.get("properties") or {}).get(name)


def _group_member(env: Env, group_id: str, profile: Resource) -> float | None:
    """When ``profile`` joined list/segment ``group_id`` (None if not a member)."""
    lst = env.svc.store.get("list", group_id)
    if lst is not None:
        return joined_at(lst, profile) if env.in_list(lst, profile.id) else None
    seg = env.svc.store.get("segment", group_id)
    if seg is None or seg.id in env.stack:
        return None
    if not segment_contains(env.svc, seg, profile, env.nested(seg.id)):
        return None
    return float((seg.private.get("joined") or {}).get(profile.id, max(seg.created, profile.created)))


def _consent_test(consent: Json) -> Callable[[Resource], bool]:
    channel, can = consent.get("channel"), bool(consent.get("can_receive_marketing"))
    status = consent.get("consent_status") or {}
    sub = status.get("subscription")
    if status.get("filters"):
        raise Unsupported("consent filters")
    if channel == "email":

        def state(p: Resource) -> tuple[bool, Any]:
            return can_receive_email_marketing(p), email_marketing(p).get("consent")
    elif channel == "sms":

        def state(p: Resource) -> tuple[bool, Any]:
            return can_receive_sms_marketing(p), sms_marketing(p).get("consent")
    else:
        raise Unsupported(f"{channel} consent")
    wanted = {"subscribed": "SUBSCRIBED", "unsubscribed": "UNSUBSCRIBED", "never_subscribed": "NEVER_SUBSCRIBED"}
    if sub == "any":
        return lambda p: state(p)[0] == can
    if sub in wanted:
        return lambda p: state(p) == (can, wanted[sub])
    raise Unsupported(f"consent status {sub}")


def compile_condition(cond: Json) -> Predicate:
    kind = cond.get("type")
    if kind == "profile-property":
        read, test = property_reader(str(cond.get("property"))), value_test(cond.get("filter") or {})
        return lambda p, env: test(read(p), env.now)
    if kind == "profile-group-membership":
        ids = [str(g) for g in cond.get("group_ids") or []]
        window = time_window(cond["timeframe_filter"]) if cond.get("timeframe_filter") else None
        if not cond.get("is_member"):
            return lambda p, env: all(_group_member(env, g, p) is None for g in ids)

        def member(p: Resource, env: Env) -> bool:
            for g in ids:
                when = _group_member(env, g, p)
                if when is not None and (window is None or window(when, env.now)):
                    return True
            return False

        return member
    if kind == "profile-marketing-consent":
        consent_ok = _consent_test(cond.get("consent") or {})
        return lambda p, env: consent_ok(p)
    if kind == "profile-metric":
        return _metric_condition(cond)
    if kind == "profile-predictive-analytics" and (cond.get("filter") or {}).get("type") == "numeric":
        dim, test = str(cond.get("dimension")), value_test(cond["filter"])
        return lambda p, env: test((p.attributes.get("predictive_analytics") or {}).get(dim), env.now)
    raise Unsupported(f"condition type {kind}")


def _metric_condition(cond: Json) -> Predicate:
    metric_id, measurement = str(cond.get("metric_id")), cond.get("measurement")
    mf = cond.get("measurement_filter") or {}
    target = _number(mf.get("value"))
    if target is None or measurement not in ("count", "sum"):
        raise Unsupported("metric measurement")
    op = str(mf.get("operator"))
    window = time_window(cond.get("timeframe_filter") or {"operator": "alltime"})
    prop_tests = [
        (str(f.get("property")), value_test(f.get("filter") or {"type": "existence", "operator": "is-set"}))
        for f in cond.get("metric_filters") or []
    ]

    def check(p: Resource, env: Env) -> bool:
        total = 0.0
        for ts, props in env.events(metric_id).get(p.id, []):
            if window(ts, env.now) and all(t(props.get(key), env.now) for key, t in prop_tests):
                total += 1 if measurement == "count" else (_number(props.get("$value")) or 0.0)
        return _compare_numbers(op, total, target)

    return check


def compile_definition(definition: Json) -> Predicate:
    """AND over condition groups, OR inside each; raises Unsupported for what is not evaluated."""
    groups = [
        [compile_condition(c) for c in g.get("conditions") or []] for g in definition.get("condition_groups") or []
    ]
    return lambda p, env: all(any(c(p, env) for c in group) for group in groups)


# -- membership ------------------------------------------------------------------------------------
def _predicate(seg: Resource) -> Predicate | None:
    try:
        return compile_definition(seg.attributes.get("definition") or {})
    except Unsupported:
        return None


def _stored(seg: Resource) -> dict[str, float]:
    members = seg.private.get("members") or []
    if isinstance(members, dict):
        return {str(k): float(v) for k, v in members.items()}
    return {str(pid): seg.created for pid in members}


def segment_contains(svc: Services, seg: Resource, profile: Resource, env: Env | None = None) -> bool:
    pred = _predicate(seg)
    if pred is None:
        return profile.id in _stored(seg)
    return pred(profile, env or Env(svc, svc.clock.time(), (seg.id,), only=profile.id))


def segment_members(svc: Services, seg: Resource) -> list[Resource]:
    """Member profiles as render copies with ``joined_group_at`` (first time seen as members)."""
    now = svc.clock.time()
    pred = _predicate(seg)
    if pred is None:
        stored = _stored(seg)
        pairs = [(p, stored[p.id]) for p in (svc.store.get("profile", pid) for pid in stored) if p is not None]
        return [member_view(p, when) for p, when in pairs]
    env = Env(svc, now, (seg.id,))
    members = [p for p in svc.store.iter("profile") if pred(p, env)]
    joined: dict[str, float] = seg.private.get("joined") or {}
    fresh = {p.id: float(joined.get(p.id, now)) for p in members}
    if fresh != joined:
        seg.private["joined"] = fresh
        svc.store.put(seg)
    return [member_view(p, fresh[p.id]) for p in members]


@_d.related("segment", "profiles")
def _segment_profiles(svc: Services, seg: Resource) -> list[Linkage]:
    return [("profile", p.id) for p in segment_members(svc, seg)]


@_d.related("profile", "segments")
def _profile_segments(svc: Services, profile: Resource) -> list[Linkage]:
    env = Env(svc, svc.clock.time(), only=profile.id)
    return [
        ("segment", seg.id)
        for seg in svc.store.iter("segment")
        if segment_contains(svc, seg, profile, env.nested(seg.id))
    ]


# -- handlers --------------------------------------------------------------------------------------
def _check_definition(ctx: Ctx, definition: Any, self_id: str | None = None) -> None:
    base = "/data/attributes/definition"
    groups = definition.get("condition_groups") if isinstance(definition, dict) else None
    if not groups:
        raise bad_request(
            "A segment definition needs at least one condition group, e.g. "
            '{"condition_groups": [{"conditions": [...]}]}.',
            pointer=f"{base}/condition_groups",
        )
    for gi, group in enumerate(groups):
        if not group.get("conditions"):
            raise bad_request(
                "Each condition group needs at least one condition.", pointer=f"{base}/condition_groups/{gi}/conditions"
            )
        for ci, cond in enumerate(group["conditions"]):
            where = f"{base}/condition_groups/{gi}/conditions/{ci}"
            membership = cond.get("type") == "profile-group-membership"
            for n, gid in enumerate(cond.get("group_ids") or [] if membership else []):
                if gid == self_id:
                    raise bad_request(
                        "A segment cannot be defined by membership of itself.", pointer=f"{where}/group_ids"
                    )
                loop = _loop_through(ctx.store, str(gid), self_id) if self_id else None
                if loop:
                    raise bad_request(
                        "A segment cannot be defined by membership of itself, even through other segments: "
                        f"{' -> '.join([self_id or '', *loop])} is a loop. Define it by the lists or conditions "
                        f"of {gid!r} instead.",
                        pointer=f"{where}/group_ids/{n}",
                    )
                if ctx.store.get("list", gid) is None and ctx.store.get("segment", gid) is None:
                    raise bad_request(
                        f"No list or segment has id {gid!r}; use ids from get_lists or get_segments.",
                        pointer=f"{where}/group_ids",
                    )
            filt = cond.get("filter") if isinstance(cond.get("filter"), dict) else {}
            if filt.get("operator") in ("regex", "nregex"):
                try:
                    re.compile(str(filt.get("value") or ""))
                except re.error as exc:
                    raise bad_request(
                        f"The regular expression {filt.get('value')!r} is invalid ({exc}).",
                        pointer=f"{where}/filter/value",
                    ) from None
            if cond.get("type") == "profile-metric" and ctx.store.get("metric", str(cond.get("metric_id"))) is None:
                raise bad_request(
                    f"No metric has id {cond.get('metric_id')!r}; use an id from get_metrics.",
                    pointer=f"{where}/metric_id",
                )


def _member_groups(seg: Resource) -> list[str]:
    """The lists and segments whose membership ``seg``'s definition names."""
    definition = seg.attributes.get("definition")
    groups = definition.get("condition_groups") if isinstance(definition, dict) else None
    return [
        str(gid)
        for group in groups or []
        if isinstance(group, dict)
        for cond in group.get("conditions") or []
        if isinstance(cond, dict) and cond.get("type") == "profile-group-membership"
        for gid in cond.get("group_ids") or []
    ]


def _loop_through(store: Store, start: str, target: str) -> list[str] | None:
    """The chain of segments from ``start`` whose definitions lead back to segment ``target`` (ending
    with it), or None: a segment defined through itself has no members to find, in Klaviyo or here."""
    seen: set[str] = set()
    stack: list[list[str]] = [[start]]
    while stack:
        chain = stack.pop()
        if chain[-1] == target:
            return chain
        seg = store.get("segment", chain[-1])
        if seg is None or chain[-1] in seen:
            continue
        seen.add(chain[-1])
        stack.extend([*chain, gid] for gid in _member_groups(seg))
    return None


@_d.handles("create_segment")
def create_segment(ctx: Ctx) -> Reply:
    attrs = ctx.attrs
    name = str(attrs.get("name") or "").strip()
    if not name:
        raise bad_request("A segment needs a name.", pointer="/data/attributes/name")
    _check_definition(ctx, attrs.get("definition"))
    check_group_room(ctx.svc, "segment")
    now = ctx.now
    seg = Resource(
        "segment",
        ctx.store.new_id("segment", now),
        {
            "name": name,
            "definition": attrs["definition"],
            "is_starred": bool(attrs.get("is_starred")),
            "is_active": True,
            "is_processing": False,
            "created": iso(now),
            "updated": iso(now),
        },
        {},
        now,
        now,
        {},
    )
    ctx.store.put(seg)
    segment_members(ctx.svc, seg)  # members present now join now
    return ctx.one(seg, status=201)


@_d.handles("update_segment")
def update_segment(ctx: Ctx) -> Reply:
    seg = ctx.get("segment")
    ctx.check_body_id(seg.id)
    # A segment is nothing without its name and conditions: null (clearing) either is refused, as an
    # empty name is (is_starred and is_active are refused null before this: a segment always has them).
    for key, what in (("name", "A segment's name cannot be empty"), ("definition", "A segment needs its conditions")):
        if key in ctx.attrs and ctx.attrs[key] is None:
            raise bad_request(f"{what}; {key} cannot be cleared. Give a new one.", pointer=f"/data/attributes/{key}")
    attrs = {k: v for k, v in ctx.attrs.items() if v is not None}
    if attrs.get("is_active") is False and len(attrs) > 1:
        raise bad_request(
            "Deactivating a segment must be the only change in the request; send is_active=false "
            "alone, then the other changes.",
            pointer="/data/attributes/is_active",
        )
    if "definition" in attrs:
        _check_definition(ctx, attrs["definition"], seg.id)
    if "name" in attrs and not str(attrs["name"]).strip():
        raise bad_request("A segment's name cannot be empty.", pointer="/data/attributes/name")
    seg.attributes.update(attrs)
    seg.attributes["updated"] = ctx.now_iso
    seg.updated = ctx.now
    ctx.store.put(seg)
    return ctx.one(seg)


@_d.handles("get_segment")
def get_segment(ctx: Ctx) -> Reply:
    seg = ctx.get("segment")
    if "profile_count" in (ctx.list_param("additional-fields[segment]") or []):
        count = len(segment_members(ctx.svc, seg))
        seg = Resource(
            seg.type,
            seg.id,
            {**seg.attributes, "profile_count": count},
            seg.relationships,
            seg.created,
            seg.updated,
            seg.private,
        )
    return ctx.one(seg)


@_d.handles("get_profiles_for_segment", "get_profile_ids_for_segment")
def get_segment_members(ctx: Ctx) -> Reply:
    seg = ctx.get("segment")
    return members_reply(
        ctx, segment_members(ctx.svc, seg), ids_only=ctx.op.operation_id == "get_profile_ids_for_segment"
    )


DOMAIN = _d.build()
