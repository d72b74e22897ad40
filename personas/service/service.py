"""The service: what every unattended entry point shares (webhooks, polling, schedules, workers).

A :class:`Service` holds the resolved :class:`Config`, the run store (SQLite or PostgreSQL), the
checkpointer (the same choice), the metrics and the options handed to ``build_context`` (a sandbox
in tests). It turns triggers into recorded runs (:meth:`Service.record_event`, by event id, once)
and runs a recorded run to its end through the one driver (:meth:`Service.execute`): a run that a
dead worker left half-done continues from its last checkpoint, a failure is recorded as ``failed``
with its error (``personas runs retry`` continues it), a pause for approval as ``paused``.

Example::

    service = Service.open(Config.from_env())
    run, new = service.record_event(spec, event_id, payload, trigger="webhook")
    service.execute(run.id)
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphs import graph_spec
from klaviyo_toolkit.redact import clip
from klaviyo_toolkit.webhooks import topic_for, unkept_text
from personas.kernel.config import Config
from personas.kernel.context import PersonaContext
from personas.kernel.errors import AnswerProblem, UsageProblem
from personas.kernel.privacy import describe_error, register_secrets
from personas.kernel.spec import PersonaSpec
from personas.runtime.context import build_context
from personas.runtime.driver import RunDriver, RunResult, checkpointer, left_to_run
from personas.runtime.loader import scan_personas

from .extras import POSTGRES, require
from .metrics import Metrics, MetricsGuard
from .store import Run, RunStore, no_run

__all__ = ["Service", "trigger_metric"]

log = logging.getLogger("personas.service")


def trigger_metric(spec: PersonaSpec) -> str | None:
    """The metric whose events start ``spec`` (``schedule: on_event`` and its graph's trigger setting)."""
    if spec.schedule != "on_event":
        return None
    graph = graph_spec(spec.graph)
    if not graph.trigger_setting:
        return None
    settings = graph.settings.model_validate(spec.settings)
    value = getattr(settings, graph.trigger_setting, None)
    return str(value) if value else None


@dataclass
class Service:
    """See the module docstring. Build one with :meth:`open`; close it with :meth:`close`."""

    config: Config
    store: RunStore
    saver: Any
    metrics: Metrics = field(default_factory=Metrics)
    context_options: dict[str, Any] = field(default_factory=dict)
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    clock: Any = time.time
    _personas: dict[str, PersonaSpec] | None = field(default=None, repr=False)
    _triggers: dict[str, list[PersonaSpec]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.metrics.count_runs(self.store.counts)  # /metrics (serve's, a worker's) reads them at each scrape

    @classmethod
    def open(
        cls, config: Config, *, clock: Any = time.time, patience: float = 30.0, **context_options: Any
    ) -> Service:
        """The store and checkpointer the config names (PostgreSQL with a database URL, else SQLite);
        ``patience``: how long a store request rides out a PostgreSQL outage (a receiver answers at once)."""
        register_secrets(config)
        if config.database_url:
            require("PERSONAS_DATABASE_URL (PostgreSQL)", *POSTGRES)
        store = RunStore.open(config, clock=clock, patience=patience)
        if config.database_url:
            from .postgres import checkpointer as pg_checkpointer

            saver = pg_checkpointer(config.database_url)
        else:
            saver = checkpointer(config.path("checkpoints.sqlite"))
        return cls(config, store, saver, context_options=dict(context_options), clock=clock)

    def close(self) -> None:
        """Close the run store and the PostgreSQL pool; the SQLite checkpointer is shared by every run
        in this process (``personas.runtime.checkpointer``), so it stays open for the next service."""
        self.store.close()
        pool = getattr(self.saver, "conn", None)
        if self.config.database_url and pool is not None and hasattr(pool, "close"):
            pool.close()

    # -- personas ------------------------------------------------------------------------------------
    def personas(self) -> dict[str, PersonaSpec]:
        """Every persona (shipped and ``$PERSONAS_HOME/personas``) that loads cleanly; read once per
        service (restart it to pick up edited persona files)."""
        if self._personas is None:
            self._personas = dict(scan_personas(self.config.home).personas)
        return self._personas

    def persona(self, name: str) -> PersonaSpec:
        found = self.personas()
        if name not in found:
            raise UsageProblem(f"no persona named {name!r}; personas: {', '.join(sorted(found))}")
        return found[name]

    def triggered_by(self, topic: str) -> list[PersonaSpec]:
        """The personas a webhook topic starts (``event:klaviyo.<their trigger metric>``)."""
        if self._triggers is None:
            triggers: dict[str, list[PersonaSpec]] = {}
            for spec in self.personas().values():
                metric = trigger_metric(spec)
                if metric:
                    triggers.setdefault(topic_for(metric), []).append(spec)
            self._triggers = triggers
        return list(self._triggers.get(topic, ()))

    def context(self, spec: PersonaSpec, thread_id: str) -> PersonaContext:
        """The run context of ``spec`` on ``thread_id``, with the service's metrics on every call."""
        return build_context(
            spec,
            config=self.config,
            thread_id=thread_id,
            guards=(MetricsGuard(self.metrics.observe_call),),
            **self.context_options,
        )

    # -- recording runs ------------------------------------------------------------------------------
    def record_event(
        self, spec: PersonaSpec, event_id: str, document: Mapping[str, Any], *, trigger: str
    ) -> tuple[Run, bool]:
        """Record a run of ``spec`` for one Klaviyo event, once per event id (webhook and poll alike).

        An event holding text no store keeps (a NUL, a lone surrogate: ``unkept_text``, the check
        webhook deliveries get) is recorded ``failed``, never queued, with an error naming the field
        and without the event (PostgreSQL would refuse it, and stop the poll that found it): the
        events around it still run, and it is recorded once, however often a poll sees it again. It is
        recorded ``refused`` too, so :meth:`retry` refuses it: no retry could run an event not kept.
        """
        unkept = unkept_text(dict(document)) or unkept_text(event_id, "the event id")
        if unkept is None:
            return self.store.create_run(spec.name, f"event:{event_id}", trigger, dict(document))
        shown = json.dumps(event_id)[1:-1]  # a NUL as \u0000: a key PostgreSQL keeps, the same each time
        error = (
            f"event {shown} ({trigger}) was not run: {unkept}; it cannot be stored or run as it is, and "
            "retrying will not help: correct the event where it is sent to Klaviyo"
        )
        return self.store.create_run(spec.name, f"event:{shown}", trigger, {"data": {"type": "event", "id": shown}},
                                     status="failed", error=error, refused=unkept)

    def refuse_event(
        self, spec: PersonaSpec, key: str, event_id: str | None, reason: str, *, trigger: str
    ) -> tuple[Run, bool]:
        """Keep an item a delivery carried for ``spec`` that is not an event of Klaviyo's shape (``reason``
        names the field) as a run refused before it started: ``failed``, never queued or retried, listed
        by ``personas runs``; once per ``key`` (a digest of the item), however often the batch comes again.
        Only the event's id is kept (``event_id``: None when it is not readable text), not the item."""
        error = (
            f"event {event_id or '(without a readable id)'} ({trigger}) was not run: {reason}; retrying will "
            "not help: correct the event where it is sent to Klaviyo"
        )
        return self.store.create_run(spec.name, key, trigger, {"data": {"type": "event", "id": event_id or ""}},
                                     status="failed", error=error, refused=reason)

    # -- running -------------------------------------------------------------------------------------
    def execute(self, run_id: str, *, resume: Any = None) -> Run:
        """Run a recorded run to its end or next pause; record how it ended. Never raises for the run's
        own failure (it is recorded); a run already settled is returned as it is."""
        if resume is not None:
            run = self.store.get(run_id)
            if run is None or run.status != "paused":
                raise UsageProblem(f"run {run_id} is not waiting for an approval")
            self.store.requeue(run_id)
        with self.store.running(run_id), self.store.serialized(self._subject(run_id)):
            # one worker per run, even when the queue hands it out twice; one run per lead at a time
            return self._execute(run_id, resume)

    def _subject(self, run_id: str) -> str | None:
        """The profile an event-started run is about (runs about one profile take turns), if any."""
        run = self.store.get(run_id)
        data = (run.input or {}).get("data") if run is not None and isinstance(run.input, dict) else None
        profile = ((data or {}).get("relationships") or {}).get("profile") if isinstance(data, dict) else None
        pid = (profile or {}).get("data", {}) if isinstance(profile, dict) else {}
        value = pid.get("id") if isinstance(pid, dict) else None
        return f"profile:{value}" if isinstance(value, str) and value else None

    def _execute(self, run_id: str, resume: Any) -> Run:
        run = self.store.claim(run_id, self.worker)
        if run is None:
            existing = self.store.get(run_id)
            if existing is None:
                raise no_run(run_id)
            return existing
        started = time.monotonic()
        try:
            spec = self.persona(run.persona)
            driver = RunDriver(self.context(spec, run.thread_id), self.saver)
            result = self._drive(driver, run, resume)
            status = {"done": "done", "paused": "paused"}.get(result.status, "failed")
            outcome = result.state.get("outcome")
            error = "the run stopped before its end" if status == "failed" else None
            if status == "done" and driver.spec.exit_code is not None and (code := driver.spec.exit_code(result.state)):
                # finished, but not all it set out to do (what `personas run` exits non-zero for)
                status, error = "partial", f"finished in part (exit code {code} from personas run); see its outcome"
            kept = self.store.finish(
                run.id,
                status,
                outcome=clip(str(outcome), 500) if outcome else None,
                error=error,
            )
        except AnswerProblem:
            # the answer was refused before anything ran (it named another request, a race with
            # another resumer): the run is as its thread says, paused still, and answerable again
            now = driver.result()
            self.store.finish(run.id, {"done": "done", "paused": "paused"}.get(now.status, "failed"))
            raise
        except Exception as exc:  # the run's own failure: recorded, retryable from its checkpoint
            kept = self.store.finish(run.id, "failed", error=describe_error(exc, 500))
        finished = self.store.get(run.id)
        assert finished is not None
        if not kept:  # taken over meanwhile (SQLite; the store said so): the new owner's result stands
            return finished
        if finished.status == "partial":
            log.warning("run %s of %s finished in part: %s", run.id, run.persona,
                        clip(" ".join((finished.outcome or finished.error or "").split()), 300))
        if finished.status == "failed":  # one line in the serve/worker log; the error is redacted already
            log.warning("run %s of %s failed: %s; `personas runs retry %s` continues it from its last checkpoint",
                        run.id, run.persona, clip(" ".join((finished.error or "").split()), 300), run.id)
        self.metrics.finished.labels(finished.status).inc()
        self.metrics.run_seconds.observe(time.monotonic() - started)
        return finished

    @staticmethod
    def _drive(driver: RunDriver, run: Run, resume: Any) -> RunResult:
        if resume is not None:
            return driver.invoke(None, resume=resume)
        if not driver.exists():
            return driver.invoke(driver.spec.make_input(run.input))
        snap = driver.snapshot()
        if driver.pending(snap) or not left_to_run(snap):
            return driver.result(snap)  # still paused, or it finished before its worker died
        return driver.retry()  # a worker died (or a step failed) mid-run: continue from the checkpoint

    def pending(self, run_id: str) -> list[Any]:
        """The approvals a paused run waits for (each with its request and fingerprint); empty if none."""
        run = self.store.get(run_id)
        if run is None:
            raise no_run(run_id)
        if run.status != "paused":
            return []
        return RunDriver(self.context(self.persona(run.persona), run.thread_id), self.saver).pending()

    def retry(self, run_id: str) -> Run:
        """Put a failed run back in the queue (it continues from its last checkpoint when run).

        A run refused before it started (its event held text no store keeps) is left as it is: its
        event was never kept, so no retry could run it; the fix is at the event's source.
        """
        run = self.store.get(run_id)
        if run is None:
            raise no_run(run_id)
        if run.status != "failed":
            raise UsageProblem(f"run {run_id} is {run.status}; only a failed run can be retried")
        if run.refused:
            raise UsageProblem(
                f"run {run_id} cannot be retried: it was refused before it started ({run.refused}), so its "
                "event was never kept; correct the event where it is sent to Klaviyo (a corrected event starts "
                "a run of its own)"
            )
        again = self.store.requeue(run_id)
        assert again is not None
        return again
