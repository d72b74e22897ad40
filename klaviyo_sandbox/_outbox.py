"""The outbox: messages flows and campaigns "sent", stored as ``outbox-message`` resources.

Nothing leaves the sandbox; a message is recorded with when it would go (``send_at``) and whether it
was scheduled or skipped (and why). Read it with ``Sandbox.outbox(to=...)`` or ``GET /sandbox/outbox``.
"""

from __future__ import annotations

from typing import Any

from klaviyo_toolkit.clock import Clock

from ._jsonapi import iso
from ._store import Resource, Store

Json = dict[str, Any]
TYPE = "outbox-message"


class Outbox:
    """Messages put in the outbox of one store."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def add(self, **message: Any) -> Resource:
        """Put a message in the outbox; returns the stored message (status "scheduled" unless given)."""
        now = self._clock.time()
        mid = self._store.new_id(TYPE, now)
        message.setdefault("status", "scheduled")
        message.setdefault("created", iso(now))
        res = Resource(TYPE, mid, message, {}, now, now)
        self._store.put(res)
        return res

    def messages(self, **filters: Any) -> list[Json]:
        """Messages whose attributes equal every filter given (filters that are None are ignored)."""
        out = []
        for res in self._store.iter(TYPE):
            if all(res.attributes.get(k) == v for k, v in filters.items() if v is not None):
                out.append({"id": res.id, **res.attributes})
        return out

    def clear(self) -> None:
        for res in self._store.all(TYPE):
            self._store.delete(res.type, res.id)
