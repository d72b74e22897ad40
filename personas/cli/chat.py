"""``personas chat PERSONA``: talk to any persona in the terminal (see ``repl.py``)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from personas.kernel.spec import PersonaSpec


#: The prompt a persona without a conversation of its own talks with: the chat rules (untrusted
#: data, consent, approvals) hold for every persona in a conversation.
CHAT_PROMPT = "klaviyo_assistant.v1.md"


def as_chat(spec: PersonaSpec) -> PersonaSpec:
    """A persona whose graph is not a conversation (the reporter, the syncer...), as a chat: its name,
    scopes, tools, approval mode, model and connection, with the chat graph and its prompt.

    Neither its graph's settings nor its approval exceptions (``approval.relax``) apply: each
    exception is justified by what the graph's own code does around that call (the syncer
    subscribes only rows whose consent column says yes; the sequencer records one event per lead,
    for the lead's own id), and a model in a conversation does none of that. Kept, a model obeying
    text planted in a profile could subscribe or re-address anyone without a person seeing it."""
    approval = spec.approval.model_copy(update={"relax": {}})
    return spec.model_copy(update={"graph": "chat", "prompt": CHAT_PROMPT, "settings": {}, "approval": approval})


def chat_cmd(
    persona: str = typer.Argument(..., help="The persona to talk to (see `personas list`)."),
    sandbox: bool = typer.Option(False, "--sandbox", help="Use the embedded Klaviyo sandbox with demo data."),
    replay: str = typer.Option(None, "--replay", help="Play recorded model responses from a cassette."),
    seed: int = typer.Option(None, "--seed", help="Sandbox seed (with --sandbox; default 42)."),
    connection: str = typer.Option(
        None, "--connection", help="Chat on this stored connection (`personas auth status`)."
    ),
    thread: str = typer.Option(
        None, "--thread", help="Go on with an earlier conversation (its id is printed when a chat ends)."
    ),
) -> None:
    """Chat with a persona: streamed answers, tool calls shown, approval asked before consequential calls."""
    from personas.kernel.errors import UsageProblem
    from personas.runtime.loader import load_persona

    from .common import config
    from .conversation import HANGUP, InputGone, check_thread, go_on_line

    if seed is not None and not sandbox:  # else it would be ignored without a word, on a real account
        raise UsageProblem("--seed is the embedded sandbox's seed: add --sandbox, or leave --seed out")
    spec = load_persona(persona, home=config().home)
    if connection:  # the command line wins over the persona's `connection:`
        spec = spec.model_copy(update={"connection": connection})
    own_graph = spec.graph
    if own_graph != "chat":
        spec = as_chat(spec)
    sb = None
    if sandbox:
        from klaviyo_sandbox import Sandbox

        sb = Sandbox(seed=42 if seed is None else seed)
    cfg = config()
    from .repl import Repl  # LangChain and LangGraph (about a second) once the persona and flags hold up

    model, suggestions = None, []
    if sb is not None and not replay and not cfg.openai_api_key and own_graph == "chat" and thread is None:
        from .tour import STEPS, tour_choice  # no model: the guided tour on the demo sandbox

        model, suggestions = tour_choice(), [s.message for s in STEPS]
    repl = Repl(spec, sandbox=sb, replay=replay, config=cfg, model=model, suggestions=suggestions,
                tour=own_graph == "chat", thread=thread)
    if thread is not None:  # before anything is shown or run
        check_thread(repl.driver, spec.name, thread, cfg.home)
    if own_graph != "chat":
        repl.console.print(
            f"[dim]{spec.name} runs the {own_graph} graph (`personas run {spec.name}`); here you talk to it with "
            "its scopes, tools and approvals.[/dim]"
        )
    try:
        code = repl.run()
    except InputGone:  # the terminal closed: an approval asked stays pending, unanswered
        waits = " (the approval asked was not answered: it waits)" if repl.driver.pending() else ""
        with contextlib.suppress(OSError):  # for a log stderr goes to; the terminal itself is gone
            sys.stderr.write(f"the terminal closed{waits}; {go_on_line(spec.name, repl.ctx.thread_id)}\n")
        code = HANGUP
    if repl.abandoned:
        # A step left under way (recorded as abandoned) still runs in a worker thread, which the
        # interpreter would wait for at exit: a hung model call would keep the process for minutes.
        # Everything kept is already written (audit log, checkpoints, history), so leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)
