"""OAuth: PKCE authorization, refresh-token rotation, revocation, and a refreshing token source.

The tests talk HTTP to an OAuth backend given by the ``backend`` fixture, parametrized over:

- ``fake``: a fake written below (``httpx.MockTransport``) that applies Klaviyo's rules strictly
  (Basic client auth, form bodies, single-use codes, PKCE S256, refresh tokens that die when rotated
  or revoked);
- ``sandbox``: the sandbox's real ``/oauth`` endpoints, served by uvicorn on a local port, with its
  registered app ``sbx-client`` / ``sbx-secret`` and the backend's ManualClock as its clock (so tokens
  expire on both sides when a test moves time).

Tests that need to reach inside the server use ``backend.fake`` and skip without it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from klaviyo_toolkit.auth import BearerToken
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import (
    AuthenticationError,
    BadRequestError,
    PermissionDeniedError,
    RateLimitError,
    RevokedCredentialError,
    ServerError,
    ToolkitUsageError,
    TransportError,
)
from klaviyo_toolkit.oauth import (
    DEFAULT_AUTHORIZE_URL,
    DEFAULT_REVOKE_URL,
    DEFAULT_TOKEN_URL,
    OAuthClient,
    OAuthConfig,
    TokenSet,
    VaultTokenSource,
    authorization_url,
    code_challenge,
    new_state,
    oauth_endpoints,
    parse_redirect,
    pkce_pair,
)
from klaviyo_toolkit.vault import FileKeyProvider, OAuthTokensUpdate, Vault
from tests.oauth_consent import consent

CLIENT_ID = "6d1c7a52-0000-4c3e-9a3f-client"
CLIENT_SECRET = "cs_" + "S3cr3tS3cr3t" * 3
REDIRECT_URI = "http://localhost:8000/oauth/callback"
SCOPES = ("accounts:read", "lists:read", "profiles:write")
LIFETIME = 3600


# -- the fake Klaviyo OAuth server ------------------------------------------------------------------


def _oauth_error(status: int, error: str, description: str) -> httpx.Response:
    return httpx.Response(status, json={"error": error, "error_description": description})


class FakeKlaviyoOAuth:
    """Klaviyo's OAuth endpoints as a fake: authorize (auto-consent), token, revoke, and one API route.

    Like the sandbox, it treats a replayed (already rotated) refresh token as theft and revokes the
    whole grant, and revoking any token of a grant revokes all of it.
    """

    base_url = "https://oauth.fake.test"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.codes: dict[str, dict[str, str]] = {}
        self.refresh_tokens: dict[str, dict[str, Any]] = {}  # refresh token -> {scope, grant, live}
        self.access_tokens: dict[str, str] = {}  # live access token -> grant

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            route = {
                ("GET", "/oauth/authorize"): self._authorize,
                ("POST", "/oauth/token"): self._token,
                ("POST", "/oauth/revoke"): self._revoke,
                ("GET", "/api/accounts"): self._accounts,
            }.get((request.method, request.url.path))
            return route(request) if route else httpx.Response(404)

    def expire_access_tokens(self) -> None:
        """Make every issued access token invalid at once (as after a server-side expiry)."""
        with self._lock:
            self.access_tokens.clear()

    def _authorize(self, request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        if q.get("response_type") != "code" or q.get("client_id") != CLIENT_ID or q.get("redirect_uri") != REDIRECT_URI:
            return httpx.Response(400, text="bad authorization request")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge") or not q.get("scope"):
            return httpx.Response(400, text="PKCE S256 and scope are required")
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"], "scope": q["scope"]}
        sep = "&" if "?" in REDIRECT_URI else "?"
        return httpx.Response(302, headers={"location": f"{REDIRECT_URI}{sep}code={code}&state={q.get('state', '')}"})

    def _client_ok(self, request: httpx.Request) -> bool:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    def _form(self, request: httpx.Request) -> dict[str, str] | None:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return None
        return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}

    def _issue(self, scope: str, grant: str) -> httpx.Response:
        access, refresh = "at_" + secrets.token_hex(16), "rt_" + secrets.token_hex(24)
        self.access_tokens[access] = grant
        self.refresh_tokens[refresh] = {"scope": scope, "grant": grant, "live": True}
        return httpx.Response(
            200,
            json={
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": LIFETIME,
                "refresh_token": refresh,
                "scope": scope,
            },
        )

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = self._form(request)
        if form is None:
            return _oauth_error(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
        if not self._client_ok(request):
            return _oauth_error(401, "invalid_client", "client authentication failed")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            issued = self.codes.pop(form.get("code", ""), None)  # single use
            if issued is None or issued["redirect_uri"] != form.get("redirect_uri"):
                return _oauth_error(400, "invalid_grant", "unknown or used code")
            verifier = form.get("code_verifier", "")
            if not re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier):
                return _oauth_error(400, "invalid_request", 'Invalid "code_verifier"')
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if digest != issued["challenge"]:
                return _oauth_error(400, "invalid_grant", "Code challenge failed.")
            return self._issue(issued["scope"], grant="g_" + secrets.token_hex(4))
        if grant == "refresh_token":
            info = self.refresh_tokens.get(form.get("refresh_token", ""))
            if info is None:
                return _oauth_error(400, "invalid_grant", "unknown refresh token")
            if not info["live"]:  # a rotated token replayed: revoke the whole grant, as the sandbox does
                self._end_grant(info["grant"])
                return _oauth_error(400, "invalid_grant", "refresh token was already used or revoked")
            info["live"] = False  # rotation: the old one dies
            return self._issue(info["scope"], info["grant"])
        return _oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r}")

    def _revoke(self, request: httpx.Request) -> httpx.Response:
        form = self._form(request)
        if form is None or not self._client_ok(request):
            return _oauth_error(401, "invalid_client", "client authentication failed")
        token = form.get("token", "")
        grant = self.access_tokens.get(token) or self.refresh_tokens.get(token, {}).get("grant")
        if grant:
            self._end_grant(grant)
        return httpx.Response(200)

    def _end_grant(self, grant: str) -> None:
        for info in self.refresh_tokens.values():
            if info["grant"] == grant:
                info["live"] = False
        self.access_tokens = {a: g for a, g in self.access_tokens.items() if g != grant}

    def _accounts(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.access_tokens:
            return httpx.Response(
                401,
                json={
                    "errors": [
                        {
                            "status": "401",
                            "code": "not_authenticated",
                            "detail": "Incorrect authentication credentials.",
                        }
                    ]
                },
            )
        return httpx.Response(200, json={"data": [{"type": "account", "id": "ACME", "attributes": {}}]})


# -- the backend fixture and helpers ----------------------------------------------------------------


class RecordingTransport(httpx.BaseTransport):
    """Passes requests on, keeping (method, path, form) of each; works in front of any backend."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.read().decode(errors="replace")).items()}
        with self._lock:
            self.requests.append((request.method, request.url.path, form))
        return self.inner.handle_request(request)

    def grants(self, grant_type: str) -> list[dict[str, str]]:
        return [f for m, p, f in self.requests if p.endswith("/oauth/token") and f.get("grant_type") == grant_type]


@dataclass
class OAuthBackend:
    """An OAuth server to test against: its app config, a transport to reach it, and the fake if it is one."""

    config: OAuthConfig
    transport: RecordingTransport
    fake: FakeKlaviyoOAuth | None = None
    clock: ManualClock = field(default_factory=ManualClock)

    def need_fake(self) -> FakeKlaviyoOAuth:
        if self.fake is None:
            pytest.skip("needs to reach inside the fake OAuth server")
        return self.fake


@pytest.fixture(params=["fake", "sandbox"])
def backend(request: pytest.FixtureRequest) -> Iterator[OAuthBackend]:
    if request.param == "fake":
        fake = FakeKlaviyoOAuth()
        config = OAuthConfig.for_base_url(
            fake.base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=REDIRECT_URI, scopes=SCOPES
        )
        yield OAuthBackend(config, RecordingTransport(httpx.MockTransport(fake.handle)), fake)
        return
    from klaviyo_sandbox import Sandbox
    from tests.sandbox.conftest import on_port

    clock = ManualClock()
    sandbox = Sandbox(demo_data=False, rate_limit_factor=None, clock=clock)
    with on_port(sandbox.app) as base_url, httpx.HTTPTransport() as http:
        config = OAuthConfig.for_base_url(
            base_url, client_id="sbx-client", client_secret="sbx-secret", redirect_uri=REDIRECT_URI, scopes=SCOPES
        )
        yield OAuthBackend(config, RecordingTransport(http), clock=clock)
    sandbox.close()


@pytest.fixture
def oauth(backend: OAuthBackend) -> Iterator[OAuthClient]:
    with OAuthClient(backend.config, transport=backend.transport, clock=backend.clock) as client:
        yield client


@pytest.fixture
def vault(tmp_path: Path, backend: OAuthBackend) -> Iterator[Vault]:
    with Vault(tmp_path / "vault.db", FileKeyProvider(tmp_path / "vault.key"), clock=backend.clock) as v:
        yield v


def authorize(backend: OAuthBackend) -> tuple[str, str]:
    """Play the consenting user: follow the authorization URL; returns (code, verifier)."""
    verifier, challenge = pkce_pair()
    state = new_state()
    with httpx.Client(transport=backend.transport) as browser:
        answer = consent(browser, authorization_url(backend.config, state, challenge))
    assert answer.status_code in (302, 303), answer.text
    return parse_redirect(answer.headers["location"], state), verifier


def login(backend: OAuthBackend, oauth: OAuthClient, vault: Vault, name: str = "acme") -> TokenSet:
    code, verifier = authorize(backend)
    tokens = oauth.exchange_code(code, verifier)
    vault.put_oauth_tokens(name, tokens)
    return tokens


# -- the authorization step ------------------------------------------------------------------------


def test_pkce_pair_follows_rfc_7636() -> None:
    rfc_example = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636, appendix B
    assert code_challenge(rfc_example) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    verifier, challenge = pair = pkce_pair()
    assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier)
    assert challenge == code_challenge(verifier) and pkce_pair().verifier != verifier
    assert verifier not in repr(pair)


def test_authorization_url_and_endpoints() -> None:
    config = OAuthConfig(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, SCOPES)
    assert (config.authorize_url, config.token_url, config.revoke_url) == (
        "https://www.klaviyo.com/oauth/authorize",
        "https://a.klaviyo.com/oauth/token",
        "https://a.klaviyo.com/oauth/revoke",
    )
    assert oauth_endpoints() == (DEFAULT_AUTHORIZE_URL, DEFAULT_TOKEN_URL, DEFAULT_REVOKE_URL)
    assert oauth_endpoints("http://localhost:8787/") == (
        "http://localhost:8787/oauth/authorize",
        "http://localhost:8787/oauth/token",
        "http://localhost:8787/oauth/revoke",
    )

    url = authorization_url(config, "st4te", "ch4llenge")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == DEFAULT_AUTHORIZE_URL
    assert "scope=accounts%3Aread%20lists%3Aread%20profiles%3Awrite" in parts.query
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "accounts:read lists:read profiles:write",
        "state": "st4te",
        "code_challenge_method": "S256",
        "code_challenge": "ch4llenge",
    }
    with pytest.raises(ToolkitUsageError, match="scopes"):
        authorization_url(config.replace(scopes=()), "s", "c")


def test_parse_redirect_checks_state_and_errors() -> None:
    assert parse_redirect(f"{REDIRECT_URI}?code=abc&state=s1", "s1") == "abc"
    with pytest.raises(ToolkitUsageError, match="state does not match"):
        parse_redirect(f"{REDIRECT_URI}?code=abc&state=evil", "s1")
    with pytest.raises(ToolkitUsageError, match="access_denied"):
        parse_redirect(f"{REDIRECT_URI}?error=access_denied&error_description=no&state=s1", "s1")
    with pytest.raises(ToolkitUsageError, match="no authorization code"):
        parse_redirect(f"{REDIRECT_URI}?state=s1", "s1")


# -- the token endpoint ----------------------------------------------------------------------------


def test_exchange_code_for_tokens(backend: OAuthBackend, oauth: OAuthClient) -> None:
    code, verifier = authorize(backend)
    tokens = oauth.exchange_code(code, verifier)
    assert tokens.access_token and tokens.refresh_token and tokens.token_type == "Bearer"
    assert tokens.expires_at == backend.clock.time() + LIFETIME
    assert tokens.scopes == SCOPES
    (sent,) = backend.transport.grants("authorization_code")
    assert sent == {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT_URI,
    }
    with pytest.raises(BadRequestError) as reused:
        oauth.exchange_code(code, verifier)  # codes are single-use
    assert reused.value.code == "invalid_grant"


def test_pkce_and_client_authentication_are_enforced(backend: OAuthBackend, oauth: OAuthClient) -> None:
    code, _ = authorize(backend)
    with pytest.raises(BadRequestError, match="Code challenge failed"):
        oauth.exchange_code(code, pkce_pair().verifier)  # the wrong verifier

    code, verifier = authorize(backend)
    wrong = backend.config.replace(client_secret="cs_wrong")
    with OAuthClient(wrong, transport=backend.transport) as impostor, pytest.raises(AuthenticationError) as err:
        impostor.exchange_code(code, verifier)
    assert err.value.code == "invalid_client"


def test_refresh_rotates_the_refresh_token(backend: OAuthBackend, oauth: OAuthClient) -> None:
    code, verifier = authorize(backend)
    first = oauth.exchange_code(code, verifier)
    assert first.refresh_token
    backend.clock.advance(600)
    second = oauth.refresh(first.refresh_token)
    assert second.refresh_token and second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert second.expires_at == backend.clock.time() + LIFETIME and second.scopes == SCOPES
    third = oauth.refresh(second.refresh_token)
    assert third.refresh_token
    with pytest.raises(BadRequestError) as reused:
        oauth.refresh(first.refresh_token)  # the old one died with the rotation...
    assert reused.value.code == "invalid_grant"
    with pytest.raises(BadRequestError, match="invalid_grant"):
        oauth.refresh(third.refresh_token)  # ...and replaying it revoked the whole grant


def test_revoke_ends_the_grant(backend: OAuthBackend, oauth: OAuthClient) -> None:
    code, verifier = authorize(backend)
    tokens = oauth.exchange_code(code, verifier)
    assert tokens.refresh_token
    oauth.revoke(tokens.refresh_token)
    with pytest.raises(BadRequestError, match="invalid_grant"):
        oauth.refresh(tokens.refresh_token)
    assert backend.transport.requests[-2][2] == {"token": tokens.refresh_token, "token_type_hint": "refresh_token"}


def test_token_endpoint_failures_are_typed() -> None:
    config = OAuthConfig(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, SCOPES)

    def answer(response: httpx.Response | Exception) -> OAuthClient:
        def handler(request: httpx.Request) -> httpx.Response:
            if isinstance(response, Exception):
                raise response
            return response

        return OAuthClient(config, transport=httpx.MockTransport(handler))

    with pytest.raises(ServerError):
        answer(httpx.Response(503, text="upstream unavailable")).refresh("rt_x")
    with pytest.raises(PermissionDeniedError):
        answer(httpx.Response(403, html="<html>blocked</html>")).refresh("rt_x")
    with pytest.raises(TransportError, match=r"oauth\.refresh"):
        answer(httpx.ConnectError("refused")).refresh("rt_x")
    with pytest.raises(Exception, match="no access_token"):
        answer(httpx.Response(200, json={"token_type": "Bearer"})).refresh("rt_x")
    kept = answer(httpx.Response(200, json={"access_token": "at", "token_type": "bearer"})).refresh("rt_keep")
    assert kept.refresh_token == "rt_keep" and kept.expires_at is None  # a server that does not rotate


def test_a_429_from_the_token_endpoint_is_waited_out_within_a_budget() -> None:
    """Klaviyo did not process a throttled call, so a refresh (or code exchange, or revoke) may go again:
    once ``Retry-After`` has passed, a few times at most; a wait past the budget is not waited at all."""
    config = OAuthConfig(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, SCOPES)
    throttled = httpx.Response(429, headers={"Retry-After": "2"}, json={"error": "rate_limited"})
    tokens = httpx.Response(200, json={"access_token": "at_new", "token_type": "Bearer", "refresh_token": "rt_new"})

    def server(answers: list[httpx.Response]) -> tuple[OAuthClient, ManualClock, list[httpx.Request]]:
        asked: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            asked.append(request)
            return answers.pop(0) if len(answers) > 1 else answers[0]

        clock = ManualClock()
        return OAuthClient(config, transport=httpx.MockTransport(handler), clock=clock), clock, asked

    client, clock, asked = server([throttled, throttled, tokens])
    assert client.refresh("rt_old").access_token == "at_new"
    assert len(asked) == 3 and clock.slept == [2.0, 2.0]
    client, clock, asked = server([throttled])  # throttled every time: 1 try and 3 retries, then the 429
    with pytest.raises(RateLimitError) as raised:
        client.exchange_code("code", "verifier")
    assert len(asked) == 4 and clock.slept == [2.0, 2.0, 2.0] and raised.value.retry_after == 2.0
    forever = httpx.Response(429, headers={"Retry-After": "3600"}, json={"error": "rate_limited"})
    client, clock, asked = server([forever])
    with pytest.raises(RateLimitError):
        client.revoke("rt_old")
    assert len(asked) == 1 and clock.slept == []


def test_nothing_secret_in_reprs(backend: OAuthBackend, oauth: OAuthClient, vault: Vault) -> None:
    login(backend, oauth, vault)
    source = VaultTokenSource(vault, "acme", oauth)
    tokens = vault.get_oauth_tokens("acme")
    shown = " ".join(repr(x) for x in (backend.config, oauth, source, tokens, BearerToken(source)))
    for secret in (backend.config.client_secret, tokens.access_token, tokens.refresh_token or "-"):
        assert secret not in shown


def test_tokens_and_the_client_secret_are_masked_wherever_text_carries_them(
    backend: OAuthBackend, oauth: OAuthClient, vault: Vault
) -> None:
    """OAuth tokens have no shape to spot (an API key's ``pk_``), so they were masked nowhere: a gateway's
    error page echoing the request, or a user pasting one into a chat, carried them into messages, log
    lines and the model's input. Every token the client is handed, rotated ones included, and the app's
    secret (and the Basic header made of it) are masked from the moment they are known."""
    from klaviyo_toolkit.errors import api_error_from_response
    from klaviyo_toolkit.redact import redact_text

    first = login(backend, oauth, vault)
    rotated = oauth.refresh(first.refresh_token or "")
    config = backend.config
    basic = base64.b64encode(f"{config.client_id}:{config.client_secret}".encode()).decode("ascii")
    secrets_ = [first.access_token, first.refresh_token, rotated.access_token, rotated.refresh_token,
                config.client_secret, basic]
    assert all(secrets_) and len(set(secrets_)) == len(secrets_)
    text = "echoed: " + " | ".join(f"token={s}" if i % 2 else f"{s}" for i, s in enumerate(secrets_))
    shown = redact_text(text)
    page = {"errors": [{"status": 502, "detail": f"upstream said: Authorization: Basic {basic}, grant {text}"}]}
    shown += str(api_error_from_response(502, page, {}))
    for secret in secrets_:
        assert secret and secret not in shown, (secret, shown)
    assert "echoed:" in shown and "upstream said" in shown


def test_only_the_newest_tokens_are_kept_for_masking_and_keys_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker refreshing tokens for weeks registers two new ones an hour; each widens the pattern every
    redaction runs. Tokens are kept among the newest ``MAX_TOKENS``; a key (registered for good) stays."""
    from klaviyo_toolkit import redact

    monkeypatch.setattr(redact, "MAX_TOKENS", 3)
    key = "pk_" + secrets.token_hex(16)
    redact.register_secret(key)
    tokens = [f"at_{secrets.token_hex(16)}" for _ in range(5)]
    for token in tokens:
        TokenSet(access_token=token)
    shown = redact.redact_text(" ".join([key, *tokens]))
    assert [t in shown for t in tokens] == [True, True, False, False, False], shown  # the two oldest forgotten
    assert key not in shown and key in redact.registered_secrets()
    redact.register_secret(tokens[0])  # the same value as a lasting secret: kept whatever tokens come
    for _ in range(4):
        TokenSet(access_token=f"at_{secrets.token_hex(16)}")
    assert tokens[0] not in redact.redact_text(tokens[0])


# -- the refreshing token source -------------------------------------------------------------------


def test_token_source_refreshes_shortly_before_expiry(backend: OAuthBackend, oauth: OAuthClient, vault: Vault) -> None:
    first = login(backend, oauth, vault)
    source = VaultTokenSource(vault, "acme", oauth, backend.clock, skew=60)
    assert source.access_token() == first.access_token
    backend.clock.advance(LIFETIME - 61)
    assert source.access_token() == first.access_token
    assert backend.transport.grants("refresh_token") == []

    backend.clock.advance(2)  # now inside the 60 s skew
    fresh = source.access_token()
    assert fresh != first.access_token
    stored = vault.get_oauth_tokens("acme")
    assert stored.access_token == fresh and stored.refresh_token != first.refresh_token  # rotated and kept
    assert stored.expires_at == backend.clock.time() + LIFETIME
    assert source.access_token() == fresh
    assert [g["refresh_token"] for g in backend.transport.grants("refresh_token")] == [first.refresh_token]


def test_a_401_makes_the_client_refresh(backend: OAuthBackend, oauth: OAuthClient, vault: Vault) -> None:
    fake = backend.need_fake()
    login(backend, oauth, vault)
    source = VaultTokenSource(vault, "acme", oauth)
    client = KlaviyoClient(
        credentials=BearerToken(source), base_url=fake.base_url, transport=backend.transport, clock=ManualClock()
    )
    assert client.call("get_accounts").data[0]["id"] == "ACME"
    fake.expire_access_tokens()
    # The 401 makes the client invalidate the token and retry once with a refreshed one.
    assert client.call("get_accounts").data[0]["id"] == "ACME"
    assert len(backend.transport.grants("refresh_token")) == 1


def test_invalidate_forces_one_refresh(backend: OAuthBackend, oauth: OAuthClient, vault: Vault) -> None:
    first = login(backend, oauth, vault)
    source = VaultTokenSource(vault, "acme", oauth)
    assert source.access_token() == first.access_token
    source.invalidate()
    second = source.access_token()
    assert second != first.access_token and source.access_token() == second
    assert len(backend.transport.grants("refresh_token")) == 1


class BarrierOnFirstRead:
    """A vault whose first read in each thread waits for the others: all see the expired token at once."""

    def __init__(self, vault: Vault, barrier: threading.Barrier) -> None:
        self.vault = vault
        self.barrier = barrier
        self.seen = threading.local()

    def get_oauth_tokens(self, name: str) -> TokenSet:
        tokens = self.vault.get_oauth_tokens(name)
        if not getattr(self.seen, "done", False):
            self.seen.done = True
            self.barrier.wait(timeout=10)
        return tokens

    def update_oauth_tokens(self, name: str) -> AbstractContextManager[OAuthTokensUpdate]:
        return self.vault.update_oauth_tokens(name)


@pytest.mark.parametrize("threads", [2, 8])
def test_threads_needing_a_refresh_cause_one_refresh(
    backend: OAuthBackend, oauth: OAuthClient, vault: Vault, threads: int
) -> None:
    first = login(backend, oauth, vault)
    source = VaultTokenSource(BarrierOnFirstRead(vault, threading.Barrier(threads)), "acme", oauth, backend.clock)
    backend.clock.advance(LIFETIME)  # expired for everyone
    got: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            got.append(source.access_token())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert not errors
    assert len(backend.transport.grants("refresh_token")) == 1
    assert len(got) == threads and len(set(got)) == 1 and got[0] != first.access_token
    stored = vault.get_oauth_tokens("acme")
    assert stored.access_token == got[0] and stored.refresh_token
    assert oauth.refresh(stored.refresh_token).refresh_token  # the stored rotated token is the live one


def test_a_revoked_refresh_token_raises_with_guidance(backend: OAuthBackend, oauth: OAuthClient, vault: Vault) -> None:
    first = login(backend, oauth, vault)
    assert first.refresh_token
    oauth.revoke(first.refresh_token)  # e.g. the app was uninstalled in Klaviyo
    source = VaultTokenSource(vault, "acme", oauth)
    backend.clock.advance(LIFETIME)
    with pytest.raises(RevokedCredentialError) as err:
        source.access_token()
    assert "invalid_grant" in str(err.value) and "Re-authenticate" in str(err.value)
    assert vault.info("acme").revoked  # other processes now fail fast too
    sent = len(backend.transport.requests)
    with pytest.raises(RevokedCredentialError):
        source.access_token()
    assert len(backend.transport.requests) == sent  # no further calls to Klaviyo


def test_revoking_in_the_vault_stops_the_source(backend: OAuthBackend, oauth: OAuthClient, vault: Vault) -> None:
    login(backend, oauth, vault)
    source = VaultTokenSource(vault, "acme", oauth)
    source.access_token()
    vault.revoke("acme")
    with pytest.raises(RevokedCredentialError, match="revoked in the vault"):
        source.access_token()


def test_source_revoke_ends_the_grant_at_klaviyo_and_in_the_vault(
    backend: OAuthBackend, oauth: OAuthClient, vault: Vault
) -> None:
    first = login(backend, oauth, vault)
    assert first.refresh_token
    VaultTokenSource(vault, "acme", oauth).revoke()
    assert vault.info("acme").revoked
    with pytest.raises(BadRequestError, match="invalid_grant"):
        oauth.refresh(first.refresh_token)


def test_no_refresh_token_means_re_authenticate(oauth: OAuthClient, vault: Vault, backend: OAuthBackend) -> None:
    vault.put_oauth_tokens("acme", TokenSet("at_only", None, expires_at=backend.clock.time() + 10))
    with pytest.raises(RevokedCredentialError, match="no refresh token"):
        VaultTokenSource(vault, "acme", oauth).access_token()


class StaleReads:
    """A vault handle whose first read returns an old snapshot (a process that read before another refreshed)."""

    def __init__(self, vault: Vault, snapshot: TokenSet) -> None:
        self.vault, self.snapshot, self.stale = vault, snapshot, True

    def get_oauth_tokens(self, name: str) -> TokenSet:
        if self.stale:
            self.stale = False
            return self.snapshot
        return self.vault.get_oauth_tokens(name)

    def update_oauth_tokens(self, name: str) -> AbstractContextManager[OAuthTokensUpdate]:
        return self.vault.update_oauth_tokens(name)


def test_a_refresh_done_by_another_process_meanwhile_is_reused(
    backend: OAuthBackend, oauth: OAuthClient, vault: Vault, tmp_path: Path
) -> None:
    first = login(backend, oauth, vault)
    backend.clock.advance(LIFETIME)
    with Vault(vault.path, FileKeyProvider(tmp_path / "vault.key")) as other_process:
        winner = VaultTokenSource(other_process, "acme", oauth).access_token()  # rotates the refresh token
    late = VaultTokenSource(StaleReads(vault, first), "acme", oauth)  # it saw the expired token before that
    assert late.access_token() == winner  # it re-read under the lock and found fresh tokens
    assert len(backend.transport.grants("refresh_token")) == 1  # the spent refresh token was not replayed
    assert not vault.info("acme").revoked


def test_processes_sharing_a_vault_refresh_once(
    backend: OAuthBackend, oauth: OAuthClient, vault: Vault, tmp_path: Path
) -> None:
    first = login(backend, oauth, vault)
    backend.clock.advance(LIFETIME)
    handles = [vault, Vault(vault.path, FileKeyProvider(tmp_path / "vault.key"))]  # two connections, no shared lock
    barrier = threading.Barrier(len(handles))
    sources = [VaultTokenSource(BarrierOnFirstRead(h, barrier), "acme", oauth) for h in handles]
    got: list[str] = []
    errors: list[BaseException] = []

    def work(source: VaultTokenSource) -> None:
        try:
            got.append(source.access_token())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(source,)) for source in sources]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    handles[1].close()
    assert not errors
    assert len(backend.transport.grants("refresh_token")) == 1
    assert len(set(got)) == 1 and got[0] != first.access_token and not vault.info("acme").revoked


def test_update_rolls_back_when_the_refresh_fails(backend: OAuthBackend, vault: Vault) -> None:
    first = login(backend, OAuthClient(backend.config, transport=backend.transport, clock=backend.clock), vault)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("token endpoint unreachable")

    offline = OAuthClient(backend.config, transport=httpx.MockTransport(down), clock=backend.clock)
    source = VaultTokenSource(vault, "acme", offline)
    backend.clock.advance(LIFETIME)
    with pytest.raises(TransportError):
        source.access_token()
    assert vault.get_oauth_tokens("acme") == first and not vault.info("acme").revoked
