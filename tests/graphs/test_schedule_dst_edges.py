"""The first touchpoint's time across daylight-saving changes: never in quiet hours, never outside the
window, never before now, and shown as the wall time it is. A window opening (or quiet hours ending)
in a skipped hour was used as written (Havana, 00:00 that never came: sent at 01:00, in quiet hours),
and a minute added on a repeated hour lost which of the two it was (Lord Howe: 29 minutes before now)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from graphs.lead_magnet.schedule import _in_window, next_send_time
from graphs.lead_magnet.settings import QuietHours, Window

WEEK = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
SETTINGS = [
    (Window(start="00:00", end="03:00", days=WEEK), QuietHours(start="23:30", end="00:30")),
    (Window(start="00:00", end="03:00", days=WEEK), QuietHours(start="01:00", end="08:00")),
    (Window(start="02:30", end="05:00", days=WEEK), QuietHours(start="21:00", end="02:15")),
    (Window(start="01:00", end="04:00", days=WEEK), QuietHours(start="12:00", end="01:45")),
    (Window(), QuietHours()),
]
#: Zones with a change in 2026 at midnight (Havana), at 02:00 (New York), by 30 minutes (Lord Howe),
#: and at 01:00 UTC (London), with the days around each change.
CHANGES = [("America/Havana", "2026-03-08"), ("America/Havana", "2026-11-01"), ("America/New_York", "2026-03-08"),
           ("America/New_York", "2026-11-01"), ("Australia/Lord_Howe", "2026-04-05"),
           ("Australia/Lord_Howe", "2026-10-04"), ("Europe/London", "2026-03-29"), ("Europe/London", "2026-10-25")]


@pytest.mark.parametrize(("zone", "day"), CHANGES)
def test_a_send_time_is_inside_the_window_and_after_now_across_a_change(zone: str, day: str) -> None:
    tz = ZoneInfo(zone)
    start = dt.datetime.fromisoformat(day).replace(tzinfo=tz).timestamp() - 6 * 3600
    for window, quiet in SETTINGS:
        for step in range(0, 36 * 3600, 7 * 60):
            now = start + step
            got = next_send_time(now, zone, "UTC", window, quiet)
            at = dt.datetime.fromisoformat(got["send_at"])
            local = at.astimezone(tz)
            assert at.timestamp() > now, (zone, now, got)
            assert _in_window(local, window, quiet), (zone, dt.datetime.fromtimestamp(now, tz), got, window, quiet)
            assert dt.datetime.fromisoformat(got["local"]) == at and got["local"] == local.isoformat(
                timespec="minutes"), ("the local time shown is the send time's", got)
