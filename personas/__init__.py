"""Personas: marketing agents defined in YAML, run as LangGraph graphs over the Klaviyo toolkit.

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
    "run_persona": "personas.runtime",
    "arun_persona": "personas.runtime",
    "build_context": "personas.runtime",
    "PersonaContext": "personas.runtime",
    "RunResult": "personas.runtime",
    "load_persona": "personas.loader",
    "list_personas": "personas.loader",
    "PersonaSpec": "personas.spec",
    "ScriptedChatModel": "personas.models",
}

__all__ = [
    "PersonaContext",
    "PersonaSpec",
    "RunResult",
    "ScriptedChatModel",
    "arun_persona",
    "build_context",
    "list_personas",
    "load_persona",
    "run_persona",
]

if TYPE_CHECKING:
    from .loader import list_personas, load_persona
    from .models import ScriptedChatModel
    from .runtime import PersonaContext, RunResult, arun_persona, build_context, run_persona
    from .spec import PersonaSpec


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'personas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
