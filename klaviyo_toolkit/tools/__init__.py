"""Klaviyo operations as LangChain tools: toolkit, tool class, strict schemas, compaction."""

from ._compact import compact_document
from ._strict import check_strict_schema, strict_schema
from ._tool import GuardResult, KlaviyoTool, PendingCall, ToolGuard, describe_operation
from ._toolkit import CLIENT_SCOPE, MAX_TOOLS_PER_REQUEST, KlaviyoToolkit

__all__ = [
    "CLIENT_SCOPE",
    "MAX_TOOLS_PER_REQUEST",
    "GuardResult",
    "KlaviyoTool",
    "KlaviyoToolkit",
    "PendingCall",
    "ToolGuard",
    "check_strict_schema",
    "compact_document",
    "describe_operation",
    "strict_schema",
]
