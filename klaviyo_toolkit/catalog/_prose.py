"""Limits Klaviyo states in an operation's description, read into its catalog record.

The spec's schemas say nothing of them; the prose does, one sentence per limit:

- the operation's own rate limits, "*Rate limits*:<br>Burst: `3/s`<br>Steady: `100/m`<br>Daily: `100/d`"
  (``stated_rate_limit``): ``x-klaviyo-ratelimit`` gives them too, and the two can disagree;
- rate-limit tiers: "Rate limits when using the `include=list` parameter in your API request:
  Burst: `1/s` Steady: `15/m`" (``rate_limit_tiers``);
- payload sizes: "The maximum allowed payload size is 5MB", "... per-profile is 100KB" (``payload_limits``);
- items per call: "Accepts up to 1,000 events per request" (``item_limit``);
- items per page of a listing: "Returns a maximum of 200 events per page" (``max_page_size``), and
  jobs pending at once: "The maximum number of jobs in progress at one time is 500", "Max number of
  jobs queued at once we allow for is 100" (``max_pending_jobs``), both from ``listing_limits``.
"""

from __future__ import annotations

import re
from typing import Any

Json = dict[str, Any]

#: "*Rate limits*:<br>Burst: `3/s`<br>Steady: `100/m`<br>Daily: `100/d`" (up to a blank line or a tier)
_OWN_RATE = re.compile(r"\*Rate limits\*:(.*?)(?:\n\n|Rate limits when|$)", re.S | re.I)
_RATE_WINDOW = re.compile(r"(Burst|Steady|Daily):\s*`(\d+)/([smd])`", re.I)
#: "Rate limits when using the `include=list` parameter in your API request:<br>Burst: `1/s`<br>Steady: `15/m`"
_TIER = re.compile(
    r"Rate limits when using the `([^`=]+)=([^`]+)` parameter[^<]*(?:<br>)+\s*Burst:\s*`(\d+)/s`"
    r"\s*(?:<br>)+\s*Steady:\s*`(\d+)/m`",
    re.I,
)
#: "The maximum allowed payload size is 5MB" / "... payload size per-profile is 100KB"
_PAYLOAD = re.compile(r"maximum allowed payload size( per-[a-z]+)? is (\d+(?:\.\d+)?)\s*(KB|MB)", re.I)
#: "Accepts up to 100 catalog items per request" / "Maximum number of profiles can be submitted for
#: subscription: 1000" / "Max number of coupon codes per job we allow for is 1000" / "... per call limit: `100`"
_ITEMS = re.compile(
    r"(?:accepts? (?:up to|a maximum of)|maximum number of [a-z ]+?:|max number of [a-z ]+? is"
    r"|[a-z ]+? per (?:request|call) limit:)"
    r"\s*`?([0-9][0-9,]*)`?",
    re.I,
)
#: "Returns a maximum of 200 events per page" / "Returns a maximum of 100 jobs per request"
_PAGE = re.compile(r"Returns a maximum of ([0-9][0-9,]*) [a-z ]+? per (?:page|request)", re.I)
#: "The maximum number of jobs in progress at one time is 500" / "Max number of jobs queued at once we allow for is 100"
_PENDING_JOBS = re.compile(r"max(?:imum)? number of jobs (?:in progress|queued)[a-z ]*? is ([0-9][0-9,]*)", re.I)


def stated_rate_limit(description: str) -> dict[str, int]:
    """The operation's own limits as its description states them: ``{"burst": 3, "steady": 100, "daily": 100}``.

    Only the first "*Rate limits*:" block counts (the tiers that follow are ``rate_limit_tiers``).
    The generator keeps the lower of this and ``x-klaviyo-ratelimit`` per window: the spec's two
    sources disagree for a few operations, and a client that trusts the higher one is refused by
    Klaviyo once the lower one is spent.
    """
    block = _OWN_RATE.search(description or "")
    windows = {"s": "burst", "m": "steady", "d": "daily"}
    return {windows[unit.lower()]: int(n) for _, n, unit in _RATE_WINDOW.findall(block.group(1) if block else "")}


def rate_limit_tiers(description: str) -> list[Json]:
    """The lower limits an operation's description gives for calls with a particular parameter value.

    Klaviyo documents them in prose, e.g. Get Profiles: "Rate limits when using the
    `additional-fields[profile]=predictive_analytics` parameter in your API request: Burst: `10/s`
    Steady: `150/m`". Such a call counts against that tier's limits instead of the operation's.
    """
    tiers = []
    for param, value, burst, steady in _TIER.findall(description or ""):
        tiers.append({"param": param.strip(), "value": value.strip(), "burst": int(burst), "steady": int(steady)})
    return tiers


def payload_limits(description: str) -> Json:
    """``{"max_payload_bytes": ..., "max_item_payload_bytes": ...}`` from the description's prose."""
    out: Json = {}
    for per, number, unit in _PAYLOAD.findall(description or ""):
        size = int(float(number) * (1024 if unit.upper() == "KB" else 1024 * 1024))
        out["max_item_payload_bytes" if per else "max_payload_bytes"] = size
    return out


def item_limit(description: str) -> int | None:
    """The most items one call of a write takes, when its description says (None otherwise)."""
    m = _ITEMS.search(description or "")
    return int(m.group(1).replace(",", "")) if m else None


def listing_limits(description: str, method: str) -> Json:
    """``{"max_page_size": ...}`` for a listing (GET) and ``{"max_pending_jobs": ...}`` for a write that
    makes a job, when the description states them; ``{}`` otherwise (a record without the key)."""
    found = (_PAGE if method.lower() == "get" else _PENDING_JOBS).search(description or "")
    if found is None:
        return {}
    return {"max_page_size" if method.lower() == "get" else "max_pending_jobs": int(found.group(1).replace(",", ""))}
