"""``personas auth``: keys and OAuth tokens in the encrypted vault; rotation and revocation."""

from __future__ import annotations

import getpass
import json
import os

import typer

from .errors import UsageProblem

app = typer.Typer(help="Manage credentials in the encrypted vault ($PERSONAS_HOME/vault.sqlite).", no_args_is_help=True)


def _vault() -> object:
    from klaviyo_toolkit.vault import Vault

    from .common import config

    return Vault(config().path("vault.sqlite"))


@app.command("add-key")
def add_key(
    name: str = typer.Argument(..., help="A name for the credential, e.g. 'prod'."),
    scopes: str = typer.Option("", "--scopes", help="Comma-separated scopes the key was created with."),
    from_env: bool = typer.Option(False, "--from-env", help="Read it from KLAVIYO_API_KEY instead of a prompt."),
) -> None:
    """Store a private API key (asked for without echo, never printed)."""
    from klaviyo_toolkit.vault import Vault

    key = os.environ.get("KLAVIYO_API_KEY", "") if from_env else getpass.getpass("Klaviyo private API key: ")
    if not key.strip():
        raise UsageProblem("no key given" + (" (KLAVIYO_API_KEY is empty)" if from_env else ""))
    vault = _vault()
    assert isinstance(vault, Vault)
    vault.put_api_key(name, key.strip(), [s for s in scopes.split(",") if s])
    typer.echo(f"stored {name!r} (encrypted)")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """Credentials in the vault: names, kinds, scopes, dates (no secrets)."""
    from klaviyo_toolkit.vault import Vault

    vault = _vault()
    assert isinstance(vault, Vault)
    rows = [
        {"name": i.name, "kind": i.kind, "scopes": list(i.scopes), "created": str(i.created_at),
         "rotated": str(i.rotated_at) if i.rotated_at else None, "revoked": str(i.revoked_at) if i.revoked_at else None}
        for i in vault.list()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        state = f"revoked {r['revoked']}" if r["revoked"] else "active"
        typer.echo(f"{r['name']:20} {r['kind']:8} {state:28} scopes: {', '.join(r['scopes']) or '-'}")
    if not rows:
        typer.echo("the vault is empty; add a key with `personas auth add-key NAME`")


@app.command("revoke")
def revoke(name: str = typer.Argument(...)) -> None:
    """Revoke a credential: it can no longer be used (re-add or log in again to replace it)."""
    from klaviyo_toolkit.vault import Vault

    vault = _vault()
    assert isinstance(vault, Vault)
    vault.revoke(name)
    typer.echo(f"revoked {name!r}")


@app.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt the vault with a new encryption key (the old one keeps reading until dropped)."""
    from klaviyo_toolkit.vault import Vault

    vault = _vault()
    assert isinstance(vault, Vault)
    vault.rotate_key()
    typer.echo("vault re-encrypted with a new key")
