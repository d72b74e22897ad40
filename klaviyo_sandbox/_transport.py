"""httpx transports that run the sandbox app in-process: async (ASGI) and sync (via a loop thread).

httpx's own ``ASGITransport`` is async-only; ``SyncASGITransport`` runs the app on an event loop of
the calling thread (one per thread, kept for reuse), so the synchronous ``KlaviyoClient`` talks to
the sandbox with real HTTP semantics, no socket and no hand-off between threads. Called from a
thread that already runs a loop, it uses one shared background loop instead. A connection the app
"drops" (fault injection) surfaces as httpx's
``RemoteProtocolError``, as it would over a network. The client's read timeout applies too (httpx's
``ASGITransport`` has none): an answer slower than it raises ``httpx.ReadTimeout`` once the app is
done with the request, which it finishes as a server does when its client gave up (the work is
done, the answer lost); nothing outlives the call.
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


class AsyncSandboxTransport(httpx.ASGITransport):
    """``httpx.ASGITransport`` that turns an injected dropped connection into a transport error."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            task = asyncio.ensure_future(super().handle_async_request(request))
            done, _ = await asyncio.wait({task}, timeout=_read_timeout(request))
            if task in done:
                return task.result()
            await asyncio.wait({task})  # too slow: let the app finish, then drop its answer
            if not task.cancelled():
                task.exception()
            raise httpx.ReadTimeout(f"No answer within the read timeout of {_read_timeout(request)} s", request=request)
        except DroppedConnection as exc:
            raise httpx.RemoteProtocolError(
                f"Server disconnected without sending a response ({exc})", request=request
            ) from None


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout")
    value = timeout.get("read") if isinstance(timeout, dict) else None
    return float(value) if value is not None else None


class SyncASGITransport(httpx.BaseTransport):
    """Synchronous transport over an ASGI app, for ``httpx.Client`` / ``KlaviyoClient``."""

    def __init__(self, app: Any) -> None:
        self._inner = AsyncSandboxTransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def run() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            inner_request = httpx.Request(
                request.method, request.url, headers=request.headers, content=body, extensions=request.extensions
            )
            response = await self._inner.handle_async_request(inner_request)
            content = await response.aread()
            return response.status_code, response.headers.raw, content

        try:
            asyncio.get_running_loop()
        except RuntimeError:  # plain synchronous code: run on this thread's own loop
            status, headers, content = _thread_loop().run_until_complete(run())
        else:  # inside a running loop (sync client used from async code): hand off to the shared one
            future = asyncio.run_coroutine_threadsafe(run(), _background_loop())
            status, headers, content = future.result()
        return httpx.Response(status, headers=headers, content=content, request=request)
