"""The daily report's chart: the day's story at a glance.

One row per campaign (the largest sends first) and one panel per rate a marketer judges a send by:
open, click, bounce and unsubscribe rate. Every bar is labelled with its rate and the count behind
it; a rate over (or, for opens, under) the persona's threshold is red and marked, with the
threshold drawn as a dashed line; a campaign with nothing delivered shows "no deliveries" rather
than a 0% rate, and one sent on an earlier day (activity this day, no sends) says so, with its count.
When such campaigns had activity, a line under the day's rates says what they leave out (the
day's rates divide only the counts of campaigns sent that day). Names wrap at spaces, never cut
mid-word unless a word is longer than a line, and characters the font cannot draw are left
out of the labels. The same figures are in the table and the CSV (they come from the same rows).
"""

from __future__ import annotations

import statistics
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .figures import activity_text, fmt_count, fmt_money, fmt_rate, split_totals
from .settings import Thresholds

__all__ = ["PANELS", "chart_figure", "chart_rows", "write_chart"]

Row = Mapping[str, Any]

#: (rate, title, count behind it, anomaly kind that marks it)
PANELS = (
    ("open_rate", "Open rate", "opens_unique", "low_open_rate"),
    ("click_rate", "Click rate", "clicks_unique", None),
    ("bounce_rate", "Bounce rate", "bounced", "high_bounce_rate"),
    ("unsubscribe_rate", "Unsubscribe rate", "unsubscribe_uniques", "high_unsubscribe_rate"),
)
BLUE, RED, GREY = "#2f5d8a", "#c0392b", "#8a8a8a"
#: What a panel's rate divides where it is not ``delivered`` (Klaviyo's definitions, as in ``figures.py``):
#: a bounce rate exists for a send with recipients even when nothing was delivered (all of them bounced).
_WHOLE = {"bounce_rate": "recipients"}


def _drawable(text: str) -> str:
    """``text`` without the characters the chart's font has no glyph for (emoji in DejaVu Sans, which
    would be drawn as empty boxes, each with a warning on stderr), spaces collapsed; the table and the
    CSV keep the name as it is."""
    from matplotlib.font_manager import FontProperties, findfont, get_font

    font = get_font(findfont(FontProperties()))
    kept = "".join(c for c in text if c.isspace() or font.get_char_index(ord(c)))
    return " ".join(kept.split())


def _label(row: Row, currency: str | None) -> str:
    # a word longer than a line (a URL, a name without spaces) is broken; shorter words never are
    name = textwrap.fill(_drawable(str(row.get("name") or "")) or str(row.get("campaign_id")), width=26,
                         break_long_words=True, max_lines=3, placeholder=" …")
    facts = f"{fmt_count(row.get('recipients'))} sent"
    if row.get("revenue"):
        facts += f" · {fmt_money(row.get('revenue'), currency)}"
    return f"{name}\n{facts}"


def _threshold(rate: str, rows: Sequence[Row], thresholds: Thresholds) -> float | None:
    if rate == "bounce_rate":
        return thresholds.max_bounce_rate
    if rate == "unsubscribe_rate":
        return thresholds.max_unsubscribe_rate
    if rate == "open_rate":
        rates = [r["open_rate"] for r in rows if r.get("delivered") and r.get("open_rate") is not None]
        if len(rates) >= thresholds.min_campaigns_for_median:
            return thresholds.low_open_ratio * statistics.median(rates)
    return None


def chart_rows(rows: Sequence[Row], anomalies: Sequence[Mapping[str, Any]], limit: int) -> list[Row]:
    """The at most ``limit`` campaigns the chart draws, largest send first: every campaign with an
    anomaly (the chart's point; the largest of them if they alone are more than ``limit``), then the
    largest of the rest. By size alone, a small send with a 40% bounce rate fell off a busy day's
    chart while its heading still counted the anomaly "in red"."""
    marked = {a["campaign_id"] for a in anomalies}
    picked = sorted((r for r in rows if r.get("campaign_id") in marked), key=_largest_first)[:limit]
    kept = {id(r) for r in picked}
    picked += sorted((r for r in rows if id(r) not in kept), key=_largest_first)[:limit - len(picked)]
    return sorted(picked, key=_largest_first)


def _conversions(state: Mapping[str, Any], currency: str | None) -> str:
    """The day's conversions for the chart's heading: the primary metric's, else (its reporting call
    failed, or the account has none of the metrics) the first metric with figures, named; never
    "n/a conversions worth n/a"."""
    totals = state.get("totals") or {}
    by_metric = totals.get("by_metric") or {}
    metrics = list(state.get("metrics") or [])
    primary = metrics[0] if metrics else None
    metric = next((m for m in metrics if by_metric.get(m) is not None), None)
    if metric is None:
        return "no conversion figures"
    per = by_metric[metric]
    what = "" if metric == primary else f"{metric} "
    return (f"{fmt_count(per.get('conversions'))} {what}conversion{'' if per.get('conversions') == 1 else 's'} "
            f"worth {fmt_money(per.get('revenue'), currency)}")


def _largest_first(row: Row) -> float:
    return -(row.get("recipients") or 0)


def write_chart(path: Path, state: Mapping[str, Any], thresholds: Thresholds, limit: int = 15) -> None:
    """Draw the chart for ``state`` (rows, totals, anomalies) into ``path`` (PNG)."""
    chart_figure(state, thresholds, limit).savefig(str(path), format="png")


def chart_figure(state: Mapping[str, Any], thresholds: Thresholds, limit: int = 15) -> Any:
    """The chart for ``state`` as a matplotlib ``Figure`` on an Agg canvas (what :func:`write_chart` saves)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, MaxNLocator

    rows: list[Row] = list(state.get("campaigns") or [])
    date, currency = state.get("date"), state.get("currency")
    shown = chart_rows(rows, state.get("anomalies") or [], limit)
    flagged = {(a["campaign_id"], a["kind"]) for a in state.get("anomalies") or []}
    height = max(3.2, 0.75 * len(shown) + 2.0)
    fig = Figure(figsize=(12, height), dpi=110)
    FigureCanvasAgg(fig)
    if not shown:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, state.get("empty_text") or f"No email campaign had activity on {date}.",
                ha="center", va="center", fontsize=12, wrap=True)
        ax.set_axis_off()
        fig.suptitle(f"Email campaigns — {date}", fontsize=13)
        return fig
    axes = fig.subplots(1, len(PANELS), sharey=True)
    ys = list(range(len(shown)))[::-1]  # the largest send at the top
    for ax, (rate, title, count, kind) in zip(axes, PANELS, strict=True):
        values = [r.get(rate) for r in shown]
        top = max([v for v in values if v is not None] + [_threshold(rate, rows, thresholds) or 0, 0.01])
        line = _threshold(rate, rows, thresholds)
        for y, row, value in zip(ys, shown, values, strict=True):
            if not row.get("recipients") and not row.get("delivered"):  # activity of a send on an earlier day
                behind = f" ({fmt_count(row.get(count))})" if row.get(count) else ""
                ax.text(0, y, f" sent on an earlier day{behind}", va="center", fontsize=8, color=GREY)
                continue
            if not row.get(_WHOLE.get(rate, "delivered")) or value is None:
                # nothing delivered is itself an anomaly (zero_deliveries): marked as one, so every anomaly
                # the heading counts "in red" is red in the chart
                dead = not row.get("delivered") and (row["campaign_id"], "zero_deliveries") in flagged
                ax.text(0, y, (" no deliveries" if not row.get("delivered") else " n/a") + ("  ⚠" if dead else ""),
                        va="center", fontsize=8, color=RED if dead else GREY, fontweight="bold" if dead else "normal")
                continue
            bad = kind is not None and (row["campaign_id"], kind) in flagged
            ax.barh(y, value, height=0.6, color=RED if bad else BLUE)
            text = f" {fmt_rate(value)} ({fmt_count(row.get(count))})" + ("  ⚠" if bad else "")
            ax.text(value, y, text, va="center", fontsize=8, color=RED if bad else "#222222",
                    fontweight="bold" if bad else "normal")
        if line is not None:
            ax.axvline(line, color=RED, linestyle="--", linewidth=1)
            where = "floor" if rate == "open_rate" else "limit"
            ax.text(line, len(shown) - 0.45, f"{where} {fmt_rate(line)}", color=RED, fontsize=7, ha="left",
                    va="bottom")
        ax.set_xlim(0, top * 1.75)
        ax.set_title(title, fontsize=10)
        digits = 1 if top * 1.75 < 0.1 else 0  # small rates get a decimal, so ticks never repeat
        ax.xaxis.set_major_formatter(lambda x, _pos, d=digits: f"{x * 100:.{d}f}%")
        # the axis runs past the largest bar to leave room for its label; its ticks stop at 100%
        ax.xaxis.set_major_locator(FixedLocator([t for t in MaxNLocator(5).tick_values(0, min(top * 1.75, 1.0))
                                                 if 0 <= t <= 1.0]))
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.25)
        ax.set_ylim(-0.6, len(shown) - 0.2)
    axes[0].set_yticks(ys)
    axes[0].set_yticklabels([_label(r, currency) for r in shown], fontsize=8)
    totals = state.get("totals") or {}
    more = ""
    if len(rows) > len(shown):
        largest = {id(r) for r in sorted(rows, key=_largest_first)[:limit]}
        also = "" if all(id(r) in largest for r in shown) else ", and those with anomalies"
        more = f"; {len(shown)} of {len(rows)} campaigns shown (the largest{also})"
    story = (f"{fmt_count(totals.get('recipients'))} recipients · open {fmt_rate(totals.get('open_rate'))} · "
             f"click {fmt_rate(totals.get('click_rate'))} · {_conversions(state, currency)}")
    found = len(state.get("anomalies") or [])
    marks = f" · {found} anomal{'y' if found == 1 else 'ies'} in red ⚠" if found else " · no anomalies"
    on_chart = {r["campaign_id"] for r in shown}
    left_out = sum(1 for a in state.get("anomalies") or [] if a["campaign_id"] not in on_chart)
    if left_out:  # more campaigns with anomalies than the chart has rows: say so, never imply they are drawn
        marks += f" ({left_out} of them in campaigns not shown: see the report's table)"
    failed = [m for m, r in (state.get("reports") or {}).items() if r.get("source") == "unavailable"]
    if failed:  # a reporting call that failed: its figures are not zero, they are missing
        marks += (f"\nFigures for {', '.join(repr(m) for m in failed)} are missing: "
                  f"{'its' if len(failed) == 1 else 'their'} reporting call failed (see the report's notes)")
    split = split_totals(rows, totals)
    if split is not None:  # the rates above leave out what campaigns sent on earlier days did this day
        sent, earlier = split["sent"]["campaigns"], split["earlier"]
        marks += (f"\nRates are over the {sent} campaign{'' if sent == 1 else 's'} sent this day; "
                  f"{earlier['campaigns']} sent on earlier days had {activity_text(earlier, currency)} this day "
                  "(in the counts, not the rates)")
    head = 0.55 + 0.17 * marks.count("\n")
    fig.suptitle(f"Email campaigns — {date} ({state.get('timezone') or 'UTC'}){more}", fontsize=13, x=0.01,
                 y=1 - 0.08 / height, ha="left", va="top")
    fig.text(0.01, 1 - 0.42 / height, story + marks, fontsize=9, ha="left", va="top", color="#444444")
    fig.tight_layout(rect=(0, 0, 1, 1 - head / height))
    return fig
