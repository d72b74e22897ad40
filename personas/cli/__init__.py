"""The ``personas`` command.

Exit codes: 0 success, 1 a runtime failure (network, Klaviyo error), 2 a usage error (unknown
persona or tool, bad input), 3 a segment sync that finished in part (``personas run``), 130
interrupted (Ctrl-C). Errors print one line saying what to do; ``--debug`` adds the traceback before
it and keeps the exit code. The root help says the same (``EPILOG``), so a script's author finds them
without reading the source.

"""

from __future__ import annotations

import gc
import io
import os
import sys
import traceback
from typing import Any, TextIO

import typer

from evals.cli import eval_cmd
from klaviyo_toolkit._stack import roomy
from klaviyo_toolkit.redact import redact_text
from personas.kernel.config import Config
from personas.kernel.errors import UsageProblem
from personas.kernel.privacy import register_secrets

from . import audit, auth, chat, run, runs, sandbox, serve, tools
from .common import HELP, config_scope, readable_metavars, refuse_blank, set_config
from .errors import error_line

#: The collector's first threshold in the ``personas`` process: allocations, less frees, between
#: collections of the youngest generation (CPython's default is 700). A command's first imports and
#: its sandbox make hundreds of thousands of objects that live as long as the process, and at the
#: default every few thousand of them set off a collection, and now and then a full one that walks
#: them all, freeing nothing. Measured on the dev container (median of 5): ``personas run
#: lead-magnet-sequencer --sandbox`` 2.66 -> 2.26 s, ``personas run campaign-reporter --sandbox``
#: 3.58 -> 2.99 s, ``personas eval`` 21.2 -> 17.1 s, peak memory the same (225 MB). Cycles are
#: still collected, a little later.
GC_FIRST_THRESHOLD = 7_000


def fewer_collections() -> None:
    """Raise the collector's first threshold to :data:`GC_FIRST_THRESHOLD`, never lower it: what
    :func:`main` does first (the test suite's workers do it too, so that they run as the command does)."""
    first, *rest = gc.get_threshold()
    if 0 < first < GC_FIRST_THRESHOLD:
        gc.set_threshold(GC_FIRST_THRESHOLD, *rest)


#: Shown under ``personas --help``: what a script can tell from the exit code.
EPILOG = (
    "Exit codes: 0 done (a run paused for approval too: it prints how to continue), 1 a runtime failure "
    "(Klaviyo, the network, the model, a state file), 2 a usage error (nothing started; a missing or broken "
    "cassette too), 3 a segment sync "
    "finished in part, 130 interrupted (Ctrl-C; a run is saved and says how to continue it). "
    "Errors are one line; --debug before the command adds the traceback (the exit code stays the same)."
)

app = typer.Typer(
    name="personas",
    help="AI personas that run marketing automation on Klaviyo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=HELP,
    epilog=EPILOG,
)
app.add_typer(tools.app, name="tools")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(audit.app, name="audit")
app.add_typer(auth.app, name="auth")
app.command("list")(run.list_personas_cmd)
app.command("run")(run.run_cmd)
app.command("chat")(chat.chat_cmd)
app.command("serve")(serve.serve_cmd)
app.command("worker")(serve.worker_cmd)
app.command("watch")(serve.watch_cmd)
app.add_typer(runs.app, name="runs")

app.command("eval")(eval_cmd)


@app.command("demo")
def demo(
    seed: int = typer.Option(42, "--seed", help="Sandbox seed."),
    state: str = typer.Option(
        None, "--sandbox-state", help="Keep the sandbox's data in this SQLite file, to look at after."
    ),
) -> None:
    """The lead-magnet sequencer and campaign reporter end to end on the embedded sandbox."""
    from .common import config
    from .demo import run_demo
    from .sandbox import state_file

    raise SystemExit(run_demo(seed, state_file=state_file(state), config=config()))


def _version(value: bool) -> None:
    if value:
        from klaviyo_toolkit import __version__

        typer.echo(f"personas {__version__} (klaviyo-personas; Klaviyo API revision {_revision()})")
        raise typer.Exit()


def _revision() -> str:
    from klaviyo_toolkit.catalog import load_catalog

    return load_catalog().revision


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Resolve the environment once; every command reads this Config."""
    config = Config.from_env()
    set_config(config.replace(debug=True) if debug else config)


def _fail(message: str, code: int) -> None:
    from .common import visible  # an error may quote input or Klaviyo's words: shown, never obeyed

    typer.echo(f"error: {visible(message)}", err=True)
    raise SystemExit(code)


class _Redacted(io.TextIOBase):
    """A terminal stream that masks secrets (the one redaction function) in whatever is written."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(redact_text(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: run the app and turn exceptions into one clear line.

    Files it creates are owner-only (umask 077), and nothing it prints holds a raw secret.
    """
    fewer_collections()
    try:
        env = Config.from_env()
    except UsageProblem as exc:  # a malformed variable: one line naming it, whatever the command
        _fail(str(exc), 2)
        raise
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or env.debug
    os.umask(0o077)
    register_secrets(env)
    if not isinstance(sys.stdout, _Redacted):
        sys.stdout = _Redacted(sys.stdout)  # type: ignore[assignment]
        sys.stderr = _Redacted(sys.stderr)  # type: ignore[assignment]
    try:
        command = typer.main.get_command(app)
        readable_metavars(command)
        refuse_blank(command)  # an empty value is a usage error, never "not given"
        # With room on the frame stack: a command's first imports (LangChain, LangGraph) then take the
        # same time whatever the call depth (klaviyo_toolkit._stack, CPython gh-142183).
        with config_scope():  # the command's Config is the command's only
            return roomy(command.main, args=argv, standalone_mode=True, prog_name="personas")
    except SystemExit as exc:
        if exc.code == 130 and _silent_interrupt(exc):
            _fail("interrupted (Ctrl-C)", 130)
        raise
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:
        if debug:  # the traceback, then the same line and exit code as without --debug
            traceback.print_exc()
        known = error_line(exc)
        if known is not None:
            _fail(*known)
        first = (str(exc).strip().splitlines() or [""])[0]
        hint = "" if debug else f" ({debug_hint(argv if argv is not None else sys.argv[1:])})"
        _fail(f"{type(exc).__name__}: {first}{hint}", 1)
    return None


def _silent_interrupt(exc: SystemExit) -> bool:
    """Whether typer turned a Ctrl-C into this exit 130 (``Exit(130) from KeyboardInterrupt``) without
    a word: ``personas demo`` stopped with nothing printed. A command that handled its Ctrl-C itself
    (``personas run`` says how to continue) exits with the interrupt as context, not as a cause."""
    inner = exc.__context__
    return inner is not None and isinstance(inner.__cause__, KeyboardInterrupt)


def debug_hint(argv: list[str]) -> str:
    """Where the traceback is: ``--debug`` goes before the command (``personas --debug runs ...``)."""
    command = next((a for a in argv if not a.startswith("-")), "<command>")
    return f"for the traceback, run it again as: personas --debug {command} ..."


if __name__ == "__main__":
    main()
