"""Time as a dependency: the client, rate limiter and sandbox read it here, tests replace it.

``SystemClock`` is real time. ``ManualClock`` only moves when told to (or when something sleeps on
it), so tests of retries, backoff and rate limits run instantly and deterministically::

    clock = ManualClock()
    client = KlaviyoClient(api_key="pk_...", clock=clock, transport=...)
    ...
    assert clock.slept == [1.0, 2.0]      # the waits the client asked for
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What the toolkit needs from time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for waits and windows)."""

    def time(self) -> float:
        """Seconds since the epoch (for dates, daily resets, timestamps)."""

    def sleep(self, seconds: float) -> None:
        """Block the thread."""

    async def asleep(self, seconds: float) -> None:
        """Suspend the task."""


class SystemClock:
    """Real time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that advances only by ``advance()`` or by sleeping on it; records every sleep.

    Sleeping advances time instantly, so code that waits for a rate-limit slot or a retry backoff
    runs without real delay while still seeing time pass.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._epoch_offset = 0.0
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def time(self) -> float:
        with self._lock:
            return self._now + self._epoch_offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self._now += max(0.0, seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)
