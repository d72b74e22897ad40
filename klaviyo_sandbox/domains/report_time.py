"""Reporting time frames and series intervals, in the account's timezone as Klaviyo computes them.

A time frame is a ``key`` (``yesterday``, ``last_7_days``, ...) or a custom ``start``/``end`` whose
offset is ignored: the wall-clock times are read in the account's timezone (the ``account``
resource's ``timezone``; UTC when the sandbox has no account). ``last_N_days`` are the N full days
before today; ``last_week`` is the previous Sunday-to-Saturday week; ``last_month``, ``last_3_months``
and ``last_12_months`` are whole calendar months before this one.

Example::

    zone = account_zone(svc)
    start, end = timeframe({"key": "yesterday"}, zone, svc.clock.time())   # epoch seconds, [start, end)
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from .._jsonapi import bad_request
from .._services import Services

POINTER = "/data/attributes/timeframe"
MAX_DAYS = 366
#: Longest time frame each series interval accepts (Klaviyo's documented limits, in days).
INTERVAL_LIMITS = {"hourly": 7, "daily": 60, "weekly": MAX_DAYS, "monthly": MAX_DAYS}


def account_zone(svc: Services) -> ZoneInfo:
    account = next(iter(svc.store.all("account")), None)
    name = account.attributes.get("timezone") if account else None
    try:
        return ZoneInfo(str(name or "UTC"))
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def timeframe(spec: Mapping[str, Any], zone: ZoneInfo, now: float) -> tuple[float, float]:
    """``[start, end)`` in epoch seconds for a timeframe object of a report request."""
    local_now = _dt.datetime.fromtimestamp(now, zone)
    today = _midnight(local_now.date(), zone)
    if "key" in spec:
        start, end = _keyed(str(spec["key"]), today, local_now, zone)
    else:
        start, end = _wall(spec.get("start"), zone, "start"), _wall(spec.get("end"), zone, "end")
        if end <= start:
            raise bad_request("timeframe.end must be after timeframe.start.", pointer=f"{POINTER}/end")
    if (end - start).total_seconds() > MAX_DAYS * 86400:
        raise bad_request("The time frame is longer than one year; query at most 1 year at a time.", pointer=POINTER)
    return start.timestamp(), end.timestamp()


def _keyed(key: str, today: _dt.datetime, local_now: _dt.datetime, zone: ZoneInfo) -> tuple[_dt.datetime, _dt.datetime]:
    day = today.date()
    tomorrow = _midnight(day + _dt.timedelta(days=1), zone)
    if key == "today":
        return today, tomorrow
    if key == "yesterday":
        return _midnight(day - _dt.timedelta(days=1), zone), today
    if key.startswith("last_") and key.endswith("_days"):
        return _midnight(day - _dt.timedelta(days=int(key.split("_")[1])), zone), today
    week_start = day - _dt.timedelta(days=(day.weekday() + 1) % 7)  # Sunday
    if key == "this_week":
        return _midnight(week_start, zone), tomorrow
    if key == "last_week":
        return _midnight(week_start - _dt.timedelta(days=7), zone), _midnight(week_start, zone)
    month = day.replace(day=1)
    if key == "this_month":
        return _midnight(month, zone), tomorrow
    months = {"last_month": 1, "last_3_months": 3, "last_12_months": 12}
    if key in months:
        return _midnight(add_months(month, -months[key]), zone), _midnight(month, zone)
    year = day.replace(month=1, day=1)
    if key == "this_year":
        return _midnight(year, zone), tomorrow
    if key == "last_year":
        return _midnight(year.replace(year=year.year - 1), zone), _midnight(year, zone)
    raise bad_request(f"Unknown timeframe key {key!r}.", pointer=f"{POINTER}/key")


def buckets(start: float, end: float, interval: str, zone: ZoneInfo) -> list[float]:
    """Start times of the series buckets covering ``[start, end)`` (local hours, days, weeks, months)."""
    limit = INTERVAL_LIMITS.get(interval, MAX_DAYS)
    if end - start > limit * 86400 + 3600:  # an hour of slack for daylight-saving changes
        raise bad_request(
            f"An {interval} series covers at most {limit} days; use a shorter timeframe or a longer interval.",
            pointer="/data/attributes/interval",
        )
    out: list[float] = []
    cursor = _dt.datetime.fromtimestamp(start, zone)
    while cursor.timestamp() < end:
        out.append(cursor.timestamp())
        if interval == "hourly":
            cursor = _dt.datetime.fromtimestamp(cursor.timestamp() + 3600, zone)
        elif interval == "daily":
            cursor = _midnight(cursor.date() + _dt.timedelta(days=1), zone)
        elif interval == "weekly":
            cursor = _midnight(cursor.date() + _dt.timedelta(days=7), zone)
        else:
            cursor = _midnight(add_months(cursor.date().replace(day=1), 1), zone)
    return out


def local_iso(ts: float, zone: ZoneInfo) -> str:
    return _dt.datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")


def add_months(day: _dt.date, months: int) -> _dt.date:
    index = day.year * 12 + day.month - 1 + months
    return day.replace(year=index // 12, month=index % 12 + 1, day=1)


def _midnight(day: _dt.date, zone: ZoneInfo) -> _dt.datetime:
    return _dt.datetime(day.year, day.month, day.day, tzinfo=zone)


def _wall(value: Any, zone: ZoneInfo, name: str) -> _dt.datetime:
    try:
        when = _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(
            f"timeframe.{name} must be an ISO 8601 datetime, e.g. 2026-07-01T00:00:00.", pointer=f"{POINTER}/{name}"
        ) from None
    return when.replace(tzinfo=zone)
