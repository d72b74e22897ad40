"""``personas sandbox serve``: the Klaviyo sandbox as a local HTTP server."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run the Klaviyo sandbox (a stateful emulator of Klaviyo's API).", no_args_is_help=True)


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8787, "--port", help="Port to listen on."),
    seed: int = typer.Option(42, "--seed", help="Seed for the demo data and ids."),
    state: str = typer.Option(None, "--state", help="SQLite file to keep state in across restarts."),
    empty: bool = typer.Option(False, "--empty", help="Start without demo data."),
    rate_limit_factor: float = typer.Option(1.0, "--rate-limit-factor", help="Scale every rate limit."),
    no_rate_limits: bool = typer.Option(False, "--no-rate-limits", help="Turn rate limits off."),
    realistic: bool = typer.Option(
        False, "--realistic",
        help="Klaviyo's timing too: events, merges and client subscriptions show after a few seconds, "
             "bulk jobs take longer (POST /sandbox/settle finishes everything pending).",
    ),
) -> None:
    """Serve the sandbox; point KLAVIYO_BASE_URL at it and use the key pk_sandbox_demo."""
    import uvicorn

    from klaviyo_sandbox import DEMO_KEY, PUBLIC_KEY, Sandbox

    sandbox = Sandbox(
        seed=seed, state=state, demo_data=not empty,
        rate_limit_factor=None if no_rate_limits else rate_limit_factor, realistic=realistic,
    )
    counts = {t: sandbox.store.count(t) for t in ("profile", "list", "segment", "campaign", "event", "flow")}
    typer.echo(f"Klaviyo sandbox (revision {sandbox.catalog.revision}, {len(sandbox.catalog)} operations) "
               f"on http://{host}:{port}")
    typer.echo(f"  private key {DEMO_KEY} has every scope; public key (company_id) {PUBLIC_KEY}")
    typer.echo("  keys with chosen scopes: POST /sandbox/keys {\"scopes\": [...]}; inspection: GET /sandbox")
    typer.echo(f"  state: {state or 'memory'}; data: " + ", ".join(f"{n} {t}s" for t, n in counts.items()))
    if realistic:
        typer.echo(f"  realistic timing: asynchronous writes show after {sandbox.consistency_delay:g} s, bulk jobs "
                   f"take {sandbox.job_seconds:g} s; POST /sandbox/settle finishes everything pending")
    typer.echo(f"  export KLAVIYO_BASE_URL=http://{host}:{port} KLAVIYO_API_KEY={DEMO_KEY}")
    try:
        uvicorn.run(sandbox.app, host=host, port=port, log_level="warning")
    finally:
        sandbox.close()
