"""Schedules: a persona's ``schedule:`` cron, in its account's time zone, as durable runs.

Once a minute (procrastinate's periodic task ``personas.tick`` on PostgreSQL, deduplicated across
workers by procrastinate; a timer inside ``personas serve`` on SQLite) :func:`schedule_tick` looks at
every persona whose ``schedule`` is a 5-field cron expression:

- the cron is read in the **account's time zone** (``get_accounts``' ``timezone``, remembered in the
  store; UTC when the persona may not read the account), with croniter, so "0 7 * * *" is 07:00 there
  on both sides of a daylight-saving change; on the change days it runs as vixie cron does (a fixed
  time in the repeated autumn hour once, a wildcard hour through both: :func:`slots_between`). When
  the time zone cannot be read yet (Klaviyo unreachable or failing before the first answer), the tick
  records no slot and keeps the cursor: the next tick asks again and finds the slots then, in the
  right zone (a guess of UTC would run the same local day twice);
- each slot is a run keyed ``schedule:<slot>``: the store's unique key means two workers ticking at
  once make one run, never two;
- the store keeps the last slot looked at, so slots missed while nothing ran (downtime) are found on
  the next tick and handled by ``catch_up``: ``"latest"`` (default) runs the most recent missed slot
  once, ``"all"`` runs every missed slot (at most :data:`MAX_CATCH_UP`), ``"none"`` runs only a slot
  that is on time (less than :data:`ON_TIME` seconds late). A persona seen for the first time starts
  from now: nothing before it is "missed"; so does one whose stored mark is not a time up to now
  (damaged, or ahead: a clock that was wrong and was put right), with a warning.

A scheduled run of a graph whose input takes a ``date`` (the campaign reporter) reports the day
before its slot, in the account's time zone, so a caught-up run reports the day it was due for.
"""

from __future__ import annotations

import datetime as _dt
import logging
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from graphs import graph_spec
from klaviyo_toolkit.errors import PermissionDeniedError
from klaviyo_toolkit.tools import CallStopped
from personas.kernel.spec import PersonaSpec

from .checks import CATCH_UP, check_catch_up
from .service import Service
from .store import Run

log = logging.getLogger("personas.service.schedule")

__all__ = ["CATCH_UP", "MAX_CATCH_UP", "ON_TIME", "account_timezone", "cron_of", "schedule_tick", "slots_between"]

#: At most this many missed slots are run per persona with ``catch_up="all"`` (the newest ones).
MAX_CATCH_UP = 50
#: A slot this many seconds late still counts as on time (``catch_up="none"``).
ON_TIME = 120.0


def cron_of(spec: PersonaSpec) -> str | None:
    """The persona's cron expression, or None (``on_event``, ``manual`` or no schedule)."""
    value = spec.schedule
    return value if value and len(value.split()) == 5 else None


def slots_between(cron: str, zone: ZoneInfo, after: float, until: float) -> list[float]:
    """Every slot of ``cron`` in ``zone`` strictly after ``after`` and at or before ``until`` (epoch s).

    Daylight saving as vixie cron does it: a job at a fixed wall time (neither its minute nor its hour
    field starts with ``*``) runs once when that time comes twice (the autumn day's repeated hour: at
    the first), and a job with a wildcard minute or hour runs through both real hours; a wall time the
    spring day skips runs once, just after the gap (croniter's answer).
    """
    from croniter import croniter

    fixed = not any(field.startswith("*") for field in cron.split()[:2])
    it = croniter(cron, _dt.datetime.fromtimestamp(after, zone))
    out: list[float] = []
    while True:
        slot = float(it.get_next(float))
        if slot > until:
            return out
        if fixed and _second_time_round(slot, zone):
            continue  # this wall time ran an hour ago (its first occurrence is a slot too)
        out.append(slot)
        if len(out) > 10_000:  # "* * * * *" after a very long downtime: the newest matter
            out = out[-MAX_CATCH_UP:]


def _second_time_round(slot: float, zone: ZoneInfo) -> bool:
    """Whether ``slot`` is the second occurrence of its wall time in ``zone`` (the repeated hour)."""
    here = _dt.datetime.fromtimestamp(slot, zone)
    return bool(here.fold) and here.replace(fold=0).utcoffset() != here.utcoffset()


def account_timezone(service: Service, spec: PersonaSpec) -> str | None:
    """The account's time zone for ``spec``, asked once (``get_accounts``) and remembered.

    ``"UTC"`` when the persona may not read the account (no ``accounts:read``: asked again next
    time); None when it cannot be read now (Klaviyo unreachable or failing, the connection unusable):
    the caller waits for a tick that can read it rather than guess.
    """
    key = f"timezone:{spec.name}"
    known = service.store.cursor(key)
    if known:
        return known
    try:
        ctx = service.context(spec, f"{spec.name}-timezone")
        found = ctx.toolkit.fetch("get_accounts")
    except PermissionDeniedError:
        return "UTC"
    except CallStopped as stop:
        return "UTC" if stop.stopped.status == "denied" else None
    except Exception as exc:  # Klaviyo down, a 5xx or 429 after retries, a revoked connection
        log.warning(
            "the time zone of %s's account cannot be read now (%s); no slot recorded and its schedule's "
            "cursor kept: the next tick tries again",
            spec.name,
            type(exc).__name__,
        )
        return None
    data = found.data or []
    zone = str(((data[0].get("attributes") or {}).get("timezone")) if data else "") or "UTC"
    service.store.set_cursor(key, zone)
    return zone


def _input_for(spec: PersonaSpec, slot: float, zone: ZoneInfo) -> dict[str, Any]:
    model = graph_spec(spec.graph).input_model
    if model is not None and "date" in model.model_fields:
        day = _dt.datetime.fromtimestamp(slot, zone).date() - _dt.timedelta(days=1)
        return {"date": day.isoformat()}
    return {}


def schedule_tick(service: Service, now: float, *, catch_up: str = "latest") -> list[Run]:
    """Record the runs that are due at ``now`` (see the module docstring); the new ones, to enqueue."""
    check_catch_up(catch_up)
    new: list[Run] = []
    for spec in service.personas().values():
        try:
            new += _due(service, spec, now, catch_up)
        except Exception:  # one persona's broken schedule or account never stops the others'
            log.exception("the schedule of %s could not be read; its runs were skipped this tick", spec.name)
    return new


def _due(service: Service, spec: PersonaSpec, now: float, catch_up: str) -> list[Run]:
    """One persona's new scheduled runs at ``now`` (see :func:`schedule_tick`)."""
    new: list[Run] = []
    cron = cron_of(spec)
    if cron is None:
        return new
    name = f"schedule:{spec.name}"
    mark = service.store.cursor(name)
    try:
        after = float(mark) if mark is not None else now
    except ValueError:
        after = float("nan")
    if mark is not None and not now - 10 * 365 * 86400 < after <= now + 60:
        # damaged, or ahead of now (a clock that was wrong, put right): every tick failed, or none found a
        # slot until that time came; start again from now, as a first sight does
        log.warning("the stored cursor %s was %r, not a time up to now; its schedule starts again from now",
                    name, mark)
        mark = None
    if mark is None:
        service.store.set_cursor(name, repr(now))
        return new
    named = account_timezone(service, spec)
    if named is None:
        return new  # not read now: no slot, the cursor stays, the next tick finds these slots
    try:
        zone = ZoneInfo(named)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("%s: the account's time zone %r is unknown here (tzdata); its schedule is read in UTC",
                    spec.name, named)  # fmt: skip
        zone = ZoneInfo("UTC")
    slots = slots_between(cron, zone, after, now)
    if not slots:
        return new
    if catch_up == "latest":
        chosen = slots[-1:]
    elif catch_up == "all":
        chosen = slots[-MAX_CATCH_UP:]
    else:
        chosen = [s for s in slots if now - s <= ON_TIME]
    for slot in chosen:
        stamp = _dt.datetime.fromtimestamp(slot, _dt.UTC).isoformat(timespec="seconds")
        run, created = service.store.create_run(
            spec.name, f"schedule:{stamp}", "schedule", _input_for(spec, slot, zone), scheduled_for=slot
        )
        if created:
            new.append(run)
    service.store.set_cursor(name, repr(slots[-1]))
    return new
