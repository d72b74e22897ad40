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
        rows.append(
            {
                "name": spec.name,
                "graph": spec.graph,
                "description": spec.description,
                "model": spec.model,
                "scopes": spec.scopes,
                "tools": [t.name for t in tools],
                "approval": spec.approval.mode,
                "schedule": spec.schedule,
                "source": spec.source,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} personas")
    for col in ("name", "graph", "description", "scopes", "tools", "approval"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["name"], r["graph"], r["description"], str(len(r["scopes"])), str(len(r["tools"])), r["approval"]
        )
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
    import difflib

    from graphs import GRAPHS

    from .loader import list_personas, load_persona, persona_dirs

    if name in GRAPHS:
        for spec in list_personas():
            if spec.graph == name:
                return spec
        raise UsageProblem(f"no persona uses the graph {name!r}")
    personas = sorted({p.stem for d in persona_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    if name not in personas and not (name.endswith((".yaml", ".yml")) and Path(name).exists()):
        close = difflib.get_close_matches(name, [*personas, *GRAPHS], n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else "."
        raise UsageProblem(
            f"no persona or graph named {name!r}{hint} Personas: {', '.join(personas)}; "
            f"graphs: {', '.join(GRAPHS)} (see `personas list`)"
        )
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
    sandbox_state: str = typer.Option(
        None,
        "--sandbox-state",
        help="Keep the embedded sandbox in this SQLite file (implies --sandbox), e.g. to "
        "resume a paused run against the same data.",
    ),
    credential: str = typer.Option(None, "--credential", help="Use this credential from the vault (personas auth)."),
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
    if sandbox or sandbox_state:
        from klaviyo_sandbox import Sandbox

        sb = Sandbox(seed=42, state=sandbox_state)
    ctx = build_context(
        spec, sandbox=sb, thread_id=thread, replay=replay, dry_run=dry_run or None, credential=credential
    )
    answer: Any = None
    if resume is not None:
        answer = json.loads(resume) if resume.lstrip().startswith("{") else {"action": resume}
    from graphs import load

    make_input = getattr(load(spec.graph), "make_input", lambda p: p)
    state_in = make_input(payload) if payload is not None else None
    if not as_json and sys.stdout.isatty():
        result = run_with_progress(spec, state_in, context=ctx, saver=checkpointer(), resume=answer)
    else:
        result = run_persona(spec, state_in, context=ctx, saver=checkpointer(), resume=answer)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "thread_id": result.thread_id,
                    "model": result.model,
                    "paused": result.paused,
                    "interrupts": result.interrupts,
                    "state": _jsonable(result.state),
                },
                indent=1,
                default=str,
            )
        )
    else:
        typer.echo(render_result(spec, result))
    if result.paused:
        typer.echo(
            f"\nPaused for approval. Continue with: personas run {spec.name} --thread {result.thread_id} "
            "--resume approve   (or reject)",
            err=True,
        )


def run_with_progress(spec: Any, state_in: Any, *, context: Any, saver: Any, resume: Any = None) -> Any:
    """``run_persona`` for a terminal: streams the graph and draws its progress as it goes.

    Graphs report counts with ``runtime.stream_writer({"phase", "done", "total"})`` (``total`` may be
    None while unknown): each phase gets a bar. Every node gets a spinner line while it runs, ticked
    when it ends, so graphs without counts show where they are too.
    """
    from langgraph.types import Command
    from rich.console import Console

    from graphs import build, load

    from .runtime import RunResult

    graph = build(spec.graph, checkpointer=saver)
    config = {
        "configurable": {"thread_id": context.thread_id},
        "recursion_limit": int(getattr(load(spec.graph), "RECURSION_LIMIT", 200)),
    }
    payload = Command(resume=resume) if resume is not None else state_in
    with _ProgressView(Console(highlight=False)) as view:
        for mode, chunk in graph.stream(
            payload, config, context=context, durability="sync", stream_mode=["updates", "custom", "tasks"]
        ):
            view.feed(mode, chunk)
    snap = graph.get_state(config)
    interrupts = [i.value for task in snap.tasks for i in task.interrupts]
    return RunResult(context.thread_id, dict(snap.values), interrupts, context.model.description)


class _ProgressView:
    """rich progress lines: one per node (spinner, then a tick) and one per counted phase (a bar)."""

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/green]"),
            TextColumn("{task.description:<16}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.lines: dict[str, Any] = {}
        self.running: dict[str, str] = {}  # task id -> node name, in start order
        self.owner: dict[str, str] = {}  # phase -> the node that reported it
        self.known_total: set[str] = set()

    def __enter__(self) -> _ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _line(self, name: str) -> Any:
        if name not in self.lines:
            self.lines[name] = self.progress.add_task(name, total=None, count="")
        return self.lines[name]

    def feed(self, mode: str, chunk: Any) -> None:
        if mode == "tasks" and isinstance(chunk, dict):
            name, task_id = str(chunk.get("name")), str(chunk.get("id"))
            if "result" not in chunk and "error" not in chunk:  # a node starts
                self.running[task_id] = name
                self._line(name)
                return
            self.running.pop(task_id, None)
            if chunk.get("error") or chunk.get("interrupts"):
                return
            for phase in [name, *(p for p, node in self.owner.items() if node == name)]:
                if phase not in self.known_total:  # counts without a total: it is complete when its node ends
                    task = next((t for t in self.progress.tasks if t.id == self.lines.get(phase)), None)
                    done = int(task.completed) if task is not None and task.completed else 1
                    self.progress.update(self._line(phase), total=done, completed=done)
        elif mode == "custom" and isinstance(chunk, dict) and "phase" in chunk:
            phase = str(chunk["phase"])
            if self.running and phase not in self.owner:
                self.owner[phase] = list(self.running.values())[-1]
            done, total, unit = int(chunk.get("done") or 0), chunk.get("total"), str(chunk.get("unit") or "")
            if total:
                self.known_total.add(phase)
            count = f"{done:,}/{int(total):,} {unit}" if total else f"{done:,} {unit}"
            self.progress.update(self._line(phase), total=total or None, completed=done, count=count.strip())


def _jsonable(state: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in state.items():
        if key == "messages":
            out[key] = [{"type": m.type, "content": m.content} for m in value]
        else:
            out[key] = value
    return out
