"""A scripted fake server for client tests: answers in order, records every request.

Example::

    server = Scripted(reply(503), reply(200, {"data": []}))
    client = KlaviyoClient(api_key="pk_...", transport=server.transport(), clock=ManualClock())
    client.call("get_lists")
    assert len(server.requests) == 2
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx

Step = Callable[[httpx.Request], httpx.Response]


def reply(status: int = 200, body: Any = None, headers: Mapping[str, str] | None = None) -> Step:
    """A step answering ``status`` with ``body`` as JSON:API (a fresh response each time)."""

    def step(request: httpx.Request) -> httpx.Response:
        all_headers = {"x-klaviyo-req-id": "req-scripted", **(headers or {})}
        if body is None:
            return httpx.Response(status, headers=all_headers)
        if isinstance(body, str):
            return httpx.Response(status, headers={"content-type": "text/html", **all_headers}, text=body)
        all_headers.setdefault("content-type", "application/vnd.api+json")
        return httpx.Response(status, headers=all_headers, content=json.dumps(body).encode())

    return step


def fail(exc_type: type[httpx.TransportError], message: str = "boom") -> Step:
    """A step where the transport fails (no response), as a dropped connection or timeout would."""

    def step(request: httpx.Request) -> httpx.Response:
        raise exc_type(message, request=request)

    return step


def error_body(status: int, code: str = "error", detail: str = "failed", **extra: Any) -> dict[str, Any]:
    """A JSON:API error document like Klaviyo's."""
    return {"errors": [{"id": "e1", "status": status, "code": code, "title": "Title", "detail": detail, **extra}]}


class Scripted:
    """Answers each request with the next step; the last step repeats once the script runs out."""

    def __init__(self, *steps: Step) -> None:
        if not steps:
            steps = (reply(200, {"data": []}),)
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        step = self.steps[min(len(self.requests), len(self.steps) - 1)]
        self.requests.append(request)
        return step(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def nothing_sent(request: httpx.Request) -> httpx.Response:
    """A handler for tests where any request at all is a failure."""
    raise AssertionError(f"no HTTP request expected, got {request.method} {request.url}")
