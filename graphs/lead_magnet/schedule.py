"""When the first touchpoint goes out: the first moment inside the persona's send window, outside
its quiet hours, in the lead's own time zone (the profile's ``location.timezone``, else the default).
"""

from __future__ import annotations

import datetime as _dt
import functools
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from klaviyo_toolkit.redact import clip

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


#: Names in the zone folders that are no zone of a lead's: the host's own zone (``localtime``, the
#: sequencer's machine, not the lead) and the default rules file.
HOST_FILES = frozenset({"localtime", "posixrules"})


@functools.cache
def _zone_names() -> dict[str, str]:
    """Every IANA zone name by its casefolded spelling, built once: profiles write 'europe/berlin' too."""
    return {name.casefold(): name for name in available_timezones() if name not in HOST_FILES}


def _zone(name: object) -> ZoneInfo:
    """The zone ``name`` names in any letter case (its canonical spelling as the key); or ZoneInfoNotFoundError.

    Only a name on the list of zones opens a file: a profile's time zone is whatever was written
    into it, and handed to ``ZoneInfo`` as it is, a folder ("Europe") or an overlong name raised
    ``OSError`` from every retry of the lead's run, and ``localtime`` gave the host's zone."""
    canonical = _zone_names().get(name.strip().casefold()) if isinstance(name, str) else None
    if canonical is None:
        raise ZoneInfoNotFoundError(f"no time zone is called {name!r}")
    return ZoneInfo(canonical)


def _lead_zone(timezone: object, default_tz: str) -> tuple[ZoneInfo, str]:
    """(the lead's zone, a note when its own could not be used): its profile's, else ``default_tz``
    (checked when the persona loaded, so it opens whatever the zone list holds)."""
    note = ""
    if timezone:
        try:
            return _zone(timezone), note
        except ZoneInfoNotFoundError:
            note = f" (unknown time zone {clip(repr(timezone), 60)}; used {default_tz})"
    try:
        return _zone(default_tz), note
    except ZoneInfoNotFoundError:
        return ZoneInfo(default_tz), note


def next_send_time(
    now: float, timezone: str | None, default_tz: str, window: Window, quiet: QuietHours
) -> dict[str, Any]:
    """{send_at (UTC ISO), local (ISO in the lead's zone), timezone, immediate, reason}."""
    zone, note = _lead_zone(timezone, default_tz)
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
    zone, _note = _lead_zone(timezone, default_tz)
    return {
        "send_at": send_at,
        "local": at.astimezone(zone).isoformat(timespec="minutes"),
        "timezone": zone.key,
        "immediate": False,
        "reason": "the time this submission's start was sent with, before the run stopped",
    }

