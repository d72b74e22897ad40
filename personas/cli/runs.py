"""``personas runs``: the durable record of unattended runs; retry a failed one, answer a paused one."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

import typer

from .common import config

app = typer.Typer(help="Runs started by webhooks, polling and schedules.", invoke_without_command=True)


def _when(ts: float | None) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _service() -> Any:
    from personas.service.service import Service

    return Service.open(config())


@app.callback()
def runs_cmd(
    ctx: typer.Context,
    persona: str = typer.Option(None, "--persona", "-p", help="Only this persona's runs."),
    status: str = typer.Option(
        None, "--status", help="Only runs with this status (queued, running, done, paused, failed)."
    ),
    limit: int = typer.Option(50, "--limit", help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List runs with their status (newest first); `personas runs retry RUN` continues a failed one."""
    if ctx.invoked_subcommand is not None:
        return
    from personas.kernel.errors import UsageProblem
    from personas.service.store import STATUSES

    if status and status not in STATUSES:
        raise UsageProblem(f"--status {status!r}: use one of {', '.join(STATUSES)}")
    service = _service()
    try:
        runs = service.store.runs(persona=persona, status=status, limit=limit)
    finally:
        service.close()
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in runs], indent=1))
        return
    if not runs:
        typer.echo("no runs yet" + (f" for {persona}" if persona else ""))
        return
    for r in runs:
        note = r.error or r.outcome or ""
        typer.echo(f"{r.id}  {_when(r.created)}  {r.status:<7}  {r.persona:<24} {r.trigger:<8} {r.key}"
                   + (f"\n    {note[:160]}" if note else ""))


@app.command("retry")
def retry_cmd(
    run_id: str = typer.Argument(..., help="The run's id (see `personas runs --status failed`)."),
    here: bool = typer.Option(False, "--here", help="Run it in this process, not through the queue (PostgreSQL)."),
) -> None:
    """Continue a failed run from its last checkpoint."""
    service = _service()
    try:
        run = service.retry(run_id)
        if service.config.database_url and not here:
            from personas.service.queues import ProcrastinateQueue
            from personas.service.tasks import build_app

            tasks = build_app(service.config.database_url)
            with tasks.open():
                ProcrastinateQueue(tasks).enqueue(run.id)
            typer.echo(f"{run.id}: queued again; a worker continues it from its last checkpoint")
            return
        done = service.execute(run.id)
    finally:
        service.close()
    typer.echo(f"{done.id}: {done.status}" + (f" ({done.error})" if done.error else ""))
    if done.status == "failed":
        raise SystemExit(1)


@app.command("resume")
def resume_cmd(
    run_id: str = typer.Argument(..., help="A paused run's id (see `personas runs --status paused`)."),
    answer: str = typer.Option(..., "--answer", help="approve, reject, or JSON ({\"action\": \"edit\", ...})."),
) -> None:
    """Answer the approval a paused run waits for, and run it on."""
    from .run import parse_resume

    service = _service()
    try:
        done = service.execute(run_id, resume=parse_resume(answer))
    finally:
        service.close()
    typer.echo(f"{done.id}: {done.status}" + (f" ({done.error})" if done.error else ""))
