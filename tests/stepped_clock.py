"""A virtual clock for several threads: time moves only when every thread taking part is asleep.

A ManualClock jumps forward whenever any thread sleeps, so with two threads a call admitted for
t=0 can leave after another thread's sleep moved time to t=1.25, and two calls meant for
different seconds arrive in one. Here a sleeping thread waits until the others are asleep too
(or done), then time goes straight to the earliest wake-up: each call leaves exactly at the moment
it was admitted for, calls admitted for the same moment really are concurrent, and nothing
depends on how fast the machine is. A thread not taking part (the test's own) moves time at once,
as with a ManualClock.

Example::

    clock = SteppedClock()
    def worker() -> None:
        with clock.taking_part():
            ...  # calls that sleep on the clock
    threads = [threading.Thread(target=worker) for _ in range(2)]
    clock.expect(len(threads))  # before starting them: time holds until each has joined
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import threading
from collections.abc import Iterator


class SteppedClock:
    """A :class:`~klaviyo_toolkit.clock.Clock` whose time moves only when every participant sleeps."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._cond = threading.Condition()
        self._awake = 0  # participants running (not asleep), or expected and not yet joined
        self._wakeups: list[float] = []  # wake-up times of the participants asleep
        self._local = threading.local()
        self.slept: list[float] = []

    def monotonic(self) -> float:
        with self._cond:
            return self._now

    def time(self) -> float:
        return self.monotonic()

    def advance(self, seconds: float) -> None:
        with self._cond:
            self._now += max(0.0, seconds)

    def expect(self, threads: int) -> None:
        """Hold time until ``threads`` more threads have entered :meth:`taking_part` and slept or left."""
        with self._cond:
            self._awake += threads

    @contextlib.contextmanager
    def taking_part(self) -> Iterator[None]:
        """The calling thread's sleeps wait for the others (it was counted by :meth:`expect`)."""
        self._local.part = True
        try:
            yield
        finally:
            self._local.part = False
            with self._cond:
                self._awake -= 1
                self._step()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._cond:
            self.slept.append(seconds)
            target = self._now + seconds
            if not getattr(self._local, "part", False):
                self._now = target
                return
            self._awake -= 1
            heapq.heappush(self._wakeups, target)
            self._step()
            while self._now < target:
                self._cond.wait()

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def _step(self) -> None:
        """With every participant asleep, move to the earliest wake-up and wake whoever is due (counted
        awake at once, so that no other thread moves time before they have run)."""
        while self._awake == 0 and self._wakeups:
            self._now = max(self._now, self._wakeups[0])
            while self._wakeups and self._wakeups[0] <= self._now:
                heapq.heappop(self._wakeups)
                self._awake += 1
            self._cond.notify_all()
