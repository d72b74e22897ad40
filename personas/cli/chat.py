"""``personas chat PERSONA``: talk to any persona in the terminal (see ``repl.py``)."""

from __future__ import annotations

import os
import sys

import typer


def chat_cmd(
    persona: str = typer.Argument(..., help="The persona to talk to (see `personas list`)."),
    sandbox: bool = typer.Option(False, "--sandbox", help="Use the embedded Klaviyo sandbox with demo data."),
    replay: str = typer.Option(None, "--replay", help="Play recorded model responses from a cassette."),
    seed: int = typer.Option(42, "--seed", help="Sandbox seed (with --sandbox)."),
    connection: str = typer.Option(
        None, "--connection", help="Chat on this stored connection (`personas auth status`)."
    ),
) -> None:
    """Chat with a persona: streamed answers, tool calls shown, approvals for destructive calls."""
    from personas.runtime.loader import load_persona

    from .common import config
    from .repl import Repl

    spec = load_persona(persona, home=config().home)
    if connection:  # the command line wins over the persona's `connection:`
        spec = spec.model_copy(update={"connection": connection})
    sb = None
    if sandbox:
        from klaviyo_sandbox import Sandbox

        sb = Sandbox(seed=seed)
    cfg = config()
    model, suggestions = None, []
    if sb is not None and not replay and not cfg.openai_api_key and spec.graph == "chat":
        from .tour import STEPS, tour_choice  # no model: the guided tour on the demo sandbox

        model, suggestions = tour_choice(), [s.message for s in STEPS]
    repl = Repl(spec, sandbox=sb, replay=replay, config=cfg, model=model, suggestions=suggestions)
    code = repl.run()
    if repl.abandoned:
        # A step left under way (recorded as abandoned) still runs in a worker thread, which the
        # interpreter would wait for at exit: a hung model call would keep the process for minutes.
        # Everything kept is already written (audit log, checkpoints, history), so leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)
