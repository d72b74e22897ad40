"""The daily report in a terminal: the summary once, a table that fits 80 columns, anomalies marked.

The same rows as the markdown, CSV and chart (one source, one set of formatting functions), drawn
with rich so it reads in a terminal instead of wrapping raw markdown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .figures import fmt_count, fmt_money, fmt_rate
from .outputs import summary_label

__all__ = ["terminal_view"]

#: anomaly kind -> the column it marks
_MARKS = {"low_open_rate": "open", "high_bounce_rate": "bounce", "high_unsubscribe_rate": "unsub",
          "zero_deliveries": "sent"}


def _cell(text: str, bad: bool) -> Text:
    return Text(f"{text} ⚠", style="bold red") if bad else Text(text)


def terminal_view(state: Mapping[str, Any], answered_by: str | None = None) -> RenderableType:
    """The report for a terminal (see the module docstring); ``answered_by``: the run's ``ModelChoice.kind``."""
    date, currency = state.get("date"), state.get("currency")
    parts: list[RenderableType] = [Text(f"Email campaigns on {date} ({state.get('timezone') or 'UTC'})",
                                        style="bold")]
    summary = state.get("summary") or {}
    parts += [Text(summary_label(summary, answered_by), style="dim"), Text(str(summary.get("text") or "")),
              Text("")]
    rows = state.get("campaigns") or []
    if not rows:
        parts.append(Text(str(state.get("empty_text") or "No campaign had activity.")))
    else:
        flagged = {(a["campaign_id"], _MARKS.get(a["kind"], "")) for a in state.get("anomalies") or []}
        table = Table(show_edge=False, pad_edge=False, header_style="bold", expand=False)
        table.add_column("Campaign", ratio=1, min_width=14, overflow="fold")
        for name in ("Sent", "Open", "Click", "Bounce", "Unsub", "Revenue"):
            table.add_column(name, justify="right", no_wrap=True)
        for row in [*rows, None]:
            r = row if row is not None else {**(state.get("totals") or {}), "name": "Total", "campaign_id": None}
            cid = r.get("campaign_id")
            table.add_row(
                Text(str(r.get("name")), style="bold" if row is None else ""),
                _cell(fmt_count(r.get("recipients")), (cid, "sent") in flagged),
                _cell(fmt_rate(r.get("open_rate")), (cid, "open") in flagged),
                Text(fmt_rate(r.get("click_rate"))),
                _cell(fmt_rate(r.get("bounce_rate")), (cid, "bounce") in flagged),
                _cell(fmt_rate(r.get("unsubscribe_rate")), (cid, "unsub") in flagged),
                Text(fmt_money(r.get("revenue"), currency)),
                end_section=row is rows[-1] if row is not None else False,
            )
        parts.append(table)
    found = state.get("anomalies") or []
    if found:
        parts.append(Text(""))
        parts += [Text.from_markup(f"[bold red]⚠[/bold red] {escape(str(a['campaign']))}: {escape(a['detail'])}")
                  for a in found]
    files = state.get("files") or {}
    if files:
        parts.append(Text(""))
        parts += [Text(f"{kind:<9}{files[kind]}", style="dim") for kind in ("markdown", "csv", "png") if kind in files]
    calls = state.get("reporting_calls")
    parts.append(Text(f"reporting calls: {calls}" + (" (figures from the cache)" if state.get("cache_hit") else ""),
                      style="dim"))
    return Group(*parts)
