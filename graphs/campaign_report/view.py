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
from .outputs import earlier_note, summary_label, total_lines

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
        for row in rows:
            cid = row.get("campaign_id")
            table.add_row(
                Text(str(row.get("name"))),
                _cell(fmt_count(row.get("recipients")), (cid, "sent") in flagged),
                _cell(fmt_rate(row.get("open_rate")), (cid, "open") in flagged),
                Text(fmt_rate(row.get("click_rate"))),
                _cell(fmt_rate(row.get("bounce_rate")), (cid, "bounce") in flagged),
                _cell(fmt_rate(row.get("unsubscribe_rate")), (cid, "unsub") in flagged),
                Text(fmt_money(row.get("revenue"), currency)),
                end_section=row is rows[-1],
            )
        for line in total_lines(rows, state.get("totals") or {}):  # a rate only beside what it divides
            table.add_row(Text(line.label, style="" if line.kind == "earlier" else "bold"),
                          Text(fmt_count(line.figures.get("recipients"))),
                          *[Text(fmt_rate(line.figures.get(key)) if line.rates else "")
                            for key in ("open_rate", "click_rate", "bounce_rate", "unsubscribe_rate")],
                          Text(fmt_money(line.figures.get("revenue"), currency)))
        parts.append(table)
        note = earlier_note(rows, state.get("totals") or {}, str(date), currency)
        if note:
            parts += [Text(""), Text(note, style="dim")]
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
