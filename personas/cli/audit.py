"""``personas audit``: read, filter, verify and export the audit log of every call."""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="Read the audit log: every call a persona made, refused or was stopped from making.",
                  invoke_without_command=True)


def _log() -> object:

    from personas.runtime.context import audit_log

    from .common import config

    return audit_log(config())


@app.callback()
def show(
    ctx: typer.Context,
    persona: str = typer.Option(None, "--persona", help="Only this persona."),
    user: str = typer.Option(None, "--user", help="Only this user."),
    tool: str = typer.Option(None, "--tool", help="Only this tool (operation id)."),
    status: str = typer.Option(None, "--status", help="ok, error, denied, dry_run, rejected, approved, ..."),
    thread: str = typer.Option(None, "--thread", help="Only this thread."),
    since: str = typer.Option(None, "--since", help="ISO date or time, inclusive."),
    limit: int = typer.Option(50, "--limit", help="Newest N rows."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines."),
) -> None:
    """Show audit rows, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from klaviyo_toolkit.audit import AuditLog

    log = _log()
    assert isinstance(log, AuditLog)
    rows = log.query(persona=persona, user=user, tool=tool, status=status, thread_id=thread, since=since, limit=limit)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row.to_json(), default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"audit log: {len(rows)} of {log.count()} rows ({log.path})")
    for col in ("time", "user", "persona", "tool", "status", "http", "ms", "summary"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r.time.strftime("%Y-%m-%d %H:%M:%S"), r.user or "", r.persona or "", r.tool, r.status,
                      str(r.http_status or ""), f"{r.latency_ms:.0f}" if r.latency_ms is not None else "",
                      (r.error or r.response_summary or "")[:80])
    Console().print(table)


@app.command("verify")
def verify(
    expected_head: str = typer.Option(
        None, "--expected-head", help="A head printed by an earlier verify, kept elsewhere: it must still be there."
    ),
) -> None:
    """Check the chain against its key and anchored head: exit 1 if a row was changed, forged or cut,
    or the log is gone."""
    from klaviyo_toolkit.audit import verify_log
    from personas.runtime.context import audit_anchor

    from .common import config

    cfg = config()
    if cfg.database_url:  # the log every worker shares, in PostgreSQL
        from personas.runtime.context import audit_log

        report = audit_log(cfg).verify(expected_head=expected_head)
    else:
        report = verify_log(cfg.home / "audit.sqlite", anchor=audit_anchor(cfg), expected_head=expected_head)
    if report:
        if report.checked == 0:
            typer.echo(f"ok: {report.reason or 'the log is empty'}")
            return
        typer.echo(f"ok: {report.checked} rows, chain intact; head {report.head}")
        typer.echo("keep the head elsewhere and pass it back with --expected-head to catch a rewritten log")
        return
    where = f"row {report.broken_at}: " if report.broken_at else ""
    typer.echo(f"TAMPERED: {where}{report.reason}", err=True)
    raise SystemExit(1)


@app.command("export")
def export(path: str = typer.Argument(..., help="Where to write JSON lines.")) -> None:
    """Export every row as JSON lines."""
    from klaviyo_toolkit.audit import AuditLog

    log = _log()
    assert isinstance(log, AuditLog)
    typer.echo(f"wrote {log.export_jsonl(path)} rows to {path}")
