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
import types
from collections.abc import Mapping
from typing import Any

from personas.kernel.graphspec import GraphSpec

#: Every graph, by name -> its package. Explicit, so an import never adds one.
GRAPHS: dict[str, str] = {
    "lead_magnet": "graphs.lead_magnet",
    "segment_sync": "graphs.segment_sync",
    "campaign_report": "graphs.campaign_report",
    "chat": "graphs.chat",
}

__all__ = ["GRAPHS", "GraphPackage", "build", "graph_spec", "lazy_package"]


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


class GraphPackage(types.ModuleType):
    """A graph package that imports LangGraph only when its graph is built.

    Reading a package's ``SPEC`` (``personas list`` validates every persona against its graph's)
    must not import LangGraph and LangChain, so a package's ``__init__`` holds only light modules
    (settings, input model, operations, render) and its ``graph`` attribute, the graph compiled
    without a checkpointer that ``langgraph.json`` serves, is compiled on first use. Other names of
    its ``graph.py`` come on first use too (``lazy`` names them).

    That submodule is also called ``graph``: importing it makes Python set the package's ``graph``
    to the module, which this class ignores (the module stays in ``sys.modules``), so
    ``package.graph`` is always the compiled graph, as it was when packages compiled it eagerly.
    """

    lazy: Mapping[str, str] = {}

    @property
    def graph(self) -> Any:
        compiled = self.__dict__.get("_compiled")
        if compiled is None:
            compiled = self.__dict__["_compiled"] = self.__dict__["SPEC"].build(None)
        return compiled

    @graph.setter
    def graph(self, value: Any) -> None:
        if not isinstance(value, types.ModuleType):
            self.__dict__["_compiled"] = value

    def __getattr__(self, name: str) -> Any:
        module = self.__dict__.get("lazy", {}).get(name)
        if module is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, self.__name__), name)
        self.__dict__[name] = value
        return value


def lazy_package(name: str, lazy: Mapping[str, str]) -> None:
    """Make the package ``name`` a :class:`GraphPackage` whose ``lazy`` names (name -> relative
    module) load on first use; call it at the end of the package's ``__init__``."""
    import sys

    module = sys.modules[name]
    module.__dict__["lazy"] = dict(lazy)
    module.__class__ = GraphPackage
