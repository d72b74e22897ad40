"""Connections: named logins to Klaviyo accounts (a private key or an OAuth grant), kept in the vault.

A :class:`Connection` is what is known about one login, none of it secret: which server, which
account (id, name, time zone), the scopes granted, when the token expires and was last refreshed,
and its health. The secret (the key, or the OAuth tokens) sits encrypted in the
:class:`~klaviyo_toolkit.vault.Vault` row of the same name; the facts sit beside it in that row's
``meta``, written in the same transaction.

A connection's life::

    store.save_api_key("acme", key, base_url=..., account=..., scopes=("*",))     active
    credentials = store.credentials("acme")        every call checks its health first
    Klaviyo rejects the key / the refresh token  -> needs_reauth (with the reason)
    store.revoke("acme")                         -> revoked: the secret is erased, the record stays
    store.save_...("acme", ...) again            -> active

An OAuth grant replaced by a new login, by a key, or removed with :meth:`ConnectionStore.remove` is
not dropped: its tokens stay in the vault, encrypted, as a :class:`RetiredGrant` until
:meth:`ConnectionStore.end_retired` has revoked it at Klaviyo (a grant nobody holds must not stay alive).
Revoking and refreshing take the vault's write lock, so a revoke ends the latest refresh token, never
one that a refresh in another process has just rotated away.

A call made with :meth:`ConnectionStore.credentials` on a connection that is not ``active`` raises
:class:`~klaviyo_toolkit.errors.ConnectionUnusableError` before any request, with the fix in the words
the application chose (:class:`ConnectionHints`; a CLI passes its own commands); so does one logged in
again since for another server, account, app or kind, or with fewer scopes (:meth:`check_same`).

Example::

    store = ConnectionStore(Vault(home / "vault.sqlite"))
    key = check_key_shape(typed_key, base_url)
    with KlaviyoClient(api_key=key, base_url=base_url) as kl:
        account = fetch_account(kl)                   # verifies the key; raises if Klaviyo refuses it
    store.save_api_key("acme", key, base_url=base_url, account=account)
    client = KlaviyoClient(credentials=store.credentials("acme"), base_url=base_url)
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as _dt
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from .auth import ApiKey, BearerToken, Credentials, pasted_around
from .errors import (
    AuthenticationError,
    ClientError,
    ConnectionUnusableError,
    PermissionDeniedError,
    RevokedCredentialError,
    ToolkitUsageError,
)
from .scopes import ALL_SCOPES, covers
from .vault import CredentialInfo, OAuthTokensUpdate, TokenSet, Vault

if TYPE_CHECKING:
    from .client import CallRecord, KlaviyoClient
    from .oauth import OAuthClient

__all__ = [
    "Account",
    "Connection",
    "ConnectionHints",
    "ConnectionStore",
    "RetiredGrant",
    "Revocation",
    "check_key_shape",
    "fetch_account",
    "is_klaviyo",
]

Status = Literal["active", "needs_reauth", "revoked"]
KLAVIYO_HOSTS = ("a.klaviyo.com",)
_KEY = re.compile(r"pk_[A-Za-z0-9]{20,64}")
_SANDBOX_KEY = re.compile(r"pk_sandbox_demo|pk_sbx_[0-9a-f]{8,64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
#: Revoke-endpoint errors that mean the token is already dead (Klaviyo's refresh wording included).
_DEAD_TOKEN = frozenset({"invalid_grant", "invalid_grant_type", "invalid_token"})


# -- values --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """The Klaviyo account a connection speaks for (from ``get_accounts``)."""

    id: str
    name: str | None = None
    timezone: str | None = None

    @classmethod
    def from_resource(cls, resource: Mapping[str, Any]) -> Account:
        attributes = resource.get("attributes") or {}
        contact = attributes.get("contact_information") or {}
        return cls(str(resource["id"]), contact.get("organization_name"), attributes.get("timezone"))

    def __str__(self) -> str:
        return f"{self.name} ({self.id})" if self.name else self.id


@dataclass(frozen=True)
class Connection:
    """One stored login, as shown to people: never a secret.

    Attributes:
        kind: ``"api_key"`` or ``"oauth"``.
        base_url: the Klaviyo API (or sandbox) it was made for; its calls go there.
        account: the account the key or grant speaks for (None when the key may not read it).
        scopes: granted scopes (``("*",)``: a key with every scope).
        client_id: the OAuth app that holds the grant.
        status / reason / status_at: ``active``, ``needs_reauth`` or ``revoked``, why and since when.
        logged_in_at / refreshed_at / expires_at: when it was stored, last refreshed, and when the
            current access token expires (OAuth).
        fingerprint: a short non-reversible id of the secret ("" once erased).
        readable: whether the vault's current key opens the secret (False: the vault was written
            with another key; calls with it fail until that key is used).
    """

    name: str
    kind: Literal["api_key", "oauth"]
    base_url: str
    account: Account | None
    scopes: tuple[str, ...]
    client_id: str | None
    status: Status
    reason: str | None
    status_at: _dt.datetime | None
    logged_in_at: _dt.datetime
    refreshed_at: _dt.datetime | None
    expires_at: _dt.datetime | None
    fingerprint: str
    readable: bool = True

    @property
    def all_scopes(self) -> bool:
        return ALL_SCOPES in self.scopes

    @property
    def active(self) -> bool:
        return self.status == "active"

    def health(self, now: _dt.datetime | None = None) -> str:
        """One phrase: ``ok``, ``ok (access token expired; ...)``, ``needs re-auth``, ``revoked`` or
        ``not readable (another vault key)``."""
        if self.status == "needs_reauth":
            return "needs re-auth"
        if self.status == "revoked":
            return "revoked"
        if not self.readable:
            return "not readable (another vault key)"
        now = now or _dt.datetime.now(_dt.UTC)
        if self.expires_at is not None and self.expires_at <= now:
            return "ok (access token expired; refreshes on the next call)"
        return "ok"

    def as_dict(self, now: _dt.datetime | None = None) -> dict[str, Any]:
        """JSON-ready, for ``--json`` output (no secret in it)."""
        out = asdict(self)
        out["account"] = asdict(self.account) if self.account else None
        out["scopes"] = list(self.scopes)
        out["health"] = self.health(now)
        for key in ("status_at", "logged_in_at", "refreshed_at", "expires_at"):
            value = getattr(self, key)
            out[key] = value.isoformat(timespec="seconds") if value else None
        return out


@dataclass(frozen=True)
class Revocation:
    """What :meth:`ConnectionStore.revoke` did: ``changed`` (False: it was revoked already) and
    ``at_klaviyo`` (the OAuth grant was ended at Klaviyo's revoke endpoint too)."""

    connection: Connection
    changed: bool
    at_klaviyo: bool


@dataclass(frozen=True)
class RetiredGrant:
    """An OAuth grant that connection ``name`` held before (replaced by a new login or a key, or the
    connection removed), whose tokens are kept encrypted until it is revoked at Klaviyo. No secret here.

    Attributes:
        id: a non-reversible id of its refresh token.
        client_id / base_url: the app that holds it and the server it was made on (its revoke goes there).
    """

    name: str
    id: str
    client_id: str | None
    base_url: str | None
    retired_at: _dt.datetime


@dataclass(frozen=True)
class ConnectionHints:
    """How to tell someone to fix a connection, in the words of the application using the store.

    ``{name}`` is replaced by the connection's name. The defaults speak Python; a CLI passes its commands.
    """

    login_key: str = "store a new private key with ConnectionStore.save_api_key({name!r}, ...)"
    login_oauth: str = "authorize again and store the tokens with ConnectionStore.save_oauth({name!r}, ...)"
    unknown: str = "store one with ConnectionStore.save_api_key() or ConnectionStore.save_oauth()"
    restart: str = "make a new client with ConnectionStore.credentials({name!r}) to use the new login"

    def login(self, name: str, kind: str) -> str:
        return (self.login_oauth if kind == "oauth" else self.login_key).format(name=name)


# -- checks --------------------------------------------------------------------------------------


def is_klaviyo(base_url: str) -> bool:
    """True when ``base_url`` is Klaviyo's own API (not a sandbox or a proxy)."""
    from urllib.parse import urlsplit

    return (urlsplit(base_url).hostname or "") in KLAVIYO_HOSTS


def check_key_shape(key: str, base_url: str) -> str:
    """The key, stripped, if it has the shape of a Klaviyo private key; never echoes it.

    Klaviyo's private keys are ``pk_`` and 20 to 64 letters and digits. A sandbox's keys
    (``pk_sandbox_demo``, ``pk_sbx_...``) are accepted only when ``base_url`` is not Klaviyo's. A key
    in quotes or after ``KLAVIYO_API_KEY=`` is refused with that fix (:func:`~.auth.pasted_around`).
    """
    key = key.strip()
    if not key:
        raise ToolkitUsageError("no key given")
    slip = pasted_around(key)
    if slip:
        raise ToolkitUsageError(f"the key {slip}")
    if _KEY.fullmatch(key) or (_SANDBOX_KEY.fullmatch(key) and not is_klaviyo(base_url)):
        return key
    if _SANDBOX_KEY.fullmatch(key):
        raise ToolkitUsageError(f"that is a sandbox key, and {base_url} is Klaviyo itself; use a key made in Klaviyo")
    if re.fullmatch(r"[A-Za-z0-9]{6}", key):
        raise ToolkitUsageError("that looks like a public key (site ID); a private key (pk_...) is needed")
    raise ToolkitUsageError(
        "that is not a Klaviyo private key; private keys start with pk_, then 20 to 64 letters and digits "
        "(Klaviyo: Settings > API keys)"
    )


def check_name(name: str) -> str:
    """A connection name: letters, digits, ``-_.``, up to 63 characters, starting with a letter or digit."""
    if not _NAME.fullmatch(name or ""):
        raise ToolkitUsageError(
            f"{name!r} is not a usable connection name: use up to 63 letters, digits, '-', '_' or '.', starting "
            "with a letter or digit, e.g. acme-prod"
        )
    return name


def fetch_account(client: KlaviyoClient) -> Account | None:
    """The account the client's credentials speak for; None when they may not read it (no accounts:read).

    Raises:
        AuthenticationError: Klaviyo rejected the credentials (401).
        TransportError: the server could not be reached.
    """
    try:
        response = client.call("get_accounts")
    except PermissionDeniedError:
        return None
    data = response.data
    first = data[0] if isinstance(data, list) and data else data
    if not isinstance(first, Mapping) or "id" not in first:
        return None
    return Account.from_resource(first)


# -- the store -----------------------------------------------------------------------------------


class ConnectionStore:
    """Named connections over a :class:`Vault` (secrets encrypted in it, facts beside them).

    Also a token store for :class:`~klaviyo_toolkit.oauth.VaultTokenSource` that refuses a
    connection which needs re-auth or was revoked, and marks it "needs re-auth" when a refresh fails.

    Args:
        vault: where the secrets live.
        hints: how errors tell the user to fix things.
    """

    def __init__(self, vault: Vault, *, hints: ConnectionHints | None = None) -> None:
        self.vault = vault
        self.hints = hints or ConnectionHints()

    def __repr__(self) -> str:
        return f"ConnectionStore({self.vault!r})"

    # -- reading -----------------------------------------------------------------------------
    def find(self, name: str) -> Connection | None:
        """The connection called ``name``, or None."""
        try:
            info = self.vault.info(name)
        except ToolkitUsageError:  # no such name
            return None
        return _connection(info, readable=not self.vault.unreadable(name))

    def get(self, name: str) -> Connection:
        """The connection called ``name``; a clear error listing the stored ones when there is none."""
        found = self.find(name)
        if found is None:
            known = ", ".join(c.name for c in self.list()) or "none"
            raise ToolkitUsageError(f"no connection named {name!r} (stored: {known}); {self.hints.unknown}")
        return found

    def list(self) -> list[Connection]:
        shut = set(self.vault.unreadable())
        return [_connection(info, readable=info.name not in shut) for info in self.vault.list()]

    def usable(self, name: str) -> Connection:
        """The connection, if it can make calls now; else ConnectionUnusableError with the fix."""
        conn = self.get(name)
        if not conn.active:
            raise self.unusable(conn)
        return conn

    def unusable(self, conn: Connection) -> ConnectionUnusableError:
        reason = conn.reason or ("its owner revoked it" if conn.status == "revoked" else "Klaviyo refused it")
        return ConnectionUnusableError(
            conn.name,
            status=conn.status if conn.status != "active" else "needs_reauth",
            reason=reason,
            fix=self.hints.login(conn.name, conn.kind),
            revoked_at=conn.status_at,
        )

    def check_same(self, bound: Connection) -> None:
        """ConnectionUnusableError unless ``bound`` is still active and the same login (kind, server, app,
        account; scopes covering its own): a client made for one login must not send a later one's secret
        to its server, act in another account under the first one's name, or outrun narrowed scopes."""
        try:
            now = _connection(self.vault.info(bound.name))
        except ToolkitUsageError:  # removed since: said in the application's words
            now = self.get(bound.name)
        if not now.active:
            raise self.unusable(now)
        if change := _login_change(bound, now):
            why = f"it was logged in again {change} after this client was made"
            fix = self.hints.restart.format(name=bound.name)
            raise ConnectionUnusableError(bound.name, status="changed", reason=why, fix=fix)

    def api_key(self, name: str) -> ApiKey:
        self.usable(name)
        try:
            return self.vault.get_api_key(name)
        except RevokedCredentialError:
            raise self.unusable(self.get(name)) from None

    # -- writing -----------------------------------------------------------------------------
    def save_api_key(
        self,
        name: str,
        key: str,
        *,
        base_url: str,
        account: Account | None,
        scopes: Sequence[str] = (ALL_SCOPES,),
    ) -> Connection:
        """Store a verified private key under ``name`` (replacing what was there), active. An OAuth grant
        it replaces is kept to be revoked (:meth:`retired`, :meth:`end_retired`)."""
        meta = _meta(base_url, account, client_id=None)
        scopes = tuple(scopes) or (ALL_SCOPES,)
        return _connection(self.vault.put_api_key(check_name(name), key, scopes, meta=meta, retire=True))

    def save_oauth(
        self, name: str, tokens: TokenSet, *, base_url: str, account: Account | None, client_id: str
    ) -> Connection:
        """Store the tokens of a new grant under ``name`` (replacing what was there), active. The grant
        it replaces is kept to be revoked at Klaviyo (:meth:`retired`, :meth:`end_retired`)."""
        meta = _meta(base_url, account, client_id=client_id)
        return _connection(self.vault.put_oauth_tokens(check_name(name), tokens, meta=meta, retire=True))

    def mark_needs_reauth(self, name: str, reason: str) -> Connection:
        """Klaviyo refused the connection's credentials: no call is made with it until a new login."""
        conn = self.get(name)
        if conn.status != "active":
            return conn  # the first reason stands
        return _connection(self.vault.revoke(name, status="needs_reauth", reason=reason, status_at=self.vault._now()))

    def revoke(self, name: str, *, oauth: OAuthClient | None = None, at_klaviyo: bool = True) -> Revocation:
        """End the connection: the grant at Klaviyo (OAuth, when ``at_klaviyo``), then the local secret.

        The record stays, marked revoked, so running code and ``list()`` can say what happened. When
        Klaviyo's revoke endpoint fails, the error is raised and nothing changed. Revoking again does
        nothing and says so (``Revocation.changed`` is False). The tokens are read, revoked and erased
        under the vault's write lock, as a refresh holds it from spending a refresh token to storing its
        successor: a refresh in flight finishes first, and the token revoked is the one it stored.

        Raises:
            ToolkitUsageError: an OAuth connection and no ``oauth`` client to reach Klaviyo with.
            TransportError / KlaviyoAPIError: Klaviyo's revoke endpoint failed (nothing changed).
            sqlite3.OperationalError: another process held the vault's lock for longer than a minute.
        """
        conn = self.get(name)
        if conn.status == "revoked" and not conn.fingerprint:
            return Revocation(conn, changed=False, at_klaviyo=False)
        ended = {"status": "revoked", "reason": "its owner revoked it"}
        if conn.kind == "oauth" and at_klaviyo and conn.fingerprint:
            if oauth is None:
                raise ToolkitUsageError(f"revoking {name!r} at Klaviyo needs its app's OAuthClient")
            try:
                with self.vault.update_oauth_tokens(name, revoked_too=True) as update:
                    oauth.end_grant(update.tokens)
                    update.erase(**ended, status_at=self.vault._now())
            except RevokedCredentialError:  # erased by another revoke since get(): nothing left to end
                return Revocation(self.get(name), changed=False, at_klaviyo=False)
            return Revocation(self.get(name), changed=True, at_klaviyo=True)
        info = self.vault.erase(name, **ended, status_at=self.vault._now())
        return Revocation(_connection(info), changed=True, at_klaviyo=False)

    def remove(self, name: str) -> bool:
        """Forget the connection entirely (its secret and its record); an OAuth grant it still holds is
        kept to be revoked at Klaviyo (:meth:`retired`)."""
        return self.vault.delete(name, retire=True)

    # -- grants replaced or removed, until Klaviyo has revoked them ------------------------------
    def retired(self, name: str | None = None) -> builtins.list[RetiredGrant]:
        """The OAuth grants held before by ``name`` (else by any connection), oldest first, that are
        still to be revoked at Klaviyo; no secret in them."""
        return [
            RetiredGrant(r.name, r.id, r.client_id, r.base_url, r.retired_at) for r in self.vault.retired_oauth(name)
        ]

    def end_retired(self, grant: RetiredGrant, oauth: OAuthClient) -> bool:
        """Revoke a retired grant at Klaviyo with its app's ``oauth`` client, then delete its tokens.

        A token Klaviyo calls invalid (expired, revoked) is taken as ended. Returns False when another
        process ended it first.

        Raises:
            TransportError / KlaviyoAPIError: the revoke endpoint failed; the tokens are kept to try again.
        """
        kept = next((r for r in self.vault.retired_oauth(grant.name) if r.id == grant.id), None)
        if kept is None:
            return False
        try:
            oauth.end_grant(kept.tokens)
        except ClientError as exc:
            if exc.code not in _DEAD_TOKEN:
                raise
        return self.vault.forget_retired(grant.name, grant.id)

    # -- a token store for VaultTokenSource ----------------------------------------------------
    def get_oauth_tokens(self, name: str) -> TokenSet:
        self.usable(name)
        try:
            return self.vault.get_oauth_tokens(name)
        except RevokedCredentialError:
            raise self.unusable(self.get(name)) from None

    @contextlib.contextmanager
    def update_oauth_tokens(self, name: str) -> Iterator[OAuthTokensUpdate]:
        try:
            with self.vault.update_oauth_tokens(name) as update:
                yield update
        except RevokedCredentialError:
            raise self.unusable(self.get(name)) from None

    # -- credentials for a client ------------------------------------------------------------
    def credentials(self, name: str, oauth: OAuthClient | None = None) -> Credentials:
        """Credentials that check the connection before every call (so a revoke stops the next call).

        An OAuth connection needs ``oauth`` (the app's :class:`OAuthClient`) to refresh its token.
        """
        conn = self.usable(name)
        if conn.kind == "api_key":
            return _ConnectionKey(self, name, conn)
        if oauth is None:
            raise ToolkitUsageError(f"connection {name!r} is an OAuth grant; its app's OAuthClient is needed")
        from .oauth import VaultTokenSource

        return BearerToken(_ConnectionTokens(self, name, VaultTokenSource(self, name, oauth), conn))

    def observe(self, name: str) -> Any:
        """A client hook that marks the connection "needs re-auth" when Klaviyo answers 401 to it."""

        def hook(record: CallRecord) -> None:
            if isinstance(record.error, AuthenticationError):
                if str(record.error.operation_id or "").startswith("oauth."):
                    # The token endpoint refused this process's app credentials (invalid_client):
                    # its KLAVIYO_CLIENT_ID/SECRET are wrong, the grant is not; other processes go on.
                    return
                what = "key" if self.get(name).kind == "api_key" else "access token, even after a refresh"
                self.mark_needs_reauth(name, f"Klaviyo rejected its {what} (401 on {record.operation_id})")

        return hook


class _ConnectionKey:
    """A private key read from the store; the connection is checked before every request."""

    def __init__(self, store: ConnectionStore, name: str, conn: Connection) -> None:
        self._store = store
        self._name = name
        self._bound = conn
        self._account = conn.account.id if conn.account else name

    def headers(self) -> dict[str, str]:
        self._store.check_same(self._bound)  # an OAuth login since: no key to read
        key = self._store.api_key(self._name)
        self._store.check_same(self._bound)  # a login between the check and the read
        return key.headers()

    @property
    def account_key(self) -> str:
        return f"account:{self._account}"

    def __repr__(self) -> str:
        return f"ConnectionKey({self._name!r})"


class _ConnectionTokens:
    """A refreshing OAuth token source that reports a dead grant as the connection needing re-auth."""

    def __init__(self, store: ConnectionStore, name: str, source: Any, conn: Connection) -> None:
        self._store = store
        self._name = name
        self._source = source
        self._bound = conn
        self._account = conn.account.id if conn.account else name

    def access_token(self) -> str:
        self._store.check_same(self._bound)  # before a refresh could spend another grant's token
        try:
            token = str(self._source.access_token())
        except RevokedCredentialError as exc:  # no refresh token left, or Klaviyo rejected it
            raise self._store.unusable(self._store.mark_needs_reauth(self._name, exc.reason)) from None
        self._store.check_same(self._bound)
        return token

    def invalidate(self) -> None:
        self._source.invalidate()

    @property
    def account_key(self) -> str:
        return f"account:{self._account}"

    def __repr__(self) -> str:
        return f"ConnectionTokens({self._name!r})"


def _login_change(bound: Connection, now: Connection) -> str | None:
    """How ``now`` differs from the login ``bound`` was (a phrase), or None when it is the same login."""
    if now.kind != bound.kind:
        return "with " + ("an OAuth grant" if now.kind == "oauth" else "a private key")
    if now.base_url != bound.base_url:
        return f"for another server ({now.base_url})"
    if now.client_id != bound.client_id:
        return f"for another app ({now.client_id})"
    if (bound.account and bound.account.id) != (now.account and now.account.id):
        return f"for another account ({now.account or 'unknown'})"
    lost = [s for s in bound.scopes if not covers(now.scopes, s)]
    return f"with fewer scopes (without {', '.join(lost)})" if lost else None


def _meta(base_url: str, account: Account | None, *, client_id: str | None) -> dict[str, Any]:
    return {
        "base_url": base_url.rstrip("/"),
        "account": asdict(account) if account else None,
        "client_id": client_id,
        "status": "active",
    }


def _connection(info: CredentialInfo, *, readable: bool = True) -> Connection:
    meta = info.meta
    account = meta.get("account")
    status: Status = meta.get("status") or ("revoked" if info.revoked else "active")
    if status == "active" and info.revoked:  # revoked through the vault directly
        status = "revoked"
    refreshed = meta.get("refreshed_at")
    at = meta.get("status_at")
    return Connection(
        name=info.name,
        kind=info.kind,
        base_url=str(meta.get("base_url") or ""),
        account=Account(**account) if isinstance(account, Mapping) else None,
        scopes=info.scopes,
        client_id=meta.get("client_id"),
        status=status,
        reason=meta.get("reason"),
        status_at=_dt.datetime.fromisoformat(at) if at else info.revoked_at,
        logged_in_at=info.created_at,
        refreshed_at=_dt.datetime.fromisoformat(refreshed) if refreshed else None,
        expires_at=info.expires_at,
        fingerprint=info.fingerprint,
        readable=readable,
    )
