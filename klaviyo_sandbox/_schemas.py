"""The spec's JSON Schemas, as the sandbox uses them: validate requests and responses, and make
the smallest valid value of a schema (to fill attributes a stored resource does not have).

Schemas come from the generated ``catalog/data/stable.schemas.json`` (``$defs``), so the sandbox
never needs the spec itself.

Formats are checked (``_formats.py``): ``date-time`` and ``date`` wherever the spec has them, in
requests and responses (jsonschema's own checker skips ``date-time`` unless an extra package is
installed, so the sandbox registers its own). Request bodies are also checked for what the spec
states only in words: fields that hold an email address (``email``, ``from_email``, ...) and
phone numbers (``phone_number``, E.164) get a ``format`` of the sandbox's (``REQUEST_FORMATS``),
and strings whose length the spec states in a description get ``minLength``/``maxLength``
(``STATED_LENGTHS``).
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema

from klaviyo_toolkit.catalog import Operation, load_schemas

from ._formats import is_date, is_date_time, is_e164, is_email

Json = dict[str, Any]
#: Format names the sandbox gives request fields whose spec states the format only in words.
EMAIL_FORMAT = "sandbox-email"
PHONE_FORMAT = "sandbox-e164"
#: Request body fields (by property name) that hold one email address, or a list of them, or a phone.
EMAIL_FIELDS = frozenset({"email", "from_email", "reply_to_email", "cc_email", "bcc_email", "default_sender_email"})
EMAIL_LIST_FIELDS = frozenset({"to_emails"})
PHONE_FIELDS = frozenset({"phone_number"})
#: String lengths the spec states only in a field's description (the generated schemas keep no
#: descriptions): schema name -> property path -> (fewest, most characters). From the 2026-07-15 spec:
#: DataSourceCreateQueryResourceObject.attributes.title, "Must be between 1 and 255 characters";
#: PushActionButtonDefinition.label, "The button label (max 40 characters)", and .url, "(max 2048
#: characters)".
STATED_LENGTHS: dict[str, dict[tuple[str, ...], tuple[int | None, int]]] = {
    "DataSourceCreateQueryResourceObject": {("attributes", "title"): (1, 255)},
    "PushActionButtonDefinition": {("label",): (None, 40), ("url",): (None, 2048)},
}


def _checker(*, requests: bool) -> jsonschema.FormatChecker:
    """The formats checked: date-time and date everywhere; emails and phone numbers in requests."""
    checker = jsonschema.FormatChecker(formats=())
    checks = {"date-time": is_date_time, "date": is_date}
    if requests:
        checks |= {EMAIL_FORMAT: is_email, PHONE_FORMAT: is_e164}
    for name, check in checks.items():
        checker.checks(name)(lambda value, check=check: not isinstance(value, str) or check(value))
    return checker


def _with_request_formats(node: Any) -> Any:
    """A copy of ``node`` whose string properties named in ``EMAIL_FIELDS`` / ``PHONE_FIELDS`` carry
    the sandbox's formats (objects of the same name, such as ``subscriptions.email``, do not)."""
    if isinstance(node, list):
        return [_with_request_formats(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _with_request_formats(value) for key, value in node.items()}
    props = out.get("properties")
    if isinstance(props, dict):
        for key, sub in props.items():
            fmt = EMAIL_FORMAT if key in EMAIL_FIELDS or key in EMAIL_LIST_FIELDS else None
            fmt = PHONE_FORMAT if key in PHONE_FIELDS else fmt
            if fmt and isinstance(sub, dict):
                props[key] = _formatted(sub, fmt, listed=key in EMAIL_LIST_FIELDS)
    return out


def _formatted(schema: Json, fmt: str, *, listed: bool) -> Json:
    if listed:
        typ = schema.get("type")
        if (typ == "array" or (isinstance(typ, list) and "array" in typ)) and isinstance(schema.get("items"), dict):
            return {**schema, "items": _formatted(schema["items"], fmt, listed=False)}
        return schema
    typ = schema.get("type")
    if (typ == "string" or (isinstance(typ, list) and "string" in typ)) and "format" not in schema:
        return {**schema, "format": fmt}
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return {**schema, key: [_formatted(o, fmt, listed=False) if isinstance(o, dict) else o
                                    for o in schema[key]]}
    return schema


def _with_stated_lengths(defs: Json) -> Json:
    """``defs`` with ``STATED_LENGTHS`` as ``minLength``/``maxLength`` on the strings they name (a copy
    of each schema changed; a name or path the spec no longer has is skipped)."""
    out = dict(defs)
    for name, fields in STATED_LENGTHS.items():
        if name not in out:
            continue
        root = json.loads(json.dumps(out[name]))
        for path, (fewest, most) in fields.items():
            node: Any = root
            for key in path:
                node = node.get("properties", {}).get(key) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node["maxLength"] = most
                if fewest is not None:
                    node["minLength"] = fewest
        out[name] = root
    return out


class SchemaIndex:
    """Resolves ``$ref``s, merges ``allOf`` and builds cached validators for named schemas."""

    def __init__(self, stage: str = "stable") -> None:
        self.defs: Json = load_schemas(stage)["$defs"]
        self._request_defs: Json = _with_stated_lengths(_with_request_formats(self.defs))
        self._subvalidators: dict[str, jsonschema.protocols.Validator] = {}

    def resolve(self, schema: Mapping[str, Any] | None) -> Json:
        """Follow ``$ref``s and merge ``allOf`` parts into one schema (shallow, properties merged)."""
        if not schema:
            return {}
        node: Json = dict(schema)
        while "$ref" in node:
            target = self.defs[node.pop("$ref").rsplit("/", 1)[-1]]
            node = {**target, **node}
        if "allOf" in node:
            parts = [self.resolve(p) for p in node.pop("allOf")]
            merged: Json = {}
            for part in [*parts, node]:
                for key, value in part.items():
                    if key == "properties":
                        props = dict(merged.get("properties", {}))
                        for pk, pv in value.items():
                            props[pk] = {"allOf": [props[pk], pv]} if pk in props else pv
                        merged["properties"] = props
                    elif key == "required":
                        merged["required"] = sorted(set(merged.get("required", [])) | set(value))
                    else:
                        merged.setdefault(key, value)
            node = merged
        return node

    def prop(self, schema: Mapping[str, Any], *path: str) -> Json:
        """The resolved schema at a property path (``{}`` when absent)."""
        node = self.resolve(schema)
        for key in path:
            node = self.resolve(self._non_null(node).get("properties", {}).get(key))
        return node

    def _non_null(self, schema: Json) -> Json:
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self.resolve(s) for s in schema[key] if s != {"type": "null"}]
                if len(options) == 1:
                    return options[0]
        return schema

    @functools.cache  # noqa: B019 - one index per process
    def validator(self, name: str, request: bool = False) -> jsonschema.protocols.Validator:
        """A validator for ``name``: a request body's (with the sandbox's request formats) or a response's."""
        root = {"$defs": self._request_defs if request else self.defs, "$ref": f"#/$defs/{name}"}
        return jsonschema.Draft202012Validator(root, format_checker=_checker(requests=request))

    def errors(self, name: str, instance: Any) -> Iterator[jsonschema.ValidationError]:
        """Where a response body breaks the schema ``name``."""
        yield from self.validator(name).iter_errors(instance)

    def request_errors(self, name: str, instance: Any) -> Iterator[jsonschema.ValidationError]:
        """Where a request body breaks the schema ``name`` (request formats included)."""
        yield from self.validator(name, True).iter_errors(instance)

    def response_errors(
        self, name: str, body: Any, sparse: Mapping[str, frozenset[str]] | None = None
    ) -> list[jsonschema.ValidationError]:
        """Where ``body`` breaks the response schema ``name``, less what sparse fieldsets explain.

        The spec marks attributes required that a response to ``fields[type]=...`` leaves out, as
        JSON:API requires ("MUST NOT include additional fields") and Klaviyo does; such a missing
        attribute of a ``type`` in ``sparse`` (type -> fields asked for) is not an error.
        """
        return [e for e in self.errors(name, body) if not (sparse and _sparse_explains(e, body, sparse))]

    def unknown_field(self, name: str, instance: Any) -> tuple[str, str, str] | None:
        """``(pointer, field, resource)`` of the first key a valid request body has that its schema does
        not define (Klaviyo refuses those: "'x' is not a valid field for the resource 'profile'.").
        Objects without ``properties`` (custom properties, free-form JSON) take any key."""
        return self._unknown({"$ref": f"#/$defs/{name}"}, instance, "", "data")

    def _unknown(self, schema: Any, value: Any, pointer: str, owner: str) -> tuple[str, str, str] | None:
        node = self.resolve(schema)
        for key in ("anyOf", "oneOf"):
            if key in node:
                options = [o for o in node[key] if o != {"type": "null"}]
                if value is None or not options:
                    return None
                if len(options) == 1:
                    return self._unknown(options[0], value, pointer, owner)
                # Klaviyo reads a value as the branch it fits: one valid with every check a request
                # gets (formats, stated lengths) and holding no key it does not define; failing
                # that, the first valid one names the key it does not take.
                found = None
                for option in (o for o in options if self._subvalidator(o).is_valid(value)):
                    unknown = self._unknown(option, value, pointer, owner)
                    if unknown is None:
                        return None
                    found = found or unknown
                return found
        if isinstance(value, dict) and "properties" in node:
            props = node["properties"]
            for key, sub in value.items():
                if key not in props:
                    return f"{pointer}/{key}", key, owner
                child = value["type"] if key == "attributes" and isinstance(value.get("type"), str) else key
                found = self._unknown(props[key], sub, f"{pointer}/{key}", child)
                if found:
                    return found
        elif isinstance(value, list) and "items" in node:
            for i, item in enumerate(value):
                found = self._unknown(node["items"], item, f"{pointer}/{i}", owner)
                if found:
                    return found
        return None

    def _subvalidator(self, schema: Any) -> jsonschema.protocols.Validator:
        key = json.dumps(schema, sort_keys=True)
        found = self._subvalidators.get(key)
        if found is None:
            found = self._subvalidators[key] = jsonschema.Draft202012Validator(
                {"$defs": self._request_defs, **schema}, format_checker=_checker(requests=True)
            )
        return found

    # -- the data item of an operation's success response -----------------------------------
    def response_item(self, op: Operation) -> tuple[Json | None, bool]:
        """(schema of one resource in ``data``, whether ``data`` is a list); (None, False) if no body."""
        name = self.response_name(op)
        if not name:
            return None, False
        data = self.prop({"$ref": f"#/$defs/{name}"}, "data")
        data = self._non_null(data)
        if data.get("type") == "array" or "items" in data:
            return self.resolve(data.get("items")), True
        return data, False

    def response_name(self, op: Operation) -> str | None:
        responses: Mapping[str, Any] = op.record["responses"]
        for status in sorted(responses):
            if status.startswith("2") and responses[status]:
                return str(responses[status])
        return None

    def success_status(self, op: Operation) -> int:
        return int(sorted(s for s in op.record["responses"] if s.startswith("2"))[0])

    def types_of(self, item: Mapping[str, Any] | None) -> list[str]:
        """The JSON:API ``type`` values a resource schema allows."""
        if not item:
            return []
        t = self.resolve(self.resolve(item).get("properties", {}).get("type"))
        return [str(v) for v in t.get("enum", [])] or ([str(t["const"])] if "const" in t else [])

    def included_item(self, op: Operation, rtype: str) -> Json | None:
        """Schema of an ``included`` resource of ``rtype`` in the op's response."""
        name = self.response_name(op)
        if not name:
            return None
        inc = self.prop({"$ref": f"#/$defs/{name}"}, "included")
        items = self.resolve(inc.get("items"))
        options = items.get("anyOf") or items.get("oneOf") or [items]
        for option in options:
            resolved = self.resolve(option)
            if rtype in self.types_of(resolved):
                return resolved
        return None

    # -- smallest valid values ---------------------------------------------------------------
    def synthesize(self, schema: Mapping[str, Any] | None, now: _dt.datetime, depth: int = 0) -> Any:
        """A minimal value valid against ``schema`` (null where allowed, first enum value, ...)."""
        node = self.resolve(schema)
        if depth > 12:
            return None
        for key in ("anyOf", "oneOf"):
            if key in node:
                options = node[key]
                if {"type": "null"} in options:
                    return None
                return self.synthesize(options[0], now, depth + 1)
        if "const" in node:
            return node["const"]
        if "enum" in node:
            values = [v for v in node["enum"] if v is not None]
            return values[0] if values else None
        typ = node.get("type")
        if isinstance(typ, list):
            if "null" in typ:
                return None
            typ = typ[0]
        if typ == "object" or "properties" in node:
            props = node.get("properties", {})
            return {k: self.synthesize(props.get(k), now, depth + 1) for k in node.get("required", [])}
        if typ == "array":
            return []
        if typ == "string":
            fmt = node.get("format")
            if fmt == "date-time":
                return now.isoformat()
            if fmt == "date":
                return now.date().isoformat()
            if fmt == "time":
                return "00:00:00"
            if fmt == "uri":
                return "https://example.com/"
            return ""
        if typ in ("integer", "number"):
            return 0
        if typ == "boolean":
            return False
        return None


def sparse_fields(query: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """``{type: fields}`` of a request's ``fields[type]=a,b`` parameters."""
    return {
        key[7:-1]: frozenset(f.strip() for f in value.split(",") if f.strip())
        for key, value in query.items()
        if key.startswith("fields[") and key.endswith("]")
    }


def _sparse_explains(error: Any, body: Any, sparse: Mapping[str, frozenset[str]]) -> bool:
    if error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[Any, list[Any]] = {}
        for sub in error.context:
            branches.setdefault(sub.schema_path[0] if sub.schema_path else None, []).append(sub)
        return any(all(_sparse_explains(s, body, sparse) for s in subs) for subs in branches.values())
    if error.validator != "required" or not isinstance(error.instance, Mapping):
        return False
    path = list(error.absolute_path)
    for at in range(len(path) - 1, -1, -1):
        if path[at] != "attributes":
            continue
        resource = _at(body, path[:at])
        if not isinstance(resource, Mapping) or resource.get("type") not in sparse:
            continue
        asked = sparse[str(resource["type"])]
        prefix = [str(p) for p in path[at + 1 :]]
        missing = [".".join([*prefix, m]) for m in error.validator_value if m not in error.instance]
        return all(not any(m == a or m.startswith(a + ".") for a in asked) for m in missing)
    return False


def _at(node: Any, path: list[Any]) -> Any:
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


@functools.cache
def schema_index(stage: str = "stable") -> SchemaIndex:
    return SchemaIndex(stage)
