"""Call every stable operation once against a sandbox with minimal valid arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from klaviyo_toolkit._arguments import args_model
from klaviyo_toolkit.catalog import Operation, load_catalog
from klaviyo_toolkit.sandbox import Sandbox
from klaviyo_toolkit.sandbox._generic import shape_of
from klaviyo_toolkit.sandbox._store import Resource
from klaviyo_toolkit.tools._strict import strict_schema

def _profile_id(sb: Sandbox, email: str) -> str:
    """The id of the profile with ``email`` (created when missing), for calls that name one."""
    from klaviyo_toolkit.sandbox.domains._common import new_profile

    found = sb.store.find("profile", "email", email)
    return (found or new_profile(sb, {"email": email}, sb.clock.time())).id


def _list_id(sb: Sandbox) -> str:
    existing = sb.store.all("list")
    if existing:
        return existing[0].id
    res = Resource("list", sb.store.new_id("list"), {"name": "Sweep"}, {"profiles": []}, sb.clock.time(), sb.clock.time())
    sb.store.put(res)
    return res.id


def _metric_id(sb: Sandbox) -> str:
    from klaviyo_toolkit.sandbox.domains._common import find_or_create_metric

    return find_or_create_metric(sb, "x", sb.clock.time()).id


_CONSENT_ANY = {"type": "profile-marketing-consent",
                "consent": {"channel": "email", "can_receive_marketing": True, "consent_status": {"subscription": "any"}}}

#: Operation id -> arguments to use instead of the sampled ones (or a function of the sandbox giving them).
EXTRA: dict[str, dict[str, Any] | Callable[[Sandbox], dict[str, Any]]] = {
    "bulk_subscribe_profiles": {"profiles": [{"email": "sweep@example.com", "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}]},
    "bulk_suppress_profiles": {"profiles": [{"email": "sweep@example.com"}]},
    "bulk_unsuppress_profiles": {"profiles": [{"email": "sweep@example.com"}]},
    "create_client_subscription": lambda sb: {"profile": {"email": "sweep@example.com"}, "list_id": _list_id(sb)},
    "request_profile_deletion": {"profile": {"email": "sweep@example.com"}},
    "add_profiles_to_list": lambda sb: {"profile_ids": [_profile_id(sb, "sweep-member@example.com")]},
    "create_client_profile": {"email": "sweep-client@example.com"},
    "create_or_update_profile": {"email": "sweep-upsert@example.com"},
    "create_profile": {"email": "sweep-create@example.com"},
    "merge_profiles": lambda sb: {"id": _profile_id(sb, "sweep-keep@example.com"),
                                  "profile_ids": [_profile_id(sb, "sweep-merged@example.com")]},
    "create_client_push_token": {"token": "sweep-client-token"},
    "create_push_token": {"token": "sweep-server-token"},
    "create_segment": {"definition": {"condition_groups": [{"conditions": [_CONSENT_ANY]}]}},
    "update_segment": {"definition": {"condition_groups": [{"conditions": [_CONSENT_ANY]}]}},
    # events need a profile identifier; a flow's status is draft, manual or live; aggregates need a
    # metric that exists and a time range
    "create_event": {"profile": {"email": "sweep@example.com"}},
    "create_client_event": {"profile": {"email": "sweep@example.com"}},
    "bulk_create_client_events": {"profile": {"email": "sweep@example.com"}},
    "bulk_create_events": {"events_bulk_create": [{"profile": {"email": "sweep@example.com"},
                                                   "events": [{"properties": "{}", "metric": {"name": "x"}}]}]},
    "update_flow": {"status": "live"},
    "query_metric_aggregates": lambda sb: {
        "metric_id": _metric_id(sb),
        "filter": ["greater-or-equal(datetime,2026-01-01T00:00:00)", "less-than(datetime,2026-01-02T00:00:00)"]},
}


def sample(schema: dict[str, Any], name: str, op: Operation) -> Any:
    if "JSON text" in schema.get("description", ""):
        return ["{}"] if "array" in str(schema.get("type")) else "{}"
    if name == "file":
        return "aGVsbG8="
    if name == "filter" and schema.get("type") == "string" and op.filters:
        if op.operation_id == "get_campaigns":
            return "equals(messages.channel,'email')"
        field, spec = next(iter(op.filters.items()))
        value = "'2020-01-01T00:00:00Z'" if spec.get("format") == "date-time" else "'x'"
        if spec.get("format") == "date-time":
            value = "2020-01-01T00:00:00Z"
        return f"{spec['operators'][0]}({field},{value})"
    if name in ("email",) or name.endswith("_email"):
        return "sweep@example.com"
    if name == "phone_number":
        return "+15005550006"
    if "anyOf" in schema:
        return sample(next(s for s in schema["anyOf"] if s.get("type") != "null"), name, op)
    if "const" in schema:
        return schema["const"]
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next(t for t in typ if t != "null")
    if "enum" in schema:
        return next(v for v in schema["enum"] if v is not None)
    if typ == "object":
        return {k: sample(v, k, op) for k, v in schema["properties"].items()
                if k in schema.get("required", []) and "null" not in str(v.get("type"))}
    if typ == "array":
        return [sample(schema["items"], name, op)]
    if typ == "string" and schema.get("format") == "date-time":
        return "2026-01-01T00:00:00+00:00"
    return {"string": "x", "integer": 1, "number": 1.0, "boolean": True}.get(str(typ), "x")


def minimal_args(op: Operation, sb: Sandbox) -> dict[str, Any]:
    schema = strict_schema(args_model(op))
    args = {}
    for key, sub in schema["properties"].items():
        if key == "company_id":
            continue  # the client fills in the public key
        if "null" in str(sub.get("type")) or ("anyOf" in sub and {"type": "null"} in sub["anyOf"]):
            continue
        args[key] = sample(sub, key, op)
    extra = EXTRA.get(op.operation_id, {})
    args.update(extra(sb) if callable(extra) else extra)
    kind, segs = shape_of(op.path)
    id_enum = schema["properties"].get("id", {}).get("enum")
    if "id" in args and kind in ("item", "related", "relationship") and not id_enum:
        rtype = sb.collection_type(segs[0]) or sb.primary_type(op) or segs[0]
        existing = sb.store.all(rtype)
        if existing:
            args["id"] = existing[0].id
        else:
            res = Resource(rtype, sb.store.new_id(rtype), {}, {}, sb.clock.time(), sb.clock.time())
            sb.store.put(res)
            args["id"] = res.id
    if "job_id" in args:
        rtype = sb.collection_type(segs[0]) or segs[0]
        existing = sb.store.all(rtype)
        if existing:
            args["job_id"] = existing[0].id
        else:
            res = Resource(rtype, sb.store.new_id(rtype), {}, {}, sb.clock.time(), sb.clock.time())
            sb.store.put(res)
            args["job_id"] = res.id
    if id_enum and "id" in args:
        rtype = sb.collection_type(segs[0]) or segs[0]
        if sb.store.get(rtype, id_enum[0]) is None:
            sb.store.put(Resource(rtype, id_enum[0], {}, {}, sb.clock.time(), sb.clock.time()))
        args["id"] = id_enum[0]
    return args


def sweep(sb: Sandbox) -> dict[str, str]:
    """Operation id -> problem, for every operation that did not answer 2xx with a valid document."""
    from klaviyo_toolkit.errors import KlaviyoError

    client = sb.client()
    problems = {}
    for op in load_catalog():
        try:
            args = minimal_args(op, sb)
            client.call(op, **args)
        except KlaviyoError as exc:
            problems[op.operation_id] = str(exc)[:400]
    return problems
