"""Client-side rate limits per operation: burst (per second), steady (per minute), daily.

Klaviyo limits each account per endpoint. Before each call the client *reserves* a slot: the
earliest time at which the call fits every window, given the calls already reserved. The caller
then sleeps until that time outside any lock, so one limiter serves threads and asyncio tasks
alike. Windows are sliding (the strictest reading of the published limits) with a safety
margin for network jitter; a spent daily allowance raises at once with the time it frees up. A 429's
``Retry-After`` holds its bucket (:meth:`RateLimiter.hold`): Klaviyo refuses every caller of it until then;
so does ``RateLimit-Remaining: 0`` until ``RateLimit-Reset`` (:meth:`RateLimiter.heed`), the next call
being a certain 429. After a 429's hold, calls resume at the steady pace for a minute rather than in a
burst: the 429 says Klaviyo counts calls this limiter does not see (other keys, other processes of the
account), and a burst of every waiting caller at the end of the hold collected the next round of 429s
(after a reset the window is known to be fresh, so its calls go as the windows allow). A call whose
slot was given before a hold and falls inside it (or, unpaced, in the pace after it) takes a new slot
rather than go into the 429.

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
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

from .catalog import RateLimitSpec
from .clock import Clock, SystemClock
from .errors import DailyLimitExhaustedError, RateLimitWaitError, ToolkitUsageError

__all__ = ["RateLimiter", "Reservation", "shared_limiter", "window_reset"]

DAY = 86_400.0
#: Seconds after a hold ends during which slots go at the steady pace (one steady window).
PACED_AFTER_HOLD = 60.0


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
class _Hold:
    """Klaviyo's word on a bucket: no slot before ``until``, slots at the steady pace until ``paced``."""

    until: float
    paced: float

    def merged(self, other: _Hold | None) -> _Hold:
        return self if other is None else _Hold(max(self.until, other.until), max(self.paced, other.paced))


@dataclass(frozen=True)
class Reservation:
    """A slot: wait ``delay`` seconds, then send. ``at`` and ``wall`` (the slot's monotonic and wall
    times, None when nothing was counted) and ``paced`` (given at the steady pace after a hold) let a
    slot that a later hold overtakes be given back and taken again after it."""

    key: Hashable
    delay: float
    at: float | None = None
    wall: float | None = None
    paced: bool = False


class _Reset(float):
    """Seconds until a window resets (``RateLimit-Reset``), as :meth:`RateLimiter.heed` hands them to
    :meth:`RateLimiter.hold`: such a hold is not followed by the steady pace. A float, so a subclass
    that maps keys in ``hold`` (the sandbox's) passes it on unchanged."""


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
        #: Bucket key -> what Klaviyo said (429 Retry-After, RateLimit-Reset) of calling it, until its pace ends.
        self._holds: dict[Hashable, _Hold] = {}

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
                moved_key = (account, key[1])
                self._holds[moved_key] = self._holds.pop(key).merged(self._holds.get(moved_key))

    def hold(self, key: Hashable, seconds: float) -> None:
        """Give no slot of ``key`` for ``seconds`` from now: Klaviyo answered 429 with that Retry-After
        (or said ``RateLimit-Remaining: 0``, :meth:`heed`).

        Klaviyo counts the bucket for every caller of it, so every thread, task and client sharing
        this limiter waits, not only the call that got the 429 (they would collect 429s of their own
        at the configured pace otherwise). For :data:`PACED_AFTER_HOLD` seconds after the hold, slots
        go at the steady pace, not in a burst of every waiting caller (not after a reset's hold from
        :meth:`heed`: the new window is known to be fresh). A longer hold already in place
        is kept. Nothing is held when limiting is off (``factor=None``): each call then waits out its
        own 429 only."""
        if self.factor is None or not (seconds > 0 and math.isfinite(seconds)):
            return
        with self._lock:
            bucket = self._account_key(key)
            until = self.clock.monotonic() + seconds
            new = _Hold(until, until if isinstance(seconds, _Reset) else until + PACED_AFTER_HOLD + self.margin)
            self._holds[bucket] = new.merged(self._holds.get(bucket))

    def heed(self, key: Hashable, headers: Mapping[str, str], *, within: float) -> None:
        """Hold ``key`` until ``RateLimit-Reset`` when an answer's ``RateLimit-Remaining`` is 0: the next
        call would be a certain 429. ``headers`` are lower-cased; a reset over ``within`` seconds (the
        retry budget) is not waited for, as a Retry-After over it is not (the call then fails at once)."""
        seconds = window_reset(headers)
        if seconds is not None and seconds <= within:
            self.hold(key, _Reset(seconds))  # hold, not its body: a subclass maps keys there

    def _hold_of(self, key: Hashable, now: float) -> _Hold | None:
        """The hold on ``key`` (already account-mapped) while it or its pace runs (lock held)."""
        held = self._holds.get(key)
        if held is not None and held.paced <= now:
            del self._holds[key]
            return None
        return held

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
            held = self._hold_of(self._account_key(key), now)
            at = max(now, held.until) if held else now
            if times:
                at = max(at, times[-1])
                if held and at < held.paced:  # after a hold, the steady pace: no burst of every waiting caller
                    at = max(at, times[-1] + 60.0 / s.steady)
            if len(times) >= s.burst:
                at = max(at, times[-s.burst] + 1.0 + self.margin)
            if len(times) >= s.steady:
                at = max(at, times[-s.steady] + 60.0 + self.margin)
            delay = at - now
            self._check_wait(key, operation_id, delay, max_wait, held.until - now if held else 0.0)
            times.append(at)
            while len(times) > max(s.steady, s.burst):
                times.popleft()
            if s.daily is not None:
                bucket.day.append(wall + delay)
            paced = held is not None and at < held.paced
            return Reservation(key, delay, at, wall + delay if s.daily is not None else None, paced)

    def _check_wait(
        self, key: Hashable, operation_id: str, delay: float, max_wait: float | None, held: float = 0.0
    ) -> None:
        """RateLimitWaitError when ``delay`` is over ``max_wait`` or the limiter's own, whichever is smaller;
        its message says why the wait is that long (Klaviyo's word, or the limits) and what to do."""
        limit = min((w for w in (self.max_wait, max_wait) if w is not None), default=None)
        if limit is None or delay <= limit:
            return
        why = (
            f"Klaviyo asked for no call of it for {held:.1f}s (a 429's Retry-After, or RateLimit-Remaining: 0 "
            "until RateLimit-Reset)"
            if held > 0
            else "its rate limits are spent for now"
        )
        raise RateLimitWaitError(
            f"{operation_id or key}: {why}; the next slot is {delay:.1f}s away, over max_wait={limit}s. "
            "Try again after that, or allow a longer wait (max_wait=, e.g. client.with_options(max_wait=...))."
        )

    def _overtaken(self, res: Reservation) -> bool:
        """True, giving the slot back, when a hold set after ``res`` was given still runs (by more than the
        margin), or its pace does and ``res`` was not paced: the call would go into a certain 429, or in
        the burst after the hold that meets the next one."""
        if res.at is None:
            return False
        with self._lock:
            key = self._account_key(res.key)
            held = self._holds.get(key)
            if held is None:
                return False
            inside = held.until > self.clock.monotonic() + self.margin + 1e-3  # not a float's rounding
            if not inside and (res.paced or res.at >= held.paced):
                return False
            bucket = self._buckets.get(key)
            if bucket is not None:
                for window, value in ((bucket.times, res.at), (bucket.day, res.wall)):
                    if value is not None and value in window:
                        window.remove(value)
            return True

    def _left(self, max_wait: float | None, waited: float) -> float | None:
        """The wait still allowed to a call that has waited ``waited`` for a slot a hold then overtook."""
        limit = min((w for w in (self.max_wait, max_wait) if w is not None), default=None)
        return None if limit is None else max(0.0, limit - waited)

    def acquire(
        self, key: Hashable, spec: RateLimitSpec, operation_id: str = "", *, max_wait: float | None = None
    ) -> float:
        """Reserve and sleep (blocking) until the slot; returns the seconds waited. A slot a later
        hold overtook is given back and a new one taken after the hold, within ``max_wait`` in all."""
        waited = 0.0
        while True:
            res = self.reserve(key, spec, operation_id, max_wait=self._left(max_wait, waited) if waited else max_wait)
            if res.delay > 0:
                self.clock.sleep(res.delay)
                waited += res.delay
            if not self._overtaken(res):
                return waited

    async def aacquire(
        self, key: Hashable, spec: RateLimitSpec, operation_id: str = "", *, max_wait: float | None = None
    ) -> float:
        """Reserve and sleep (async) until the slot; returns the seconds waited (as :meth:`acquire`)."""
        waited = 0.0
        while True:
            res = self.reserve(key, spec, operation_id, max_wait=self._left(max_wait, waited) if waited else max_wait)
            if res.delay > 0:
                await self.clock.asleep(res.delay)
                waited += res.delay
            if not self._overtaken(res):
                return waited

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


def window_reset(headers: Mapping[str, str]) -> float | None:
    """Seconds until the window resets when ``RateLimit-Remaining`` (lower-cased ``headers``) says no
    call is left in it: ``RateLimit-Reset``. None when calls are left, or when either value is missing,
    malformed or absurd (a negative count, a reset that is not a finite number of seconds in (0, a day])."""
    remaining = (headers.get("ratelimit-remaining") or "").strip()
    reset = (headers.get("ratelimit-reset") or "").strip()
    if not (remaining.isascii() and remaining.isdigit()) or int(remaining) != 0:
        return None
    try:
        seconds = float(reset)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and 0 < seconds <= DAY else None


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
