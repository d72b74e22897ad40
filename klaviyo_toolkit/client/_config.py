"""Small, immutable configuration objects for the client; copy one with ``replace()`` to change it.

Example::

    policy = RetryPolicy(max_retries=5)
    client = KlaviyoClient(api_key=..., retry=policy, timeout=Timeout(read=60))
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

__all__ = ["RetryPolicy", "Timeout"]


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a call again.

    A 429 (not processed by Klaviyo) is retried for any call; after a 5xx or a lost response only
    calls that are safe to repeat are (reads, writes idempotent by what they do, events with a
    ``unique_id``: see ``klaviyo_toolkit.effects.safe_to_repeat``). Klaviyo's ``Retry-After`` is honoured;
    otherwise the wait is "full jitter" exponential backoff. ``max_elapsed`` bounds the total time
    spent waiting on retries for one call.
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_elapsed: float = 60.0
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self._rng.seed(self.seed)

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return retry_after
        cap = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return self._rng.uniform(cap / 2, cap)

    def replace(self, **changes: object) -> RetryPolicy:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


NO_RETRIES = RetryPolicy(max_retries=0)


@dataclass(frozen=True)
class Timeout:
    """Seconds to connect, read, write and wait for a pooled connection."""

    connect: float = 10.0
    read: float = 60.0
    write: float = 30.0
    pool: float = 10.0
