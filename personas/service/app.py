"""``personas serve``: the Starlette app that receives Klaviyo's system webhooks.

- ``POST /webhooks/klaviyo``: a body over ``max_body`` bytes (:data:`MAX_BODY`, 1 MiB) is ``413`` and
  is never read whole: a larger ``Content-Length`` is refused before reading, and a body without one
  (chunked) is read only up to the cap. The delivery is then verified as Klaviyo documents it
  (``klaviyo_toolkit.webhooks.verify_delivery``: HMAC-SHA256 of the raw body and ``Klaviyo-Timestamp``
  with ``KLAVIYO_WEBHOOK_SECRET``, or during a rotation ``KLAVIYO_WEBHOOK_SECRET_PREVIOUS``, a 5-minute
  window). A missing, malformed, wrong or stale signature or timestamp is ``401`` with the reason and
  starts nothing; a correctly signed body that is not a delivery (not JSON, no ``data`` array) is
  ``400`` with the reason. A delivery whose signature was taken before (a replay, or Klaviyo retrying
  one we accepted) is ``200 {"duplicate": true}`` and starts nothing.
  Otherwise each item of the batch is judged alone, and the answer is ``202`` saying per item
  (``events``) what happened and why: an event whose topic starts a persona (``schedule: on_event``) is
  recorded as a run, once per event id (in this delivery, a retry of it, or any other), and handed to
  the queue (``queued``, or ``duplicate`` when it was recorded before); an event of another topic is
  ``ignored``; an item that is not an event of Klaviyo's shape is ``refused`` with the field and the fix,
  and kept as a run refused before it started (``personas runs --status failed``) for each persona its
  topic starts, once however often the batch is retried, while the rest of the batch runs: Klaviyo
  retries a non-2xx delivery whole and then gives up, so refusing the batch would lose its good events.
  The work is only recorded and queued here, so the answer comes in milliseconds. A delivery is
  remembered as taken only once its runs are recorded and queued: when the store or the queue fails
  first, the answer is ``503`` (logged, counted as ``failed``), and the same delivery sent again
  (Klaviyo's retry, or a proxy's resending the same bytes) is taken then, not dropped as a replay.
- ``GET /healthz``: ``{"ok": true, "store": ..., "queued": ..., "secret": ...}`` (503 when the store does
  not answer), with ``"rotating": true`` while a previous secret is accepted too.
- ``GET /metrics``: Prometheus text (``metrics.py``; 503 without prometheus-client); each delivery
  is counted by its result (``accepted``, ``ignored``, ``duplicate``, ``rejected``, ``malformed``,
  ``too_large``, ``failed``), and each item refused alone in ``personas_webhook_events_refused_total``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from klaviyo_toolkit.webhooks import DEFAULT_TOLERANCE, WebhookMalformed, WebhookRejected, verify_delivery
from personas.kernel.privacy import describe_error

from .metrics import CONTENT_TYPE
from .outage_log import OutageLog, connection_failure
from .queues import Queue
from .service import Service

__all__ = ["MAX_BODY", "REPLAY_WINDOW", "build_app"]

log = logging.getLogger("personas.service")

#: The largest delivery body read (1 MiB). Klaviyo's deliveries are a few KB: a batch of events, each a
#: Get Event document with its profile and metric (2-5 KB), so 1 MiB leaves room for a batch of a few
#: hundred; what is bigger is not Klaviyo, and it is refused before it is read into memory (unsigned
#: bodies are read before the signature can be checked, so without a cap anyone could make us buffer
#: hundreds of MB).
MAX_BODY = 1024 * 1024
#: How long a delivery's signature is remembered (seconds): a replay is refused as stale once its
#: timestamp is more than the tolerance from the receiver's clock, and that timestamp may have been up
#: to the tolerance ahead of the clock when it was first received; older signatures are forgotten by
#: the minute tick (``serving.local_tick``, ``tasks.tick_once``).
REPLAY_WINDOW = 2 * DEFAULT_TOLERANCE


class _TooLarge(Exception):
    pass


async def _read_capped(request: Any, cap: int) -> bytes:
    """The body, or :class:`_TooLarge` as soon as it is known to be over ``cap``: by its Content-Length
    before anything is read, and while it streams in (a chunked body, or one longer than it said)."""
    declared = (request.headers.get("content-length") or "").strip()
    if declared.isdigit() and int(declared) > cap:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(
    service: Service,
    queue: Queue,
    *,
    secret: str | None = None,
    previous: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    clock: Callable[[], float] = time.time,
    lifespan: Any = None,
    max_body: int = MAX_BODY,
    outage: OutageLog | None = None,
) -> Any:
    """The webhook receiver of ``service`` (see the module docstring); ``secret`` and ``previous`` (the
    secret being rotated out) default to the config's.
    ``outage``: told when a request finds the database away or back (``personas serve`` on PostgreSQL)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    key = secret if secret is not None else (service.config.webhook_secret or "")
    old = previous if previous is not None else service.config.webhook_secret_previous

    async def receive(request: Request) -> Response:
        started = time.perf_counter()
        try:
            body = await _read_capped(request, max_body)
            delivery = verify_delivery(key, body, dict(request.headers), now=clock(), tolerance=tolerance,
                                       previous=old, partial=True)
        except _TooLarge:
            service.metrics.deliveries.labels("too_large").inc()
            log.warning("webhook refused: the body is over %d bytes", max_body)
            return JSONResponse(
                {"error": f"the body is over {max_body} bytes; Klaviyo's deliveries are a few KB"},
                status_code=413,
                headers={"Connection": "close"},  # the rest of the body is never read
            )
        except WebhookMalformed as exc:  # signed with the secret, but not a delivery: not a secret or clock problem
            service.metrics.deliveries.labels("malformed").inc()
            log.warning("webhook malformed: %s", exc.reason)
            return JSONResponse({"error": exc.reason}, status_code=400)
        except WebhookRejected as exc:
            service.metrics.deliveries.labels("rejected").inc()
            log.warning("webhook refused: %s", exc.reason)
            return JSONResponse({"error": exc.reason}, status_code=401)
        try:
            if await asyncio.to_thread(service.store.delivery_seen, delivery.signature):
                service.metrics.deliveries.labels("duplicate").inc()
                return JSONResponse({"duplicate": True, "runs": []}, status_code=200)
            taken = await asyncio.to_thread(_record, service, delivery)
            for run_id in taken.to_queue:
                await queue.enqueue_async(run_id)
            # remembered only now: a delivery that failed above is not a replay when it comes again
            await asyncio.to_thread(service.store.first_delivery, delivery.signature)
        except Exception as exc:  # the store or the queue is away: Klaviyo (or a proxy) must send it again
            _away(outage, exc)
            service.metrics.deliveries.labels("failed").inc()
            reason = describe_error(exc, 300)
            log.error("webhook delivery of %d event(s) not taken (%s); answered 503, so it is sent again",
                      len(delivery.events) + len(delivery.refused), reason)
            return JSONResponse({"error": f"the delivery could not be recorded or queued ({reason}); send it "
                                          "again"}, status_code=503, headers={"Retry-After": "30"})
        if outage is not None:
            outage.back()
        if delivery.by_previous:
            log.info("webhook delivery signed with KLAVIYO_WEBHOOK_SECRET_PREVIOUS (a rotation under way); "
                     "unset it once Klaviyo signs with the new secret")
        if delivery.refused:
            service.metrics.refused_events.inc(len(delivery.refused))
            log.warning("webhook delivery: %d of %d event(s) refused, the rest taken: %s", len(delivery.refused),
                        len(taken.events), "; ".join(r.reason for r in delivery.refused[:3]))
        answer: dict[str, Any] = {"runs": [{"id": rid, "new": new} for rid, new in taken.runs]}
        if not taken.runs:  # no event in it starts a persona (another topic, or none usable): taken, and said so
            service.metrics.deliveries.labels("malformed" if delivery.refused and not delivery.events
                                              else "ignored").inc()
            topics = sorted({item.topic for item in delivery.events})
            log.info("webhook delivery of %d event(s) starts no persona (topics: %s)", len(taken.events),
                     ", ".join(topics) or "none")
            answer["ignored"] = (f"no persona starts on {', '.join(topics)}" if topics
                                 else "no event in the delivery can run" if delivery.refused
                                 else "the delivery holds no event")
        else:
            service.metrics.deliveries.labels("accepted").inc()
            service.metrics.enqueue_seconds.observe(time.perf_counter() - started)
        answer["events"] = taken.events[:MAX_LISTED]
        if len(taken.events) > MAX_LISTED:  # an answer stays small whatever the batch (the rest: log, runs)
            answer["events_not_listed"] = len(taken.events) - MAX_LISTED
        return JSONResponse(answer, status_code=202)

    async def healthz(request: Request) -> Response:
        try:
            counts = await asyncio.to_thread(service.store.counts)
        except Exception as exc:
            _away(outage, exc)
            return JSONResponse({"ok": False, "error": type(exc).__name__}, status_code=503)
        if outage is not None:
            outage.back()
        health = {"ok": True, "store": service.store.dialect, "queued": counts["queued"], "secret": bool(key)}
        if old:
            health["rotating"] = True  # a previous secret signs too: unset it once the rotation is over
        return JSONResponse(health)

    async def metrics(request: Request) -> Response:
        body = await asyncio.to_thread(service.metrics.render)  # reads the store's counts
        code = 200 if service.metrics.enabled else 503  # no prometheus-client here: the body says what to install
        return Response(body, media_type=CONTENT_TYPE, status_code=code)

    routes = [
        Route("/webhooks/klaviyo", receive, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _away(outage: OutageLog | None, exc: BaseException) -> None:
    """Tell ``outage`` of a request that found the database away (``exc`` a lost connection)."""
    why = None if outage is None else connection_failure(exc)
    if outage is not None and why is not None:
        outage.away(why)


#: The items an answer lists at most (a 1 MiB batch of tiny items would otherwise get an answer many
#: times its size); the rest are counted in ``events_not_listed``.
MAX_LISTED = 100

#: What an item refused alone says to do (in its ``fix``), and where it is kept.
_FIX = ("correct the event where it is sent to Klaviyo: the other events of this delivery were taken, and "
        "this one is refused the same way however often it is sent")


@dataclass
class _Taken:
    """What a delivery recorded: its events' runs, in order, as ``(run id, new)``, the runs to hand to
    the queue (each once), and per item of ``data`` what happened and why (the answer's ``events``)."""

    runs: list[tuple[str, bool]] = field(default_factory=list)
    to_queue: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def _record(service: Service, delivery: Any) -> _Taken:
    """Record the delivery's runs (once per event id, so doing it again is harmless) and its refused items
    (once per item, keyed by its digest); see :class:`_Taken`."""
    taken = _Taken()
    answers: dict[int, dict[str, Any]] = {}
    refused_at = {r.index for r in delivery.refused}
    places = [n for n in range(len(delivery.events) + len(delivery.refused)) if n not in refused_at]
    first_at: dict[tuple[str, str], int] = {}  # (topic, event id) -> the item of this delivery that carried it first
    for n, item in zip(places, delivery.events, strict=True):
        answer: dict[str, Any] = {"index": n, "event_id": item.event_id, "topic": item.topic}
        specs = service.triggered_by(item.topic)
        if not specs:
            answer.update(result="ignored", reason=f"no persona starts on {item.topic or 'an event without a topic'}")
        elif (item.topic, item.event_id) in first_at:  # the same event twice in one batch: one run, queued once
            first = first_at[item.topic, item.event_id]
            runs = answers[first].get("runs", [])
            taken.runs += [(rid, False) for rid in runs]
            answer.update(result="duplicate", runs=runs, reason=f"the same event as data[{first}]")
        else:
            first_at[item.topic, item.event_id] = n
            answer.update(runs=[], result="duplicate", reason="recorded before: an event runs once")
            for spec in specs:
                run, created = service.record_event(spec, item.event_id, item.payload, trigger="webhook")
                taken.runs.append((run.id, created))
                answer["runs"].append(run.id)
                # a run recorded by an earlier attempt of this delivery that failed before handing it on is
                # still queued and in no queue: Klaviyo's retry (a new timestamp, so a new signature) queues
                # it (the queue's lock keeps a run that is waiting there from being queued twice)
                if created or run.status == "queued":
                    taken.to_queue.append(run.id)
                    answer.update(result="queued", reason=None)
        answers[n] = answer
    kept: dict[str, list[str]] = {}  # an item's digest -> its refused runs (the same item twice: kept once)
    for refused in delivery.refused:
        specs = service.triggered_by(refused.topic) if refused.topic else []
        digest = hashlib.sha256(json.dumps(refused.item, sort_keys=True).encode()).hexdigest()[:32]
        if digest not in kept:
            kept[digest] = [service.refuse_event(spec, f"refused:{digest}", refused.event_id, refused.reason,
                                                 trigger="webhook")[0].id for spec in specs]
        runs = kept[digest]
        answers[refused.index] = {"index": refused.index, "event_id": refused.event_id, "topic": refused.topic,
                                  "result": "refused", "reason": refused.reason, "fix": _FIX, "runs": runs}
    order = ("index", "event_id", "topic", "result", "reason", "fix", "runs")
    taken.events = [{k: answers[n][k] for k in order if answers[n].get(k) is not None} for n in sorted(answers)]
    return taken
