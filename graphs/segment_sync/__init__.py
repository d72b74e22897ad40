"""Segment syncer graph: make a Klaviyo list hold exactly a source's people (see ``graph.py``)."""

from typing import Any

from .graph import SyncState, build_graph, idempotency_key
from .report import render
from .settings import Settings
from .sources import SyncInputError, parse_input, read_file

graph = build_graph()

#: One step per batch: a large sync takes many steps (``run_persona`` reads this when it is set).
RECURSION_LIMIT = 100_000


def make_input(payload: dict[str, Any]) -> dict[str, Any]:
    """``personas run`` input -> graph input (the payload is validated by the graph's first node)."""
    return {"input": payload}


__all__ = ["RECURSION_LIMIT", "Settings", "SyncInputError", "SyncState", "build_graph", "graph", "idempotency_key",
           "make_input", "parse_input", "read_file", "render"]
