"""Polling for accounts without webhooks: ``personas watch PERSONA``.

Each poll reads the events of the persona's trigger metric (``get_events`` filtered on the metric id
and ``datetime`` after the stored cursor, oldest first, ``include=profile,metric``) and records one
run per event, keyed by the event id: the same key a webhook delivery of that event uses, so an
event is run once whichever way it arrives, and however often it is seen.

The cursor (the newest event time seen) is stored after the runs are recorded; the next poll starts
``overlap`` seconds before it, so events Klaviyo shows late (it ingests asynchronously) are still
found, and the ones seen before are dropped by their id. A persona polled for the first time starts
``lookback`` seconds back. Killed anywhere, a watcher restarts from its last cursor: an event is
recorded before the cursor moves past it, and recorded once.

A run recorded by an earlier poll that failed before handing it on (Klaviyo's next page a 5xx after
its retries: the cursor stays, so the next poll reads the event again) is still ``queued`` and in no
queue; seen again, it is handed back in ``waiting``, to be queued again (a queue never takes a run
twice, and a run is claimed once), so a watcher that keeps going runs it, not only its restart.

An event holding text no store keeps (a NUL, which PostgreSQL refuses) is recorded as a ``failed``
run naming the field (:meth:`Service.record_event`, the check webhook deliveries get), logged once
and never run; the poll goes on with the rest of the page.
"""

from __future__ import annotations

import datetime as _dt
import logging
from typing import Any

from klaviyo_toolkit.filters import quoted
from personas.kernel.errors import UsageProblem
from personas.kernel.spec import PersonaSpec

from .service import Service, trigger_metric
from .store import Run

__all__ = ["DEFAULT_LOOKBACK", "DEFAULT_OVERLAP", "poll_once"]

log = logging.getLogger("personas.service.watch")

DEFAULT_OVERLAP = 300.0
DEFAULT_LOOKBACK = 3600.0


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat(timespec="seconds")


def _when(event: dict[str, Any]) -> float | None:
    """When the event happened; None when it does not say in a form we read (it moves no cursor)."""
    attrs = event.get("attributes") or {}
    if isinstance(attrs.get("timestamp"), (int, float)):
        return float(attrs["timestamp"])
    try:
        return _dt.datetime.fromisoformat(str(attrs.get("datetime")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def poll_once(
    service: Service,
    spec: PersonaSpec,
    *,
    now: float,
    overlap: float = DEFAULT_OVERLAP,
    lookback: float = DEFAULT_LOOKBACK,
    waiting: list[Run] | None = None,
) -> list[Run]:
    """One poll (see the module docstring); the runs it recorded for the first time, oldest first.
    Runs of events seen before that are still queued are appended to ``waiting``, when given."""
    metric = trigger_metric(spec)
    if metric is None:
        raise UsageProblem(
            f"{spec.name} is not started by events (its schedule is {spec.schedule!r}); "
            "watch a persona with `schedule: on_event`, e.g. lead-magnet-sequencer"
        )
    kit = service.context(spec, f"{spec.name}-watch").toolkit
    metric_id = next(
        (m["id"] for page in kit.pages("get_metrics") for m in page.data or []
         if (m.get("attributes") or {}).get("name") == metric),
        None,
    )
    if metric_id is None:
        return []  # no event of that metric yet
    name = f"watch:{spec.name}"
    stored = service.store.cursor(name)
    try:
        cursor = float(stored) if stored is not None else now - lookback
    except ValueError:
        cursor = float("nan")
    if not now - 10 * 365 * 86400 < cursor <= now + 60:  # nan, garbage, a time far off: read the lookback again
        log.warning("the stored cursor %s was %r, not a time up to now; polling from %.0f s back instead "
                    "(events already recorded are not run again)", name, stored, lookback)
        cursor = now - lookback
    since = cursor - overlap
    newest = cursor
    new: list[Run] = []
    query = f"and(equals(metric_id,{quoted(metric_id)}),greater-than(datetime,{_iso(since)}))"
    for page in kit.pages("get_events", filter=query, sort="datetime", include=["profile", "metric"]):
        included = [i for i in (page.body or {}).get("included") or [] if isinstance(i, dict)]
        for event in page.data or []:
            links = {
                ((rel.get("data") or {}).get("type"), (rel.get("data") or {}).get("id"))
                for rel in (event.get("relationships") or {}).values() if isinstance(rel, dict)
            }
            document = {"data": event, "included": [i for i in included if (i.get("type"), i.get("id")) in links]}
            run, created = service.record_event(spec, str(event["id"]), document, trigger="poll")
            if created and run.refused:  # text no store keeps: recorded failed, never run
                log.warning("%s: %s", spec.name, run.error)
            elif created:
                new.append(run)
            elif run.status == "queued" and waiting is not None:  # recorded, maybe never handed on
                waiting.append(run)
            when = _when(event)
            if when is not None:
                # an event dated ahead of this poll (a client clock, a backfill) must not move the cursor past
                # now: every event made meanwhile would be older than the cursor and never seen
                newest = max(newest, min(when, now))
    service.store.set_cursor(name, repr(newest))
    return new
