"""A SQLite cache of campaign-values reports, one entry per (account, local date, conversion metric).

Why: ``query_campaign_values`` allows 225 calls a day per account; a finished day's figures do not
change, so a second rollup of the same date should cost no reporting call. Only complete days
(before today in the account's time zone) are stored: the caller decides that. An entry answers a
later request only if it was made in the same time zone and holds every statistic asked for.

Example::

    cache = ReportCache(ctx.home / "cache" / "campaign_reports.sqlite")
    hit = cache.get("ACCT", "2026-11-24", "METRIC", tz, statistics)
    if hit is None:
        ...; cache.put("ACCT", "2026-11-24", "METRIC", tz, statistics, results, fetched_at)
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CachedReport", "ReportCache"]

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
