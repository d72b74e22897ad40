"""Rendering stored resources as the JSON:API documents Klaviyo returns.

Attributes come from the store; attributes the spec requires but the store lacks get their smallest
valid value; ``additional-fields`` and ``fields[...]`` are honoured; relationships carry links, and
data when stored to-one or asked for with ``include``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from klaviyo_toolkit.catalog import Operation
from klaviyo_toolkit.clock import Clock

from ._context import Ctx
from ._jsonapi import sparse
from ._store import Resource

if TYPE_CHECKING:
    from ._app import Sandbox

Json = dict[str, Any]


def self_link(sb: Sandbox, res: Resource, base_url: str) -> str:
    path = sb._self_paths.get(res.type)
    if not path:
        return f"{base_url}/api/{res.type}s/{res.id}/"
    return base_url + path.replace("{id}", res.id).replace("{job_id}", res.id) + "/"


def item_schema_for(sb: Sandbox, rtype: str) -> Json | None:
    path = sb._self_paths.get(rtype)
    if not path:
        return None
    op = next((o for m, _, o in sb._routes if m == "GET" and o.path == path), None)
    return sb.schemas.response_item(op)[0] if op else None


def render(sb: Sandbox, res: Resource, ctx: Ctx, item_schema: Json | None = None) -> Json:
    schema = item_schema
    if schema is None:
        item, _ = sb.schemas.response_item(ctx.op)
        schema = item if item and res.type in sb.schemas.types_of(item) else item_schema_for(sb, res.type)
    schema = schema or {}
    now = _dt_now(sb.clock)
    attr_schema = sb.schemas.prop(schema, "attributes")
    props: Mapping[str, Any] = attr_schema.get("properties", {})
    required = set(attr_schema.get("required", []))
    additional = set(additional_fields(ctx.op, res.type))
    wanted = set(ctx.list_param(f"additional-fields[{res.type}]") or [])
    attrs: Json = {}
    for key, sub in props.items():
        if key in additional and key not in wanted:
            continue
        if key in res.attributes:
            attrs[key] = res.attributes[key]
        elif key in required or not _nullable(sb.schemas.resolve(sub)):
            attrs[key] = sb.schemas.synthesize(sub, now)
        else:
            attrs[key] = None
    fields = ctx.list_param(f"fields[{res.type}]")
    attrs = sparse(attrs, fields)
    out: Json = {"type": res.type, "id": res.id}
    if "attributes" in schema.get("properties", {}) or attrs:
        out["attributes"] = attrs
    rel_schema = sb.schemas.prop(schema, "relationships")
    rel_props = rel_schema.get("properties", {})
    if rel_props:
        self_url = self_link(sb, res, ctx.base_url)
        include = set(ctx.list_param("include") or [])
        rels: Json = {}
        for name, sub in rel_props.items():
            entry: Json = {"links": {"self": f"{self_url}relationships/{name}/", "related": f"{self_url}{name}/"}}
            data_schema = sb.schemas.prop(sub, "data")
            is_many = data_schema.get("type") == "array" or "items" in data_schema
            stored = name in res.relationships
            if name in include or (stored and not is_many):
                links = sb.related(res, name)
                if is_many:
                    entry["data"] = [{"type": t, "id": i} for t, i in links]
                elif links:
                    entry["data"] = {"type": links[0][0], "id": links[0][1]}
                else:
                    entry["data"] = None if _nullable(data_schema) else sb.schemas.synthesize(data_schema, now)
            for key in sb.schemas.resolve(sub).get("required", []):
                if key == "data" and "data" not in entry:
                    entry["data"] = [] if is_many else sb.schemas.synthesize(data_schema, now)
            rels[name] = entry
        out["relationships"] = rels
    if "links" in schema.get("properties", {}):
        out["links"] = {"self": self_link(sb, res, ctx.base_url)}
    return out


def additional_fields(op: Operation, rtype: str) -> list[str]:
    for arg in op.args:
        if arg["wire"] == f"additional-fields[{rtype}]":
            return list(arg["shape"]["schema"].get("items", {}).get("enum", []))
    return {"profile": ["subscriptions", "predictive_analytics"]}.get(rtype, [])


def _nullable(schema: Mapping[str, Any]) -> bool:
    typ = schema.get("type")
    if isinstance(typ, list) and "null" in typ:
        return True
    return any(s == {"type": "null"} for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def _dt_now(clock: Clock) -> Any:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(clock.time(), _dt.UTC)
