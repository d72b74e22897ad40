"""The ``personas`` command.

Exit codes: 0 success, 1 a runtime failure (network, Klaviyo error), 2 a usage error (unknown
persona or tool, bad input). Errors print one line saying what to do; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from . import _cli_audit, _cli_auth, _cli_chat, _cli_run, _cli_sandbox, _cli_tools
from .errors import UsageProblem

app = typer.Typer(
    name="personas",
    help="AI personas that run marketing automation on Klaviyo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(_cli_tools.app, name="tools")
app.add_typer(_cli_sandbox.app, name="sandbox")
app.add_typer(_cli_audit.app, name="audit")
app.add_typer(_cli_auth.app, name="auth")
app.command("list")(_cli_run.list_personas_cmd)
app.command("run")(_cli_run.run_cmd)
app.command("chat")(_cli_chat.chat_cmd)


@app.command("demo")
def demo(seed: int = typer.Option(42, "--seed", help="Sandbox seed.")) -> None:
    """The lead-magnet sequencer and campaign reporter end to end on the embedded sandbox."""
    from .demo import run_demo

    raise SystemExit(run_demo(seed))


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    if debug:
        os.environ["PERSONAS_DEBUG"] = "1"


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: run the app and turn exceptions into one clear line."""
    from klaviyo_toolkit.errors import (
        InvalidArgumentError,
        KlaviyoAPIError,
        ToolkitUsageError,
        TransportError,
    )

    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or os.environ.get("PERSONAS_DEBUG") == "1"
    try:
        return app(args=argv, standalone_mode=True)
    except SystemExit:
        raise
    except (UsageProblem, ToolkitUsageError, InvalidArgumentError) as exc:
        if debug:
            raise
        _fail(str(exc), 2)
    except (KlaviyoAPIError, TransportError) as exc:
        if debug:
            raise
        _fail(str(exc), 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # anything else: still one line unless --debug
        if debug:
            raise
        _fail(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)", 1)
    return None


if __name__ == "__main__":
    main()
