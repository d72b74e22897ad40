"""Sandbox domain: flows, flow actions and flow messages, stored from Klaviyo's encoded definition.

``create_flow`` takes a ``FlowDefinition`` (one trigger; actions with ``temporary_id`` and
``links``; ``entry_action_id``), checks it (trigger metric/list/segment exists, links point at
actions of the definition, templates exist) and stores:

- **flow**: name, status (``draft`` at creation), archived, trigger_type, created, updated and
  ``definition`` (the spec's FlowDefinition with real ids; shown with
  ``additional-fields[flow]=definition``); relationship ``flow-actions`` in definition order;
- **flow-action** per action: ``definition`` (the action with its real numeric id and links);
  relationships ``flow`` and ``flow-messages``; filters ``action_type`` (``send-email`` or the
  older ``SEND_EMAIL``) and ``status`` (the action's ``data.status``, else the flow's);
- **flow-message** per send action: ``channel`` and ``definition`` (the message content, with its
  id); relationships ``flow-action`` and ``template`` (when the content names a ``template_id``).

The flow definition is rebuilt from its actions after every change, so ``get_flow``,
``get_flow_action`` and ``get_flow_message`` always agree. ``update_flow`` sets the status of the
flow and of all its send actions; deleting an action relinks its predecessors to its successor.
Which flows a metric, list or segment triggers is computed from the definitions
(``/metrics/{id}/flow-triggers``, ...). The flow engine (what a live flow does when triggered) is in
``flow_engine.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._context import Ctx, Reply
from .._jsonapi import bad_request, iso
from .._services import Services
from .._store import Linkage, Resource, Store
from ..domain import DomainBuilder
from ._common import require
from .flow_engine import flow_actions, flow_trigger

Json = dict[str, Any]
STATUSES = ("draft", "manual", "live")
_d = DomainBuilder("flows")
#: Action type -> flow-message channel, for actions that carry a message.
MESSAGE_CHANNELS = {
    "send-email": "email",
    "send-sms": "sms",
    "send-mobile-push": "push",
    "send-whatsapp": "whatsapp",
    "send-webhook": "webhook",
    "send-internal-alert": "internal_alert",
}
_TRIGGER_TYPES = {
    "metric": "Metric",
    "list": "Added to List",
    "segment": "Added to List",
    "price-drop": "Price Drop",
    "low-inventory": "Low Inventory",
}
_TRIGGER_RESOURCES = {"metric": "metric", "list": "list", "segment": "segment"}
_BASE = "/data/attributes/definition"


def trigger_type(trigger: Mapping[str, Any] | None) -> str:
    kind = str((trigger or {}).get("type") or "")
    if not kind:
        return "Unconfigured"
    return _TRIGGER_TYPES.get(kind, "Date Based" if "date" in kind else "Unconfigured")


def _new_action_id(store: Store) -> str:
    while True:
        candidate = str(store.rng.randrange(10_000_000, 99_999_999))
        if store.get("flow-action", candidate) is None:
            return candidate


# -- create ------------------------------------------------------------------------------------
def _check_trigger(ctx: Ctx, triggers: Any) -> None:
    require(
        isinstance(triggers, list) and len(triggers) == 1,
        'A flow takes exactly one trigger, e.g. [{"type": "metric", "id": "<metric id>"}].',
        f"{_BASE}/triggers",
    )
    trigger = triggers[0]
    rtype = _TRIGGER_RESOURCES.get(str(trigger.get("type")))
    if rtype is None:
        return
    rid = trigger.get("id")
    if not rid or ctx.store.get(rtype, str(rid)) is None:
        raise bad_request(
            f"The {trigger['type']} trigger needs the id of an existing {rtype}"
            f"{f'; there is no {rtype} {rid}' if rid else ''}.",
            pointer=f"{_BASE}/triggers/0/id",
        )


def _link_values(links: Any) -> list[tuple[str, str]]:
    """(key, target) pairs of an action's ``links`` (``next``, ``next_if_true``, ...)."""
    if not isinstance(links, Mapping):
        return []
    return [(k, str(v)) for k, v in links.items() if isinstance(v, (str, int)) and v != ""]


def _check_template(ctx: Ctx, data: Any, pointer: str) -> None:
    message = (data or {}).get("message") if isinstance(data, Mapping) else None
    template_id = message.get("template_id") if isinstance(message, Mapping) else None
    if template_id and ctx.store.get("template", str(template_id)) is None:
        raise bad_request(
            f"There is no template {template_id}; create it first or leave template_id out.",
            pointer=f"{pointer}/data/message/template_id",
        )


@_d.handles("create_flow")
def create_flow(ctx: Ctx) -> Reply:
    attrs = ctx.attrs
    definition = dict(attrs.get("definition") or {})
    _check_trigger(ctx, definition.get("triggers"))
    actions = list(definition.get("actions") or [])
    temp: dict[str, str] = {}
    for i, action in enumerate(actions):
        where = f"{_BASE}/actions/{i}"
        if action.get("id"):
            raise bad_request(
                "New actions take a temporary_id, not an id (ids are given by Klaviyo).", pointer=f"{where}/id"
            )
        tid = action.get("temporary_id")
        require(
            bool(tid),
            "Every action needs a temporary_id that links and entry_action_id can refer to.",
            f"{where}/temporary_id",
        )
        require(
            str(tid) not in temp,
            f"temporary_id {tid!r} is used by two actions; make each unique.",
            f"{where}/temporary_id",
        )
        temp[str(tid)] = _new_action_id(ctx.store)
        _check_template(ctx, action.get("data"), where)
    for i, action in enumerate(actions):
        for key, target in _link_values(action.get("links")):
            require(
                target in temp,
                f"links.{key} is {target!r}, which is not the temporary_id of an action "
                f"in this definition (known: {', '.join(temp) or 'none'}).",
                f"{_BASE}/actions/{i}/links/{key}",
            )
    entry = definition.get("entry_action_id")
    if actions or entry:
        require(
            str(entry) in temp,
            f"entry_action_id {entry!r} must be the temporary_id of one of the actions.",
            f"{_BASE}/entry_action_id",
        )
    now = ctx.now
    flow = Resource(
        "flow",
        ctx.store.new_id("flow", now),
        {
            "name": attrs.get("name"),
            "status": "draft",
            "archived": False,
            "created": iso(now),
            "updated": iso(now),
            "trigger_type": trigger_type((definition.get("triggers") or [None])[0]),
            "definition": {k: v for k, v in definition.items() if k != "actions"},
        },
        {"flow-actions": []},
        now,
        now,
    )
    flow.attributes["definition"]["entry_action_id"] = temp.get(str(entry)) if entry else None
    for action in actions:
        real = temp[str(action["temporary_id"])]
        links = action.get("links")
        if isinstance(links, Mapping):
            links = {k: (temp.get(str(v)) if v not in (None, "") else None) for k, v in links.items()}
        body = {"id": real, "type": action["type"], "links": links, "data": action.get("data")}
        res = Resource(
            "flow-action",
            real,
            {"created": iso(now), "updated": iso(now)},
            {"flow": ("flow", flow.id), "flow-messages": []},
            now,
            now,
        )
        write_action(ctx.svc, res, body, flow_status="draft")
        flow.relationships["flow-actions"].append(("flow-action", real))  # type: ignore[union-attr]
    sync_flow(ctx.svc, flow)
    reply = ctx.one(flow, status=201)
    fields = ctx.list_param("fields[flow]")
    if fields is None or "definition" in fields:
        reply.body["data"]["attributes"]["definition"] = flow.attributes["definition"]
    return reply


def write_action(svc: Services, action: Resource, body: Json, *, flow_status: str | None = None) -> None:
    """Store an action's definition and keep its flow-message (content, channel, template) in step."""
    body = dict(body)
    channel = MESSAGE_CHANNELS.get(str(body.get("type")))
    now = svc.clock.time()
    if channel:
        data = dict(body.get("data") or {})
        data.setdefault("status", flow_status or "draft")
        message = dict(data.get("message") or {})
        mid = next((i for _, i in action.linked("flow-messages")), None) or svc.store.new_id("flow-message", now)
        message["id"] = mid
        data["message"] = message
        body["data"] = data
        msg = svc.store.get("flow-message", mid) or Resource("flow-message", mid, {"created": iso(now)}, {}, now, now)
        msg.attributes.update({"channel": channel, "definition": message, "updated": iso(now)})
        msg.relationships["flow-action"] = ("flow-action", action.id)
        template = message.get("template_id")
        msg.relationships["template"] = ("template", str(template)) if template else None
        msg.updated = now
        svc.store.put(msg)
        action.relationships["flow-messages"] = [("flow-message", mid)]
    action.attributes["definition"] = body
    action.attributes["updated"] = iso(now)
    action.updated = now
    svc.store.put(action)


def sync_flow(svc: Services, flow: Resource) -> None:
    """Rebuild the flow's definition.actions from its flow-action resources."""
    definition = dict(flow.attributes.get("definition") or {})
    if not definition and not flow.linked("flow-actions"):
        svc.store.put(flow)
        return
    definition.setdefault("triggers", [])
    definition.setdefault("entry_action_id", None)
    definition["actions"] = [a.attributes.get("definition") for a in flow_actions(svc.store, flow)]
    flow.attributes["definition"] = definition
    svc.store.put(flow)


# -- update and delete -------------------------------------------------------------------------
@_d.handles("update_flow")
def update_flow(ctx: Ctx) -> Reply:
    flow = ctx.get("flow")
    ctx.check_body_id(flow.id)
    status = ctx.attrs.get("status")
    require(
        status in STATUSES, f"status must be one of {', '.join(STATUSES)}; got {status!r}.", "/data/attributes/status"
    )
    now = ctx.now
    flow.attributes.update({"status": status, "updated": iso(now)})
    flow.updated = now
    for action in flow_actions(ctx.store, flow):
        body = dict(action.attributes.get("definition") or {})
        if isinstance(body.get("data"), Mapping) and "status" in body["data"]:
            body["data"] = {**body["data"], "status": status}
            write_action(ctx.svc, action, body)
    sync_flow(ctx.svc, flow)
    return ctx.one(flow)


def _flow_of(store: Store, action: Resource) -> Resource | None:
    links = action.linked("flow")
    return store.get("flow", links[0][1]) if links else None


@_d.handles("update_flow_action")
def update_flow_action(ctx: Ctx) -> Reply:
    action = ctx.get("flow-action")
    ctx.check_body_id(action.id)
    new = dict(ctx.attrs.get("definition") or {})
    old = dict(action.attributes.get("definition") or {})
    pointer = "/data/attributes/definition"
    if old.get("type"):
        require(
            new.get("type") == old["type"],
            f"An action's type cannot change (this one is {old['type']}); "
            "delete it and create a flow with the new action instead.",
            f"{pointer}/type",
        )
    require(
        new.get("id") in (None, action.id), f"definition.id must be {action.id} (this action's id).", f"{pointer}/id"
    )
    flow = _flow_of(ctx.store, action)
    siblings = {a.id for a in flow_actions(ctx.store, flow)} if flow else set()
    links = new.get("links", old.get("links"))
    for key, target in _link_values(links):
        require(
            target in siblings,
            f"links.{key} is {target!r}, which is not an action of this flow.",
            f"{pointer}/links/{key}",
        )
    _check_template(ctx, new.get("data"), pointer)
    new.pop("temporary_id", None)
    data = new.get("data", old.get("data"))
    previous = old.get("data")
    before: dict[str, Any] = previous if isinstance(previous, dict) else {}
    if isinstance(data, dict) and "status" not in data and "status" in before:
        # an edit that leaves the status out keeps it: a paused message stays paused
        data = {**data, "status": before["status"]}
    body = {"id": action.id, "type": new.get("type"), "links": links, "data": data}
    write_action(ctx.svc, action, body, flow_status=(flow.attributes.get("status") if flow else None))
    if flow is not None:
        sync_flow(ctx.svc, flow)
    return ctx.one(action)


@_d.handles("delete_flow_action")
def delete_flow_action(ctx: Ctx) -> Reply:
    action = ctx.get("flow-action")
    flow = _flow_of(ctx.store, action)
    successor = ((action.attributes.get("definition") or {}).get("links") or {}).get("next")
    if flow is not None:
        for other in flow_actions(ctx.store, flow):
            body = dict(other.attributes.get("definition") or {})
            links = body.get("links")
            if isinstance(links, Mapping) and action.id in links.values():
                body["links"] = {k: (successor if v == action.id else v) for k, v in links.items()}
                write_action(ctx.svc, other, body)
        definition = flow.attributes.get("definition") or {}
        if definition.get("entry_action_id") == action.id:
            definition["entry_action_id"] = successor
    for _, mid in action.linked("flow-messages"):
        msg = ctx.store.get("flow-message", mid)
        if msg is not None:
            ctx.svc.forget(msg)
    ctx.svc.forget(action)
    if flow is not None:
        sync_flow(ctx.svc, flow)
    return ctx.no_content()


@_d.handles("delete_flow")
def delete_flow(ctx: Ctx) -> Reply:
    flow = ctx.get("flow")
    for action in flow_actions(ctx.store, flow):
        for _, mid in action.linked("flow-messages"):
            msg = ctx.store.get("flow-message", mid)
            if msg is not None:
                ctx.store.delete(msg.type, msg.id)
        ctx.store.delete(action.type, action.id)
    ctx.svc.forget(flow)
    return ctx.no_content()


# -- computed relationships and filter fields ------------------------------------------------------
def _triggered(rtype: str) -> Callable[[Services, Resource], list[Linkage]]:
    def resolve(svc: Services, res: Resource) -> list[Linkage]:
        return [
            ("flow", f.id)
            for f in svc.store.iter("flow")
            if flow_trigger(f).get("type") == rtype and str(flow_trigger(f).get("id")) == res.id
        ]

    return resolve


for _rtype in ("metric", "list", "segment"):
    _d.add_related(_rtype, "flow-triggers", _triggered(_rtype))


@_d.field("flow-action", "action_type")
def _action_type(store: Store, res: Resource) -> list[str]:
    kind = str((res.attributes.get("definition") or {}).get("type") or "")
    return [kind, kind.replace("-", "_").upper()] if kind else []


@_d.field("flow-action", "status")
def _action_status(store: Store, res: Resource) -> Any:
    data = (res.attributes.get("definition") or {}).get("data")
    if isinstance(data, Mapping) and data.get("status"):
        return data["status"]
    flow = _flow_of(store, res)
    return flow.attributes.get("status") if flow else None


_d.add_field(
    "flow-message",
    "name",
    lambda store, res: (res.attributes.get("definition") or {}).get("name") or res.attributes.get("name"),
)

DOMAIN = _d.build()

__all__ = ["DOMAIN", "MESSAGE_CHANNELS", "flow_actions", "flow_trigger", "sync_flow", "trigger_type", "write_action"]
