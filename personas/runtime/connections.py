"""Which Klaviyo connection a persona runs on, and what it may do there.

The rules (the mechanics are the toolkit's :mod:`klaviyo_toolkit.connections`):

- **Which**: ``--connection`` (``build_context(connection=...)``), else the persona's ``connection:``,
  else ``PERSONAS_CONNECTION``; without any, ``KLAVIYO_API_KEY`` from the environment, else the stored
  connection named ``default`` (what ``personas auth login`` makes when given no name).
- **What**: the persona's effective scopes are those it lists that the connection was granted
  (a granted ``x:write`` covers ``x:read``). When the connection lacks a scope **the persona's graph
  itself calls**, loading fails with one line naming the scopes and the login that adds them: the
  run could not do its job and might stop halfway. When it lacks only scopes of the tools offered to
  the model, the persona runs narrowed (those tools are not offered) and a warning says which: a chat
  persona on a read-only key is still useful.
- **When it stops working**: every call checks the connection first. One that was revoked
  (``personas auth revoke``) or needs re-auth (Klaviyo refused its key or refresh token; a 401 marks
  it) raises :class:`~klaviyo_toolkit.errors.ConnectionUnusableError`, which stops the persona using
  it (and no other) with the command that fixes it.

Example::

    use = resolve_klaviyo(spec, config)                  # raises the one-line errors above
    toolkit = KlaviyoToolkit(use.client, scopes=use.scopes)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from graphs import graph_spec
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.clock import Clock
from klaviyo_toolkit.connections import Connection, ConnectionHints, ConnectionStore
from klaviyo_toolkit.oauth import OAuthClient, OAuthConfig
from klaviyo_toolkit.scopes import covers, narrow
from klaviyo_toolkit.vault import Vault
from klaviyo_toolkit.vault_keys import ENV_VAULT_KEY, KeyProvider, default_key_provider
from personas.kernel.config import Config
from personas.kernel.errors import UsageProblem
from personas.kernel.spec import PersonaSpec

__all__ = [
    "DEFAULT_CONNECTION",
    "HINTS",
    "KlaviyoUse",
    "app_client",
    "forget_stores",
    "key_provider",
    "missing_scopes",
    "oauth_client",
    "open_store",
    "resolve_klaviyo",
]

log = logging.getLogger("personas.connections")

#: The name ``personas auth login`` gives a connection when none is given; used when nothing else is.
DEFAULT_CONNECTION = "default"
#: How errors about connections tell a CLI user to fix them.
HINTS = ConnectionHints(
    login_key="log in again with `personas auth login {name}` and a valid key",
    login_oauth="log in again with `personas auth login {name} --oauth`",
    unknown="log in with `personas auth login NAME` (add --oauth for OAuth); `personas auth status` lists them",
    restart="start the command again to run on its new login (`personas auth status {name}` shows it)",
)

_STORES: dict[tuple[str, str | None], ConnectionStore] = {}
_STORES_LOCK = threading.Lock()


def key_provider(config: Config) -> KeyProvider:
    """The vault key's home for this state folder: OS keyring, else ``PERSONAS_VAULT_KEY``, else a 0600 file."""
    environ = {ENV_VAULT_KEY: config.vault_key} if config.vault_key else {}
    return default_key_provider(config.ensure_home(), environ)


def open_store(config: Config) -> ConnectionStore:
    """The connections of this state folder (``vault.sqlite``); one store per folder per process."""
    path = config.path("vault.sqlite")
    key = (str(path), config.vault_key)
    with _STORES_LOCK:
        if key not in _STORES:
            _STORES[key] = ConnectionStore(Vault(path, key_provider(config)), hints=HINTS)
        return _STORES[key]


def forget_stores() -> None:
    """Close every open store (after the vault key was rotated, or in tests)."""
    with _STORES_LOCK:
        for store in _STORES.values():
            store.vault.close()
        _STORES.clear()


def oauth_client(config: Config, conn: Connection, *, clock: Clock | None = None) -> OAuthClient:
    """The OAuth app (``KLAVIYO_CLIENT_ID``/``KLAVIYO_CLIENT_SECRET``) that holds ``conn``'s grant."""
    return app_client(config, conn.name, conn.client_id, conn.base_url, clock=clock)


def app_client(
    config: Config, name: str, client_id: str | None, base_url: str | None, *, clock: Clock | None = None
) -> OAuthClient:
    """The OAuth app that holds a grant of connection ``name`` made for ``client_id`` on ``base_url``
    (its current grant, or one it held before), to refresh or revoke it; UsageProblem naming the fix
    when ``KLAVIYO_CLIENT_ID``/``KLAVIYO_CLIENT_SECRET`` are unset or name another app."""
    if not config.client_id or not config.client_secret:
        raise UsageProblem(
            f"connection {name!r} is an OAuth grant; set KLAVIYO_CLIENT_ID and KLAVIYO_CLIENT_SECRET "
            "(your Klaviyo app's) so its token can be refreshed or revoked"
        )
    if client_id and client_id != config.client_id:
        raise UsageProblem(
            f"connection {name!r} was authorized for the app {client_id!r}, but KLAVIYO_CLIENT_ID is "
            f"{config.client_id!r}; set that app's id and secret, or log in again with "
            f"`personas auth login {name} --oauth`"
        )
    oauth = OAuthConfig.for_base_url(
        base_url or config.klaviyo_base_url,
        client_id=config.client_id,
        client_secret=config.client_secret,
        redirect_uri="http://127.0.0.1/callback",  # not used to refresh or revoke
    )
    return OAuthClient(oauth, clock=clock)


@dataclass(frozen=True)
class KlaviyoUse:
    """What a run talks to: the client, the persona as it runs there (scopes narrowed), and for whom.

    Attributes:
        connection / account: the stored connection and its account id (None for the sandbox, a client
            passed in code, or ``KLAVIYO_API_KEY``); they go into every audit row.
        notes: warnings for the person running it (scopes the persona lists but may not use here).
        scope_fix: how a tool refused for scopes is to be granted them, when the connection withheld
            some the persona lists (the toolkit's ``scope_fix``): log in again, not edit the persona.
    """

    client: Any
    spec: PersonaSpec
    scopes: list[str]
    connection: str | None = None
    account: str | None = None
    notes: tuple[str, ...] = ()
    scope_fix: Callable[[Sequence[str]], str] | None = None


def resolve_klaviyo(
    spec: PersonaSpec,
    config: Config,
    *,
    connection: str | None = None,
    client: Any = None,
    sandbox: Any = None,
    clock: Clock | None = None,
) -> KlaviyoUse:
    """The Klaviyo side of a run (see the module docstring for the rules).

    Raises:
        UsageProblem: no credentials at all, or the connection lacks scopes the persona's graph calls.
        klaviyo_toolkit.errors.ToolkitUsageError: no connection of that name (lists the stored ones).
        klaviyo_toolkit.errors.ConnectionUnusableError: the connection was revoked or needs re-auth.
    """
    if client is not None:
        return KlaviyoUse(client, spec, list(spec.scopes))
    if sandbox is not None:
        return KlaviyoUse(sandbox.client(), spec, list(spec.scopes))
    name = connection or spec.connection or config.connection
    if name is None and not config.klaviyo_api_key and _has_default(config):
        name = DEFAULT_CONNECTION
    if name is None:
        if not config.klaviyo_api_key:
            raise UsageProblem(
                "No Klaviyo credentials: set KLAVIYO_API_KEY (and KLAVIYO_BASE_URL for a sandbox server), log in "
                "with `personas auth login` (--connection NAME for a named one), or use the embedded sandbox "
                "(--sandbox)"
            )
        kl = KlaviyoClient(api_key=config.klaviyo_api_key, base_url=config.klaviyo_base_url)
        return KlaviyoUse(kl, spec, list(spec.scopes))
    store = open_store(config)
    conn = store.usable(name)
    narrowed, scopes, notes = _scopes_for(spec, conn)
    fix = _scope_fix(spec, conn) if notes else None
    oauth = oauth_client(config, conn, clock=clock) if conn.kind == "oauth" else None
    credentials = store.credentials(name, oauth)
    kl = KlaviyoClient(credentials=credentials, base_url=conn.base_url, hooks=[store.observe(name)])
    for note in notes:
        log.warning(note)
    account = conn.account.id if conn.account else None
    return KlaviyoUse(kl, narrowed, scopes, connection=name, account=account, notes=notes, scope_fix=fix)


def _has_default(config: Config) -> bool:
    if not (config.home / "vault.sqlite").exists():  # never make a vault just to look
        return False
    return open_store(config).find(DEFAULT_CONNECTION) is not None


def _scopes_for(spec: PersonaSpec, conn: Connection) -> tuple[PersonaSpec, list[str], tuple[str, ...]]:
    """The persona narrowed to what ``conn`` was granted; raises when its graph's own calls fall outside."""
    effective, missing = narrow(conn.scopes, spec.scopes)
    if not missing:
        return spec, list(spec.scopes), ()
    catalog = load_catalog(True)
    graph_needs = {s for op in graph_spec(spec.graph).operations for s in catalog.get(op).scopes}
    vital = [s for s in missing if s in graph_needs]
    fix = _login_fix(conn, missing)
    if vital:
        which = "" if vital == list(missing) else f" ({', '.join(vital)} for its graph's own calls)"
        raise UsageProblem(
            f"persona {spec.name!r} needs scope(s) {', '.join(missing)} that connection {conn.name!r} was not "
            f"granted{which}; log in again with {fix}, or bind the persona to another connection"
        )
    include = [n for n in spec.tools.include if all(covers(conn.scopes, s) for s in catalog.get(n).scopes)]
    dropped = [n for n in spec.tools.include if n not in include]
    tools = spec.tools.model_copy(update={"include": include})
    narrowed = spec.model_copy(update={"scopes": list(effective), "tools": tools})
    left_out = f"; tools left out: {', '.join(dropped)}" if dropped else ""
    note = (
        f"persona {spec.name!r} runs without scope(s) {', '.join(missing)}: connection {conn.name!r} was not "
        f"granted them{left_out}. To add them, log in again with {fix}"
    )
    return narrowed, list(effective), (note,)


def _login_fix(conn: Connection, missing: Sequence[str]) -> str:
    """The login that grants ``conn`` the ``missing`` scopes besides its own (a command, quoted)."""
    wanted = " ".join(sorted({*(s for s in conn.scopes if s != "*"), *missing}))
    login = f"personas auth login {conn.name}" + (" --oauth" if conn.kind == "oauth" else "")
    return f"`{login} --scopes '{wanted}'`" + ("" if conn.kind == "oauth" else " with a key that has them")


def _scope_fix(spec: PersonaSpec, conn: Connection) -> Callable[[Sequence[str]], str]:
    """The toolkit's ``scope_fix`` for ``spec`` on ``conn``: scopes the persona lists were withheld by
    the connection (log in again); others are the persona's to list (its file's ``scopes:``).

    A persona's scopes are deny-by-default and read exactly (one listing only ``x:write`` may not
    read ``x``), unlike a connection's grant, where ``x:write`` covers ``x:read``: so "lists them"
    is membership, never :func:`covers`, or a persona missing ``x:read`` is told to log in again."""

    def fix(missing: Sequence[str]) -> str:
        withheld = [s for s in missing if s in spec.scopes]
        if len(withheld) == len(missing):
            return (f"persona {spec.name!r} lists them, but connection {conn.name!r} was not granted them: "
                    f"log in again with {_login_fix(conn, missing)}")
        if not withheld:
            return f"add them to persona {spec.name!r}'s scopes (its file's scopes:) to use it"
        unlisted = ", ".join(s for s in missing if s not in withheld)
        return (f"add {unlisted} to persona {spec.name!r}'s scopes (its file's scopes:), and log in again with "
                f"{_login_fix(conn, withheld)} (connection {conn.name!r} was not granted {', '.join(withheld)})")

    return fix


def missing_scopes(spec: PersonaSpec, conn: Connection) -> list[str]:
    """The persona's scopes that ``conn`` does not cover (for ``personas auth status``)."""
    return list(narrow(conn.scopes, spec.scopes)[1])
