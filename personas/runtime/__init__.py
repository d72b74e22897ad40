"""The persona runtime, above the graphs: load personas, assemble their context, drive runs.

- ``loader``: persona YAML files, validated against the catalog and their graph's ``SPEC``;
- ``context``: ``build_context`` (toolkit, guards, model, audit, connection);
- ``driver``: the one run driver (start, stream, pending approvals, resume, result) behind
  ``run_persona``, the CLI, the REPL and the evals.

Names load on first use, so reading personas (``personas list``) does not import what running
them needs (LangGraph, LangChain, the HTTP client).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Pending": ".driver",
    "RunDriver": ".driver",
    "RunResult": ".driver",
    "arun_persona": ".driver",
    "checkpointer": ".driver",
    "run_persona": ".driver",
    "build_context": ".context",
    "list_personas": ".loader",
    "load_persona": ".loader",
    "scan_personas": ".loader",
}

__all__ = [
    "Pending",
    "RunDriver",
    "RunResult",
    "arun_persona",
    "build_context",
    "checkpointer",
    "list_personas",
    "load_persona",
    "run_persona",
    "scan_personas",
]

if TYPE_CHECKING:
    from .context import build_context
    from .driver import Pending, RunDriver, RunResult, arun_persona, checkpointer, run_persona
    from .loader import list_personas, load_persona, scan_personas


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
