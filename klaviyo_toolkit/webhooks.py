"""Klaviyo system webhooks: sign and verify a delivery, and read the events out of it.

Klaviyo documents the scheme in "Working with system webhooks"
(https://developers.klaviyo.com/en/docs/working_with_system_webhooks):

- headers ``Klaviyo-Webhook-Id`` (the webhook), ``Klaviyo-Timestamp`` (when the request was sent)
  and ``Klaviyo-Signature``;
- the signature is HMAC-SHA256, keyed with the webhook's ``secret_key``, over the **raw request
  body followed by the** ``Klaviyo-Timestamp`` **header value** (no separator), hex-encoded;
- the body is ``{"data": [{"topic", "external_id", "payload"}, ...], "meta": {"klaviyo_account_id",
  "klaviyo_webhook_id", "timestamp", "version"}}``, each ``payload`` shaped as a Get Event response;
  ``meta.klaviyo_webhook_id`` must equal the ``Klaviyo-Webhook-Id`` header, else the request is not
  to be processed.

Each event is checked for that shape before any of the delivery is used: ``topic`` and
``external_id`` (the event's id) are strings; ``payload.data`` is an event (``type`` ``"event"``, an
``id`` string, ``attributes`` an object) whose ``relationships`` name its ``profile`` and ``metric``
(``{"data": {"type": "profile", "id": ...}}``); no string or key in it holds a NUL character or a
lone surrogate (text no store keeps: PostgreSQL refuses a NUL). A run started from anything less would
only fail, and a store that refused it would fail the whole delivery on every retry.

Klaviyo sends the timestamp as an HTTP date (``Tue, 14 Apr 2026 03:50:12 GMT``); ISO 8601 and epoch
seconds are accepted too. A timestamp further than ``tolerance`` seconds from now (5 minutes by
default) is refused as stale, so a captured delivery cannot be replayed later (a timestamp that is not a
finite number, ``nan`` or ``inf``, is malformed: it would never be stale); within the window a replay is
the receiver's to drop (by delivery or event id).

Errors: :class:`WebhookRejected` when the delivery is not shown to come from Klaviyo (a header missing,
a malformed, stale or wrong signature or timestamp, another webhook's id: HTTP 401), and its subclass
:class:`WebhookMalformed` when it is signed correctly but is not a delivery (not JSON, not the
documented shape: HTTP 400). Both carry a one-line ``reason``. With ``partial=True`` an item of
``data`` that is not an event is returned in ``Delivery.refused`` instead (the rest of the batch is
read); with ``previous=`` a second secret signs too (a rotation).

Example::

    delivery = verify_delivery(secret, raw_body, request.headers, now=time.time())
    for item in delivery.events:
        item.topic, item.event_id, item.payload      # payload: a Get Event document
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WEBHOOK_ID_HEADER",
    "Delivery",
    "DeliveryEvent",
    "RefusedEvent",
    "WebhookMalformed",
    "WebhookRejected",
    "format_timestamp",
    "parse_timestamp",
    "sign",
    "topic_for",
    "unkept_text",
    "verify_delivery",
]

SIGNATURE_HEADER = "Klaviyo-Signature"
TIMESTAMP_HEADER = "Klaviyo-Timestamp"
WEBHOOK_ID_HEADER = "Klaviyo-Webhook-Id"
#: Seconds a delivery's timestamp may be away from the receiver's clock.
DEFAULT_TOLERANCE = 300.0


class WebhookRejected(ValueError):
    """A delivery that must not be processed; ``reason`` says why in one line (never the secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WebhookMalformed(WebhookRejected):
    """A delivery signed with the secret whose body is not a delivery (not JSON, or not Klaviyo's shape).

    The sender holds the secret, so nothing is wrong with the secret or the clock: the body is. A
    receiver answers 400 (not 401) and counts it apart from refused signatures.
    """


def topic_for(metric_name: str) -> str:
    """The system-webhook topic of a Klaviyo metric: ``event:klaviyo.`` + its name in snake case
    ("Opened Email" -> ``event:klaviyo.opened_email``), as Klaviyo names its metrics' topics."""
    return "event:klaviyo." + re.sub(r"[^a-z0-9]+", "_", metric_name.lower()).strip("_")


def sign(secret: str, body: bytes, timestamp: str) -> str:
    """The ``Klaviyo-Signature`` of ``body`` sent at ``timestamp``: hex HMAC-SHA256 of body + timestamp."""
    return hmac.new(secret.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def format_timestamp(when: float) -> str:
    """``when`` (epoch seconds) as Klaviyo sends it: an HTTP date, ``Tue, 14 Apr 2026 03:50:12 GMT``."""
    return email.utils.formatdate(when, usegmt=True)


def parse_timestamp(value: str) -> float | None:
    """Epoch seconds from an HTTP date, an ISO 8601 datetime or epoch seconds; None if none of them,
    or if the value is not a finite number (``nan``, ``inf``: no clock is ever that far or that near)."""
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return number if math.isfinite(number) else None
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        parsed = None
    if parsed is None:
        try:
            parsed = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.UTC)
    try:
        when = parsed.timestamp()
    except (OverflowError, ValueError, OSError):
        return None
    return when if math.isfinite(when) else None


@dataclass(frozen=True)
class DeliveryEvent:
    """One event of a delivery: its topic, Klaviyo's event id (``payload.data.id``, whatever ``external_id``
    says) and the Get Event document."""

    topic: str
    event_id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class RefusedEvent:
    """An item of a delivery's ``data`` that is not an event of Klaviyo's shape (read with ``partial``):
    its place in ``data``, its topic and event id when they are readable text (else None), why it is
    refused (naming the field), and the item itself (to key it: never shown, it may hold anything)."""

    index: int
    topic: str | None
    event_id: str | None
    reason: str
    item: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: the webhook and account it came from, when it was sent, its events, the
    items refused one by one (``partial``), and whether ``previous`` (a secret being rotated out) signed it."""

    webhook_id: str
    account_id: str | None
    sent_at: float
    signature: str
    events: tuple[DeliveryEvent, ...] = field(default_factory=tuple)
    refused: tuple[RefusedEvent, ...] = field(default_factory=tuple)
    by_previous: bool = False


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _event(n: int, item: Any) -> DeliveryEvent:
    """Item ``n`` of a delivery's ``data``, checked for Klaviyo's shape (see the module docstring);
    :class:`WebhookMalformed` naming the first field that is not."""
    if not isinstance(item, Mapping) or not isinstance(item.get("payload"), Mapping):
        raise WebhookMalformed(f"data[{n}] has no payload object")
    topic, external_id = item.get("topic", ""), item.get("external_id")
    if not isinstance(topic, str):
        raise WebhookMalformed(f"data[{n}].topic must be a string, not {type(topic).__name__}")
    if external_id is not None and not isinstance(external_id, str):
        raise WebhookMalformed(
            f"data[{n}].external_id must be a string (the event's id), not {type(external_id).__name__}"
        )
    payload = dict(item["payload"])
    event = payload.get("data")
    where = f"data[{n}].payload.data"
    if not isinstance(event, Mapping):
        what = "missing" if event is None else f"a {type(event).__name__}"
        raise WebhookMalformed(f"{where} is {what}, not an object: the event, as Get Event returns it")
    if event.get("type") != "event":
        raise WebhookMalformed(f"{where}.type is not 'event': a delivery carries an event, not another resource")
    if not isinstance(event.get("id"), str) or not event["id"]:
        raise WebhookMalformed(f"{where}.id must be a non-empty string (the event's id)")
    if not isinstance(event.get("attributes"), Mapping):
        raise WebhookMalformed(f"{where}.attributes must be an object (the event's timestamp and properties)")
    relationships = event.get("relationships")
    for name in ("profile", "metric"):
        link = relationships.get(name) if isinstance(relationships, Mapping) else None
        ref = link.get("data") if isinstance(link, Mapping) else None
        if (
            not isinstance(ref, Mapping)
            or ref.get("type") != name
            or not isinstance(ref.get("id"), str)
            or not ref["id"]
        ):
            raise WebhookMalformed(
                f"{where}.relationships.{name} does not name a {name} (data: type {name!r} and an id)"
            )
    # checked for the whole delivery before any of it is recorded (refused alone with ``partial``)
    unkept = unkept_text({"topic": topic, "external_id": external_id, "payload": payload}, f"data[{n}]")
    if unkept:
        raise WebhookMalformed(unkept)
    # keyed by the event the payload carries (what a run acts on, and the id a poll of Get Events finds), not
    # by external_id: an item whose external_id differs (or two items of one event) must not make a second run
    return DeliveryEvent(topic, event["id"], payload)


def _refused(n: int, item: Any, reason: str) -> RefusedEvent:
    """Item ``n`` refused for ``reason``, with its topic and event id when they are text a store keeps."""
    topic = item.get("topic") if isinstance(item, Mapping) else None
    payload = item.get("payload") if isinstance(item, Mapping) else None
    event = payload.get("data") if isinstance(payload, Mapping) else None
    event_id = event.get("id") if isinstance(event, Mapping) else None

    def readable(value: Any) -> str | None:
        return value if isinstance(value, str) and value and unkept_text(value) is None else None

    return RefusedEvent(n, readable(topic), readable(event_id), reason, item)


def unkept_text(value: Any, where: str = "") -> str | None:
    """The first string (or object key) in ``value`` that no store keeps, named by its path from
    ``where`` with what is wrong with it; None when there is none.

    A NUL character is refused by PostgreSQL's text (a run's key is ``event:<id>``) and cut short by
    many C readers of SQLite; a lone surrogate cannot be written as UTF-8. Neither is in any event
    Klaviyo sends, so a delivery holding one is malformed, wherever it is; a polled event holding one
    is recorded as failed (``personas.service``). Example: ``unkept_text({"data": {"id": "a\\x00"}})``
    is ``"data.id holds a NUL character ..."``.
    """
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            found = _what_is_wrong(item)
            if found:
                return f"{path} holds {found}"
        elif isinstance(item, Mapping):
            for key, inner in reversed(list(item.items())):
                found = _what_is_wrong(key) if isinstance(key, str) else None
                if found:
                    return f"{path} has a key that holds {found}"
                shown = key if len(key) <= 60 else key[:57] + "..."  # a path for a message, not a copy
                stack.append((inner, f"{path}.{shown}" if path else shown))
        elif isinstance(item, list):
            stack.extend((inner, f"{path}[{i}]") for i, inner in reversed(list(enumerate(item))))
    return None


def _what_is_wrong(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character (\\u0000), which no text field keeps"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text that is not valid Unicode (a lone surrogate)"
    return None


def verify_delivery(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
    previous: str | None = None,
    partial: bool = False,
) -> Delivery:
    """Check a delivery as Klaviyo documents it and read its events; raise :class:`WebhookRejected`.

    Checked in order: the signature and timestamp headers are there, the timestamp parses and is
    within ``tolerance`` seconds of ``now``, the signature is 64 hex digits and matches (compared in
    constant time), the body is JSON of the documented shape (else :class:`WebhookMalformed`), and
    ``meta.klaviyo_webhook_id`` equals the ``Klaviyo-Webhook-Id`` header when both are given (a
    delivery meant for another webhook: :class:`WebhookRejected`).

    ``previous``: a second secret that also signs, while a webhook's secret is rotated (deliveries signed
    with the old and the new one overlap); ``Delivery.by_previous`` says it signed this one.
    ``partial``: each item of ``data`` is judged alone, so one item that is not an event (of a batch
    Klaviyo would otherwise retry whole, and then give up on) is in ``Delivery.refused`` with the
    reason, and the others are read; without it such an item makes the delivery malformed.
    """
    if not secret:
        raise WebhookRejected("no webhook secret is configured (KLAVIYO_WEBHOOK_SECRET)")
    signature = _header(headers, SIGNATURE_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    if not signature:
        raise WebhookRejected(f"missing {SIGNATURE_HEADER} header")
    if not stamp:
        raise WebhookRejected(f"missing {TIMESTAMP_HEADER} header")
    sent = parse_timestamp(stamp)
    if sent is None:
        raise WebhookRejected(
            f"malformed {TIMESTAMP_HEADER} header: not an HTTP date, ISO 8601 or finite epoch seconds"
        )
    if abs(now - sent) > tolerance:
        when = f"{now - sent:.0f} s old" if sent < now else f"{sent - now:.0f} s ahead of this machine's clock"
        raise WebhookRejected(
            f"stale {TIMESTAMP_HEADER}: {when}, outside the {tolerance:.0f} s window (a replayed delivery, or a "
            "clock that is off: check this machine's time)"
        )
    given = signature.strip().lower()
    if len(given) != 64 or any(c not in "0123456789abcdef" for c in given):
        raise WebhookRejected(f"malformed {SIGNATURE_HEADER} header: expected 64 hex digits")
    by_previous = False
    if not hmac.compare_digest(given, sign(secret, body, stamp)):
        by_previous = bool(previous) and hmac.compare_digest(given, sign(previous or "", body, stamp))
        if not by_previous:
            raise WebhookRejected(f"wrong {SIGNATURE_HEADER}: it does not match the body and timestamp")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise WebhookMalformed("the body is not JSON") from None
    if not isinstance(document, Mapping) or not isinstance(document.get("data"), list):
        raise WebhookMalformed("the body has no data array (expected Klaviyo's system webhook shape)")
    meta: Mapping[str, Any] = document["meta"] if isinstance(document.get("meta"), Mapping) else {}
    header_id = _header(headers, WEBHOOK_ID_HEADER)
    meta_id = meta.get("klaviyo_webhook_id")
    if header_id and meta_id and str(meta_id) != header_id:
        raise WebhookRejected(f"meta.klaviyo_webhook_id does not match the {WEBHOOK_ID_HEADER} header")
    events: list[DeliveryEvent] = []
    refused: list[RefusedEvent] = []
    for n, item in enumerate(document["data"]):  # all checked before any is used
        try:
            events.append(_event(n, item))
        except WebhookMalformed as exc:
            if not partial:
                raise
            refused.append(_refused(n, item, exc.reason))
    return Delivery(
        webhook_id=str(header_id or meta_id or ""),
        account_id=str(meta["klaviyo_account_id"]) if meta.get("klaviyo_account_id") else None,
        sent_at=sent,
        signature=given,
        events=tuple(events),
        refused=tuple(refused),
        by_previous=by_previous,
    )
