"""The request pipeline: every call to ``/api/...`` or ``/client/...`` goes through it once.

    route (raw path) -> auth (key, OAuth token or public key) -> revision -> scopes -> rate limit
    -> query and body validated against the spec, payload limits -> due work applied
    -> handler (a domain's, else the generic engine), or for a write Klaviyo applies
       asynchronously with a consistency delay: the handler on a scratch copy (errors answer at
       once), then the real write queued for later -> (response checked against the spec when
       ``validate_responses``) -> state flushed -> rate-limit headers -> request logged

Fault injection happens before it, at the door (``_server.py``). Every answer that is not a 429
carries ``RateLimit-Limit``/``-Remaining``/``-Reset``; a 429 carries ``Retry-After`` (``_limits.py``).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from klaviyo_toolkit.catalog import Operation, RateLimitSpec

from . import _checks
from ._body import parse_body
from ._context import Auth, Ctx, Reply
from ._generic import generic
from ._jobs import Jobs
from ._jsonapi import Fields, SandboxError
from ._keys import Keys
from ._limits import DEFAULT_LIMITS, ServerLimits, Verdict, quota_of
from ._outbox import Outbox
from ._partial import PARTIAL_FAILURE_HEADER, ignore_invalid_phones
from ._relations import Relations
from ._routes import Routes
from ._schemas import sparse_fields
from ._scratch import ScratchStore
from ._services import Services

Json = dict[str, Any]
Handler = Callable[[Ctx], Reply]
#: The deferred-work runner that applies a write Klaviyo documents as asynchronous.
REPLAY = "sandbox:apply-async-write"
#: Writes Klaviyo documents as asynchronous besides the 202s that are not jobs: "This endpoint
#: queues an asynchronous task which will merge data from the source profile" (Merge Profiles).
ASYNC_WRITES = frozenset({"merge_profiles"})


def is_async_write(op: Operation) -> bool:
    """A write Klaviyo accepts now and applies later: a 202 that makes no job (events, client
    subscriptions, push tokens, ...), and the merges (bulk jobs have their own time, ``job_seconds``)."""
    accepted = "202" in (op.record.get("responses") or {})
    return op.operation_id in ASYNC_WRITES or (accepted and "-jobs" not in op.path and op.method == "POST")


@dataclass
class RequestLog:
    """Recent requests (``/sandbox/requests``) and calls per operation.

    ``size`` bounds the entries kept (the oldest go first; None keeps every one, for suites that
    compare every request with what the client saw). An entry a fault touched says so in ``fault``
    (``dropped``: status None, never handled; ``storm``; ``error``; ``lost_response``: handled, the
    answer lost).
    """

    size: int | None = 5000
    requests: collections.deque[Json] = field(init=False)
    call_counts: collections.Counter[str] = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        self.requests = collections.deque(maxlen=self.size)

    def record(
        self, method: str, path: str, operation_id: str, status: int | None, ms: float, fault: str | None = None
    ) -> None:
        entry: Json = {"method": method, "path": path, "operation_id": operation_id, "status": status, "ms": ms}
        if fault:
            entry["fault"] = fault
        self.requests.append(entry)

    def clear(self) -> None:
        self.requests.clear()
        self.call_counts.clear()


class Pipeline:
    """Serves Klaviyo API requests for one sandbox (see module docstring).

    ``consistency_delay``: seconds before a write Klaviyo applies asynchronously becomes visible
    (0: at once, inside the request).
    """

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
        consistency_delay: float = 0.0,
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
        self.consistency_delay = consistency_delay
        #: Held while a handler runs (and by ``Sandbox.reset``): one request changes state at a time.
        self.lock = threading.RLock()
        services.jobs.add_runner(REPLAY, self._replay)

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        raw_body: bytes,
        base_url: str,
        form: dict[str, Any] | None = None,
        *,
        fault: str | None = None,
    ) -> Reply:
        """Serve one Klaviyo API request (synchronous core of the ASGI endpoint); ``fault`` is what
        fault injection will do to its answer, for the request log."""
        started = time.perf_counter()
        op_id = "?"
        reply: Reply
        try:
            op, params = self.routes.route(method, path)
            op_id = op.operation_id
            reply = self._serve(op, params, method, query, headers, raw_body, base_url, form)
        except SandboxError as exc:
            reply = Reply(exc.status, exc.body(), dict(exc.headers))
            if exc.status != 429 and "RateLimit-Limit" not in reply.headers:
                now = self.services.clock.time()
                reply.headers.update(self.limits.peek("account", "?unrouted", DEFAULT_LIMITS, now).headers())
        finally:
            self.log.call_counts[op_id] += 1
        self.log.record(
            method, path, op_id, reply.status, round((time.perf_counter() - started) * 1000, 2), fault=fault
        )
        return reply

    def refused(
        self, method: str, path: str, query: Mapping[str, str], exc: SandboxError, *, fault: str | None = None
    ) -> Reply:
        """The answer to a request refused before the pipeline (a body it cannot read), logged, with
        the rate-limit headers every answer carries."""
        bucket, spec = "?unrouted", DEFAULT_LIMITS
        op_id = "?"
        try:
            op = self.routes.route(method, path)[0]
            op_id = op.operation_id
            bucket, spec = _bucket(op, query)
        except SandboxError:
            pass
        reply = Reply(exc.status, exc.body(), dict(exc.headers))
        reply.headers.update(self.limits.peek("account", bucket, spec, self.services.clock.time()).headers())
        self.log.call_counts[op_id] += 1
        self.log.record(method, path, op_id, exc.status, 0.0, fault=fault)
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
        svc = self.services
        bucket, spec = _bucket(op, query)
        verdict: Verdict | None = None
        try:
            auth = _checks.authenticate(self.keys, self.token_auth, op, headers, query)
            _checks.check_revision(headers, op, self.routes.catalog.revision)
            _checks.check_scopes(op, auth)
            verdict = self.limits.check(quota_of(auth.kind, auth.name), bucket, spec, svc.clock.time())
            if not verdict.allowed:
                raise SandboxError(
                    429,
                    "throttled",
                    "Request was throttled.",
                    f"Request was throttled ({verdict.window} limit of {verdict.limit} for {bucket}). "
                    f"Expected available in {verdict.headers()['Retry-After']} seconds.",
                    headers=verdict.headers(),
                )
            _checks.check_query(op, query)
            _checks.check_payload_size(op, raw_body)
            body, ignored_phone = ignore_invalid_phones(op.operation_id, parse_body(op, method, raw_body, form))
            _checks.check_item_limits(op, body)
            _checks.check_event_strings(op, body, len(raw_body))
            _checks.check_body(self.routes.schemas, op, body)
            _checks.check_body_id(op, params, body)
            with self.lock, svc.store.lock:
                svc.run_due_jobs()
                ctx = Ctx(svc, self.routes, self.fields, op, params, dict(query), body, base_url, auth, form,
                          dict(headers))
                handler = self.handlers.get(op.operation_id, generic)
                if self.consistency_delay > 0 and is_async_write(op):
                    reply = self._accept_later(ctx, handler)
                else:
                    reply = handler(ctx)
                svc.store.flush()
        except SandboxError as exc:
            if exc.status != 429:
                now = svc.clock.time()
                state = verdict or self.limits.peek("account", bucket, spec, now)
                exc.headers.update(state.headers())
            raise
        reply.headers.update(verdict.headers())
        if ignored_phone:
            reply.headers[PARTIAL_FAILURE_HEADER] = "phone_number"
        if self.validate_responses and reply.body is not None:
            self._check_response(op, reply, query)
        return reply

    # -- writes Klaviyo applies asynchronously ----------------------------------------------------
    def _accept_later(self, ctx: Ctx, handler: Handler) -> Reply:
        """Run the write on a scratch copy (its errors are the request's), then queue the real one."""
        real = ctx.svc
        scratch = ScratchStore(real.store)
        svc = Services(
            store=scratch,
            clock=real.clock,
            outbox=Outbox(scratch, real.clock),
            jobs=Jobs(scratch, real.clock, real.jobs.seconds),
            relations=Relations(scratch, real.clock, self.routes.rel_target_types, real.relations.resolvers),
            hooks=real.hooks,
        )
        reply = handler(Ctx(svc, ctx.routes, Fields(scratch, self.fields.resolvers), ctx.op, ctx.path_params,
                            ctx.query, ctx.body, ctx.base_url, ctx.auth, ctx.form, ctx.headers))
        request = {
            "operation": ctx.op.operation_id,
            "params": ctx.path_params,
            "query": ctx.query,
            "body": ctx.body,
            "base_url": ctx.base_url,
            "auth": [ctx.auth.kind, ctx.auth.name, sorted(ctx.auth.scopes)],
            "received": ctx.now,
        }
        real.jobs.defer(REPLAY, request, ctx.now + self.consistency_delay)
        return reply

    def _replay(self, real: Services, item: Any) -> None:
        """Apply a queued asynchronous write as of when it was received (an event without a ``time``
        is dated then, not when it became visible); its failure now is silent, as Klaviyo's would be."""
        request = item.private["payload"]
        op = self.routes.catalog.get(request["operation"])
        kind, name, scopes = request["auth"]
        svc = real.at(float(request["received"]))
        ctx = Ctx(svc, self.routes, self.fields, op, dict(request["params"]), dict(request["query"]), request["body"],
                  request["base_url"], Auth(kind, name, frozenset(scopes)), None, {})
        try:
            self.handlers.get(op.operation_id, generic)(ctx)
        except SandboxError as exc:
            self.log.record("ASYNC", op.path, op.operation_id, exc.status, 0.0)

    def _check_response(self, op: Operation, reply: Reply, query: Mapping[str, str]) -> None:
        schemas = self.routes.schemas
        name = schemas.response_name(op)
        if not name:
            return
        errors = schemas.response_errors(name, reply.body, sparse_fields(query))
        if errors:
            best = jsonschema.exceptions.best_match(errors)
            where = "/" + "/".join(str(p) for p in best.absolute_path)
            raise SandboxError(
                500,
                "sandbox_nonconforming",
                "Sandbox response does not conform.",
                f"{op.operation_id} response breaks {name} at {where}: {best.message[:300]}",
            )


def _bucket(op: Operation, query: Mapping[str, str]) -> tuple[str, RateLimitSpec]:
    """The limits a call counts against: the operation's, or a documented tier's (``RateLimitTier``)."""
    for tier in op.rate_limit_tiers:
        if tier.applies(query):
            return f"{op.operation_id}|{tier.name}", tier.limits
    return op.operation_id, op.rate_limit
