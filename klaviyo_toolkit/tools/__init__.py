"""Klaviyo operations as LangChain tools: the call pipeline, toolkit, tool class, strict schemas, compaction.

The tool class (``KlaviyoTool``, and with it LangChain) loads on first use, when a tool is built:
selecting operations, running calls through the pipeline and listing what a persona may use
need no LangChain (``personas list`` and ``personas tools list`` stay off it).
"""

from typing import TYPE_CHECKING, Any

from ._compact import compact_document
from ._pipeline import (
    Call,
    CallEvent,
    CallStopped,
    Guard,
    Guarded,
    Note,
    Observer,
    Outcome,
    Sent,
    Stopped,
    StopStatus,
    Toolset,
    fingerprint,
    tool_module,
)
from ._strict import check_strict_schema, strict_schema
from ._toolkit import CLIENT_SCOPE, MAX_TOOLS_PER_REQUEST, KlaviyoToolkit

__all__ = [
    "CLIENT_SCOPE",
    "MAX_TOOLS_PER_REQUEST",
    "Call",
    "CallEvent",
    "CallStopped",
    "Guard",
    "Guarded",
    "KlaviyoTool",
    "KlaviyoToolkit",
    "Note",
    "Observer",
    "Outcome",
    "Sent",
    "StopStatus",
    "Stopped",
    "Toolset",
    "check_strict_schema",
    "compact_document",
    "describe_operation",
    "fingerprint",
    "strict_schema",
]

if TYPE_CHECKING:
    from ._tool import KlaviyoTool, describe_operation


def __getattr__(name: str) -> Any:
    if name in ("KlaviyoTool", "describe_operation"):
        value = getattr(tool_module(), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
