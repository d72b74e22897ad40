"""The checks every Klaviyo request passes before a handler sees it: who is calling, which revision
it asks for, with which scopes, and whether the query and body are what the spec allows (400s
naming the field).

Error codes are the ones Klaviyo answers with (its API is Django REST framework's): a request
without credentials is ``401 not_authenticated``; one whose credentials are wrong (unknown or
revoked key, bad or expired token) is ``401 authentication_failed`` ("Incorrect authentication
credentials."); a missing scope is ``403 permission_denied``; bad input is ``400 invalid``.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema

from klaviyo_toolkit.catalog import Operation
from klaviyo_toolkit.filters import check_filter

from ._branches import UNKNOWN_DISCRIMINATOR, narrow
from ._context import Auth
from ._formats import phone_message
from ._jsonapi import SandboxError, bad_request
from ._keys import ALL_SCOPES, PUBLIC_KEY, Keys
from ._routes import shape_of
from ._schemas import EMAIL_FORMAT, PHONE_FORMAT, SchemaIndex

Json = dict[str, Any]
_REVISION = re.compile(r"(\d{4}-\d{2}-\d{2})(\.\w+)?")


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
        required = any(a["wire"] == "company_id" and a.get("required") for a in op.args)
        if not company:
            if required:
                raise bad_request("company_id (your public API key) is required.", parameter="company_id")
            return Auth("public", PUBLIC_KEY, frozenset())
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
            raise authentication_failed("The private API key is not valid" + (" (revoked)." if info else "."))
        scopes = info["scopes"]
        return Auth("key", key, frozenset(["*"]) if scopes == ALL_SCOPES else frozenset(scopes))
    if header.startswith("Bearer "):
        try:
            return token_auth(header[len("Bearer ") :].strip())
        except SandboxError as exc:  # a token was given, so the credentials are wrong, not missing
            if exc.status == 401:
                raise authentication_failed(exc.detail) from None
            raise
    raise authentication_failed("Authorization must be 'Klaviyo-API-Key <key>' or 'Bearer <token>'.")


def authentication_failed(detail: str) -> SandboxError:
    """Klaviyo's 401 for credentials that were given but are not valid."""
    return SandboxError(401, "authentication_failed", "Incorrect authentication credentials.", detail)


def check_revision(headers: Mapping[str, str], op: Operation, served: str) -> str:
    """The revision the request asks for, when it is the one this sandbox serves; else Klaviyo's 400.

    Klaviyo serves every revision it supports and answers others with an error (its versioning
    policy: "the revision passed in must be a valid revision"). The sandbox serves exactly one: the
    revision its catalog was generated from (``served``), and its ``.pre`` (beta) twin. Anything else,
    older, newer or malformed, is refused rather than answered with another revision's shapes,
    which would mislead a client built for that revision. Where the spec makes the header optional
    (Get Client IP Allowlist) a missing header means ``served``.
    """
    revision = headers.get("revision")
    if not revision:
        if not op.revision_required:
            return served
        raise bad_request(f"The 'revision' header is required, e.g. revision: {served}.", parameter="revision")
    match = _REVISION.fullmatch(revision.strip())
    date = None
    if match:
        try:
            date = _dt.date.fromisoformat(match.group(1))
        except ValueError:
            date = None
    if date is None:
        raise bad_request(
            f"Invalid revision {revision!r}: a revision is a date, YYYY-MM-DD (e.g. {served}).", parameter="revision"
        )
    if revision.strip() in (served, f"{served}.pre"):
        return revision.strip()
    served_date = _dt.date.fromisoformat(served[:10])
    if date > served_date:
        why = f"it is newer than this sandbox's revision, {served} (unable to specify a future revision date)"
    else:
        why = f"this sandbox serves only revision {served}, whose requests and responses differ from {revision}'s"
    raise bad_request(
        f"Revision {revision} is not supported: {why}. Send 'revision: {served}', or regenerate the "
        "catalog from the spec of the revision you need (README: moving to a new revision).",
        parameter="revision",
    )


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


_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)


def integer_param(value: str) -> int | None:
    """An integer query parameter as Klaviyo reads it: digits only, an optional minus; no ``+``,
    spaces, underscores or decimals (which Python's ``int`` would let through)."""
    return int(value) if _INTEGER.fullmatch(value) else None


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
            number = integer_param(value)
            if number is None:
                raise bad_request(f"{key} must be an integer, digits only (e.g. {key}=20).", parameter=key)
            if ("minimum" in schema and number < schema["minimum"]) or (
                "maximum" in schema and number > schema["maximum"]
            ):
                raise bad_request(
                    f"{key} must be between {schema.get('minimum')} and {schema.get('maximum')}.", parameter=key
                )
    for key, spec in params.items():
        if spec.get("required") and key not in query:
            raise bad_request(f"The query parameter '{key}' is required.", parameter=key)


#: Klaviyo's ingestion limits for its event endpoints ("Rate limits, status codes, and errors",
#: Ingestion limits): "Max payload size: 5 MB decompressed" for /api/events and /client/events.
INGESTION_OPERATIONS = frozenset(
    {"create_event", "create_client_event", "bulk_create_events", "bulk_create_client_events"}
)
MAX_EVENT_PAYLOAD = 5 * 1024 * 1024
#: "each string cannot be larger than 100 KB" (EventCreateQueryV2's properties; bulk_create_events: "A
#: single string cannot exceed 100KB"), for every string of the payload: keys, the profile's attributes.
MAX_EVENT_STRING = 100 * 1024


def max_payload(op: Operation) -> int | None:
    """The largest body ``op`` accepts: what its reference says, or the event ingestion limit."""
    stated = op.max_payload_bytes
    if op.operation_id in INGESTION_OPERATIONS:
        return min(stated or MAX_EVENT_PAYLOAD, MAX_EVENT_PAYLOAD)
    return stated


def check_payload_size(op: Operation, raw_body: bytes) -> None:
    """A body over the size Klaviyo documents for the operation is refused before it is read.

    Klaviyo answers 400 (a Django ``RequestDataTooBig`` is a bad request); the limits come from the
    operation's reference ("The maximum allowed payload size is 100KB") and the ingestion limits.
    """
    limit = max_payload(op)
    if limit is not None and len(raw_body) > limit:
        raise bad_request(
            f"The request body is {len(raw_body):,} bytes; {op.operation_id} accepts at most {limit:,} bytes "
            f"({_size(limit)}). Split it into smaller requests.",
            pointer="/data",
        )


def check_event_strings(op: Operation, body: Any, raw_size: int) -> None:
    """No string of an event payload over ``MAX_EVENT_STRING`` bytes: its properties, metric, and the
    profile it carries (attributes, location, properties), keys as well as values. Looked for only in
    a body larger than the limit (a string is never longer in UTF-8 than in the JSON that holds it)."""
    if op.operation_id not in INGESTION_OPERATIONS or raw_size <= MAX_EVENT_STRING:
        return
    stack: list[tuple[Any, str]] = [(body, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            _check_event_string("A field", node, where)
        elif isinstance(node, (Mapping, list)):
            pairs = node.items() if isinstance(node, Mapping) else enumerate(node)
            for key, value in pairs:
                if isinstance(key, str):  # pointed at by its object: a pointer of 100 kB helps no one
                    _check_event_string("A key of this object", key, where)
                stack.append((value, f"{where}/{key}"))


def _check_event_string(what: str, text: str, where: str) -> None:
    if len(text) * 4 > MAX_EVENT_STRING and len(text.encode()) > MAX_EVENT_STRING:  # a char is 1-4 bytes
        raise bad_request(
            f"{what} is {len(text.encode()):,} bytes; each string of an event payload, its profile's "
            "included, can be at most 100 kB.",
            pointer=where or "/",
        )


def check_item_limits(op: Operation, body: Any) -> None:
    """The most items and the largest item Klaviyo documents for ``op``, as its catalog record holds
    them (``max_items``: "Accepts up to 500 records per request"; ``max_item_payload_bytes``: "The
    maximum allowed payload size per-record is 512KB"), applied to the body argument they name: a
    list of items, or the one item of a single-record body. Run before the schema check, so that
    10,001 profiles are refused for their number without validating each."""
    most, largest = op.max_items, op.max_item_payload_bytes
    if (most is None and largest is None) or not isinstance(body, Mapping):
        return
    found = _limited_items(op, body)
    if found is None:
        return
    pointer, name, node = found
    if isinstance(node, list):
        if most is not None and len(node) > most:
            raise bad_request(
                f"{op.operation_id} accepts at most {most} {name} per request; this one has {len(node)}. "
                f"Split them into requests of {most}.",
                pointer=pointer,
            )
        items = [(f"{pointer}/{i}", f"Item {i}", item) for i, item in enumerate(node)]
    else:
        items = [(pointer, "The item", node)]
    if largest is None:
        return
    for where, label, item in items:
        size = len(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode())
        if size > largest:
            raise bad_request(
                f"{label} is {size:,} bytes; {op.operation_id} accepts at most {_size(largest)} per item.",
                pointer=where,
            )


def _limited_items(op: Operation, body: Mapping[str, Any]) -> tuple[str, str, Any] | None:
    """(JSON pointer, argument name, value) of the body argument ``op``'s item limits apply to: ``max_items_arg``, or
    else its one nested resource argument; None when the body does not hold it."""
    args = [a for a in op.args if a["in"] == "body"]
    name = op.max_items_arg
    arg = next((a for a in args if (a["name"] == name if name else a["shape"].get("kind") == "data")), None)
    if arg is None:
        return None
    if (op.body or {}).get("root") == "linkage" or arg["shape"].get("bare"):
        path = ["data"]
    else:
        nested = arg["shape"].get("kind") in ("data", "rel")
        path = ["data", str(arg.get("section", "attributes")), arg["wire"], *(["data"] if nested else [])]
    node: Any = body
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return "/" + "/".join(path), str(arg["name"]), node


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit % (1024 * 1024) == 0 else f"{limit // 1024} KB"


#: Bulk jobs whose items Klaviyo checks one by one when the job runs, reporting a bad email or phone
#: number as that item's import error rather than refusing the request (dates are still checked).
ITEM_ERRORS_IN_JOB = frozenset({"bulk_import_profiles"})


def check_body(schemas: SchemaIndex, op: Operation, body: Any) -> None:
    name = op.record.get("request_schema")
    if not name or op.body is None or op.body.get("root") == "form":
        return
    by_item = op.operation_id in ITEM_ERRORS_IN_JOB
    errors = list(schemas.errors(name, body) if by_item else schemas.request_errors(name, body))
    if errors:
        errors = narrow(schemas, errors)
        best = _format_error(errors) or jsonschema.exceptions.best_match(errors)
        path = [str(p) for p in best.absolute_path]
        if best.validator == "required" and isinstance(best.instance, dict):  # point at the missing field
            path += [p for p in best.validator_value if p not in best.instance][:1]
        raise bad_request(_friendly(best), pointer="/" + "/".join(path) if path else "/data")
    unknown = schemas.unknown_field(name, body)
    if unknown:
        pointer, field, owner = unknown
        raise bad_request(f"'{field}' is not a valid field for the resource '{owner}'.", pointer=pointer)
    check_names(body)
    check_clears(op, body)


def check_body_id(op: Operation, params: Mapping[str, str], body: Any) -> None:
    """A 409 when an update's ``data.id`` names another resource than its URL (JSON:API: "the
    resource object's id MUST match the endpoint's"), for every ``PATCH /things/{id}``: checked here
    rather than by each handler, so an update never quietly changes the URL's resource while its
    body says another (``update_image`` and ``update_webhook`` once did)."""
    if op.method != "PATCH" or shape_of(op.path)[0] != "item" or "id" not in params:
        return
    data = body.get("data") if isinstance(body, Mapping) else None
    body_id = data.get("id") if isinstance(data, Mapping) else None
    if body_id is not None and str(body_id) != params["id"]:
        raise SandboxError(
            409,
            "conflict",
            "Conflict.",
            f"The body's data.id {body_id!r} does not match the URL's id {params['id']!r}; send the id of "
            "the resource you are updating in both.",
            pointer="/data/id",
        )


def check_clears(op: Operation, body: Any) -> None:
    """A 400 for an update's ``null`` where the resource always has a value: the request schema lets
    Klaviyo's updates send null for nearly every attribute, but only what the catalog marks
    ``clearable`` (the resource Klaviyo answers with may be empty there) is cleared by one; a null
    elsewhere (a campaign's name, a template's html) is refused, never stored nor ignored."""
    data = body.get("data") if op.method == "PATCH" and isinstance(body, Mapping) else None
    attrs = data.get("attributes") if isinstance(data, Mapping) else None
    if not isinstance(data, Mapping) or not isinstance(attrs, Mapping):
        return
    fields = [a for a in op.args if a.get("in") == "body" and a.get("section") == "attributes"]
    _refuse_nulls(fields, attrs, "/data/attributes", str(data.get("type") or "resource"))


def _refuse_nulls(fields: list[Any], given: Mapping[str, Any], pointer: str, owner: str) -> None:
    for f in fields:
        value = given.get(f["wire"])
        if value is None and f["wire"] in given and not f.get("clearable"):
            raise bad_request(
                f"'{f['wire']}' cannot be cleared: {_article(owner.replace('-', ' '))} always has one. Give a "
                "new value, or leave it out to keep it.",
                pointer=f"{pointer}/{f['wire']}",
            )
        if isinstance(value, Mapping) and f["shape"]["kind"] == "object":
            _refuse_nulls(f["shape"]["fields"], value, f"{pointer}/{f['wire']}", f["wire"].replace("_", " "))


def _article(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


#: Attributes that name the resource they belong to: a list's, tag's, template's, webhook's ``name``,
#: a data source's ``title``. Klaviyo refuses them blank ("This field may not be blank.", Django REST
#: framework's answer for a CharField; Klaviyo's UI asks for a name everywhere it creates one), so a
#: resource is never stored that no one can tell apart in a listing.
NAMING_ATTRIBUTES = ("name", "title")


def check_names(body: Any) -> None:
    """A 400 when ``data.attributes`` gives a naming attribute that is empty or only whitespace."""
    data = body.get("data") if isinstance(body, Mapping) else None
    attrs = data.get("attributes") if isinstance(data, Mapping) else None
    if not isinstance(attrs, Mapping):
        return
    for key in NAMING_ATTRIBUTES:
        value = attrs.get(key)
        if isinstance(value, str) and not value.strip():
            raise bad_request(
                f"{key} may not be blank; give the {(data or {}).get('type') or 'resource'} a {key}.",
                pointer=f"/data/attributes/{key}",
            )


def _format_error(errors: list[Any]) -> Any:
    """The first value in a format the field does not take (a date, an email, ...), looking inside
    ``anyOf`` branches too (a nullable date-time is ``anyOf: [date-time, null]``): the error that
    names the field and the fix, rather than "not valid under any of the given schemas"."""
    for error in errors:
        if error.validator == "format":
            return error
        found = _format_error(list(error.context or []))
        if found is not None:
            return found
    return None


#: What a value in each checked format looks like, for the 400's detail.
_FORMAT_HINTS = {
    "date-time": "an ISO 8601 datetime, e.g. 2026-07-15T10:00:00+00:00",
    "date": "an ISO 8601 date, YYYY-MM-DD, e.g. 2026-07-15",
}


def _format_message(error: Any) -> str:
    field = next((str(p) for p in reversed(list(error.absolute_path)) if not isinstance(p, int)), "The value")
    value = error.instance
    if error.validator_value == EMAIL_FORMAT:
        return f"Invalid email address {value!r}; give it as name@example.com."
    if error.validator_value == PHONE_FORMAT:
        return phone_message(str(value))
    hint = _FORMAT_HINTS.get(str(error.validator_value), f"in {error.validator_value} format")
    return f"{field} must be {hint} ({value!r} is not)."


def _friendly(error: Any) -> str:
    if error.validator == "format":
        return _format_message(error)
    message = str(error.message)
    if error.validator == "required":
        return message.replace("is a required property", "is required")
    if error.validator in ("additionalProperties", UNKNOWN_DISCRIMINATOR):
        return message
    if error.validator in ("minLength", "maxLength") and isinstance(error.instance, str):
        field = next((str(p) for p in reversed(list(error.absolute_path)) if not isinstance(p, int)), "The value")
        bound = "at least" if error.validator == "minLength" else "at most"
        unit = "character" if error.validator_value == 1 else "characters"
        return f"{field} must be {bound} {error.validator_value} {unit} long (it has {len(error.instance)})."
    if len(message) > 300:
        message = message[:300] + "…"
    return message
