"""The Sandbox: a stateful Klaviyo emulator as an ASGI app, usable in-process or as a server.

Each request to ``/api/...`` or ``/client/...`` goes through one pipeline:

    route -> faults -> auth (key, OAuth token or public key) -> revision -> scopes -> rate limit
    -> query and body validated against the spec -> idempotency replay -> handler -> (response
    checked against the spec when ``validate_responses``) -> state flushed

``/sandbox/...`` holds inspection endpoints (outbox, reset, faults, keys, requests) and
``/oauth/...`` the OAuth endpoints.

Example::

    sandbox = Sandbox(seed=7)
    client = sandbox.client()                 # a KlaviyoClient wired in-process, key pk_sandbox_demo
    client.call("get_lists")
"""

from __future__ import annotations

import collections
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from klaviyo_toolkit.catalog import Operation, load_catalog
from klaviyo_toolkit.clock import Clock, SystemClock

from . import _checks, _render
from ._checks import ALL_SCOPES, DEMO_KEY, PUBLIC_KEY
from ._context import HANDLERS, Ctx, Reply, iso
from ._faults import Faults
from ._generic import generic, shape_of
from ._jsonapi import SandboxError, bad_request
from ._limits import ServerLimits, retry_after_header
from ._schemas import SchemaIndex, schema_index
from ._store import Linkage, Resource, Store

__all__ = ["DEMO_KEY", "PUBLIC_KEY", "Sandbox"]

Json = dict[str, Any]
Hook = Callable[["Sandbox", Any], None]
#: Domain modules subscribe to sandbox events here ("event_created", "profile_added_to_list", ...).
HOOKS: dict[str, list[Hook]] = collections.defaultdict(list)
#: Job type -> function applying a bulk job when it is due.
JOB_RUNNERS: dict[str, Callable[[Sandbox, Resource], None]] = {}
#: Called after construction to seed demo data (set by the seed module).
SEEDERS: list[Callable[[Sandbox, int], None]] = []


def on(event: str) -> Callable[[Hook], Hook]:
    def register(fn: Hook) -> Hook:
        HOOKS[event].append(fn)
        return fn

    return register


def _load_domains() -> None:
    """Import the modules that register handlers, hooks, job runners and seeders."""
    from . import domains  # noqa: F401


class Sandbox:
    """A stateful, spec-faithful Klaviyo emulator (see module docstring).

    Args:
        seed: seeds demo data and ids, so runs are reproducible.
        state: SQLite file to keep state in (survives restarts); memory when None.
        demo_data: load the seeded demo account when the state is empty.
        rate_limit_factor: scales every rate limit; None turns limits off.
        clock: time source (a ManualClock lets tests move time; jobs and limits follow it).
        faults: fault injection settings.
        validate_responses: check every response against the spec (tests turn this on).
        job_seconds: base time a bulk job takes to complete (plus 1 ms per item).
    """

    def __init__(
        self,
        *,
        seed: int = 42,
        state: str | Path | None = None,
        demo_data: bool = True,
        rate_limit_factor: float | None = 1.0,
        clock: Clock | None = None,
        faults: Faults | None = None,
        validate_responses: bool = False,
        job_seconds: float = 0.5,
    ) -> None:
        _load_domains()
        self.seed = seed
        self.clock: Clock = clock or SystemClock()
        self.catalog = load_catalog()
        self.schemas: SchemaIndex = schema_index()
        self.store = Store(str(state) if state else None, seed=seed)
        self.limits = ServerLimits(rate_limit_factor)
        from klaviyo_toolkit.ratelimit import RateLimiter

        #: The limiter of clients made by ``client()``: the same factor as the sandbox's limits, so
        #: they respect them exactly (and wait for nothing when limits are off).
        self.client_limiter = RateLimiter(self.clock, factor=rate_limit_factor)
        self.faults = faults or Faults()
        self.validate_responses = validate_responses
        self.job_seconds = job_seconds
        self.requests: collections.deque[Json] = collections.deque(maxlen=5000)
        self.call_counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.RLock()
        self._routes = self._compile_routes()
        self._collection_types = self._find_collection_types()
        self._self_paths = self._find_self_paths()
        if demo_data and self.store.is_empty():
            self.seed_demo(seed)
        self.app = self._build_app()

    # -- construction ------------------------------------------------------------------------
    def _compile_routes(self) -> list[tuple[str, re.Pattern[str], Operation]]:
        routes = []
        for op in self.catalog:
            pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(op.path)) + "/?$"
            routes.append((op.method, re.compile(pattern), op))
        routes.sort(key=lambda r: (-r[2].path.count("/"), r[2].path.count("{"), r[2].path))
        return routes

    def _find_collection_types(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for op in self.catalog:
            kind, segs = shape_of(op.path)
            if kind == "item" and op.method in ("GET", "PATCH"):
                item, _ = self.schemas.response_item(op)
                types = self.schemas.types_of(item)
                if types:
                    out.setdefault(segs[0], types[0])
        return out

    def _find_self_paths(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for op in self.catalog:
            kind, _segs = shape_of(op.path)
            if kind == "item" and op.method == "GET" and op.path.startswith("/api/"):
                item, _ = self.schemas.response_item(op)
                for t in self.schemas.types_of(item):
                    out.setdefault(t, op.path)
        return out

    def collection_type(self, segment: str) -> str | None:
        return self._collection_types.get(segment)

    def primary_type(self, op: Operation) -> str | None:
        item, _ = self.schemas.response_item(op)
        types = self.schemas.types_of(item)
        if types:
            return types[0]
        _kind, segs = shape_of(op.path)
        return self._collection_types.get(segs[0]) if segs else None

    def request_path(self, op: Operation, params: Mapping[str, str]) -> str:
        path = op.path
        for key, value in params.items():
            path = path.replace("{" + key + "}", value)
        return path

    def reset(self, seed: int | None = None, demo_data: bool = True) -> None:
        """Start over: empty state, limits and request log; demo data again unless told not to."""
        with self._lock, self.store.lock:
            self.seed = self.seed if seed is None else int(seed)
            self.store.clear()
            self.store.reseed(self.seed)
            self.limits.reset()
            self.requests.clear()
            self.call_counts.clear()
            if demo_data:
                self.seed_demo(self.seed)
            self.store.flush()

    def seed_demo(self, seed: int) -> None:
        for seeder in SEEDERS:
            seeder(self, seed)
        self.store.flush()

    # -- keys ----------------------------------------------------------------------------------
    def keys(self) -> dict[str, Json]:
        keys: dict[str, Json] = self.store.mutable("keys", dict)
        keys.setdefault(DEMO_KEY, {"name": "demo", "scopes": ALL_SCOPES, "revoked": False})
        return keys

    def create_key(self, scopes: Iterable[str] | str, name: str | None = None) -> str:
        """A new private key with exactly ``scopes`` (or ``"*"``)."""
        key = "pk_sbx_" + uuid.UUID(int=self.store.rng.getrandbits(128)).hex[:24]
        granted: Any = ALL_SCOPES if scopes == ALL_SCOPES else sorted(scopes)
        self.keys()[key] = {"name": name or key[:12], "scopes": granted, "revoked": False}
        self.store.flush()
        return key

    def revoke_key(self, key: str) -> None:
        if key in self.keys():
            self.keys()[key]["revoked"] = True
            self.store.flush()

    # -- in-process clients -----------------------------------------------------------------
    BASE_URL = "http://sandbox.klaviyo.test"

    def transport(self) -> Any:
        from ._transport import SyncASGITransport

        return SyncASGITransport(self.app)

    def async_transport(self) -> Any:
        from ._transport import AsyncSandboxTransport

        return AsyncSandboxTransport(self.app)

    def client(self, api_key: str = DEMO_KEY, **options: Any) -> Any:
        """A KlaviyoClient talking to this sandbox in-process (real HTTP semantics, no socket)."""
        from klaviyo_toolkit.client import KlaviyoClient

        options.setdefault("base_url", self.BASE_URL)
        options.setdefault("public_api_key", PUBLIC_KEY)
        options.setdefault("rate_limiter", self.client_limiter)
        return KlaviyoClient(api_key=api_key, transport=self.transport(), **options)

    def async_client(self, api_key: str = DEMO_KEY, **options: Any) -> Any:
        from klaviyo_toolkit.client import AsyncKlaviyoClient

        options.setdefault("base_url", self.BASE_URL)
        options.setdefault("public_api_key", PUBLIC_KEY)
        options.setdefault("rate_limiter", self.client_limiter)
        return AsyncKlaviyoClient(api_key=api_key, transport=self.async_transport(), **options)

    # -- relationships ---------------------------------------------------------------------
    def rel_target_types(self, rtype: str, rel: str) -> list[str]:
        path = self._self_paths.get(rtype)
        if not path:
            return []
        op = next((o for m, _, o in self._routes if m == "GET" and o.path == path), None)
        if op is None:
            return []
        item, _ = self.schemas.response_item(op)
        rel_schema = self.schemas.prop(item or {}, "relationships", rel, "data")
        rel_schema = self.schemas.resolve(rel_schema.get("items")) if "items" in rel_schema else rel_schema
        return self.schemas.types_of(rel_schema)

    def related(self, res: Resource, rel: str) -> list[Linkage]:
        """Linkages of ``res.rel``: stored on it, or found on the other side (``profile.lists``)."""
        rel_names = {rel, rel.replace("_", "-"), rel.replace("-", "_")}
        for name in rel_names:
            if name in res.relationships:
                return res.linked(name)
        resolver = RELATED.get((res.type, rel))
        if resolver is not None:
            return resolver(self, res)
        targets = self.rel_target_types(res.type, rel) or [rel.rstrip("s").replace("_", "-")]
        found: list[Linkage] = []
        for ttype in targets:
            for other in self.store.iter(ttype):
                for value in other.relationships.values():
                    items = value if isinstance(value, list) else ([value] if value else [])
                    if (res.type, res.id) in items:
                        found.append((other.type, other.id))
                        break
        return found

    def link(self, parent: Resource, rel: str, links: Iterable[Linkage]) -> None:
        current = parent.linked(rel)
        have = set(current)
        for link in links:
            if link not in have:
                current.append(link)
                have.add(link)
        parent.relationships[rel] = current
        parent.updated = self.clock.time()
        self.store.put(parent)

    def unlink(self, parent: Resource, rel: str, links: Iterable[Linkage]) -> None:
        drop = set(links)
        parent.relationships[rel] = [link for link in parent.linked(rel) if link not in drop]
        self.store.put(parent)

    def set_links(self, parent: Resource, rel: str, links: list[Linkage], *, many: bool = True) -> None:
        parent.relationships[rel] = list(links) if many else (links[0] if links else None)
        self.store.put(parent)

    def forget(self, res: Resource) -> None:
        """Delete a resource and every linkage to it."""
        self.store.delete(res.type, res.id)
        target = (res.type, res.id)
        for rtype in self.store.types():
            for other in self.store.iter(rtype):
                changed = False
                for name, value in list(other.relationships.items()):
                    if isinstance(value, list) and target in value:
                        other.relationships[name] = [v for v in value if v != target]
                        changed = True
                    elif value == target:
                        other.relationships[name] = None
                        changed = True
                if changed:
                    self.store.put(other)

    # -- events bus, outbox, jobs -----------------------------------------------------------
    def emit(self, event: str, payload: Any) -> None:
        for hook in HOOKS.get(event, []):
            hook(self, payload)

    def outbox_add(self, **message: Any) -> Resource:
        """Put a message in the outbox (``/sandbox/outbox``); returns the stored message."""
        now = self.clock.time()
        mid = self.store.new_id("outbox-message", now)
        message.setdefault("status", "scheduled")
        message.setdefault("created", iso(now))
        res = Resource("outbox-message", mid, message, {}, now, now)
        self.store.put(res)
        return res

    def outbox(self, **filters: Any) -> list[Json]:
        out = []
        for res in self.store.iter("outbox-message"):
            if all(res.attributes.get(k) == v for k, v in filters.items() if v is not None):
                out.append({"id": res.id, **res.attributes})
        return out

    def create_job(self, ctx: Ctx, job_type: str) -> Resource:
        """A bulk job: stored now, applied by its runner once due (time and size based)."""
        attrs = dict(ctx.attrs)
        total = _count_items(ctx.body)
        now = ctx.now
        job = Resource(
            job_type,
            ctx.store.new_id(job_type, now),
            {
                "status": "queued",
                "created_at": iso(now),
                "total_count": total,
                "completed_count": 0,
                "failed_count": 0,
                "completed_at": None,
                "expires_at": None,
                "started_at": None,
            },
            {},
            now,
            now,
            {"body": ctx.body, "due": now + self.job_seconds + 0.001 * total, "operation": ctx.op.operation_id},
        )
        for name, value in (ctx.data.get("relationships") or {}).items() if isinstance(ctx.data, dict) else []:
            links = ctx.rel(name)
            job.relationships[name] = links if isinstance(value.get("data"), list) else (links[0] if links else None)
        del attrs
        ctx.store.put(job)
        return job

    def tick(self) -> None:
        """Apply every bulk job that is due (called before each request and by ``/sandbox/tick``)."""
        now = self.clock.time()
        for rtype in self.store.types():
            if not rtype.endswith("-job"):
                continue
            for job in self.store.iter(rtype):
                if job.attributes.get("status") in ("queued", "processing") and job.private.get("due", 0) <= now:
                    self.run_job(job)

    def run_job(self, job: Resource) -> None:
        runner = JOB_RUNNERS.get(job.private.get("operation", "")) or JOB_RUNNERS.get(job.type)
        job.attributes["started_at"] = job.attributes.get("started_at") or iso(self.clock.time())
        try:
            if runner is not None:
                runner(self, job)
            job.attributes.setdefault("completed_count", job.attributes.get("total_count", 0))
            if (
                job.attributes.get("completed_count", 0) == 0
                and not job.attributes.get("failed_count")
                and not job.attributes.get("skipped_count")
            ):
                job.attributes["completed_count"] = job.attributes.get("total_count", 0)
            job.attributes["status"] = "complete"
        except SandboxError as exc:
            job.attributes["status"] = "cancelled"
            job.private["errors"] = [exc.body()["errors"][0]]
            job.attributes["failed_count"] = job.attributes.get("total_count", 0)
        job.attributes["completed_at"] = iso(self.clock.time())
        self.store.put(job)

    # -- rendering ---------------------------------------------------------------------------
    def self_link(self, res: Resource, base_url: str) -> str:
        return _render.self_link(self, res, base_url)

    def item_schema_for(self, rtype: str) -> Json | None:
        return _render.item_schema_for(self, rtype)

    def render(self, res: Resource, ctx: Ctx, item_schema: Json | None = None) -> Json:
        return _render.render(self, res, ctx, item_schema)

    # -- the pipeline --------------------------------------------------------------------------
    def route(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        allowed = []
        for m, pattern, op in self._routes:
            match = pattern.match(path)
            if match:
                if m == method:
                    return op, match.groupdict()
                allowed.append(m)
        if allowed:
            raise SandboxError(
                405,
                "method_not_allowed",
                "Method not allowed.",
                f"{method} is not allowed on {path}; allowed: {', '.join(sorted(set(allowed)))}.",
            )
        raise SandboxError(404, "not_found", "Not found.", f"No Klaviyo endpoint at {path}.")

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
            op, params = self.route(method, path)
            op_id = op.operation_id
            auth = _checks.authenticate(self, op, headers, query)
            revision = headers.get("revision")
            if not revision:
                raise bad_request("The 'revision' header is required, e.g. revision: 2026-07-15.", parameter="revision")
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(\.\w+)?", revision):
                raise bad_request(
                    f"Invalid revision {revision!r}; use YYYY-MM-DD, e.g. 2026-07-15.", parameter="revision"
                )
            _checks.check_scopes(op, auth)
            verdict = self.limits.check(auth.name, op.operation_id, op.rate_limit, self.clock.monotonic())
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
            body: Any = None
            if raw_body and form is None:
                try:
                    body = json.loads(raw_body)
                except ValueError as exc:
                    raise bad_request(f"The request body is not valid JSON: {exc}.", pointer="/") from None
            elif op.body is not None and op.body.get("root") != "form" and method in ("POST", "PATCH"):
                raise bad_request("A JSON:API request body is required.", pointer="/data")
            _checks.check_body(self, op, body)
            idem = headers.get("idempotency-key")
            with self._lock, self.store.lock:
                if idem:
                    stored = self.store.value("idempotency", {}).get(idem)
                    if stored and stored["operation"] == op.operation_id:
                        return Reply(stored["status"], stored["body"], {"x-klaviyo-idempotent-replay": "true"})
                self.tick()
                ctx = Ctx(self, op, params, dict(query), body, base_url, auth, form, dict(headers))
                handler = HANDLERS.get(op.operation_id, generic)
                reply = handler(ctx)
                if idem and reply.status < 300:
                    self.store.mutable("idempotency", dict)[idem] = {
                        "operation": op.operation_id,
                        "status": reply.status,
                        "body": reply.body,
                    }
                self.store.flush()
            reply.headers.setdefault("RateLimit-Limit", str(verdict.limit))
            reply.headers.setdefault("RateLimit-Remaining", str(verdict.remaining))
            if self.validate_responses and reply.body is not None:
                self._check_response(op, reply)
        except SandboxError as exc:
            reply = Reply(exc.status, exc.body(), dict(exc.headers))
        finally:
            self.call_counts[op_id] += 1
        self.requests.append(
            {
                "method": method,
                "path": path,
                "operation_id": op_id,
                "status": reply.status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
            }
        )
        return reply

    def _check_response(self, op: Operation, reply: Reply) -> None:
        name = self.schemas.response_name(op)
        if not name:
            return
        errors = list(self.schemas.errors(name, reply.body))
        if errors:
            import jsonschema

            best = jsonschema.exceptions.best_match(errors)
            where = "/" + "/".join(str(p) for p in best.absolute_path)
            raise SandboxError(
                500,
                "sandbox_nonconforming",
                "Sandbox response does not conform.",
                f"{op.operation_id} response breaks {name} at {where}: {best.message[:300]}",
            )

    # -- ASGI ------------------------------------------------------------------------------------
    def _build_app(self) -> Starlette:
        from ._server import build_app

        return build_app(self)

    def close(self) -> None:
        self.store.close()


def _count_items(body: Any) -> int:
    """Items in a bulk request: the longest list of resources found in the body."""
    best = 0

    def walk(node: Any) -> None:
        nonlocal best
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            best = max(best, len(node))
            for value in node:
                walk(value)

    walk(body)
    return best


#: (resource type, relationship) -> function listing linkages that are computed, not stored.
RELATED: dict[tuple[str, str], Callable[[Sandbox, Resource], list[Linkage]]] = {}
