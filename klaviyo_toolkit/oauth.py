"""OAuth2 for Klaviyo apps: authorization code with PKCE, refresh with refresh-token rotation, revoke.

Klaviyo's token endpoint takes a form body and HTTP Basic client authentication; every refresh
returns a *new* refresh token and invalidates the old one. :class:`VaultTokenSource` hides all of it
behind :class:`auth.TokenSource`: it hands out the stored access token, refreshes it shortly before it
expires (or after the client saw a 401), and stores the rotated pair in the vault, holding the vault's
write lock from reading the refresh token to storing its successor so no process ever replays one.

Example::

    config = OAuthConfig(client_id, client_secret, "https://app.example/callback", scopes=("profiles:read",))
    verifier, challenge = pkce_pair()
    state = new_state()
    print(authorization_url(config, state, challenge))          # the user consents in a browser
    code = parse_redirect(redirected_to, state)
    with OAuthClient(config) as oauth:
        vault.put_oauth_tokens("acme", oauth.exchange_code(code, verifier))
        source = VaultTokenSource(vault, "acme", oauth)
        client = KlaviyoClient(credentials=BearerToken(source))

Note:
    Token requests are never retried: a code is single-use, and a refresh whose answer was lost has
    already spent the old refresh token. A lost answer therefore ends the grant (re-authorize).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
import threading
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx

from .auth import mask
from .clock import Clock, SystemClock
from .errors import (
    ClientError,
    KlaviyoAPIError,
    RateLimitError,
    RevokedCredentialError,
    ToolkitUsageError,
    TransportError,
    api_error_from_response,
)
from .redact import register_secret
from .vault import TokenSet

__all__ = [
    "DEFAULT_AUTHORIZE_URL",
    "DEFAULT_REVOKE_URL",
    "DEFAULT_TOKEN_URL",
    "OAuthClient",
    "OAuthConfig",
    "PKCEPair",
    "TokenSet",
    "TokenStore",
    "TokenUpdate",
    "VaultTokenSource",
    "authorization_url",
    "code_challenge",
    "new_state",
    "oauth_endpoints",
    "parse_redirect",
    "pkce_pair",
]

KLAVIYO_API_BASE = "https://a.klaviyo.com"
KLAVIYO_APP_BASE = "https://www.klaviyo.com"
DEFAULT_AUTHORIZE_URL = f"{KLAVIYO_APP_BASE}/oauth/authorize"
DEFAULT_TOKEN_URL = f"{KLAVIYO_API_BASE}/oauth/token"
DEFAULT_REVOKE_URL = f"{KLAVIYO_API_BASE}/oauth/revoke"
#: Token-endpoint errors that mean the refresh token is dead. Klaviyo documents ``invalid_grant_type``
#: for a well-formed refresh whose token "is invalid because it is expired or revoked".
_DEAD_GRANT = frozenset({"invalid_grant", "invalid_grant_type"})


def oauth_endpoints(api_base_url: str = KLAVIYO_API_BASE, app_base_url: str | None = None) -> tuple[str, str, str]:
    """``(authorize_url, token_url, revoke_url)`` for a deployment.

    Klaviyo serves the consent page on www.klaviyo.com and the token endpoints on a.klaviyo.com; a
    local sandbox serves all three from one base URL (the default when ``app_base_url`` is omitted
    for a non-Klaviyo base).
    """
    api = api_base_url.rstrip("/")
    app = (app_base_url or (KLAVIYO_APP_BASE if api == KLAVIYO_API_BASE else api)).rstrip("/")
    return f"{app}/oauth/authorize", f"{api}/oauth/token", f"{api}/oauth/revoke"


@dataclass(frozen=True)
class OAuthConfig:
    """A Klaviyo OAuth app: client credentials, redirect URI, scopes to ask for, and endpoints.

    Copy to change (``config.replace(scopes=...)``); point at a sandbox with :meth:`for_base_url`.

    Example::

        OAuthConfig.for_base_url("http://localhost:8787", client_id="app", client_secret="...",
                                 redirect_uri="http://localhost:8000/callback", scopes=["lists:read"])
    """

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    scopes: tuple[str, ...] = ()
    authorize_url: str = DEFAULT_AUTHORIZE_URL
    token_url: str = DEFAULT_TOKEN_URL
    revoke_url: str = DEFAULT_REVOKE_URL

    def __post_init__(self) -> None:
        scopes: Iterable[str] = self.scopes.split() if isinstance(self.scopes, str) else self.scopes
        object.__setattr__(self, "scopes", tuple(scopes))
        if not self.client_id or not self.client_secret:
            raise ToolkitUsageError("OAuthConfig needs the app's client_id and client_secret (Klaviyo: Manage apps).")
        register_secret(self.client_secret)  # masked wherever it appears, as is the Basic header made of it
        register_secret(base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode("ascii"))

    @classmethod
    def for_base_url(
        cls,
        api_base_url: str,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scopes: Iterable[str] = (),
        app_base_url: str | None = None,
    ) -> OAuthConfig:
        """A config whose endpoints come from :func:`oauth_endpoints` (e.g. a local sandbox)."""
        authorize, token, revoke = oauth_endpoints(api_base_url, app_base_url)
        return cls(client_id, client_secret, redirect_uri, tuple(scopes), authorize, token, revoke)

    def replace(self, **changes: Any) -> OAuthConfig:
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        return (
            f"OAuthConfig(client_id={self.client_id!r}, client_secret='***', redirect_uri={self.redirect_uri!r}, "
            f"scopes={self.scopes!r}, token_url={self.token_url!r})"
        )


# -- the authorization step ------------------------------------------------------------------------


class PKCEPair(NamedTuple):
    """A PKCE code verifier (kept by the app) and its S256 challenge (sent in the authorization URL)."""

    verifier: str
    challenge: str

    def __repr__(self) -> str:
        return f"PKCEPair(verifier='***', challenge={self.challenge!r})"


def code_challenge(verifier: str) -> str:
    """The S256 challenge of a verifier: base64url(sha256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def pkce_pair() -> PKCEPair:
    """A fresh random verifier (86 characters of ``[A-Za-z0-9_-]``) and its challenge."""
    verifier = secrets.token_urlsafe(64)
    return PKCEPair(verifier, code_challenge(verifier))


def new_state() -> str:
    """A random ``state`` value to tie the redirect to this authorization request (CSRF guard)."""
    return secrets.token_urlsafe(32)


def authorization_url(config: OAuthConfig, state: str, code_challenge: str) -> str:
    """Where to send the user to approve the app (authorization code flow, PKCE S256)."""
    if not config.scopes:
        raise ToolkitUsageError("OAuthConfig.scopes is empty; Klaviyo needs the scopes the app asks for.")
    params = {
        "response_type": "code",
        "client_id": config.client_id,
        "redirect_uri": config.redirect_uri,
        "scope": " ".join(config.scopes),
        "state": state,
        "code_challenge_method": "S256",
        "code_challenge": code_challenge,
    }
    sep = "&" if "?" in config.authorize_url else "?"
    return config.authorize_url + sep + urlencode(params, quote_via=quote)


def parse_redirect(url: str, state: str) -> str:
    """The authorization code from the URL Klaviyo redirected the user to, after checking ``state``.

    Raises:
        ToolkitUsageError: the user declined, Klaviyo reported an error, or the state does not match.
    """
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    if "error" in query:
        detail = query.get("error_description", "")
        raise ToolkitUsageError(f"Authorization failed: {query['error']} {detail}".strip() + ". Start it again.")
    if not secrets.compare_digest(query.get("state", ""), state):
        raise ToolkitUsageError(
            "The redirect's state does not match this authorization request (a stale or forged redirect); "
            "start the authorization again."
        )
    code = query.get("code")
    if not code:
        raise ToolkitUsageError("The redirect URL carries no authorization code.")
    return code


# -- the token endpoint ----------------------------------------------------------------------------


#: How often, and for how many seconds in all, a call to the token or revoke endpoint waits out a 429.
THROTTLE_RETRIES = 3
THROTTLE_BUDGET = 60.0


class OAuthClient:
    """Talks to Klaviyo's token and revoke endpoints for one app.

    Args:
        config: the app.
        http_client: an httpx client to use (not closed by ``close()``); or
        transport: a transport for a client made here (``httpx.MockTransport`` in tests).
        clock: turns ``expires_in`` into an absolute expiry.
    """

    def __init__(
        self,
        config: OAuthConfig,
        *,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self._owns_http = http_client is None
        self.http = http_client or httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)
        basic = base64.b64encode(f"{config.client_id}:{config.client_secret}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {basic}", "Accept": "application/json"}

    def __repr__(self) -> str:
        return f"OAuthClient(client_id={self.config.client_id!r}, token_url={self.config.token_url!r})"

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> OAuthClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exchange_code(self, code: str, verifier: str) -> TokenSet:
        """Trade an authorization code (and the PKCE verifier) for tokens."""
        body = self._post(
            self.config.token_url,
            {
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": self.config.redirect_uri,
            },
            "oauth.exchange_code",
        )
        return self._tokens(body, refresh_token=None, scopes=self.config.scopes)

    def refresh(self, refresh_token: str) -> TokenSet:
        """New tokens for a refresh token; the returned set holds the rotated refresh token.

        Raises:
            BadRequestError: with ``code`` ``invalid_grant`` when the refresh token is revoked, expired
                or already used (see VaultTokenSource, which turns that into RevokedCredentialError).
        """
        body = self._post(
            self.config.token_url,
            {"grant_type": "refresh_token", "refresh_token": refresh_token},
            "oauth.refresh",
        )
        return self._tokens(body, refresh_token=refresh_token, scopes=())

    def revoke(self, token: str, *, token_type_hint: str = "refresh_token") -> None:
        """Revoke a refresh token (ending the grant) or an access token at Klaviyo."""
        self._post(self.config.revoke_url, {"token": token, "token_type_hint": token_type_hint}, "oauth.revoke")

    def end_grant(self, tokens: TokenSet) -> None:
        """End the grant ``tokens`` belong to at Klaviyo: revoke its refresh token, else its access token.

        Raises:
            TransportError / KlaviyoAPIError: the revoke endpoint failed; the grant may still be alive.
        """
        if tokens.refresh_token:
            self.revoke(tokens.refresh_token, token_type_hint="refresh_token")
        else:
            self.revoke(tokens.access_token, token_type_hint="access_token")

    def _post(self, url: str, form: Mapping[str, str], operation: str) -> Any:
        """POST ``form``; a 429 (not processed, so any of these calls may go again, a code exchange too)
        is waited out as Klaviyo's ``Retry-After`` says, at most :data:`THROTTLE_RETRIES` times and
        :data:`THROTTLE_BUDGET` seconds in all; then, or on any other error, the typed error."""
        waited = 0.0
        for attempt in range(THROTTLE_RETRIES + 1):
            try:
                return self._post_once(url, form, operation)
            except RateLimitError as exc:
                wait = exc.retry_after if exc.retry_after is not None else 2.0**attempt
                if attempt == THROTTLE_RETRIES or waited + wait > THROTTLE_BUDGET:
                    raise
                self.clock.sleep(wait)
                waited += wait
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _post_once(self, url: str, form: Mapping[str, str], operation: str) -> Any:
        try:
            response = self.http.post(url, data=dict(form), headers=self._headers)
        except httpx.HTTPError as exc:
            kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
            raise TransportError(
                f"{operation}: the request to {url} {kind} ({type(exc).__name__}).", operation_id=operation
            ) from exc
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = response.text  # cut for a message only once redacted (api_error_from_response)
        if response.status_code >= 400:
            if isinstance(body, dict) and "error" in body:  # RFC 6749 error -> the JSON:API shape we map
                body = {"errors": [{"code": str(body["error"]), "title": str(body["error"]),
                                    "detail": str(body.get("error_description") or body["error"])}]}  # fmt: skip
            headers = {k.lower(): v for k, v in response.headers.items()}
            raise api_error_from_response(response.status_code, body, headers, operation_id=operation)
        return body

    def _tokens(self, body: Any, *, refresh_token: str | None, scopes: tuple[str, ...]) -> TokenSet:
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise KlaviyoAPIError(200, code="invalid_token_response", detail="the token response has no access_token")
        token_type = str(body.get("token_type") or "Bearer")
        if token_type.lower() != "bearer":
            raise KlaviyoAPIError(200, code="invalid_token_response", detail=f"unexpected token_type {token_type!r}")
        expires_in = body.get("expires_in")
        scope = body.get("scope")
        return TokenSet(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token") or refresh_token,
            expires_at=self.clock.time() + float(expires_in) if expires_in is not None else None,
            scopes=tuple(scope.split()) if isinstance(scope, str) and scope.strip() else scopes,
            token_type="Bearer",
        )


# -- a refreshing token source ---------------------------------------------------------------------


def _dead_reason(exc: ClientError) -> str:
    return (
        f"Klaviyo rejected its refresh token ({exc.code}): the grant was revoked, the app uninstalled, "
        "or the token expired or was already used"
    )


class TokenUpdate(Protocol):
    """One grant's tokens held for update (the vault's ``OAuthTokensUpdate`` is one)."""

    @property
    def tokens(self) -> TokenSet: ...

    def store(self, tokens: TokenSet) -> None: ...

    def revoked(self) -> bool:
        """True when the entry is now marked revoked or erased (a revoke landed since the update began)."""
        ...

    def revoke(self, reason: str | None = None) -> None: ...


class TokenStore(Protocol):
    """What VaultTokenSource needs from a store (the :class:`~klaviyo_toolkit.vault.Vault` is one)."""

    def get_oauth_tokens(self, name: str) -> TokenSet: ...

    def update_oauth_tokens(self, name: str) -> AbstractContextManager[TokenUpdate]: ...


class VaultTokenSource:
    """An :class:`auth.TokenSource` over a vault entry: current access token, refreshed when due.

    The access token is refreshed when it expires within ``skew`` seconds, or after
    :meth:`invalidate` (the client calls it on a 401). Refreshes are single-flight: threads of this
    process wait for one another on a lock, and processes sharing the vault wait on its write lock
    (:meth:`Vault.update_oauth_tokens`), so the latest refresh token is read, spent and replaced by one
    refresher at a time and a rotated token is never replayed. A revoke takes the same lock
    (:meth:`revoke`, :meth:`ConnectionStore.revoke`), so it ends the latest token, never one a refresh has
    just spent; and a refresh that finds its entry revoked once it has new tokens (a store whose updates
    do not exclude a revoke) revokes those at Klaviyo instead of storing them.

    Raises (from :meth:`access_token`):
        RevokedCredentialError: the entry was revoked in the vault, or Klaviyo rejected the refresh
            token (``invalid_grant``); the entry is then marked revoked.
    """

    def __init__(
        self,
        vault: TokenStore,
        name: str,
        oauth_client: OAuthClient,
        clock: Clock | None = None,
        *,
        skew: float = 60.0,
    ) -> None:
        self.vault = vault
        self.name = name
        self.oauth = oauth_client
        self.clock: Clock = clock or oauth_client.clock
        self.skew = skew
        self._lock = threading.Lock()
        self._handed_out: str | None = None
        self._rejected: str | None = None

    def __repr__(self) -> str:
        return f"VaultTokenSource({self.name!r})"

    @property
    def account_key(self) -> str:
        """Non-secret id for rate-limit buckets (the same entry always maps to the same account)."""
        return f"vault:{self.name}"

    def access_token(self) -> str:
        """A valid access token, refreshing (once, for all threads and processes) when it is due."""
        tokens = self.vault.get_oauth_tokens(self.name)
        if not self._usable(tokens):
            with self._lock:
                tokens = self._refresh()
        self._handed_out = tokens.access_token
        return tokens.access_token

    def invalidate(self) -> None:
        """The last token handed out was rejected (401): the next :meth:`access_token` refreshes."""
        self._rejected = self._handed_out

    def revoke(self) -> None:
        """End the grant at Klaviyo (revoking the refresh token), then mark the vault entry revoked."""
        with self._lock, self.vault.update_oauth_tokens(self.name) as update:
            self.oauth.end_grant(update.tokens)  # the latest: no refresh can rotate it while the lock is held
            update.revoke()

    def _usable(self, tokens: TokenSet) -> bool:
        return tokens.access_token != self._rejected and not tokens.expires_within(self.clock.time(), self.skew)

    def _refresh(self) -> TokenSet:
        dead: ClientError | None = None
        late: str | None = None
        with self.vault.update_oauth_tokens(self.name) as update:
            tokens = update.tokens  # the latest: another thread or process may have refreshed meanwhile
            if self._usable(tokens):
                return tokens
            if not tokens.refresh_token:
                raise RevokedCredentialError(
                    self.name,
                    reason=f"its access token {mask(tokens.access_token)} expired and no refresh token is stored",
                )
            try:
                fresh = self.oauth.refresh(tokens.refresh_token)
            except ClientError as exc:
                if exc.code not in _DEAD_GRANT:
                    raise
                dead, reason = exc, _dead_reason(exc)
                update.revoke(reason)  # committed as the block ends, so other processes fail fast too
            else:
                if update.revoked():  # revoked while the refresh was in flight: the new tokens must not outlive it
                    late = self._end_late(update, fresh)
                else:
                    update.store(fresh)
            fresh = update.tokens
        if dead is not None:
            raise RevokedCredentialError(self.name, reason=_dead_reason(dead)) from dead
        if late is not None:
            raise RevokedCredentialError(self.name, reason=late)
        self._rejected = None
        return fresh

    def _end_late(self, update: TokenUpdate, fresh: TokenSet) -> str:
        """Revoke at Klaviyo the tokens a refresh got for an entry revoked meanwhile; when that fails,
        keep them in the (revoked) entry, where revoking it again finds and ends them. Returns the reason."""
        try:
            self.oauth.end_grant(fresh)
        except (TransportError, KlaviyoAPIError) as exc:
            update.store(fresh)
            update.revoke()
            return (
                f"it was revoked while its token was being refreshed, and the new token could not be revoked at "
                f"Klaviyo ({type(exc).__name__}); it is kept in the revoked entry: revoke it again"
            )
        return "it was revoked while its token was being refreshed; the new token was revoked at Klaviyo too"
