"""A SQLite cache of campaign-values reports, one entry per (account, local date, conversion metric).

Why: ``query_campaign_values`` allows 225 calls a day per account, so a second rollup of the same
date should cost no reporting call when its figures cannot have changed. They can for days after
the day ended: Klaviyo keeps attributing opens, clicks and conversions to a send (its default
attribution window for email is 5 days). So an entry answers (:func:`current`) while it is younger
than a recheck interval, or for good once it was fetched after the day settled (a settling window
after the day ended); otherwise the day is fetched again, one call per metric, and the entry
replaced. Only complete days (before today in the account's time zone) are stored: the caller
decides that. An entry answers a later request only if it was made in the same time zone and holds
every statistic asked for.

Example::

    cache = ReportCache(ctx.home / "cache" / "campaign_reports.sqlite")
    hit = cache.get("ACCT", "2026-11-24", "METRIC", tz, statistics)
    if hit is None or not current(hit.fetched_at, day_end, now, settle_seconds, recheck_seconds):
        ...; cache.put("ACCT", "2026-11-24", "METRIC", tz, statistics, results, fetched_at)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CachedReport", "ReportCache", "current"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaign_values (
    account_id TEXT NOT NULL,
    date TEXT NOT NULL,
    metric_id TEXT NOT NULL,
    timezone TEXT NOT NULL,
    statistics TEXT NOT NULL,
    results TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    PRIMARY KEY (account_id, date, metric_id)
)
"""


@dataclass(frozen=True)
class CachedReport:
    """One stored report: the ``results`` rows as Klaviyo returned them, and when they were fetched."""

    results: list[dict[str, Any]]
    statistics: list[str]
    fetched_at: str


class ReportCache:
    """The cache file at ``path`` (created with its folder on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=10)
        try:
            conn.execute(_SCHEMA)
            with conn:
                yield conn
        finally:
            conn.close()

    def get(self, account_id: str, date: str, metric_id: str, timezone: str,
            statistics: Sequence[str]) -> CachedReport | None:
        """The stored report, or None if absent, from another time zone, or missing a statistic."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT timezone, statistics, results, fetched_at FROM campaign_values "
                "WHERE account_id = ? AND date = ? AND metric_id = ?", (account_id, date, metric_id),
            ).fetchone()
        if row is None or row[0] != timezone:
            return None
        stored = json.loads(row[1])
        if not set(statistics) <= set(stored):
            return None
        return CachedReport(json.loads(row[2]), stored, row[3])

    def put(self, account_id: str, date: str, metric_id: str, timezone: str, statistics: Sequence[str],
            results: list[dict[str, Any]], fetched_at: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO campaign_values VALUES (?, ?, ?, ?, ?, ?, ?)",
                (account_id, date, metric_id, timezone, json.dumps(sorted(statistics)),
                 json.dumps(results, default=str), fetched_at),
            )


def current(fetched_at: str, day_end: float, now: float, settle: float, recheck: float) -> bool:
    """Whether a copy fetched at ``fetched_at`` (ISO 8601) still answers for a day that ended at
    ``day_end``, at ``now`` (epoch seconds): fetched ``settle`` seconds or more after the day ended
    (settled: for good), or less than ``recheck`` seconds ago while the day has not settled."""
    try:
        fetched = _dt.datetime.fromisoformat(fetched_at).timestamp()
    except (TypeError, ValueError):
        return False  # an entry whose age is unknown is fetched again
    settles = day_end + settle
    return fetched >= settles or (now < settles and 0 <= now - fetched < recheck)
