"""The campaign reporter's CSV: figures as numbers a spreadsheet reads, without float tails.

Against a real report on the in-process sandbox (the reporting module's fixtures).
"""

from __future__ import annotations

import csv
from pathlib import Path

from klaviyo_sandbox import Sandbox

from .test_campaign_report import YESTERDAY_NY, home, run, sb, with_settings

__all__ = ["home", "sb"]  # fixtures, used by name


def test_the_csv_writes_rates_and_money_without_float_tails(sb: Sandbox) -> None:
    """Rates and ratios came out of the CSV as Python printed the float (0.3127853881278539,
    0.30000000000000004 for a sum), and money statistics other than revenue (the average order value,
    the revenue per recipient) unrounded: now money in the currency's minor unit
    and every other fraction to four places, read from a real report on the sandbox."""
    extra = ["revenue_per_recipient", "average_order_value", "click_to_open_rate"]
    state = run(sb, {"date": YESTERDAY_NY}, persona=with_settings(statistics=extra)).state
    with Path(state["files"]["csv"]).open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    money = {"revenue", "revenue_per_recipient", "average_order_value"}
    rates = {"open_rate", "click_rate", "conversion_rate", "bounce_rate", "unsubscribe_rate", "click_to_open_rate"}
    for row in rows:
        for column in money | rates:
            assert row[column], column
            places = len(row[column].partition(".")[2])
            assert places <= (2 if column in money else 4), (column, row[column])
    first = state["campaigns"][0]
    assert float(rows[0]["open_rate"]) == round(first["open_rate"], 4)
    assert float(rows[0]["revenue"]) == round(first["revenue"], 2)
