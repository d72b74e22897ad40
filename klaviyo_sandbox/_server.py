"""The sandbox as an ASGI app: Klaviyo's paths through the pipeline, with fault injection at the
door; ``/sandbox/...`` inspection and ``/oauth/...`` endpoints beside them.

Requests are routed on the raw path, as sent: a percent-encoded id (``%2F``) stays in its segment
(``Routes.route`` decodes segments after matching), and no path, however odd, falls through to a
framework's plain-text 404: every answer is a JSON:API document.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ._context import Reply
from ._faults import NO_FAULT, DroppedConnection
from ._inspect import inspect_endpoint
from ._jsonapi import SandboxError, bad_request
from ._limits import retry_after_header
from ._oauth import oauth_endpoint

if TYPE_CHECKING:
    from ._app import Sandbox


SandboxApp = Callable[[Any, Any, Any], Awaitable[None]]
#: How often a served sandbox applies due work on its own (webhook deliveries, jobs, scheduled sends).
TICK_SECONDS = 0.2


def build_app(sb: Sandbox) -> SandboxApp:
    """The ASGI app of ``sb``: Klaviyo's paths, ``/sandbox/...`` and ``/oauth/...``."""

    async def endpoint(request: Request) -> Response:
        path = request.url.path
        if path.startswith("/sandbox"):
            return await inspect_endpoint(sb, request)
        if path.startswith("/oauth/"):
            return _oauth_fault(sb, request) or await oauth_endpoint(sb.store, sb.clock, request)
        return await serve(sb, request)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # served on a port: due work (webhook deliveries, jobs) runs on time
            ticker = None
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    ticker = asyncio.ensure_future(_tick_forever(sb))
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if ticker is not None:
                        ticker.cancel()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        response = await endpoint(Request(scope, receive))
        await response(scope, receive, send)

    return app


async def _tick_forever(sb: Sandbox, every: float = TICK_SECONDS) -> None:
    """Apply due work without waiting for a request (what Klaviyo's own timers do), while served."""
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(sb.tick)
        except Exception:  # a broken runner must not stop the server; the next request ticks again
            pass


def _oauth_fault(sb: Sandbox, request: Request) -> Response | None:
    """An injected error or drop for ``/oauth/token`` or ``/oauth/revoke`` (``oauth.token``,
    ``oauth.revoke``), only when :class:`Faults` names that operation: settings for every operation
    leave the OAuth endpoints alone, as they always did. Nothing is applied to a faulted request."""
    op_id = "oauth." + request.url.path.rstrip("/").rsplit("/", 1)[-1]
    if op_id not in sb.faults.operations:
        return None
    fault = sb.faults.draw(op_id)
    path = request.url.path
    if fault["drop"]:
        sb.log.record(request.method, path, op_id, None, 0, fault="dropped")
        return _DroppedResponse(op_id)
    if fault["status"]:
        sb.log.record(request.method, path, op_id, int(fault["status"]), 0, fault="error")
        body = {"error": "server_error", "error_description": "Injected server error (sandbox fault injection)."}
        return JSONResponse(body, status_code=int(fault["status"]))
    return None


def raw_path(request: Request) -> str:
    """The request's path as sent (percent-encoding kept), for routing."""
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.split(b"?", 1)[0].decode("latin-1")
    return quote(request.url.path, safe="/!$&'()*+,;=:@-._~")


async def serve(sb: Sandbox, request: Request) -> Response:
    path = raw_path(request)
    method = request.method
    op_id = ""
    try:
        op_id = sb.routes.route(method, path)[0].operation_id
    except SandboxError:
        pass
    faults = sb.faults  # the settings that drew this call's fault hold it, though others replace them meanwhile
    fault = faults.draw(op_id) if op_id else dict(NO_FAULT)
    if fault["delay"]:
        await request.body()  # received first: a slow server still has the request if its client gives up
        await faults.hold(fault["delay"])
    if fault["drop"]:
        sb.log.record(method, path, op_id, None, 0, fault="dropped")
        return _DroppedResponse(op_id)
    if fault["storm"]:
        err = SandboxError(
            429,
            "throttled",
            "Request was throttled.",
            "Injected 429 storm.",
            headers={"Retry-After": retry_after_header(sb.faults.storm_retry_after)},
        )
        sb.log.record(method, path, op_id, 429, 0, fault="storm")
        return _json(429, err.body(), err.headers)
    if fault["status"]:
        err = SandboxError(
            int(fault["status"]),
            "server_error",
            "Internal server error.",
            "Injected server error (sandbox fault injection).",
        )
        sb.log.record(method, path, op_id, int(fault["status"]), 0, fault="error")
        return _json(err.status, err.body(), {})
    lost = "lost_response" if fault["lost"] else None
    try:
        form, raw = await _read_body(sb, request, method, path)
        query = dict(request.query_params)
        headers = {k.lower(): v for k, v in request.headers.items()}
        base_url = str(request.base_url).rstrip("/")
        reply = (
            await asyncio.to_thread(sb.handle, method, path, query, headers, raw, base_url, form, fault=lost)
            if sb.store.persistent
            else sb.handle(method, path, query, headers, raw, base_url, form, fault=lost)
        )
    except SandboxError as exc:
        reply = sb.pipeline.refused(method, path, dict(request.query_params), exc, fault=lost)
    except Exception as exc:  # a sandbox bug: still a JSON:API document, never a bare text page
        err = SandboxError(500, "server_error", "Internal server error.", f"Sandbox error: {type(exc).__name__}")
        sb.log.record(method, path, op_id or "?", 500, 0, fault=lost)
        reply = Reply(500, err.body(), {})
    if lost:  # handled and committed above; now the answer never arrives
        return _DroppedResponse(op_id)
    reply.headers.setdefault("x-klaviyo-req-id", str(uuid.uuid4()))
    return _json(reply.status, reply.body, reply.headers)


_JSON_TYPES = ("application/vnd.api+json", "application/json")


async def _read_body(sb: Sandbox, request: Request, method: str, path: str) -> tuple[dict[str, Any] | None, bytes]:
    """``(form, raw body)``: a multipart form for the operations that take one (file uploads), else bytes.

    A body in a media type the operation does not take, or with no Content-Type at all, is Klaviyo's
    (Django REST framework's) 415; a multipart body that cannot be parsed is a 400.
    """
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        op = sb.routes.route(method, path)[0]
    except SandboxError:
        return None, await request.body()
    takes_form = op.body is not None and op.body.get("root") == "form"
    raw = b"" if takes_form and media == "multipart/form-data" else await request.body()
    if raw and op.body is not None and not media:  # DRF reads no body without a media type
        raise SandboxError(415, "unsupported_media_type", "Unsupported media type.",
                           'Unsupported media type "" in request: the request has a body but no Content-Type; '
                           "send Content-Type: application/vnd.api+json.")
    if raw and op.body is not None and media and media not in _JSON_TYPES and not takes_form:
        raise SandboxError(415, "unsupported_media_type", "Unsupported media type.",
                           f'Unsupported media type "{media}" in request; send application/vnd.api+json.')
    if not takes_form or media != "multipart/form-data":
        return None, raw
    try:
        parsed = await request.form()
    except Exception:  # no boundary, a broken part: the request, not the sandbox
        raise bad_request("The multipart/form-data body cannot be parsed.", pointer="/") from None
    form: dict[str, Any] = {}
    for key, value in parsed.items():
        if hasattr(value, "read"):
            data = await value.read()
            form[key] = {"filename": getattr(value, "filename", None), "size": len(data),
                         "base64": base64.b64encode(data).decode()}
        else:
            form[key] = value
    return form, b""


def _json(status: int, body: Any, headers: Mapping[str, str]) -> Response:
    if status == 204 or body is None:
        return Response(status_code=status if body is not None or status != 200 else 204, headers=dict(headers))
    return JSONResponse(body, status_code=status, headers=dict(headers), media_type="application/vnd.api+json")


class _DroppedResponse(Response):
    """Starts a response, then breaks off: the client sees the connection drop mid-answer (for a
    dropped request and a lost response alike; only the request log knows which it was)."""

    def __init__(self, operation_id: str) -> None:
        super().__init__(status_code=200)
        self.operation_id = operation_id

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/vnd.api+json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"data": ', "more_body": True})
        raise DroppedConnection(f"fault injection dropped the connection for {self.operation_id}")
