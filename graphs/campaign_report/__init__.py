"""Campaign reporter graph: a daily rollup of email campaign performance (see ``graph.py``;
LangGraph loads when the graph is built).

A finished report whose figures are missing because a reporting call failed or was refused (an
HTTP error, a spent reporting limit with no cached copy) exits :data:`FAILED_EXIT` from
``personas run``, so a cron job sees it; a report with every figure, zero campaigns included, exits 0.
"""

import datetime as _dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from graphs import lazy_package
from personas.kernel.graphspec import GraphSpec

from .dates import EARLIEST, report_day
from .operations import OPERATIONS, REPORTING_TOOL
from .settings import CORE_STATISTICS, CachePolicy, Settings, Thresholds
from .view import terminal_view


class ReportInput(BaseModel):
    """``personas run`` input: ``{}`` for yesterday in the account's time zone, or ``{"date": "YYYY-MM-DD"}``."""

    model_config = ConfigDict(extra="forbid")
    date: str | None = Field(None, description="The local day to report (default: yesterday).")

    @field_validator("date")
    @classmethod
    def _a_day_from_klaviyos_start(cls, value: str | None) -> str | None:
        """A text that is not a ``YYYY-MM-DD`` day, or a day before :data:`EARLIEST`, is refused before
        the run starts, so a typo makes no thread and no failed run (the graph's first step refuses
        it in the same words where a run is started otherwise; a day after today there, which
        needs the account's time zone)."""
        if not value:  # none or empty: yesterday, as the graph reads it
            return value
        yesterday = _dt.datetime.now(_dt.UTC).date() - _dt.timedelta(days=1)  # the example, as the graph's
        try:
            report_day(value, yesterday)
        except ValueError as exc:
            raise PydanticCustomError("report_day", "{problem}", {"problem": str(exc)}) from None
        return value


#: The exit code of a report whose figures are missing because a reporting call failed or was refused:
#: ``personas run``'s runtime failure (run it again later; a finished day's figures are then cached).
FAILED_EXIT = 1


def missing_figures(state: Mapping[str, Any]) -> list[str]:
    """The conversion metrics (or the engagement-only stand-in) whose reporting call failed or was
    refused and left no figures (a cached copy used instead is not missing)."""
    reports = state.get("reports") or {}
    return [metric for metric, report in reports.items() if report.get("source") == "unavailable"]


def exit_code(state: Mapping[str, Any]) -> int:
    """The process exit code of a finished report: :data:`FAILED_EXIT` when figures are missing, else 0."""
    return FAILED_EXIT if missing_figures(state) else 0


def render(state: Mapping[str, Any]) -> str:
    """The terminal view of a rollup: the markdown report, then where the files are."""
    files = state.get("files") or {}
    markdown = files.get("markdown")
    body = Path(markdown).read_text(encoding="utf-8") if markdown and Path(markdown).exists() else ""
    lines = [body.strip() or f"{state.get('date')}: {state.get('empty_text') or 'no report written'}", ""]
    for kind in ("markdown", "csv", "png"):
        if files.get(kind):
            lines.append(f"{kind:8} {files[kind]}")
    lines.append(
        f"reporting calls: {state.get('reporting_calls')}" + (" (from the cache)" if state.get("cache_hit") else "")
    )
    return "\n".join(lines)


def build_graph(checkpointer: Any = None) -> Any:
    """The compiled graph (``graph.build_graph``)."""
    from .graph import build_graph as build

    return build(checkpointer)


SPEC = GraphSpec(
    name="campaign_report",
    description="Daily campaign rollup: one reporting call per conversion metric; table, chart, summary.",
    settings=Settings,
    build=build_graph,
    operations=OPERATIONS,
    input_model=ReportInput,
    render=render,
    render_rich=terminal_view,
    exit_code=exit_code,  # figures missing because a reporting call failed: FAILED_EXIT
)

__all__ = [
    "CORE_STATISTICS",
    "EARLIEST",
    "FAILED_EXIT",
    "REPORTING_TOOL",
    "SPEC",
    "CachePolicy",
    "ReportInput",
    "ReportInputError",
    "ReportSettingsError",
    "ReportState",
    "Settings",
    "Thresholds",
    "build_graph",
    "cache_path",
    "exit_code",
    "graph",
    "missing_figures",
    "render",
]

lazy_package(__name__, {"ReportInputError": ".graph", "ReportSettingsError": ".graph", "ReportState": ".graph",
                         "cache_path": ".graph"})
