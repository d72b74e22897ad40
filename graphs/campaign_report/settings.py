"""Settings of the campaign reporter persona: conversion metrics, statistics, anomaly thresholds, output.

Example (in ``personas/definitions/campaign-reporter.yaml``)::

    settings:
      conversion_metrics: [Placed Order]          # one reporting call per metric, any number of campaigns
      statistics: [spam_complaint_rate]           # extra columns; the core figures are always requested
      thresholds: {max_bounce_rate: 0.05, low_open_ratio: 0.5}
      output_dir: ~/reports/campaigns             # reports go to <output_dir>/<date>/
      cache: {settle_days: 5, recheck_minutes: 60}  # when a cached day is fetched again
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["CORE_STATISTICS", "CachePolicy", "Settings", "Statistic", "Thresholds"]

Statistic = Literal[
    "average_order_value", "bounce_rate", "bounced", "bounced_or_failed", "bounced_or_failed_rate", "click_rate",
    "click_to_open_rate", "clicks", "clicks_unique", "conversion_rate", "conversion_uniques", "conversion_value",
    "conversions", "delivered", "delivery_rate", "failed", "failed_rate", "open_rate", "opens", "opens_unique",
    "recipients", "revenue_per_recipient", "spam_complaint_rate", "spam_complaints", "unsubscribe_rate",
    "unsubscribe_uniques", "unsubscribes",
]

#: What every report needs: the table's columns and the counts its totals and rates are computed from.
CORE_STATISTICS: tuple[str, ...] = (
    "recipients", "delivered", "opens_unique", "clicks_unique", "conversions", "conversion_uniques",
    "conversion_value", "bounced", "unsubscribe_uniques", "open_rate", "click_rate", "conversion_rate",
    "bounce_rate", "unsubscribe_rate",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Strict):
    """When a campaign's figures count as an anomaly (rates are fractions: 0.05 is 5%)."""

    max_bounce_rate: float = Field(0.05, ge=0, le=1, description="Flag a bounce rate above this.")
    max_unsubscribe_rate: float = Field(0.02, ge=0, le=1, description="Flag an unsubscribe rate above this.")
    low_open_ratio: float = Field(0.5, ge=0, le=1, description="Flag an open rate under this share of the median.")
    min_campaigns_for_median: int = Field(2, ge=2, description="The open-rate check needs this many campaigns.")
    flag_zero_deliveries: bool = Field(True, description="Flag a campaign with recipients but nothing delivered.")


class CachePolicy(_Strict):
    """When a finished day's cached figures answer instead of a reporting call.

    Klaviyo keeps attributing opens, clicks and conversions to a send for days after it (its default
    attribution window for email opens and clicks is 5 days), so a finished day's figures settle only
    ``settle_days`` after the day ended. Until then a cached copy answers for ``recheck_minutes``
    after it was fetched (a second run soon after costs no reporting call), and then the day is
    fetched again; a copy fetched after the day settled answers for good. Raise ``settle_days`` if the
    account's attribution window is longer than 5 days.
    """

    settle_days: float = Field(5, ge=0, le=30, description="A finished day's figures are final this many days "
                                                           "after it ended; before then it is fetched again.")
    recheck_minutes: int = Field(60, ge=0, le=24 * 60, description="Before it settles, a cached day answers for "
                                                                  "this long after it was fetched.")


class Settings(_Strict):
    """What the campaign reporter reports and where (see personas/definitions/campaign-reporter.yaml)."""

    conversion_metrics: list[str] = Field(default_factory=lambda: ["Placed Order"], min_length=1, max_length=5)
    statistics: list[Statistic] = Field(default_factory=lambda: list(CORE_STATISTICS))  # type: ignore[arg-type]
    thresholds: Thresholds = Field(default_factory=Thresholds)
    output_dir: str | None = Field(None, description="Base folder; default $PERSONAS_HOME/reports.")
    chart_campaigns: int = Field(15, ge=1, le=50, description="At most this many campaigns in the chart (by opens).")
    cache: CachePolicy = Field(default_factory=CachePolicy)

    @field_validator("conversion_metrics")
    @classmethod
    def _metrics(cls, value: list[str]) -> list[str]:
        names = [v.strip() for v in value]
        if any(not n for n in names):
            raise ValueError("metric names must not be empty; use names from get_metrics, e.g. 'Placed Order'")
        if len(set(names)) != len(names):
            raise ValueError("each conversion metric once (every metric costs one reporting call)")
        return names

    @field_validator("output_dir")
    @classmethod
    def _folder(cls, value: str | None) -> str | None:
        """A folder the run can name: ``~someone/...`` of a user this machine does not have, or a path with
        a NUL character, failed only when the run started, as a bare RuntimeError or ValueError."""
        if value is None:
            return value
        if "\x00" in value:
            raise ValueError("a folder path cannot contain a NUL character; write the folder's path as text")
        try:
            Path(value).expanduser()
        except RuntimeError:
            user = value[1:].split("/", 1)[0]
            raise ValueError(f"{value!r} starts with ~{user}, but this machine has no user {user!r} whose home it "
                             "could be; write the folder's full path, or ~/... for your own home") from None
        return value

    def requested_statistics(self) -> list[str]:
        """The core statistics, then any extra ones from ``statistics``, each once."""
        return list(dict.fromkeys([*CORE_STATISTICS, *self.statistics]))

    def extra_statistics(self) -> list[str]:
        """Statistics asked for beyond the core ones (extra table/CSV columns)."""
        return [s for s in self.statistics if s not in CORE_STATISTICS]
