"""Putting the parts together for the commands: ``serve``, ``worker``, ``watch`` and ``runs``.

- :func:`serve`: the webhook app under uvicorn. On SQLite it also runs the work (a :class:`LocalQueue`
  of threads, the runs of processes that are gone taken over, and a minute timer: :func:`local_tick`);
  on PostgreSQL it only records and queues, and ``personas worker`` processes run the work. Stopped
  (SIGTERM, Ctrl-C), it waits for the runs in progress only; stopped again, it waits for none.
- :func:`run_worker`: a procrastinate worker (PostgreSQL only), with stalled-job recovery.
- :func:`watch`: polls a persona's trigger metric and runs (or queues) what it finds.

Each takes a resolved :class:`Config` and keyword options; none reads the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from klaviyo_toolkit.errors import RateLimitError, ServerError, TransportError
from klaviyo_toolkit.redact import clip
from personas.kernel.config import Config
from personas.kernel.errors import UsageProblem
from personas.kernel.privacy import describe_error

from .app import REPLAY_WINDOW
from .checks import check_serve, check_worker
from .extras import SCHEDULES, missing, serve_gaps
from .outage_log import OutageLog, connection_failure
from .queues import LocalQueue, ProcrastinateQueue, listed_ids
from .schedule import cron_of, schedule_tick
from .service import Service
from .watch import poll_once

__all__ = [
    "build_serve_app", "check_serve", "check_worker", "local_tick", "minute_timer", "run_worker", "serve",
    "serve_notes", "watch",
]

log = logging.getLogger("personas.service")


def serve_notes(config: Config) -> list[str]:
    """What ``personas serve`` will not do on this install, one line each: the persona files that do not
    load (their personas start on nothing: a delivery for them is taken and ignored) and the extras
    missing (``extras.serve_gaps``)."""
    from personas.runtime.loader import scan_personas

    found = scan_personas(config.home)
    scheduled = any(cron_of(spec) for spec in found.personas.values())
    broken = [f"{' '.join(str(error).split())}; its persona does not run until the file loads (then restart)"
              for error in found.errors]
    rotating = []
    if config.webhook_secret_previous:
        rotating = ["KLAVIYO_WEBHOOK_SECRET_PREVIOUS is set: deliveries signed with it are accepted too (a "
                    "secret rotation); unset it and restart once Klaviyo signs with KLAVIYO_WEBHOOK_SECRET"]
    quoted = _quoted_secret(config.webhook_secret)
    quoted += _quoted_secret(config.webhook_secret_previous, "KLAVIYO_WEBHOOK_SECRET_PREVIOUS")
    return broken + quoted + rotating + serve_gaps(scheduled)


def _quoted_secret(secret: str | None, name: str = "KLAVIYO_WEBHOOK_SECRET") -> list[str]:
    """A note when ``KLAVIYO_WEBHOOK_SECRET`` comes in quotes (an env file read by a tool that keeps
    them, as ``docker --env-file`` does): every delivery would then be refused as wrongly signed,
    with nothing pointing at the quotes. A note, not a refusal: a secret may hold quotes."""
    if not secret or len(secret) < 2 or secret[0] != secret[-1] or secret[0] not in "\"'":
        return []
    return [f"{name} begins and ends with {secret[0]} (an env file whose quotes were kept?): "
            "Klaviyo signs with the secret_key exactly as its webhook has it, so if that has no quotes, "
            "remove them here, or every delivery is refused (401, a wrong signature)"]


def local_tick(service: Service, queue: LocalQueue, now: float, *, catch_up: str, schedules: bool = True) -> None:
    """One minute's work of ``personas serve`` on SQLite: queue the schedules' due slots (when croniter
    is there), take over the runs of processes on this home that are gone (``LocalQueue.recover``),
    and forget the deliveries too old to be replayed (:data:`~personas.service.app.REPLAY_WINDOW`).
    Each part is tried whatever the others did; a failure is logged and tried again next minute."""
    def schedules_due() -> None:
        for run in schedule_tick(service, now, catch_up=catch_up):
            queue.enqueue(run.id)

    parts: list[tuple[str, Callable[[], Any]]] = [
        ("schedules", schedules_due),
        ("runs of stopped processes", queue.recover),
        ("old deliveries", lambda: service.store.forget_deliveries(now - REPLAY_WINDOW)),
    ]
    for name, part in parts[0 if schedules else 1:]:
        try:
            part()
        except Exception as exc:  # Klaviyo unreachable for the time zone, the store busy: next minute
            log.warning("minute tick: %s skipped this time (%s: %s)", name, type(exc).__name__, clip(str(exc), 200))


def minute_timer(
    service: Service, queue: LocalQueue, *, catch_up: str, every: float = 60.0, schedules: bool = True
) -> threading.Event:
    """Run :func:`local_tick` now and every ``every`` seconds on a daemon thread (SQLite: the process
    that runs the work); set the returned event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            local_tick(service, queue, service.clock(), catch_up=catch_up, schedules=schedules)
            stop.wait(every)

    threading.Thread(target=loop, name="personas-minute", daemon=True).start()
    return stop


def build_serve_app(config: Config, *, workers: int = 2, catch_up: str = "latest", **context_options: Any) -> Any:
    """The app ``personas serve`` runs (see the module docstring), with its service and queue started."""
    check_serve(config, catch_up=catch_up)
    from .app import build_app

    # a receiver answers a delivery (or /healthz) at once when the database is away: 503, sent again later
    service = Service.open(config, patience=0.0, **context_options)
    service.triggered_by("")  # personas and graphs loaded now, not by the first delivery
    if config.database_url:
        from .postgres import describe
        from .tasks import build_app as build_tasks
        from .tasks import ensure_schema

        tasks = build_tasks(config.database_url)
        ensure_schema(tasks, config.database_url)
        # one line when the database goes away and one when a request finds it back, not a warning
        # for each of the pools' attempts to connect again
        outage = OutageLog("personas serve", describe(config.database_url),
                           "deliveries and /healthz are answered 503 (Klaviyo sends a delivery again) until it "
                           "answers; a line here says when it does")

        @contextlib.asynccontextmanager
        async def lifespan(_: Any) -> AsyncIterator[None]:
            with outage:
                async with tasks.open_async():
                    await tasks.check_connection_async()  # the pool's first connection, before the first delivery
                    yield
            service.close()

        return build_app(service, ProcrastinateQueue(tasks), lifespan=lifespan, outage=outage)
    queue = LocalQueue(service, workers=workers)
    queue.recover()
    # no croniter: no schedules (`serve_notes` said so when it started)
    stop = minute_timer(service, queue, catch_up=catch_up, schedules=not missing(*SCHEDULES))

    @contextlib.asynccontextmanager
    async def local_lifespan(_: Any) -> AsyncIterator[None]:
        yield
        stop.set()
        abandoned = await asyncio.to_thread(queue.close)
        if not abandoned:  # else the runs still use the store until the process ends
            service.close()

    app = build_app(service, queue, lifespan=local_lifespan)
    app.state.queue = queue  # `serve` tells it to stop waiting on a second signal
    return app


def serve(
    config: Config,
    listener: Any,
    *,
    workers: int = 2,
    catch_up: str = "latest",
    ready: Callable[[], None] = lambda: None,
) -> None:
    """Serve the app on ``listener`` (a bound socket: a busy port was refused before); ``ready`` is
    called once the app is built (the store opened), before the first request."""
    import uvicorn

    app = build_serve_app(config, workers=workers, catch_up=catch_up)
    queue = getattr(app.state, "queue", None)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit and queue is not None:  # stopped again (any signal): stop waiting for runs
                queue.abandon()
            super().handle_exit(sig, frame)

    ready()
    server = Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[listener])


def run_worker(
    config: Config,
    *,
    concurrency: int = 4,
    catch_up: str = "latest",
    stalled_after: float = 60.0,
    metrics_port: int | None = None,
    tick_cron: str = "* * * * *",
    report: Callable[[str], None] = lambda line: None,
    **context_options: Any,
) -> bool:
    """A procrastinate worker over ``PERSONAS_DATABASE_URL`` until stopped (SIGINT/SIGTERM); ``report``
    gets one line once it is ready: what it runs, from which database and queue.

    A signal stops it once the runs in progress have ended (a second one is not caught: SIGTERM ends
    the process, and a run it ends is taken over by another worker from its checkpoint); it returns
    False. A database that goes away (procrastinate stops its worker when a connection fails) is no
    reason to exit: it is logged and asked again with a growing pause (1 s, 2 s, ... 30 s) until it
    answers; then it returns True, and the caller starts the worker afresh (``personas worker`` runs
    itself again in the same process). The audit log connects again by itself
    (``klaviyo_toolkit.audit_postgres``), but the run store's and checkpointer's pools can still be
    backing off after a long outage: a worker restarted in-process had its next run fail with
    PoolTimeout after 30 s, so the fresh process (new pools) stays as the last resort."""
    check_worker(config, catch_up=catch_up, metrics_port=metrics_port)
    from .postgres import answers, describe
    from .tasks import QUEUE, build_app, ensure_schema

    url = str(config.database_url)  # check_worker made sure there is one
    app = build_app(url, tick_cron=tick_cron)
    ensure_schema(app, url)
    service = Service.open(config, **context_options)
    if metrics_port:
        _serve_metrics(service, metrics_port)
    report(
        f"personas worker {service.worker}: runs and schedules of {len(service.personas())} personas from "
        f"queue {QUEUE!r} on {describe(url)}; {concurrency} at a time, a run whose worker "
        f"stops its heartbeat is taken over after {stalled_after:g} s"
        + (f"; /metrics on http://127.0.0.1:{metrics_port}/metrics" if metrics_port else "")
    )
    where = describe(url)

    outage = OutageLog("personas worker", where, "asking again in 1 s, then with a growing pause up to 30 s; "
                       "a line here says when it answers")
    running: set[str] = set()  # the runs this worker runs now (the run task keeps it)
    waited_for: list[str] = []  # those it had when it was told to stop

    async def main() -> bool:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        working = asyncio.create_task(_work(app, service, concurrency=concurrency, catch_up=catch_up,
                                            stalled_after=stalled_after, running=running))

        def on_signal() -> None:  # the first one; the next gets the default handler
            stopping.set()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            working.cancel()  # procrastinate's worker stops taking jobs and waits for the running ones
            waited_for.extend(sorted(running))
            _say_stopping(waited_for, stalled_after)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        why = "its connection failed"  # procrastinate stops its worker without raising
        try:
            await working
        except asyncio.CancelledError:
            if not stopping.is_set():
                raise
        except Exception as exc:
            why = connection_failure(exc) or " ".join(describe_error(exc, 200).split())
        if stopping.is_set():
            if waited_for:
                log.warning("personas worker: stopped; the %d run(s) it waited for have ended", len(waited_for))
            return False
        pause = 1.0
        outage.away(outage.reason or why)  # says nothing if the filter said it already
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), pause)
            if not stopping.is_set() and await asyncio.to_thread(answers, url):
                outage.back("the worker starts afresh")
                return True
            outage.away(outage.reason or why)  # a reminder every few minutes, not a line each time
            pause = min(pause * 2, 30.0)
        return False

    try:
        with outage:
            return asyncio.run(main())
    finally:
        service.close()


def _say_stopping(running: list[str], stalled_after: float) -> None:
    """The first SIGTERM/SIGINT's line: what the worker waits for, and what a second signal does."""
    if not running:
        log.warning("personas worker: stopping (no run in progress)")
        return
    log.warning(
        "personas worker: stopping: waiting for %d run(s) in progress (%s); stop again (SIGTERM or Ctrl-C) to end "
        "at once: another worker then takes each over after %g s without a heartbeat (--stalled-after) and "
        "continues it from its last checkpoint", len(running), listed_ids(running), stalled_after,
    )


def _serve_metrics(service: Service, port: int) -> None:
    """Serve the worker's ``/metrics`` on ``127.0.0.1:port``; a port taken (another worker on this
    machine given the same one) or not allowed is a UsageProblem naming ``--metrics-port``, not an
    ``OSError`` naming neither the option nor the fix (the service is closed first)."""
    import errno

    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr="127.0.0.1", registry=service.metrics.registry)
    except OSError as exc:
        service.close()
        if exc.errno == errno.EADDRINUSE:
            why = "is already in use (another worker on this machine given the same port?)"
        else:
            why = f"cannot be listened on ({exc.strerror or exc})"
        raise UsageProblem(
            f"--metrics-port {port}: 127.0.0.1:{port} {why}; give each worker a port of its own"
        ) from None


async def _work(app: Any, service: Service, *, concurrency: int, catch_up: str, stalled_after: float,
                running: set[str]) -> None:
    """The procrastinate worker on ``app`` until it stops (cancelled, or its database failed)."""
    from .tasks import QUEUE, recover_stalled

    async with app.open_async():
        async def recover() -> None:
            while True:
                await asyncio.sleep(max(1.0, stalled_after / 2))
                with contextlib.suppress(Exception):
                    await recover_stalled(app, stalled_after)

        recovering = asyncio.create_task(recover())
        try:
            await app.run_worker_async(
                queues=[QUEUE],
                concurrency=concurrency,
                additional_context={"service": service, "catch_up": catch_up, "stalled_after": stalled_after,
                                    "running": running},
                update_heartbeat_interval=max(0.5, stalled_after / 4),
                stalled_worker_timeout=stalled_after,
                install_signal_handlers=False,  # run_worker's own: a second signal must not be swallowed
            )
        finally:
            recovering.cancel()


def _watch_outage(config: Config, name: str, every: float, report: Callable[[str], None]) -> OutageLog | None:
    """What ``personas watch`` on PostgreSQL says of a database outage (one line away, one back); None
    on SQLite. A wrong URL or password was refused when it started (``Service.open``)."""
    if not config.database_url:
        return None
    from .postgres import describe

    return OutageLog(f"personas watch {name}", describe(config.database_url),
                     f"polling again every {every:g} s until it answers", say=report)


def _outcomes(service: Service, runs: list[Any]) -> str:
    """How ``runs`` ended, e.g. ``2 done, 1 failed (see `personas runs --status failed`)``."""
    counts: dict[str, int] = {}
    for run in runs:
        found = service.store.get(run.id)
        status = found.status if found is not None else "unknown"
        counts[status] = counts.get(status, 0) + 1
    text = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    hints = [f"`personas runs --status {s}`" for s in ("failed", "partial", "paused") if s in counts]
    return text + (f" (see {' and '.join(hints)})" if hints else "")


def watch(
    config: Config,
    persona: str,
    *,
    every: float = 60.0,
    once: bool = False,
    overlap: float = 300.0,
    lookback: float = 3600.0,
    report: Callable[[str], None] = print,
    **context_options: Any,
) -> int:
    """Poll ``persona``'s trigger metric until stopped (or once); returns how many runs it recorded.

    On PostgreSQL the new runs are queued for ``personas worker``; on SQLite they are run here, each
    poll's before the next, and ``report`` says how they ended."""
    service = Service.open(config, **context_options)
    spec = service.persona(persona)
    total = 0
    local: LocalQueue | None = None
    try:
        if config.database_url:
            from .tasks import build_app

            tasks = build_app(config.database_url)
            tasks.open()
            enqueue: Callable[[str], None] = ProcrastinateQueue(tasks).enqueue
        else:
            local = LocalQueue(service, workers=2)
            local.recover()
            enqueue = local.enqueue
        outage = _watch_outage(config, spec.name, every, report)
        with contextlib.ExitStack() as quiet:  # the pools' warning per attempt while the database is away
            if outage is not None:
                quiet.enter_context(outage)
            while True:
                waiting: list[Any] = []  # recorded by a poll that failed before handing them on: queued again
                try:
                    new = poll_once(service, spec, now=service.clock(), overlap=overlap, lookback=lookback,
                                    waiting=waiting)
                    for run in (*new, *waiting):
                        enqueue(run.id)
                except (TransportError, ServerError, RateLimitError) as exc:  # Klaviyo away for now, not a wrong setup
                    if once:  # a single poll (from cron) fails loudly; a watcher keeps watching
                        raise
                    report(f"{spec.name}: this poll failed ({describe_error(exc, 200)}); trying again in {every:g} s")
                    time.sleep(every)
                    continue
                except Exception as exc:  # PostgreSQL away (a restart, a failover): as Klaviyo away, unless --once
                    why = connection_failure(exc) if outage is not None else None
                    if once or outage is None or why is None:
                        raise
                    outage.away(why)  # one line; the runs it recorded and did not queue are queued by the next poll
                    time.sleep(every)
                    continue
                if outage is not None:
                    outage.back()
                total += len(new)
                if local is not None:
                    local.drain()
                if waiting and local is not None:
                    report(f"{spec.name}: {len(waiting)} event(s) recorded before and not run yet, run here: "
                           f"{_outcomes(service, waiting)}")
                if new and local is not None:
                    report(f"{spec.name}: {len(new)} new event(s), run here: {_outcomes(service, new)}")
                elif new:
                    report(f"{spec.name}: {len(new)} new event(s) queued for `personas worker`")
                if once:
                    return total
                time.sleep(every)
    finally:
        if config.database_url:
            tasks.close()
        if local is None or not local.close():  # runs still going (Ctrl-C twice) keep the store to the end
            service.close()
