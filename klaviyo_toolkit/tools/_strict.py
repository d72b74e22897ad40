"""OpenAI strict function-calling schemas: make one from a pydantic model, and check one.

Strict mode (``"strict": true``) accepts a subset of JSON Schema: every object lists all its
properties in ``required`` and sets ``additionalProperties: false``; optional values are nullable
instead of omitted; no ``oneOf``/``allOf``/``not``, no ``default``, string formats only from a short
list; at most 10 levels of nesting, 5,000 properties and 1,000 enum values in all. The checker
encodes those published rules so a test can hold every tool to them without calling OpenAI.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

__all__ = ["check_strict_schema", "strict_schema"]

Json = dict[str, Any]

ALLOWED_KEYS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "anyOf",
    "enum",
    "const",
    "description",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "$ref",
    "$defs",
}
ALLOWED_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
MAX_DEPTH = 10
MAX_PROPERTIES = 5000
MAX_ENUM_VALUES = 1000
NAME_RE = r"^[a-zA-Z0-9_-]{1,64}$"


def _deref(node: Any, defs: Json) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            merged = {**_deref(copy.deepcopy(target), defs), **{k: v for k, v in node.items() if k != "$ref"}}
            return _deref(merged, defs)
        return {k: _deref(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_deref(v, defs) for v in node]
    return node


def _strictify(node: Any) -> Any:
    if isinstance(node, list):
        return [_strictify(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {
        k: _strictify(v) if k != "properties" else {pk: _strictify(pv) for pk, pv in v.items()}
        for k, v in node.items()
        if k not in ("title", "default")
    }
    any_of = node.get("anyOf")
    if isinstance(any_of, list) and {"type": "null"} in any_of:
        others = [s for s in any_of if s != {"type": "null"}]
        if len(others) == 1 and isinstance(others[0].get("type"), str) and "anyOf" not in others[0]:
            merged = dict(others[0])
            merged["type"] = [merged["type"], "null"]
            if "enum" in merged and None not in merged["enum"]:
                merged["enum"] = [*merged["enum"], None]
            for key, value in node.items():
                if key != "anyOf":
                    merged.setdefault(key, value)
            node = merged
    if node.get("type") == "object" or "properties" in node:
        node["type"] = node.get("type", "object")
        props = node.setdefault("properties", {})
        node["required"] = list(props)
        node["additionalProperties"] = False
    return node


def strict_schema(model: type[BaseModel]) -> Json:
    """The strict-mode JSON Schema of a pydantic model: inlined, all required, no extras."""
    raw = model.model_json_schema()
    defs = raw.get("$defs", {})
    schema: Json = _strictify(_deref(raw, defs))
    schema.pop("description", None)
    return schema


def check_strict_schema(schema: Json) -> list[str]:
    """Every way ``schema`` breaks OpenAI's strict-mode rules (empty list: accepted)."""
    problems: list[str] = []
    counts = {"properties": 0, "enum": 0}

    def walk(node: Any, path: str, depth: int) -> None:
        if not isinstance(node, dict):
            problems.append(f"{path}: schema must be an object")
            return
        for key in node:
            if key not in ALLOWED_KEYS:
                problems.append(f"{path}: keyword {key!r} is not supported in strict mode")
        if "format" in node and node["format"] not in ALLOWED_FORMATS:
            problems.append(f"{path}: format {node['format']!r} is not supported")
        if "enum" in node:
            counts["enum"] += len(node["enum"])
        types = node.get("type")
        type_list = types if isinstance(types, list) else [types]
        if "anyOf" in node:
            for i, sub in enumerate(node["anyOf"]):
                walk(sub, f"{path}.anyOf[{i}]", depth)
        elif types is None and "$ref" not in node and "const" not in node and "enum" not in node:
            problems.append(f"{path}: every schema needs a type")
        if "object" in type_list:
            depth += 1
            if depth > MAX_DEPTH:
                problems.append(f"{path}: nested deeper than {MAX_DEPTH} levels")
            props = node.get("properties")
            if not isinstance(props, dict):
                problems.append(f"{path}: objects need 'properties'")
                props = {}
            if node.get("additionalProperties") is not False:
                problems.append(f"{path}: objects need additionalProperties: false")
            if sorted(node.get("required", [])) != sorted(props):
                problems.append(f"{path}: every property must be listed in 'required'")
            counts["properties"] += len(props)
            for name, sub in props.items():
                if isinstance(sub, dict) and not sub.get("description") and depth == 1:
                    problems.append(f"{path}.{name}: top-level property has no description")
                walk(sub, f"{path}.{name}", depth)
        if "array" in type_list:
            if "items" not in node:
                problems.append(f"{path}: arrays need 'items'")
            else:
                walk(node["items"], f"{path}[]", depth)

    if schema.get("type") != "object":
        problems.append("(root): must be an object schema")
    if "anyOf" in schema:
        problems.append("(root): must not be anyOf")
    walk(schema, "(root)", 0)
    if counts["properties"] > MAX_PROPERTIES:
        problems.append(f"(root): {counts['properties']} properties, over {MAX_PROPERTIES}")
    if counts["enum"] > MAX_ENUM_VALUES:
        problems.append(f"(root): {counts['enum']} enum values, over {MAX_ENUM_VALUES}")
    return problems
