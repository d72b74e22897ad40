"""Prometheus metrics of the service: webhooks, runs, Klaviyo calls; one registry per process.

``GET /metrics`` (``personas serve``, and ``personas worker --metrics-port``) answers in Prometheus'
text format with ``prometheus_client``:

- ``personas_queue_depth``: runs waiting (queued) in the shared store;
- ``personas_runs{status=...}``: runs by status in the shared store;
- ``personas_webhook_deliveries_total{result=...}``: ``accepted``, ``duplicate`` (a replay),
  ``rejected`` (401: a missing, wrong or stale signature or timestamp), ``malformed`` (400: signed
  correctly, but the body is not a delivery), ``too_large`` (413: over the body cap, refused unread);
  ``personas_webhook_enqueue_seconds`` (request received -> run queued);
- ``personas_runs_finished_total{status=...}`` and ``personas_run_seconds`` for runs this process ran;
- ``personas_klaviyo_call_seconds{operation=...}`` (each HTTP attempt) and
  ``personas_klaviyo_throttled_total{operation=...}`` (HTTP 429s), observed by :class:`MetricsGuard`
  on every call of the runs this process ran.

``prometheus_client`` comes with the ``[server]`` extra. Without it :class:`Metrics` is a recorder that
keeps nothing (``enabled`` is False), so commands that never serve ``/metrics`` (``personas runs``,
``personas watch``) work on the ``[sandbox]`` install, and ``personas serve``'s ``/metrics`` answers 503
saying what to install; ``worker --metrics-port`` requires it (``extras.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from klaviyo_toolkit.client import CallRecord
from klaviyo_toolkit.tools import Call

__all__ = ["CONTENT_TYPE", "DELIVERY_RESULTS", "Metrics", "MetricsGuard"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The ``result`` label of ``personas_webhook_deliveries_total`` (see the module docstring).
DELIVERY_RESULTS = ("accepted", "duplicate", "rejected", "malformed", "too_large")


class _Nothing:
    """A metric that records nothing (no ``prometheus_client``): ``labels(...)`` is itself."""

    def labels(self, *_: Any) -> _Nothing:
        return self

    def inc(self, *_: Any) -> None:
        pass

    def set(self, *_: Any) -> None:
        pass

    def observe(self, *_: Any) -> None:
        pass


class Metrics:
    """The service's metrics (see the module docstring); ``render(store)`` is the /metrics body.

    ``enabled`` is False when ``prometheus_client`` is not installed: every metric then records nothing.
    """

    def __init__(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError:
            self.enabled = False
            self.registry: Any = None
            nothing: Any = _Nothing()
            self.queue_depth = self.runs = self.deliveries = self.enqueue_seconds = nothing
            self.finished = self.run_seconds = self.call_seconds = self.throttled = nothing
            return
        self.enabled = True
        self.registry = CollectorRegistry()
        self.queue_depth = Gauge("personas_queue_depth", "Runs waiting to be run.", registry=self.registry)
        self.runs = Gauge("personas_runs", "Runs in the store, by status.", ["status"], registry=self.registry)
        self.deliveries = Counter(
            "personas_webhook_deliveries", "Webhook deliveries, by result.", ["result"], registry=self.registry
        )
        self.enqueue_seconds = Histogram(
            "personas_webhook_enqueue_seconds",
            "From a webhook request received to its runs queued.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        self.finished = Counter(
            "personas_runs_finished", "Runs this process ran, by how they ended.", ["status"], registry=self.registry
        )
        self.run_seconds = Histogram("personas_run_seconds", "Duration of runs this process ran.",
                                     registry=self.registry)
        self.call_seconds = Histogram(
            "personas_klaviyo_call_seconds",
            "Klaviyo HTTP attempts, by operation.",
            ["operation"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.throttled = Counter(
            "personas_klaviyo_throttled", "Klaviyo answers with HTTP 429, by operation.", ["operation"],
            registry=self.registry,
        )
        for result in DELIVERY_RESULTS:  # every result shows, at 0 until it happens
            self.deliveries.labels(result)

    def observe_call(self, record: CallRecord) -> None:
        self.call_seconds.labels(record.operation_id).observe(record.latency)
        if record.status == 429:
            self.throttled.labels(record.operation_id).inc()

    def render(self, counts: dict[str, int] | None = None) -> bytes:
        """The text exposition, with the store's ``counts`` (runs by status) as gauges."""
        if not self.enabled:
            from .extras import METRICS, missing_extra

            return f"# {missing_extra('/metrics', *METRICS)}\n".encode()
        from prometheus_client import generate_latest

        if counts is not None:
            for status, n in counts.items():
                self.runs.labels(status).set(n)
            self.queue_depth.set(counts.get("queued", 0))
        return bytes(generate_latest(self.registry))


@dataclass(frozen=True)
class MetricsGuard:
    """A guard that lets ``observe`` see every HTTP attempt of a call (latency, status)."""

    observe: Callable[[CallRecord], None]

    def before(self, call: Call) -> Call:
        return call.observed_by(self._observe)

    def _observe(self, call: Call, event: Any) -> None:
        if isinstance(event, CallRecord):
            self.observe(event)
