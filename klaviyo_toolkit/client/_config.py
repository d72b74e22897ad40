"""Small, immutable configuration objects for the client; copy one with ``replace()`` to change it.

Example::

    policy = RetryPolicy(max_retries=5)
    client = KlaviyoClient(api_key=..., retry=policy, timeout=Timeout(read=60))
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import ToolkitUsageError

__all__ = ["RetryPolicy", "Timeout", "checked_base_url", "checked_revision", "unsendable_header"]


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


_BASE_URL_FIX = "give the API's origin, e.g. https://a.klaviyo.com (or http://127.0.0.1:8787 for a local sandbox)"


def checked_base_url(value: str, source: str) -> str:
    """``value`` as the base of every call (no trailing slash), or a ToolkitUsageError naming
    ``source`` (``base_url=`` or ``KLAVIYO_BASE_URL``) and the fix; surrounding whitespace is dropped.

    Checked once, when a client is made: a URL without a scheme, with a space or a newline inside,
    a query, or ``/api`` at its end otherwise failed every call, as a transport error saying a write
    "may have been applied", as an error in the call's arguments, or as a 404. The value is not
    echoed: it may hold a proxy's password.
    """
    text = value.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        problem = "is not a URL (its host or port cannot be read)"
    else:
        problem = ""
        if parts.scheme.lower() not in ("http", "https"):
            problem = "needs http:// or https:// before the host"
        elif not parts.hostname:
            problem = "has no host"
        elif any(ch.isspace() or not ch.isprintable() for ch in text):
            problem = "holds a space, a line break or another control character"
        elif "?" in text or "#" in text:
            problem = "has a query or fragment (? or #), which would swallow the path of every call"
        elif parts.path.rstrip("/").lower().endswith("/api"):
            problem = "ends in /api, which the client adds itself (calls would go to /api/api/...)"
    if problem:
        raise ToolkitUsageError(f"The Klaviyo base URL given by {source} {problem}; {_BASE_URL_FIX}.")
    return text.rstrip("/")


_REVISION = re.compile(r"(\d{4}-\d{2}-\d{2})(\.pre)?")


def checked_revision(value: str | None) -> str | None:
    """A pinned ``revision=`` (``YYYY-MM-DD``, or its ``.pre`` twin), or None when not given;
    anything else is a ToolkitUsageError here rather than Klaviyo's 400 on every call."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    match = _REVISION.fullmatch(text)
    try:
        valid = match is not None and bool(_dt.date.fromisoformat(match.group(1)))
    except ValueError:
        valid = False
    if not valid:
        raise ToolkitUsageError(
            f"revision={value!r} is not a Klaviyo revision: give a date, YYYY-MM-DD (e.g. 2026-07-15), or leave "
            "it out to send the revision the catalog was generated from."
        )
    return text


#: What each configured header carries, for the error that says it cannot be sent.
_HEADER_SOURCES = {
    "authorization": "the API key or OAuth token (KLAVIYO_API_KEY, api_key= or credentials=)",
    "user-agent": "user_agent=",
}


def unsendable_header(headers: Mapping[str, str]) -> ToolkitUsageError | None:
    """The error for a configured header value HTTP cannot carry (a non-ASCII letter, a line break),
    naming where the value came from and the position of the character, never the value (a key);
    None when every value can be sent. Without it httpx's encoding error was reported as a fault
    of the call's arguments."""
    for name, value in headers.items():
        bad = next((i for i, ch in enumerate(value) if not (ch.isascii() and ch.isprintable())), None)
        if bad is not None:
            source = _HEADER_SOURCES.get(name.lower(), f"the {name} header")
            return ToolkitUsageError(
                f"The {name} header cannot be sent: {source} holds a character HTTP headers cannot carry "
                f"(a non-ASCII letter, a smart quote or a line break) at position {bad + 1} of the header; "
                "copy the value again as plain text."
            )
    return None
