"""Sandbox domain: system webhook deliveries, signed and sent as Klaviyo sends them.

When an event is created (not a backfill), every enabled webhook subscribed to the event's topic
gets a delivery: ``POST endpoint_url`` with Klaviyo's headers (``Klaviyo-Webhook-Id``,
``Klaviyo-Timestamp`` as an HTTP date, ``Klaviyo-Signature``: hex HMAC-SHA256 of the raw body followed
by the timestamp, keyed with the webhook's ``secret_key``; ``klaviyo_toolkit.webhooks.sign``) and
Klaviyo's body::

    {"data": [{"topic": "event:klaviyo.form_submitted_by_profile", "external_id": "<event id>",
               "payload": {"data": {"type": "event", "id": ..., "attributes": ..., "relationships": ...}}}],
     "meta": {"klaviyo_account_id": ..., "klaviyo_webhook_id": ..., "timestamp": ..., "version": ...}}

An event's topic is ``event:klaviyo.`` and its metric's name in snake case ("Opened Email" ->
``event:klaviyo.opened_email``), as Klaviyo names the topics of its metrics.

Deliveries are asynchronous, as Klaviyo's are: each is deferred work on the sandbox clock (due
``delay`` seconds after the event), started on the next tick (before a request, ``Sandbox.tick()``,
``settle()``, or the served sandbox's background tick) and, in the default domain, sent on threads
of its own, so a slow receiver never holds up the sandbox's API. A failed attempt (a transport error or an
answer other than 2xx) is retried with exponential backoff up to ``max_attempts``; a retry waits for
the clock (``settle()`` does not rush it). Each delivery is recorded as a ``sandbox-webhook-delivery``
resource (never served by the API): webhook, event, topic, attempts, last status, delivered or failed.

The HTTP sender is injected: the default posts with httpx; tests pass one that calls an ASGI app
in-process. ``with_sender(domains, sender)`` swaps it in a tuple of domains::

    Sandbox(domains=with_sender(DEFAULT_DOMAINS, lambda url, headers, body: client.post(...).status_code))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from klaviyo_toolkit.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WEBHOOK_ID_HEADER,
    format_timestamp,
    sign,
    topic_for,
)

from .._jsonapi import iso
from .._services import Services
from .._store import Resource
from ..domain import Domain, DomainBuilder
from ._common import event_metric_name

__all__ = ["DOMAIN", "RECORD", "Sender", "deliveries", "domain", "http_sender", "topic_for", "with_sender"]

#: ``(url, headers, body) -> HTTP status``; raising counts as a failed attempt.
Sender = Callable[[str, dict[str, str], bytes], int]
#: The resource type of delivery records (sandbox-only, never routed).
RECORD = "sandbox-webhook-delivery"
#: The payload revision Klaviyo states in ``meta.version``.
VERSION = "2024-06-28"
_RUNNER = "webhook_delivery:send"


def http_sender(timeout: float = 5.0) -> Sender:
    """Post with httpx (a real HTTP request), waiting at most ``timeout`` seconds."""
    import httpx

    def send(url: str, headers: dict[str, str], body: bytes) -> int:
        return httpx.post(url, content=body, headers=headers, timeout=timeout).status_code

    return send


def _payload(svc: Services, event: Resource) -> dict[str, Any]:
    """The event as Klaviyo's Get Event returns it (without ``included``)."""
    base = "https://a.klaviyo.com/api/events/" + event.id + "/"
    rels: dict[str, Any] = {}
    for name in ("metric", "profile"):
        links = event.linked(name)
        rels[name] = {
            "data": {"type": name, "id": links[0][1]} if links else None,
            "links": {"self": f"{base}relationships/{name}/", "related": f"{base}{name}/"},
        }
    attrs = {k: event.attributes.get(k) for k in ("timestamp", "event_properties", "datetime", "uuid")}
    return {"data": {"type": "event", "id": event.id, "attributes": attrs, "relationships": rels,
                     "links": {"self": base}}}


def domain(
    sender: Sender | None = None,
    *,
    delay: float = 0.0,
    max_attempts: int = 6,
    backoff: float = 2.0,
    background: int = 0,
) -> Domain:
    """The delivery domain with ``sender`` (default: httpx), first attempt ``delay`` s after the event,
    at most ``max_attempts`` attempts, waiting ``backoff * 2**(n-1)`` s after the n-th failure.

    ``background``: 0 sends within the tick (deterministic: in-process tests); N > 0 sends on N threads
    of their own, so the sandbox goes on answering requests while a receiver is slow, as Klaviyo does.
    """
    send = sender or http_sender()
    d = DomainBuilder("webhook_delivery")

    @d.on("event_created")
    def _on_event(svc: Services, event: Resource) -> None:
        name = event_metric_name(svc, event)
        if not name:
            return
        topic = topic_for(name)
        for hook in svc.store.iter("webhook"):
            if hook.attributes.get("enabled") is False:
                continue
            links = hook.relationships.get("webhook-topics") or []
            topics = {t[1] if isinstance(t, (list, tuple)) else t for t in links}
            if topic not in topics:
                continue
            now = svc.clock.time()
            record = Resource(
                RECORD, svc.store.new_id(RECORD, now),
                {"webhook_id": hook.id, "event_id": event.id, "topic": topic, "attempts": 0, "status": "pending",
                 "last_status": None, "error": None, "delivered_at": None, "created": iso(now)},
                {}, now, now,
            )
            svc.store.put(record)
            svc.jobs.defer(_RUNNER, {"record": record.id}, now + delay)

    pool = ThreadPoolExecutor(max_workers=background, thread_name_prefix="sandbox-webhooks") if background else None

    def settle_attempt(svc: Services, record: Resource, status: int | None, error: str | None, now: float) -> None:
        attempt = int(record.attributes["attempts"]) + 1
        record.attributes.update(attempts=attempt, last_status=status, error=error)
        if status is not None and 200 <= status < 300:
            record.attributes.update(status="delivered", delivered_at=iso(now), error=None)
        elif attempt >= max_attempts:
            record.attributes["status"] = "failed"
        else:
            svc.jobs.defer(_RUNNER, {"record": record.id}, now + backoff * 2 ** (attempt - 1), settles=False)
        svc.store.put(record)

    def attempt(url: str, headers: dict[str, str], body: bytes) -> tuple[int | None, str | None]:
        try:
            return send(url, headers, body), None
        except Exception as exc:  # the receiver is down or slow: a failed attempt, as for Klaviyo
            return None, f"{type(exc).__name__}: {str(exc)[:200]}"

    @d.job(_RUNNER)
    def _send(svc: Services, job: Resource) -> None:
        record = svc.store.get(RECORD, str(job.private["payload"]["record"]))
        if record is None or record.attributes["status"] != "pending":
            return
        hook = svc.store.get("webhook", record.attributes["webhook_id"])
        event = svc.store.get("event", record.attributes["event_id"])
        if hook is None or event is None or hook.attributes.get("enabled") is False:
            record.attributes.update(status="failed", error="the webhook or the event is gone")
            svc.store.put(record)
            return
        clock = getattr(svc.clock, "underlying", svc.clock)  # sent now, even for work that came due before
        now = clock.time()
        account = svc.store.all("account")
        body = json.dumps({
            "data": [{"topic": record.attributes["topic"], "external_id": event.id, "payload": _payload(svc, event)}],
            "meta": {"klaviyo_account_id": account[0].id if account else None, "klaviyo_webhook_id": hook.id,
                     "timestamp": iso(now), "version": VERSION},
        }).encode()
        stamp = format_timestamp(now)
        headers = {
            "Content-Type": "application/json",
            WEBHOOK_ID_HEADER: hook.id,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(str(hook.private.get("secret_key") or ""), body, stamp),
        }
        url = str(hook.attributes.get("endpoint_url"))
        if pool is None:
            settle_attempt(svc, record, *attempt(url, headers, body), now)
            return
        record.attributes["status"] = "sending"  # not sent twice by a tick that comes meanwhile
        svc.store.put(record)
        store, jobs = svc.store, svc.jobs

        def done(future: Future[tuple[int | None, str | None]]) -> None:
            status, error = future.result()
            with store.lock:  # the sandbox's requests go on while the receiver answers
                record.attributes["status"] = "pending"
                settle_attempt(Services(store=store, clock=clock, outbox=svc.outbox, jobs=jobs,
                                        relations=svc.relations, hooks=svc.hooks), record, status, error, clock.time())
                store.flush()

        pool.submit(attempt, url, headers, body).add_done_callback(done)

    return d.build()


def deliveries(svc_or_store: Any) -> list[dict[str, Any]]:
    """Every delivery record (oldest first) as plain dicts, for tests and inspection."""
    store = getattr(svc_or_store, "store", svc_or_store)
    return [{"id": r.id, **r.attributes} for r in sorted(store.all(RECORD), key=lambda r: (r.created, r.id))]


def with_sender(domains: Iterable[Domain], sender: Sender, **options: Any) -> tuple[Domain, ...]:
    """``domains`` with the delivery domain replaced by one using ``sender`` (added if missing)."""
    kept = tuple(d for d in domains if d.name != "webhook_delivery")
    return (*kept, domain(sender, **options))


#: Deliveries over real HTTP (httpx) on four threads of their own, first attempt on the next tick.
DOMAIN = domain(background=4)
