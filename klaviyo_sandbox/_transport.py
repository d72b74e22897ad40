"""httpx transports that run the sandbox app in-process: async (ASGI) and sync (via a loop thread).

httpx's own ``ASGITransport`` is async-only; ``SyncASGITransport`` runs the app on an event loop of
the calling thread (one per thread, kept for reuse), so the synchronous ``KlaviyoClient`` talks to
the sandbox with real HTTP semantics, no socket and no hand-off between threads. Called from a
thread that already runs a loop, it uses one shared background loop instead. Both transports call
the app with the ASGI scope ``ASGITransport`` would build, but directly (a fifth less time a call).
A connection the app "drops" (fault injection) surfaces as httpx's ``RemoteProtocolError``, as it
would over a network. The client's read timeout applies too (httpx's ``ASGITransport`` has none):
an answer slower than it raises ``httpx.ReadTimeout`` once the app is done with the request, which
it finishes as a server does when its client gave up (the work is done, the answer lost); nothing
outlives the call.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx

from ._faults import DroppedConnection

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()
_local = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="sandbox-asgi-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


async def _answer(app: Any, request: httpx.Request, body: bytes) -> Answer:
    """``request`` served by the ASGI ``app`` as a server would: status, headers and whole body.

    The app is called directly (the scope httpx's ``ASGITransport`` would build, without its second
    request object and task per call); an answer that took longer than the request's read timeout
    raises ``httpx.ReadTimeout`` once the app is done, and an injected dropped connection raises
    ``httpx.RemoteProtocolError``.
    """
    url = request.url
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "headers": [(k.lower(), v) for k, v in request.headers.raw],
        "scheme": url.scheme,
        "path": url.path,
        "raw_path": url.raw_path.split(b"?")[0],
        "query_string": url.query,
        "server": (url.host, url.port),
        "client": ("127.0.0.1", 123),
        "root_path": "",
    }
    read = False
    complete = asyncio.Event()
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = []
    parts: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read:  # the body was read: the next message is the client leaving, once the answer is sent
            await complete.wait()
            return {"type": "http.disconnect"}
        read = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            if message.get("body") and request.method != "HEAD":
                parts.append(message["body"])
            if not message.get("more_body", False):
                complete.set()

    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await app(scope, receive, send)
    except DroppedConnection as exc:
        raise httpx.RemoteProtocolError(
            f"Server disconnected without sending a response ({exc})", request=request
        ) from None
    timeout = _read_timeout(request)
    if timeout is not None and loop.time() - started > timeout:  # too slow: the work is done, the answer lost
        raise httpx.ReadTimeout(f"No answer within the read timeout of {timeout} s", request=request)
    if status is None or not complete.is_set():
        raise httpx.RemoteProtocolError("Server disconnected without sending a complete response", request=request)
    return status, headers, b"".join(parts)


class AsyncSandboxTransport(httpx.AsyncBaseTransport):
    """Asynchronous transport over an ASGI app, for ``httpx.AsyncClient`` / ``AsyncKlaviyoClient``: see
    :func:`_answer` (timeouts, dropped connections). The app runs as a task of its own, finished even
    if the caller is cancelled meanwhile."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        task = asyncio.ensure_future(_answer(self.app, request, body))
        await asyncio.wait({task})
        status, headers, content = task.result()
        return httpx.Response(status, headers=headers, content=content, request=request)


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout")
    value = timeout.get("read") if isinstance(timeout, dict) else None
    return float(value) if value is not None else None


class SyncASGITransport(httpx.BaseTransport):
    """Synchronous transport over an ASGI app, for ``httpx.Client`` / ``KlaviyoClient``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # plain synchronous code: run on this thread's own loop
            status, headers, content = _thread_loop().run_until_complete(_answer(self.app, request, body))
        else:  # inside a running loop (sync client used from async code): hand off to the shared one
            future = asyncio.run_coroutine_threadsafe(_answer(self.app, request, body), _background_loop())
            status, headers, content = future.result()
        return httpx.Response(status, headers=headers, content=content, request=request)
