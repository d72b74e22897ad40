"""``personas serve``: the Starlette app that receives Klaviyo's system webhooks.

- ``POST /webhooks/klaviyo``: a body over ``max_body`` bytes (:data:`MAX_BODY`, 1 MiB) is ``413`` and
  is never read whole: a larger ``Content-Length`` is refused before reading, and a body without one
  (chunked) is read only up to the cap. The delivery is then verified as Klaviyo documents it
  (``klaviyo_toolkit.webhooks.verify_delivery``: HMAC-SHA256 of the raw body and ``Klaviyo-Timestamp``
  with ``KLAVIYO_WEBHOOK_SECRET``, a 5-minute window). A missing, malformed, wrong or stale signature
  or timestamp is ``401`` with the reason and starts nothing; a correctly signed body that is not a
  delivery (not JSON, not Klaviyo's shape) is ``400`` with the reason. A delivery whose signature
  was taken before (a replay, or Klaviyo retrying one we accepted) is ``200 {"duplicate": true}``
  and starts nothing. Otherwise each event whose topic starts a persona (``schedule: on_event``) is
  recorded as a run, once per event id, and handed to the queue; the answer is ``202`` with the runs.
  The work is only recorded and queued here, so the answer comes in milliseconds. A delivery is
  remembered as taken only once its runs are recorded and queued: when the store or the queue fails
  first, the answer is ``503`` (logged, counted as ``failed``), and the same delivery sent again
  (Klaviyo's retry, or a proxy's resending the same bytes) is taken then, not dropped as a replay.
- ``GET /healthz``: ``{"ok": true, "store": ..., "queue": ...}`` (503 when the store does not answer).
- ``GET /metrics``: Prometheus text (``metrics.py``; 503 without prometheus-client); each delivery
  is counted by its result (``accepted``, ``ignored``, ``duplicate``, ``rejected``, ``malformed``,
  ``too_large``, ``failed``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
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
    tolerance: float = DEFAULT_TOLERANCE,
    clock: Callable[[], float] = time.time,
    lifespan: Any = None,
    max_body: int = MAX_BODY,
    outage: OutageLog | None = None,
) -> Any:
    """The webhook receiver of ``service`` (see the module docstring); ``secret`` defaults to the config's.
    ``outage``: told when a request finds the database away or back (``personas serve`` on PostgreSQL)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    key = secret if secret is not None else (service.config.webhook_secret or "")

    async def receive(request: Request) -> Response:
        started = time.perf_counter()
        try:
            body = await _read_capped(request, max_body)
            delivery = verify_delivery(key, body, dict(request.headers), now=clock(), tolerance=tolerance)
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
            accepted = await asyncio.to_thread(_record, service, delivery)
            for run_id, _new, queue_it in accepted:
                if queue_it:
                    await queue.enqueue_async(run_id)
            # remembered only now: a delivery that failed above is not a replay when it comes again
            await asyncio.to_thread(service.store.first_delivery, delivery.signature)
        except Exception as exc:  # the store or the queue is away: Klaviyo (or a proxy) must send it again
            _away(outage, exc)
            service.metrics.deliveries.labels("failed").inc()
            reason = describe_error(exc, 300)
            log.error("webhook delivery of %d event(s) not taken (%s); answered 503, so it is sent again",
                      len(delivery.events), reason)
            return JSONResponse({"error": f"the delivery could not be recorded or queued ({reason}); send it "
                                          "again"}, status_code=503, headers={"Retry-After": "30"})
        if outage is not None:
            outage.back()
        if not accepted:  # no event in it starts a persona (another topic): taken, and said so
            service.metrics.deliveries.labels("ignored").inc()
            topics = sorted({item.topic for item in delivery.events})
            log.info("webhook delivery of %d event(s) starts no persona (topics: %s)", len(delivery.events),
                     ", ".join(topics) or "none")
            why = f"no persona starts on {', '.join(topics)}" if topics else "the delivery holds no event"
            return JSONResponse({"runs": [], "ignored": why}, status_code=202)
        service.metrics.deliveries.labels("accepted").inc()
        service.metrics.enqueue_seconds.observe(time.perf_counter() - started)
        return JSONResponse(
            {"runs": [{"id": rid, "new": new} for rid, new, _queued in accepted]}, status_code=202
        )

    async def healthz(request: Request) -> Response:
        try:
            counts = await asyncio.to_thread(service.store.counts)
        except Exception as exc:
            _away(outage, exc)
            return JSONResponse({"ok": False, "error": type(exc).__name__}, status_code=503)
        if outage is not None:
            outage.back()
        return JSONResponse({"ok": True, "store": service.store.dialect, "queued": counts["queued"],
                             "secret": bool(key)})

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


def _record(service: Service, delivery: Any) -> list[tuple[str, bool, bool]]:
    """Record the delivery's runs (once per event id, so doing it again is harmless): (run id, new,
    to queue) each."""
    out: list[tuple[str, bool, bool]] = []
    for item in delivery.events:
        for spec in service.triggered_by(item.topic):
            run, created = service.record_event(spec, item.event_id, item.payload, trigger="webhook")
            # a run recorded by an earlier attempt of this delivery that failed before handing it on is
            # still queued and in no queue: Klaviyo's retry (a new timestamp, so a new signature) queues
            # it (the queue's lock keeps a run that is waiting there from being queued twice)
            out.append((run.id, created, created or run.status == "queued"))
    return out
