"""What a handler gets (Ctx) and returns (Reply).

A handler is a function ``(ctx) -> Reply`` that a domain declares for operation ids; operations
without one are served by the generic engine (``_generic.py``). ``ctx`` carries the validated
request, the sandbox's ``Services`` (``ctx.svc``: store, clock, relations, jobs, outbox, events) and
the spec's view of the API (``ctx.routes``, ``ctx.schemas``). Handlers answer with ``ctx.one(res)``,
``ctx.many(resources)`` (filter, sort and keyset paging from the query applied), ``ctx.accepted()`` or
``ctx.no_content()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlencode

from klaviyo_toolkit.catalog import Operation
from klaviyo_toolkit.filters import FilterSyntaxError, parse_filter

from ._jsonapi import Fields, SandboxError, bad_request, iso, not_found
from ._paging import Atom, Key, Order, cursor_scope, decode_cursor, encode_cursor, natural_ranks, page_of
from ._render import list_param, render
from ._routes import Routes
from ._schemas import SchemaIndex
from ._services import Services
from ._store import Linkage, Resource, Store

T = TypeVar("T")
Json = dict[str, Any]


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Auth:
    """Who is calling: a private key (with scopes), an OAuth token, or the client API's public key."""

    kind: str  # "key" | "oauth" | "public"
    name: str
    scopes: frozenset[str]


@dataclass
class Ctx:
    """One request to one operation, and what serving it needs (see module docstring)."""

    svc: Services
    routes: Routes
    fields: Fields
    op: Operation
    path_params: dict[str, str]
    query: dict[str, str]
    body: Any
    base_url: str
    auth: Auth
    form: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    # -- state and time --------------------------------------------------------------------
    @property
    def store(self) -> Store:
        return self.svc.store

    @property
    def schemas(self) -> SchemaIndex:
        return self.routes.schemas

    @property
    def now(self) -> float:
        return self.svc.clock.time()

    @property
    def now_iso(self) -> str:
        return iso(self.now)

    # -- request -----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.path_params.get("id") or self.path_params.get("job_id") or ""

    @property
    def data(self) -> Any:
        return self.body.get("data") if isinstance(self.body, dict) else None

    @property
    def attrs(self) -> Json:
        data = self.data
        return dict(data.get("attributes") or {}) if isinstance(data, dict) else {}

    def rel(self, name: str, source: Mapping[str, Any] | None = None) -> list[Linkage]:
        """Linkages given in the request body's ``relationships.<name>`` (or of ``source``)."""
        node = source if source is not None else self.data
        rels = node.get("relationships") if isinstance(node, Mapping) else None
        data = (rels or {}).get(name, {}).get("data") if isinstance(rels, Mapping) else None
        if data is None:
            return []
        items = data if isinstance(data, list) else [data]
        return [(str(d["type"]), str(d["id"])) for d in items if isinstance(d, Mapping)]

    def linkages(self) -> list[Linkage]:
        """A relationship endpoint's body: ``{"data": [{type, id}, ...]}`` (or one)."""
        data = self.data
        items = data if isinstance(data, list) else ([data] if isinstance(data, dict) else [])
        return [(str(d["type"]), str(d["id"])) for d in items if "id" in d]

    def check_body_id(self, rid: str) -> None:
        """An update's body must name the resource of its URL: ``data.id`` that differs is a 409."""
        body_id = self.data.get("id") if isinstance(self.data, dict) else None
        if body_id is not None and str(body_id) != rid:
            raise SandboxError(
                409,
                "conflict",
                "Conflict.",
                f"The body's data.id {body_id!r} does not match the URL's id {rid!r}.",
                pointer="/data/id",
            )

    def get(self, rtype: str, rid: str | None = None) -> Resource:
        rid = rid if rid is not None else self.id
        res = self.store.get(rtype, rid)
        if res is None:
            raise not_found(rtype, rid)
        return res

    def list_param(self, name: str) -> list[str] | None:
        return list_param(self.query, name)

    def create_job(self, job_type: str) -> Resource:
        """A bulk job for this request (applied when due; see ``_jobs.py``), linked as the body links it;
        a 400 when the operation's limit of jobs pending at once (``Operation.max_pending_jobs``) is reached."""
        relationships: dict[str, Any] = {}
        data = self.data
        for name, value in (data.get("relationships") or {}).items() if isinstance(data, dict) else []:
            links = self.rel(name)
            relationships[name] = links if isinstance(value.get("data"), list) else (links[0] if links else None)
        return self.svc.jobs.create(
            job_type,
            body=self.body,
            operation=self.op.operation_id,
            relationships=relationships,
            max_pending=self.op.max_pending_jobs,
        )

    # -- responses ---------------------------------------------------------------------------
    def one(self, res: Resource | None, status: int | None = None) -> Reply:
        status = status or self.schemas.success_status(self.op)
        if res is None:
            return Reply(status, {"data": None, "links": {"self": self.self_url()}})
        body: Json = {"data": self.render(res), "links": {"self": self.self_url()}}
        included = self.included([res])
        if included is not None:
            body["included"] = included
        return Reply(status, body)

    def many(
        self,
        resources: Iterable[Resource],
        *,
        filtered: bool = False,
        page_size: int | None = None,
        first_by: Callable[[Resource], Atom] | None = None,
    ) -> Reply:
        """A page of ``resources``; ``page_size`` fixes the size where the operation has no page[size],
        ``first_by`` what their natural order goes by first (see ``order``)."""
        items = list(resources)
        if not filtered:
            items = self.apply_filter(items)
        page, links = self.paginate(items, page_size, first_by=first_by)
        body: Json = {"data": [self.render(r) for r in page], "links": links}
        included = self.included(page)
        if included is not None:
            body["included"] = included
        return Reply(self.schemas.success_status(self.op), body)

    def paginate(
        self, items: list[T], page_size: int | None = None, *, first_by: Callable[[T], Atom] | None = None
    ) -> tuple[list[T], Json]:
        """The page of ``items`` (in ``order``) the request's cursor points at, with its self, next
        and prev links; the cursors are keyset cursors (``_paging.py``)."""
        size = page_size or self.page_size()
        scope = cursor_scope(self.op.operation_id, self.path_params, self.query, size)
        order = self.order(first_by)
        cursor = self.query.get("page[cursor]") or self.query.get("page_cursor")
        page = page_of(items, order, size, decode_cursor(cursor, scope, order) if cursor else None)
        links: Json = {"self": self.self_url()}
        if page.next is not None:
            links["next"] = self.self_url(cursor=encode_cursor(page.next, scope))
        elif page.first_next:
            links["next"] = self.self_url()
        if page.prev is not None:
            links["prev"] = self.self_url(cursor=encode_cursor(page.prev, scope))
        return page.items, links

    def order(self, first_by: Callable[[T], Atom] | None = None) -> Order:
        """The total order items are paged in: by the query's ``sort`` (``-field`` descending, missing
        values last either way, ties in the order stored either way, as a stable sort leaves them);
        without one, by ``first_by`` (if given), then the order they were first stored in, then id.
        Items are resources or ``(type, id)`` linkages (which a ``sort`` cannot read: as stored)."""
        sort = self.query.get("sort")
        if sort:
            name, descending = sort.lstrip("-"), sort.startswith("-")

            def by_sort(items: Sequence[T]) -> list[Key]:
                # Missing values last either way (a descending order runs the flag round too); ties in
                # the order stored, either way (the negated number runs back under a descending order).
                value, ids = self.fields.sort_value, [_identity(item) for item in items]
                sign = -1 if descending else 1
                keys: list[Key] = []
                for item, n, (_, rid) in zip(items, self.store.ordinals(ids), ids, strict=True):
                    v = value(item, name) if isinstance(item, Resource) else None
                    keys.append([int((v is None) != descending), v, None if n is None else sign * n, rid])
                return keys

            return Order(by_sort, 4, descending)
        ordinals = self.store.ordinals

        def natural(items: Sequence[T]) -> list[Key]:
            ids = [_identity(item) for item in items]
            stored = ordinals(ids)
            if first_by is None:
                return [[n, rid] for n, (_, rid) in zip(stored, ids, strict=True)]
            return [[first_by(item), n, ids[i][1]] for i, (item, n) in enumerate(zip(items, stored, strict=True))]

        return Order(natural, 3 if first_by else 2, ranks=natural_ranks)

    def accepted(self) -> Reply:
        return Reply(self.schemas.success_status(self.op), None)

    def no_content(self) -> Reply:
        return Reply(204, None)

    # -- query helpers -----------------------------------------------------------------------
    def apply_filter(self, items: list[Resource]) -> list[Resource]:
        text = self.query.get("filter")
        if not text:
            return items
        try:
            expr = parse_filter(text)
        except FilterSyntaxError as exc:
            raise bad_request(str(exc), parameter="filter") from None
        return [r for r in items if self.fields.matches(r, expr)]

    def page_size(self) -> int:
        """Items per page: ``page[size]`` (within its schema's bounds) or its default, never more than
        the maximum the operation's description states (``Operation.max_page_size``: get_events'
        schema allows page[size]=1000, its description "a maximum of 200 events per page"); with no
        ``page[size]`` parameter, that maximum (else 20)."""
        spec = next((a for a in self.op.args if a["wire"] == "page[size]"), None)
        stated = self.op.max_page_size
        if spec is None:
            return stated or 20
        maximum = int(spec["shape"]["schema"].get("maximum", 100))
        size = self._requested_page_size(maximum, int(spec.get("default", min(20, maximum))))
        return min(size, stated) if stated else size

    def _requested_page_size(self, maximum: int, default: int) -> int:
        raw = self.query.get("page[size]")
        if raw is None:
            return default
        if not raw.isascii() or not (raw.isdigit() or (raw[:1] == "-" and raw[1:].isdigit())):
            raise bad_request("page[size] must be an integer, digits only (e.g. page[size]=20).",
                              parameter="page[size]")
        size = int(raw)
        if not 1 <= size <= maximum:
            raise bad_request(f"page[size] must be between 1 and {maximum}.", parameter="page[size]")
        return size

    def self_url(self, cursor: str | None = None) -> str:
        params = {k: v for k, v in self.query.items() if k not in ("page[cursor]", "page_cursor")}
        if cursor:
            params["page[cursor]"] = cursor
        path = self.routes.request_path(self.op, self.path_params)
        return self.base_url + path + ("?" + urlencode(params) if params else "")

    # -- rendering ---------------------------------------------------------------------------
    def render(self, res: Resource, item_schema: Json | None = None) -> Json:
        return render(
            res,
            routes=self.routes,
            related=self.svc.related,
            op=self.op,
            query=self.query,
            base_url=self.base_url,
            now=self.now,
            item_schema=item_schema,
        )

    def included(self, primaries: list[Resource]) -> list[Json] | None:
        names = self.list_param("include")
        if not names:
            return None
        seen: dict[Linkage, Json] = {}
        for res in primaries:
            for name in names:
                for rtype, rid in self.svc.related(res, name):
                    if (rtype, rid) in seen:
                        continue
                    other = self.store.get(rtype, rid)
                    if other is not None:
                        schema = self.schemas.included_item(self.op, rtype)
                        seen[(rtype, rid)] = self.render(other, schema)
        return list(seen.values())

    def error(self, status: int, code: str, detail: str, **kw: Any) -> SandboxError:
        titles = {400: "Invalid input.", 404: "Not found.", 409: "Conflict.", 403: "Forbidden."}
        return SandboxError(status, code, titles.get(status, "Error."), detail, **kw)


def _identity(item: Any) -> tuple[str, str]:
    """``(type, id)`` of a paged item: a resource's, or a linkage itself."""
    if isinstance(item, Resource):
        return item.type, item.id
    rtype, rid = item
    return str(rtype), str(rid)


__all__ = ["Auth", "Ctx", "Reply"]
