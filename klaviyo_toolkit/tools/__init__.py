"""Klaviyo operations as LangChain tools: the call pipeline, toolkit, tool class, strict schemas, compaction."""

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
)
from ._strict import check_strict_schema, strict_schema
from ._tool import KlaviyoTool, describe_operation
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
