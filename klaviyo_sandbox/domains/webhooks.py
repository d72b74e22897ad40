"""Sandbox domain: webhooks and webhook topics.

``endpoint_url`` must be https, topics must exist (``get_webhook_topics``; the topics are stored on
first use), and the ``secret_key`` is kept private and never returned. Reads and deletes are the
generic engine's, once the topics exist.
"""

from __future__ import annotations

from urllib.parse import urlparse

from .._context import Ctx, Reply
from .._generic import generic
from .._jsonapi import bad_request
from .._services import Services
from .._store import Resource
from ..domain import DomainBuilder

_d = DomainBuilder("webhooks")


WEBHOOK_TOPICS = (
    "event:klaviyo.received_email",
    "event:klaviyo.opened_email",
    "event:klaviyo.clicked_email",
    "event:klaviyo.bounced_email",
    "event:klaviyo.marked_email_as_spam",
    "event:klaviyo.dropped_email",
    "event:klaviyo.sent_sms",
    "event:klaviyo.received_sms",
    "event:klaviyo.clicked_sms",
    "event:klaviyo.failed_to_deliver_sms",
    "event:klaviyo.received_push",
    "event:klaviyo.bounced_push",
    "event:klaviyo.opened_push",
    "event:klaviyo.subscribed_to_email_marketing",
    "event:klaviyo.unsubscribed_from_email_marketing",
    "event:klaviyo.subscribed_to_sms_marketing",
    "event:klaviyo.unsubscribed_from_sms_marketing",
    "event:klaviyo.ready_to_review",
    "event:klaviyo.submitted_review",
)


def ensure_topics(svc: Services) -> None:
    if svc.store.count("webhook-topic") == 0:
        for topic in WEBHOOK_TOPICS:
            svc.store.put(Resource("webhook-topic", topic, {}, {}, 0.0, 0.0))


@_d.handles("get_webhook_topics", "get_webhook_topic", "get_webhooks", "get_webhook", "delete_webhook")
def _webhooks_read(ctx: Ctx) -> Reply:
    ensure_topics(ctx.svc)
    return generic(ctx)


@_d.handles("create_webhook", "update_webhook")
def _write_webhook(ctx: Ctx) -> Reply:
    ensure_topics(ctx.svc)
    creating = ctx.op.operation_id == "create_webhook"
    res = (
        Resource(
            "webhook",
            ctx.store.new_id("webhook", ctx.now),
            {"enabled": True, "created_at": ctx.now_iso},
            {},
            ctx.now,
            ctx.now,
        )
        if creating
        else ctx.get("webhook")
    )
    attrs = ctx.attrs
    if "endpoint_url" in attrs:
        url = urlparse(str(attrs["endpoint_url"]))
        if url.scheme != "https" or not url.netloc:
            raise bad_request(
                f"endpoint_url must be an https URL, e.g. https://example.com/hooks; got {attrs['endpoint_url']!r}.",
                pointer="/data/attributes/endpoint_url",
            )
    topics = ctx.rel("webhook-topics")
    if creating and not topics:
        raise bad_request(
            "A webhook needs at least one topic (see get_webhook_topics).",
            pointer="/data/relationships/webhook-topics/data",
        )
    for n, (_, topic) in enumerate(topics):
        if ctx.store.get("webhook-topic", topic) is None:
            raise bad_request(
                f"{topic!r} is not a webhook topic; see get_webhook_topics for the list.",
                pointer=f"/data/relationships/webhook-topics/data/{n}/id",
            )
    for key in ("name", "description", "endpoint_url", "enabled"):
        if key in attrs:
            res.attributes[key] = attrs[key]
    if "secret_key" in attrs:
        res.private["secret_key"] = attrs["secret_key"]
    if topics or "webhook-topics" in (ctx.data.get("relationships") or {}):
        res.relationships["webhook-topics"] = list(dict.fromkeys(topics))
    res.attributes["updated_at"] = ctx.now_iso
    ctx.store.put(res)
    return ctx.one(res)


DOMAIN = _d.build()
