"""The request pipeline: every call to ``/api/...`` or ``/client/...`` goes through it once.

    route -> auth (key, OAuth token or public key) -> revision -> scopes -> rate limit
    -> query and body validated against the spec -> idempotency replay -> due jobs applied
    -> handler (a domain's, else the generic engine) -> (response checked against the spec when
    ``validate_responses``) -> state flushed -> request logged

Fault injection happens before it, at the door (``_server.py``).
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from klaviyo_toolkit.catalog import Operation

from . import _checks
from ._context import Auth, Ctx, Reply
from ._generic import generic
from ._jsonapi import Fields, SandboxError, bad_request
from ._keys import Keys
from ._limits import ServerLimits, retry_after_header
from ._routes import Routes
from ._services import Services

Json = dict[str, Any]
Handler = Callable[[Ctx], Reply]


@dataclass
class RequestLog:
    """Recent requests (``/sandbox/requests``) and calls per operation."""

    requests: collections.deque[Json] = field(default_factory=lambda: collections.deque(maxlen=5000))
    call_counts: collections.Counter[str] = field(default_factory=collections.Counter)

    def record(self, method: str, path: str, operation_id: str, status: int, ms: float) -> None:
        self.requests.append({"method": method, "path": path, "operation_id": operation_id, "status": status, "ms": ms})

    def clear(self) -> None:
        self.requests.clear()
        self.call_counts.clear()


class Pipeline:
    """Serves Klaviyo API requests for one sandbox (see module docstring)."""

    def __init__(
        self,
        *,
        routes: Routes,
        services: Services,
        fields: Fields,
        handlers: Mapping[str, Handler],
        keys: Keys,
        token_auth: Callable[[str], Auth],
        limits: ServerLimits,
        log: RequestLog,
        validate_responses: bool = False,
    ) -> None:
        self.routes = routes
        self.services = services
        self.fields = fields
        self.handlers = dict(handlers)
        self.keys = keys
        self.token_auth = token_auth
        self.limits = limits
        self.log = log
        self.validate_responses = validate_responses
        #: Held while a handler runs (and by ``Sandbox.reset``): one request changes state at a time.
        self.lock = threading.RLock()

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        raw_body: bytes,
        base_url: str,
        form: dict[str, Any] | None = None,
    ) -> Reply:
        """Serve one Klaviyo API request (synchronous core of the ASGI endpoint)."""
        started = time.perf_counter()
        op_id = "?"
        reply: Reply
        try:
            op, params = self.routes.route(method, path)
            op_id = op.operation_id
            reply = self._serve(op, params, method, query, headers, raw_body, base_url, form)
        except SandboxError as exc:
            reply = Reply(exc.status, exc.body(), dict(exc.headers))
        finally:
            self.log.call_counts[op_id] += 1
        self.log.record(method, path, op_id, reply.status, round((time.perf_counter() - started) * 1000, 2))
        return reply

    def _serve(
        self,
        op: Operation,
        params: dict[str, str],
        method: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        raw_body: bytes,
        base_url: str,
        form: dict[str, Any] | None,
    ) -> Reply:
        auth = _checks.authenticate(self.keys, self.token_auth, op, headers, query)
        _checks.check_revision(headers)
        _checks.check_scopes(op, auth)
        svc = self.services
        verdict = self.limits.check(auth.name, op.operation_id, op.rate_limit, svc.clock.monotonic())
        if not verdict.allowed:
            raise SandboxError(
                429,
                "throttled",
                "Request was throttled.",
                f"Request was throttled ({verdict.window} limit of {verdict.limit} for {op.operation_id}). "
                f"Expected available in {retry_after_header(verdict.retry_after)} seconds.",
                headers={
                    "Retry-After": retry_after_header(verdict.retry_after),
                    "RateLimit-Limit": str(verdict.limit),
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": retry_after_header(verdict.retry_after),
                },
            )
        _checks.check_query(op, query)
        body = _parse_body(op, method, raw_body, form)
        _checks.check_body(self.routes.schemas, op, body)
        idem = headers.get("idempotency-key")
        with self.lock, svc.store.lock:
            if idem:
                stored = svc.store.value("idempotency", {}).get(idem)
                if stored and stored["operation"] == op.operation_id:
                    return Reply(stored["status"], stored["body"], {"x-klaviyo-idempotent-replay": "true"})
            svc.run_due_jobs()
            ctx = Ctx(svc, self.routes, self.fields, op, params, dict(query), body, base_url, auth, form, dict(headers))
            reply = self.handlers.get(op.operation_id, generic)(ctx)
            if idem and reply.status < 300:
                svc.store.mutable("idempotency", dict)[idem] = {
                    "operation": op.operation_id,
                    "status": reply.status,
                    "body": reply.body,
                }
            svc.store.flush()
        reply.headers.setdefault("RateLimit-Limit", str(verdict.limit))
        reply.headers.setdefault("RateLimit-Remaining", str(verdict.remaining))
        if self.validate_responses and reply.body is not None:
            self._check_response(op, reply)
        return reply

    def _check_response(self, op: Operation, reply: Reply) -> None:
        schemas = self.routes.schemas
        name = schemas.response_name(op)
        if not name:
            return
        errors = list(schemas.errors(name, reply.body))
        if errors:
            best = jsonschema.exceptions.best_match(errors)
            where = "/" + "/".join(str(p) for p in best.absolute_path)
            raise SandboxError(
                500,
                "sandbox_nonconforming",
                "Sandbox response does not conform.",
                f"{op.operation_id} response breaks {name} at {where}: {best.message[:300]}",
            )


def _parse_body(op: Operation, method: str, raw_body: bytes, form: dict[str, Any] | None) -> Any:
    if raw_body and form is None:
        try:
            return json.loads(raw_body)
        except ValueError as exc:
            raise bad_request(f"The request body is not valid JSON: {exc}.", pointer="/") from None
    if op.body is not None and op.body.get("root") != "form" and method in ("POST", "PATCH"):
        raise bad_request("A JSON:API request body is required.", pointer="/data")
    return None
