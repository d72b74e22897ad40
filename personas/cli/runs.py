"""``personas runs``: the durable record of unattended runs; retry a failed one, answer a paused one."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

import typer

from klaviyo_toolkit.redact import clip

from .common import at_least, config, visible

app = typer.Typer(help="Runs started by webhooks, polling and schedules.", invoke_without_command=True)


def _when(ts: float | None) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _service() -> Any:
    from personas.service.service import Service

    return Service.open(config())


def _known(run_id: str) -> None:
    """Refuse an id no run has before the service is imported (LangGraph and LangChain, about a
    second): a mistyped or pasted-over id is told at once, as ``Service`` would tell it."""
    from personas.service.store import no_run

    store, _ = _reader()
    try:
        found = store.get(run_id)
    finally:
        store.close()
    if found is None:
        raise no_run(run_id)


def _reader() -> tuple[Any, list[str]]:
    """The run store and the persona names, for listing runs: no checkpointer is opened, so the
    listing imports none of LangGraph and LangChain (about 0.7 s of a command that reads a table)."""
    from personas.kernel.privacy import register_secrets
    from personas.runtime.loader import scan_personas
    from personas.service.extras import POSTGRES, require
    from personas.service.store import RunStore

    cfg = config()
    register_secrets(cfg)
    if cfg.database_url:
        require("PERSONAS_DATABASE_URL (PostgreSQL)", *POSTGRES)
    return RunStore.open(cfg), sorted(scan_personas(cfg.home).personas)


@app.callback()
def runs_cmd(
    ctx: typer.Context,
    persona: str = typer.Option(None, "--persona", "-p", help="Only this persona's runs."),
    status: str = typer.Option(
        None, "--status", help="Only runs with this status (queued, running, done, partial, paused, failed)."
    ),
    limit: int = typer.Option(50, "--limit", help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
    stalled_after: float = typer.Option(
        60.0, "--stalled-after",
        help="The workers' --stalled-after (PostgreSQL): a running run whose worker has missed two heartbeats "
        "shows as stalled.",
    ),
) -> None:
    """List runs with their status (newest first); `personas runs retry RUN` continues a failed one."""
    if ctx.invoked_subcommand is not None:
        return
    from personas.kernel.errors import UsageProblem
    from personas.service.store import STATUSES

    if status and status not in STATUSES:
        raise UsageProblem(f"--status {status!r}: use one of {', '.join(STATUSES)}")
    if limit < 1:
        raise UsageProblem(f"--limit {limit}: give how many runs to show, 1 or more")
    at_least("--stalled-after", stalled_after, 0, "the seconds without a heartbeat", above=True)
    store, names = _reader()
    try:
        if persona and persona not in names:
            raise UsageProblem(f"--persona {persona!r}: no such persona; personas: {', '.join(names)}")
        runs = store.runs(persona=persona, status=status, limit=limit)
        beats = store.heartbeats([r.id for r in runs if r.status == "running"])
        orphaned = {r.id: reason for r in runs if (reason := store.gone(r))}  # SQLite: owners that are gone
    finally:
        store.close()
    stalled = {rid: _stalled(age, stalled_after) for rid, age in beats.items() if _stalled(age, stalled_after)}
    for r in runs:
        if r.id in orphaned and r.status == "running":
            stalled[r.id] = (f"{orphaned[r.id]}; the next `personas serve` (or one running now, within a minute) "
                             "continues it from its last checkpoint")
    if as_json:
        typer.echo(json.dumps([{**r.to_json(), "stalled": r.id in stalled} for r in runs], indent=1))
        return
    if not runs:
        typer.echo("no runs yet" + (f" for {persona}" if persona else ""))
        return
    for r in runs:
        note = stalled.get(r.id) or _note(r, orphaned.get(r.id))
        shown = "stalled" if r.id in stalled else r.status
        typer.echo(visible(f"{r.id}  {_when(r.created)}  {shown:<7}  {r.persona:<24} {r.trigger:<8} {r.key}"
                           + (f"\n    {note}" if note else "")))


def _note(run: Any, gone: str | None) -> str:
    """The line under a run: its error and how to retry it, its outcome, or who will run it."""
    if run.status == "failed" and run.refused:  # no retry could run it: no hint to try one
        return f"refused: {clip(run.refused, 200)}; correct the event where it is sent to Klaviyo (no retry can run it)"
    if run.status == "failed":
        return f"{clip(run.error or 'failed', 200)}; retry with `personas runs retry {run.id}`"
    if run.status == "partial":  # finished: its outcome says what was not done (retrying runs nothing again)
        return f"finished in part: {clip(run.outcome or run.error or '', 200)}"
    if run.status == "queued" and gone:
        return f"{gone}; the next `personas serve` (or one running now, within a minute) runs it"
    return clip(run.error or run.outcome or "", 200)


def _stalled(age: float | None, stalled_after: float) -> str:
    """Why a running run is stalled (its worker is gone, or missed two heartbeats), or ""."""
    takeover = (f"another worker takes it over after {stalled_after:g} s without one and continues it "
                "from its checkpoint")
    if age is None:
        return f"its worker is gone (no heartbeat); {takeover}"
    if age > stalled_after / 2:  # a worker sends one every stalled_after / 4
        return f"no heartbeat from its worker for {age:.0f} s; {takeover}"
    return ""


@app.command("retry")
def retry_cmd(
    run_id: str = typer.Argument(..., help="The run's id (see `personas runs --status failed`)."),
    here: bool = typer.Option(False, "--here", help="Run it in this process, not through the queue (PostgreSQL)."),
) -> None:
    """Continue a failed run from its last checkpoint."""
    _known(run_id)
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
    typer.echo(visible(f"{done.id}: {done.status}" + (f" ({done.error})" if done.error else "")))
    if done.status == "failed":
        raise SystemExit(1)


@app.command("resume")
def resume_cmd(
    run_id: str = typer.Argument(..., help="A paused run's id (see `personas runs --status paused`)."),
    answer: str = typer.Option(
        None, "--answer", help="approve, reject, or JSON ({\"action\": \"edit\", ...}); without it, shows the request."
    ),
    request: str = typer.Option(
        None, "--request", help="The fingerprint of the request an approval answers (shown without --answer)."
    ),
) -> None:
    """Show the approval a paused run waits for, or answer it and run it on.

    An approval (or edit) names the request it answers with --request: the request was never shown
    in this shell, so an answer that names none could approve whatever the run paused on since.
    Exits 1 when the run it runs on fails (as `personas runs retry` does).
    """
    from personas.kernel.errors import UsageProblem

    from .approvals import describe_approval
    from .run import bind_answer, parse_resume

    _known(run_id)
    service = _service()
    try:
        pending = service.pending(run_id)
        if not pending:
            raise UsageProblem(f"run {run_id} is not waiting for an approval; see `personas runs`")
        command = f"personas runs resume {run_id}"
        if answer is None:
            folder = service.config.home / "approvals"
            for item in pending:
                value = item.value if isinstance(item.value, dict) else {"value": item.value}
                typer.echo(visible(describe_approval(value, folder)))  # shown, never obeyed
            first = pending[0].value.get("fingerprint", "sha256:...") if isinstance(pending[0].value, dict) else ""
            typer.echo(f"\nAnswer with: {command} --answer approve --request {first}   (or --answer reject)")
            return
        bound = bind_answer(parse_resume(answer), request, pending, set(), command, run_id)
        done = service.execute(run_id, resume=bound)
    finally:
        service.close()
    typer.echo(visible(f"{done.id}: {done.status}" + (f" ({done.error})" if done.error else "")))
    if done.status == "failed":  # as `runs retry`: a script answering approvals sees the run fail
        raise SystemExit(1)
