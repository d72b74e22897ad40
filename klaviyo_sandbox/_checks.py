"""The checks every Klaviyo request passes before a handler sees it: who is calling, with which
scopes, and whether the query and body are what the spec allows (400s naming the field).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema

from klaviyo_toolkit.catalog import Operation
from klaviyo_toolkit.filters import check_filter

from ._context import Auth
from ._jsonapi import SandboxError, bad_request
from ._keys import ALL_SCOPES, PUBLIC_KEY, Keys
from ._schemas import SchemaIndex

Json = dict[str, Any]
_REVISION = re.compile(r"\d{4}-\d{2}-\d{2}(\.\w+)?")


def authenticate(
    keys: Keys,
    token_auth: Callable[[str], Auth],
    op: Operation,
    headers: Mapping[str, str],
    query: Mapping[str, str],
) -> Auth:
    """Who is calling: the public key (client API), a private key, or an OAuth token (``token_auth``)."""
    if op.client_side:
        company = query.get("company_id")
        if not company:
            raise bad_request("company_id (your public API key) is required.", parameter="company_id")
        if company != PUBLIC_KEY:
            raise SandboxError(
                400,
                "invalid",
                "Invalid input.",
                f"{company!r} is not a valid public API key.",
                parameter="company_id",
            )
        return Auth("public", company, frozenset())
    header = headers.get("authorization", "")
    if not header:
        raise SandboxError(
            401,
            "not_authenticated",
            "Authentication credentials were not provided.",
            "Missing Authorization header; send 'Klaviyo-API-Key <private key>'.",
        )
    if header.startswith("Klaviyo-API-Key "):
        key = header[len("Klaviyo-API-Key ") :].strip()
        info = keys.get(key)
        if info is None or info.get("revoked"):
            raise SandboxError(
                401,
                "not_authenticated",
                "Incorrect authentication credentials.",
                "The private API key is not valid" + (" (revoked)." if info else "."),
            )
        scopes = info["scopes"]
        return Auth("key", key, frozenset(["*"]) if scopes == ALL_SCOPES else frozenset(scopes))
    if header.startswith("Bearer "):
        return token_auth(header[len("Bearer ") :].strip())
    raise SandboxError(
        401,
        "not_authenticated",
        "Incorrect authentication credentials.",
        "Authorization must be 'Klaviyo-API-Key <key>' or 'Bearer <token>'.",
    )


def check_revision(headers: Mapping[str, str]) -> None:
    revision = headers.get("revision")
    if not revision:
        raise bad_request("The 'revision' header is required, e.g. revision: 2026-07-15.", parameter="revision")
    if not _REVISION.fullmatch(revision):
        raise bad_request(f"Invalid revision {revision!r}; use YYYY-MM-DD, e.g. 2026-07-15.", parameter="revision")


def check_scopes(op: Operation, auth: Auth) -> None:
    if auth.kind == "public" or "*" in auth.scopes:
        return
    missing = []
    for scope in op.scopes:
        resource, _, level = scope.partition(":")
        if scope not in auth.scopes and not (level == "read" and f"{resource}:write" in auth.scopes):
            missing.append(scope)
    if missing:
        raise SandboxError(
            403,
            "permission_denied",
            "You do not have permission to perform this action.",
            f"This API key is missing required scopes: {', '.join(missing)}.",
        )


def check_query(op: Operation, query: Mapping[str, str]) -> None:
    params = {a["wire"]: a for a in op.args if a["in"] == "query"}
    for key, value in query.items():
        spec = params.get(key)
        if spec is None:
            raise bad_request(
                f"'{key}' is not a valid query parameter for this endpoint"
                + (f"; allowed: {', '.join(params)}." if params else "."),
                parameter=key,
            )
        schema = spec["shape"]["schema"]
        if key == "filter" and op.filters:
            problems = check_filter(value, op.filters)
            if problems:
                raise bad_request(problems[0], parameter="filter")
        elif schema.get("type") == "array":
            enum = schema.get("items", {}).get("enum")
            for item in value.split(","):
                if enum and item not in enum:
                    raise bad_request(
                        f"'{item}' is not a valid value for {key}; allowed: {', '.join(enum)}.", parameter=key
                    )
        elif "enum" in schema and value not in schema["enum"]:
            raise bad_request(
                f"'{value}' is not a valid value for {key}; allowed: {', '.join(map(str, schema['enum']))}.",
                parameter=key,
            )
        elif schema.get("type") == "integer":
            try:
                number = int(value)
            except ValueError:
                raise bad_request(f"{key} must be an integer.", parameter=key) from None
            if ("minimum" in schema and number < schema["minimum"]) or (
                "maximum" in schema and number > schema["maximum"]
            ):
                raise bad_request(
                    f"{key} must be between {schema.get('minimum')} and {schema.get('maximum')}.", parameter=key
                )
    for key, spec in params.items():
        if spec.get("required") and key not in query:
            raise bad_request(f"The query parameter '{key}' is required.", parameter=key)


def check_body(schemas: SchemaIndex, op: Operation, body: Any) -> None:
    name = op.record.get("request_schema")
    if not name or op.body is None or op.body.get("root") == "form":
        return
    errors = list(schemas.errors(name, body))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        path = [str(p) for p in best.absolute_path]
        if best.validator == "required" and isinstance(best.instance, dict):  # point at the missing field
            path += [p for p in best.validator_value if p not in best.instance][:1]
        raise bad_request(_friendly(best), pointer="/" + "/".join(path) if path else "/data")
    unknown = schemas.unknown_field(name, body)
    if unknown:
        pointer, field, owner = unknown
        raise bad_request(f"'{field}' is not a valid field for the resource '{owner}'.", pointer=pointer)


def _friendly(error: Any) -> str:
    message = str(error.message)
    if error.validator == "required":
        return message.replace("is a required property", "is required")
    if error.validator == "additionalProperties":
        return message
    if len(message) > 300:
        message = message[:300] + "…"
    return message
