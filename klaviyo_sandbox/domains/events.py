"""Sandbox domain: events and metrics as Klaviyo records them.

- ``create_event`` / ``create_client_event`` (202): the profile is found by id, email, phone number
  or external id, or created; the metric is found by name or created; ``value`` is stored as
  ``$value`` and ``value_currency`` as ``$value_currency``; ``unique_id`` deduplicates per profile
  and metric (a repeat is accepted and stored once); ``backfill: true`` records without triggering
  flows. Creating an event never grants consent. The client endpoint never changes the identifiers
  of an existing profile (Klaviyo answers 202 and ignores them).
- ``bulk_create_events`` (202): validated at once (at most 1,000 events; a ``unique_id`` repeated
  for the same profile and metric within the request fails the whole request, and so do two events
  without one in the same second, whose unique_id defaults to that second), applied as a bulk
  job when the sandbox clock makes it due. ``bulk_create_client_events`` is applied at once.
- ``get_events`` sorts by ``datetime`` when no ``sort`` is given; ``has(profile)`` / ``has(metric)``
  filters work; ``get_metrics`` pages by 200 as Klaviyo does.
- Metric properties are derived from the stored events of a metric (one per property key, with an
  inferred type) whenever they are read.
- To-one related endpoints (``/events/{id}/metric``, ...) answer ``data: null`` when nothing is
  linked, as the spec allows.

Metric aggregates are in ``metric_aggregates.py`` (a domain of its own).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from klaviyo_toolkit.filters import Comparison, FilterSyntaxError, Logical, parse_filter

from .._context import Ctx, Reply
from .._jsonapi import SandboxError, bad_request
from .._services import Services
from .._store import Linkage, Resource, Store
from ..domain import DomainBuilder
from ._common import (
    IDENTIFIERS,
    event_unique_id,
    find_or_create_metric,
    find_or_create_profile,
    find_profile,
    parse_time,
    record_event,
)
from ._secondary_emails import apply_patch_identifiers, check_patch_identifiers
from .profiles import check_identifiers

Json = dict[str, Any]
MAX_BULK_EVENTS = 1000
# Klaviyo's ingestion limits for its event endpoints ("Rate limits, status codes, and errors",
# Ingestion limits): at most 300 event properties, 100 kB for any field, 4,000 items in an array,
# 10 levels of nested objects, and a timestamp between 2000 and now + 1 year. The 5 MB payload
# limit is checked before the body is read (``_checks.check_payload_size``), the 100 kB one on
# every string of the payload, the profile's too, before a handler runs (``_checks.check_event_strings``).
# This revision's spec says 400 properties for the server-side endpoints (EventCreateQueryV2, bulk
# entries): Klaviyo's two documents differ, and the sandbox keeps the lower, so that an event it
# takes is one Klaviyo takes under either.
MAX_PROPERTIES = 300
MAX_ARRAY_ITEMS = 4000
MAX_DEPTH = 10
_YEAR_2000 = 946684800.0
_YEAR = 365 * 86400.0
_d = DomainBuilder("events")
_PROFILE_FIELDS = (
    "email",
    "phone_number",
    "external_id",
    "anonymous_id",
    "_kx",
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
    "location",
    "properties",
)


# -- parsing and validating one event ----------------------------------------------------------
def _event_spec(attrs: Mapping[str, Any], base: str, now: float, *, profile_node: Any = None) -> Json:
    """The checked parts of one event body (``base`` is its JSON pointer, for errors)."""
    props = attrs.get("properties")
    if not isinstance(props, Mapping):
        raise bad_request(
            'properties must be an object of event properties, e.g. {"Brand": "Acme"}.', pointer=f"{base}/properties"
        )
    if len(props) > MAX_PROPERTIES:
        raise bad_request(
            f"An event can have at most {MAX_PROPERTIES} properties; this one has {len(props)}.",
            pointer=f"{base}/properties",
        )
    for key, value in props.items():
        check_ingested(value, f"{base}/properties/{key}")
    when = now
    if attrs.get("time") is not None:
        parsed = parse_time(attrs["time"])
        if parsed is None:
            raise bad_request(
                "time must be an ISO 8601 datetime, e.g. 2026-07-15T10:00:00+00:00.", pointer=f"{base}/time"
            )
        if parsed < _YEAR_2000 or parsed > now + _YEAR:
            raise bad_request(
                "time must be between 2000-01-01 and one year in the future (Klaviyo's ingestion limits).",
                pointer=f"{base}/time",
            )
        when = float(int(parsed))
    metric = ((attrs.get("metric") or {}).get("data") or {}).get("attributes") or {}
    name = metric.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request(
            'The metric needs a name, e.g. "Placed Order".', pointer=f"{base}/metric/data/attributes/name"
        )
    if len(name) >= 128:
        raise bad_request(
            "The metric name must be less than 128 characters.", pointer=f"{base}/metric/data/attributes/name"
        )
    value = attrs.get("value")
    spec: Json = {
        "properties": dict(props),
        "time": when,
        "value": value,
        "metric": name,
        "service": metric.get("service"),
        "unique_id": attrs.get("unique_id"),
        "backfill": bool(attrs.get("backfill")),
    }
    if attrs.get("value_currency"):
        spec["properties"]["$value_currency"] = attrs["value_currency"]
    if spec["unique_id"]:
        spec["properties"].setdefault("$event_id", spec["unique_id"])
    if profile_node is not None:
        spec["profile"] = profile_node
    return spec


def check_ingested(value: Any, pointer: str, depth: int = 1) -> None:
    """One event property within Klaviyo's ingestion limits: array items, nesting (string sizes are
    checked for the whole payload before, ``_checks.check_event_strings``)."""
    if depth > MAX_DEPTH:
        raise bad_request(f"Event properties nest at most {MAX_DEPTH} levels deep.", pointer=pointer)
    if isinstance(value, list):
        if len(value) > MAX_ARRAY_ITEMS:
            raise bad_request(f"An array can have at most {MAX_ARRAY_ITEMS:,} items; this one has {len(value):,}.",
                              pointer=pointer)
        for i, item in enumerate(value):
            check_ingested(item, f"{pointer}/{i}", depth + 1)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_ingested(item, f"{pointer}/{key}", depth + 1)


def _profile_spec(node: Any, pointer: str) -> Json:
    """Identifiers and attributes of the ``profile.data`` node of an event."""
    if not isinstance(node, Mapping):
        raise bad_request("The event needs a profile with an id, email, phone_number or external_id.", pointer=pointer)
    attrs = dict(node.get("attributes") or {})
    check_identifiers(attrs, f"{pointer}/attributes")  # the same rules as profile writes
    found = {k: attrs[k] for k in _PROFILE_FIELDS if attrs.get(k) is not None}
    if node.get("id"):
        found["id"] = str(node["id"])
    if not any(found.get(k) for k in (*IDENTIFIERS, "id", "anonymous_id", "_kx")):
        raise bad_request(
            "The profile needs at least one identifier: id, email, phone_number or external_id.",
            pointer=f"{pointer}/attributes",
        )
    return {"attrs": found, "meta": attrs.get("meta") or {}, "pointer": pointer}  # the spec's place for it


def _resolve_profile(svc: Services, spec: Json, now: float, *, client: bool) -> Resource:
    attrs: Json = dict(spec["attrs"])
    if attrs.get("id") and svc.store.get("profile", attrs["id"]) is None:
        raise bad_request(
            f"There is no profile with id {attrs['id']}; give an existing id, or an email, "
            "phone_number or external_id instead.",
            pointer=f"{spec['pointer']}/id",
        )
    if client:
        existing = find_profile(svc, attrs)
        if existing is not None:  # the client API never changes an existing profile's identifiers
            attrs = {k: v for k, v in attrs.items() if k not in IDENTIFIERS}
            attrs["id"] = existing.id
    existing = find_profile(svc, attrs)  # the patch is checked before the profile is made or changed
    where = f"{spec['pointer']}/attributes/meta"
    patch = check_patch_identifiers(svc, spec["meta"], existing.id if existing else None, where)
    profile, _ = find_or_create_profile(svc, attrs, now)
    _patch_properties(profile, spec["meta"].get("patch_properties") if isinstance(spec["meta"], Mapping) else None)
    apply_patch_identifiers(profile, patch)
    svc.store.put(profile)
    return profile


def _patch_properties(profile: Resource, patch: Any) -> None:
    """Apply ``meta.patch_properties`` (append / unappend / unset) to a profile's properties."""
    if not isinstance(patch, Mapping):
        return
    props = profile.attributes.setdefault("properties", {}) or {}
    profile.attributes["properties"] = props
    for key, value in (patch.get("append") or {}).items():
        current = props.get(key)
        items = current if isinstance(current, list) else ([] if current is None else [current])
        items.extend(value if isinstance(value, list) else [value])
        props[key] = items
    for key, value in (patch.get("unappend") or {}).items():
        drop = value if isinstance(value, list) else [value]
        if isinstance(props.get(key), list):
            props[key] = [v for v in props[key] if v not in drop]
    unset = patch.get("unset")
    for key in [unset] if isinstance(unset, str) else unset or []:
        props.pop(key, None)


def apply_event(svc: Services, profile: Resource, spec: Json) -> tuple[Resource, bool]:
    """Record one checked event for ``profile``; (event, created)."""
    metric = find_or_create_metric(svc, spec["metric"], spec["time"], spec.get("service"))
    return record_event(
        svc,
        profile,
        metric,
        spec["properties"],
        spec["time"],
        unique_id=spec.get("unique_id"),
        value=spec.get("value"),
        trigger_flows=not spec.get("backfill"),
    )


# -- create ------------------------------------------------------------------------------------
@_d.handles("create_event", "create_client_event")
def create_event(ctx: Ctx) -> Reply:
    attrs = ctx.attrs
    base = "/data/attributes"
    profile_node = (attrs.get("profile") or {}).get("data")
    spec = _event_spec(attrs, base, ctx.now)
    profile_spec = _profile_spec(profile_node, f"{base}/profile/data")
    profile = _resolve_profile(ctx.svc, profile_spec, ctx.now, client=ctx.auth.kind == "public")
    apply_event(ctx.svc, profile, spec)
    return ctx.accepted()


def _bulk_entries(entries: list[Any], base: str, now: float, *, listed: bool = True) -> list[tuple[Json, list[Json]]]:
    """Check every profile entry of a bulk request: [(profile spec, [event spec, ...]), ...].

    ``base`` is the JSON pointer of the entries' list, or of the one entry when not ``listed``.
    """
    out: list[tuple[Json, list[Json]]] = []
    seen: set[tuple[str, str, str]] = set()
    total = 0
    for i, entry in enumerate(entries):
        attrs = (entry or {}).get("attributes") or {}
        where = f"{base}/{i}/attributes" if listed else f"{base}/attributes"
        profile_spec = _profile_spec((attrs.get("profile") or {}).get("data"), f"{where}/profile/data")
        who = "|".join(_identity_key(k, profile_spec["attrs"].get(k)) for k in ("id", *IDENTIFIERS))
        events = []
        for j, item in enumerate(((attrs.get("events") or {}).get("data")) or []):
            ev_attrs = dict((item or {}).get("attributes") or {})
            if attrs.get("backfill") and ev_attrs.get("backfill") is None:
                ev_attrs["backfill"] = True
            at = f"{where}/events/data/{j}/attributes"
            spec = _event_spec(ev_attrs, at, now)
            # metric names are case-sensitive
            key = (who, spec["metric"], event_unique_id(spec["unique_id"], spec["time"]))
            if key in seen:
                raise _repeated(spec, at)
            seen.add(key)
            events.append(spec)
        total += len(events)
        out.append((profile_spec, events))
    if total > MAX_BULK_EVENTS:
        raise bad_request(
            f"A bulk request takes at most {MAX_BULK_EVENTS} events; this one has {total}. "
            "Split it into several requests.",
            pointer=base,
        )
    return out


def _repeated(spec: Json, pointer: str) -> SandboxError:
    """The 400 for a bulk event whose ``unique_id``, given or defaulted, an earlier one of the request has."""
    if spec["unique_id"]:
        return bad_request(
            f"unique_id {spec['unique_id']!r} is repeated for the same profile and metric in this request, so "
            "no events were processed; give each event its own unique_id.",
            pointer=f"{pointer}/unique_id",
        )
    return bad_request(
        "Two events for the same profile and metric fall in the same second and have no unique_id; without "
        "one, an event's unique_id is its time to the second, so it is repeated and no events were processed. "
        "Give each event its own unique_id.",
        pointer=pointer,
    )


def _identity_key(key: str, value: Any) -> str:
    """How a profile identifier is compared: emails without regard to case, the rest exactly."""
    text = "" if value is None else str(value)
    return text.lower() if key == "email" else text


def _run_bulk(svc: Services, entries: list[tuple[Json, list[Json]]], now: float, *, client: bool) -> int:
    count = 0
    for profile_spec, events in entries:
        profile = _resolve_profile(svc, profile_spec, now, client=client)
        for spec in events:
            apply_event(svc, profile, spec)
            count += 1
    return count


@_d.handles("bulk_create_events")
def bulk_create_events(ctx: Ctx) -> Reply:
    base = "/data/attributes/events-bulk-create/data"
    _bulk_entries(list(((ctx.attrs.get("events-bulk-create") or {}).get("data")) or []), base, ctx.now)
    ctx.create_job("event-bulk-create-job")
    return ctx.accepted()


@_d.job("bulk_create_events")
def _bulk_job_runner(svc: Services, job: Resource) -> None:
    """Apply a queued ``bulk_create_events`` job; events without a time take the request's time."""
    body = job.private.get("body") or {}
    attrs = ((body.get("data") or {}).get("attributes")) or {}
    entries = list(((attrs.get("events-bulk-create") or {}).get("data")) or [])
    checked = _bulk_entries(entries, "/data/attributes/events-bulk-create/data", job.created)
    count = _run_bulk(svc, checked, job.created, client=False)
    job.attributes["completed_count"] = count
    job.attributes["total_count"] = count


@_d.handles("bulk_create_client_events")
def bulk_create_client_events(ctx: Ctx) -> Reply:
    data = ctx.data if isinstance(ctx.data, Mapping) else {}
    entries = _bulk_entries([data], "/data", ctx.now, listed=False)
    _run_bulk(ctx.svc, entries, ctx.now, client=True)
    return ctx.accepted()


# -- reads -------------------------------------------------------------------------------------
@_d.handles("get_events")
def get_events(ctx: Ctx) -> Reply:
    """Events, without a sort by their timestamp (then as stored)."""
    return ctx.many(_filtered_from(ctx), first_by=_timestamp)


def _filtered_from(ctx: Ctx) -> list[Resource]:
    """The events the request's filter runs over: those of one profile or metric when the filter
    requires ``equals(profile_id,...)`` or ``equals(metric_id,...)`` (``Store.linking``: the same
    answer, without reading every event of the account), else all of them; a filter that does not
    parse runs over all, to be refused as it is."""
    text = ctx.query.get("filter")
    if not text:
        return ctx.store.all("event")
    try:
        expr = parse_filter(text)
    except FilterSyntaxError:
        return ctx.store.all("event")
    required = expr.items if isinstance(expr, Logical) and expr.operator == "and" else (expr,)
    narrowest: list[Resource] | None = None
    for item in required:
        if (isinstance(item, Comparison) and item.operator == "equals" and isinstance(item.value, str)
                and item.field in ("profile_id", "metric_id")
                and ("event", item.field) not in ctx.fields.resolvers):  # else the field reads otherwise
            found = ctx.store.linking("event", item.field[:-3], item.value)
            narrowest = found if narrowest is None or len(found) < len(narrowest) else narrowest
    return ctx.store.all("event") if narrowest is None else narrowest


def _timestamp(event: Resource) -> Any:
    """An event's time as stored (epoch seconds), read directly: every page of events ranks them all."""
    return event.attributes.get("timestamp")


@_d.handles("get_metrics")
def get_metrics(ctx: Ctx) -> Reply:
    return ctx.many(ctx.store.all("metric"))  # by 200, its description's maximum (Operation.max_page_size)


@_d.handles("get_metric_property")
def get_metric_property(ctx: Ctx) -> Reply:
    if ctx.store.get("metric-property", ctx.id) is None:
        for metric in ctx.store.iter("metric"):
            refresh_properties(ctx.svc, metric)
    return ctx.one(ctx.get("metric-property"))


def _linked_id(store: Store, res: Resource, rel: str) -> str | None:
    links = res.linked(rel)
    return links[0][1] if links else None


_d.add_field("event", "profile", lambda store, res: _linked_id(store, res, "profile"))
_d.add_field("event", "metric", lambda store, res: _linked_id(store, res, "metric"))


# -- metric properties -------------------------------------------------------------------------
def _inferred_type(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, list):
        return "List"
    if isinstance(value, Mapping):
        return "Object"
    if isinstance(value, str) and parse_time(value) is not None and len(value) >= 10 and value[4:5] == "-":
        return "Date"
    return "String"


def property_id(metric_id: str, key: str) -> str:
    return hashlib.md5(f"{metric_id}:{key}".encode()).hexdigest()


@_d.related("metric", "metric-properties")
def refresh_properties(svc: Services, metric: Resource) -> list[Linkage]:
    """Store one metric-property per event property key seen on ``metric``'s events."""
    seen: dict[str, Any] = {}
    for event in svc.store.iter("event"):
        if event.linked("metric") == [("metric", metric.id)]:
            for key, value in (event.attributes.get("event_properties") or {}).items():
                seen.setdefault(key, value)
    links: list[Linkage] = []
    for key, value in sorted(seen.items()):
        pid = property_id(metric.id, key)
        if svc.store.get("metric-property", pid) is None:
            now = svc.clock.time()
            svc.store.put(
                Resource(
                    "metric-property",
                    pid,
                    {"label": key, "property": key, "inferred_type": _inferred_type(value)},
                    {"metric": ("metric", metric.id)},
                    now,
                    now,
                )
            )
        links.append(("metric-property", pid))
    return links


DOMAIN = _d.build()

__all__ = ["DOMAIN", "apply_event", "property_id", "refresh_properties"]
