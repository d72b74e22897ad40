"""Rendering stored resources as the JSON:API documents Klaviyo returns.

Attributes come from the store; attributes the spec requires but the store lacks get their smallest
valid value; ``additional-fields`` and ``fields[...]`` are honoured; relationships carry links, and
data when stored to-one or asked for with ``include`` (an empty to-one is ``null`` where the spec
allows it, else left out: never a made-up linkage).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from typing import Any

from klaviyo_toolkit.catalog import Operation

from ._jsonapi import sparse
from ._routes import Routes
from ._store import Linkage, Resource

Json = dict[str, Any]


def list_param(query: Mapping[str, str], name: str) -> list[str] | None:
    """A comma-separated query parameter as a list (None when absent)."""
    value = query.get(name)
    return None if value is None else [v for v in value.split(",") if v]


def render(
    res: Resource,
    *,
    routes: Routes,
    related: Callable[[Resource, str], list[Linkage]],
    op: Operation,
    query: Mapping[str, str],
    base_url: str,
    now: float,
    item_schema: Json | None = None,
) -> Json:
    """``res`` as a JSON:API resource object in the answer to ``op`` (``item_schema`` when included)."""
    schemas = routes.schemas
    schema = item_schema
    if schema is None:
        item, _ = schemas.response_item(op)
        schema = item if item and res.type in schemas.types_of(item) else routes.item_schema_for(res.type)
    schema = schema or {}
    when = _dt.datetime.fromtimestamp(now, _dt.UTC)
    attr_schema = schemas.prop(schema, "attributes")
    props: Mapping[str, Any] = attr_schema.get("properties", {})
    required = set(attr_schema.get("required", []))
    additional = set(additional_fields(op, res.type))
    wanted = set(list_param(query, f"additional-fields[{res.type}]") or [])
    attrs: Json = {}
    for key, sub in props.items():
        if key in additional and key not in wanted:
            continue
        if key in res.attributes:
            attrs[key] = res.attributes[key]
        elif key in required or not _nullable(schemas.resolve(sub)):
            attrs[key] = schemas.synthesize(sub, when)
        else:
            attrs[key] = None
    attrs = sparse(attrs, list_param(query, f"fields[{res.type}]"))
    out: Json = {"type": res.type, "id": res.id}
    if "attributes" in schema.get("properties", {}) or attrs:
        out["attributes"] = attrs
    rel_props = schemas.prop(schema, "relationships").get("properties", {})
    if rel_props:
        self_url = routes.self_link(res, base_url)
        include = set(list_param(query, "include") or [])
        rels: Json = {}
        for name, sub in rel_props.items():
            entry: Json = {"links": {"self": f"{self_url}relationships/{name}/", "related": f"{self_url}{name}/"}}
            data_schema = schemas.prop(sub, "data")
            is_many = data_schema.get("type") == "array" or "items" in data_schema
            stored = name in res.relationships
            if name in include or (stored and not is_many):
                links = related(res, name)
                if is_many:
                    entry["data"] = [{"type": t, "id": i} for t, i in links]
                elif links:
                    entry["data"] = {"type": links[0][0], "id": links[0][1]}
                elif _nullable(data_schema):
                    entry["data"] = None
                # else: an empty to-one the spec cannot write as null is left without data (only links),
                # never a made-up linkage such as {"type": "profile", "id": ""} that a client would follow
            for key in schemas.resolve(sub).get("required", []):
                if key == "data" and "data" not in entry:
                    entry["data"] = [] if is_many else schemas.synthesize(data_schema, when)
            rels[name] = entry
        out["relationships"] = rels
    if "links" in schema.get("properties", {}):
        out["links"] = {"self": routes.self_link(res, base_url)}
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
