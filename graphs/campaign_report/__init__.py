"""Campaign reporter graph: a daily rollup of email campaign performance (see ``graph.py``;
LangGraph loads when the graph is built)."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from graphs import lazy_package
from personas.kernel.graphspec import GraphSpec

from .operations import OPERATIONS, REPORTING_TOOL
from .settings import CORE_STATISTICS, CachePolicy, Settings, Thresholds
from .view import terminal_view


class ReportInput(BaseModel):
    """``personas run`` input: ``{}`` for yesterday in the account's time zone, or ``{"date": "YYYY-MM-DD"}``."""

    model_config = ConfigDict(extra="forbid")
    date: str | None = Field(None, description="The local day to report (default: yesterday).")


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
)

__all__ = [
    "CORE_STATISTICS",
    "REPORTING_TOOL",
    "SPEC",
    "CachePolicy",
    "ReportInput",
    "ReportInputError",
    "ReportState",
    "Settings",
    "Thresholds",
    "build_graph",
    "cache_path",
    "graph",
    "render",
]

lazy_package(__name__, {"ReportInputError": ".graph", "ReportState": ".graph", "cache_path": ".graph"})
