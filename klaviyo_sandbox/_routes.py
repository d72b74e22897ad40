"""Klaviyo's API as the sandbox routes it: paths to operations, and what the spec says about each path.

Built once per sandbox from the catalog and the spec's schemas; it holds no state. Besides routing a
request (``route``), it answers the questions the generic engine and rendering ask: which resource
type a collection holds, where a resource's own URL is, which types a relationship links to.

Example::

    routes = Routes(load_catalog(), schema_index())
    op, params = routes.route("GET", "/api/lists/Y6nRLr")     # get_list, {"id": "Y6nRLr"}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from klaviyo_toolkit.catalog import Catalog, Operation

from ._jsonapi import SandboxError
from ._schemas import SchemaIndex
from ._store import Resource

Json = dict[str, Any]
#: A route: its method, its path's pattern and the operation it serves.
Route = tuple[str, re.Pattern[str], Operation]


def shape_of(path: str) -> tuple[str, list[str]]:
    """('list'|'item'|'related'|'relationship'|'other', segments without the /api or /client prefix)."""
    segs = path.strip("/").split("/")[1:]
    if len(segs) == 1:
        return "list", segs
    if len(segs) == 2 and segs[1].startswith("{"):
        return "item", segs
    if len(segs) == 3 and segs[1].startswith("{"):
        return "related", segs
    if len(segs) == 4 and segs[1].startswith("{") and segs[2] == "relationships":
        return "relationship", segs
    return "other", segs


#: Characters a path segment may carry as they are (RFC 3986 ``pchar``): ids like
#: ``$custom:::$default:::SKU-1`` stay readable; ``/``, ``?``, ``#``, ``%`` and spaces are encoded.
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"


def _shape_key(path: str) -> tuple[int, str, str]:
    """How many segments ``path`` has (less one trailing slash, which every route allows) and its
    first two (``/api/lists/...``: ``api``, ``lists``): what a route's pattern fixes besides ids."""
    parts = path.split("/")
    if len(parts) > 2 and parts[-1] == "":
        parts.pop()
    return len(parts), parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else ""


def segment(value: str) -> str:
    """``value`` as one path segment (percent-encoded where it must be)."""
    return quote(value, safe=_SEGMENT_SAFE)


class Routes:
    """Every operation of the catalog, matched by method and path, with the resource types they serve."""

    def __init__(self, catalog: Catalog, schemas: SchemaIndex) -> None:
        self.catalog = catalog
        self.schemas = schemas
        self._routes = self._compile()
        self._by_shape = self._index(self._routes)
        self._collection_types = self._find_collection_types()
        self._self_paths = self._find_self_paths()

    # -- construction ------------------------------------------------------------------------
    def _compile(self) -> list[Route]:
        routes = []
        for op in self.catalog:
            pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(op.path)) + "/?$"
            routes.append((op.method, re.compile(pattern), op))
        routes.sort(key=lambda r: (-r[2].path.count("/"), r[2].path.count("{"), r[2].path))
        return routes

    @staticmethod
    def _index(routes: list[Route]) -> dict[tuple[int, str, str], list[Route]]:
        """The routes that can match a path, by its shape (:func:`_shape_key`), each list in routing order.

        A route's pattern matches only paths with as many segments as its own and the same literal
        segments, so a request is matched against the few routes of its shape instead of all 345.
        """
        index: dict[tuple[int, str, str], list[Route]] = {}
        for route in routes:
            index.setdefault(_shape_key(route[2].path), []).append(route)
        if any("{" in part for key in index for part in key[1:]):  # a placeholder where a literal was expected
            raise ValueError("a Klaviyo path with a placeholder in its first two segments cannot be indexed")
        return index

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
        for prefix in ("/api/", "/client/"):  # a client-only resource (the IP allow list) lives there
            for op in self.catalog:
                kind, _segs = shape_of(op.path)
                if kind == "item" and op.method == "GET" and op.path.startswith(prefix):
                    item, _ = self.schemas.response_item(op)
                    for t in self.schemas.types_of(item):
                        out.setdefault(t, op.path)
        return out

    # -- routing ---------------------------------------------------------------------------------
    def route(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """The operation serving ``method path`` and its path parameters (404, or 405 naming the allowed).

        ``path`` is the raw path as sent (percent-encoding kept): segments are matched first and
        decoded after, so an id with an encoded slash (``abc%2Fdef``) stays one id of the operation
        its URL names instead of reaching another route.
        """
        allowed = []
        for m, pattern, op in self._by_shape.get(_shape_key(path), ()):
            match = pattern.match(path)
            if match:
                if m == method:
                    return op, {k: unquote(v) for k, v in match.groupdict().items()}
                allowed.append(m)
        if allowed:
            methods = sorted(set(allowed))
            raise SandboxError(
                405,
                "method_not_allowed",
                "Method not allowed.",
                f"{method} is not allowed on {unquote(path)}; allowed: {', '.join(methods)}.",
                headers={"Allow": ", ".join(methods)},
            )
        raise SandboxError(404, "not_found", "Not found.", f"No Klaviyo endpoint at {unquote(path)}.")

    def request_path(self, op: Operation, params: Mapping[str, str]) -> str:
        """``op``'s path with ``params`` filled in, each percent-encoded as one segment."""
        path = op.path
        for key, value in params.items():
            path = path.replace("{" + key + "}", segment(value))
        return path

    # -- resource types --------------------------------------------------------------------------
    def collection_type(self, segment: str) -> str | None:
        """The resource type stored under a path segment (``lists`` -> ``list``)."""
        return self._collection_types.get(segment)

    def primary_type(self, op: Operation) -> str | None:
        """The resource type an operation answers with (or of its collection)."""
        item, _ = self.schemas.response_item(op)
        types = self.schemas.types_of(item)
        if types:
            return types[0]
        _kind, segs = shape_of(op.path)
        return self._collection_types.get(segs[0]) if segs else None

    def _get_operation(self, rtype: str) -> Operation | None:
        path = self._self_paths.get(rtype)
        if not path:
            return None
        return next((o for m, _, o in self._routes if m == "GET" and o.path == path), None)

    def item_schema_for(self, rtype: str) -> Json | None:
        """The schema of one ``rtype`` resource, as its own GET endpoint returns it."""
        op = self._get_operation(rtype)
        return self.schemas.response_item(op)[0] if op else None

    def rel_target_types(self, rtype: str, rel: str) -> list[str]:
        """The types ``rtype``'s relationship ``rel`` may link to, per the spec."""
        op = self._get_operation(rtype)
        if op is None:
            return []
        item, _ = self.schemas.response_item(op)
        rel_schema = self.schemas.prop(item or {}, "relationships", rel, "data")
        rel_schema = self.schemas.resolve(rel_schema.get("items")) if "items" in rel_schema else rel_schema
        return self.schemas.types_of(rel_schema)

    def self_link(self, res: Resource, base_url: str) -> str:
        """The resource's own URL (``links.self``)."""
        path = self._self_paths.get(res.type)
        if not path:
            return f"{base_url}/api/{res.type}s/{segment(res.id)}/"
        rid = segment(res.id)
        return base_url + path.replace("{id}", rid).replace("{job_id}", rid) + "/"
