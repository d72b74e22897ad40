"""Sandbox domain: webhooks and webhook topics.

``endpoint_url`` must be https (the sandbox also takes ``http://`` on a loopback host, so a local
``personas serve`` can receive deliveries; ``webhook_delivery.py`` sends them), topics must exist
(``get_webhook_topics``: Klaviyo's fixed ones and one per metric, stored on first use) and be at
least one, on create and on an update that replaces them, and the
``secret_key`` is kept private and never returned. Reads and deletes are the generic engine's, once
the topics exist.
"""

from __future__ import annotations

from urllib.parse import urlparse

from .._context import Ctx, Reply
from .._generic import generic
from .._jsonapi import bad_request
from .._services import Services
from .._store import Resource
from ..domain import DomainBuilder
from .webhook_delivery import topic_for

_d = DomainBuilder("webhooks")
#: Hosts the sandbox (not Klaviyo) lets a webhook reach over plain http, for local receivers.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


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
    """Klaviyo's fixed topics, and one per metric of the account ("topics are dynamic and based on the
    metrics available in your account": ``event:klaviyo.`` + the metric's name in snake case)."""
    if svc.store.count("webhook-topic") == 0:
        for topic in WEBHOOK_TOPICS:
            svc.store.put(Resource("webhook-topic", topic, {}, {}, 0.0, 0.0))
    for metric in svc.store.iter("metric"):
        topic = topic_for(str(metric.attributes.get("name") or ""))
        if topic != "event:klaviyo." and svc.store.get("webhook-topic", topic) is None:
            svc.store.put(Resource("webhook-topic", topic, {}, {}, 0.0, 0.0))


@_d.handles("get_webhook_topics", "get_webhook_topic", "get_webhooks", "get_webhook", "delete_webhook")
def _webhooks_read(ctx: Ctx) -> Reply:
    ensure_topics(ctx.svc)
    if ctx.op.operation_id == "get_webhook_topics":  # not paginated in Klaviyo's spec: every topic at once
        topics = ctx.store.all("webhook-topic")
        return ctx.many(topics, page_size=max(1, len(topics)), first_by=lambda t: t.id)
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
        loopback = url.scheme == "http" and url.hostname in LOOPBACK  # the sandbox's one relaxation
        if (url.scheme != "https" and not loopback) or not url.netloc:
            raise bad_request(
                f"endpoint_url must be an https URL, e.g. https://example.com/hooks; got {attrs['endpoint_url']!r}.",
                pointer="/data/attributes/endpoint_url",
            )
    topics = ctx.rel("webhook-topics")
    replacing = not creating and "webhook-topics" in (ctx.data.get("relationships") or {})
    if (creating or replacing) and not topics:  # an update may replace the topics, never empty them
        raise bad_request(
            "A webhook needs at least one topic (see get_webhook_topics)"
            + ("; to stop deliveries, set enabled to false or delete the webhook." if replacing else "."),
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
    if topics:
        res.relationships["webhook-topics"] = list(dict.fromkeys(topics))
    res.attributes["updated_at"] = ctx.now_iso
    ctx.store.put(res)
    return ctx.one(res)


DOMAIN = _d.build()
