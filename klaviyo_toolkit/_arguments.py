"""Operation arguments: the pydantic model the caller fills, and the HTTP request built from it.

Both come from the same generated *shape* (see ``catalog/generate.py``), so what the model is shown
and what goes on the wire cannot drift apart. The model sees named, typed fields (attributes,
``<relation>_id``/``_ids``); the JSON:API envelope with ``data``/``type``/``attributes`` is built here.

Values of ``None`` mean "not given" (strict function calling makes the model send every field,
null when unused); a required field is sent as ``null`` only when the spec requires the key. An
update clears a field with ``CLEAR`` or ``clear=[...]`` instead (``_clear``), which sends ``null``.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    WithJsonSchema,
    create_model,
)

from ._clear import apply_clears, take_clears
from ._input_checks import (
    EVENT_LIMITS,
    JSON_LIMITS,
    JsonLimits,
    format_check,
    id_problems,
    names_something,
    not_blank,
    not_bool,
    parse_json_text,
    path_value,
    root_field,
    text_limits,
    url_problems,
    value_problems,
)
from ._payload_limits import INGESTION_PATHS, size_problems
from .catalog import Operation
from .errors import InvalidArgumentError
from .filters import check_filter
from .redact import clip
from .validation import canonical_email, email_problem, phone_problem

Json = dict[str, Any]

#: NaN and Infinity are refused in every number field: JSON cannot carry them.
_CONFIG = ConfigDict(extra="forbid", defer_build=True, populate_by_name=True, allow_inf_nan=False)


# -- field types -------------------------------------------------------------------------------
def _check_email(value: str | None) -> str | None:
    """An address Klaviyo takes, sent in its one Unicode form (NFC: see ``validation.canonical_email``)."""
    problem = None if value is None else email_problem(value)
    if problem:
        raise ValueError(problem)
    return None if value is None else canonical_email(value)


def _check_phone(value: str | None) -> str | None:
    problem = None if value is None else phone_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _check_base64(value: str | None) -> str | None:
    if value is not None:
        try:
            base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            raise ValueError("is not base64; give the file's bytes base64-encoded") from None
    return value


def _json_type(nullable: bool, limits: JsonLimits, want: str | None) -> Any:
    schema: Json = {"type": ["string", "null"] if nullable else "string"}
    return Annotated[
        Any,
        BeforeValidator(functools.partial(parse_json_text, limits=limits, want=want)),
        WithJsonSchema(schema),
    ]


def _fields_type(enum: Sequence[str]) -> Any:
    """Sparse fieldsets: validated against the spec's list, shown to the model as plain strings."""
    allowed = tuple(enum)

    def check(values: list[str] | None) -> list[str] | None:
        bad = [v for v in values or [] if v not in allowed]
        if bad:
            raise ValueError(f"unknown field(s) {bad}; choose from: {', '.join(allowed)}")
        return values

    return Annotated[
        list[str],
        AfterValidator(check),
        WithJsonSchema({"type": "array", "items": {"type": "string"}}),
    ]


def _scalar_type(schema: Json, name: str) -> Any:
    if "anyOf" in schema:
        parts = tuple(_scalar_type(s, name) for s in schema["anyOf"])
        return Union[parts]  # runtime construction: `|` cannot take a tuple
    typ = schema.get("type")
    if typ == "array":
        items: Any = list[_scalar_type(schema.get("items", {}), name)]  # type: ignore[misc]
        if "minItems" in schema or "maxItems" in schema:
            return Annotated[items, Field(min_length=schema.get("minItems"), max_length=schema.get("maxItems"))]
        return items
    if "enum" in schema:
        return Literal[tuple(schema["enum"])]
    base: Any = {"string": str, "integer": int, "number": float, "boolean": bool}.get(str(typ), Any)
    if typ == "boolean":
        return Annotated[bool, Strict()]  # "yes", 1 and "on" are not booleans
    if typ in ("integer", "number"):
        if "minimum" in schema or "maximum" in schema:
            # The validator after the bounds runs first and keeps them in the schema as minimum/maximum.
            return Annotated[base, Field(ge=schema.get("minimum"), le=schema.get("maximum")), BeforeValidator(not_bool)]
        return Annotated[base, BeforeValidator(not_bool)]
    if typ == "string" and (name == "email" or name.endswith("_email")):
        return Annotated[str, AfterValidator(_check_email)]
    if typ == "string" and name in ("phone_number", "phone"):
        return Annotated[str, AfterValidator(_check_phone)]
    if typ == "string" and schema.get("contentEncoding") == "base64":
        return Annotated[str, AfterValidator(_check_base64), WithJsonSchema({"type": "string"})]
    if typ == "string" and format_check(schema.get("format")) is not None:  # dates: what a model gets wrong most
        return Annotated[str, format_check(schema["format"]), WithJsonSchema({"type": "string"})]
    if typ == "string" and ("minLength" in schema or "maxLength" in schema or "pattern" in schema):
        return Annotated[str, text_limits(schema), WithJsonSchema({"type": "string"})]
    return base


def _camel(text: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", text) if p)


class _Builder:
    """Builds pydantic models from shapes, naming nested models after their path.

    ``json_limits`` bound the free-form JSON values of the operation (Klaviyo's ingestion limits on
    the event endpoints, the toolkit's own elsewhere).
    """

    def __init__(self, json_limits: JsonLimits = JSON_LIMITS) -> None:
        self.json_limits = json_limits

    def type_of(self, shape: Json, name: str, path: str, nullable: bool) -> Any:
        kind = shape["kind"]
        if kind == "scalar":
            if name.startswith("fields_") and shape["schema"].get("type") == "array":
                enum = shape["schema"].get("items", {}).get("enum")
                if enum:
                    return _fields_type(enum)
            return _scalar_type(shape["schema"], name)
        if kind == "json":
            return _json_type(nullable, self.json_limits, shape.get("type"))
        if kind == "rel":
            return list[str] if shape["many"] else str
        if kind == "data":
            return self.type_of(shape["item"], name, path, nullable)
        if kind == "array":
            return list[self.type_of(shape["items"], name, path + "Item", False)]  # type: ignore[misc]
        if kind == "union":
            variants = tuple(self.type_of(v, name, f"{path}V{i}", False) for i, v in enumerate(shape["variants"]))
            return Union[variants]  # runtime construction: `|` cannot take a tuple
        if kind in ("object", "resource"):
            return self.model(path, shape["fields"])
        raise TypeError(f"unknown shape kind {kind!r}")

    def model(self, model_name: str, fields: Sequence[Json], doc: str | None = None) -> type[BaseModel]:
        definitions: dict[str, Any] = {}
        for f in fields:
            nullable = bool(f.get("nullable")) or not f.get("required")
            typ = self.type_of(f["shape"], f["name"], model_name + _camel(f["name"]), nullable)
            desc = f["description"]
            inner = f["shape"]
            while inner["kind"] in ("array", "data"):
                inner = inner.get("items") or inner["item"]
            if inner["kind"] == "json":
                many = inner is not f["shape"] and f["shape"]["kind"] == "array"
                desc = (desc + " " if desc else "") + ("Each item as JSON text." if many else "Give it as JSON text.")
            if f.get("required") and not f.get("nullable"):
                if names_something(f):
                    typ = Annotated[typ, AfterValidator(not_blank)]
                definitions[f["name"]] = (typ, Field(description=desc))
            else:
                definitions[f["name"]] = (typ | None, Field(default=None, description=desc))
        model = create_model(model_name, __config__=_CONFIG, __doc__=doc, **definitions)
        return cast(type[BaseModel], model)


@functools.cache
def _model_for(stage: str, operation_id: str, op: Operation) -> type[BaseModel]:
    doc = op.summary
    limits = EVENT_LIMITS if op.path in INGESTION_PATHS else JSON_LIMITS
    return _Builder(limits).model(_camel(operation_id) + "Args", op.args, doc)


def args_model(op: Operation) -> type[BaseModel]:
    """The pydantic model of an operation's arguments (built on first use, then cached)."""
    return _model_for(op.stage, op.operation_id, op)


# -- validation --------------------------------------------------------------------------------
_FIXES = {
    "missing": "is required; give a value",
    "extra_forbidden": "is not an argument of this operation; remove it",
}


_TYPE_TAGS = ("str", "int", "float", "bool", "list")


def _loc(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith(("function-", "tagged-union", "union[")):
            continue
        elif isinstance(part, str) and ("[" in part or part[:1].isupper() or part in _TYPE_TAGS):
            continue  # union-member and type tags, not field names
        else:
            out += ("." if out else "") + str(part)
    return out or "(arguments)"


def _given_key(loc: Sequence[Any]) -> str:
    """Where an unknown key sits, ending in the key as it was given: ``fields[profile]``, ``Email`` or
    ``metric.Name`` (``_loc`` leaves out parts that look like union tags, which a given key is not)."""
    parent = _loc(loc[:-1]) if len(loc) > 1 else ""
    key = str(loc[-1])
    return f"{parent}.{key}" if parent and parent != "(arguments)" else key


def _wire_hint(op: Operation | None, key: str) -> str:
    """``; it is Klaviyo's name for <name>: give that instead`` when ``key`` is a parameter's name on
    the wire (``fields[profile]``, ``page[size]``), which the toolkit takes as ``fields_profile``, ``page_size``."""
    if op is None:
        return ""
    named = next((a["name"] for a in op.args if a.get("wire") == key and a["name"] != key), None)
    return f"; it is Klaviyo's name for {named}: give {named} instead" if named else ""


def problems_from_validation(
    exc: ValidationError,
    valid_names: Sequence[str],
    op: Operation | None = None,
    values: Mapping[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """Turn pydantic's errors into (field, fix) pairs, one per field.

    Given the operation and the values validated, a union's errors are those of the branch the value
    meant (``_unions``): without them, each field's first error was the first branch's, whatever the
    value said it was.
    """
    errors: Sequence[Mapping[str, Any]] = exc.errors(include_url=False)
    if op is not None and values is not None:
        from ._unions import narrow  # the error path only: nothing of it at import

        errors = narrow(op.args, values, errors)
    problems: dict[str, str] = {}
    for err in errors:
        where = _loc(err["loc"])
        unknown = err["type"] == "extra_forbidden" or bool(err.get("unknown_key"))
        if unknown and err["loc"] and isinstance(err["loc"][-1], str):
            where = _given_key(err["loc"])
        if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
            hint = _wire_hint(op, str(err["loc"][0]))
            msg = f"is not an argument of this operation{hint}; valid arguments: {', '.join(valid_names)}"
        elif err["type"] == "narrowed":  # made by _unions: the fix, as written
            msg = str(err["msg"])
        elif err["type"] in _FIXES:
            msg = _FIXES[err["type"]]
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "literal_error":
                msg = msg.replace("Input should be", "must be")
        problems.setdefault(where, msg)
    return list(problems.items())


def validate_args(op: Operation, values: Mapping[str, Any]) -> BaseModel:
    """Validate ``values`` for ``op``; raises InvalidArgumentError naming each bad field."""
    model = args_model(op)
    early = value_problems(values)
    early += [p for p in id_problems(op, values) if root_field(p[0]) not in {root_field(f) for f, _ in early}]
    if early:
        raise InvalidArgumentError(op.operation_id, early)
    try:
        parsed = model.model_validate(dict(values))
    except ValidationError as exc:
        from ._constraints import missing_fix

        found = problems_from_validation(exc, list(model.model_fields), op, values)
        found = [(f, (missing_fix(op.operation_id, f) or m) if m == _FIXES["missing"] else m) for f, m in found]
        raise InvalidArgumentError(op.operation_id, found) from None
    problems = _semantic_checks(op, parsed)
    if problems:
        raise InvalidArgumentError(op.operation_id, problems)
    return parsed


def _given(value: Any) -> bool:
    return value is not None and value != [] and value != ""


def _semantic_checks(op: Operation, parsed: BaseModel) -> list[tuple[str, str]]:
    from ._constraints import check_constraints

    problems: list[tuple[str, str]] = []
    data = parsed.model_dump(exclude_none=True)
    filt = data.get("filter")
    if isinstance(filt, str) and op.filters:
        problems += [("filter", p) for p in check_filter(filt, op.filters)]
    limit, arg = op.max_items, op.max_items_arg
    if limit and arg and isinstance(data.get(arg), list) and len(data[arg]) > limit:
        problems.append(
            (
                arg,
                f"{len(data[arg])} items given, but {op.operation_id} accepts at most {limit} per call; "
                f"split them into batches of {limit}",
            )
        )
    problems += check_constraints(op.operation_id, data)
    return problems


# -- request building --------------------------------------------------------------------------
@dataclass
class PreparedRequest:
    """Everything needed to send one call, before auth and transport."""

    operation: Operation
    method: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    json_body: Any = None
    form: dict[str, Any] | None = None
    files: dict[str, tuple[str, bytes]] | None = None
    #: The validated arguments as plain data, to name the one at fault if sending fails to encode.
    arguments: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: The fields this update clears (dotted names, sorted): sent as ``null`` in the body.
    cleared: tuple[str, ...] = ()

    def describe(self) -> Json:
        """The exact request as data (for dry runs and approvals); no credentials in it."""
        out: Json = {"method": self.method, "path": self.path}
        if self.params:
            out["params"] = dict(self.params)
        if self.json_body is not None:
            out["body"] = self.json_body
        if self.form is not None:
            out["form"] = self.form
        return out


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {k: _dump(getattr(value, k)) for k in type(value).model_fields if getattr(value, k) is not None}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def plain_args(values: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments as plain JSON-able data (nested pydantic models turned into dicts, None dropped)."""
    return {k: _dump(v) for k, v in values.items() if v is not None}


def _wire(shape: Json, value: Any) -> Any:
    """Model value -> wire value, following the shape."""
    kind = shape["kind"]
    if kind in ("scalar", "json"):
        return value
    if kind == "rel":
        rtype = shape["types"][0] if shape["types"] else None
        linkage: Any = [{"type": rtype, "id": v} for v in value] if shape["many"] else {"type": rtype, "id": value}
        return linkage if shape.get("bare") else {"data": linkage}
    if kind == "data":
        return {"data": _wire(shape["item"], value)}
    if kind == "array":
        return [_wire(shape["items"], v) for v in value]
    if kind == "union":
        return _wire(_pick_variant(shape["variants"], value), value)
    if kind == "object":
        return _wire_fields(shape["fields"], value)
    if kind == "resource":
        return _wire_resource(shape, value)
    raise TypeError(kind)


def _pick_variant(variants: Sequence[Json], value: Any) -> Json:
    if not isinstance(value, dict):
        return next((v for v in variants if v["kind"] in ("scalar", "json")), variants[0])
    keys = set(value)
    best: Json | None = None
    for v in variants:
        if v["kind"] not in ("object", "resource"):
            continue
        names = {f["name"] for f in v["fields"]}
        required = {f["name"] for f in v["fields"] if f.get("required") and not f.get("nullable")}
        if keys <= names and required <= keys:
            # Prefer the variant whose enum-constant fields match the given values.
            if all(
                f["shape"]["kind"] != "scalar"
                or "enum" not in f["shape"]["schema"]
                or f["name"] not in value
                or value[f["name"]] in f["shape"]["schema"]["enum"]
                for f in v["fields"]
            ):
                return v
            best = best or v
    return best or variants[0]


def _wire_fields(fields: Sequence[Json], value: Mapping[str, Any]) -> Json:
    out: Json = {}
    for f in fields:
        v = value.get(f["name"])
        if v is None:
            if f.get("required") and f.get("nullable"):
                out[f["wire"]] = None
            continue
        out[f["wire"]] = _wire(f["shape"], v)
    return out


def _wire_resource(shape: Json, value: Mapping[str, Any]) -> Json:
    out: Json = {"type": shape["types"][0] if shape["types"] else None}
    for section in shape.get("required_sections", ()):
        out[section] = {}
    for f in shape["fields"]:
        v = value.get(f["name"])
        section = f.get("in", "attributes")
        if v is None and not (f.get("required") and f.get("nullable")):
            continue
        wired = None if v is None else _wire(f["shape"], v)
        if section == "id":
            out["id"] = wired
        else:
            out.setdefault(section, {})[f["wire"]] = wired
    return out


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_query_value(v) for v in value)
    return str(value)


def build_request(op: Operation, parsed: BaseModel) -> PreparedRequest:
    """The HTTP request for validated arguments: path filled, query encoded, envelope built."""
    values = _dump(parsed)
    path = op.path
    req = PreparedRequest(operation=op, method=op.method, path=path, arguments=values)
    body_fields: list[Json] = []
    path_values: list[tuple[str, str]] = []
    for arg in op.args:
        where = arg["in"]
        v = values.get(arg["name"])
        if where == "path":
            path_values.append((arg["name"], path_value(v)))
            path = path.replace("{" + arg["wire"] + "}", path_values[-1][1])
        elif where == "query":
            if v is not None and v != []:
                req.params.append((arg["wire"], _query_value(v)))
        elif where == "header":
            if v is not None:
                req.headers[arg["wire"]] = str(v)
        else:
            body_fields.append(arg)
    req.path = path
    too_long = url_problems(path_values, req.params, {a["wire"]: a["name"] for a in op.args}, len(path))
    if too_long:
        raise InvalidArgumentError(op.operation_id, too_long)
    body = op.body
    if body is None:
        return req
    root = body["root"]
    if root == "form":
        req.form = {}
        req.files = {}
        for f in body_fields:
            v = values.get(f["name"])
            if v is None:
                continue
            if f["shape"]["kind"] == "scalar" and f["shape"]["schema"].get("contentEncoding") == "base64":
                req.files[f["wire"]] = (str(values.get("name") or "upload"), base64.b64decode(v))
            else:
                req.form[f["wire"]] = _query_value(v)
        return req
    if root == "json":  # a body that is not a JSON:API document (a newer spec's): sent as given
        arg = body_fields[0]
        req.json_body = values.get(arg["name"])
        return req
    if root == "linkage":
        arg = body_fields[0]
        req.json_body = {"data": _wire(arg["shape"], values.get(arg["name"]) or [])}
        return req
    if root == "resources":
        arg = body_fields[0]
        req.json_body = {"data": _wire(arg["shape"], values.get(arg["name"]) or [])}
        return req
    data: Json = {"type": body["types"][0] if body["types"] else None}
    if body.get("id_from_path"):
        data["id"] = values.get("id")
    for f in body_fields:
        v = values.get(f["name"])
        section = f.get("section", "attributes")
        if v is None and not (f.get("required") and f.get("nullable")):
            if f.get("required") and section in ("attributes", "meta"):
                data.setdefault(section, {})
            continue
        wired = None if v is None else _wire(f["shape"], v)
        if section == "id":
            data["id"] = wired
        else:
            data.setdefault(section, {})[f["wire"]] = wired
    resource_schema_needs_attributes = any(f.get("section") == "attributes" for f in body_fields)
    if resource_schema_needs_attributes:
        data.setdefault("attributes", {})
    req.json_body = {"data": data}
    return req


#: What building a request from odd input can raise, beyond the checks above; never let out raw.
_BUILD_ERRORS = (ValueError, TypeError, UnicodeError, RecursionError, OverflowError)


def prepare(op: Operation, values: Mapping[str, Any]) -> PreparedRequest:
    """Validate and build in one step; every refusal is an InvalidArgumentError naming the field,
    a body past a size Klaviyo documents too (``_payload_limits``: per item, per event string, whole)."""
    given = values
    try:
        values, cleared = take_clears(op, values)
        req = build_request(op, validate_args(op, values))
        if cleared:
            apply_clears(op, req.json_body, cleared)
            req.cleared = cleared
        too_large = size_problems(op, req.json_body, req.arguments)
    except (InvalidArgumentError, *_BUILD_ERRORS) as exc:
        if op.method != "PATCH":  # a CLEAR deep inside a create or a read: say so, not that its type is wrong
            take_clears(op, given, look_inside=True)
        if isinstance(exc, InvalidArgumentError):
            raise
        raise InvalidArgumentError(op.operation_id, [unsendable(values, exc)]) from exc
    if too_large:
        raise InvalidArgumentError(op.operation_id, too_large)
    return req


def unsendable(values: Mapping[str, Any], exc: BaseException) -> tuple[str, str]:
    """(field, fix) for a value that could not be turned into a request: the first argument that
    does not encode as JSON text on its own, or ``(arguments)`` when none can be singled out."""
    reason = f"cannot be sent ({type(exc).__name__}: {clip(str(exc), 200)})"
    for name, value in values.items():
        try:
            json.dumps(_dump(value), allow_nan=False, ensure_ascii=False, default=str).encode("utf-8")
        except (*_BUILD_ERRORS,):
            return name, reason + "; check this value"
    return "(arguments)", reason + "; check the values given"
