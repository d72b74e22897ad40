"""The rollup's figures: one row per campaign, the day's totals, and deterministic anomalies.

Rows are Klaviyo's campaign-values results (grouped by campaign, campaign message and send channel)
for each conversion metric, merged per campaign: delivery and engagement figures are the same for every
metric, conversions and revenue are kept per metric (the first listed metric fills ``conversions``
and ``revenue``). A row's rates are Klaviyo's own; totals' rates are recomputed from summed counts
with Klaviyo's definitions (opens, clicks, conversions and unsubscribes over delivered; bounces over
recipients). Anomalies are found here, before any model sees the figures, from the persona's
thresholds, so they never depend on a model noticing them.
"""

from __future__ import annotations

import datetime as _dt
import statistics as _stats
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from .settings import Thresholds

__all__ = ["COUNTS", "ENGAGEMENT_ONLY", "RATES", "activity_text", "anomalies", "fmt_count", "fmt_money", "fmt_rate",
           "merge_rows", "money_digits", "rate_count", "split_totals", "totals"]

#: Counted figures of a row (summed in totals), then rates (Klaviyo's, fractions of one).
COUNTS = ("recipients", "delivered", "opens_unique", "clicks_unique", "conversions", "conversion_uniques",
          "revenue", "bounced", "unsubscribe_uniques")
RATES = ("open_rate", "click_rate", "conversion_rate", "bounce_rate", "unsubscribe_rate")
#: Klaviyo's rate definitions: rate -> (numerator, denominator).
_RATE_DEFINITIONS = {"open_rate": ("opens_unique", "delivered"), "click_rate": ("clicks_unique", "delivered"),
                     "conversion_rate": ("conversion_uniques", "delivered"), "bounce_rate": ("bounced", "recipients"),
                     "unsubscribe_rate": ("unsubscribe_uniques", "delivered")}
#: The key of ``reports`` for a report asked with a stand-in conversion metric (see :func:`merge_rows`).
ENGAGEMENT_ONLY = "(no conversion metric)"
_PER_METRIC = {"conversions": "conversions", "conversion_uniques": "conversion_uniques",
               "revenue": "conversion_value", "conversion_rate": "conversion_rate"}


def _num(value: Any) -> float | int:
    if value is None:
        return 0
    number = float(value)
    return int(number) if number.is_integer() else number


def _rate(value: Any) -> float | None:
    return None if value is None else float(value)


def _email_results(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """campaign_id -> statistics, for email rows (rows without a send_channel count as email).

    Klaviyo groups by campaign message too; a campaign with several messages gets its counts summed
    and its rates recomputed from them (``combined`` says so).
    """
    parts: dict[str, list[dict[str, Any]]] = {}
    for result in report.get("results") or []:
        groups = result.get("groupings") or {}
        cid = groups.get("campaign_id")
        if cid and groups.get("send_channel", "email") == "email":
            parts.setdefault(str(cid), []).append(dict(result.get("statistics") or {}))
    return {cid: stats[0] if len(stats) == 1 else _combine(stats) for cid, stats in parts.items()}


#: Every figure the Reporting API gives as one count over another (Klaviyo's definitions, as the sandbox
#: models them): for a campaign of several messages, recomputed from the summed counts, never summed.
_RATIOS = {**_RATE_DEFINITIONS, "delivery_rate": ("delivered", "recipients"), "failed_rate": ("failed", "recipients"),
           "bounced_or_failed_rate": ("bounced_or_failed", "recipients"),
           "click_to_open_rate": ("clicks_unique", "opens_unique"),
           "spam_complaint_rate": ("spam_complaints", "delivered"),
           "revenue_per_recipient": ("conversion_value", "delivered"),
           "average_order_value": ("conversion_value", "conversions")}


def _combine(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One campaign's statistics from its messages': counts summed, every ratio (rates, the average order
    value, the revenue per recipient) recomputed from the summed counts; a ratio whose counts were not
    asked for is None, not the sum of the parts' (two messages' average order values added up)."""
    out: dict[str, Any] = {"combined": len(parts)}
    given = {k for p in parts for k in p}
    for key in given - _RATIOS.keys():
        values = [p.get(key) for p in parts]
        if not key.endswith("_rate") and all(isinstance(v, (int, float)) for v in values):
            out[key] = sum(values)
    for ratio in given & _RATIOS.keys():
        part, whole = _RATIOS[ratio]
        if part not in out or whole not in out:
            out[ratio] = None
        elif ratio in _RATE_DEFINITIONS:  # a rate of nothing sent is 0 here; merge_rows makes it None
            out[ratio] = out[part] / out[whole] if out[whole] else 0.0
        else:
            out[ratio] = out[part] / out[whole] if out[whole] else None
    return out


def _local(iso_time: str | None, tz: str) -> str | None:
    if not iso_time:
        return None
    try:
        when = _dt.datetime.fromisoformat(str(iso_time).replace("Z", "+00:00"))
    except ValueError:
        return str(iso_time)
    return when.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def merge_rows(
    reports: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str],
    campaigns: Mapping[str, Mapping[str, Any]],
    tz: str,
    extra: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """One row per email campaign in any available report, ordered by send time then name.

    Args:
        reports: metric name -> ``{"results": [...]}`` (absent or without results: not available);
            under :data:`ENGAGEMENT_ONLY`, a report asked with a stand-in conversion metric (the account
            has none of ``metrics``): its delivery and engagement figures only, never its conversions.
        metrics: the conversion metric names, primary first.
        campaigns: campaign id -> ``{"name", "send_time"}`` from get_campaigns.
        tz: the account's time zone, for local send times.
        extra: further statistics to copy into ``row["extra"]``.
    """
    available = [m for m in metrics if (reports.get(m) or {}).get("results") is not None]
    sources = available + ([ENGAGEMENT_ONLY] if (reports.get(ENGAGEMENT_ONLY) or {}).get("results") is not None
                           else [])
    by_metric = {m: _email_results(reports[m]) for m in sources}
    ids = list(dict.fromkeys(cid for m in sources for cid in by_metric[m]))
    primary = metrics[0] if metrics else None
    rows = []
    for cid in ids:
        base = next(by_metric[m][cid] for m in sources if cid in by_metric[m])
        info = campaigns.get(cid) or {}
        row: dict[str, Any] = {
            "campaign_id": cid,
            "name": info.get("name") or f"(unknown campaign {cid})",
            "send_time": info.get("send_time"),
            "send_time_local": _local(info.get("send_time"), tz),
            "recipients": _num(base.get("recipients")),
            "delivered": _num(base.get("delivered")),
            "opens_unique": _num(base.get("opens_unique")),
            "clicks_unique": _num(base.get("clicks_unique")),
            "bounced": _num(base.get("bounced")),
            "unsubscribe_uniques": _num(base.get("unsubscribe_uniques")),
            "open_rate": _rate(base.get("open_rate")),
            "click_rate": _rate(base.get("click_rate")),
            "bounce_rate": _rate(base.get("bounce_rate")),
            "unsubscribe_rate": _rate(base.get("unsubscribe_rate")),
            "conversion_metric": primary,
            "by_metric": {},
            "extra": {s: base.get(s) for s in extra},
        }
        for metric in available:
            stats = by_metric[metric].get(cid)
            row["by_metric"][metric] = None if stats is None else {
                key: (_rate if key == "conversion_rate" else _num)(stats.get(src)) for key, src in _PER_METRIC.items()
            }
        first = row["by_metric"].get(primary) or {}  # the primary metric's report may be unavailable: None
        for key in _PER_METRIC:
            row[key] = first.get(key)
        for rate, (_part, whole) in _RATE_DEFINITIONS.items():
            if rate in row and not row.get(whole):
                row[rate] = None  # nothing delivered (or sent): the rate does not exist, it is not 0%
        rows.append(row)
    rows.sort(key=lambda r: (r["send_time"] or "", r["name"]))
    return rows


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def rate_count(rows: Sequence[Mapping[str, Any]], rate: str) -> float | int:
    """What a day's ``rate`` divides: its count over the campaigns with a denominator that day (see
    :func:`totals`), to cite beside the rate rather than the day's whole count."""
    part, whole = _RATE_DEFINITIONS[rate]
    return _num(round(sum(float(r[part]) for r in rows if (r.get(whole) or 0) > 0 and r.get(part) is not None), 2))


def totals(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    """Summed counts and recomputed rates for the day (per metric too)."""
    out: dict[str, Any] = {"campaigns": len(rows)}
    for key in COUNTS:
        values = [float(r[key]) for r in rows if r.get(key) is not None]
        out[key] = None if rows and not values else _num(round(sum(values), 2))
    delivered = out["delivered"]
    # A day's rate counts only the campaigns that sent that day (a denominator above 0): late opens of a
    # campaign sent days before (0 delivered today) would otherwise be divided by other campaigns'
    # deliveries (an open rate of 130%). Their activity stays in their own rows and in the counts.
    for rate, (part, whole) in _RATE_DEFINITIONS.items():
        if out[part] is None:
            out[rate] = None
            continue
        out[rate] = _ratio(rate_count(rows, rate), out[whole] or 0)
    out["earlier_sends"] = sum(
        1 for r in rows if not (r.get("recipients") or 0) and any((r.get(k) or 0) for k in COUNTS)
    )
    per_metric = {}
    for metric in metrics:
        found: list[Mapping[str, Any]] = [v for r in rows if (v := (r.get("by_metric") or {}).get(metric))]
        if rows and not found:
            continue
        conv = sum(v.get("conversions") or 0 for v in found)
        uniq = sum(v.get("conversion_uniques") or 0 for v in found)
        revenue = round(sum(v.get("revenue") or 0 for v in found), 2)
        sent_uniq = sum(
            (r.get("by_metric") or {}).get(metric, {}).get("conversion_uniques") or 0
            for r in rows if (r.get("delivered") or 0) > 0 and (r.get("by_metric") or {}).get(metric)
        )
        per_metric[metric] = {"conversions": conv, "conversion_uniques": uniq, "revenue": revenue,
                              "conversion_rate": _ratio(sent_uniq, delivered or 0)}
    out["by_metric"] = per_metric
    return out


def _sum_sent(rows: Sequence[Mapping[str, Any]], key: str) -> float | int:
    """``key`` summed over the campaigns with deliveries this day (the scope of the conversion rate)."""
    return _num(round(sum(float(r.get(key) or 0) for r in rows if (r.get("delivered") or 0) > 0), 2))


def split_totals(rows: Sequence[Mapping[str, Any]], day: Mapping[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The day's totals in two parts when its rates do not divide its whole counts, else None.

    A day's rate counts only the campaigns sent that day (see :func:`totals`), while its counts hold
    every campaign's activity that day: beside a whole count the rate reads wrong (28.3% beside 714
    opens of 1,463 delivered). ``sent`` holds the counts each rate divides, with the day's rates;
    ``earlier`` the rest (activity of campaigns sent on earlier days), without rates; the two add up
    to the whole counts. None when nothing is left out of the rates, or no campaign sent that day (its
    rates are n/a): the day's totals alone read true.

    Args:
        rows: the day's campaign rows (:func:`merge_rows`).
        day: their :func:`totals`.
    """
    if not rows or not (day.get("recipients") or 0):
        return None
    sent: dict[str, Any] = {"campaigns": sum(1 for r in rows if (r.get("recipients") or 0) > 0)}
    for rate, (part, whole) in _RATE_DEFINITIONS.items():
        sent[whole] = day.get(whole)
        sent[part] = None if day.get(part) is None else rate_count(rows, rate)
        sent[rate] = day.get(rate)
    for key in ("conversions", "revenue"):
        sent[key] = None if day.get(key) is None else _sum_sent(rows, key)
    earlier: dict[str, Any] = {"campaigns": len(rows) - sent["campaigns"]}
    for key in COUNTS:
        earlier[key] = None if day.get(key) is None else _num(round(day[key] - (sent[key] or 0), 2))
    earlier.update(dict.fromkeys(RATES))
    if not any(earlier[key] for key in COUNTS):
        return None
    return {"sent": sent, "earlier": earlier}


def anomalies(rows: Sequence[Mapping[str, Any]], thresholds: Thresholds) -> list[dict[str, Any]]:
    """Each campaign whose figures cross a threshold: ``{campaign_id, campaign, kind, value, threshold, detail}``.

    ``detail`` states the figures without the campaign's name (names are Klaviyo data and reach the
    model only fenced).
    """
    found: list[dict[str, Any]] = []

    def flag(row: Mapping[str, Any], kind: str, value: Any, threshold: Any, detail: str) -> None:
        found.append({"campaign_id": row["campaign_id"], "campaign": row["name"], "kind": kind, "value": value,
                      "threshold": threshold, "detail": detail})

    rates = [r["open_rate"] for r in rows if r.get("delivered") and r.get("open_rate") is not None]
    median = _stats.median(rates) if len(rates) >= thresholds.min_campaigns_for_median else None
    for row in rows:
        if thresholds.flag_zero_deliveries and row["recipients"] and not row["delivered"]:
            flag(row, "zero_deliveries", 0, 0, f"0 of {fmt_count(row['recipients'])} recipients were delivered")
        bounce = row.get("bounce_rate")
        if bounce is not None and bounce > thresholds.max_bounce_rate:
            flag(row, "high_bounce_rate", bounce, thresholds.max_bounce_rate,
                 f"bounce rate {fmt_rate(bounce)} is over the {fmt_rate(thresholds.max_bounce_rate)} threshold "
                 f"({fmt_count(row['bounced'])} of {fmt_count(row['recipients'])} recipients bounced)")
        unsub = row.get("unsubscribe_rate")
        if unsub is not None and unsub > thresholds.max_unsubscribe_rate:
            flag(row, "high_unsubscribe_rate", unsub, thresholds.max_unsubscribe_rate,
                 f"unsubscribe rate {fmt_rate(unsub)} is over the {fmt_rate(thresholds.max_unsubscribe_rate)} "
                 f"threshold ({fmt_count(row['unsubscribe_uniques'])} of {fmt_count(row['delivered'])} delivered)")
        opened = row.get("open_rate")
        limit = None if median is None else thresholds.low_open_ratio * median
        if limit is not None and row["delivered"] and opened is not None and opened < limit:
            flag(row, "low_open_rate", opened, round(limit, 4),
                 f"open rate {fmt_rate(opened)} is under {thresholds.low_open_ratio:.0%} of the day's median open rate "
                 f"of {fmt_rate(median)} (threshold {fmt_rate(limit)})")
    return found


# -- formatting ---------------------------------------------------------------------------------------
def fmt_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def fmt_count(value: float | int | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


#: ISO 4217 currencies whose minor unit is not a hundredth: none (yen, won) or a thousandth (dinars).
_MINOR_DIGITS = {**dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
                                  "VND", "VUV", "XAF", "XOF", "XPF"), 0),
                 **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3)}


def money_digits(currency: str | None) -> int:
    """Decimal places of ``currency``'s minor unit (ISO 4217): 0 for JPY, 3 for KWD, else 2."""
    return _MINOR_DIGITS.get((currency or "").upper(), 2)


def fmt_money(value: float | int | None, currency: str | None) -> str:
    if value is None:
        return "n/a"
    digits = money_digits(currency)
    symbol = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$"}.get(currency or "")
    return f"{symbol}{value:,.{digits}f}" if symbol else f"{value:,.{digits}f} {currency or ''}".strip()


#: Counts named in :func:`activity_text`, in order: (key, singular, plural).
_ACTIVITY = (("opens_unique", "unique open", "unique opens"), ("clicks_unique", "unique click", "unique clicks"),
             ("conversions", "conversion", "conversions"), ("unsubscribe_uniques", "unsubscribe", "unsubscribes"),
             ("bounced", "bounce", "bounces"))


def activity_text(counts: Mapping[str, Any], currency: str | None) -> str:
    """The counts above zero in words, e.g. ``20 unique opens, 1 conversion ($40.00)``; ``no activity`` if none."""
    parts = []
    for key, one, many in _ACTIVITY:
        value = counts.get(key) or 0
        if value:
            worth = ""
            if key == "conversions" and counts.get("revenue"):
                worth = f" ({fmt_money(counts['revenue'], currency)})"
            parts.append(f"{fmt_count(value)} {one if value == 1 else many}{worth}")
    return ", ".join(parts) or "no activity"
