"""Personas: marketing agents defined in YAML, run as LangGraph graphs over the Klaviyo toolkit.

Layers, bottom to top (a test keeps imports pointing down):
``personas.kernel`` (spec, config, context, governance, models) <- ``graphs`` <- ``personas.runtime``
(loader, context building, the run driver) <- ``evals`` <- ``personas.cli`` (CLI, REPL, demo).

Trigger a graph from code (sync or async)::

    from personas import run_persona
    result = run_persona("lead-magnet-sequencer", {"input": event}, sandbox=sandbox)
    result.state["decision"], result.state["outcome"]

Names are imported lazily so ``import personas`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "run_persona": "personas.runtime.driver",
    "arun_persona": "personas.runtime.driver",
    "RunDriver": "personas.runtime.driver",
    "RunResult": "personas.runtime.driver",
    "build_context": "personas.runtime.context",
    "load_persona": "personas.runtime.loader",
    "list_personas": "personas.runtime.loader",
    "PersonaContext": "personas.kernel.context",
    "PersonaSpec": "personas.kernel.spec",
    "Config": "personas.kernel.config",
    "ScriptedChatModel": "personas.kernel.models",
}

__all__ = [
    "Config",
    "PersonaContext",
    "PersonaSpec",
    "RunDriver",
    "RunResult",
    "ScriptedChatModel",
    "arun_persona",
    "build_context",
    "list_personas",
    "load_persona",
    "run_persona",
]

if TYPE_CHECKING:
    from .kernel.config import Config
    from .kernel.context import PersonaContext
    from .kernel.models import ScriptedChatModel
    from .kernel.spec import PersonaSpec
    from .runtime.context import build_context
    from .runtime.driver import RunDriver, RunResult, arun_persona, run_persona
    from .runtime.loader import list_personas, load_persona


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'personas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
