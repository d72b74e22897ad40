"""``personas auth``: connections to Klaviyo accounts (a private key or OAuth), their health, revocation, the vault key.

::

    personas auth login [NAME] [--scopes S]         a private key (KLAVIYO_API_KEY, else asked for, hidden)
    personas auth login [NAME] --oauth --scopes S   OAuth in a browser; the redirect comes to 127.0.0.1
    personas auth status [NAME] [--json]            account, scopes, expiry, last refresh, health, previous
                                                    grants still to revoke; no secrets
    personas auth revoke NAME [--local]             end the grant at Klaviyo (OAuth), erase the secret here
    personas auth revoke NAME --previous            end the grants NAME held before a new login replaced them
    personas auth remove NAME                       forget a connection (revoking it first)
    personas auth rotate-key [--retire-old]         re-encrypt every secret under a new vault key

Connections live in ``$PERSONAS_HOME/vault.sqlite``, secrets encrypted with the vault key (OS keyring,
else ``PERSONAS_VAULT_KEY``, else ``$PERSONAS_HOME/vault.key``). A persona uses one by ``connection:``
in its YAML or ``--connection`` on ``run``/``chat``; ``login`` with no NAME makes ``default``.

A login over an OAuth grant (again with ``--oauth``, or with a key) revokes the old grant at Klaviyo once
the new credential is stored; when Klaviyo cannot be reached the old grant's tokens stay encrypted in
the vault, ``status`` lists them, and ``revoke NAME --previous`` tries again.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

import typer

from .common import command_group

app = command_group(
    "Connections to Klaviyo accounts: log in (key or OAuth), status, revoke, vault key.", no_args_is_help=True
)


def _echo(text: str = "") -> None:
    typer.echo(text)
    sys.stdout.flush()


def _warn(text: str) -> None:
    typer.echo(f"warning: {text}", err=True)


def _read_key(name: str | None) -> str:
    """``KLAVIYO_API_KEY``, else a hidden prompt (a terminal), else one line of standard input.

    With no terminal and nothing on standard input there is no way to give a key by running the
    same command again: the error says the ways there are.
    """
    import getpass

    from personas.kernel.errors import UsageProblem

    from .common import config

    if config().klaviyo_api_key:
        _echo("using the private key in KLAVIYO_API_KEY")
        return config().klaviyo_api_key or ""
    if sys.stdin.isatty():
        return getpass.getpass("Klaviyo private key (input hidden): ")
    line = sys.stdin.readline()
    if not line.strip():
        command = "personas auth login" + (f" {name}" if name else "")
        raise UsageProblem(
            f"no private key given and no terminal to ask for one; nothing was stored. Set KLAVIYO_API_KEY to the key "
            f"and run `{command}` again, pipe the key on standard input "
            f"(`{command} < keyfile`), or run `{command}` in a terminal to be asked for it"
        )
    return line


def _where_key(provider: Any) -> str:
    kind = type(provider).__name__
    if kind == "KeyringKeyProvider":
        return "the OS keyring"
    if kind == "EnvKeyProvider":
        return "PERSONAS_VAULT_KEY"
    return str(getattr(provider, "path", kind))


def _scopes_text(scopes: tuple[str, ...] | list[str]) -> str:
    return "all (full-access key)" if "*" in scopes else " ".join(scopes) or "-"


def _when(value: str | None) -> str:
    return value.replace("T", " ").replace("+00:00", "Z") if value else "-"


@app.command("login")
def login(
    name: str = typer.Argument(None, help="A name for the connection, e.g. acme-prod (default: 'default')."),
    oauth: bool = typer.Option(False, "--oauth", help="Authorize in a browser (your Klaviyo app, KLAVIYO_CLIENT_ID)."),
    scopes: str = typer.Option(
        None, "--scopes", help="Scopes, comma- or space-separated: asked for (OAuth), or the key's (a private key)."
    ),
    port: int = typer.Option(0, "--port", help="OAuth: the local port for the redirect (0: a free one)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="OAuth: print the URL, do not open a browser."),
    timeout: float = typer.Option(300.0, "--timeout", help="OAuth: seconds to wait for the approval."),
    replace: bool = typer.Option(False, "--replace", help="Let NAME move to another Klaviyo account."),
) -> None:
    """Connect to a Klaviyo account: with a private key (checked, then verified) or with OAuth (--oauth)."""
    from personas.runtime.auth import check_login, login_with_key, login_with_oauth

    from .common import config

    cfg = config()
    check_login(name, scopes, oauth=oauth)  # a wrong name or scope fails before anything is asked for
    if oauth:

        def show(url: str) -> None:
            _echo("Open this URL in a browser and approve the app (waiting for Klaviyo's redirect):")
            _echo(f"  {url}")
            if not no_browser and sys.stdout.isatty():
                import webbrowser

                webbrowser.open(url)

        result = login_with_oauth(cfg, name, scopes, show_url=show, port=port, timeout=timeout, replace=replace)
    else:
        result = login_with_key(cfg, name, _read_key(name), scopes=scopes, replace=replace)
    conn = result.connection
    account = f"{conn.account}, time zone {conn.account.timezone or '?'}" if conn.account else "an unknown account"
    kind = "OAuth grant" if conn.kind == "oauth" else "private key"
    again = f" (replaced the previous {result.replaced.kind.replace('_', ' ')})" if result.replaced else ""
    _echo(f"logged in as {conn.name!r}{again}: {kind} for {account}")
    _echo(f"  scopes: {_scopes_text(conn.scopes)}")
    if conn.expires_at:
        _echo(f"  access token expires {_when(conn.as_dict()['expires_at'])}; it refreshes itself before then")
    store_where = cfg.home / "vault.sqlite"
    from personas.runtime.connections import open_store

    _echo(f"  stored encrypted in {store_where} (vault key: {_where_key(open_store(cfg).vault.key_provider)})")
    for note in result.notes:
        _echo(f"  note: {note}")
    for warning in result.warnings:
        _warn(warning)
    hint = "" if conn.name == "default" else f" --connection {conn.name}"
    _echo(f"Use it with: personas run PERSONA{hint} ..., or `connection: {conn.name}` in a persona's YAML")


@app.command("status")
def status(
    name: str = typer.Argument(None, help="Only this connection."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Every connection: account, scopes granted, expiry, last refresh, health (never a secret)."""
    from personas.runtime.connections import missing_scopes, open_store
    from personas.runtime.loader import scan_personas

    from .common import config

    cfg = config()
    if not (cfg.home / "vault.sqlite").exists():
        if as_json:
            _echo("[]")
            return
        _echo("no connections yet; log in with `personas auth login NAME` (a private key) "
              "or `personas auth login NAME --oauth`")  # fmt: skip
        return
    store = open_store(cfg)
    conns = [store.get(name)] if name else store.list()
    personas = scan_personas(cfg.home).personas.values()
    previous = Counter(g.name for g in store.retired(name))
    rows = []
    for conn in conns:
        row = conn.as_dict()
        row["previous_grants"] = previous.pop(conn.name, 0)
        row["personas"] = [
            {"name": p.name, "missing_scopes": missing_scopes(p, conn)} for p in personas if p.connection == conn.name
        ]
        rows.append(row)
    if as_json:
        _echo(json.dumps(rows, indent=1))
        return
    for gone, count in previous.items():  # grants of connections removed since
        _echo(f"{gone} (removed): {count} previous OAuth grant(s) still to be revoked at Klaviyo; "
              f"run `personas auth revoke {gone} --previous`")  # fmt: skip
    if not rows:
        _echo("no connections; log in with `personas auth login NAME` or `personas auth login NAME --oauth`")
        return
    _table(rows)
    hint = store.vault.key_hint() if not all(row["readable"] for row in rows) else None
    for row in rows:
        if row["status"] == "active" and not row["readable"]:
            _echo(f"{row['name']}: the vault key from {_where_key(store.vault.key_provider)} cannot open its secret; "
                  f"{hint or 'use the key the vault was written with'}")  # fmt: skip
        if row["status"] != "active":
            fix = f"personas auth login {row['name']}" + (" --oauth" if row["kind"] == "oauth" else "")
            why = row["reason"] or ""
            _echo(f"{row['name']}: {row['health']} since {_when(row['status_at'])}: {why}; log in again with `{fix}`")
        if row["previous_grants"]:
            _echo(f"{row['name']}: {row['previous_grants']} previous OAuth grant(s) still to be revoked at Klaviyo "
                  f"(where they still work); run `personas auth revoke {row['name']} --previous`")  # fmt: skip
        for p in row["personas"]:
            if p["missing_scopes"]:
                _echo(f"{row['name']}: persona {p['name']} lists scopes it was not granted: "
                      f"{', '.join(p['missing_scopes'])}")  # fmt: skip
    _echo(f"vault: {cfg.home / 'vault.sqlite'} (vault key: {_where_key(store.vault.key_provider)})")


def _table(rows: list[dict[str, Any]]) -> None:
    head = ("NAME", "KIND", "ACCOUNT", "SCOPES", "EXPIRES", "LAST REFRESH", "HEALTH")
    lines = []
    for r in rows:
        acct = r["account"] or {}
        account = f"{acct['name']} ({acct['id']})" if acct.get("name") else acct.get("id", "-")
        tz = f", {acct['timezone']}" if acct.get("timezone") else ""
        scopes = "all" if "*" in r["scopes"] else ",".join(r["scopes"])
        refreshed = "-" if r["kind"] != "oauth" else _when(r["refreshed_at"]) if r["refreshed_at"] else "never"
        lines.append((r["name"], r["kind"], account + tz, scopes, _when(r["expires_at"]), refreshed, r["health"]))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=False)]
    for line in (head, *lines):
        _echo("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=False)).rstrip())


@app.command("revoke")
def revoke(
    name: str = typer.Argument(..., help="The connection to revoke."),
    local: bool = typer.Option(False, "--local", help="Only erase the secret here (do not call Klaviyo)."),
    previous: bool = typer.Option(
        False, "--previous", help="Only end the OAuth grants NAME held before (a login could not revoke them)."
    ),
) -> None:
    """Revoke a connection: end its OAuth grant at Klaviyo, erase its secret here; safe to repeat."""
    from personas.runtime.auth import revoke_connection

    from .common import config

    if previous:
        _revoke_previous(name, strict=True)
        return
    done = revoke_connection(config(), name, local_only=local)
    if not local:
        _revoke_previous(name, strict=False)
    conn = done.connection
    if not done.changed:
        _echo(f"{name!r} was already revoked (at {_when(conn.as_dict()['status_at'])}); nothing to do")
        return
    if conn.kind == "oauth":
        where = "ended its OAuth grant at Klaviyo and erased its tokens here" if done.at_klaviyo else (
            "erased its tokens here (Klaviyo was not called: the grant may still be alive there until the app "
            "is removed in Klaviyo)")  # fmt: skip
    else:
        where = ("erased its private key here; the key itself works at Klaviyo until you delete it there "
                 "(Settings > API keys)")  # fmt: skip
    _echo(f"revoked {name!r}: {where}; personas using it stop at their next call")


@app.command("remove")
def remove(name: str = typer.Argument(..., help="The connection to forget.")) -> None:
    """Forget a connection entirely (revoking it first if it is still active)."""
    from personas.runtime.auth import revoke_connection
    from personas.runtime.connections import open_store

    from .common import config

    done = revoke_connection(config(), name)
    _revoke_previous(name, strict=False)
    open_store(config()).remove(name)
    first = " (revoked it first)" if done.changed else ""
    _echo(f"removed {name!r}{first}")


def _revoke_previous(name: str, *, strict: bool) -> None:
    """End at Klaviyo the grants ``name`` held before; what fails is an error (``strict``: the command
    asked for nothing else) or a warning, each naming the command that tries again."""
    from personas.runtime.auth import LoginFailed, revoke_previous_grants

    from .common import config

    done = revoke_previous_grants(config(), name)
    if done.ended:
        _echo(f"revoked {done.ended} previous OAuth grant(s) of {name!r} at Klaviyo and erased their tokens here")
    elif strict and not done.failed:
        _echo(f"{name!r} has no previous OAuth grant waiting to be revoked; nothing to do")
    if done.failed:
        why = "; ".join(done.failed)
        message = (f"could not revoke {len(done.failed)} previous OAuth grant(s) of {name!r} at Klaviyo ({why}); "
                   f"they still work there and stay encrypted in the vault: run `personas auth revoke {name} "
                   "--previous` again")  # fmt: skip
        if strict:
            raise LoginFailed(message, exit_code=1)
        _warn(message)


@app.command("rotate-key")
def rotate_key(
    retire_old: bool = typer.Option(
        False, "--retire-old", help="Drop the old vault key once everything is re-encrypted."
    ),
) -> None:
    """Re-encrypt every stored secret under a new vault key, in one transaction; optionally retire the old key."""
    from personas.runtime.auth import rotate_vault_key

    from .common import config

    done = rotate_vault_key(config(), retire=retire_old)
    kept = ("the old key was retired" if done.retired
            else "the old key is kept to read older backups (add --retire-old to drop it)")  # fmt: skip
    if done.where == "PERSONAS_VAULT_KEY":
        _echo(f"re-encrypted {done.reencrypted} secret(s) under the first key in PERSONAS_VAULT_KEY")
    else:
        _echo(f"re-encrypted {done.reencrypted} secret(s) under a new vault key (kept in {done.where}); {kept}")
    if done.todo:
        _echo(f"to finish: {done.todo}")
