"""Which local day a report may be asked for: a ``YYYY-MM-DD`` day, not before Klaviyo began.

Klaviyo was founded in 2012, so no account holds a campaign sent before :data:`EARLIEST`, and a
day far back (``0001-01-01``) only reaches Klaviyo as a timeframe in a zone's local mean time
(``-04:56:02``), which it refuses with HTTP 400 after a reporting call is spent. Days after today
in the account's time zone are refused by the graph's first step, which knows that zone.

The graph's first step checks the text and the day before its first call (whoever started the run: ``personas run``,
code, the service, an eval case); ``ReportInput`` refuses both in the same words when ``personas run
--input`` is read, before the run starts (no thread is made for a typo).

Example::

    report_day("2026-03-08")   # datetime.date(2026, 3, 8)
    report_day("2001-01-01")   # ValueError: 2001-01-01 is before 2012-01-01, ...
"""

from __future__ import annotations

import datetime as _dt

__all__ = ["EARLIEST", "report_day", "too_early"]

#: The first day a report may be asked for: January 2012, when Klaviyo was founded.
EARLIEST = _dt.date(2012, 1, 1)


def report_day(raw: object, example: _dt.date | None = None) -> _dt.date:
    """The day ``raw`` names; ValueError saying the fix when it is not a ``YYYY-MM-DD`` day from
    :data:`EARLIEST` on (``example``, e.g. yesterday, is the day the message offers)."""
    try:
        day = _dt.date.fromisoformat(str(raw))
    except ValueError:
        hint = f", e.g. {example}" if example else f" (a day from {EARLIEST} on)"
        raise ValueError(f"{raw!r} is not a date; write it as YYYY-MM-DD{hint}") from None
    if day < EARLIEST:
        raise ValueError(too_early(day))
    return day


def too_early(day: _dt.date) -> str:
    """What is wrong with a day before :data:`EARLIEST`, and the fix."""
    return (
        f"{day} is before {EARLIEST}, when Klaviyo began, so no account has campaign figures for it; "
        f"give a day from {EARLIEST} on"
    )
