"""The personas' LangGraph state machines: one package per graph, each exporting ``SPEC``, a
:class:`personas.kernel.graphspec.GraphSpec` (settings, input, build, render, operations, limits).

``langgraph.json`` points LangGraph Server / ``langgraph dev`` at the module-level ``graph`` of each
(compiled without a checkpointer, as the server brings its own). Graphs import the persona kernel
and the toolkit, never the runtime or the CLI above them.

To add a graph: a package ``graphs/<name>/`` exporting ``SPEC`` and ``graph``, its name in
``GRAPHS`` below, an entry in ``langgraph.json``, and a persona YAML that uses it.
"""

from __future__ import annotations

import importlib
from typing import Any

from personas.kernel.graphspec import GraphSpec

#: Every graph, by name -> its package. Explicit, so an import never adds one.
GRAPHS: dict[str, str] = {
    "lead_magnet": "graphs.lead_magnet",
    "segment_sync": "graphs.segment_sync",
    "campaign_report": "graphs.campaign_report",
    "chat": "graphs.chat",
}

__all__ = ["GRAPHS", "build", "graph_spec"]


def graph_spec(name: str) -> GraphSpec:
    """The ``SPEC`` of graph ``name``; KeyError (naming the graphs) for an unknown one."""
    if name not in GRAPHS:
        raise KeyError(f"unknown graph {name!r}; graphs: {', '.join(GRAPHS)}")
    spec = importlib.import_module(GRAPHS[name]).SPEC
    if not isinstance(spec, GraphSpec):
        raise TypeError(f"{GRAPHS[name]}.SPEC is not a GraphSpec")
    return spec


_COMPILED: dict[str, Any] = {}


def build(name: str, checkpointer: Any = None) -> Any:
    """The compiled graph ``name`` with ``checkpointer`` (None: none, as LangGraph Server wants).

    Each graph is compiled once per process; a run gets a cheap copy bound to its checkpointer.
    """
    compiled = _COMPILED.get(name)
    if compiled is None:
        compiled = _COMPILED[name] = graph_spec(name).build(None)
    return compiled if checkpointer is None else compiled.copy({"checkpointer": checkpointer})
