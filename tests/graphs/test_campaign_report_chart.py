"""The chart shows every anomaly its heading counts "in red": a send whose recipients all bounced
(its bounce rate, 100%, was hidden behind "no deliveries") and a small send on a busy day (cut by
size, while the heading still counted it)."""

from __future__ import annotations

from typing import Any

from matplotlib.colors import to_hex

from graphs.campaign_report.chart import RED, chart_figure
from graphs.campaign_report.figures import anomalies, merge_rows, totals
from graphs.campaign_report.settings import Thresholds


def _stats(recipients: int, bounced: int = 0) -> dict[str, Any]:
    delivered = recipients - bounced
    opens, clicks = delivered * 3 // 10, delivered // 20
    return {"recipients": recipients, "delivered": delivered, "opens_unique": opens, "clicks_unique": clicks,
            "bounced": bounced, "unsubscribe_uniques": 0, "conversions": 0, "conversion_uniques": 0,
            "conversion_value": 0.0, "open_rate": opens / delivered if delivered else 0.0,
            "click_rate": clicks / delivered if delivered else 0.0, "bounce_rate": bounced / recipients,
            "unsubscribe_rate": 0.0, "conversion_rate": 0.0}


def _state(sends: dict[str, dict[str, Any]]) -> dict[str, Any]:
    results = [{"groupings": {"campaign_id": cid, "campaign_message_id": f"m-{cid}", "send_channel": "email"},
                "statistics": stats} for cid, stats in sends.items()]
    rows = merge_rows({"Placed Order": {"results": results}}, ["Placed Order"],
                      {cid: {"name": f"Send {cid}"} for cid in sends}, "UTC")
    return {"date": "2026-03-08", "timezone": "UTC", "currency": "USD", "campaigns": rows,
            "totals": totals(rows, ["Placed Order"]), "anomalies": anomalies(rows, Thresholds())}


def _red_bars(fig: Any, panel: int) -> list[float]:
    return [p.get_width() for p in fig.axes[panel].patches if to_hex(p.get_facecolor()) == RED]


def test_a_send_whose_recipients_all_bounced_shows_its_bounce_rate_in_red() -> None:
    state = _state({"good": _stats(1000, bounced=10), "dead": _stats(400, bounced=400)})
    assert {a["kind"] for a in state["anomalies"]} == {"zero_deliveries", "high_bounce_rate"}
    fig = chart_figure(state, Thresholds())
    assert _red_bars(fig, 2) == [1.0], "the bounce panel draws the 100% bounce rate, flagged"
    opens = [t for t in fig.axes[0].texts if "no deliveries" in t.get_text()]
    assert len(opens) == 1 and to_hex(opens[0].get_color()) == RED, "nothing delivered is marked as the anomaly it is"


def test_a_small_send_with_an_anomaly_is_charted_on_a_busy_day() -> None:
    sends = {f"big{i:02d}": _stats(1000 + 100 * i) for i in range(18)}
    state = _state({**sends, "small": _stats(50, bounced=20)})
    fig = chart_figure(state, Thresholds(), limit=15)
    names = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(names) == 15 and any(n.startswith("Send small") for n in names)
    assert _red_bars(fig, 2) == [0.4]
    assert "15 of 19 campaigns shown (the largest, and those with anomalies)" in fig.get_suptitle()
