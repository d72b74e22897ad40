"""Sandbox domain: campaigns and campaign messages, as Klaviyo's Campaigns API behaves.

- ``create_campaign`` stores a ``Draft`` campaign (send strategy ``immediate``, smart sending and, for
  email, open and click tracking unless given) and one campaign-message resource for its message,
  filled like Klaviyo fills it (label = campaign name, sender from the account's contact details; a
  push message's ``notification_type`` defaults to ``standard``).
  Audiences must be existing lists or segments; one message per campaign.
- ``get_campaigns`` refuses to list without a ``messages.channel`` filter, as Klaviyo does; campaign
  documents always carry their ``campaign-messages`` and ``tags`` linkages.
- Only drafts change (a sent campaign may still be renamed) or are deleted; a deleted campaign takes
  its messages, their template copies, estimation and send job with it.
- ``create_campaign_clone`` copies a campaign, its message and the message's template into a new draft.
- ``assign_template_to_campaign_message`` stores a non-reusable copy of the template on the message
  and answers with Klaviyo's flattened message shape (label, channel, content).

Sending and recipient estimation live in ``campaign_sends.py``, templates in ``templates.py``.
Message images and tag relationships stay with the generic engine.
"""

from __future__ import annotations

import copy
from typing import Any

from klaviyo_toolkit.filters import Comparison, Expr, FilterSyntaxError, Logical, parse_filter

from .._context import Ctx, Reply
from .._jsonapi import SandboxError, bad_request, iso
from .._services import Services
from .._store import Resource, Store
from ..domain import DomainBuilder
from . import campaign_sends, templates
from .campaign_sends import check_audiences, messages_of, settle

Json = dict[str, Any]
MESSAGES = "campaign-messages"
_d = DomainBuilder("campaigns")
EMAIL_CONTENT_KEYS = ("subject", "preview_text", "from_email", "from_label", "reply_to_email", "cc_email", "bcc_email")
SMS_RENDER_DEFAULTS: Json = {
    "shorten_links": True,
    "add_org_prefix": True,
    "add_info_link": True,
    "add_opt_out_language": False,
}
#: The channels a campaign message has (the spec's message definitions: email, SMS, mobile push);
#: Klaviyo refuses a channel filter naming any other rather than answering an empty page.
CHANNELS = ("email", "sms", "mobile_push")
CHANNEL_FILTER_HELP = (
    "A channel filter is required to list campaigns: add filter=equals(messages.channel,'email') "
    "(or 'sms', 'mobile_push')."
)


@_d.field("campaign", "messages.channel")
def _channels(store: Store, campaign: Resource) -> list[str]:
    found = (store.get(t, i) for t, i in campaign.linked(MESSAGES))
    return [campaign_sends.channel_of(m) for m in found if m is not None]


def _comparisons(expr: Expr) -> list[Comparison]:
    """Every comparison in a filter expression, depth first."""
    if isinstance(expr, Logical):
        return [c for item in expr.items for c in _comparisons(item)]
    return [expr]


# -- campaigns ------------------------------------------------------------------------------------------
@_d.handles("create_campaign")
def create_campaign(ctx: Ctx) -> Reply:
    svc = ctx.svc
    attrs = ctx.attrs
    items = (attrs.get(MESSAGES) or {}).get("data") or []
    pointer = f"/data/attributes/{MESSAGES}/data"
    if not items:
        raise bad_request(
            'A campaign needs one campaign message; add {"attributes": {"definition": '
            '{"channel": "email"}}} to campaign-messages.data.',
            pointer=pointer,
        )
    if len(items) > 1:
        raise bad_request(
            "A campaign has exactly one message; create one campaign per message.", pointer=f"{pointer}/1"
        )
    check_audiences(svc, attrs.get("audiences"), "/data/attributes/audiences")
    now = ctx.now
    channel = str(items[0]["attributes"]["definition"].get("channel"))
    campaign = Resource(
        "campaign",
        ctx.store.new_id("campaign", now),
        {
            "name": attrs["name"],
            "status": "Draft",
            "archived": False,
            "audiences": _audiences(attrs["audiences"]),
            "send_options": {"use_smart_sending": True, **(attrs.get("send_options") or {})},
            "tracking_options": _tracking(channel, attrs.get("tracking_options")),
            "send_strategy": attrs.get("send_strategy") or {"method": "immediate"},
            "created_at": iso(now),
            "scheduled_at": None,
            "updated_at": iso(now),
            "send_time": None,
        },
        {MESSAGES: []},
        now,
        now,
    )
    ctx.store.put(campaign)
    for item in items:
        new_message(svc, campaign, item["attributes"]["definition"], now, image=ctx.rel("image", item))
    return campaign_reply(ctx, campaign)


@_d.handles("get_campaigns")
def get_campaigns(ctx: Ctx) -> Reply:
    text = ctx.query.get("filter")
    try:
        found = _comparisons(parse_filter(text)) if text else []
    except FilterSyntaxError as exc:
        raise bad_request(str(exc), parameter="filter") from None
    channels = [c for c in found if c.field == "messages.channel" and c.operator == "equals"]
    if not channels:
        raise bad_request(CHANNEL_FILTER_HELP, parameter="filter")
    for comparison in channels:
        if comparison.value not in CHANNELS:
            raise bad_request(
                f"{comparison.value!r} is not a campaign channel; filter on one of {', '.join(CHANNELS)}, "
                "e.g. equals(messages.channel,'email').",
                parameter="filter",
            )
    items = [settle(ctx.svc, c) for c in ctx.store.iter("campaign")]
    return campaign_reply(ctx, items)


@_d.handles("get_campaign")
def get_campaign(ctx: Ctx) -> Reply:
    return campaign_reply(ctx, settle(ctx.svc, ctx.get("campaign")))


@_d.handles("update_campaign")
def update_campaign(ctx: Ctx) -> Reply:
    campaign = settle(ctx.svc, ctx.get("campaign"))
    ctx.check_body_id(campaign.id)
    attrs = {k: v for k, v in ctx.attrs.items() if v is not None or k == "tracking_options"}
    status = campaign.attributes.get("status")
    if status != "Draft":
        for key in attrs:
            if key != "name":
                raise bad_request(
                    f"{key} cannot change on a campaign with status {status!r}; only drafts can be "
                    "edited (the name can always change). Clone it to make changes.",
                    pointer=f"/data/attributes/{key}",
                )
    if "audiences" in attrs:
        check_audiences(ctx.svc, attrs["audiences"], "/data/attributes/audiences")
        current = dict(campaign.attributes.get("audiences") or {})
        # excluded: null clears it (no audience excluded); included is never null (refused before this)
        current.update({k: v for k, v in attrs["audiences"].items() if v is not None or k == "excluded"})
        campaign.attributes["audiences"] = _audiences(current)
    if "send_options" in attrs:
        options = campaign.attributes.get("send_options") or {}
        campaign.attributes["send_options"] = {**options, **attrs["send_options"]}
    for key in ("name", "send_strategy", "tracking_options"):
        if attrs.get(key) is not None:
            campaign.attributes[key] = attrs[key]
    if "tracking_options" in attrs and attrs["tracking_options"] is None:  # cleared: the channel's defaults,
        channel = (_channels(ctx.store, campaign) or [""])[0]  # as a new campaign gets
        campaign.attributes["tracking_options"] = _tracking(channel, None)
    campaign.attributes["updated_at"] = ctx.now_iso
    campaign.updated = ctx.now
    ctx.store.put(campaign)
    return campaign_reply(ctx, campaign)


@_d.handles("delete_campaign")
def delete_campaign(ctx: Ctx) -> Reply:
    svc = ctx.svc
    campaign = settle(svc, ctx.get("campaign"))
    status = campaign.attributes.get("status")
    if status != "Draft":
        raise bad_request(f"Campaign {campaign.id} has status {status!r}; only Draft campaigns can be deleted.")
    for message in messages_of(svc, campaign):
        for rtype, rid in message.linked("template"):
            template = ctx.store.get(rtype, rid)
            if template is not None and not templates.is_reusable(template):
                ctx.store.delete(rtype, rid)
        svc.forget(message)
    for rtype in ("campaign-recipient-estimation", "campaign-recipient-estimation-job", "campaign-send-job"):
        ctx.store.delete(rtype, campaign.id)
    svc.forget(campaign)
    return ctx.no_content()


@_d.handles("create_campaign_clone")
def clone_campaign(ctx: Ctx) -> Reply:
    svc = ctx.svc
    source = ctx.store.get("campaign", str(ctx.data["id"]))
    if source is None:
        raise SandboxError(
            404, "not_found", "Not found.", f"A campaign with id {ctx.data['id']} does not exist.", pointer="/data/id"
        )
    now = ctx.now
    attrs = copy.deepcopy(source.attributes)
    attrs.update(
        {
            "name": ctx.attrs.get("new_name") or f"{attrs.get('name', '')} (Clone)",
            "status": "Draft",
            "archived": False,
            "created_at": iso(now),
            "updated_at": iso(now),
            "scheduled_at": None,
            "send_time": None,
        }
    )
    clone = Resource("campaign", ctx.store.new_id("campaign", now), attrs, {MESSAGES: []}, now, now)
    ctx.store.put(clone)
    for message in messages_of(svc, source):
        copied = new_message(
            svc, clone, copy.deepcopy(message.attributes.get("definition") or {}), now, image=message.linked("image")
        )
        template = next((ctx.store.get(t, i) for t, i in message.linked("template")), None)
        if template is not None:
            svc.set_links(copied, "template", [_template_copy(svc, template, now)], many=False)
    return campaign_reply(ctx, clone)


# -- campaign messages --------------------------------------------------------------------------------
def new_message(svc: Services, campaign: Resource, definition: Json, now: float, image: Any = None) -> Resource:
    """A stored campaign message for ``campaign`` with Klaviyo's defaults filled in, linked both ways."""
    message = Resource(
        "campaign-message",
        svc.store.new_id("campaign-message", now),
        {
            "definition": _definition(svc, campaign, definition),
            "send_times": None,
            "created_at": iso(now),
            "updated_at": iso(now),
        },
        {"campaign": ("campaign", campaign.id)},
        now,
        now,
    )
    if image:
        message.relationships["image"] = image[0]
    svc.store.put(message)
    svc.link(campaign, MESSAGES, [(message.type, message.id)])
    return message


@_d.handles("update_campaign_message")
def update_campaign_message(ctx: Ctx) -> Reply:
    svc = ctx.svc
    message = ctx.get("campaign-message")
    ctx.check_body_id(message.id)
    campaign = next((ctx.store.get(t, i) for t, i in message.linked("campaign")), None)
    new = ctx.attrs.get("definition")
    if "definition" in ctx.attrs and new is None:  # the message's content and channel: never empty
        raise bad_request(
            "A message's definition cannot be cleared; give a new one (its channel cannot change).",
            pointer="/data/attributes/definition",
        )
    image = ctx.rel("image")
    if (new or image) and campaign is not None and settle(svc, campaign).attributes.get("status") != "Draft":
        raise bad_request(
            f"The message's campaign has status {campaign.attributes.get('status')!r}; only messages "
            "of Draft campaigns can be edited.",
            pointer="/data/attributes/definition",
        )
    if new:
        current = message.attributes.get("definition") or {}
        if new.get("channel") != current.get("channel"):
            raise bad_request(
                f"A message's channel cannot change (it is {current.get('channel')!r}); create a new "
                "campaign for another channel.",
                pointer="/data/attributes/definition/channel",
            )
        merged = {**current, **{k: v for k, v in new.items() if k not in ("content", "render_options")}}
        for key in ("content", "render_options"):
            if isinstance(new.get(key), dict):
                merged[key] = {**(current.get(key) or {}), **new[key]}
        message.attributes["definition"] = merged
    if image:
        message.relationships["image"] = image[0]
    message.attributes["updated_at"] = ctx.now_iso
    message.updated = ctx.now
    ctx.store.put(message)
    return ctx.one(message)


@_d.handles("assign_template_to_campaign_message")
def assign_template(ctx: Ctx) -> Reply:
    svc = ctx.svc
    mid = str(ctx.data["id"])
    message = ctx.store.get("campaign-message", mid)
    if message is None:
        raise SandboxError(
            404, "not_found", "Not found.", f"A campaign-message with id {mid} does not exist.", pointer="/data/id"
        )
    tid = ctx.rel("template")[0][1]
    template = ctx.store.get("template", tid)
    if template is None:
        raise SandboxError(
            404,
            "not_found",
            "Not found.",
            f"A template with id {tid} does not exist; create one with POST /api/templates.",
            pointer="/data/relationships/template/data/id",
        )
    if campaign_sends.channel_of(message) != "email":
        raise bad_request("Templates can only be assigned to email messages.", pointer="/data/id")
    campaign = next((ctx.store.get(t, i) for t, i in message.linked("campaign")), None)
    if campaign is not None and settle(svc, campaign).attributes.get("status") != "Draft":
        raise bad_request(
            f"The message's campaign has status {campaign.attributes.get('status')!r}; templates can "
            "only be assigned to messages of Draft campaigns.",
            pointer="/data/id",
        )
    old = next((ctx.store.get(t, i) for t, i in message.linked("template")), None)
    if old is not None and not templates.is_reusable(old):
        ctx.store.delete(old.type, old.id)
    svc.set_links(message, "template", [_template_copy(svc, template, ctx.now)], many=False)
    message.attributes["updated_at"] = ctx.now_iso
    ctx.store.put(message)
    definition = message.attributes.get("definition") or {}
    flat = Resource(
        "campaign-message",
        message.id,
        {
            "label": definition.get("label") or (campaign.attributes.get("name") if campaign else "") or "",
            "channel": definition.get("channel"),
            "content": definition.get("content") or {},
            "send_times": message.attributes.get("send_times"),
            "render_options": definition.get("render_options"),
            "created_at": message.attributes.get("created_at"),
            "updated_at": message.attributes.get("updated_at"),
        },
        dict(message.relationships),
        message.created,
        message.updated,
    )
    return ctx.one(flat)


# -- rendering and defaults ------------------------------------------------------------------------------
def campaign_reply(ctx: Ctx, found: Resource | list[Resource]) -> Reply:
    """``ctx.one``/``ctx.many`` for campaigns, with message and tag linkages in every document."""
    reply = ctx.many(found) if isinstance(found, list) else ctx.one(found)
    docs = reply.body["data"] if isinstance(reply.body["data"], list) else [reply.body["data"]]
    for doc in docs:
        res = ctx.store.get("campaign", doc["id"])
        rels = doc.get("relationships") or {}
        if res is None:
            continue
        for name in (MESSAGES, "tags"):
            if name in rels:
                rels[name]["data"] = [{"type": t, "id": i} for t, i in ctx.svc.related(res, name)]
    return reply


def _definition(svc: Services, campaign: Resource, definition: Json) -> Json:
    out = copy.deepcopy(definition)
    channel = out.get("channel")
    if channel == "email":
        sender = _account_sender(svc)
        content: dict[str, Any] = dict.fromkeys(EMAIL_CONTENT_KEYS)
        content.update({"from_email": sender[0], "from_label": sender[1]})
        content.update({k: v for k, v in (out.get("content") or {}).items() if v is not None})
        out["content"] = content
        out["label"] = out.get("label") or campaign.attributes.get("name")
    elif channel == "mobile_push":
        # the create schema's default ("standard"); every push definition Klaviyo answers with has one
        out["notification_type"] = out.get("notification_type") or "standard"
    elif channel == "sms":
        out["content"] = {"body": None, "media_url": None, **(out.get("content") or {})}
        out["render_options"] = {
            **SMS_RENDER_DEFAULTS,
            **{k: v for k, v in (out.get("render_options") or {}).items() if v is not None},
        }
    return out


def _account_sender(svc: Services) -> tuple[str | None, str | None]:
    account = next(iter(svc.store.all("account")), None)
    info = (account.attributes.get("contact_information") or {}) if account else {}
    return info.get("default_sender_email"), info.get("default_sender_name")


def _audiences(value: Json) -> Json:
    return {"included": list(value.get("included") or []), "excluded": list(value.get("excluded") or [])}


def _tracking(channel: str, given: Json | None) -> Json | None:
    if channel == "email":
        base: Json = {
            "add_tracking_params": False,
            "custom_tracking_params": None,
            "is_tracking_clicks": True,
            "is_tracking_opens": True,
        }
    elif channel == "sms":
        base = {"add_tracking_params": False, "custom_tracking_params": None}
    else:
        return given
    return {**base, **{k: v for k, v in (given or {}).items() if v is not None}}


def _template_copy(svc: Services, template: Resource, now: float) -> tuple[str, str]:
    copied = templates.copy_template(svc, template, now, message_copy=True)
    return copied.type, copied.id


DOMAIN = _d.build()
