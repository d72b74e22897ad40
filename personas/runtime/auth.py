"""Logging in, revoking and re-keying: the flows behind ``personas auth``, with their one-line errors.

Every flow checks everything before it writes: a malformed key, an unknown scope, a key Klaviyo
rejects, an unreachable server, a denied or forged OAuth redirect all fail with one line that says
what to do, and leave the stored connections as they were ("nothing was stored"). A 429 on the
account check (Klaviyo allows one ``get_accounts`` a second) is waited out and asked again, within the
client's usual retry budget, so logins run back to back succeed.

- :func:`login_with_key`: the key's shape, then ``get_accounts`` with it (which names the account);
- :func:`login_with_oauth`: authorization code with PKCE; the redirect comes to a listener on
  127.0.0.1; ``state`` is checked; the code is exchanged; ``get_accounts`` names the account;
- :func:`revoke_connection`: Klaviyo's revoke endpoint (OAuth), then the local secret is erased;
- :func:`revoke_previous_grants`: the grants a connection held before a new login (OAuth or a key)
  replaced them, revoked at Klaviyo. Every login over an OAuth grant runs it once the new credential is
  stored; what it cannot revoke (Klaviyo down, no app credentials) stays encrypted in the vault, and
  the login says so and names the command that tries again (``personas auth revoke NAME --previous``);
- :func:`rotate_vault_key`: every secret re-encrypted under a new vault key in one transaction.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from klaviyo_toolkit.auth import BearerToken
from klaviyo_toolkit.client import KlaviyoClient, RetryPolicy
from klaviyo_toolkit.connections import (
    Account,
    Connection,
    Revocation,
    check_key_shape,
    check_name,
    fetch_account,
    is_klaviyo,
)
from klaviyo_toolkit.errors import (
    AuthenticationError,
    ClientError,
    KlaviyoAPIError,
    RateLimitError,
    ToolkitUsageError,
    TransportError,
    UnknownScopeError,
)
from klaviyo_toolkit.oauth import OAuthClient, OAuthConfig, TokenSet, authorization_url, new_state, pkce_pair
from klaviyo_toolkit.oauth_loopback import LoopbackRedirect, RedirectError, RedirectTimeout
from klaviyo_toolkit.scopes import ALL_SCOPES, covers, parse_scopes
from klaviyo_toolkit.vault_keys import ENV_VAULT_KEY, GENERATE_HINT, EnvKeyProvider
from personas.kernel.config import Config
from personas.kernel.errors import UsageProblem

from .connections import DEFAULT_CONNECTION, app_client, oauth_client, open_store

__all__ = [
    "ACCOUNT_SCOPE",
    "LoginFailed",
    "LoginResult",
    "PreviousGrants",
    "check_login",
    "Rotation",
    "login_with_key",
    "login_with_oauth",
    "revoke_connection",
    "revoke_previous_grants",
    "rotate_vault_key",
]

#: Asked for on every OAuth login, so the connection knows its account.
ACCOUNT_SCOPE = "accounts:read"
_NOTHING = "nothing was stored"
#: How the account check of a login retries: the client's usual budget. A 429 (Klaviyo allows one
#: ``get_accounts`` a second per account) was not processed, so it is waited out, honouring
#: ``Retry-After``; a 401 or 403 is never retried.
_CHECK_RETRY = RetryPolicy()


class LoginFailed(UsageProblem):
    """A login, revoke or rotation that changed nothing; ``exit_code`` 2 for bad input, 1 for a failure
    of the network or of Klaviyo."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class LoginResult:
    """A stored connection, the one it replaced (if any), and what the person should know: ``notes``,
    and ``warnings`` for what needs doing (a previous grant that could not be revoked)."""

    connection: Connection
    replaced: Connection | None
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreviousGrants:
    """What :func:`revoke_previous_grants` did: how many grants it revoked at Klaviyo, and why each of
    the others could not be (one clause each; they stay in the vault to try again)."""

    ended: int
    failed: tuple[str, ...] = ()


def _scopes(value: str | Sequence[str] | None, name: str, oauth: bool) -> tuple[str, ...]:
    """The scopes asked for; () when ``--scopes`` was not given. Given but empty (``--scopes ''``,
    an unset shell variable, ``','``) is refused: it would store a key as full-access."""
    if value is None:
        return ()
    again = f"personas auth login {name}" + (" --oauth" if oauth else "")
    try:
        scopes = parse_scopes(value)
    except UnknownScopeError as exc:
        raise LoginFailed(f"{exc}; {_NOTHING}; fix --scopes and run `{again}` again") from None
    if not scopes:
        raise LoginFailed(
            f"--scopes is empty ({value!r}); list the scopes, comma-separated (e.g. --scopes "
            f"lists:read,profiles:read), or leave --scopes out for a full-access key; {_NOTHING}"
        )
    return scopes


def _name(name: str | None) -> str:
    try:
        return check_name(name or DEFAULT_CONNECTION)
    except ToolkitUsageError as exc:
        raise LoginFailed(f"{exc}; {_NOTHING}") from None


def _verify(client: KlaviyoClient, what: str, base_url: str, retry: str) -> Account | None:
    try:
        return fetch_account(client)
    except AuthenticationError:
        raise LoginFailed(f"Klaviyo rejected the {what} (401 from {base_url}); {_NOTHING}; {retry}") from None
    except TransportError as exc:
        cause = exc.__cause__
        why = f"{type(cause).__name__}" if cause is not None else "no answer"
        raise LoginFailed(
            f"cannot reach {base_url} to verify the {what} ({why}); {_NOTHING}; check KLAVIYO_BASE_URL and "
            "your network, then try again",
            exit_code=1,
        ) from None
    except RateLimitError as exc:
        wait = f"in {math.ceil(exc.retry_after):,} s" if exc.retry_after else "in a minute"
        raise LoginFailed(
            f"Klaviyo kept answering 429 (rate limited) when asked for the account, past the retry budget; "
            f"{_NOTHING}; try again {wait}",
            exit_code=1,
        ) from None
    except KlaviyoAPIError as exc:
        raise LoginFailed(
            f"Klaviyo answered {exc.status} when asked for the account ({exc.detail or exc.title or exc.code}); "
            f"{_NOTHING}; try again later",
            exit_code=1,
        ) from None
    finally:
        client.close()


def check_login(name: str | None, scopes: str | Sequence[str] | None, *, oauth: bool) -> tuple[str, tuple[str, ...]]:
    """The connection name (``default`` when none) and the scopes, checked before anything is asked for."""
    checked = _name(name)
    return checked, _scopes(scopes, checked, oauth=oauth)


def _check_replace(existing: Connection | None, account: Account | None, name: str, replace: bool) -> None:
    if existing is None or replace or existing.account is None or account is None:
        return
    if existing.account.id != account.id:
        raise LoginFailed(
            f"connection {name!r} is for account {existing.account}, and this login is for {account}; "
            f"{_NOTHING}; use another name, or add --replace to point {name!r} at the new account"
        )


def login_with_key(
    config: Config,
    name: str | None,
    key: str,
    *,
    scopes: str | Sequence[str] | None = None,
    replace: bool = False,
) -> LoginResult:
    """Check a private key's shape, verify it with ``get_accounts``, and store it as connection ``name``.

    Args:
        scopes: the scopes the key was made with (Klaviyo cannot be asked); none means full access.
        replace: allow ``name`` to move to another account.
    """
    name = _name(name)
    base = config.klaviyo_base_url
    declared = _scopes(scopes, name, oauth=False)
    try:
        key = check_key_shape(key, base)
    except ToolkitUsageError as exc:
        raise LoginFailed(f"{exc}; {_NOTHING}; run `personas auth login {name}` with a private key") from None
    _check_vault(config)
    client = KlaviyoClient(api_key=key, base_url=base, retry=_CHECK_RETRY, timeout=20.0)
    account = _verify(client, "key", base, f"check the key (Klaviyo: Settings > API keys) and run "
                                            f"`personas auth login {name}` again")  # fmt: skip
    if account is None and covers(declared or (ALL_SCOPES,), ACCOUNT_SCOPE):
        said = "--scopes includes accounts:read" if declared else "with no --scopes it would be a full-access key"
        raise LoginFailed(
            f"Klaviyo would not show this key its account (403: it lacks accounts:read), but {said}; give the "
            f"scopes the key was made with: `personas auth login {name} --scopes '...'`; {_NOTHING}"
        )
    store = open_store(config)
    existing = store.find(name)
    _check_replace(existing, account, name, replace)
    conn = store.save_api_key(name, key, base_url=base, account=account, scopes=declared or (ALL_SCOPES,))
    notes = [] if account else ["the key may not read the account (no accounts:read), so its account is unknown"]
    return _after_login(config, conn, existing, notes)


def login_with_oauth(
    config: Config,
    name: str | None,
    scopes: str | Sequence[str] | None,
    *,
    show_url: Callable[[str], None],
    port: int = 0,
    timeout: float = 300.0,
    replace: bool = False,
) -> LoginResult:
    """Authorization code with PKCE through a browser; the redirect comes to 127.0.0.1:``port``.

    ``show_url`` is given the authorization URL once the listener is up (print it, open a browser).
    """
    name = _name(name)
    again = f"run `personas auth login {name} --oauth` again"
    if not 0 <= port <= 65535:
        raise LoginFailed(f"--port {port} is not a port; give one from 1 to 65535 (your app's redirect URL), or 0 "
                          f"for a free one; {_NOTHING}")  # fmt: skip
    if not math.isfinite(timeout) or timeout <= 0:
        raise LoginFailed(f"--timeout {timeout} is not a wait; give the seconds to wait for the approval, e.g. "
                          f"--timeout 300; {_NOTHING}")  # fmt: skip
    asked = _scopes(scopes, name, oauth=True)
    if not asked:
        raise LoginFailed(
            f"say which scopes to ask for, e.g. `personas auth login {name} --oauth --scopes "
            "'campaigns:read metrics:read'` (`personas list` shows what each persona needs); " + _NOTHING
        )
    if not config.client_id or not config.client_secret:
        raise LoginFailed(
            "an OAuth login needs your Klaviyo app: set KLAVIYO_CLIENT_ID and KLAVIYO_CLIENT_SECRET "
            f"(Klaviyo: Settings > Manage apps); {_NOTHING}"
        )
    if not covers(asked, ACCOUNT_SCOPE):
        asked = (*asked, ACCOUNT_SCOPE)
    _check_vault(config)  # before Klaviyo grants anything that could then not be kept
    base = config.klaviyo_base_url
    with LoopbackRedirect(port) as listener:
        app = OAuthConfig.for_base_url(
            base,
            client_id=config.client_id,
            client_secret=config.client_secret,
            redirect_uri=listener.redirect_uri,
            scopes=asked,
        )
        verifier, challenge = pkce_pair()
        state = new_state()
        show_url(authorization_url(app, state, challenge))
        try:
            code = listener.wait(state, timeout)
        except (RedirectError, RedirectTimeout) as exc:
            raise LoginFailed(f"login failed: {exc}; {_NOTHING}; {again}") from None
    with OAuthClient(app) as oauth:
        tokens = _exchange(oauth, code, verifier, base, again)
    client = KlaviyoClient(
        credentials=BearerToken(tokens.access_token), base_url=base, retry=_CHECK_RETRY, timeout=20.0
    )
    account = _verify(client, "new access token", base, again)
    store = open_store(config)
    existing = store.find(name)
    _check_replace(existing, account, name, replace)
    conn = store.save_oauth(name, tokens, base_url=base, account=account, client_id=config.client_id)
    notes = []
    withheld = [s for s in asked if not covers(tokens.scopes, s)]
    if withheld:
        notes.append(f"Klaviyo granted fewer scopes than asked: not {', '.join(withheld)}")
    return _after_login(config, conn, existing, notes)


def _after_login(config: Config, conn: Connection, replaced: Connection | None, notes: list[str]) -> LoginResult:
    """The login's result, once the OAuth grant(s) the new credential replaced were revoked at Klaviyo
    (or, failing that, kept in the vault with a warning that names the command to try again)."""
    done = revoke_previous_grants(config, conn.name)
    if done.ended:
        notes.append("the previous OAuth grant was revoked at Klaviyo" if done.ended == 1 else
                     f"{done.ended} previous OAuth grants were revoked at Klaviyo")  # fmt: skip
    warnings = tuple(
        f"could not revoke the previous OAuth grant of {conn.name!r} at Klaviyo ({why}), so it still works there; "
        f"it is kept encrypted in the vault: run `personas auth revoke {conn.name} --previous` to try again"
        for why in done.failed
    )
    return LoginResult(conn, replaced, tuple(notes), warnings)


def revoke_previous_grants(config: Config, name: str) -> PreviousGrants:
    """Revoke at Klaviyo the OAuth grants connection ``name`` held before (a new login or a key replaced
    them, or the connection was removed), forgetting each once revoked; those that fail stay kept."""
    store = open_store(config)
    ended, failed = 0, []
    for grant in store.retired(name):
        try:
            oauth = app_client(config, name, grant.client_id, grant.base_url)
        except UsageProblem as exc:
            failed.append(str(exc))
            continue
        try:
            ended += int(store.end_retired(grant, oauth))
        except TransportError as exc:
            failed.append(f"cannot reach {describe_base(grant.base_url or '')} ({type(exc.__cause__ or exc).__name__})")
        except KlaviyoAPIError as exc:
            failed.append(f"Klaviyo answered {exc.status}: {str(exc.detail or exc.title or exc.code).rstrip('.')}")
        finally:
            oauth.close()
    return PreviousGrants(ended, tuple(failed))


def _check_vault(config: Config) -> None:
    """Refuse a login the vault would refuse to keep (the vault key given cannot open its entries),
    before Klaviyo is asked: its one-line error names the key that opens them. A first login finds no
    vault and makes none here."""
    if (config.home / "vault.sqlite").exists():
        open_store(config).vault.check_writable()


def _exchange(oauth: OAuthClient, code: str, verifier: str, base: str, again: str) -> TokenSet:
    try:
        return oauth.exchange_code(code, verifier)
    except ClientError as exc:
        raise LoginFailed(
            f"Klaviyo refused the authorization code ({exc.code}: {exc.detail or exc.title}); {_NOTHING}; {again}"
        ) from None
    except (TransportError, KlaviyoAPIError) as exc:
        raise LoginFailed(
            f"cannot reach {base}'s token endpoint ({type(exc).__name__}); {_NOTHING}; check KLAVIYO_BASE_URL and "
            f"your network, then {again.removeprefix('run ')}",
            exit_code=1,
        ) from None


def revoke_connection(config: Config, name: str, *, local_only: bool = False) -> Revocation:
    """End connection ``name``: at Klaviyo (an OAuth grant, unless ``local_only``), then its local secret.

    Idempotent: revoking again changes nothing (``Revocation.changed`` is False).
    """
    store = open_store(config)
    conn = store.get(name)
    oauth: OAuthClient | None = None
    remote = conn.kind == "oauth" and not local_only and bool(conn.fingerprint)
    if remote:
        try:
            oauth = oauth_client(config, conn)
        except UsageProblem as exc:
            raise LoginFailed(
                f"{exc}; or erase only the local secret with `personas auth revoke {name} --local`"
            ) from None
    try:
        return store.revoke(name, oauth=oauth, at_klaviyo=remote)
    except sqlite3.OperationalError:  # the vault's lock, held by a refresh waiting on Klaviyo, or a stuck process
        raise LoginFailed(
            f"the vault stayed locked by another personas process for a minute (a token refresh waiting on "
            f"Klaviyo?); nothing changed; run `personas auth revoke {name}` again",
            exit_code=1,
        ) from None
    except (TransportError, KlaviyoAPIError) as exc:
        detail = exc.detail if isinstance(exc, KlaviyoAPIError) else type(exc.__cause__ or exc).__name__
        raise LoginFailed(
            f"could not revoke {name!r} at Klaviyo ({detail}); nothing changed; try again, or erase only the "
            f"local secret with `personas auth revoke {name} --local`",
            exit_code=1,
        ) from None
    finally:
        if oauth is not None:
            oauth.close()


@dataclass(frozen=True)
class Rotation:
    """What :func:`rotate_vault_key` did: how many secrets were re-encrypted, where the key lives, and
    whether the old keys were retired (or, with ``PERSONAS_VAULT_KEY``, what is left to do)."""

    reencrypted: int
    where: str
    retired: bool
    todo: str | None = None


def rotate_vault_key(config: Config, *, retire: bool = False) -> Rotation:
    """Re-encrypt every secret under a new vault key, atomically; ``retire`` drops the old keys after.

    With the key in ``PERSONAS_VAULT_KEY`` (which cannot be written from here) a new key must be put
    first in the variable by hand; this then re-encrypts under it.
    """
    store = open_store(config)
    vault = store.vault
    provider = vault.key_provider
    if isinstance(provider, EnvKeyProvider):
        if len(provider.load()) < 2:
            raise LoginFailed(
                f"the vault key comes from {ENV_VAULT_KEY}, which personas cannot change: generate a key "
                f"({GENERATE_HINT}), put it first in {ENV_VAULT_KEY} (comma-separated, newest first) and run "
                "`personas auth rotate-key` again; nothing changed"
            )
        count = vault.reencrypt()
        todo = f"remove the old key(s) from {ENV_VAULT_KEY} to retire them" if retire else None
        return Rotation(count, ENV_VAULT_KEY, retired=False, todo=todo)
    count = vault.rotate_key(drop_old_keys=retire)  # other handles re-read the key list when they need it
    kind = type(provider).__name__
    where = {"KeyringKeyProvider": "the OS keyring", "FileKeyProvider": str(getattr(provider, "path", ""))}
    return Rotation(count, where.get(kind, kind), retired=retire)


def describe_base(base_url: str) -> str:
    """``Klaviyo`` or the URL of the server (a sandbox), for messages."""
    return "Klaviyo" if is_klaviyo(base_url) else base_url
