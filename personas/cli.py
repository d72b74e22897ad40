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
app.command("eval")(__import__("evals.cli", fromlist=["eval_cmd"]).eval_cmd)


@app.command("demo")
def demo(
    seed: int = typer.Option(42, "--seed", help="Sandbox seed."),
    state: str = typer.Option(None, "--state", help="Keep the sandbox's data in this SQLite file, to look at after."),
) -> None:
    """The lead-magnet sequencer and campaign reporter end to end on the embedded sandbox."""
    from .demo import run_demo

    raise SystemExit(run_demo(seed, state_file=state))


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    if debug:
        os.environ["PERSONAS_DEBUG"] = "1"


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def _base_url(exc: BaseException) -> str:
    """The Klaviyo base URL a failed call went to (its request's, else the configured one)."""
    import httpx

    cause = exc.__cause__
    try:
        request = cause.request if isinstance(cause, httpx.HTTPError) else None
    except RuntimeError:  # an httpx error raised without a request
        request = None
    if request is not None:
        return f"{request.url.scheme}://{request.url.netloc.decode()}"
    return (os.environ.get("KLAVIYO_BASE_URL") or "https://a.klaviyo.com").rstrip("/")


def error_line(exc: BaseException) -> tuple[str, int] | None:
    """What went wrong and what to do, in one line, with the exit code; None for an unexpected error.

    Shared by the commands and the REPL, so an error reads the same everywhere.
    """
    from klaviyo_toolkit.errors import (
        AuthenticationError,
        InvalidArgumentError,
        KlaviyoAPIError,
        PermissionDeniedError,
        RateLimitError,
        RateLimitWaitError,
        ScopeDeniedError,
        ServerError,
        ToolkitUsageError,
        TransportError,
    )

    from .cassette import CassetteError

    if isinstance(exc, (UsageProblem, ToolkitUsageError, InvalidArgumentError)):
        return str(exc), 2
    operation = getattr(exc, "operation_id", None)
    op = f" ({operation})" if operation else ""
    if isinstance(exc, TransportError):
        cause = exc.__cause__
        why = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
        return f"cannot reach {_base_url(exc)}{op}: {why}; check KLAVIYO_BASE_URL and your network", 1
    if isinstance(exc, AuthenticationError):
        base = os.environ.get("KLAVIYO_BASE_URL")
        where = f" (sent to KLAVIYO_BASE_URL={base})" if base else ""
        return f"Klaviyo rejected the API key (401){op}; check KLAVIYO_API_KEY{where}", 1
    if isinstance(exc, PermissionDeniedError):
        return (f"Klaviyo refused the call (403){op}: {exc.detail or exc.title or 'missing scope'}; "
                "use a key with the scopes the persona lists (`personas list`)"), 1
    if isinstance(exc, RateLimitError):
        wait = f"wait {exc.retry_after:.0f} s and " if exc.retry_after else ""
        return f"Klaviyo rate-limited the call (429){op}; {wait}try again", 1
    if isinstance(exc, ServerError):
        rid = f", request {exc.request_id}" if exc.request_id else ""
        return f"Klaviyo failed with HTTP {exc.status}{op}{rid}; try again later", 1
    if isinstance(exc, (KlaviyoAPIError, CassetteError, ScopeDeniedError, RateLimitWaitError)):
        return str(exc), 1  # these messages say what happened and what to do already
    return None


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: run the app and turn exceptions into one clear line."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or os.environ.get("PERSONAS_DEBUG") == "1"
    try:
        return app(args=argv, standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:
        if debug:
            raise
        known = error_line(exc)
        if known is not None:
            _fail(*known)
        first = (str(exc).strip().splitlines() or [""])[0]
        _fail(f"{type(exc).__name__}: {first} (run with --debug for the traceback)", 1)
    return None


if __name__ == "__main__":
    main()
