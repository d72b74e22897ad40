"""Campaign reporter graph: a daily rollup of email campaign performance (see ``graph.py``)."""

from .graph import REPORTING_TOOL, ReportInputError, ReportState, build_graph, cache_path
from .settings import CORE_STATISTICS, Settings, Thresholds

graph = build_graph()

__all__ = ["CORE_STATISTICS", "REPORTING_TOOL", "ReportInputError", "ReportState", "Settings", "Thresholds",
           "build_graph", "cache_path", "graph"]
