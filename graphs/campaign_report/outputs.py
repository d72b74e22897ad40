"""The rollup's files: a markdown report, a CSV of the rows, and a PNG chart.

The chart is drawn on matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``), never
through ``pyplot``, so no global figure state or display backend is involved and runs in threads
are safe. Campaign names (and Klaviyo's error messages in the notes) are Klaviyo data: in markdown,
``|`` and line breaks are escaped so a name cannot break the table, and ``<`` and ``](`` so it cannot
become a link, an image or HTML; the summary, which quotes names, is written paragraph by paragraph
the same way, none starting a heading, a quote or a list. In the CSV, a name that starts like a
spreadsheet formula gets a leading ``'`` (OWASP's advice on CSV injection).

Example::

    files = write_outputs(state, Path("reports/2026-11-24"))
    files["markdown"], files["csv"], files["png"]
"""

from __future__ import annotations

import csv
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from personas.kernel.privacy import private_file, write_private_text

from .chart import write_chart
from .figures import COUNTS, RATES, activity_text, fmt_count, fmt_money, fmt_rate, money_digits, split_totals
from .settings import Thresholds

__all__ = ["WRITTEN_BY", "TotalLine", "csv_columns", "earlier_note", "markdown_report", "no_activity_text",
           "output_base", "summary_label", "total_lines", "unwritable", "write_chart", "write_csv", "write_outputs",
           "written_by"]

Row = Mapping[str, Any]


def no_activity_text(date: str) -> str:
    return f"No email campaigns had activity on {date}."


# -- CSV -----------------------------------------------------------------------------------------------
def csv_columns(metrics: Sequence[str], extra: Sequence[str]) -> list[str]:
    """Columns: ids and times, counts, rates (fractions), then other metrics and extra statistics."""
    cols = ["campaign_id", "name", "send_time", "send_time_local", *COUNTS, *RATES, "conversion_metric"]
    for metric in metrics[1:]:
        cols += [f"conversions:{metric}", f"conversion_uniques:{metric}", f"revenue:{metric}",
                 f"conversion_rate:{metric}"]
    return cols + list(extra)


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


#: Columns (before any ``:metric``) that hold money: written in the currency's minor unit.
MONEY_COLUMNS = frozenset({"revenue", "conversion_value", "average_order_value", "revenue_per_recipient",
                           "text_message_spend"})
#: Decimal places of every other fraction (rates: 0.3128 is 31.28%, one place more than the table shows).
RATE_DIGITS = 4


def write_csv(path: Path, rows: Sequence[Row], metrics: Sequence[str], extra: Sequence[str],
              currency: str | None = None) -> None:
    """The rows, one per campaign; money (revenue, extra statistics such as the average order value)
    rounded to ``currency``'s minor unit, every other fraction (rates, ratios) to :data:`RATE_DIGITS`
    places: sums and quotients of floats leave tails such as 12347678.904000001 or 0.30000000000000004."""
    columns = csv_columns(metrics, extra)
    digits = money_digits(currency)
    # utf-8-sig: Excel reads a CSV without a byte-order mark as the local code page (Café -> CafÃ©)
    with private_file(path).open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            values: dict[str, Any] = {k: row.get(k) for k in columns}
            for metric in metrics[1:]:
                per = (row.get("by_metric") or {}).get(metric) or {}
                for key in ("conversions", "conversion_uniques", "revenue", "conversion_rate"):
                    values[f"{key}:{metric}"] = per.get(key)
            values.update({k: v for k, v in (row.get("extra") or {}).items() if k in extra})
            for key, value in values.items():
                if isinstance(value, float):
                    places = digits if key.split(":")[0] in MONEY_COLUMNS else RATE_DIGITS
                    values[key] = round(value, places) if places else round(value)  # JPY: 1235, not 1235.0
            writer.writerow([_cell(values.get(c)) for c in columns])


# -- markdown ------------------------------------------------------------------------------------------
def _md(text: Any) -> str:
    """``text`` inline in markdown as it reads: a campaign named ``x\\n\\n## Limit reached ![](http://t/p.png)``
    must not add a heading, load a tracking image or show a link under other words."""
    return (str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
            .replace("<", "\\<").replace("](", "]\\("))


#: What starts a block (heading, quote, list, table, link definition, code) at the start of a paragraph.
_BLOCK_START = re.compile(r"^(?:[#>+*=~`\[-]|\d+[.)])")


def _md_paragraphs(text: str) -> list[str]:
    """A summary (the template's or the model's, both quoting campaign names) as plain paragraphs."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        line = _md(paragraph).strip()
        if line:
            out += [("\\" + line) if _BLOCK_START.match(line) else line, ""]
    return out[:-1]


class TotalLine(NamedTuple):
    """A closing line of the table: ``kind`` is ``total``, ``sent`` or ``earlier``; ``rates``: print its rates."""

    kind: str
    label: str
    figures: Mapping[str, Any]
    campaigns: int | None
    rates: bool

    def long_label(self) -> str:
        """The label with its number of campaigns, e.g. ``Sent this day (2 campaigns)``."""
        n = self.campaigns
        return self.label if n is None else f"{self.label} ({n} campaign{'' if n == 1 else 's'})"


def total_lines(rows: Sequence[Row], totals: Mapping[str, Any]) -> list[TotalLine]:
    """The table's closing lines: the Total alone when the day's rates divide its whole counts; else the
    part each rate divides (sent this day, with the rates), the activity of campaigns sent on earlier
    days, and the Total of both without rates (see :func:`~.figures.split_totals`), so every rate
    stands beside the counts it was divided from."""
    split = split_totals(rows, totals)
    if split is None:
        return [TotalLine("total", "Total", totals, None, True)]
    sent, earlier = split["sent"], split["earlier"]
    return [TotalLine("sent", "Sent this day", sent, sent["campaigns"], True),
            TotalLine("earlier", "Sent on earlier days", earlier, earlier["campaigns"], True),
            TotalLine("total", "Total", totals, None, False)]


def earlier_note(rows: Sequence[Row], totals: Mapping[str, Any], date: str, currency: str | None) -> str | None:
    """What the day's rates leave out, in a sentence; None when they leave nothing out."""
    split = split_totals(rows, totals)
    if split is None:
        return None
    return (f"The day's rates are over the campaigns sent on {date}. Campaigns sent on earlier days had "
            f"{activity_text(split['earlier'], currency)} on {date}: in the Total, not in the rates, as their "
            "deliveries were not this day's.")


def _table(rows: Sequence[Row], totals: Mapping[str, Any], metric: str | None, currency: str | None) -> list[str]:
    """The campaigns table: every rate stands right after the count it divides (Klaviyo's definitions:
    converters, unsubscribes over delivered, bounced over recipients), so a reader can recompute it."""
    head = ["Campaign", "Sent (local)", "Recipients", "Delivered", "Opens", "Open rate", "Clicks", "Click rate",
            f"Conversions ({_md(metric or 'n/a')})", "Revenue", "Converters", "Conv. rate", "Bounced", "Bounce rate",
            "Unsubs", "Unsub. rate"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cells(r: Mapping[str, Any], name: str, sent: str, rates: bool = True) -> list[str]:
        def rate(key: str) -> str:
            return fmt_rate(r.get(key)) if rates else ""

        return [name, sent, fmt_count(r.get("recipients")), fmt_count(r.get("delivered")),
                fmt_count(r.get("opens_unique")), rate("open_rate"), fmt_count(r.get("clicks_unique")),
                rate("click_rate"), fmt_count(r.get("conversions")), fmt_money(r.get("revenue"), currency),
                fmt_count(r.get("conversion_uniques")), rate("conversion_rate"), fmt_count(r.get("bounced")),
                rate("bounce_rate"), fmt_count(r.get("unsubscribe_uniques")), rate("unsubscribe_rate")]

    for row in rows:
        lines.append("| " + " | ".join(cells(row, _md(row["name"]), row.get("send_time_local") or "")) + " |")
    if rows:
        for line in total_lines(rows, totals):
            name = line.long_label() if line.kind == "earlier" else f"**{line.long_label()}**"
            lines.append("| " + " | ".join(cells(line.figures, name, "", line.rates)) + " |")
    return lines


#: Who wrote a summary the graph took as the model's, by the run's ``ModelChoice.kind``: a replayed
#: answer written by hand is never passed off as the model's.
WRITTEN_BY = {
    "live": "the model",
    "recorded": "the model (its recorded answer, replayed)",
    "authored": "hand (an authored answer, replayed in place of the model)",
    "scripted": "a script standing in for the model",
}


def written_by(summary: Mapping[str, Any], answered_by: str | None = None) -> str | None:
    """Who wrote a model summary (``answered_by``, else the summary's own, says whose answer it was);
    None for a template's, whose text opens by saying that no model wrote it and why."""
    if summary.get("written_by") != "model":
        return None
    return WRITTEN_BY.get(str(answered_by or summary.get("answered_by")), "the model")


def summary_label(summary: Mapping[str, Any], answered_by: str | None = None) -> str:
    """The line above a summary in a terminal: ``Summary, written by ...:``, or ``Summary:`` for a template's."""
    byline = written_by(summary, answered_by)
    return f"Summary, written by {byline}:" if byline else "Summary:"


def markdown_report(state: Mapping[str, Any]) -> str:
    """The whole report as markdown: summary, table, other metrics, anomalies, limits, notes."""
    date, tz = state["date"], state["timezone"]
    rows = state.get("campaigns") or []
    totals = state.get("totals") or {}
    metrics = list(state.get("metrics") or [])
    currency = state.get("currency")
    summary = state.get("summary") or {}
    out = [f"# Email campaign report — {date}", "",
           f"Local day {date} in the account's time zone ({tz}).", ""]
    byline = written_by(summary)
    out += ["## Summary", "", *([f"_Written by {byline}._", ""] if byline else []),
            *_md_paragraphs(str(summary.get("text") or "")), ""]
    if summary.get("figures"):
        out += ["Figures cited:", ""]
        out += [f"- [{f['id']}] {_md(f['label'])}: {_md(f['value'])}" for f in summary["figures"]]
        out.append("")
    out += ["## Campaigns", ""]
    if not rows:
        out += [state.get("empty_text") or no_activity_text(date), ""]
    out += [*_table(rows, totals, metrics[0] if metrics else None, currency), ""]
    if rows:
        out += [f"_Converters: people with a {_md(metrics[0] if metrics else 'conversion')} attributed to the "
                "campaign; Unsubs: people who unsubscribed. Each rate divides the count before it: opens, clicks, "
                "converters and unsubs by delivered, bounced by recipients._", ""]
    note = earlier_note(rows, totals, date, currency)
    if note:
        out += [f"_{note}_", ""]
    per = totals.get("by_metric") or {}
    if len(metrics) > 1:
        out += ["## Conversions per metric", "", "| Metric | Conversions | Revenue | Conv. rate |",
                "|---|---|---|---|"]
        for metric in metrics:
            m = per.get(metric)
            cells = [fmt_count(m["conversions"]), fmt_money(m["revenue"], currency),
                     fmt_rate(m["conversion_rate"])] if m else ["n/a"] * 3
            out.append(f"| {_md(metric)} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["## Anomalies", ""]
    found = state.get("anomalies") or []
    out += [f"- **{_md(a['campaign'])}**: {a['detail']}" for a in found] or ["None found with the persona's "
                                                                             "thresholds."]
    out.append("")
    limit = state.get("limit") or {}
    if limit.get("exhausted"):
        out += ["## Reporting limit reached", "", _md(limit.get("detail")), ""]
    out += ["## Source", "",
            f"- Reporting calls (query_campaign_values) this run: {state.get('reporting_calls', 0)}"
            + (" — figures came from the cache." if state.get("cache_hit") else ""),
            *[f"- Used the cache for {metric!r} (fetched {report['fetched_at']}): no reporting call."
              + (f" The day had not settled when this copy was fetched, and it could not be fetched again: "
                 f"{report['refresh_failed']}."
                 if report.get("refresh_failed") else "")
              for metric, report in (state.get("reports") or {}).items() if report.get("source") == "cache"],
            *([f"- {date} settles at {state['settles_at']}: until then Klaviyo may still attribute opens, clicks "
               "and conversions to its sends, and a later run fetches the day again."] if state.get("settles_at")
              else []),
            *[f"- {_md(note)}" for note in state.get("notes") or []], ""]
    return "\n".join(out)


def output_base(output_dir: str | None, home: Path) -> Path:
    """The folder holding one sub-folder of files per reported day: the persona's ``output_dir``, else
    ``$PERSONAS_HOME/reports``."""
    return Path(output_dir).expanduser() if output_dir else home / "reports"


def unwritable(base: Path) -> str | None:
    """Why report files cannot be written under ``base`` (created if missing), or None when they can.

    Asked before a run spends a reporting call: a folder that cannot be written (a typo, a path under a
    file, no permission) otherwise fails only at the last step, after the calls, as a bare OSError.
    """
    try:
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryFile(dir=base):
            pass
    except FileExistsError:  # mkdir on a file of that name
        return f"{base} is a file, not a folder, so report files cannot be written under it"
    except OSError as exc:
        return f"report files cannot be written under {base} ({exc.strerror or exc})"
    return None


def write_outputs(
    state: Mapping[str, Any], folder: Path, thresholds: Thresholds, chart_campaigns: int = 15
) -> dict[str, str]:
    """Write the markdown, CSV and PNG for ``state`` into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    date = state["date"]
    metrics = list(state.get("metrics") or [])
    paths = {"markdown": folder / f"campaign-report-{date}.md", "csv": folder / f"campaign-report-{date}.csv",
             "png": folder / f"campaign-report-{date}.png"}
    rows = state.get("campaigns") or []
    write_csv(paths["csv"], rows, metrics, state.get("extra_statistics") or [], state.get("currency"))
    write_chart(paths["png"], state, thresholds, chart_campaigns)
    write_private_text(paths["markdown"], markdown_report(state))
    for path in paths.values():
        private_file(path)
    return {k: str(v) for k, v in paths.items()}
