"""``personas serve``: the Starlette app that receives Klaviyo's system webhooks.

- ``POST /webhooks/klaviyo``: the delivery is verified as Klaviyo documents it
  (``klaviyo_toolkit.webhooks.verify_delivery``: HMAC-SHA256 of the raw body and ``Klaviyo-Timestamp``
  with ``KLAVIYO_WEBHOOK_SECRET``, a 5-minute window). A missing, malformed, wrong or stale signature
  is ``401`` with the reason and starts nothing. A delivery whose signature was seen before (a replay,
  or Klaviyo retrying one we accepted) is ``200 {"duplicate": true}`` and starts nothing. Otherwise
  each event whose topic starts a persona (``schedule: on_event``) is recorded as a run, once per
  event id, and handed to the queue; the answer is ``202`` with the runs. The work is only recorded
  and queued here, so the answer comes in milliseconds.
- ``GET /healthz``: ``{"ok": true, "store": ..., "queue": ...}`` (503 when the store does not answer).
- ``GET /metrics``: Prometheus text (``metrics.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from klaviyo_toolkit.webhooks import DEFAULT_TOLERANCE, WebhookRejected, verify_delivery

from .metrics import CONTENT_TYPE
from .queues import Queue
from .service import Service

__all__ = ["build_app"]

log = logging.getLogger("personas.service")


def build_app(
    service: Service,
    queue: Queue,
    *,
    secret: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    clock: Callable[[], float] = time.time,
    lifespan: Any = None,
) -> Any:
    """The webhook receiver of ``service`` (see the module docstring); ``secret`` defaults to the config's."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    key = secret if secret is not None else (service.config.webhook_secret or "")

    async def receive(request: Request) -> Response:
        started = time.perf_counter()
        body = await request.body()
        try:
            delivery = verify_delivery(key, body, dict(request.headers), now=clock(), tolerance=tolerance)
        except WebhookRejected as exc:
            service.metrics.deliveries.labels("rejected").inc()
            log.warning("webhook refused: %s", exc.reason)
            return JSONResponse({"error": exc.reason}, status_code=401)
        accepted = await asyncio.to_thread(_record, service, delivery)
        if accepted is None:
            service.metrics.deliveries.labels("duplicate").inc()
            return JSONResponse({"duplicate": True, "runs": []}, status_code=200)
        for run_id, created in accepted:
            if created:
                await queue.enqueue_async(run_id)
        service.metrics.deliveries.labels("accepted").inc()
        service.metrics.enqueue_seconds.observe(time.perf_counter() - started)
        return JSONResponse(
            {"runs": [{"id": rid, "new": new} for rid, new in accepted]}, status_code=202
        )

    async def healthz(request: Request) -> Response:
        try:
            counts = await asyncio.to_thread(service.store.counts)
        except Exception as exc:
            return JSONResponse({"ok": False, "error": type(exc).__name__}, status_code=503)
        return JSONResponse({"ok": True, "store": service.store.dialect, "queued": counts["queued"],
                             "secret": bool(key)})

    async def metrics(request: Request) -> Response:
        counts = await asyncio.to_thread(service.store.counts)
        return Response(service.metrics.render(counts), media_type=CONTENT_TYPE)

    routes = [
        Route("/webhooks/klaviyo", receive, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _record(service: Service, delivery: Any) -> list[tuple[str, bool]] | None:
    """Record the delivery's runs; None when the delivery was seen before (a replay)."""
    if not service.store.first_delivery(delivery.signature):
        return None
    out: list[tuple[str, bool]] = []
    for item in delivery.events:
        for spec in service.triggered_by(item.topic):
            run, created = service.record_event(spec, item.event_id, item.payload, trigger="webhook")
            out.append((run.id, created))
    return out
