"""``personas audit``: read, filter, verify and export the audit log of every call."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import typer

from personas.kernel.errors import UsageProblem

from .common import command_group, file_target, indented, shown

if TYPE_CHECKING:
    from klaviyo_toolkit.audit import AuditEntry, AuditLog

app = command_group(
    "Read the audit log: every call a persona made, refused or was stopped from making.", invoke_without_command=True
)


def _check_names(log: Any, *, tool: str | None, persona: str | None) -> None:
    """Raise UsageProblem for a ``--tool`` or ``--persona`` that names nothing: no row of the log and
    no operation (or persona) has it. A typo would otherwise read as "no activity"; a name the log
    holds (a persona since deleted, a tool a model made up) is shown as asked."""
    import difflib

    if tool and not log.query(tool=tool, limit=1):
        from klaviyo_toolkit.catalog import load_catalog
        from klaviyo_toolkit.errors import UnknownOperationError

        try:
            load_catalog(include_beta=True).resolve(tool)
        except UnknownOperationError as exc:
            hint = f"; did you mean {' or '.join(exc.suggestions)}?" if exc.suggestions else ""
            raise UsageProblem(
                f"--tool {tool!r}: no row of the log has it and no operation is named so{hint} "
                "(`personas tools list` shows every operation id)"
            ) from None
    if persona and not log.query(persona=persona, limit=1):
        from personas.runtime.loader import scan_personas

        from .common import config

        known = sorted(scan_personas(config().home).personas)
        if persona not in known:
            close = difflib.get_close_matches(persona, known, n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise UsageProblem(
                f"--persona {persona!r}: no row of the log has it and no persona is named so{hint} "
                f"(personas: {', '.join(known)})"
            )


def _log() -> object:
    """The log to read, opened without writing (a read-only state folder is fine); None if there is none yet."""
    from personas.runtime.audit import read_audit_log

    from .common import config

    return read_audit_log(config())


@dataclass(frozen=True)
class _Filters:
    """The audit view's options, checked once by the group (for the view and its subcommands alike):
    the table shows the rows they match, ``export`` writes them, ``verify`` takes none."""

    persona: str | None = None
    user: str | None = None
    tool: str | None = None
    status: str | None = None
    thread_id: str | None = None
    since: dt.datetime | None = None
    limit: int | None = None
    #: The filters given on the command line, as typed (``--since``): none, and export writes every row.
    given: tuple[str, ...] = ()

    def query(self, log: AuditLog) -> list[AuditEntry]:
        """The matching rows, newest first (the newest ``limit``, or all)."""
        return log.query(
            persona=self.persona,
            user=self.user,
            tool=self.tool,
            status=self.status,
            thread_id=self.thread_id,
            since=self.since,
            limit=self.limit,
        )


#: Subcommands about the whole log, and why a filter given with them is refused rather than ignored.
_WHOLE_LOG = {"verify": "it checks the whole log", "accept-loss": "it records one row about the whole log"}


@app.callback()
def show(
    ctx: typer.Context,
    persona: str = typer.Option(None, "--persona", help="Only this persona."),
    user: str = typer.Option(None, "--user", help="Only this user."),
    tool: str = typer.Option(None, "--tool", help="Only this tool (operation id)."),
    status: str = typer.Option(None, "--status", help="ok, error, denied, dry_run, rejected, approved, ..."),
    thread: str = typer.Option(None, "--thread", help="Only this thread."),
    since: str = typer.Option(
        None,
        "--since",
        help="From when (inclusive): 24h, 30m, 7d, today, yesterday, or an ISO date or time. A time without "
        "a zone is local time, as the table shows it (2026-12-01 09:30); add one for another "
        "(2026-12-01T09:30Z is UTC).",
    ),
    limit: int = typer.Option(50, "--limit", help="Newest N rows (export: every row unless given)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines."),
) -> None:
    """Show audit rows, newest first; or, before a subcommand, the rows it works on
    (personas audit --status error export -)."""
    from typing import get_args

    from klaviyo_toolkit.audit import AuditStatus

    known = get_args(AuditStatus)  # every filter checked before the log is opened, whatever follows
    if status is not None and status not in known:
        raise UsageProblem(f"--status {status!r} is not an audit status; use one of {', '.join(known)}")
    if limit < 1:
        raise UsageProblem(f"--limit {limit}: give how many rows to show, 1 or more")
    given = _given(ctx)
    sub = ctx.invoked_subcommand
    since_at = parse_since(since) if since else None
    if sub in _WHOLE_LOG and given:
        raise UsageProblem(
            f"{given[0]} does not apply to `personas audit {sub}`: {_WHOLE_LOG[sub]}; run it without {given[0]}"
        )
    limit_at = limit if sub is None or "--limit" in given else None  # export: every row unless told
    filtering = tuple(option for option in given if option != "--json")
    filters = _Filters(persona, user, tool, status, thread, since_at, limit_at, filtering)
    if sub is not None:
        ctx.obj = filters  # for export
        return
    from klaviyo_toolkit.audit import AuditLog

    log = _log()
    if log is None:
        _no_log()
        return
    assert isinstance(log, AuditLog)
    _warn_if_cut(log)
    rows = filters.query(log)
    if not rows:
        _check_names(log, tool=tool, persona=persona)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row.to_json(), default=str))
        return
    _table(log, rows)


def _warn_if_cut(log: AuditLog) -> None:
    """Say on stderr, before any row, when the log no longer holds its anchored head (its newest rows
    cut, the file emptied or an older copy put back): the rows shown are then not all the calls made,
    and a person reading them must not take them for the whole story. One cheap check (the head's
    row), not the chain's; ``verify`` checks every row."""
    from klaviyo_toolkit.audit_head import AuditHeadError

    try:
        log.check_appendable()
    except AuditHeadError as exc:
        typer.echo(f"TAMPERED: {exc.problem.reason}; these are not all the calls made: `personas audit verify` says "
                   "more", err=True)
    except Exception:  # a log that cannot be checked is still shown; verify says why
        return


def _given(ctx: typer.Context) -> tuple[str, ...]:
    """The group's options given on the command line (or by environment), as typed: ``("--since",)``.

    Read by the source's name: typer carries its own copy of click, whose ``ParameterSource`` is not
    ``click.core``'s.
    """
    sources = {p.opts[0]: ctx.get_parameter_source(p.name) for p in ctx.command.params if p.name and p.opts}
    return tuple(opt for opt, source in sources.items() if source and source.name in ("COMMANDLINE", "ENVIRONMENT"))


#: Statuses whose row's note says why (the waiver that let a call go, the rejection's reason).
_NOTED = frozenset({"waived", "rejected"})


def _table(log: AuditLog, rows: list[AuditEntry]) -> None:
    """Two lines a row: no column is ever cut, whatever the terminal's width. Times are local, as
    ``--since`` reads a time without a zone; the header names the zone, and a row shows its offset when
    the rows span more than one (a change to or from daylight saving time)."""
    from rich.console import Console

    console = Console(highlight=False)
    times = [r.time.astimezone() for r in rows]
    zones = sorted({_offset(t) for t in times})
    zone = f", local time {zones[0]}" if len(zones) == 1 else ", local time with its UTC offset" if zones else ""
    console.print(f"audit log: {len(rows)} of {log.count()} rows, newest first ({log.path}){zone}")
    for r, when in zip(rows, times, strict=True):
        # every field may hold what a model or Klaviyo chose (a tool name the model made up is audited
        # as denied): shown, never obeyed as markup or as terminal controls
        stamp = when.isoformat(" ", "seconds") if len(zones) > 1 else f"{when:%Y-%m-%d %H:%M:%S}"
        head = f"{stamp}  {shown(str(r.tool), lines=False)}  [bold]{shown(str(r.status), lines=False)}[/bold]"
        who = "  ".join(str(x) for x in (r.persona, r.thread_id and f"thread {r.thread_id}", r.user) if x)
        console.print(f"{head}  [dim]{shown(who, lines=False)}[/dim]")
        facts = [
            f"{r.method} {r.path}" if r.method else "",
            f"HTTP {r.http_status}" if r.http_status else "",
            f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else "",
            r.error or r.response_summary or "",
            # why a call went without approval, or why it was rejected: said by the guard in the row's note
            str(r.extra.get("note") or "") if r.status in _NOTED else "",
        ]
        line = " · ".join(f for f in facts if f)
        if line:
            indented(console, line, "dim")


def _offset(moment: dt.datetime) -> str:
    """``UTC-05:00``: the offset of an aware time."""
    minutes = int((moment.utcoffset() or dt.timedelta()).total_seconds()) // 60
    return f"UTC{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@app.command("verify")
def verify(
    expected_head: str = typer.Option(
        None, "--expected-head", help="A head printed by an earlier verify, kept elsewhere: it must still be there."
    ),
) -> None:
    """Check the chain against its key and anchored head: exit 1 if a row was changed, forged or cut,
    or the log or its head record is gone or altered (a cut tail could then not be ruled out)."""
    from klaviyo_toolkit.audit import normalise_head, verify_log
    from klaviyo_toolkit.audit_anchor import HeadRecordError
    from klaviyo_toolkit.errors import ToolkitUsageError
    from personas.runtime.audit import audit_anchor

    from .common import config

    try:  # a mistyped head is a usage error (exit 2), never reported as a log whose rows were cut
        head = normalise_head(expected_head)
    except ToolkitUsageError as exc:
        raise UsageProblem(f"--expected-head: {exc} (`personas audit verify` prints it after 'head')") from None
    cfg = config()
    try:
        if cfg.database_url:  # the log every worker shares, in PostgreSQL
            from personas.runtime.audit import audit_log

            report = audit_log(cfg).verify(expected_head=head)
        else:
            report = verify_log(cfg.home / "audit.sqlite", anchor=audit_anchor(cfg), expected_head=head)
    except HeadRecordError as exc:  # the log can no longer be shown intact: a failed check, as a cut is
        typer.echo(f"TAMPERED: {exc}", err=True)
        raise SystemExit(1) from None
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
def export(
    ctx: typer.Context, path: str = typer.Argument(..., help="Where to write JSON lines; - for standard output.")
) -> None:
    """Export rows as JSON lines, oldest first: without filters, the whole log; with the audit filters
    given before export, only the rows they match (personas audit --status error --since 7d export -)."""
    import sys

    from klaviyo_toolkit.audit import AuditLog

    filters = ctx.find_object(_Filters) or _Filters()
    target = None if path == "-" else _export_target(path)
    log = _log()
    if log is None:
        _no_log()
        return
    assert isinstance(log, AuditLog)
    _warn_if_cut(log)
    rows = filters.query(log) if filters.given else None
    if rows == []:
        _check_names(log, tool=filters.tool, persona=filters.persona)
    if target is None:
        _write(log, rows, sys.stdout)
        return
    try:
        if not target.exists():  # owner-only, as the log itself
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o600))
        with target.open("w", encoding="utf-8") as out:
            count = _write(log, rows, out)
    except OSError as exc:
        raise UsageProblem(f"cannot write {path} ({exc.strerror}); give a path this user can write") from None
    matching = f" matching {', '.join(filters.given)}" if rows is not None else ""
    typer.echo(f"wrote {count} row{'' if count == 1 else 's'}{matching} to {path}", err=True)


def _write(log: AuditLog, rows: list[AuditEntry] | None, out: TextIO) -> int:
    """Write ``rows`` (newest first, as queried), or every row of the log, oldest first, as JSON lines."""
    if rows is None:
        return log.export_jsonl(out)
    for row in reversed(rows):
        out.write(json.dumps(row.to_json(), ensure_ascii=False, default=str) + "\n")
    return len(rows)


def _export_target(path: str) -> Path:
    """Where ``export`` writes, checked before the log is read (``common.file_target``)."""
    return file_target(path, f"cannot export to {path}", "audit.jsonl")


def _no_log() -> None:
    from .common import config

    typer.echo(f"audit log: no rows yet (no log at {config().home / 'audit.sqlite'})", err=True)


@app.command("accept-loss")
def accept_loss(
    reason: str = typer.Option(
        ..., "--reason", help="Why the loss is accepted (e.g. 'restored from the 12-01 backup'); recorded in the log."
    ),
) -> None:
    """Go on with a log that no longer holds its anchored head (rows cut, an older copy put back, the head
    record damaged): records the loss, with REASON and who accepted it, as a row, then anchors on it."""
    from klaviyo_toolkit.audit import AuditContext
    from personas.runtime.audit import another_key, writable_audit_log

    from .common import config

    cfg = config()
    if not reason.strip():
        raise UsageProblem("--reason: say why the loss is accepted; it is recorded in the log")
    log = writable_audit_log(cfg)
    if why := another_key(log):  # an acceptance would be recorded, yet verify fail at row 1 for good
        raise UsageProblem(f"nothing was accepted or written: {why}")
    row = log.accept_loss(reason, context=AuditContext(user=cfg.user))
    facts = row.extra
    typer.echo(f"accepted for the audit log {log.path or log}: {facts.get('problem')}")
    head, newest = facts.get("anchored_head") or {}, int(facts.get("log_rows") or 0)
    if int(head.get("rows") or 0) > newest:
        typer.echo(f"its rows after row {newest} (up to row {head['rows']}) are lost from this log for good")
    typer.echo(f"row {row.id} records that the loss was accepted (reason: {reason.strip()}); runs go on from it")
    if facts.get("head_record_kept"):
        typer.echo(f"the replaced head record is kept at {facts['head_record_kept']}")


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``24h``, ``30m``, ``7d``, ``2w``, ``today``, ``yesterday``, or an ISO date/time, as a UTC time.

    A date or time without a zone is local time, as the table shows it and as ``today`` is local
    midnight (a time copied from the table finds its row); one with a zone (``Z``, ``+01:00``) keeps it.
    """
    now = now or dt.datetime.now(dt.UTC)
    value = text.strip().lower()
    local_midnight = now.astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    if value == "today":
        return local_midnight.astimezone(dt.UTC)
    if value == "yesterday":
        return (local_midnight - dt.timedelta(days=1)).astimezone(dt.UTC)
    match = re.fullmatch(r"(\d+)\s*(m|min|h|d|w)", value)
    if match:
        unit = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
        try:
            return now - dt.timedelta(**{unit: int(match.group(1))})
        except OverflowError:  # further back than datetime reaches (year 1)
            raise UsageProblem(f"--since {text!r} reaches before the year 1; give a smaller span or a date") from None
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageProblem(
            f"--since {text!r}: use 24h, 30m, 7d, today, yesterday, or an ISO date like 2026-12-01"
        ) from None
    try:
        return (when if when.tzinfo else when.astimezone()).astimezone(dt.UTC)
    except (OverflowError, ValueError, OSError):  # in UTC, before the year 1 or after 9999
        raise UsageProblem(
            f"--since {text!r} falls outside the years 1 to 9999 in UTC; give a date within them"
        ) from None
