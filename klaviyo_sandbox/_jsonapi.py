"""JSON:API as Klaviyo speaks it: errors, filtering, sort values, sparse fields (cursor pages: ``_paging.py``).

Filters are parsed by :mod:`klaviyo_toolkit.filters` (the same parser the client checks with) and
evaluated here against stored resources by ``Fields``. A field is looked up as: a resolver one of
the sandbox's domains declares for it; ``id``; an attribute (dotted paths reach into nested
attributes); ``<relationship>_id`` or ``<relationship>.id``; or an attribute of a related resource
(``messages.channel``).
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from klaviyo_toolkit.filters import Comparison, Expr, Logical

from ._store import Resource, Store

Json = dict[str, Any]
#: How a domain computes a filter or sort field of a resource: ``(store, resource) -> value``.
FieldResolver = Callable[[Store, Resource], Any]
_MISSING = object()
#: Fields whose ``equals`` ignores case: email addresses, the only values Klaviyo matches that way.
CASE_INSENSITIVE_FIELDS = frozenset({"email", "to"})


class SandboxError(Exception):
    """An error response: becomes ``{"errors": [...]}`` with the given status."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        pointer: str | None = None,
        parameter: str | None = None,
        headers: Mapping[str, str] | None = None,
        meta: Json | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.pointer = pointer
        self.parameter = parameter
        self.headers = dict(headers or {})
        self.meta = meta or {}

    def body(self) -> Json:
        err: Json = {
            "id": str(uuid.uuid4()),
            "status": self.status,
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
            "source": {},
            "links": {},
            "meta": self.meta,
        }
        if self.pointer is not None:
            err["source"]["pointer"] = self.pointer
        if self.parameter is not None:
            err["source"]["parameter"] = self.parameter
        return {"errors": [err]}


def bad_request(detail: str, *, pointer: str | None = None, parameter: str | None = None) -> SandboxError:
    return SandboxError(400, "invalid", "Invalid input.", detail, pointer=pointer, parameter=parameter)


def not_found(rtype: str, rid: str) -> SandboxError:
    return SandboxError(404, "not_found", "Not found.", f"A {rtype} with id {rid} does not exist.")


# -- field lookup --------------------------------------------------------------------------------
def _dig(value: Any, path: Sequence[str]) -> Any:
    for key in path:
        if isinstance(value, Mapping) and key in value:
            value = value[key]
        else:
            return _MISSING
    return value


def _as_time(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-":
        try:
            when = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return when if when.tzinfo else when.replace(tzinfo=_dt.UTC)
        except ValueError:
            return value
    return value


def _compare(op: str, actual: Any, expected: Any, field: str = "") -> bool:
    if op == "has":
        return actual not in (None, "", [], {})
    if isinstance(actual, list) and op in ("equals", "any") and not isinstance(expected, list):
        return bool(expected in actual)
    if op == "equals":
        if isinstance(expected, list):
            return bool(actual == expected)
        a, e = _as_time(actual), expected
        if isinstance(e, _dt.datetime) and isinstance(a, _dt.datetime):
            return a == e
        if isinstance(a, str) and isinstance(e, str):
            return a.lower() == e.lower() if field.rsplit(".", 1)[-1] in CASE_INSENSITIVE_FIELDS else a == e
        return bool(a == e)
    if op == "any":
        options = expected if isinstance(expected, list) else [expected]
        if isinstance(actual, list):
            return any(a in options for a in actual)
        if isinstance(actual, str) and field.rsplit(".", 1)[-1] in CASE_INSENSITIVE_FIELDS:
            # as equals does: any(email,[...]) finds Ann@Example.com by ann@example.com
            return actual.lower() in {o.lower() for o in options if isinstance(o, str)}
        return actual in options
    if op in ("greater-than", "greater-or-equal", "less-than", "less-or-equal"):
        a, e = _as_time(actual), expected
        if a is None or a is _MISSING:
            return False
        try:
            if op == "greater-than":
                return bool(a > e)
            if op == "greater-or-equal":
                return bool(a >= e)
            if op == "less-than":
                return bool(a < e)
            return bool(a <= e)
        except TypeError:
            return False
    if op == "contains":
        if isinstance(actual, list):
            return expected in actual
        return isinstance(actual, str) and isinstance(expected, str) and expected.lower() in actual.lower()
    if op == "contains-any":
        return isinstance(actual, list) and any(e in actual for e in expected)
    if op == "contains-all":
        return isinstance(actual, list) and all(e in actual for e in expected)
    if op == "starts-with":
        return isinstance(actual, str) and actual.startswith(str(expected))
    if op == "ends-with":
        return isinstance(actual, str) and actual.endswith(str(expected))
    return False


class Fields:
    """How filters and sorts read a field of a stored resource, with the resolvers a sandbox's domains declare.

    Example::

        fields = Fields(store, {("profile", "push_token"): push_tokens})
        fields.matches(profile, parse_filter("equals(email,'a@example.com')"))
    """

    def __init__(self, store: Store, resolvers: Mapping[tuple[str, str], FieldResolver] | None = None) -> None:
        self.store = store
        self.resolvers: Mapping[tuple[str, str], FieldResolver] = dict(resolvers or {})

    def value(self, res: Resource, field: str) -> Any:
        """The value a filter or sort on ``field`` sees for ``res`` (a list for to-many relations)."""
        store = self.store
        resolver = self.resolvers.get((res.type, field))
        if resolver is not None:
            return resolver(store, res)
        if field == "id":
            return res.id
        if field in res.attributes:
            return res.attributes[field]
        parts = field.split(".")
        value = _dig(res.attributes, parts)
        if value is not _MISSING:
            return value
        rel = field[:-3] if field.endswith("_id") else None
        for name in (rel, rel.replace("_", "-") if rel else None):
            if name and name in res.relationships:
                ids = [i for _, i in res.linked(name)]
                return ids[0] if len(ids) == 1 and not isinstance(res.relationships[name], list) else ids
        head, rest = parts[0], parts[1:]
        for name in (head, head.replace("_", "-")):
            if name in res.relationships and rest:
                if rest == ["id"]:
                    ids = [i for _, i in res.linked(name)]
                    return ids if isinstance(res.relationships[name], list) else (ids[0] if ids else None)
                values = []
                for rtype, rid in res.linked(name):
                    other = store.get(rtype, rid)
                    if other is not None:
                        v = _dig(other.attributes, rest)
                        if v is not _MISSING:
                            values.append(v)
                return values if isinstance(res.relationships[name], list) else (values[0] if values else None)
        return None

    def matches(self, res: Resource, expr: Expr) -> bool:
        if isinstance(expr, Logical):
            if expr.operator == "and":
                return all(self.matches(res, e) for e in expr.items)
            if expr.operator == "or":
                return any(self.matches(res, e) for e in expr.items)
            return not self.matches(res, expr.items[0])
        assert isinstance(expr, Comparison)
        return _compare(expr.operator, self.value(res, expr.field), expr.value, expr.field)

    def sort_value(self, res: Resource, field: str) -> float | str | None:
        """What sorting on ``field`` orders ``res`` by: a time or number as a number, anything else as
        lower-case text, None when it has no value (see ``_paging.py`` for the order built on it)."""
        value = _as_time(self.value(res, field))
        if value is None:
            return None
        if isinstance(value, _dt.datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return None if value != value else float(value)  # NaN sorts as missing: it orders with nothing
        return str(value).lower()


# -- sparse fields ---------------------------------------------------------------------------------
def sparse(attributes: Json, fields: Iterable[str] | None) -> Json:
    """Keep only the named attributes (dotted paths keep nested parts)."""
    if fields is None:
        return attributes
    out: Json = {}
    for field in fields:
        parts = field.split(".")
        value = _dig(attributes, parts)
        if value is _MISSING:
            continue
        node = out
        for key in parts[:-1]:
            node = node.setdefault(key, {})
        node[parts[-1]] = value
    return out


def iso(ts: float) -> str:
    """Klaviyo-style timestamp: ``2026-11-25T10:00:00+00:00``."""
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat(timespec="seconds")
