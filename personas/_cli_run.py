"""``personas list`` and ``personas run``: see the personas, run a graph once from the terminal."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from .errors import UsageProblem


def list_personas_cmd(as_json: bool = typer.Option(False, "--json", help="Print a JSON array.")) -> None:
    """List the personas: name, graph, scopes and tools."""
    from .loader import list_personas, persona_toolkit

    rows = []
    for spec in list_personas():
        tools = persona_toolkit(spec, client=None).initial_tools()
        rows.append({"name": spec.name, "graph": spec.graph, "description": spec.description, "model": spec.model,
                     "scopes": spec.scopes, "tools": [t.name for t in tools], "approval": spec.approval.mode,
                     "schedule": spec.schedule, "source": spec.source})
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} personas")
    for col in ("name", "graph", "description", "scopes", "tools", "approval"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["graph"], r["description"], str(len(r["scopes"])), str(len(r["tools"])), r["approval"])
    Console().print(table)


def read_input(value: str) -> Any:
    """``--input``: a path to a JSON file, ``-`` for stdin, or JSON text."""
    if value == "-":
        text = sys.stdin.read()
        where = "standard input"
    elif value.lstrip().startswith(("{", "[")):
        text, where = value, "--input"
    else:
        path = Path(value)
        if not path.exists():
            raise UsageProblem(f"--input {value!r}: no such file, and not JSON text either")
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageProblem(f"{where} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def resolve_persona(name: str) -> Any:
    """A persona by name, or the first persona of a graph given by graph name."""
    from graphs import GRAPHS

    from .loader import list_personas, load_persona

    if name in GRAPHS:
        for spec in list_personas():
            if spec.graph == name:
                return spec
        raise UsageProblem(f"no persona uses the graph {name!r}")
    return load_persona(name)


def run_cmd(
    graph: str = typer.Argument(..., help="A persona (e.g. lead-magnet-sequencer) or a graph (lead_magnet)."),
    input: str = typer.Option(None, "--input", "-i", help="JSON file, '-' for stdin, or JSON text."),
    as_json: bool = typer.Option(False, "--json", help="Print the final state as JSON."),
    sandbox: bool = typer.Option(False, "--sandbox", help="Run against the embedded Klaviyo sandbox."),
    thread: str = typer.Option(None, "--thread", help="Thread id (to resume a paused or killed run)."),
    resume: str = typer.Option(None, "--resume", help="Answer a pending approval: approve, reject, or JSON."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show writes instead of sending them."),
    replay: str = typer.Option(None, "--replay", help="Replay recorded model responses from a cassette."),
) -> None:
    """Run a graph once and print the result."""
    from .render import render_result
    from .runtime import build_context, checkpointer, run_persona

    spec = resolve_persona(graph)
    if input is None and resume is None:
        raise UsageProblem("give --input FILE|JSON (or --thread T --resume approve to continue a paused run)")
    payload = read_input(input) if input is not None else None
    if payload is not None and not isinstance(payload, dict):
        raise UsageProblem("--input must be a JSON object")
    sb = None
    if sandbox:
        from klaviyo_toolkit.sandbox import Sandbox

        sb = Sandbox(seed=42)
    ctx = build_context(spec, sandbox=sb, thread_id=thread, replay=replay, dry_run=dry_run or None)
    answer: Any = None
    if resume is not None:
        answer = json.loads(resume) if resume.lstrip().startswith("{") else {"action": resume}
    from graphs import load

    make_input = getattr(load(spec.graph), "make_input", lambda p: p)
    state_in = make_input(payload) if payload is not None else None
    result = run_persona(spec, state_in, context=ctx, saver=checkpointer(), resume=answer)
    if as_json:
        typer.echo(json.dumps({"thread_id": result.thread_id, "model": result.model, "paused": result.paused,
                               "interrupts": result.interrupts, "state": _jsonable(result.state)}, indent=1, default=str))
    else:
        typer.echo(render_result(spec, result))
    if result.paused:
        typer.echo(f"\nPaused for approval. Continue with: personas run {spec.name} --thread {result.thread_id} "
                   "--resume approve   (or reject)", err=True)


def _jsonable(state: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in state.items():
        if key == "messages":
            out[key] = [{"type": m.type, "content": m.content} for m in value]
        else:
            out[key] = value
    return out
