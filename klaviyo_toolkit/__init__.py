"""klaviyo_toolkit: every Klaviyo API operation as a typed LangChain tool, over one httpx client.

Public names are imported lazily (on first attribute access), so ``import klaviyo_toolkit`` costs
almost nothing and LangChain is loaded only when tools are built.

Example::

    from klaviyo_toolkit import KlaviyoClient, KlaviyoToolkit
    kit = KlaviyoToolkit(KlaviyoClient(api_key="pk_..."), scopes=["profiles:read"])
    tools = kit.get_tools()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "CLEAR": "klaviyo_toolkit._clear",
    "KlaviyoClient": "klaviyo_toolkit.client",
    "AsyncKlaviyoClient": "klaviyo_toolkit.client",
    "KlaviyoResponse": "klaviyo_toolkit.client",
    "CallRecord": "klaviyo_toolkit.client",
    "RetryPolicy": "klaviyo_toolkit.client",
    "Timeout": "klaviyo_toolkit.client",
    "KlaviyoToolkit": "klaviyo_toolkit.tools",
    "KlaviyoTool": "klaviyo_toolkit.tools",
    "Toolset": "klaviyo_toolkit.tools",
    "Call": "klaviyo_toolkit.tools",
    "Sent": "klaviyo_toolkit.tools",
    "Stopped": "klaviyo_toolkit.tools",
    "Catalog": "klaviyo_toolkit.catalog",
    "Operation": "klaviyo_toolkit.catalog",
    "load_catalog": "klaviyo_toolkit.catalog",
    "RateLimiter": "klaviyo_toolkit.ratelimit",
    "ManualClock": "klaviyo_toolkit.clock",
    "SystemClock": "klaviyo_toolkit.clock",
    "ApiKey": "klaviyo_toolkit.auth",
    "BearerToken": "klaviyo_toolkit.auth",
    "KlaviyoError": "klaviyo_toolkit.errors",
    "KlaviyoAPIError": "klaviyo_toolkit.errors",
    "InvalidArgumentError": "klaviyo_toolkit.errors",
    "ToolkitUsageError": "klaviyo_toolkit.errors",
}

# Spelled out (not derived from _EXPORTS) so tools can read it; a test keeps the two in step.
__all__ = [
    "CLEAR",
    "ApiKey",
    "AsyncKlaviyoClient",
    "BearerToken",
    "Call",
    "CallRecord",
    "Catalog",
    "InvalidArgumentError",
    "KlaviyoAPIError",
    "KlaviyoClient",
    "KlaviyoError",
    "KlaviyoResponse",
    "KlaviyoTool",
    "KlaviyoToolkit",
    "ManualClock",
    "Operation",
    "RateLimiter",
    "RetryPolicy",
    "Sent",
    "Stopped",
    "SystemClock",
    "Timeout",
    "ToolkitUsageError",
    "Toolset",
    "__version__",
    "load_catalog",
]

if TYPE_CHECKING:
    from ._clear import CLEAR
    from .auth import ApiKey, BearerToken
    from .catalog import Catalog, Operation, load_catalog
    from .client import AsyncKlaviyoClient, CallRecord, KlaviyoClient, KlaviyoResponse, RetryPolicy, Timeout
    from .clock import ManualClock, SystemClock
    from .errors import InvalidArgumentError, KlaviyoAPIError, KlaviyoError, ToolkitUsageError
    from .ratelimit import RateLimiter
    from .tools import Call, KlaviyoTool, KlaviyoToolkit, Sent, Stopped, Toolset


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'klaviyo_toolkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
