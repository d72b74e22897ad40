"""Which attributes of an update (PATCH) can be cleared: the ``clearable`` mark on argument fields.

Klaviyo clears an attribute when a PATCH sends it as ``null`` ("setting a field to null will clear
out the field, whereas not including a field in your request will leave it unchanged"). The toolkit
offers that (``CLEAR``, ``clear=[...]``; see ``klaviyo_toolkit._clear``) only where the spec says a
cleared value can exist: the request attribute is ``nullable`` and not required, *and* the resource
Klaviyo answers with may hold ``null`` there. Many update schemas mark every attribute nullable
(a campaign's or an image's name, a segment's ``is_active``) while the resource always has a value:
there the mark is left off and a CLEAR is refused before any request, naming the field.

Objects are followed into their fields (``location.city`` of a profile), so a nested field can be
clearable inside an attribute that cannot be cleared whole (a campaign's ``audiences``). Only
attributes are marked: ``meta`` holds instructions for the update (``patch_properties``), not
stored values, and the spec marks no relationship nullable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Json = dict[str, Any]

__all__ = ["mark_clearable"]


def _nullable(schema: Json, resolve: Callable[[Json], Json]) -> bool:
    if schema.get("nullable"):
        return True
    s = resolve(schema)
    if s.get("nullable"):
        return True
    return any(resolve(v).get("nullable") for v in (s.get("oneOf") or s.get("anyOf") or ()))


def _properties(schema: Json, resolve: Callable[[Json], Json]) -> Json:
    """The properties of an object schema (of the object variant, for a nullable ``oneOf``)."""
    s = resolve(schema)
    props: Json = dict(s.get("properties") or {})
    for variant in s.get("oneOf") or s.get("anyOf") or ():
        props.update(resolve(variant).get("properties") or {})
    return props


def _response_attributes(op: Json, resolve: Callable[[Json], Json]) -> Json:
    """The attribute schemas of the resource a successful update answers with (empty: no body)."""
    for status, response in sorted((op.get("responses") or {}).items()):
        content = response.get("content") if status.startswith("2") else None
        if content:
            document = resolve(next(iter(content.values()))["schema"])
            data = _properties(document, resolve).get("data")
            return _properties(_properties(data, resolve).get("attributes") or {}, resolve) if data else {}
    return {}


def _mark(fields: Sequence[Json], answered: Json, resolve: Callable[[Json], Json]) -> None:
    for f in fields:
        held = answered.get(f["wire"])
        if held is None:
            continue
        if f.get("nullable") and not f.get("required") and _nullable(held, resolve):
            f["clearable"] = True
        if f["shape"]["kind"] == "object":
            _mark(f["shape"]["fields"], _properties(held, resolve), resolve)


def mark_clearable(op: Json, method: str, args: Sequence[Json], resolve: Callable[[Json], Json]) -> None:
    """Mark (``"clearable": true``) the attribute fields of a PATCH operation's ``args`` that can be cleared."""
    if method.lower() != "patch":
        return
    attributes = [a for a in args if a.get("in") == "body" and a.get("section") == "attributes"]
    if attributes:
        _mark(attributes, _response_attributes(op, resolve), resolve)
