"""A campaign of several email messages (an A/B test's variations) is one row: its counts summed and
every ratio recomputed from them. The average order value and the revenue per recipient were summed
(two messages: doubled), and extra rates such as spam_complaint_rate were dropped (a blank cell)."""

from __future__ import annotations

from typing import Any

import pytest

from graphs.campaign_report.figures import merge_rows

EXTRA = ["average_order_value", "revenue_per_recipient", "spam_complaint_rate", "click_to_open_rate", "delivery_rate"]


def _message(mid: str, recipients: int, delivered: int, opens: int, clicks: int, orders: int, value: float,
             spam: int) -> dict[str, Any]:
    stats = {"recipients": recipients, "delivered": delivered, "bounced": recipients - delivered, "opens_unique": opens,
             "clicks_unique": clicks, "unsubscribe_uniques": 0, "conversions": orders, "conversion_uniques": orders,
             "conversion_value": value, "spam_complaints": spam, "open_rate": opens / delivered,
             "click_rate": clicks / delivered, "bounce_rate": (recipients - delivered) / recipients,
             "unsubscribe_rate": 0.0, "conversion_rate": orders / delivered, "average_order_value": value / orders,
             "revenue_per_recipient": value / delivered, "spam_complaint_rate": spam / delivered,
             "click_to_open_rate": clicks / opens, "delivery_rate": delivered / recipients}
    return {"groupings": {"campaign_id": "C1", "campaign_message_id": mid, "send_channel": "email"},
            "statistics": stats}


def test_a_campaign_of_two_messages_has_its_ratios_recomputed_not_summed() -> None:
    results = [_message("A", 1000, 990, 300, 60, 10, 500.0, 2), _message("B", 1000, 980, 200, 20, 5, 400.0, 1)]
    [row] = merge_rows({"Placed Order": {"results": results}}, ["Placed Order"], {"C1": {"name": "Spring A/B"}},
                       "UTC", extra=EXTRA)
    assert (row["recipients"], row["delivered"], row["opens_unique"]) == (2000, 1970, 500)
    assert row["open_rate"] == pytest.approx(500 / 1970)
    extra = row["extra"]
    assert extra["average_order_value"] == pytest.approx(900 / 15), "conversion value over conversions, not 50 + 80"
    assert extra["revenue_per_recipient"] == pytest.approx(900 / 1970)
    assert extra["spam_complaint_rate"] == pytest.approx(3 / 1970)
    assert extra["click_to_open_rate"] == pytest.approx(80 / 500)
    assert extra["delivery_rate"] == pytest.approx(1970 / 2000)


def test_a_ratio_whose_counts_were_not_asked_for_is_unknown_not_a_sum() -> None:
    results = [_message("A", 1000, 990, 300, 60, 10, 500.0, 2), _message("B", 1000, 980, 200, 20, 5, 400.0, 1)]
    for r in results:
        del r["statistics"]["spam_complaints"]
    [row] = merge_rows({"Placed Order": {"results": results}}, ["Placed Order"], {}, "UTC", extra=EXTRA)
    assert row["extra"]["spam_complaint_rate"] is None
