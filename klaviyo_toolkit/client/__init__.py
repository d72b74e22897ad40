"""HTTP clients for Klaviyo's API (sync and async) over httpx, with an injectable transport."""

from ._client import DEFAULT_BASE_URL, AsyncKlaviyoClient, KlaviyoClient
from ._config import NO_RETRIES, RetryPolicy, Timeout
from ._response import CallRecord, KlaviyoResponse, flatten_resource

__all__ = [
    "DEFAULT_BASE_URL",
    "NO_RETRIES",
    "AsyncKlaviyoClient",
    "CallRecord",
    "KlaviyoClient",
    "KlaviyoResponse",
    "RetryPolicy",
    "Timeout",
    "flatten_resource",
]
