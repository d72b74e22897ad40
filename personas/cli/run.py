"""``personas list`` and ``personas run``: see the personas, run a graph once from the terminal."""

from __future__ import annotations

import json
import shlex
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from graphs import GRAPHS
from klaviyo_toolkit.json_text import JsonTextError, json_type, loads
from klaviyo_toolkit.tools import KlaviyoToolkit
from personas.kernel.context import select_operations
from personas.kernel.errors import UsageProblem
from personas.kernel.governance import parse_answer
from personas.kernel.graphspec import GraphSpec
from personas.kernel.spec import PersonaSpec
from personas.runtime.loader import Scan, broken_file, load_persona, scan_personas

if TYPE_CHECKING:  # running a persona (LangGraph, LangChain, the client) loads in run_cmd, not for `list`
    from personas.runtime.driver import RunDriver, RunResult

from .approvals import describe_approval, remember_shown, shown_requests
from .common import config, indented, visible, visible_data
from .errors import error_line
from .progress import ProgressView


def list_personas_cmd(as_json: bool = typer.Option(False, "--json", help="Print a JSON array.")) -> None:
    """List the personas: name, graph, scopes and tools."""
    found = scan_personas(config().home)
    rows = []
    for spec in found.personas.values():
        tools = select_operations(KlaviyoToolkit(scopes=spec.scopes), spec.tools)
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
    else:
        _table(rows)
    for error in found.errors:  # a broken file is shown, and never hides the others
        typer.echo(f"error: {error}", err=True)
    if found.errors:
        raise SystemExit(1)


def _table(rows: list[dict[str, Any]]) -> None:
    """Each persona as a few lines (name, description, what it may do): nothing cut at any width."""
    from rich.markup import escape

    console = Console(highlight=False)
    console.print(f"{len(rows)} personas")
    for r in rows:
        schedule = f", schedule {r['schedule']}" if r.get("schedule") else ""
        console.print(f"\n[bold]{escape(r['name'])}[/bold]  [dim](graph {r['graph']}{escape(schedule)})[/dim]")
        indented(console, r["description"])
        indented(
            console,
            f"{len(r['scopes'])} scopes, {len(r['tools'])} tools; approval by {r['approval']}; {r['source']}",
            "dim",
        )


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
            try:  # JSON text that is not an object or array: a string, a number, true, null
                given = loads(value)
            except JsonTextError:
                raise UsageProblem(f"--input {value!r}: no such file, and not JSON text either") from None
            raise UsageProblem(f"--input must be a JSON object (got {json_type(given)}); give the input as "
                               "{...}, a JSON file, or - for stdin")
        if not path.is_file():
            raise UsageProblem(f"--input {value!r} is a folder; give a JSON file, JSON text, or - for stdin")
        where = str(path)
        try:
            text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark (Windows editors) is not an error
        except UnicodeDecodeError as exc:
            raise UsageProblem(
                f"{where} is not UTF-8 text (byte {exc.start}); save it as UTF-8 JSON and run the command again"
            ) from None
        except OSError as exc:
            raise UsageProblem(f"--input {value!r} cannot be read ({exc.strerror}); check the path") from None
    try:
        return loads(text)  # strict: a key given twice, NaN or a too-deep document is refused, not guessed at
    except JsonTextError as exc:
        raise UsageProblem(f"{where} is not valid JSON ({exc}); fix it and run the command again") from None


def resolve_persona(name: str, home: Path) -> PersonaSpec:
    """A persona by name, or the first persona of a graph given by graph name."""
    found = scan_personas(home)
    if name in GRAPHS:
        for spec in found.personas.values():
            if spec.graph == name:
                return spec
        raise UsageProblem(f"no persona uses the graph {name!r}")
    if name in found.personas or (name.endswith((".yaml", ".yml")) and Path(name).exists()):
        return load_persona(name, home=home)
    raise no_persona(name, found, GRAPHS)


def no_persona(name: str, found: Scan, graphs: Sequence[str] = ()) -> UsageProblem:
    """The error for a persona ``name`` that ``found`` does not hold: its file's own error when it is
    there but broken, else the close names (persona names, and ``graphs`` where a command takes one)."""
    import difflib

    from klaviyo_toolkit.redact import clip

    broken = broken_file(found.errors, name)
    if broken is not None:
        return broken
    personas = sorted(found.personas)
    close = difflib.get_close_matches(name, [*personas, *graphs], n=2)
    hint = f"; did you mean {' or '.join(close)}?" if close else "."
    given = repr(clip(name, 100))  # a name pasted by mistake (a whole file) is not echoed whole
    if not graphs:
        return UsageProblem(f"no persona named {given}{hint} Personas: {', '.join(personas)} (see `personas list`)")
    return UsageProblem(
        f"no persona or graph named {given}{hint} Personas: {', '.join(personas)}; "
        f"graphs: {', '.join(graphs)} (see `personas list`)"
    )


def parse_resume(value: str) -> Any:
    """``--resume``: approve, reject, or a JSON answer ({"action": "edit", "args": {...}})."""
    text = value.strip()
    if text.startswith(("{", "[")):
        try:
            answer = loads(text)  # an answer keyed twice by one request approves nothing: refused
        except JsonTextError as exc:
            raise UsageProblem(f"--resume is not valid JSON ({exc}); answer approve, reject or JSON") from None
    else:
        answer = text
    if isinstance(answer, list):
        return [parse_answer(a) for a in answer]
    if isinstance(answer, dict) and answer and all(str(k).startswith("sha256:") for k in answer):
        return {k: {**parse_answer(v), "fingerprint": k} for k, v in answer.items()}  # by request fingerprint
    return parse_answer(answer)


def _unbound(answer: Any) -> bool:
    """An approval or edit that names no request (a rejection needs none)."""
    if isinstance(answer, dict) and "action" not in answer:
        return any(_unbound(a) for a in answer.values())
    if isinstance(answer, list):
        return any(_unbound(a) for a in answer)
    return isinstance(answer, dict) and answer.get("action") != "reject" and not answer.get("fingerprint")


def bind_answer(
    answer: Any, request: str | None, pending: list[Any], shown: set[str], command: str, thread: str
) -> Any:
    """The ``--resume`` answer bound to the request it approves.

    An approval from the shell answers a request a person was shown: the one ``--request
    FINGERPRINT`` names, or else the pending request(s) a ``personas run`` printed for this thread
    (``shown``). A command recalled from history after the run paused on a request nobody was shown
    here (answered elsewhere, paused again by a worker) approves nothing: it names what is pending.
    """
    if request:
        if isinstance(answer, dict) and "action" in answer:
            return {**answer, "fingerprint": request.strip()}
        raise UsageProblem("--request binds one answer (approve, reject or an edit); a list or mapping "
                           "of answers names each request's fingerprint itself")
    if not _unbound(answer):
        return answer
    fingerprints = [_fingerprint_of(p) for p in pending]
    if fingerprints and all(f in shown for f in fingerprints):
        if isinstance(answer, list):
            return [{**a, "fingerprint": f} if a.get("action") != "reject" else a
                    for a, f in zip(answer, fingerprints, strict=False)] + answer[len(fingerprints):]
        if len(fingerprints) == 1:
            return {**answer, "fingerprint": fingerprints[0]}
        return answer  # several pending, one answer: the driver refuses it and lists them
    listed = "; ".join(f"{f} ({_tool_of(p)})" for f, p in zip(fingerprints, pending, strict=True)) or "none"
    example = fingerprints[0] if len(fingerprints) == 1 else "sha256:..."
    raise UsageProblem(
        f"the run is waiting on a request that was not shown here ({listed}); look at it with "
        f"`personas audit --thread {shlex.quote(thread)} --status pending_approval`, then answer it by name: "
        f"{command} --resume approve --request {example}"
    )


def _fingerprint_of(pending: Any) -> str:
    value = getattr(pending, "value", None)
    return str(value.get("fingerprint") or "?") if isinstance(value, dict) else "?"


def _tool_of(pending: Any) -> str:
    value = getattr(pending, "value", None)
    return str(value.get("tool") or "?") if isinstance(value, dict) else "?"


def run_cmd(
    command: typer.Context,
    graph: str = typer.Argument(..., help="A persona (e.g. lead-magnet-sequencer) or a graph (lead_magnet)."),
    input: str = typer.Option(None, "--input", "-i", help="JSON file, '-' for stdin, or JSON text."),
    as_json: bool = typer.Option(False, "--json", help="Print the final state as JSON."),
    sandbox: bool = typer.Option(False, "--sandbox", help="Run against the embedded Klaviyo sandbox."),
    thread: str = typer.Option(None, "--thread", help="Thread id (to resume a paused or killed run)."),
    resume: str = typer.Option(None, "--resume", help="Answer a pending approval: approve, reject, or JSON."),
    request: str = typer.Option(
        None, "--request", help="The fingerprint of the request an approval answers (printed with it)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show writes instead of sending them."),
    replay: str = typer.Option(None, "--replay", help="Replay recorded model responses from a cassette."),
    sandbox_state: str = typer.Option(
        None,
        "--sandbox-state",
        help="Keep the embedded sandbox in this SQLite file (implies --sandbox), e.g. to "
        "resume a paused run against the same data.",
    ),
    connection: str = typer.Option(
        None, "--connection", "--credential", help="Run on this stored connection (see `personas auth status`)."
    ),
    retry: bool = typer.Option(
        False, "--retry", help="Continue a run that failed or was killed (needs --thread); a finished one: exit 0."
    ),
) -> None:
    """Run a graph once and print the result.

    \b
    Exit codes:
      0    finished, or paused for approval (it prints how to continue)
      1    a runtime failure (Klaviyo, the network, the model, a state file)
      2    a usage error (unknown persona, bad --input, a --replay cassette missing or broken): nothing started
      3    a segment sync finished in part (rows invalid or refused)
      130  interrupted (Ctrl-C): the run is saved; it prints how to continue
    """
    from .sandbox import state_file

    cfg = config()
    sandbox_state = state_file(sandbox_state)
    spec = resolve_persona(graph, cfg.home)
    # how the commands printed name the persona: the file it was given as, which another file of its
    # name (the shipped one) is not; resumed under another approval policy, a rejection went unread
    named = shlex.quote(spec.source) if graph.endswith((".yaml", ".yml")) and spec.source else spec.name
    if input is None and resume is None and not retry:
        raise UsageProblem("give --input FILE|JSON (or --thread T --resume approve to continue a paused run, "
                           "--thread T --retry a killed or failed one)")
    if (resume is not None or retry) and not thread:
        flag = "--resume" if resume is not None else "--retry"
        raise UsageProblem(f"{flag} needs --thread T: the thread of the run (printed when it stopped)")
    if retry and (resume is not None or input is not None):
        raise UsageProblem("--retry continues a stopped run as it was; give it without --input or --resume")
    answer = parse_resume(resume) if resume is not None else None
    payload = read_input(input) if input is not None else None
    if payload is not None and not isinstance(payload, dict):
        raise UsageProblem(f"--input must be a JSON object (got {json_type(payload)}); give the input as {{...}}")
    # LangChain and LangGraph (about a second to import) only once the command line holds up: a
    # mistyped persona or a malformed --input is answered at once
    from personas.runtime.context import build_context
    from personas.runtime.driver import RunDriver, checkpointer, left_to_run

    sb = None
    if sandbox or sandbox_state:
        from klaviyo_sandbox import Sandbox

        sb = Sandbox(seed=42, state=sandbox_state)
        command.call_on_close(sb.close)  # however the command ends: the state file is written and let go
    ctx = build_context(
        spec, config=cfg, sandbox=sb, thread_id=thread, replay=replay, dry_run=dry_run or None, connection=connection
    )
    driver = RunDriver(ctx, checkpointer(cfg.path("checkpoints.sqlite")))
    if resume is not None or retry:
        not_a_conversation(driver, thread)
    if (resume is not None or retry) and not driver.exists():
        raise UsageProblem(f"no run with thread {thread!r} in {cfg.home}; check the id the run printed")
    target = klaviyo_target(ctx, sb, sandbox_state)
    if resume is not None or retry:
        same_run_or_refuse(driver.snapshot().metadata or {}, spec.name, thread, target, flag="--retry" if retry else
                           f"--resume {shlex.quote(resume or '')}")
    driver.config = {**driver.config, "metadata": {**driver.config["metadata"], "klaviyo": target[0],
                                                   "where": target[1]}}
    graph_spec = driver.spec
    if resume is not None and not driver.pending():
        snap = driver.snapshot()
        if left_to_run(snap):
            raise UsageProblem(f"thread {thread!r} is not waiting for an approval now: another command may be "
                               f"running it, or it stopped before its end (a failed step, an interrupt); if none "
                               f"is running it, continue it with --retry")
        typer.echo(f"thread {thread!r} is not waiting for an approval: it finished; nothing to resume", err=True)
        return  # answering a run that already ended changes nothing: running the same command twice is fine
    if retry and (waiting := driver.pending()):  # a step that failed after its approval asks for it again
        raise UsageProblem(f"thread {thread!r} waits for an approval, so --retry has nothing to run; " + resume_hint(
            named, thread, sandbox=sb is not None, state=sandbox_state,
            fingerprints=[_fingerprint_of(p) for p in waiting], connection=connection))
    if retry and not left_to_run(driver.snapshot()):
        typer.echo(f"thread {thread!r} has nothing left to run; it finished", err=True)
        return  # as --resume of a finished run: a script retrying until it succeeds stops here
    answered: list[str] = []  # the requests this resume answers: settled once the run goes on
    if resume is not None:
        where = f" --sandbox-state {shlex.quote(sandbox_state)}" if sandbox_state else ""
        command = f"personas run {named}{where} --thread {shlex.quote(thread)}"
        shown = shown_requests(cfg.home / "approvals", thread)
        pending_now = driver.pending()
        answer = bind_answer(answer, request, pending_now, shown, command, thread)
        answered = [_fingerprint_of(p) for p in pending_now]
    elif request:
        raise UsageProblem("--request goes with --resume: it names the request the answer approves")
    state_in = graph_spec.make_input(payload) if payload is not None else None
    if thread is None and not (as_json and sys.stdout.isatty()):
        # Made up here: shown before the run does anything, so a run killed part-way can be continued
        # (its other output comes at the end). Not with --json on a terminal, whose screen is then
        # JSON and nothing else; piped, the JSON goes to the pipe and this line to the terminal.
        typer.echo(thread_line(named, driver.context.thread_id, sandbox=sb is not None, state=sandbox_state,
                               connection=connection),
                   err=True)
    try:
        if retry:
            result = driver.retry()
        elif not as_json and sys.stdout.isatty():
            with ProgressView(Console(highlight=False, stderr=True)) as view:
                for mode, chunk in driver.stream(state_in, resume=answer):
                    view.feed(mode, chunk)
            result = driver.result()
        else:
            result = driver.invoke(state_in, resume=answer)
    except KeyboardInterrupt:  # Ctrl-C: what the steps before did is saved, and so is the sandbox
        if sb is not None:
            sb.close()
        hint = retry_hint(named, driver.context.thread_id, sandbox=sb is not None, state=sandbox_state,
                          connection=connection)
        typer.echo(f"\ninterrupted: {hint.replace('stopped at that step', 'stopped where it was')}", err=True)
        raise SystemExit(130) from None
    except Exception as exc:  # the run stopped at a failed step: its checkpoint stays, to continue it
        if sb is not None:
            sb.close()
        known = error_line(exc)
        if answered and (known is None or known[1] != 2):
            remember_shown(cfg.home / "approvals", thread, [], forget=answered)  # the answer was used
        if cfg.debug or known is None or known[1] == 2:
            raise  # a usage or input error (exit 2), or --debug: the usual one line (or traceback)
        hint = retry_hint(named, driver.context.thread_id, sandbox=sb is not None, state=sandbox_state,
                          connection=connection)
        if again := _waiting_again(driver):  # the step failed after its approval: --retry would be refused
            hint = ("the run is saved and waits for that request's approval again (the step failed after it was "
                    "given). " + resume_hint(named, driver.context.thread_id, sandbox=sb is not None,
                                             state=sandbox_state, fingerprints=again, connection=connection))
        typer.echo(f"error: {known[0]}; {hint}", err=True)
        raise SystemExit(known[1]) from None
    if sb is not None:
        sb.close()  # writes the state file, if any
    if driver.repeated:  # the same command again: the thread's run is shown, not run twice
        typer.echo(f"thread {driver.context.thread_id!r} finished this input before: nothing was run again; its "
                   "result follows", err=True)
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
    elif graph_spec.render_rich is not None and sys.stdout.isatty():
        # Klaviyo data and form answers are shown, never obeyed: their control characters are
        # written as escapes (\x1b), as the REPL writes them (a campaign name could erase lines).
        console = Console(highlight=False)
        console.print(visible(f"{spec.name} (thread {result.thread_id}); model: {result.model}"), markup=False)
        console.print(graph_spec.render_rich(visible_data(result.state)))
        if result.interrupts:
            typer.echo(visible("\n" + approvals_text(result)))
    else:
        typer.echo(visible(render_result(spec, graph_spec, result)))
    printed = [_fingerprint_of(p) for p in result.pending] if result.paused else []
    remember_shown(cfg.home / "approvals", result.thread_id, printed, forget=answered)
    if result.paused:
        typer.echo(
            "\n" + resume_hint(named, result.thread_id, sandbox=sb is not None, state=sandbox_state,
                               fingerprints=[_fingerprint_of(p) for p in result.pending], connection=connection),
            err=True,
        )
    elif graph_spec.exit_code is not None and (code := graph_spec.exit_code(result.state)):
        raise SystemExit(code)  # finished, but only in part: the graph's result says what was not done


def klaviyo_target(ctx: Any, sb: Any, state: str | None) -> tuple[str, str]:
    """(key, words) of the Klaviyo a run works on: its sandbox state file, an in-memory sandbox (a new
    one each command), or the account behind the connection. A paused or stopped run is continued
    on the same one only: an approval answered elsewhere would apply its batch to other data."""
    if state:
        where = str(Path(state).resolve())
        return f"sandbox-state:{where}", f"the sandbox state file {where}"
    if sb is not None:
        return f"sandbox:{uuid.uuid4().hex}", "an in-memory sandbox (gone when its command ended)"
    who = ctx.account or ctx.connection or "the key in the environment"
    return f"klaviyo:{ctx.client.base_url}:{who}", f"Klaviyo at {ctx.client.base_url} ({who})"


def not_a_conversation(driver: RunDriver, thread: str) -> None:
    """UsageProblem when ``thread`` holds a conversation (``personas chat``): a run's graph would read
    the chat's checkpoint as its own, and answer or continue it as no chat does."""
    from .conversation import go_on_with_chat, holds_conversation

    found = driver.saver.get_tuple(driver.config)
    if found is not None and holds_conversation(found.checkpoint):
        meta = found.metadata or {}
        whose = f" with {meta['persona']}" if meta.get("persona") else ""
        raise UsageProblem(f"thread {thread!r} is a conversation{whose} (personas chat), not a run: an approval it "
                           f"waits for is answered in the chat; go on with it as {go_on_with_chat(meta, thread)}; "
                           "nothing was run")


def same_run_or_refuse(metadata: Mapping[str, Any], persona: str, thread: str, target: tuple[str, str], *,
                       flag: str) -> None:
    """UsageProblem unless the stopped run on ``thread`` is ``persona``'s, on the same Klaviyo (threads
    from before this was recorded are taken as they are)."""
    ran = metadata.get("persona")
    if ran and ran != persona:
        raise UsageProblem(f"thread {thread!r} is a run of {ran}, not {persona}; continue it with "
                           f"personas run {ran} ... --thread {shlex.quote(thread)} {flag}")
    was, words = metadata.get("klaviyo"), str(metadata.get("where") or "another Klaviyo")
    if was and was != target[0]:
        if str(was).startswith("sandbox:"):
            raise UsageProblem(f"thread {thread!r} ran on {words}, so it cannot be continued on {target[1]}: "
                               "nothing was changed; start the run again (with --sandbox-state FILE to keep it)")
        again = f" --sandbox-state {shlex.quote(str(was).removeprefix('sandbox-state:'))}" if str(was).startswith(
            "sandbox-state:") else " with the connection it ran on (--connection)"
        raise UsageProblem(f"thread {thread!r} ran on {words}, not on {target[1]}; nothing was changed: continue "
                           f"it on the same Klaviyo: personas run {persona}{again} --thread {shlex.quote(thread)} "
                           f"{flag}")


def _on(connection: str | None) -> str:
    """`` --connection NAME`` when the run was given one: a continuation without it would resolve
    another credential (or none), and be refused as a run on another Klaviyo."""
    return f" --connection {shlex.quote(connection)}" if connection else ""


def thread_line(persona: str, thread: str, *, sandbox: bool, state: str | None, connection: str | None = None) -> str:
    """The line a run whose thread id was made up prints first (on stderr): the id, and how to
    continue the run if it stops before its end (killed, a failed step) with no other output."""
    if sandbox and not state:
        return (f"thread {thread}: on an in-memory sandbox, so a run stopped part-way cannot be continued "
                "(give --sandbox-state FILE to keep it)")
    where = f" --sandbox-state {shlex.quote(state)}" if state else _on(connection)
    return (f"thread {thread}: if this run stops before its end, continue it with "
            f"personas run {persona}{where} --thread {shlex.quote(thread)} --retry")


def _waiting_again(driver: RunDriver) -> list[str]:
    """The requests a run that just failed waits for approval of (a step that failed after its approval
    stops on the same request again); empty when it waits for none, or its thread cannot be read."""
    try:
        return [_fingerprint_of(p) for p in driver.pending()]
    except Exception:  # the failure may be the checkpoint file's own: the --retry hint stands
        return []


def retry_hint(persona: str, thread: str, *, sandbox: bool, state: str | None, connection: str | None = None) -> str:
    """What to run to continue a run that failed at a step; or why it cannot be."""
    if sandbox and not state:
        return "the run stopped on an in-memory sandbox that is gone now, so it cannot be continued"
    where = f" --sandbox-state {shlex.quote(state)}" if state else _on(connection)
    return (
        f"the run stopped at that step and is saved: continue it with "
        f"personas run {persona}{where} --thread {shlex.quote(thread)} --retry"
    )


def resume_hint(
    persona: str, thread: str, *, sandbox: bool, state: str | None, fingerprints: Sequence[str] = (),
    connection: str | None = None,
) -> str:
    """What to run to continue a paused run, exactly as it must be typed (the approval names the
    request it answers); or why it cannot be."""
    if sandbox and not state:
        return (
            "Paused for approval, on an in-memory sandbox that is gone now: this run cannot be resumed. "
            "Run it with --sandbox-state FILE to be able to resume it."
        )
    where = f" --sandbox-state {shlex.quote(state)}" if state else _on(connection)
    command = f"personas run {persona}{where} --thread {shlex.quote(thread)}"
    if len(fingerprints) > 1:
        answers = json.dumps({f: "approve" for f in fingerprints})
        return (f"Paused for approval. Continue with: {command} --resume {shlex.quote(answers)}"
                "   (each: approve or reject)")
    request = f" --request {fingerprints[0]}" if fingerprints else ""
    return f"Paused for approval. Continue with: {command} --resume approve{request}   (or --resume reject)"


def render_result(spec: PersonaSpec, graph_spec: GraphSpec, result: RunResult) -> str:
    head = f"{spec.name} (thread {result.thread_id}); model: {result.model}"
    body = graph_spec.render(result.state)
    if result.interrupts:
        body += "\n\n" + approvals_text(result)
    return head + "\n" + body


def approvals_text(result: RunResult) -> str:
    folder = config().home / "approvals"
    shown = [describe_approval(i if isinstance(i, dict) else {"value": i}, folder) for i in result.interrupts]
    return "Waiting for approval:\n" + "\n".join(shown)


def _jsonable(state: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in state.items():
        if key == "messages":
            out[key] = [{"type": m.type, "content": m.content} for m in value]
        else:
            out[key] = value
    return out
