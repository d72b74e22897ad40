"""Client-side rate limits per operation: burst (per second), steady (per minute), daily.

Klaviyo limits each account per endpoint. Before each call the client *reserves* a slot: the
earliest time at which the call fits every window, given the calls already reserved. The caller
then sleeps until that time outside any lock, so one limiter serves threads and asyncio tasks
alike. Windows are sliding (the strictest reading of the published limits) with a safety
margin for network jitter; a spent daily allowance raises at once with the time it frees up. A 429's
``Retry-After`` holds its bucket (:meth:`RateLimiter.hold`): Klaviyo refuses every caller of it until then.

Every client in a process shares :func:`shared_limiter` unless given its own. A bucket is keyed by
``(scope, operation)``, the scope being the base URL and the credential (``<base>|key:<fingerprint>``,
or ``<base>|account:<id>`` for a connection whose account is stored). Klaviyo counts every private
key of an account together, and a key does not say its account: that takes a call. So:

- **before** a key's account is known, the key has buckets of its own: clients of one key share
  them, but N keys of one account can together send N times the account's limits (Klaviyo then
  answers 429: the client waits its Retry-After and tries again, within its retry budget);
- **once** it is known, from a ``get_accounts`` (or ``get_account``) answer to a call made with the
  key (``fetch_account``, a login, any tool call), the client calls :meth:`RateLimiter.same_account`
  and the key's calls count in the account's buckets from then on, with the calls it already
  made carried over; every key so proven, and every connection that stored the account, share them.

An OAuth app has a quota of its own in each account, apart from the keys (and a token does not say
its app), so bearer tokens keep their own buckets.
"""

from __future__ import annotations

import collections
import datetime as _dt
import math
import numbers
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field

from .catalog import RateLimitSpec
from .clock import Clock, SystemClock
from .errors import DailyLimitExhaustedError, RateLimitWaitError, ToolkitUsageError

__all__ = ["RateLimiter", "Reservation", "shared_limiter"]

DAY = 86_400.0


def _checked_factor(factor: float | None) -> float | None:
    """``factor`` if it is a finite number > 0 (or None): 0, negatives, nan and inf are refused here,
    where they are set, rather than clamped to one call a day or crashing the first call."""
    if factor is None:
        return None
    value = math.nan
    if isinstance(factor, numbers.Real) and not isinstance(factor, bool):
        try:
            value = float(factor)
        except OverflowError:  # an int too large for a float
            value = math.inf
    if not math.isfinite(value) or value <= 0:
        raise ToolkitUsageError(
            f"Rate-limit factor {factor!r} is invalid: give a finite number > 0 (e.g. 0.1 for a tenth of "
            "every limit), or None to turn client-side limiting off."
        )
    return value


@dataclass
class _Bucket:
    spec: RateLimitSpec
    times: collections.deque[float] = field(default_factory=collections.deque)
    day: collections.deque[float] = field(default_factory=collections.deque)  # wall-clock times


@dataclass(frozen=True)
class Reservation:
    """A slot: wait ``delay`` seconds, then send."""

    key: Hashable
    delay: float


class RateLimiter:
    """Sliding-window limiter shared by every caller that holds it.

    Args:
        clock: time source (inject a ManualClock in tests).
        factor: multiplies every limit (e.g. 0.1 for a sandbox scaled down in benchmarks);
            ``None`` turns limiting off. Must be a finite number > 0 (ToolkitUsageError otherwise).
        margin: seconds added to each window to absorb network jitter.
        max_wait: refuse (RateLimitWaitError) instead of waiting longer than this.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        factor: float | None = 1.0,
        margin: float = 0.25,
        max_wait: float | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.factor = factor  # validated by the property setter
        self.margin = margin
        self.max_wait = max_wait
        self._lock = threading.Lock()
        self._buckets: dict[Hashable, _Bucket] = {}
        #: A credential's scope -> the scope of the account it was proven to belong to.
        self._accounts: dict[str, str] = {}
        #: Bucket key -> the monotonic time before which Klaviyo said (429 Retry-After) not to call.
        self._holds: dict[Hashable, float] = {}

    @property
    def factor(self) -> float | None:
        """The scale of every limit; None means no limiting."""
        return self._factor

    @factor.setter
    def factor(self, value: float | None) -> None:
        # A setter, not only __init__: the sandbox changes the factor of a live limiter.
        self._factor = _checked_factor(value)

    def _bucket(self, key: Hashable, spec: RateLimitSpec) -> _Bucket:
        bucket = self._buckets.get(key)
        scaled = spec.scaled(self.factor) if self.factor not in (None, 1.0) else spec
        if bucket is None or bucket.spec != scaled:
            bucket = self._buckets[key] = _Bucket(scaled)
        return bucket

    def _account_key(self, key: Hashable) -> Hashable:
        """``key`` with its scope replaced by its account's, once known (call with the lock held)."""
        if self._accounts and isinstance(key, tuple) and len(key) == 2:
            account = self._accounts.get(key[0])
            if account is not None:
                return (account, key[1])
        return key

    def same_account(self, scope: str, account: str) -> None:
        """Count calls of ``scope`` (keys ``(scope, operation)``) in ``account``'s buckets from now on.

        Called by the client when an answer proves a credential belongs to an account. The calls
        already reserved under ``scope`` are carried into the account's buckets, so the windows
        around the moment of learning are counted whole.
        """
        if scope == account:
            return
        with self._lock:
            if self._accounts.get(scope) == account:
                return
            self._accounts[scope] = account
            for key in [k for k in self._buckets if isinstance(k, tuple) and len(k) == 2 and k[0] == scope]:
                moved = self._buckets.pop(key)
                target = self._buckets.setdefault((account, key[1]), moved)
                if target is not moved:
                    _merge(target, moved)
            for key in [k for k in self._holds if isinstance(k, tuple) and len(k) == 2 and k[0] == scope]:
                until = self._holds.pop(key)
                moved_key = (account, key[1])
                self._holds[moved_key] = max(until, self._holds.get(moved_key, until))

    def hold(self, key: Hashable, seconds: float) -> None:
        """Give no slot of ``key`` for ``seconds`` from now: Klaviyo answered 429 with that Retry-After.

        Klaviyo counts the bucket for every caller of it, so every thread, task and client sharing
        this limiter waits, not only the call that got the 429 (they would collect 429s of their own
        at the configured pace otherwise). A longer hold already in place is kept. Nothing is held
        when limiting is off (``factor=None``): each call then waits out its own 429 only."""
        if self.factor is None or not (seconds > 0 and math.isfinite(seconds)):
            return
        with self._lock:
            bucket = self._account_key(key)
            until = self.clock.monotonic() + seconds
            self._holds[bucket] = max(until, self._holds.get(bucket, until))

    def _held_until(self, key: Hashable, now: float) -> float:
        """When the hold on ``key`` (already account-mapped) ends; ``now`` when there is none (lock held)."""
        until = self._holds.get(key)
        if until is None:
            return now
        if until <= now:
            del self._holds[key]
            return now
        return until

    def reserve(
        self, key: Hashable, spec: RateLimitSpec, operation_id: str = "", *, max_wait: float | None = None
    ) -> Reservation:
        """Claim the next slot for ``key``; raises DailyLimitExhaustedError when the day is spent, and
        RateLimitWaitError (claiming nothing) when the slot is further away than ``max_wait`` or the
        limiter's own ``max_wait``, whichever is smaller. No slot starts before a :meth:`hold` ends."""
        if self.factor is None:
            return Reservation(key, 0.0)
        with self._lock:
            bucket = self._bucket(self._account_key(key), spec)
            now = self.clock.monotonic()
            wall = self.clock.time()
            s = bucket.spec
            if s.daily is not None:
                while bucket.day and bucket.day[0] <= wall - DAY:
                    bucket.day.popleft()
                if len(bucket.day) >= s.daily:
                    resets = _dt.datetime.fromtimestamp(bucket.day[0] + DAY, _dt.UTC)
                    raise DailyLimitExhaustedError(operation_id or str(key), s.daily, resets)
            times = bucket.times
            # Drop reservations that no longer constrain anything.
            horizon = now - 60.0 - self.margin
            while times and times[0] < horizon:
                times.popleft()
            at = self._held_until(self._account_key(key), now)
            if times:
                at = max(at, times[-1])
            if len(times) >= s.burst:
                at = max(at, times[-s.burst] + 1.0 + self.margin)
            if len(times) >= s.steady:
                at = max(at, times[-s.steady] + 60.0 + self.margin)
            delay = at - now
            self._check_wait(key, operation_id, delay, max_wait)
            times.append(at)
            while len(times) > max(s.steady, s.burst):
                times.popleft()
            if s.daily is not None:
                bucket.day.append(wall + delay)
            return Reservation(key, delay)

    def _check_wait(self, key: Hashable, operation_id: str, delay: float, max_wait: float | None) -> None:
        """RateLimitWaitError when ``delay`` is over ``max_wait`` or the limiter's own, whichever is smaller."""
        limit = min((w for w in (self.max_wait, max_wait) if w is not None), default=None)
        if limit is not None and delay > limit:
            raise RateLimitWaitError(
                f"{operation_id or key}: the next slot is {delay:.1f}s away, over max_wait={limit}s"
            )

    def acquire(
        self, key: Hashable, spec: RateLimitSpec, operation_id: str = "", *, max_wait: float | None = None
    ) -> float:
        """Reserve and sleep (blocking) until the slot; returns the seconds waited."""
        res = self.reserve(key, spec, operation_id, max_wait=max_wait)
        if res.delay > 0:
            self.clock.sleep(res.delay)
        return res.delay

    async def aacquire(
        self, key: Hashable, spec: RateLimitSpec, operation_id: str = "", *, max_wait: float | None = None
    ) -> float:
        """Reserve and sleep (async) until the slot; returns the seconds waited."""
        res = self.reserve(key, spec, operation_id, max_wait=max_wait)
        if res.delay > 0:
            await self.clock.asleep(res.delay)
        return res.delay

    def usage(self, key: Hashable) -> dict[str, int]:
        """Calls counted in the current windows (for diagnostics and tests)."""
        with self._lock:
            bucket = self._buckets.get(self._account_key(key))
            if bucket is None:
                return {"second": 0, "minute": 0, "day": 0}
            now = self.clock.monotonic()
            return {
                "second": sum(1 for t in bucket.times if now - 1.0 < t <= now),
                "minute": sum(1 for t in bucket.times if now - 60.0 < t <= now),
                "day": len(bucket.day),
            }


def _merge(into: _Bucket, other: _Bucket) -> None:
    """Put ``other``'s reservations into ``into``, in time order, keeping as many as its windows need."""
    keep = max(into.spec.steady, into.spec.burst)
    into.times = collections.deque(sorted((*into.times, *other.times))[-keep:])
    into.day = collections.deque(sorted((*into.day, *other.day)))


_shared: RateLimiter | None = None
_shared_lock = threading.Lock()


def shared_limiter() -> RateLimiter:
    """The process-wide limiter every client uses unless given another."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = RateLimiter()
        return _shared
