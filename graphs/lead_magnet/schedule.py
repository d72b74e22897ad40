"""When the first touchpoint goes out: the first moment inside the persona's send window, outside
its quiet hours, in the lead's own time zone (the profile's ``location.timezone``, else the default).
"""

from __future__ import annotations

import datetime as _dt
import functools
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from .settings import WEEKDAYS, QuietHours, Window


def _t(text: str) -> _dt.time:
    h, m = text.split(":")
    return _dt.time(int(h), int(m))


def _quiet(local: _dt.datetime, quiet: QuietHours) -> bool:
    start, end, now = _t(quiet.start), _t(quiet.end), local.time()
    if start <= end:
        return start <= now < end
    return now >= start or now < end


def _in_window(local: _dt.datetime, window: Window, quiet: QuietHours) -> bool:
    return (
        WEEKDAYS[local.weekday()] in window.days
        and _t(window.start) <= local.time() < _t(window.end)
        and not _quiet(local, quiet)
    )


@functools.cache
def _zone_names() -> dict[str, str]:
    """Every IANA zone name by its casefolded spelling, built once: profiles write 'europe/berlin' too."""
    return {name.casefold(): name for name in available_timezones()}


def _zone(name: str) -> ZoneInfo:
    """The zone ``name`` names in any letter case (its canonical spelling as the key); or ZoneInfoNotFoundError."""
    canonical = _zone_names().get(name.strip().casefold())
    return ZoneInfo(canonical or name)


def next_send_time(
    now: float, timezone: str | None, default_tz: str, window: Window, quiet: QuietHours
) -> dict[str, Any]:
    """{send_at (UTC ISO), local (ISO in the lead's zone), timezone, immediate, reason}."""
    note = ""
    try:
        zone = _zone(timezone or default_tz)
    except (ZoneInfoNotFoundError, ValueError):
        note = f" (unknown time zone {timezone!r}; used {default_tz})"
        zone = _zone(default_tz)
    zone_name = zone.key
    # the next whole minute, counted in time rather than on the clock face: a minute added to a wall time
    # in a repeated hour would lose which of the two it is (on Lord Howe, 29 minutes before now)
    local = _dt.datetime.fromtimestamp((int(now) // 60 + 1) * 60, zone)
    if _in_window(local, window, quiet):
        chosen, immediate = local, True
        reason = f"inside the send window ({window.start}-{window.end} {zone_name})"
    else:
        immediate = False
        chosen = _next_opening(local, zone, window, quiet)
        reason = (
            f"outside the send window or in quiet hours at {local:%a %H:%M} {zone_name}; "
            f"next window opens {chosen:%a %H:%M}"
        )
    return {
        "send_at": chosen.astimezone(_dt.UTC).isoformat(timespec="seconds"),
        "local": chosen.isoformat(timespec="minutes"),
        "timezone": zone_name,
        "immediate": immediate,
        "reason": reason + note,
    }


def _next_opening(local: _dt.datetime, zone: ZoneInfo, window: Window, quiet: QuietHours) -> _dt.datetime:
    """The first moment after ``local`` inside the window and outside quiet hours.

    Sending becomes allowed only where the window opens or quiet hours end, so those two times of
    each day are the only candidates (quiet hours can cover the window's start: 07:00 under 20-08).
    """
    for days in range(15):
        day = (local + _dt.timedelta(days=days)).date()
        for opens in sorted({_t(window.start), _t(quiet.end)}):
            # a wall time the clocks skip (a change at midnight: 00:00 never comes) is the moment it names
            # as the clock face then reads (01:00), checked again; compared as instants, not wall times
            candidate = _dt.datetime.combine(day, opens, tzinfo=zone).astimezone(_dt.UTC).astimezone(zone)
            if candidate.timestamp() >= local.timestamp() and _in_window(candidate, window, quiet):
                return candidate
    raise ValueError(
        f"send_window {window.start}-{window.end} ({', '.join(window.days)}) has no time outside "
        f"quiet_hours {quiet.start}-{quiet.end}; widen send_window or shorten quiet_hours"
    )


def as_scheduled(send_at: str, timezone: str | None, default_tz: str) -> dict[str, Any] | None:
    """The schedule of a start already sent (its ``send_at``, UTC ISO), in the lead's zone, in
    :func:`next_send_time`'s shape; None when ``send_at`` is not a time."""
    try:
        at = _dt.datetime.fromisoformat(send_at)
    except (TypeError, ValueError):
        return None
    try:
        zone = _zone(timezone or default_tz)
    except (ZoneInfoNotFoundError, ValueError):
        zone = _zone(default_tz)
    return {
        "send_at": send_at,
        "local": at.astimezone(zone).isoformat(timespec="minutes"),
        "timezone": zone.key,
        "immediate": False,
        "reason": "the time this submission's start was sent with, before the run stopped",
    }

