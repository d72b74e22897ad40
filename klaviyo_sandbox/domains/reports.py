"""Sandbox domain: the Reporting API (campaign, flow, form and segment values and series).

Statistics are computed from the stored events of the time frame (``report_time.py``, in the
account's timezone), using ``_common``'s event conventions:

- a campaign event carries ``$message`` (the campaign message) and ``$campaign``; a flow event
  ``$flow`` and ``$flow_message``; a conversion (an event of ``conversion_metric_id``) carries
  ``$attributed_message`` (and ``$attributed_flow`` for flows), and its revenue in ``$value``;
- recipients = "Received Email" (or "Received SMS") events, plus bounced profiles with no receipt
  (whether a bounce comes after or instead of the receipt); delivered = recipients minus bounces
  and failures; opens/clicks/unsubscribes/spam complaints count their events, the ``_unique``/``_uniques``
  statistics count distinct profiles; rates are fractions (open, click, conversion, unsubscribe and
  spam rates over delivered; bounce, failure and delivery rates over recipients;
  click-to-open = unique clicks / unique opens); SMS spend and credits are 0.
- forms count "Form viewed by profile", "Form submitted by profile", ... events by ``form_id`` /
  ``form_version_id`` (submit rate = unique submitters / unique viewers);
- segments report their current member count as ``total_members``; the sandbox keeps no membership
  history, so members added/removed are 0.

One call covers every campaign (or flow, form, segment); groups with no events are absent, so an
account without campaigns answers ``results: []``. ``group_by`` defaults to Klaviyo's default and
must keep the groupings Klaviyo requires; ``filter`` takes ``equals``/``contains-any`` (lists:
``contains-any``/``contains-all``) joined by ``and``, at most 100 values a list, and ``send_channel``
only email, sms, push-notification or whatsapp. The 225/day limit is the core rate limiter's.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from klaviyo_toolkit.filters import Comparison, FilterSyntaxError, Logical, parse_filter

from .._context import Ctx, Reply
from .._jsonapi import bad_request
from .._services import Services
from .._store import Resource
from ..domain import DomainBuilder
from ._common import event_value
from .report_time import account_zone, buckets, local_iso, timeframe

Json = dict[str, Any]
Record = tuple[str, Json, str | None, float]  # (base statistic, grouping fields, profile id, value)
#: Metric name -> (send channel, base statistic) for message reports.
MESSAGE_METRICS: dict[str, tuple[str, str]] = {
    "Received Email": ("email", "recipients"),
    "Bounced Email": ("email", "bounced"),
    "Dropped Email": ("email", "failed"),
    "Opened Email": ("email", "opens"),
    "Clicked Email": ("email", "clicks"),
    "Unsubscribed from Email Marketing": ("email", "unsubscribes"),
    "Unsubscribed": ("email", "unsubscribes"),
    "Marked Email as Spam": ("email", "spam_complaints"),
    "Received SMS": ("sms", "recipients"),
    "Failed to Deliver SMS": ("sms", "failed"),
    "Clicked SMS": ("sms", "clicks"),
    "Unsubscribed from SMS Marketing": ("sms", "unsubscribes"),
    "Received Push": ("push-notification", "recipients"),
    "Opened Push": ("push-notification", "opens"),
}
#: Metric names -> form statistic (counts; ``<name>_uniques`` counts profiles).
FORM_METRICS: dict[str, str] = {
    "Form viewed by profile": "viewed_form",
    "Viewed Form": "viewed_form",
    "Form submitted by profile": "submits",
    "Submitted Form": "submits",
    "Form closed by profile": "closed_form",
    "Closed Form": "closed_form",
    "Form qualified by profile": "qualified_form",
    "Form step viewed by profile": "viewed_form_step",
    "Form step submitted by profile": "submitted_form_step",
}
CHANNELS = {"email": "email", "sms": "sms", "mobile_push": "push-notification"}
LIST_FIELDS = ("tag_id", "tag_name")
#: The ``filter`` descriptions of the report requests: "Max of 100 items per list filter" (campaign and
#: flow reports), "Max of 100 messages per ANY filter" (form and segment reports); and "When filtering
#: on send_channel, allowed values are email, sms, push-notification, whatsapp".
MAX_FILTER_ITEMS = 100
FILTER_CHANNELS = ("email", "sms", "push-notification", "whatsapp")
_d = DomainBuilder("reports")


@dataclass
class Report:
    """What differs between the report endpoints."""

    records: Callable[[Services, Json], Iterable[tuple[float, Record]]]
    default_group_by: tuple[str, ...]
    required_group_by: tuple[str, ...] = ()
    filter_fields: tuple[str, ...] = ()
    filter_ops: tuple[str, ...] = ("equals", "contains-any", "contains-all")
    compute: Callable[[Mapping[str, Any]], Json] = field(default=lambda acc: {})


@dataclass
class _Acc:
    counts: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    profiles: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, stat: str, profile: str | None, value: float) -> None:
        self.counts[stat] += 1
        self.counts[stat + "_value"] += value
        if profile:
            self.profiles[stat].add(profile)


# -- records: (time, (statistic, grouping fields, profile, value)) per relevant event ----------------------
def _events(svc: Services) -> Iterable[tuple[Resource, str, Json, str | None]]:
    names = {m.id: str(m.attributes.get("name")) for m in svc.store.iter("metric")}
    for event in svc.store.iter("event"):
        links = event.linked("metric")
        profile = event.linked("profile")
        yield (
            event,
            names.get(links[0][1], "") if links else "",
            event.attributes.get("event_properties") or {},
            profile[0][1] if profile else None,
        )


def _campaign_fields(svc: Services, message_id: str, props: Json, channel: str | None) -> Json | None:
    message = svc.store.get("campaign-message", message_id)
    campaign_id = props.get("$campaign") or props.get("$attributed_campaign")
    if message is not None:
        campaign_id = next((i for _, i in message.linked("campaign")), campaign_id)
    if not campaign_id:
        return None
    definition = (message.attributes.get("definition") or {}) if message else {}
    campaign = svc.store.get("campaign", str(campaign_id))
    tags = [svc.store.get(t, i) for t, i in svc.related(campaign, "tags")] if campaign else []
    return {
        "campaign_id": str(campaign_id),
        "campaign_message_id": message_id,
        "send_channel": channel or CHANNELS.get(str(definition.get("channel")), "email"),
        "campaign_message_name": definition.get("label"),
        "tag_id": [t.id for t in tags if t],
        "tag_name": [t.attributes.get("name") for t in tags if t],
    }


def _flow_fields(svc: Services, flow_id: str, message_id: str | None, channel: str | None) -> Json:
    flow = svc.store.get("flow", flow_id)
    message = svc.store.get("flow-message", message_id) if message_id else None
    tags = [svc.store.get(t, i) for t, i in svc.related(flow, "tags")] if flow else []
    msg_channel = message.attributes.get("channel") if message else None
    return {
        "flow_id": flow_id,
        "flow_message_id": message_id,
        "send_channel": channel or CHANNELS.get(str(msg_channel), "email"),
        "flow_name": flow.attributes.get("name") if flow else None,
        "flow_message_name": message.attributes.get("name") if message else None,
        "tag_id": [t.id for t in tags if t],
        "tag_name": [t.attributes.get("name") for t in tags if t],
    }


def _message_records(kind: str) -> Callable[[Services, Json], Iterable[tuple[float, Record]]]:
    def records(svc: Services, attrs: Json) -> Iterable[tuple[float, Record]]:
        conversion = str(attrs.get("conversion_metric_id") or "")
        cache: dict[tuple[Any, ...], Json | None] = {}  # grouping fields per message, looked up once
        for event, name, props, profile in _events(svc):
            when = float(event.attributes.get("timestamp") or event.created)
            is_conversion = bool(event.linked("metric")) and event.linked("metric")[0][1] == conversion
            if name in MESSAGE_METRICS:
                channel, stat = MESSAGE_METRICS[name]
                value = 0.0
                flow_id, message_id = props.get("$flow"), props.get("$flow_message") or props.get("$message")
            elif is_conversion:
                channel, stat, value = None, "conversions", event_value(props.get("$value"))
                flow_id, message_id = props.get("$attributed_flow"), props.get("$attributed_message")
            else:
                continue
            if kind == "campaign" and message_id and not flow_id:
                named = props.get("$campaign") or props.get("$attributed_campaign")
                key: tuple[Any, ...] = (message_id, named, channel)
                if key not in cache:
                    cache[key] = _campaign_fields(svc, str(message_id), props, channel)
            elif kind == "flow" and flow_id:
                key = (flow_id, message_id, channel)
                if key not in cache:
                    cache[key] = _flow_fields(svc, str(flow_id), str(message_id) if message_id else None, channel)
            else:
                continue
            fields = cache[key]
            if fields is not None:
                yield when, (stat, fields, profile, value)

    return records


def _form_records(svc: Services, attrs: Json) -> Iterable[tuple[float, Record]]:
    for event, name, props, profile in _events(svc):
        stat = FORM_METRICS.get(name)
        form_id = props.get("form_id") or props.get("$form_id")
        if stat and form_id:
            fields = {"form_id": str(form_id), "form_version_id": props.get("form_version_id")}
            yield float(event.attributes.get("timestamp") or event.created), (stat, fields, profile, 0.0)


def _rate(num: float, den: float) -> float:
    return num / den if den else 0.0


def message_statistics(acc: Mapping[str, Any]) -> Json:
    c, u = acc["counts"], acc["profiles"]
    # a bounce logged instead of (not after) a receipt still had a recipient: count it once either way
    recipients = c["recipients"] + len(u["bounced"] - u["recipients"])
    bounced, failed = c["bounced"], c["failed"]
    delivered = max(0.0, recipients - bounced - failed)
    opens_u, clicks_u, conv_u = len(u["opens"]), len(u["clicks"]), len(u["conversions"])
    value = c["conversions_value"]
    stats: Json = {
        "recipients": recipients,
        "delivered": delivered,
        "bounced": bounced,
        "failed": failed,
        "bounced_or_failed": bounced + failed,
        "opens": c["opens"],
        "opens_unique": opens_u,
        "clicks": c["clicks"],
        "clicks_unique": clicks_u,
        "conversions": c["conversions"],
        "conversion_uniques": conv_u,
        "conversion_value": value,
        "unsubscribes": c["unsubscribes"],
        "unsubscribe_uniques": len(u["unsubscribes"]),
        "spam_complaints": c["spam_complaints"],
        "bounce_rate": _rate(bounced, recipients),
        "failed_rate": _rate(failed, recipients),
        "bounced_or_failed_rate": _rate(bounced + failed, recipients),
        "delivery_rate": _rate(delivered, recipients),
        "open_rate": _rate(opens_u, delivered),
        "click_rate": _rate(clicks_u, delivered),
        "click_to_open_rate": _rate(clicks_u, opens_u),
        "conversion_rate": _rate(conv_u, delivered),
        "unsubscribe_rate": _rate(len(u["unsubscribes"]), delivered),
        "spam_complaint_rate": _rate(c["spam_complaints"], delivered),
        "revenue_per_recipient": _rate(value, delivered),
        "average_order_value": _rate(value, c["conversions"]),
        "message_segment_count_sum": 0,
        "text_message_credit_usage_amount": 0,
        "text_message_roi": 0,
        "text_message_spend": 0,
    }
    return {k: int(v) if k in _COUNT_STATS else v for k, v in stats.items()}


_COUNT_STATS = {
    "recipients",
    "delivered",
    "bounced",
    "failed",
    "bounced_or_failed",
    "opens",
    "clicks",
    "conversions",
    "unsubscribes",
    "spam_complaints",
}


def form_statistics(acc: Mapping[str, Any]) -> Json:
    c, u = acc["counts"], acc["profiles"]
    stats: Json = {}
    for stat in set(FORM_METRICS.values()):
        stats[stat] = int(c[stat])
        stats[stat + "_uniques"] = len(u[stat])
    stats["submit_rate"] = _rate(len(u["submits"]), len(u["viewed_form"]))
    return stats


CAMPAIGN = Report(
    _message_records("campaign"),
    ("campaign_id", "campaign_message_id", "send_channel"),
    ("campaign_id", "campaign_message_id"),
    (
        "campaign_id",
        "campaign_message_id",
        "campaign_message_name",
        "send_channel",
        "tag_id",
        "tag_name",
        "variation",
        "variation_name",
        "text_message_format",
    ),
    compute=message_statistics,
)
FLOW = Report(
    _message_records("flow"),
    ("flow_id", "flow_message_id", "send_channel"),
    ("flow_id", "flow_message_id"),
    (
        "flow_id",
        "flow_name",
        "flow_message_id",
        "flow_message_name",
        "send_channel",
        "tag_id",
        "tag_name",
        "variation",
        "variation_name",
        "text_message_format",
    ),
    compute=message_statistics,
)
FORM = Report(
    _form_records, ("form_id",), (), ("form_id", "form_version_id"), ("equals", "any"), compute=form_statistics
)


# -- handlers -------------------------------------------------------------------------------------------
@_d.handles("query_campaign_values")
def campaign_values(ctx: Ctx) -> Reply:
    return _values(ctx, CAMPAIGN)


@_d.handles("query_flow_values")
def flow_values(ctx: Ctx) -> Reply:
    return _values(ctx, FLOW)


@_d.handles("query_flow_series")
def flow_series(ctx: Ctx) -> Reply:
    return _series(ctx, FLOW)


@_d.handles("query_form_values")
def form_values(ctx: Ctx) -> Reply:
    return _values(ctx, FORM)


@_d.handles("query_form_series")
def form_series(ctx: Ctx) -> Reply:
    return _series(ctx, FORM)


@_d.handles("query_segment_values", "query_segment_series")
def segment_report(ctx: Ctx) -> Reply:
    attrs = ctx.attrs
    zone = account_zone(ctx.svc)
    start, end = timeframe(attrs["timeframe"], zone, ctx.now)
    wanted = _parse_filter(attrs.get("filter"), ("segment_id",), ("equals", "any"))
    series = "interval" in attrs
    slots = buckets(start, end, str(attrs["interval"]), zone) if series else []
    results = []
    for segment in ctx.store.iter("segment"):
        if not _matches({"segment_id": segment.id}, wanted):
            continue
        total = len(ctx.svc.related(segment, "profiles"))
        stats = {"total_members": total, "members_added": 0, "members_removed": 0, "net_members_changed": 0}
        picked = {s: ([stats[s]] * len(slots) if series else stats[s]) for s in attrs["statistics"]}
        results.append({"groupings": {"segment_id": segment.id}, "statistics": picked})
    return _reply(ctx, results, [local_iso(s, zone) for s in slots] if series else None)


# -- the engine ---------------------------------------------------------------------------------------
def _prepare(ctx: Ctx, report: Report) -> tuple[list[str], list[Comparison], float, float, Any]:
    attrs = ctx.attrs
    metric_id = attrs.get("conversion_metric_id")
    if "conversion_metric_id" in attrs and ctx.store.get("metric", str(metric_id)) is None:
        raise bad_request(
            f"conversion_metric_id {metric_id!r} is not a metric in this account; use an id from "
            "GET /api/metrics (e.g. the 'Placed Order' metric).",
            pointer="/data/attributes/conversion_metric_id",
        )
    group_by = list(attrs.get("group_by") or report.default_group_by)
    missing = [g for g in report.required_group_by if g not in group_by]
    if missing:
        raise bad_request(
            f"group_by must include {', '.join(report.required_group_by)} (missing: {', '.join(missing)}).",
            pointer="/data/attributes/group_by",
        )
    if "form_version_id" in group_by and "form_id" not in group_by:
        raise bad_request("group_by form_version_id needs form_id too.", pointer="/data/attributes/group_by")
    wanted = _parse_filter(attrs.get("filter"), report.filter_fields, report.filter_ops)
    zone = account_zone(ctx.svc)
    start, end = timeframe(attrs["timeframe"], zone, ctx.now)
    return group_by, wanted, start, end, zone


def _grouped(
    ctx: Ctx,
    report: Report,
    group_by: list[str],
    wanted: list[Comparison],
    start: float,
    end: float,
    slot: Callable[[float], int],
) -> dict[tuple[Any, ...], dict[int, _Acc]]:
    groups: dict[tuple[Any, ...], dict[int, _Acc]] = defaultdict(lambda: defaultdict(_Acc))
    for when, (stat, fields, profile, value) in report.records(ctx.svc, ctx.attrs):
        if not start <= when < end or not _matches(fields, wanted):
            continue
        choices = [fields.get(g) if isinstance(fields.get(g), list) else [fields.get(g)] for g in group_by]
        for key in itertools.product(*[c or [None] for c in choices]):
            groups[key][slot(when)].add(stat, profile, value)
    return groups


def _values(ctx: Ctx, report: Report) -> Reply:
    group_by, wanted, start, end, _ = _prepare(ctx, report)
    groups = _grouped(ctx, report, group_by, wanted, start, end, lambda when: 0)
    results = []
    for key in sorted(groups, key=_sort_key):
        acc = groups[key][0]
        stats = report.compute({"counts": acc.counts, "profiles": acc.profiles})
        results.append(
            {
                "groupings": dict(zip(group_by, key, strict=True)),
                "statistics": {s: stats[s] for s in ctx.attrs["statistics"]},
            }
        )
    return _reply(ctx, results)


def _series(ctx: Ctx, report: Report) -> Reply:
    group_by, wanted, start, end, zone = _prepare(ctx, report)
    slots = buckets(start, end, str(ctx.attrs["interval"]), zone)

    def slot(when: float) -> int:
        return bisect.bisect_right(slots, when) - 1

    groups = _grouped(ctx, report, group_by, wanted, start, end, slot)
    results = []
    for key in sorted(groups, key=_sort_key):
        per_slot = [
            report.compute({"counts": groups[key][i].counts, "profiles": groups[key][i].profiles})
            for i in range(len(slots))
        ]
        results.append(
            {
                "groupings": dict(zip(group_by, key, strict=True)),
                "statistics": {s: [stats[s] for stats in per_slot] for s in ctx.attrs["statistics"]},
            }
        )
    return _reply(ctx, results, [local_iso(s, zone) for s in slots])


def _reply(ctx: Ctx, results: list[Json], date_times: list[str] | None = None) -> Reply:
    attributes: Json = {"results": results}
    if date_times is not None:
        attributes["date_times"] = date_times
    body = {"data": {"type": ctx.data["type"], "attributes": attributes}, "links": {"self": ctx.self_url()}}
    return Reply(200, body)


def _sort_key(key: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if k is None else str(k) for k in key)


# -- filters ----------------------------------------------------------------------------------------------
def _parse_filter(text: str | None, fields: tuple[str, ...], ops: tuple[str, ...]) -> list[Comparison]:
    if not text:
        return []
    pointer = "/data/attributes/filter"
    try:
        expr = parse_filter(text)
    except FilterSyntaxError as exc:
        raise bad_request(f'{exc}; write it like equals({fields[0]},"abc").', pointer=pointer) from None
    items = list(expr.items) if isinstance(expr, Logical) and expr.operator == "and" else [expr]
    seen: set[str] = set()
    out: list[Comparison] = []
    for item in items:
        if not isinstance(item, Comparison):
            raise bad_request("Only and() can combine report filters.", pointer=pointer)
        out.append(item)
        if item.field not in fields:
            raise bad_request(f"{item.field!r} cannot be filtered on; use one of {', '.join(fields)}.", pointer=pointer)
        list_field = item.field in LIST_FIELDS
        allowed = ("contains-any", "contains-all") if list_field else tuple(o for o in ops if o != "contains-all")
        if item.operator not in allowed:
            raise bad_request(
                f"{item.operator}() is not allowed on {item.field}; use {' or '.join(allowed)}.", pointer=pointer
            )
        if item.field in seen:
            raise bad_request(f"Only one filter per attribute; {item.field} appears twice.", pointer=pointer)
        _check_values(item, pointer)
        seen.add(item.field)
    return out


def _check_values(item: Comparison, pointer: str) -> None:
    """A 400 for a list of more than ``MAX_FILTER_ITEMS`` values, or a send_channel Klaviyo does not report on."""
    if isinstance(item.value, list) and len(item.value) > MAX_FILTER_ITEMS:
        raise bad_request(
            f"{item.operator}({item.field},[...]) lists {len(item.value)} values; a report filter takes at most "
            f"{MAX_FILTER_ITEMS}. Split the values over several queries of {MAX_FILTER_ITEMS}.",
            pointer=pointer,
        )
    if item.field == "send_channel":
        values = item.value if isinstance(item.value, list) else [item.value]
        wrong = next((v for v in values if v not in FILTER_CHANNELS), None)
        if wrong is not None:
            raise bad_request(
                f"{wrong!r} is not a send_channel reports filter on; use one of {', '.join(FILTER_CHANNELS)} "
                "(mobile push is push-notification).",
                pointer=pointer,
            )


def _matches(fields: Mapping[str, Any], wanted: list[Comparison]) -> bool:
    for comp in wanted:
        actual = fields.get(comp.field)
        values = comp.value if isinstance(comp.value, list) else [comp.value]
        have = actual if isinstance(actual, list) else [actual]
        if comp.operator == "contains-all":
            if not all(v in have for v in values):
                return False
        elif not any(v in have for v in values):
            return False
    return True


DOMAIN = _d.build()
