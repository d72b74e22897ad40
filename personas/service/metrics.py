"""Prometheus metrics of the service: webhooks, runs, Klaviyo calls; one registry per process.

``GET /metrics`` (``personas serve``, and ``personas worker --metrics-port``) answers in Prometheus'
text format with ``prometheus_client``:

- ``personas_queue_depth``: runs waiting (queued) in the shared store;
- ``personas_runs{status=...}``: runs by status in the shared store;
- ``personas_store_up``: 1 when the store answered for the two above, 0 when it did not (they are
  then left out rather than shown stale); all three are read from the store at each scrape
  (:meth:`Metrics.count_runs`), whoever serves ``/metrics``;
- ``personas_webhook_deliveries_total{result=...}``: ``accepted``, ``ignored`` (verified, but no event
  in it starts a persona: another topic), ``duplicate`` (a replay),
  ``rejected`` (401: a missing, wrong or stale signature or timestamp), ``malformed`` (400: signed
  correctly, but the body is not a delivery), ``too_large`` (413: over the body cap, refused unread),
  ``failed`` (503: verified, but its runs could not be recorded or queued; Klaviyo sends it again); a
  delivery whose every item is refused alone (none an event of Klaviyo's shape) is ``malformed`` too,
  though answered 202 (retrying it cannot help);
- ``personas_webhook_events_refused_total``: items of verified deliveries refused alone (not an event
  of Klaviyo's shape) while the rest of their batch was taken;
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

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from klaviyo_toolkit.client import CallRecord
from klaviyo_toolkit.tools import Call

__all__ = ["CONTENT_TYPE", "DELIVERY_RESULTS", "Metrics", "MetricsGuard"]

log = logging.getLogger("personas.service")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The ``result`` label of ``personas_webhook_deliveries_total`` (see the module docstring).
DELIVERY_RESULTS = ("accepted", "ignored", "duplicate", "rejected", "malformed", "too_large", "failed")


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


class _StoreCounts:
    """A ``prometheus_client`` collector: the store's runs by status, read when a scrape asks."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self.counts = counts
        self.failing = False

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            counts = self.counts()
        except Exception as exc:  # the database away: say so, and no stale counts
            if not self.failing:
                log.warning("/metrics: the run store does not answer (%s); personas_store_up is 0", type(exc).__name__)
            self.failing = True
            yield GaugeMetricFamily("personas_store_up", "Whether the run store answered this scrape.", value=0)
            return
        self.failing = False
        yield GaugeMetricFamily("personas_store_up", "Whether the run store answered this scrape.", value=1)
        yield GaugeMetricFamily("personas_queue_depth", "Runs waiting to be run.", value=counts.get("queued", 0))
        runs = GaugeMetricFamily("personas_runs", "Runs in the store, by status.", labels=["status"])
        for status, n in counts.items():
            runs.add_metric([status], n)
        yield runs


class Metrics:
    """The service's metrics (see the module docstring); ``render()`` is the /metrics body.

    ``enabled`` is False when ``prometheus_client`` is not installed: every metric then records nothing.
    """

    def __init__(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Histogram
        except ImportError:
            self.enabled = False
            self.registry: Any = None
            nothing: Any = _Nothing()
            self.deliveries = self.enqueue_seconds = self.refused_events = nothing
            self.finished = self.run_seconds = self.call_seconds = self.throttled = nothing
            return
        self.enabled = True
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "personas_webhook_deliveries", "Webhook deliveries, by result.", ["result"], registry=self.registry
        )
        self.refused_events = Counter(
            "personas_webhook_events_refused",
            "Items of verified webhook deliveries refused alone (not an event of Klaviyo's shape).",
            registry=self.registry,
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

    def count_runs(self, counts: Callable[[], dict[str, int]]) -> None:
        """Read ``counts()`` (runs by status: the store's) at each scrape of this registry, for
        ``personas_queue_depth``, ``personas_runs`` and ``personas_store_up``; once per registry."""
        if self.enabled:
            self.registry.register(_StoreCounts(counts))

    def render(self) -> bytes:
        """The text exposition (it reads the store when :meth:`count_runs` was given it: call it off
        the event loop)."""
        if not self.enabled:
            from .extras import METRICS, missing_extra

            return f"# {missing_extra('/metrics', *METRICS)}\n".encode()
        from prometheus_client import generate_latest

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
