"""The sandbox's side of Klaviyo's rate limits: fixed windows per account and operation, 429s, headers.

As Klaviyo documents them ("Rate limits, status codes, and errors",
developers.klaviyo.com/en/docs/rate_limits_and_error_handling):

- limits are **per account**: every private key of the account shares one quota; an OAuth app gets
  its own quota per installed account ("per account per app");
- each operation has a **burst** (1-second) and a **steady** (1-minute) **fixed window**; some have a
  daily allowance too (the Reporting API's 225/day), counted here over the last 24 hours, as the
  toolkit's limiter counts it;
- a call using a parameter value the operation documents lower limits for (``additional-fields[
  profile]=predictive_analytics``, ``include=list``, ...) counts against that tier instead
  (``RateLimitTier``);
- every response that is not a 429 carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and
  ``RateLimit-Reset`` for the steady window; a 429 carries ``Retry-After`` (whole seconds) instead,
  as Klaviyo's guide says ("those headers are replaced with Retry-After").

Windows start on whole seconds and minutes of the sandbox clock's wall time. A client whose limiter
keeps any 1 s and 60 s span within the limits (the toolkit's sliding windows) never meets a 429 here.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Hashable
from dataclasses import dataclass

from klaviyo_toolkit.catalog import RateLimitSpec
from klaviyo_toolkit.ratelimit import RateLimiter, Reservation

DAY = 86_400.0
#: The tier Klaviyo applies "unless otherwise documented" (S: 3/s burst, 60/m steady); used for the
#: headers of requests that match no operation.
DEFAULT_LIMITS = RateLimitSpec(3, 60)


@dataclass(frozen=True)
class Verdict:
    """What the limiter says of one call: allowed or not, and the state of the steady window."""

    allowed: bool
    limit: int  # the steady window's limit (or the exceeded window's, when refused)
    remaining: int  # calls left in the steady window
    reset: float  # seconds until the steady window resets
    retry_after: float  # seconds until the refused call would fit (0 when allowed)
    window: str  # "second" | "minute" | "day": the exceeded one, or "minute" when allowed

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` for a response that was not throttled; ``Retry-After`` for a 429."""
        if not self.allowed:
            return {"Retry-After": retry_after_header(self.retry_after)}
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(max(1, math.ceil(self.reset))),
        }


class ServerLimits:
    """Fixed windows per (quota, operation or tier); ``factor`` scales every limit, None turns them off.

    ``quota`` names whose allowance a call spends: ``"account"`` for the account's keys, ``"oauth:<app>"``
    for an OAuth app (see ``quota_of``).
    """

    def __init__(self, factor: float | None = 1.0) -> None:
        self.factor = factor
        self._windows: dict[tuple[str, str, str], tuple[float, int]] = {}
        self._days: dict[tuple[str, str], collections.deque[float]] = {}
        self._lock = threading.Lock()

    def _scaled(self, spec: RateLimitSpec) -> RateLimitSpec:
        return spec.scaled(self.factor) if self.factor not in (None, 1.0) else spec

    def check(self, quota: str, bucket: str, spec: RateLimitSpec, now: float) -> Verdict:
        """Count one call of ``bucket`` (an operation id, or ``op|tier``) at wall time ``now``, or refuse it."""
        if self.factor is None:
            return _unlimited(spec, now)
        s = self._scaled(spec)
        with self._lock:
            windows = (("second", 1.0, s.burst), ("minute", 60.0, s.steady))
            counts = {name: self._count(quota, bucket, name, length, now) for name, length, _ in windows}
            for name, length, limit in windows:
                if counts[name][1] >= limit:
                    start = counts[name][0]
                    wait = max(0.001, start + length - now)
                    return Verdict(False, limit, 0, wait, wait, name)
            day = None
            if s.daily:
                day = self._days.setdefault((quota, bucket), collections.deque())
                while day and day[0] <= now - DAY:
                    day.popleft()
                if len(day) >= s.daily:
                    wait = max(0.001, day[0] + DAY - now)
                    return Verdict(False, s.daily, 0, wait, wait, "day")
            for name, _length, _limit in windows:
                start, count = counts[name]
                self._windows[(quota, bucket, name)] = (start, count + 1)
            if day is not None:
                day.append(now)
            minute_start, in_minute = self._windows[(quota, bucket, "minute")]
            return Verdict(True, s.steady, max(0, s.steady - in_minute), minute_start + 60.0 - now, 0.0, "minute")

    def peek(self, quota: str, bucket: str, spec: RateLimitSpec, now: float) -> Verdict:
        """The steady window's state without counting a call (for answers refused before the limiter)."""
        if self.factor is None:
            return _unlimited(spec, now)
        s = self._scaled(spec)
        with self._lock:
            start, count = self._count(quota, bucket, "minute", 60.0, now)
        return Verdict(True, s.steady, max(0, s.steady - count), start + 60.0 - now, 0.0, "minute")

    def _count(self, quota: str, bucket: str, name: str, length: float, now: float) -> tuple[float, int]:
        start = math.floor(now / length) * length
        held = self._windows.get((quota, bucket, name))
        if held is None or held[0] != start:
            return start, 0
        return held

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._days.clear()


def _unlimited(spec: RateLimitSpec, now: float) -> Verdict:
    """Limits off: nothing is counted; the headers still say the operation's published limit."""
    return Verdict(True, spec.steady, spec.steady, math.floor(now / 60.0) * 60.0 + 60.0 - now, 0.0, "minute")


def quota_of(kind: str, name: str) -> str:
    """Whose allowance a caller spends: the account's (private keys, the public key) or an OAuth app's."""
    return f"oauth:{name}" if kind == "oauth" else "account"


class AccountLimiter(RateLimiter):
    """The toolkit's limiter, with buckets per account as the sandbox counts them.

    The client keys its buckets by base URL and credential (``key:<fingerprint>``); every private
    key of a sandbox belongs to its one account and shares the account's quota, so clients made by
    ``Sandbox.client()`` with different keys share one bucket per operation here.
    """

    def reserve(
        self, key: Hashable, spec: RateLimitSpec, operation_id: str = "", *, max_wait: float | None = None
    ) -> Reservation:
        return super().reserve(_account_bucket(key), spec, operation_id, max_wait=max_wait)

    def usage(self, key: Hashable) -> dict[str, int]:
        return super().usage(_account_bucket(key))

    def hold(self, key: Hashable, seconds: float) -> None:
        super().hold(_account_bucket(key), seconds)


def _account_bucket(key: Hashable) -> Hashable:
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str):
        base, _, account = key[0].rpartition("|")
        if account.startswith("key:"):
            return (f"{base}|account", key[1])
    return key


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
