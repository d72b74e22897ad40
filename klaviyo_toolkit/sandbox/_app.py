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

import asyncio
import base64
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
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..catalog import Operation, load_catalog
from ..clock import Clock, SystemClock
from ..filters import check_filter
from ._context import HANDLERS, Auth, Ctx, Reply, iso
from ._faults import DroppedConnection, Faults
from ._generic import generic, shape_of
from ._jsonapi import SandboxError, bad_request, sparse
from ._limits import ServerLimits, retry_after_header
from ._schemas import SchemaIndex, schema_index
from ._store import Linkage, Resource, Store

__all__ = ["DEMO_KEY", "PUBLIC_KEY", "Sandbox"]

DEMO_KEY = "pk_sandbox_demo"
PUBLIC_KEY = "SbxPub"
ALL_SCOPES = "*"
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
        from ..ratelimit import RateLimiter

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
        from ..client import KlaviyoClient

        options.setdefault("base_url", self.BASE_URL)
        options.setdefault("public_api_key", PUBLIC_KEY)
        options.setdefault("rate_limiter", self.client_limiter)
        return KlaviyoClient(api_key=api_key, transport=self.transport(), **options)

    def async_client(self, api_key: str = DEMO_KEY, **options: Any) -> Any:
        from ..client import AsyncKlaviyoClient

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
        path = self._self_paths.get(res.type)
        if not path:
            return f"{base_url}/api/{res.type}s/{res.id}/"
        return base_url + path.replace("{id}", res.id).replace("{job_id}", res.id) + "/"

    def item_schema_for(self, rtype: str) -> Json | None:
        path = self._self_paths.get(rtype)
        if not path:
            return None
        op = next((o for m, _, o in self._routes if m == "GET" and o.path == path), None)
        return self.schemas.response_item(op)[0] if op else None

    def render(self, res: Resource, ctx: Ctx, item_schema: Json | None = None) -> Json:
        schema = item_schema
        if schema is None:
            item, _ = self.schemas.response_item(ctx.op)
            schema = item if item and res.type in self.schemas.types_of(item) else self.item_schema_for(res.type)
        schema = schema or {}
        now = _dt_now(self.clock)
        attr_schema = self.schemas.prop(schema, "attributes")
        props: Mapping[str, Any] = attr_schema.get("properties", {})
        required = set(attr_schema.get("required", []))
        additional = set(self._additional_fields(ctx.op, res.type))
        wanted = set(ctx.list_param(f"additional-fields[{res.type}]") or [])
        attrs: Json = {}
        for key, sub in props.items():
            if key in additional and key not in wanted:
                continue
            if key in res.attributes:
                attrs[key] = res.attributes[key]
            elif key in required or not _nullable(self.schemas.resolve(sub)):
                attrs[key] = self.schemas.synthesize(sub, now)
            else:
                attrs[key] = None
        fields = ctx.list_param(f"fields[{res.type}]")
        attrs = sparse(attrs, fields)
        out: Json = {"type": res.type, "id": res.id}
        if "attributes" in schema.get("properties", {}) or attrs:
            out["attributes"] = attrs
        rel_schema = self.schemas.prop(schema, "relationships")
        rel_props = rel_schema.get("properties", {})
        if rel_props:
            self_url = self.self_link(res, ctx.base_url)
            include = set(ctx.list_param("include") or [])
            rels: Json = {}
            for name, sub in rel_props.items():
                entry: Json = {"links": {"self": f"{self_url}relationships/{name}/", "related": f"{self_url}{name}/"}}
                data_schema = self.schemas.prop(sub, "data")
                is_many = data_schema.get("type") == "array" or "items" in data_schema
                stored = name in res.relationships
                if name in include or (stored and not is_many):
                    links = self.related(res, name)
                    if is_many:
                        entry["data"] = [{"type": t, "id": i} for t, i in links]
                    elif links:
                        entry["data"] = {"type": links[0][0], "id": links[0][1]}
                    else:
                        entry["data"] = None if _nullable(data_schema) else self.schemas.synthesize(data_schema, now)
                for key in self.schemas.resolve(sub).get("required", []):
                    if key == "data" and "data" not in entry:
                        entry["data"] = [] if is_many else self.schemas.synthesize(data_schema, now)
                rels[name] = entry
            out["relationships"] = rels
        if "links" in schema.get("properties", {}):
            out["links"] = {"self": self.self_link(res, ctx.base_url)}
        return out

    def _additional_fields(self, op: Operation, rtype: str) -> list[str]:
        for arg in op.args:
            if arg["wire"] == f"additional-fields[{rtype}]":
                return list(arg["shape"]["schema"].get("items", {}).get("enum", []))
        return {"profile": ["subscriptions", "predictive_analytics"]}.get(rtype, [])

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

    def authenticate(self, op: Operation, headers: Mapping[str, str], query: Mapping[str, str]) -> Auth:
        if op.client_side:
            company = query.get("company_id")
            if not company:
                raise bad_request("company_id (your public API key) is required.", parameter="company_id")
            if company != PUBLIC_KEY:
                raise SandboxError(
                    400,
                    "invalid",
                    "Invalid input.",
                    f"{company!r} is not a valid public API key.",
                    parameter="company_id",
                )
            return Auth("public", company, frozenset())
        header = headers.get("authorization", "")
        if not header:
            raise SandboxError(
                401,
                "not_authenticated",
                "Authentication credentials were not provided.",
                "Missing Authorization header; send 'Klaviyo-API-Key <private key>'.",
            )
        if header.startswith("Klaviyo-API-Key "):
            key = header[len("Klaviyo-API-Key ") :].strip()
            info = self.keys().get(key)
            if info is None or info.get("revoked"):
                raise SandboxError(
                    401,
                    "not_authenticated",
                    "Incorrect authentication credentials.",
                    "The private API key is not valid" + (" (revoked)." if info else "."),
                )
            scopes = info["scopes"]
            return Auth("key", key, frozenset(["*"]) if scopes == ALL_SCOPES else frozenset(scopes))
        if header.startswith("Bearer "):
            from ._oauth import token_auth

            return token_auth(self, header[len("Bearer ") :].strip())
        raise SandboxError(
            401,
            "not_authenticated",
            "Incorrect authentication credentials.",
            "Authorization must be 'Klaviyo-API-Key <key>' or 'Bearer <token>'.",
        )

    def check_scopes(self, op: Operation, auth: Auth) -> None:
        if auth.kind == "public" or "*" in auth.scopes:
            return
        missing = []
        for scope in op.scopes:
            resource, _, level = scope.partition(":")
            if scope not in auth.scopes and not (level == "read" and f"{resource}:write" in auth.scopes):
                missing.append(scope)
        if missing:
            raise SandboxError(
                403,
                "permission_denied",
                "You do not have permission to perform this action.",
                f"This API key is missing required scopes: {', '.join(missing)}.",
            )

    def check_query(self, op: Operation, query: Mapping[str, str]) -> None:
        params = {a["wire"]: a for a in op.args if a["in"] == "query"}
        for key, value in query.items():
            spec = params.get(key)
            if spec is None:
                raise bad_request(
                    f"'{key}' is not a valid query parameter for this endpoint"
                    + (f"; allowed: {', '.join(params)}." if params else "."),
                    parameter=key,
                )
            schema = spec["shape"]["schema"]
            if key == "filter" and op.filters:
                problems = check_filter(value, op.filters)
                if problems:
                    raise bad_request(problems[0], parameter="filter")
            elif schema.get("type") == "array":
                enum = schema.get("items", {}).get("enum")
                for item in value.split(","):
                    if enum and item not in enum:
                        raise bad_request(
                            f"'{item}' is not a valid value for {key}; allowed: {', '.join(enum)}.", parameter=key
                        )
            elif "enum" in schema and value not in schema["enum"]:
                raise bad_request(
                    f"'{value}' is not a valid value for {key}; allowed: {', '.join(map(str, schema['enum']))}.",
                    parameter=key,
                )
            elif schema.get("type") == "integer":
                try:
                    number = int(value)
                except ValueError:
                    raise bad_request(f"{key} must be an integer.", parameter=key) from None
                if ("minimum" in schema and number < schema["minimum"]) or (
                    "maximum" in schema and number > schema["maximum"]
                ):
                    raise bad_request(
                        f"{key} must be between {schema.get('minimum')} and {schema.get('maximum')}.", parameter=key
                    )
        for key, spec in params.items():
            if spec.get("required") and key not in query:
                raise bad_request(f"The query parameter '{key}' is required.", parameter=key)

    def check_body(self, op: Operation, body: Any) -> None:
        name = op.record.get("request_schema")
        if not name or op.body is None or op.body.get("root") == "form":
            return
        import jsonschema

        errors = list(self.schemas.errors(name, body))
        if errors:
            best = jsonschema.exceptions.best_match(errors)
            path = [str(p) for p in best.absolute_path]
            if best.validator == "required" and isinstance(best.instance, dict):  # point at the missing field
                path += [p for p in best.validator_value if p not in best.instance][:1]
            raise bad_request(_friendly(best), pointer="/" + "/".join(path) if path else "/data")
        unknown = self.schemas.unknown_field(name, body)
        if unknown:
            pointer, field, owner = unknown
            raise bad_request(f"'{field}' is not a valid field for the resource '{owner}'.", pointer=pointer)

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
            auth = self.authenticate(op, headers, query)
            revision = headers.get("revision")
            if not revision:
                raise bad_request("The 'revision' header is required, e.g. revision: 2026-07-15.", parameter="revision")
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(\.\w+)?", revision):
                raise bad_request(
                    f"Invalid revision {revision!r}; use YYYY-MM-DD, e.g. 2026-07-15.", parameter="revision"
                )
            self.check_scopes(op, auth)
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
            self.check_query(op, query)
            body: Any = None
            if raw_body and form is None:
                try:
                    body = json.loads(raw_body)
                except ValueError as exc:
                    raise bad_request(f"The request body is not valid JSON: {exc}.", pointer="/") from None
            elif op.body is not None and op.body.get("root") != "form" and method in ("POST", "PATCH"):
                raise bad_request("A JSON:API request body is required.", pointer="/data")
            self.check_body(op, body)
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
        async def endpoint(request: Request) -> Response:
            path = request.url.path
            if path.startswith("/sandbox"):
                from ._inspect import inspect_endpoint

                return await inspect_endpoint(self, request)
            if path.startswith("/oauth/"):
                from ._oauth import oauth_endpoint

                return await oauth_endpoint(self, request)
            return await self._serve(request)

        methods = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"]
        return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])

    async def _serve(self, request: Request) -> Response:
        path = request.url.path
        method = request.method
        op_id = ""
        try:
            op_id = self.route(method, path)[0].operation_id
        except SandboxError:
            pass
        fault = self.faults.draw(op_id) if op_id else {"drop": False, "status": None, "storm": False, "delay": 0.0}
        if fault["delay"]:
            await request.body()  # received first: a slow server still has the request if its client gives up
            await asyncio.sleep(fault["delay"])
        if fault["drop"]:
            return _DroppedResponse(op_id)
        if fault["storm"]:
            err = SandboxError(
                429,
                "throttled",
                "Request was throttled.",
                "Injected 429 storm.",
                headers={"Retry-After": retry_after_header(self.faults.storm_retry_after)},
            )
            self.requests.append({"method": method, "path": path, "operation_id": op_id, "status": 429, "ms": 0})
            return _json(429, err.body(), err.headers)
        if fault["status"]:
            err = SandboxError(
                int(fault["status"]),
                "server_error",
                "Internal server error.",
                "Injected server error (sandbox fault injection).",
            )
            self.requests.append(
                {"method": method, "path": path, "operation_id": op_id, "status": int(fault["status"]), "ms": 0}
            )
            return _json(err.status, err.body(), {})
        form: dict[str, Any] | None = None
        raw = b""
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            parsed = await request.form()
            form = {}
            for key, value in parsed.items():
                if hasattr(value, "read"):
                    data = await value.read()
                    form[key] = {
                        "filename": getattr(value, "filename", None),
                        "size": len(data),
                        "base64": base64.b64encode(data).decode(),
                    }
                else:
                    form[key] = value
        else:
            raw = await request.body()
        query = dict(request.query_params)
        headers = {k.lower(): v for k, v in request.headers.items()}
        base_url = str(request.base_url).rstrip("/")
        reply = (
            await asyncio.to_thread(self.handle, method, path, query, headers, raw, base_url, form)
            if self.store.persistent
            else self.handle(method, path, query, headers, raw, base_url, form)
        )
        reply.headers.setdefault("x-klaviyo-req-id", str(uuid.uuid4()))
        return _json(reply.status, reply.body, reply.headers)

    def close(self) -> None:
        self.store.close()


def _json(status: int, body: Any, headers: Mapping[str, str]) -> Response:
    if status == 204 or body is None:
        return Response(status_code=status if body is not None or status != 200 else 204, headers=dict(headers))
    return JSONResponse(body, status_code=status, headers=dict(headers), media_type="application/vnd.api+json")


class _DroppedResponse(Response):
    """Starts a response, then breaks off: the client sees the connection drop mid-answer."""

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


def _nullable(schema: Mapping[str, Any]) -> bool:
    typ = schema.get("type")
    if isinstance(typ, list) and "null" in typ:
        return True
    return any(s == {"type": "null"} for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def _dt_now(clock: Clock) -> Any:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(clock.time(), _dt.UTC)


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


def _friendly(error: Any) -> str:
    message = str(error.message)
    if error.validator == "required":
        return message.replace("is a required property", "is required")
    if error.validator == "additionalProperties":
        return message
    if len(message) > 300:
        message = message[:300] + "…"
    return message


#: (resource type, relationship) -> function listing linkages that are computed, not stored.
RELATED: dict[tuple[str, str], Callable[[Sandbox, Resource], list[Linkage]]] = {}
