"""Fault injection: a seeded share of 5xx answers, 429 storms, slow, dropped and lost responses.

Configured per operation or overall (``/sandbox/faults`` or ``Sandbox(faults=...)``); decisions come
from a seeded RNG, so a test run with the same seed sees the same faults.

What each fault does to a request, in the order they are decided:

- ``slow_rate``: answered ``delay`` seconds late (the request is read first, then the wait), or as
  soon as :meth:`Faults.release` is called: a test holds a call in flight for as long as it needs to
  look, rather than for a delay long enough for the slowest machine;
- ``drop_rate``: the connection drops *before* the request is handled: nothing was applied;
- ``storm_rate``: answered 429 with ``Retry-After`` whatever the limits say: nothing was applied;
- ``error_rate``: answered ``status`` (a 5xx) without being handled: nothing was applied;
- ``lost_response_rate``: the request is handled and its changes committed, *then* the connection
  drops: the write happened, and the caller cannot know it (Klaviyo behind a proxy that timed out).

To the client a drop and a lost response look the same (the connection broke mid-answer), which is
the point: only writes that are safe to repeat may be sent again. Every faulted request is in the
request log with its ``fault`` (``dropped``, ``storm``, ``error``, ``lost_response``).

The OAuth endpoints are faulted only when named (``operations=["oauth.revoke"]``, or
``oauth.token``), with errors and drops: settings for every operation leave logins and refreshes alone.

Example::

    Faults(error_rate=0.2, status=503, seed=7, operations=["get_profiles"])
    Faults(lost_response_rate=0.05, operations=["create_event"], seed=1)
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any


class DroppedConnection(Exception):
    """Raised inside the app to make the transport (or server) drop the connection."""


@dataclass
class Faults:
    error_rate: float = 0.0  # share of calls answered with `status`
    status: int = 503
    storm_rate: float = 0.0  # share of calls answered 429 regardless of limits
    storm_retry_after: float = 1.0
    slow_rate: float = 0.0  # share of calls delayed by `delay` seconds
    delay: float = 0.0
    drop_rate: float = 0.0  # share of calls whose connection is dropped before they are handled
    lost_response_rate: float = 0.0  # share of calls handled and committed, whose answer is then lost
    operations: list[str] = field(default_factory=list)  # empty: every operation
    count: int = 0  # fault at most this many calls (0: no limit), e.g. "only the first"
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)
    _faulted: int = field(default=0, repr=False, compare=False)
    _released: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Faults:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and not k.startswith("_")}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}; known: {sorted(cls().to_json())}")
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        out["operations"] = list(self.operations)
        return out

    def release(self) -> None:
        """Answer the calls held by ``slow_rate`` now, and the ones drawn after without a wait."""
        self._released.set()

    async def hold(self, seconds: float) -> None:
        """Wait ``seconds`` (a slow answer), or until :meth:`release`, whichever comes first."""
        end = time.monotonic() + seconds
        while not self._released.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))

    @property
    def active(self) -> bool:
        return any((self.error_rate, self.storm_rate, self.slow_rate, self.drop_rate, self.lost_response_rate))

    def applies(self, operation_id: str) -> bool:
        if self.count and self._faulted >= self.count:
            return False
        return self.active and (not self.operations or operation_id in self.operations)

    def draw(self, operation_id: str) -> dict[str, Any]:
        """What happens to this call: ``{"drop": bool, "status": int | None, "storm": bool, "delay": float,
        "lost": bool}`` (see the module docstring for the order they apply in)."""
        if not self.applies(operation_id):
            return dict(NO_FAULT)
        r = self._rng
        outcome = {
            "delay": self.delay if r.random() < self.slow_rate else 0.0,
            "drop": r.random() < self.drop_rate,
            "storm": r.random() < self.storm_rate,
            "status": self.status if r.random() < self.error_rate else None,
            # drawn only when asked for, so the sequences of settings without it stay as they were
            "lost": bool(self.lost_response_rate) and r.random() < self.lost_response_rate,
        }
        if any(outcome.values()):
            self._faulted += 1
        return outcome


#: The outcome of a call no fault touches.
NO_FAULT: dict[str, Any] = {"drop": False, "status": None, "storm": False, "delay": 0.0, "lost": False}
