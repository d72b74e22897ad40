"""The generic engine: serves any operation from its path shape and its spec schemas.

Shapes (after ``/api`` or ``/client``)::

    GET    /col                        list        POST   /col              create (or job/report)
    GET    /col/{id}                   get         PATCH  /col/{id}         update
    DELETE /col/{id}                   delete      GET    /col/{id}/rel     related resources
    GET    /col/{id}/relationships/rel linkages    POST|PATCH|DELETE .../relationships/rel  link edits

Domain modules replace this where Klaviyo's behaviour matters (profiles, lists, events, ...);
everything else still answers with spec-conforming documents and real persistence, and with the
uniqueness the spec's field descriptions state (``UNIQUE``): a create or update repeating a unique
name is a 400. A linkage a write gives (``relationships`` of a create or update, the body of a
relationship endpoint) must name a resource that exists, where the type is one the API stores and
serves (``GET`` of its own): otherwise a 404 pointing at its id, as Klaviyo answers and as the domains
do for the writes they handle (a to-many list of a bulk job's items is the job's to report).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._context import Ctx, Reply
from ._jsonapi import SandboxError, bad_request
from ._routes import shape_of
from ._store import Linkage, Resource

__all__ = ["UNIQUE", "generic", "shape_of"]

#: Attributes the spec's descriptions make unique: resource type -> (attribute, the attributes whose
#: values scope it; a missing one counts as the request schema's default). Klaviyo answers a repeat
#: with 400: CustomMetricCreateQueryResourceObject.name, "Names must be unique across the account.
#: Attempting to create a metric with a duplicate name will return a 400 status code" (its update
#: schema says the same); DataSourceCreateQueryResourceObject.title, "unique within the namespace"
#: (no status given: the same 400).
UNIQUE: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "custom-metric": ("name", ()),
    "data-source": ("title", ("namespace",)),
}


def generic(ctx: Ctx) -> Reply:
    op = ctx.op
    routes, svc = ctx.routes, ctx.svc
    kind, segs = shape_of(op.path)
    method = op.method
    if kind == "list" and method == "GET":
        rtype = routes.primary_type(op)
        return ctx.many(ctx.store.all(rtype) if rtype else [])
    if kind == "list" and method == "POST":
        return _create(ctx)
    if kind == "item":
        parent_type = routes.collection_type(segs[0]) or routes.primary_type(op) or ""
        if method == "GET":
            return ctx.one(ctx.get(parent_type))
        if method == "PATCH":
            return _update(ctx, ctx.get(parent_type))
        if method == "DELETE":
            res = ctx.get(parent_type)
            svc.forget(res)
            return ctx.no_content()
    if kind == "related" and method == "GET":
        parent = ctx.get(routes.collection_type(segs[0]) or "")
        links = svc.related(parent, segs[2])
        items = [r for r in (ctx.store.get(t, i) for t, i in links) if r is not None]
        _, many = ctx.schemas.response_item(op)
        if many:
            return ctx.many(items)
        if not items:
            if _nullable_data(ctx):  # the spec allows ``data: null`` (as Klaviyo answers when nothing is linked)
                return ctx.one(None)
            raise SandboxError(404, "not_found", "Not found.", f"This {parent.type} has no related {segs[2]}.")
        return ctx.one(items[0])
    if kind == "relationship":
        parent = ctx.get(routes.collection_type(segs[0]) or "")
        rel = segs[3]
        if method == "GET":
            return _linkage_reply(ctx, svc.related(parent, rel))
        if method == "POST":
            _check_exist(ctx, ctx.linkages(), "/data")
            svc.link(parent, rel, ctx.linkages())
            return ctx.no_content()
        if method == "DELETE":
            svc.unlink(parent, rel, ctx.linkages())
            return ctx.no_content()
        if method == "PATCH":
            _check_exist(ctx, ctx.linkages(), "/data")
            svc.set_links(parent, rel, ctx.linkages(), many=isinstance(ctx.data, list))
            return ctx.no_content()
    raise SandboxError(
        501, "not_implemented", "Not implemented.", f"The sandbox has no behaviour for {op.operation_id}."
    )


def _nullable_data(ctx: Ctx) -> bool:
    name = ctx.schemas.response_name(ctx.op)
    data = ctx.schemas.prop({"$ref": f"#/$defs/{name}"}, "data") if name else {}
    return {"type": "null"} in data.get("anyOf", [])


def _linkage_reply(ctx: Ctx, links: list[Linkage]) -> Reply:
    _, many = ctx.schemas.response_item(ctx.op)
    status = ctx.schemas.success_status(ctx.op)
    if not many:
        data: Any = {"type": links[0][0], "id": links[0][1]} if links else None
        return Reply(status, {"data": data, "links": {"self": ctx.self_url()}})
    page, page_links = ctx.paginate(links)
    return Reply(status, {"data": [{"type": t, "id": i} for t, i in page], "links": page_links})


def _request_type(ctx: Ctx) -> str:
    data = ctx.data
    if isinstance(data, dict) and data.get("type"):
        return str(data["type"])
    return ctx.routes.primary_type(ctx.op) or "resource"


def _check_exist(ctx: Ctx, links: list[Linkage], pointer: str, *, many: bool | None = None) -> None:
    """A 404 naming the first of ``links`` (given at ``pointer``) whose resource does not exist, of the
    types the API stores (those with a ``GET`` of their own; others, like an order, are not checked)."""
    many = isinstance(ctx.data, list) if many is None else many
    for i, (rtype, rid) in enumerate(links):
        if ctx.routes.item_schema_for(rtype) is not None and ctx.store.get(rtype, rid) is None:
            where = f"{pointer}/{i}/id" if many else f"{pointer}/id"
            raise SandboxError(
                404, "not_found", "Not found.", f"No {rtype.replace('-', ' ')} with id {rid!r} exists.", pointer=where
            )


def _check_related(ctx: Ctx, *, jobs: bool = False) -> None:
    """The body's ``relationships`` name resources that exist (for a job, only its to-one parents)."""
    data = ctx.data if isinstance(ctx.data, dict) else {}
    for name, value in (data.get("relationships") or {}).items():
        many = isinstance(value, dict) and isinstance(value.get("data"), list)
        if not (jobs and many):
            _check_exist(ctx, ctx.rel(name), f"/data/relationships/{name}/data", many=many)


def _create(ctx: Ctx) -> Reply:
    item, _ = ctx.schemas.response_item(ctx.op)
    req_type = _request_type(ctx)
    is_job = req_type.endswith("-job") or "-jobs" in ctx.op.path
    _check_related(ctx, jobs=is_job)
    if is_job:
        job = ctx.create_job(req_type)
        return ctx.one(job) if item is not None else ctx.accepted()
    rtype = (ctx.schemas.types_of(item) or [req_type])[0]
    accepted_only = item is None
    data = ctx.data if isinstance(ctx.data, dict) else {}
    rid = str(data.get("id") or ctx.store.new_id(rtype, ctx.now))
    if ctx.store.get(rtype, rid) is not None:
        raise SandboxError(409, "duplicate", "Conflict.", f"A {rtype} with id {rid} already exists.")
    _check_unique(ctx, rtype, ctx.attrs)
    res = Resource(rtype, rid, dict(ctx.attrs), {}, ctx.now, ctx.now)
    res.attributes.setdefault("created", ctx.now_iso)
    res.attributes.setdefault("updated", ctx.now_iso)
    for name in data.get("relationships") or {}:
        links = ctx.rel(name)
        value = data["relationships"][name].get("data")
        res.relationships[name] = links if isinstance(value, list) else (links[0] if links else None)
    ctx.store.put(res)
    if accepted_only:
        return ctx.accepted()
    return ctx.one(res, status=ctx.schemas.success_status(ctx.op))


def _update(ctx: Ctx, res: Resource) -> Reply:
    ctx.check_body_id(res.id)
    _check_related(ctx)
    data = ctx.data if isinstance(ctx.data, dict) else {}
    _check_unique(ctx, res.type, {**res.attributes, **ctx.attrs}, res.id)
    for key, value in ctx.attrs.items():
        res.attributes[key] = value
    for name in data.get("relationships") or {}:
        links = ctx.rel(name)
        value = data["relationships"][name].get("data")
        res.relationships[name] = links if isinstance(value, list) else (links[0] if links else None)
    res.updated = ctx.now
    res.attributes["updated"] = ctx.now_iso
    ctx.store.put(res)
    return ctx.one(res)


def _check_unique(ctx: Ctx, rtype: str, attrs: Mapping[str, Any], rid: str | None = None) -> None:
    """A 400 when ``attrs`` would repeat a value ``UNIQUE`` says no other ``rtype`` may have (``rid``: its own)."""
    rule = UNIQUE.get(rtype)
    if rule is None or attrs.get(rule[0]) is None:
        return
    name, scope = rule
    schema = {"$ref": f"#/$defs/{ctx.op.record.get('request_schema')}"}
    defaults = {key: ctx.schemas.prop(schema, "data", "attributes", key).get("default") for key in scope}

    def scoped(values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(defaults[key] if values.get(key) is None else values[key] for key in scope)

    within = scoped(attrs)
    for other in ctx.store.iter(rtype):
        if other.id != rid and other.attributes.get(name) == attrs[name] and scoped(other.attributes) == within:
            where = "".join(f" in {key} {value!r}" for key, value in zip(scope, within, strict=True))
            raise bad_request(
                f"A {rtype} with {name} {attrs[name]!r} already exists{where} ({other.id}); the {name} must be "
                "unique. Choose another, or update that one.",
                pointer=f"/data/attributes/{name}",
            )
