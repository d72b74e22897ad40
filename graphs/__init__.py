"""The personas' LangGraph state machines: one package per graph, each exporting ``Settings`` (the
persona settings it accepts) and ``build_graph(checkpointer=None)``.

``langgraph.json`` points LangGraph Server / ``langgraph dev`` at the module-level ``graph`` of each
(compiled without a checkpointer, as the server brings its own).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from pydantic import BaseModel

GRAPHS = {
    "lead_magnet": "graphs.lead_magnet",
    "segment_sync": "graphs.segment_sync",
    "campaign_report": "graphs.campaign_report",
    "chat": "graphs.chat",
}

__all__ = ["GRAPHS", "build", "load", "settings_model"]


def load(name: str) -> ModuleType:
    if name not in GRAPHS:
        raise KeyError(f"unknown graph {name!r}; graphs: {', '.join(GRAPHS)}")
    return importlib.import_module(GRAPHS[name])


def settings_model(name: str) -> type[BaseModel]:
    model: type[BaseModel] = load(name).Settings
    return model


_COMPILED: dict[str, Any] = {}


def build(name: str, checkpointer: Any = None) -> Any:
    """The compiled graph ``name`` with ``checkpointer`` (None: none, as LangGraph Server wants).

    Each graph is compiled once per process; a run gets a cheap copy bound to its checkpointer.
    """
    compiled = _COMPILED.get(name)
    if compiled is None:
        compiled = _COMPILED[name] = load(name).build_graph(checkpointer=None)
    return compiled if checkpointer is None else compiled.copy({"checkpointer": checkpointer})
