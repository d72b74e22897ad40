"""Call every stable operation once against a sandbox with minimal valid arguments."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from klaviyo_sandbox import Sandbox
from klaviyo_sandbox._generic import shape_of
from klaviyo_sandbox._store import Resource
from klaviyo_toolkit._arguments import args_model
from klaviyo_toolkit.catalog import Operation, load_catalog
from klaviyo_toolkit.ratelimit import RateLimiter
from klaviyo_toolkit.tools._strict import strict_schema


def _profile_id(sb: Sandbox, email: str) -> str:
    """The id of the profile with ``email`` (created when missing), for calls that name one."""
    from klaviyo_sandbox.domains._common import new_profile

    found = sb.store.find("profile", "email", email)
    return (found or new_profile(sb.services, {"email": email}, sb.clock.time())).id


def _list_id(sb: Sandbox) -> str:
    existing = sb.store.all("list")
    if existing:
        return existing[0].id
    now = sb.clock.time()
    res = Resource("list", sb.store.new_id("list"), {"name": "Sweep"}, {"profiles": []}, now, now)
    sb.store.put(res)
    return res.id


def _stored_id(sb: Sandbox, rtype: str) -> str:
    """The id of a stored ``rtype`` (a bare one made when there is none), for a linkage that must exist."""
    existing = sb.store.all(rtype)
    if existing:
        return existing[0].id
    now = sb.clock.time()
    res = Resource(rtype, sb.store.new_id(rtype), {}, {}, now, now)
    sb.store.put(res)
    return res.id


def _flow_action_definition(sb: Sandbox) -> dict[str, Any]:
    """The definition of the flow action the sweep will patch (the first stored), unchanged."""
    existing = sb.store.all("flow-action")
    if existing and existing[0].attributes.get("definition"):
        return dict(existing[0].attributes["definition"])
    return {"type": "time-delay", "data": {"unit": "days", "value": 1}}


def _metric_id(sb: Sandbox) -> str:
    from klaviyo_sandbox.domains._common import find_or_create_metric

    return find_or_create_metric(sb.services, "x", sb.clock.time()).id


def _campaign_fixture(sb: Sandbox) -> dict[str, str]:
    """A list, templates, an image and campaigns in the states the campaign calls need (made once):
    ``campaign``/``message`` a draft with template and image, ``scheduled`` sent for next month (its
    send job can be cancelled), ``to_send`` and ``to_delete`` drafts, ``spare`` an unused template."""
    made = sb.store.value("sweep_campaigns")
    if made:
        return dict(made)
    from klaviyo_sandbox.domains._common import iso

    client, now = sb.client(rate_limiter=RateLimiter(factor=None)), sb.clock.time()
    list_id = client.call("create_list", name="Sweep campaigns").body["data"]["id"]

    def template(name: str) -> str:
        return str(client.call("create_template", name=name, editor_type="CODE", html="<p>x</p>").body["data"]["id"])

    def campaign(name: str, **attrs: Any) -> tuple[str, str]:
        data = client.call(
            "create_campaign",
            name=name,
            audiences={"included": [list_id]},
            campaign_messages=[{"definition": {"channel": "email", "content": {"subject": name}}}],
            **attrs,
        ).body["data"]
        message = data["relationships"]["campaign-messages"]["data"][0]["id"]
        client.call("assign_template_to_campaign_message", id=message, template_id=made["template"])
        return str(data["id"]), str(message)

    made = {"list": list_id, "template": template("Sweep"), "spare": template("Sweep spare")}
    made["campaign"], made["message"] = campaign("Sweep")
    image = Resource(
        "image",
        sb.store.new_id("image"),
        {"name": "sweep.png", "image_url": "https://example.com/s.png", "format": "png", "size": 1, "hidden": False},
        {},
        now,
        now,
    )
    sb.store.put(image)
    made["image"] = image.id
    client.call("update_image_for_campaign_message", id=made["message"], image_id=image.id)
    client.call("refresh_campaign_recipient_estimation", id=made["campaign"])
    next_month = {"method": "static", "datetime": iso(now + 30 * 86400)}
    made["scheduled"], _ = campaign("Sweep scheduled", send_strategy=next_month)
    client.call("send_campaign", id=made["scheduled"])
    made["to_send"], _ = campaign("Sweep send")
    made["to_delete"], _ = campaign("Sweep delete")
    sb.store.set_value("sweep_campaigns", made)
    return made


def _fixture(key: str, **more: str) -> Callable[[Sandbox], dict[str, Any]]:
    """Arguments naming campaign fixture ``key`` as ``id`` (and other fixtures as ``more``)."""
    return lambda sb: {"id": _campaign_fixture(sb)[key], **{arg: _campaign_fixture(sb)[k] for arg, k in more.items()}}


_LAST_30_DAYS = {"timeframe": {"key": "last_30_days"}}  # daily series cover at most 60 days
_CAMPAIGN_EXTRA: dict[str, dict[str, Any] | Callable[[Sandbox], dict[str, Any]]] = {
    **{
        op: _fixture("campaign")
        for op in (
            "get_campaign",
            "update_campaign",
            "create_campaign_clone",
            "get_messages_for_campaign",
            "get_message_ids_for_campaign",
            "get_tags_for_campaign",
            "get_tag_ids_for_campaign",
            "refresh_campaign_recipient_estimation",
            "get_campaign_recipient_estimation",
            "get_campaign_recipient_estimation_job",
        )
    },
    **{
        op: _fixture("message")
        for op in (
            "get_campaign_message",
            "update_campaign_message",
            "get_campaign_for_campaign_message",
            "get_campaign_id_for_campaign_message",
            "get_template_for_campaign_message",
            "get_template_id_for_campaign_message",
            "get_image_for_campaign_message",
            "get_image_id_for_campaign_message",
        )
    },
    **{op: _fixture("template") for op in ("get_template", "update_template", "clone_template", "render_template")},
    "assign_template_to_campaign_message": _fixture("message", template_id="template"),
    "update_image_for_campaign_message": _fixture("message", image_id="image"),
    "cancel_campaign_send": _fixture("scheduled"),
    "get_campaign_send_job": _fixture("scheduled"),
    "send_campaign": _fixture("to_send"),
    "tag_campaigns": lambda sb: {"campaign_ids": [_campaign_fixture(sb)["campaign"]]},
    "remove_tag_from_campaigns": lambda sb: {"campaign_ids": [_campaign_fixture(sb)["campaign"]]},
    "delete_campaign": _fixture("to_delete"),
    "delete_template": _fixture("spare"),
    "create_campaign": lambda sb: {"audiences": {"included": [_campaign_fixture(sb)["list"]]}},
    "create_template": {"editor_type": "CODE", "html": "<p>x</p>"},
    "query_campaign_values": lambda sb: {"conversion_metric_id": _metric_id(sb)},
    "query_flow_values": lambda sb: {"conversion_metric_id": _metric_id(sb)},
    "query_flow_series": lambda sb: {"conversion_metric_id": _metric_id(sb), **_LAST_30_DAYS},
    "query_form_series": _LAST_30_DAYS,
    "query_segment_series": _LAST_30_DAYS,
}

_CONSENT_ANY = {
    "type": "profile-marketing-consent",
    "consent": {"channel": "email", "can_receive_marketing": True, "consent_status": {"subscription": "any"}},
}

#: Operation id -> arguments to use instead of the sampled ones (or a function of the sandbox giving them).
EXTRA: dict[str, dict[str, Any] | Callable[[Sandbox], dict[str, Any]]] = {
    "bulk_subscribe_profiles": {
        "profiles": [
            {"email": "sweep@example.com", "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}
        ]
    },
    "bulk_suppress_profiles": {"profiles": [{"email": "sweep@example.com"}]},
    "bulk_unsuppress_profiles": {"profiles": [{"email": "sweep@example.com"}]},
    "create_client_subscription": lambda sb: {"profile": {"email": "sweep@example.com"}, "list_id": _list_id(sb)},
    "request_profile_deletion": {"profile": {"email": "sweep@example.com"}},
    "add_profiles_to_list": lambda sb: {"profile_ids": [_profile_id(sb, "sweep-member@example.com")]},
    "create_client_profile": {"email": "sweep-client@example.com"},
    "create_or_update_profile": {"email": "sweep-upsert@example.com"},
    "create_profile": {"email": "sweep-create@example.com"},
    "merge_profiles": lambda sb: {
        "id": _profile_id(sb, "sweep-keep@example.com"),
        "profile_ids": [_profile_id(sb, "sweep-merged@example.com")],
    },
    "create_client_push_token": {"token": "sweep-client-token"},
    # linkages name resources that exist (a made-up id is a 404, as in Klaviyo)
    "create_client_back_in_stock_subscription": lambda sb: {"variant_id": _stored_id(sb, "catalog-variant")},
    "create_object_schema_relationship": lambda sb: {
        "object_schemas": [{"id": _stored_id(sb, "object-schema"), "name": "x", "description": None}]
    },
    "update_object_schema_relationship": lambda sb: {"object_schema_id": _stored_id(sb, "object-schema")},
    "get_client_ip_allowlist": {"id": "integration-egress"},  # the one list, at its fixed id
    "create_push_token": {"token": "sweep-server-token"},
    "create_segment": {"definition": {"condition_groups": [{"conditions": [_CONSENT_ANY]}]}},
    "update_segment": {"definition": {"condition_groups": [{"conditions": [_CONSENT_ANY]}]}},
    # events need a profile identifier; a flow's status is draft, manual or live; aggregates need a
    # metric that exists and a time range
    "create_event": {"profile": {"email": "sweep@example.com"}},
    "create_client_event": {"profile": {"email": "sweep@example.com"}},
    "bulk_create_client_events": {"profile": {"email": "sweep@example.com"}},
    "bulk_create_events": {
        "events_bulk_create": [
            {"profile": {"email": "sweep@example.com"}, "events": [{"properties": "{}", "metric": {"name": "x"}}]}
        ]
    },
    "update_flow": {"status": "live"},
    "create_flow": lambda sb: {
        "definition": {
            "triggers": json.dumps([{"type": "metric", "id": _metric_id(sb)}]),
            "entry_action_id": "a1",
            "actions": [{"temporary_id": "a1", "type": "send-email", "data": {"message": {"subject_line": "x"}}}],
        }
    },
    "update_flow_action": lambda sb: {"definition": json.dumps(_flow_action_definition(sb))},
    "query_metric_aggregates": lambda sb: {
        "metric_id": _metric_id(sb),
        "filter": ["greater-or-equal(datetime,2026-01-01T00:00:00)", "less-than(datetime,2026-01-02T00:00:00)"],
    },
    **_CAMPAIGN_EXTRA,
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
        return {
            k: sample(v, k, op)
            for k, v in schema["properties"].items()
            if k in schema.get("required", []) and "null" not in str(v.get("type"))
        }
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
    given = extra(sb) if callable(extra) else extra
    args.update(given)
    kind, segs = shape_of(op.path)
    id_enum = schema["properties"].get("id", {}).get("enum")
    if "id" in args and kind in ("item", "related", "relationship") and not id_enum and "id" not in given:
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

    client = sb.client(rate_limiter=RateLimiter(factor=None))  # no real waits; the sandbox enforces its own limits
    problems = {}
    for op in load_catalog():
        try:
            args = minimal_args(op, sb)
            client.call(op, **args)
        except KlaviyoError as exc:
            problems[op.operation_id] = str(exc)[:400]
    return problems
