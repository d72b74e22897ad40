"""``personas sandbox serve``: the Klaviyo sandbox as a local HTTP server."""

from __future__ import annotations

import contextlib
import errno
import socket
from pathlib import Path

import typer

from personas.kernel.errors import UsageProblem

from .common import command_group, file_target

app = command_group("Run the Klaviyo sandbox (a stateful emulator of Klaviyo's API).", no_args_is_help=True)


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8787, "--port", help="Port to listen on."),
    seed: int = typer.Option(42, "--seed", help="Seed for the demo data and ids."),
    state: str = typer.Option(None, "--sandbox-state", help="SQLite file to keep state in across restarts."),
    empty: bool = typer.Option(False, "--empty", help="Start without demo data."),
    rate_limit_factor: float = typer.Option(1.0, "--rate-limit-factor", help="Scale every rate limit."),
    no_rate_limits: bool = typer.Option(False, "--no-rate-limits", help="Turn rate limits off."),
    realistic: bool = typer.Option(
        False,
        "--realistic",
        help="Klaviyo's timing too: events, merges and client subscriptions show after a few seconds, "
        "bulk jobs take longer (POST /sandbox/settle finishes everything pending).",
    ),
) -> None:
    """Serve the sandbox; point KLAVIYO_BASE_URL at it and use the key pk_sandbox_demo."""
    import uvicorn

    from klaviyo_sandbox import DEMO_KEY, PUBLIC_KEY, Sandbox

    state = state_file(state)
    listener = bind(host, port)  # before anything is printed: a port that cannot be had is a one-line error

    sandbox = Sandbox(
        seed=seed,
        state=state,
        demo_data=not empty,
        rate_limit_factor=None if no_rate_limits else rate_limit_factor,
        realistic=realistic,
    )
    counts = {t: sandbox.store.count(t) for t in ("profile", "list", "segment", "campaign", "event", "flow")}
    typer.echo(
        f"Klaviyo sandbox (revision {sandbox.catalog.revision}, {len(sandbox.catalog)} operations) "
        f"on http://{host}:{port}"
    )
    typer.echo(f"  private key {DEMO_KEY} has every scope; public key (company_id) {PUBLIC_KEY}")
    typer.echo('  keys with chosen scopes: POST /sandbox/keys {"scopes": [...]}; inspection: GET /sandbox')
    typer.echo(f"  state: {state or 'memory'}; data: " + ", ".join(f"{n} {t}s" for t, n in counts.items()))
    if realistic:
        typer.echo(
            f"  realistic timing: asynchronous writes show after {sandbox.consistency_delay:g} s, bulk jobs "
            f"take {sandbox.job_seconds:g} s; POST /sandbox/settle finishes everything pending"
        )
    typer.echo(f"  export KLAVIYO_BASE_URL=http://{host}:{port} KLAVIYO_API_KEY={DEMO_KEY}")
    try:
        server = uvicorn.Server(uvicorn.Config(sandbox.app, log_level="warning"))
        server.run(sockets=[listener])
    finally:
        listener.close()
        sandbox.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a UsageProblem that says what to do."""
    if not 1 <= port <= 65535:
        raise UsageProblem(f"--port {port} is not a port; give one from 1 to 65535 (e.g. --port 8787)")
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise UsageProblem(f"--host {host!r} is not an address of this machine; use 127.0.0.1 or 0.0.0.0") from None
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageProblem(
                f"port {port} on {host} is already in use; stop what uses it or pick another with --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise UsageProblem(f"port {port} needs more privileges; pick one above 1023 with --port") from None
        raise UsageProblem(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --host/--port") from None
    sock.listen(128)
    return sock


def state_file(path: str | None) -> str | None:
    """A ``--sandbox-state`` path that SQLite can open or create, or a UsageProblem naming it.

    Checked before any banner is printed (``personas run``, ``personas demo``, ``personas sandbox
    serve``): SQLite's own error ("unable to open database file") names neither the file nor the fix.
    """
    if not path:
        return path
    target = file_target(path, f"--sandbox-state {path}", "sandbox.sqlite", read=True)
    if target.exists() and target.stat().st_size > 0:
        _is_sandbox_state(path, target)
    return path


#: The tables a sandbox state file holds (``klaviyo_sandbox._store``).
_STATE_TABLES = {"resources", "kv"}


def _is_sandbox_state(path: str, target: Path) -> None:
    """An existing file must be a sandbox's state: not another kind of file, and not another SQLite
    database (the audit log, checkpoints), which the sandbox would otherwise fill with its tables."""
    import sqlite3

    with target.open("rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise UsageProblem(
                f"--sandbox-state {path}: not a sandbox state file (not an SQLite database); give a new "
                "file name, or a file an earlier --sandbox-state made"
            )
    try:
        # as a URI, so the path is percent-encoded: a '#' or '?' in the name would otherwise end it there
        with contextlib.closing(sqlite3.connect(f"{target.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise UsageProblem(f"--sandbox-state {path}: cannot be read as a sandbox state file ({exc})") from None
    if tables and not tables >= _STATE_TABLES:
        raise UsageProblem(
            f"--sandbox-state {path}: an SQLite database of something else (tables: {', '.join(sorted(tables)[:5])}); "
            "give a new file name, or a file an earlier --sandbox-state made"
        )
