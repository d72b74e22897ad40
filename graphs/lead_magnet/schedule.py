"""When the first touchpoint goes out: the first moment inside the persona's send window, outside
its quiet hours, in the lead's own time zone (the profile's ``location.timezone``, else the default).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


def next_send_time(
    now: float, timezone: str | None, default_tz: str, window: Window, quiet: QuietHours
) -> dict[str, Any]:
    """{send_at (UTC ISO), local (ISO in the lead's zone), timezone, immediate, reason}."""
    zone_name = timezone or default_tz
    note = ""
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        note = f" (unknown time zone {zone_name!r}; used {default_tz})"
        zone_name = default_tz
        zone = ZoneInfo(default_tz)
    local = _dt.datetime.fromtimestamp(now, zone).replace(second=0, microsecond=0) + _dt.timedelta(minutes=1)
    if _in_window(local, window, quiet):
        chosen, immediate = local, True
        reason = f"inside the send window ({window.start}-{window.end} {zone_name})"
    else:
        immediate = False
        chosen = local
        opens = _t(window.start)
        for days in range(15):
            day = (local + _dt.timedelta(days=days)).date()
            candidate = _dt.datetime.combine(day, opens, tzinfo=zone)
            if candidate >= local and _in_window(candidate, window, quiet):
                chosen = candidate
                break
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
