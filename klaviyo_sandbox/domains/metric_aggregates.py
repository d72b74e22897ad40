"""Sandbox domain: ``query_metric_aggregates`` (POST /api/metric-aggregates) computed from stored events.

What is computed, as Klaviyo documents it:

- ``count`` (events), ``sum_value`` (sum of ``$value``, rounded to cents) and ``unique`` (distinct
  profiles), per interval (``hour``, ``day``, ``week`` starting Monday, ``month``) in ``timezone``;
- the time range comes from the ``filter`` list: ``greater-or-equal(datetime,...)`` (or
  ``greater-than``) and ``less-than(datetime,...)`` (or ``less-or-equal``), both required, at most one
  year apart; a datetime without an offset is read in the query's ``timezone``;
- any other filter applies to event properties, e.g. ``equals($message,"01J...")`` or
  ``any(URL,["https://a", "https://b"])``, and may name only a dimension the spec lists for ``by``
  (a filter on any other property is a 400, as in Klaviyo);
- ``by`` groups rows by event properties (``$message``, ``$flow``, ``Campaign Name``, ...); events
  without one of those properties fall in the row whose ``dimensions`` is ``[]``;
- ``dates`` are the interval starts (local midnight, first of month, ...) written in UTC, and each
  measurement is a list of floats aligned with them; ``sort`` orders rows by a ``by`` dimension;
  ``page_size`` (at least 1, default 500) caps the rows of a page; when more rows follow,
  ``links.next`` is this URL with a ``page_cursor`` (an offset cursor of the sandbox's own making,
  bound to the query) to send back in the body for the next rows.
"""

from __future__ import annotations

import datetime as _dt
import re
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from klaviyo_toolkit.filters import Comparison, Expr, FilterSyntaxError, parse_filter

from .._context import Ctx, Reply
from .._jsonapi import bad_request, sparse
from .._paging import cursor_scope, decode_offset_cursor, encode_offset_cursor
from .._store import Resource
from ..domain import DomainBuilder
from ._common import event_value

Json = dict[str, Any]
_POINTER = "/data/attributes"
_RANGE = re.compile(r"^\s*(greater-or-equal|greater-than|less-than|less-or-equal)\(\s*datetime\s*,\s*(.+?)\s*\)\s*$")
_MAX_SPAN = 366 * 86400
_d = DomainBuilder("metric_aggregates")


#: IANA names the spec says Klaviyo does not take ("a few notable exceptions are Factory, Europe/Kyiv
#: and Pacific/Kanton"), though Python's zoneinfo knows them.
_NOT_TAKEN = frozenset({"Factory", "Europe/Kyiv", "Pacific/Kanton"})


def _zone(name: str | None) -> ZoneInfo:
    """The query's time zone: UTC when none is given; an empty, unknown or refused name is a 400."""
    try:
        if name in _NOT_TAKEN:
            raise ValueError(name)
        return ZoneInfo("UTC" if name is None else name)
    except (KeyError, ValueError):
        hint = " (Klaviyo does not take it)" if name in _NOT_TAKEN else ""
        raise bad_request(
            f"timezone {name!r} is not an IANA time zone Klaviyo takes{hint}; use e.g. 'America/New_York' or 'UTC'.",
            pointer=f"{_POINTER}/timezone",
        ) from None


def _parse_bound(text: str, zone: ZoneInfo, pointer: str) -> _dt.datetime:
    raw = text.strip()
    if raw[:1] in ("'", '"'):  # Klaviyo's filter syntax writes datetimes unquoted; quoted, it is a string
        raise bad_request(
            f"{text} is a string: write the datetime without quotes, e.g. greater-or-equal(datetime,"
            f"{raw.strip(chr(39) + chr(34))}).",
            pointer=pointer,
        )
    raw = raw.replace("Z", "+00:00")
    try:
        when = _dt.datetime.fromisoformat(raw)
    except ValueError:
        raise bad_request(
            f"{text!r} is not an ISO 8601 datetime; use e.g. 2026-07-01T00:00:00.", pointer=pointer
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=zone)


def _time_range(filters: list[str], zone: ZoneInfo, dimensions: frozenset[str]) -> tuple[float, float, list[Any]]:
    """(start inclusive, end exclusive, other parsed filters) from the ``filter`` list.

    The filters all hold at once, so several bounds on ``datetime`` narrow the range (the latest
    start, the earliest end), whatever their order.
    """
    start: float | None = None
    end: float | None = None
    others = []
    for i, text in enumerate(filters):
        pointer = f"{_POINTER}/filter/{i}"
        match = _RANGE.match(text)
        if match:
            op, value = match.groups()
            when = _parse_bound(value, zone, pointer).timestamp()
            if op in ("greater-or-equal", "greater-than"):
                when += 1 if op == "greater-than" else 0
                start = when if start is None else max(start, when)
            else:
                when += 1 if op == "less-or-equal" else 0
                end = when if end is None else min(end, when)
            continue
        others.append(_dimension_filter(text, pointer, dimensions))
    if start is None or end is None:
        raise bad_request(
            "filter must include a time range: greater-or-equal(datetime,2026-07-01T00:00:00) and "
            "less-than(datetime,2026-08-01T00:00:00).",
            pointer=f"{_POINTER}/filter",
        )
    if end <= start:
        raise bad_request(
            "The time range is empty: the less-than datetime must come after the greater-or-equal one.",
            pointer=f"{_POINTER}/filter",
        )
    if end - start > _MAX_SPAN:
        raise bad_request("The time range may span at most one year; split the query.", pointer=f"{_POINTER}/filter")
    return start, end, others


def _comparisons(expr: Expr) -> list[Comparison]:
    """Every comparison in a parsed filter, depth first (inside ``and``/``or``/``not`` too)."""
    if isinstance(expr, Comparison):
        return [expr]
    return [comp for item in expr.items for comp in _comparisons(item)]


def _dimension_filter(text: str, pointer: str, dimensions: frozenset[str]) -> Any:
    """A filter other than the time range, parsed; it may name only a dimension Klaviyo groups and
    filters by (the spec's ``by`` values): a filter on any other event property is a 400 there."""
    try:
        expr = parse_filter(text)
    except FilterSyntaxError as exc:
        raise bad_request(f"{text!r} is not a valid filter: {exc}.", pointer=pointer) from None
    for comp in _comparisons(expr):
        if comp.field == "datetime":
            raise bad_request(
                f"{text!r}: write the time range as separate filters, greater-or-equal(datetime,...) and "
                "less-than(datetime,...), each on its own.",
                pointer=pointer,
            )
        if comp.field not in dimensions:
            raise bad_request(
                f"{comp.field!r} cannot be filtered on in metric aggregates; filter on one of the "
                f"dimensions: {', '.join(sorted(dimensions))}.",
                pointer=pointer,
            )
    return expr


def _floor(when: _dt.datetime, interval: str) -> _dt.datetime:
    if interval == "hour":
        return when.replace(minute=0, second=0, microsecond=0)
    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "week":
        day -= _dt.timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    return day


def _next(when: _dt.datetime, interval: str) -> _dt.datetime:
    """The next interval start (wall-clock arithmetic, then re-localized, so DST days stay days)."""
    zone = when.tzinfo
    naive = when.replace(tzinfo=None)
    if interval == "hour":
        return (when.astimezone(_dt.UTC) + _dt.timedelta(hours=1)).astimezone(zone)
    if interval == "day":
        naive += _dt.timedelta(days=1)
    elif interval == "week":
        naive += _dt.timedelta(days=7)
    else:
        naive = naive.replace(year=naive.year + naive.month // 12, month=naive.month % 12 + 1)
    return naive.replace(tzinfo=zone)


def buckets(start: float, end: float, interval: str, zone: ZoneInfo) -> list[float]:
    """Interval starts (epoch seconds) covering [start, end) in ``zone``."""
    cursor = _floor(_dt.datetime.fromtimestamp(start, zone), interval)
    out = []
    while cursor.timestamp() < end:
        out.append(cursor.timestamp())
        cursor = _next(cursor, interval)
    return out


def _bucket_of(ts: float, starts: list[float]) -> int:
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= ts:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _events(ctx: Ctx, metric_id: str, start: float, end: float, others: list[Any]) -> Iterable[Resource]:
    for event in ctx.store.iter("event"):
        if event.linked("metric") != [("metric", metric_id)]:
            continue
        ts = float(event.attributes.get("timestamp") or 0)
        if not start <= ts < end:
            continue
        props = Resource("event-properties", event.id, dict(event.attributes.get("event_properties") or {}))
        if all(ctx.fields.matches(props, expr) for expr in others):
            yield event


@_d.handles("query_metric_aggregates")
def query_metric_aggregates(ctx: Ctx) -> Reply:
    attrs = ctx.attrs
    metric_id = str(attrs.get("metric_id") or "")
    if ctx.store.get("metric", metric_id) is None:
        raise bad_request(
            f"There is no metric with id {metric_id!r}; find metric ids with GET /api/metrics.",
            pointer=f"{_POINTER}/metric_id",
        )
    zone = _zone(attrs.get("timezone"))
    interval = attrs.get("interval") or "day"
    start, end, others = _time_range(list(attrs.get("filter") or []), zone, _dimensions(ctx))
    measurements = list(attrs.get("measurements") or [])
    if not measurements:
        raise bad_request(
            "measurements must name at least one of count, sum_value, unique.", pointer=f"{_POINTER}/measurements"
        )
    by = list(attrs.get("by") or [])
    starts = buckets(start, end, interval, zone)
    rows: dict[tuple[str, ...], Json] = {}
    if not by:
        rows[()] = _empty_row(len(starts))
    for event in _events(ctx, metric_id, start, end, others):
        props = event.attributes.get("event_properties") or {}
        key: tuple[str, ...] = tuple(str(props[b]) for b in by) if all(props.get(b) is not None for b in by) else ()
        row = rows.setdefault(key, _empty_row(len(starts)))
        slot = _bucket_of(float(event.attributes["timestamp"]), starts)
        row["count"][slot] += 1
        row["sum_value"][slot] += event_value(props.get("$value"))
        profile = event.linked("profile")
        if profile:
            row["unique"][slot].add(profile[0][1])
    ordered = sorted(rows.items(), key=lambda kv: kv[0])
    sort = attrs.get("sort")
    if sort and sort.lstrip("-") in by:
        index = by.index(sort.lstrip("-"))
        ordered.sort(key=lambda kv: kv[0][index] if kv[0] else "", reverse=sort.startswith("-"))
    data = [{"dimensions": list(key), "measurements": _measure(row, measurements)} for key, row in ordered]
    size = _page_size(attrs.get("page_size"))
    scope = cursor_scope(ctx.op.operation_id, {}, attrs, size)
    cursor = attrs.get("page_cursor")
    offset = decode_offset_cursor(str(cursor), scope, pointer="/data/attributes/page_cursor") if cursor else 0
    page = data[offset : offset + size]
    self_url = ctx.self_url()
    links: Json = {"self": self_url}
    if offset + size < len(data):  # more rows: say where they are, never drop them silently
        links["next"] = f"{self_url}?{urlencode({'page_cursor': encode_offset_cursor(offset + size, scope)})}"
    result: Json = {"dates": [_utc_iso(ts) for ts in starts], "data": page}
    result = sparse(result, ctx.list_param("fields[metric-aggregate]"))
    rid = str(uuid.UUID(int=ctx.store.rng.getrandbits(128)))
    body = {
        "data": {"type": "metric-aggregate", "id": rid, "attributes": result, "links": {"self": self_url}},
        "links": links,
    }
    return Reply(200, body)


def _dimensions(ctx: Ctx) -> frozenset[str]:
    """The dimensions Klaviyo groups and filters metric aggregates by: the spec's values of ``by``."""
    query = ctx.schemas.resolve({"$ref": "#/components/schemas/MetricAggregateQueryResourceObject"})
    return frozenset(ctx.schemas.prop(query, "attributes", "by").get("items", {}).get("enum", []))


def _page_size(value: Any) -> int:
    """``page_size`` (default 500): a whole number of rows, at least 1; a 400 naming it otherwise.

    Read as given, so 0 is not taken for "unset" and a negative size never slices rows off the end.
    """
    if value is None:
        return 500
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request(
            f"page_size must be a whole number of rows, at least 1 (default 500); got {value!r}.",
            pointer=f"{_POINTER}/page_size",
        )
    return value


def _empty_row(n: int) -> Json:
    return {"count": [0.0] * n, "sum_value": [0.0] * n, "unique": [set() for _ in range(n)]}


def _measure(row: Json, measurements: list[str]) -> Json:
    out: Json = {}
    for name in measurements:
        if name == "unique":
            out[name] = [float(len(s)) for s in row["unique"]]
        elif name == "sum_value":
            out[name] = [round(v, 2) for v in row["sum_value"]]
        else:
            out[name] = list(row["count"])
    return out


def _utc_iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat(timespec="seconds")


DOMAIN = _d.build()

__all__ = ["DOMAIN", "buckets", "query_metric_aggregates"]
