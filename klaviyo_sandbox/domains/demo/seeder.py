"""The demo account's builder state: its clock (days relative to today in New York), ids, people and
the events recorded so far, written to the store in bulk at the end (``write_events``).
"""

from __future__ import annotations

import datetime as _dt
import random
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from ..._jsonapi import iso
from ..._services import Services
from ..._store import Resource
from .definitions import ulid

ZONE = "America/New_York"
DAY = 86_400
ID_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the calendar seeded ids are written on


class Person:
    """One profile of the demo account while it is made: its consent story, propensity and orders."""

    __slots__ = (
        "created",
        "lifetime_orders",
        "orders",
        "propensity",
        "res",
        "state",
        "submitted_at",
        "subscribed_at",
        "suppressed_at",
        "unsub_at",
        "unsub_campaign",
    )

    def __init__(self, res: Resource, state: str, created: float, propensity: float) -> None:
        self.res = res
        self.state = state
        self.created = created
        self.subscribed_at = created + 60 if state != "never" else None
        self.unsub_at: float | None = None
        self.unsub_campaign: int | None = None
        self.suppressed_at: float | None = None
        self.propensity = propensity
        self.orders = 0
        self.lifetime_orders = 0
        self.submitted_at: float | None = None

    def can_email(self, t: float) -> bool:
        return (
            self.subscribed_at is not None
            and self.subscribed_at <= t
            and (self.unsub_at is None or self.unsub_at > t)
            and (self.suppressed_at is None or self.suppressed_at > t)
        )


class Seeder:
    """Builds the demo account into ``svc.store`` (see the ``demo`` package docstring): what the steps share."""

    def __init__(self, svc: Services, seed: int) -> None:
        self.svc = svc
        self.store = svc.store
        self.rng = random.Random(f"northwind:{seed}")
        self.zone = ZoneInfo(ZONE)
        self.today = _dt.datetime.fromtimestamp(svc.clock.time(), self.zone).date()
        self.anchor = self.day_start(0)
        self.events: list[tuple[int, str, str, dict[str, Any], str]] = []
        self.metric: dict[str, str] = {}
        self.ids: dict[str, str] = {}
        self.people: list[Person] = []
        self.webinar: set[str] = set()
        self.phones: dict[str, int] = {}

    def day_start(self, days_ago: int) -> float:
        day = self.today - _dt.timedelta(days=days_ago)
        return _dt.datetime.combine(day, _dt.time(0), self.zone).timestamp()

    def local(self, days_ago: int, hour: int, minute: int = 0) -> float:
        day = self.today - _dt.timedelta(days=days_ago)
        return _dt.datetime.combine(day, _dt.time(hour, minute), self.zone).timestamp()

    def id_time(self, when: float) -> float:
        """The time an id encodes: a fixed calendar, one millisecond per id made, so the same seed
        gives the same ids whatever the day (examples and cassettes can name them)."""
        self._id_count = getattr(self, "_id_count", 0) + 1
        return ID_EPOCH + self._id_count / 1000

    def new_id(self, rtype: str, when: float) -> str:
        return self.store.new_id(rtype, self.id_time(when))

    def put(
        self,
        rtype: str,
        attrs: dict[str, Any],
        when: float,
        rels: dict[str, Any] | None = None,
        rid: str | None = None,
        private: dict[str, Any] | None = None,
    ) -> Resource:
        res = Resource(rtype, rid or self.new_id(rtype, when), attrs, rels or {}, when, when, private or {})
        self.store.put(res)
        return res

    def event(self, ts: float, person: Person, metric: str, props: dict[str, Any], uid: str | None = None) -> None:
        if ts < self.anchor:
            t = int(ts)
            self.events.append((t, person.res.id, self.metric[metric], props, uid or str(t)))

    def write_events(self) -> None:
        """Store the recorded events as ``_common.record_event`` would (same shape and dedup index), in bulk."""
        self.events.sort(key=lambda e: e[0])
        dedup: dict[str, str] = self.store.mutable("event_unique_ids", dict)
        put, bits, last = self.store.put, self.rng.getrandbits, {}
        for ts, pid, mid, props, uid in self.events:
            key = f"{pid}|{mid}|{uid}"
            if key in dedup:
                continue
            eid = ulid(int(self.id_time(ts) * 1000), bits(80))
            put(
                Resource(
                    "event",
                    eid,
                    {
                        "timestamp": ts,
                        "datetime": iso(ts),
                        "event_properties": props,
                        "uuid": str(uuid.UUID(int=bits(128))),
                    },
                    {"profile": ("profile", pid), "metric": ("metric", mid)},
                    ts,
                    ts,
                    {"unique_id": uid},
                )
            )
            dedup[key] = eid
            last[pid] = ts
        for p in self.people:
            if p.res.id in last:
                p.res.attributes["last_event_date"] = iso(last[p.res.id])
