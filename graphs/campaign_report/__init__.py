"""Campaign reporter graph: a daily rollup of email campaign performance (see ``graph.py``)."""

from .graph import REPORTING_TOOL, ReportInputError, ReportState, build_graph, cache_path
from .settings import CORE_STATISTICS, Settings, Thresholds

graph = build_graph()

__all__ = [
    "CORE_STATISTICS",
    "REPORTING_TOOL",
    "ReportInputError",
    "ReportState",
    "Settings",
    "Thresholds",
    "build_graph",
    "cache_path",
    "graph",
    "render",
]


def render(state: dict) -> str:  # type: ignore[type-arg]
    """The terminal view of a rollup: the markdown report, then where the files are."""
    from pathlib import Path

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
