"""The sandbox's side of Klaviyo's rate limits: count calls per key and operation, answer 429.

Windows are sliding, like the client's limiter, so a client that respects the published limits
never sees a 429 and one that does not is told exactly how long to wait (``Retry-After``).
"""

from __future__ import annotations

import collections
import math
import threading
from dataclasses import dataclass

from klaviyo_toolkit.catalog import RateLimitSpec

DAY = 86_400.0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    window: str  # "second" | "minute" | "day"


class ServerLimits:
    """Per (caller, operation) sliding windows; ``factor`` scales every limit, None turns them off."""

    def __init__(self, factor: float | None = 1.0) -> None:
        self.factor = factor
        self._calls: dict[tuple[str, str], collections.deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, caller: str, operation_id: str, spec: RateLimitSpec, now: float) -> Verdict:
        if self.factor is None:
            return Verdict(True, 0, 0, 0.0, "off")
        s = spec.scaled(self.factor) if self.factor != 1.0 else spec
        with self._lock:
            calls = self._calls.setdefault((caller, operation_id), collections.deque())
            horizon = DAY if s.daily else 60.0
            while calls and calls[0] <= now - horizon:
                calls.popleft()
            windows = [("second", 1.0, s.burst), ("minute", 60.0, s.steady)]
            if s.daily:
                windows.append(("day", DAY, s.daily))
            for name, length, limit in windows:
                inside = [t for t in calls if t > now - length] if name != "day" else calls
                if len(inside) >= limit:
                    oldest = inside[-limit]
                    wait = max(0.001, oldest + length - now)
                    return Verdict(False, limit, 0, wait, name)
            calls.append(now)
            in_minute = sum(1 for t in calls if t > now - 60.0)
            return Verdict(True, s.steady, max(0, s.steady - in_minute), 0.0, "minute")

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
