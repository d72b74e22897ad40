"""``personas serve``, ``personas worker`` and ``personas watch``: personas that run unattended.

Thin commands over ``personas.service.serving``; the server dependencies (the ``[server]`` extra)
are imported when a command runs, never by ``personas --help``.
"""

from __future__ import annotations

import os
import sys

import typer

from personas.kernel.errors import UsageProblem

from .common import at_least, config

CATCH_UP_HELP = "Missed schedule slots after downtime: latest (run the newest once), all, or none."


def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
    workers: int = typer.Option(2, "--workers", help="Runs at a time in this process (SQLite only)."),
    catch_up: str = typer.Option("latest", "--catch-up", help=CATCH_UP_HELP),
) -> None:
    """Receive Klaviyo webhooks (POST /webhooks/klaviyo, KLAVIYO_WEBHOOK_SECRET); /healthz, /metrics.

    To rotate the webhook secret: set KLAVIYO_WEBHOOK_SECRET to the new secret and
    KLAVIYO_WEBHOOK_SECRET_PREVIOUS to the old one, restart, then change the secret in Klaviyo; once
    deliveries signed with the old one have stopped (a few minutes), unset KLAVIYO_WEBHOOK_SECRET_PREVIOUS
    and restart. Both secrets are accepted meanwhile; neither is ever logged.
    """
    at_least("--workers", workers, 1, "how many runs at a time")
    from personas.service.checks import check_serve

    cfg = config()
    check_serve(cfg, catch_up=catch_up)  # the secret and the extra, then the port: each one line, exit 2
    from personas.service.serving import serve, serve_notes  # the service's imports: about a second

    from .sandbox import bind

    notes = serve_notes(cfg)
    listener = bind(host, port)
    where = "PostgreSQL (runs go to `personas worker`)"
    if not cfg.database_url:
        where = f"SQLite in {cfg.home} ({workers} workers here)"

    def ready() -> None:
        typer.echo(f"personas serve on http://{host}:{port}/webhooks/klaviyo; state: {where}", err=True)
        for note in notes:
            typer.echo(f"  {note}", err=True)

    try:
        serve(cfg, listener, workers=workers, catch_up=catch_up, ready=ready)
    finally:
        listener.close()


def worker_cmd(
    concurrency: int = typer.Option(4, "--concurrency", help="Runs at a time in this worker."),
    catch_up: str = typer.Option("latest", "--catch-up", help=CATCH_UP_HELP),
    stalled_after: float = typer.Option(
        60.0, "--stalled-after", help="Seconds without a heartbeat before another worker takes a run over."
    ),
    metrics_port: int = typer.Option(None, "--metrics-port", help="Serve this worker's /metrics on 127.0.0.1:PORT."),
) -> None:
    """Run queued and scheduled persona runs from PostgreSQL (PERSONAS_DATABASE_URL); start as many as needed."""
    at_least("--concurrency", concurrency, 1, "how many runs at a time")
    at_least("--stalled-after", stalled_after, 0, "the seconds without a heartbeat", above=True)
    if metrics_port is not None and not 1 <= metrics_port <= 65535:
        raise UsageProblem(f"--metrics-port {metrics_port} is not a port; give one from 1 to 65535")
    from personas.service.checks import check_worker

    check_worker(config(), catch_up=catch_up, metrics_port=metrics_port)  # before the service's imports
    from personas.service.serving import run_worker

    again = run_worker(config(), concurrency=concurrency, catch_up=catch_up, stalled_after=stalled_after,
                       metrics_port=metrics_port, report=lambda line: typer.echo(line, err=True))
    if again:  # the database came back after an outage: start afresh, as this process, its pools new
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def watch_cmd(
    persona: str = typer.Argument(..., help="A persona started by events, e.g. lead-magnet-sequencer."),
    every: float = typer.Option(60.0, "--every", help="Seconds between polls."),
    once: bool = typer.Option(False, "--once", help="Poll once and exit (e.g. from cron)."),
    overlap: float = typer.Option(300.0, "--overlap", help="Seconds each poll reaches back before the cursor."),
    lookback: float = typer.Option(3600.0, "--lookback", help="How far back the first poll reads."),
    sandbox: bool = typer.Option(False, "--sandbox", help="Poll the embedded Klaviyo sandbox (its demo data)."),
    sandbox_state: str = typer.Option(
        None, "--sandbox-state", help="Keep the embedded sandbox in this SQLite file (implies --sandbox)."
    ),
) -> None:
    """Poll the persona's trigger metric for new events from a stored cursor; each event runs once."""
    at_least("--every", every, 0, "the seconds between polls", above=True)
    at_least("--overlap", overlap, 0, "the seconds each poll reaches back")
    at_least("--lookback", lookback, 0, "the seconds the first poll reads back")
    from personas.runtime.loader import scan_personas

    from .run import no_persona

    found = scan_personas(config().home)
    if persona not in found.personas:  # said before the service's imports (LangChain, LangGraph: a second)
        raise no_persona(persona, found)
    from personas.service.serving import watch

    from .sandbox import state_file

    sandbox_state = state_file(sandbox_state)
    options = {}
    if sandbox or sandbox_state:
        from klaviyo_sandbox import Sandbox

        options["sandbox"] = Sandbox(seed=42, state=sandbox_state)
    try:
        total = watch(config(), persona, every=every, once=once, overlap=overlap, lookback=lookback,
                      report=lambda line: typer.echo(line, err=True), **options)
    finally:
        if "sandbox" in options:
            options["sandbox"].close()
    if once:
        typer.echo(f"{total} new event(s)")
