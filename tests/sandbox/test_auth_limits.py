"""Keys, scopes, rate limits and OAuth in the sandbox, as a client of Klaviyo meets them.

- 401 for a missing, unknown or revoked key; 403 naming every missing scope (checked for every
  private-key operation of the catalog);
- 401 ``not_authenticated`` without credentials, ``authentication_failed`` with wrong ones;
- fixed windows per account (every key shares the quota) and operation, with the documented lower
  tiers (predictive analytics, ``include=list``); 429 with ``Retry-After`` (and no ``RateLimit-*``)
  for a client that bursts past a limit (second, minute and day windows), ``RateLimit-*`` on every
  other answer; the sandbox's factor scales limits, ``None`` / ``--no-rate-limits`` turns them off; a
  client holding the sandbox's limiter never sees a 429;
- OAuth on a real port: a KlaviyoClient with ``BearerToken(VaultTokenSource(...))`` calls the API
  with the access token, is refused outside its scopes, refreshes after a 401 and stops on revocation.

Sandboxes here run on a ManualClock: windows and waits are exact and cost no real time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import DEMO_KEY, PUBLIC_KEY, Sandbox
from klaviyo_toolkit.auth import BearerToken
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.client._config import NO_RETRIES
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import (
    AuthenticationError,
    BadRequestError,
    DailyLimitExhaustedError,
    PermissionDeniedError,
    RateLimitError,
    RevokedCredentialError,
)
from klaviyo_toolkit.oauth import (
    OAuthClient,
    OAuthConfig,
    VaultTokenSource,
    authorization_url,
    new_state,
    parse_redirect,
    pkce_pair,
)
from klaviyo_toolkit.ratelimit import RateLimiter
from klaviyo_toolkit.vault import FileKeyProvider, Vault
from tests.oauth_consent import consent

from .conftest import SandboxProcess, on_port

REVISION = "2026-07-15"


def sandbox(factor: float | None = 1.0) -> Sandbox:
    return Sandbox(demo_data=False, rate_limit_factor=factor, clock=ManualClock())


def raw(sb: Sandbox, key: str | None = DEMO_KEY) -> httpx.Client:
    headers = {"revision": REVISION, "Content-Type": "application/vnd.api+json"}
    if key is not None:
        headers["Authorization"] = f"Klaviyo-API-Key {key}"
    return httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL, headers=headers)


def unlimited_client(sb: Sandbox, **options: Any) -> KlaviyoClient:
    """A client that does not pace itself (no limiter) and, unless told, does not retry."""
    options.setdefault("retry", NO_RETRIES)
    options.setdefault("clock", sb.clock)
    return sb.client(rate_limiter=RateLimiter(factor=None), **options)


def error(response: httpx.Response) -> dict[str, Any]:
    return response.json()["errors"][0]  # type: ignore[no-any-return]


# -- keys ---------------------------------------------------------------------------------------------
def test_missing_unknown_and_revoked_keys_are_401() -> None:
    sb = sandbox()
    missing = raw(sb, key=None).get("/api/lists")
    assert missing.status_code == 401 and error(missing)["code"] == "not_authenticated"
    assert "Klaviyo-API-Key" in error(missing)["detail"]

    unknown = raw(sb, key="pk_nope_1234567890").get("/api/lists")
    assert unknown.status_code == 401 and "pk_nope_1234567890" not in unknown.text
    assert error(unknown)["code"] == "authentication_failed"  # given but wrong, as Klaviyo answers
    assert error(unknown)["title"] == "Incorrect authentication credentials."
    for header in ("Bearer not-a-token", "Basic Zm9vOmJhcg==", "pk_sandbox_demo"):
        answer = raw(sb, key=None).get("/api/lists", headers={"Authorization": header})
        assert answer.status_code == 401 and error(answer)["code"] == "authentication_failed", header

    made = raw(sb).post("/sandbox/keys", json={"scopes": "*", "name": "temp"})
    key = made.json()["key"]
    assert made.status_code == 201 and key.startswith("pk_")
    assert raw(sb, key).get("/api/lists").status_code == 200
    assert raw(sb).delete(f"/sandbox/keys/{key}").status_code == 200
    revoked = raw(sb, key).get("/api/lists")
    assert revoked.status_code == 401 and "revoked" in error(revoked)["detail"]
    assert error(revoked)["code"] == "authentication_failed"
    with sb.client(api_key=key, clock=ManualClock()) as kl, pytest.raises(AuthenticationError) as err:
        kl.call("get_lists")
    assert err.value.status == 401 and err.value.request_id

    # the client API authenticates by public key (company_id) instead
    with sb.client(public_api_key="NotOurs", clock=ManualClock()) as kl, pytest.raises(BadRequestError) as bad:
        kl.call("create_client_profile", email="c@example.com")
    assert bad.value.source == {"parameter": "company_id"}


def test_a_key_without_a_scope_gets_403_naming_it_for_every_operation() -> None:
    sb = sandbox(factor=None)
    nothing = raw(sb).post("/sandbox/keys", json={"scopes": []}).json()["key"]
    http = raw(sb, nothing)
    checked = 0
    for op in load_catalog():
        if op.client_side:
            continue
        path = op.path.replace("{id}", "x").replace("{job_id}", "x").replace("{related_resource}", "x")
        answer = http.request(op.method, path)
        assert answer.status_code == 403, (op.operation_id, answer.text[:200])
        err = error(answer)
        assert err["code"] == "permission_denied"
        assert all(scope in err["detail"] for scope in op.scopes), (op.operation_id, op.scopes, err["detail"])
        checked += 1
    assert checked == len([op for op in load_catalog() if not op.client_side]) > 300


def test_chosen_scopes_allow_exactly_what_they_name() -> None:
    sb = sandbox(factor=None)
    key = raw(sb).post("/sandbox/keys", json={"scopes": ["profiles:read", "lists:write"]}).json()["key"]
    with sb.client(api_key=key, clock=ManualClock()) as kl:
        assert kl.call("get_profiles").status == 200
        assert kl.call("get_lists").status == 200  # a write scope includes the read one
        list_id = kl.call("create_list", name="Allowed").data["id"]
        with pytest.raises(PermissionDeniedError) as err:
            kl.call("create_profile", email="x@example.com")
        assert "profiles:write" in (err.value.detail or "") and err.value.status == 403
        with pytest.raises(PermissionDeniedError, match="events:write"):
            kl.call("create_event", metric={"name": "M"}, profile={"email": "x@example.com"}, properties={})
    assert sb.store.count("profile") == 0 and sb.store.get("list", list_id) is not None


# -- rate limits ----------------------------------------------------------------------------------------
def test_a_burst_past_the_limit_is_429_with_retry_after_and_rate_limit_headers() -> None:
    """Fixed windows on whole seconds and minutes, as Klaviyo documents; Retry-After replaces the
    RateLimit-* headers on a 429."""
    sb = sandbox()  # get_accounts: 1/s burst, 15/min steady; the clock starts 20 s into a minute
    clock = sb.clock
    assert isinstance(clock, ManualClock) and clock.time() % 60 == 20
    http = raw(sb)
    first = http.get("/api/accounts")
    assert first.status_code == 200
    assert (first.headers["RateLimit-Limit"], first.headers["RateLimit-Remaining"]) == ("15", "14")
    assert first.headers["RateLimit-Reset"] == "40"  # the minute window ends 40 s from now
    second = http.get("/api/accounts")
    assert second.status_code == 429 and error(second)["code"] == "throttled"
    assert second.headers["Retry-After"] == "1"
    assert not any(h.lower().startswith("ratelimit-") for h in second.headers)
    assert "second limit of 1 for get_accounts" in error(second)["detail"]

    for n in range(14):  # one a second: the minute fills up
        clock.advance(1.0)
        answer = http.get("/api/accounts")
        assert answer.status_code == 200 and answer.headers["RateLimit-Remaining"] == str(13 - n)
    clock.advance(1.0)
    full = http.get("/api/accounts")
    assert full.status_code == 429 and "minute limit of 15" in error(full)["detail"]
    assert full.headers["Retry-After"] == "25"  # 35 s into the window: it resets 25 s from now

    with unlimited_client(sb) as kl, pytest.raises(RateLimitError) as err:
        kl.call("get_accounts")
    assert err.value.status == 429 and err.value.retry_after == 25
    clock.advance(25.0)  # a new minute: the whole allowance again
    fresh = http.get("/api/accounts")
    assert fresh.status_code == 200 and fresh.headers["RateLimit-Remaining"] == "14"
    assert fresh.headers["RateLimit-Reset"] == "60"


def test_a_fixed_window_admits_a_full_burst_either_side_of_its_edge() -> None:
    """A fixed window (unlike a sliding one) starts afresh on the second: 10 at .9 s and 10 more at 1.0 s."""
    sb = sandbox()  # create_list: 10/s burst, 150/min steady
    clock = sb.clock
    assert isinstance(clock, ManualClock)
    http = raw(sb)
    clock.advance(0.9)
    assert [http.post("/api/lists", json=_list(f"a{i}")).status_code for i in range(11)] == [201] * 10 + [429]
    clock.advance(0.1)  # the next second: a new burst window
    assert [http.post("/api/lists", json=_list(f"b{i}")).status_code for i in range(10)] == [201] * 10


def _list(name: str) -> dict[str, Any]:
    return {"data": {"type": "list", "attributes": {"name": name}}}


def test_quota_is_per_account_every_key_shares_it() -> None:
    sb = sandbox()
    other = raw(sb).post("/sandbox/keys", json={"scopes": "*"}).json()["key"]
    assert raw(sb).get("/api/accounts").status_code == 200
    refused = raw(sb, other).get("/api/accounts")  # another key of the same account: the same 1/s
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    clock = sb.clock
    assert isinstance(clock, ManualClock)
    clock.advance(1.0)
    # clients made by the sandbox pace every key of the account together and never meet a 429
    with sb.client(api_key=other) as first, sb.client() as second:
        for _ in range(3):
            first.call("get_accounts")
            second.call("get_accounts")
    assert [r["status"] for r in sb.requests if r["operation_id"] == "get_accounts"][2:] == [200] * 6


def test_the_predictive_analytics_tier_has_its_own_lower_limits() -> None:
    """Get Profiles: 75/s, 750/m; with additional-fields[profile]=predictive_analytics: 10/s, 150/m."""
    sb = sandbox()
    http = raw(sb)
    predictive = {"additional-fields[profile]": "predictive_analytics"}
    answers = [http.get("/api/profiles", params=predictive) for _ in range(11)]
    assert [a.status_code for a in answers] == [200] * 10 + [429]
    assert answers[0].headers["RateLimit-Limit"] == "150" and answers[0].headers["RateLimit-Remaining"] == "149"
    plain = http.get("/api/profiles")  # the operation's own limits are untouched
    assert plain.status_code == 200 and plain.headers["RateLimit-Limit"] == "750"
    assert plain.headers["RateLimit-Remaining"] == "749"
    listed = http.get("/api/profiles/x", params={"include": "lists"})  # get_profile: include=list is 1/s
    assert listed.status_code == 404 and listed.headers["RateLimit-Limit"] == "15"
    assert http.get("/api/profiles/x", params={"include": "lists"}).status_code == 429


def test_every_answer_but_a_429_carries_the_rate_limit_headers() -> None:
    sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock())  # even with limits off
    http = raw(sb)
    answers = [
        http.get("/api/lists"),  # 200
        http.get("/api/lists/nope"),  # 404
        http.get("/api/lists", params={"sort": "bogus"}),  # 400
        raw(sb, key="pk_wrong").get("/api/lists"),  # 401
        http.post("/api/lists", json=_list("x")),  # 201
        http.put("/api/lists"),  # 405
        http.get("/api/no-such-thing"),  # 404 outside any operation
    ]
    assert [a.status_code for a in answers] == [200, 404, 400, 401, 201, 405, 404]
    for answer in answers:
        assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(answer.headers), answer.text
    assert answers[5].headers["Allow"] == "GET, POST"


def test_the_client_honours_retry_after_and_the_daily_window() -> None:
    sb = sandbox(factor=0.01)  # create_list: 10/s, 150/min, 150/day -> 1/s, 2/min, 2/day
    clock = sb.clock
    assert isinstance(clock, ManualClock)
    with unlimited_client(sb, retry=None) as kl:  # default retries: a 429 was not processed, so any call may go again
        kl.call("create_list", name="a")
        slept = len(clock.slept)
        kl.call("create_list", name="b")  # 429 -> sleeps Retry-After (1 s) -> 201
        assert clock.slept[slept:] == [1.0]
        clock.advance(3600)
        with pytest.raises(RateLimitError) as err:  # the day is spent: retrying cannot help in time
            kl.call("create_list", name="c")
    assert err.value.retry_after is not None and err.value.retry_after > 80_000
    statuses = [r["status"] for r in sb.requests if r["operation_id"] == "create_list"]
    assert statuses[:3] == [201, 429, 201] and statuses[-1] == 429 and statuses.count(201) == 2
    # a client holding the sandbox's limiter (same factor) paces itself and knows when the day is spent
    fresh = sandbox(factor=0.01)
    with fresh.client() as paced:
        paced.call("create_list", name="x")
        paced.call("create_list", name="y")  # waits out the second window instead of being refused
        with pytest.raises(DailyLimitExhaustedError):
            paced.call("create_list", name="z")
    assert [r["status"] for r in fresh.requests] == [201, 201]  # the third never left the client


def test_a_client_with_the_sandboxes_limiter_never_sees_a_429() -> None:
    sb = sandbox()
    clock = sb.clock
    assert isinstance(clock, ManualClock)
    started = clock.monotonic()
    with sb.client() as kl:  # sb.client_limiter runs on the sandbox's clock: its waits move time
        for _ in range(40):
            kl.call("get_accounts")
    statuses = {r["status"] for r in sb.requests if r["operation_id"] == "get_accounts"}
    assert statuses == {200}
    assert clock.monotonic() - started >= 120  # 40 calls at 15 a minute take over two minutes


@pytest.mark.parametrize(("factor", "burst"), [(0.1, 8), (1.0, 75), (2.0, 150), (None, None)])
def test_the_factor_scales_every_limit_and_none_turns_them_off(factor: float | None, burst: int | None) -> None:
    sb = sandbox(factor)  # get_profiles: 75/s burst
    http = raw(sb)
    answers = [http.get("/api/profiles").status_code for _ in range(160)]
    if burst is None:
        assert set(answers) == {200}
    else:
        assert answers[:burst] == [200] * burst and set(answers[burst:]) == {429}


def test_serve_flags_scale_or_turn_off_the_limits() -> None:
    off, doubled = SandboxProcess("--empty", "--no-rate-limits"), SandboxProcess("--empty", "--rate-limit-factor", "2")
    for proc in (off, doubled):
        proc.start()
    try:
        for proc in (off, doubled):
            proc.wait_ready()
        headers = {"Authorization": f"Klaviyo-API-Key {DEMO_KEY}", "revision": REVISION}
        with httpx.Client(headers=headers) as http:
            unlimited = [http.get(off.base_url + "/api/accounts") for _ in range(6)]
            scaled = http.get(doubled.base_url + "/api/accounts")
    finally:
        off.interrupt()
        doubled.interrupt()
        off.stop()
        doubled.stop()
    # get_accounts is 1/s, 15/min. Without limits six calls in a row pass and none is counted (the
    # headers still state the published window); the doubled server counts against twice the steady
    # window. Read from the headers, not from when a 429 comes: four calls over a loopback socket can
    # take more than a second on a loaded machine, and then no 429 comes.
    steady = load_catalog().get("get_accounts").rate_limit.steady
    assert [r.status_code for r in unlimited] == [200] * 6
    assert {(r.headers["RateLimit-Limit"], r.headers["RateLimit-Remaining"]) for r in unlimited} == {
        (str(steady), str(steady))}
    assert scaled.status_code == 200
    assert (scaled.headers["RateLimit-Limit"], scaled.headers["RateLimit-Remaining"]) == (
        str(2 * steady), str(2 * steady - 1))


# -- OAuth on a port ------------------------------------------------------------------------------------
@pytest.fixture
def oauth_server() -> Iterator[tuple[Sandbox, str]]:
    """An empty sandbox on its own ManualClock (the server's time), served on a local port."""
    sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock())
    with on_port(sb.app) as base_url:
        yield sb, base_url
    sb.close()


SCOPES = ("accounts:read", "profiles:read", "profiles:write")


def _login(base_url: str, vault: Vault, client_clock: ManualClock) -> OAuthClient:
    config = OAuthConfig.for_base_url(base_url, client_id="sbx-client", client_secret="sbx-secret",
                                      redirect_uri="http://localhost:8000/callback", scopes=SCOPES)
    oauth = OAuthClient(config, clock=client_clock)
    verifier, challenge = pkce_pair()
    state = new_state()
    with httpx.Client() as browser:  # the consent page, as a person answers it
        answer = consent(browser, authorization_url(config, state, challenge))
    assert answer.status_code == 302
    vault.put_oauth_tokens("acme", oauth.exchange_code(parse_redirect(answer.headers["location"], state), verifier))
    return oauth


def test_an_oauth_token_from_the_vault_calls_the_api(oauth_server: tuple[Sandbox, str], tmp_path: Path) -> None:
    sb, base_url = oauth_server
    client_clock = ManualClock()
    with Vault(tmp_path / "vault.db", FileKeyProvider(tmp_path / "vault.key"), clock=client_clock) as vault:
        oauth = _login(base_url, vault, client_clock)
        source = VaultTokenSource(vault, "acme", oauth, client_clock)
        first = vault.get_oauth_tokens("acme")
        with KlaviyoClient(credentials=BearerToken(source), base_url=base_url, clock=client_clock,
                           rate_limiter=RateLimiter(factor=None)) as kl:
            assert kl.call("get_accounts").data[0]["id"] == PUBLIC_KEY
            made = kl.call("create_profile", email="oauth@example.com").data["id"]
            assert kl.call("get_profile", id=made).data["attributes"]["email"] == "oauth@example.com"
            with pytest.raises(PermissionDeniedError, match="lists:write"):  # outside the granted scopes
                kl.call("create_list", name="nope")

            # The server's clock passes the token's lifetime while the client's does not: the API
            # answers 401, the client invalidates the token, the source refreshes (rotating the
            # refresh token in the vault) and the call goes through.
            sb_clock = sb.clock
            assert isinstance(sb_clock, ManualClock)
            sb_clock.advance(3601)
            assert kl.call("get_accounts").status == 200
            second = vault.get_oauth_tokens("acme")
            assert second.access_token != first.access_token and second.refresh_token != first.refresh_token
            assert [r["status"] for r in sb.requests if r["operation_id"] == "get_accounts"][-2:] == [401, 200]

            # The old refresh token is dead; replaying it is treated as theft and ends the grant.
            with pytest.raises(BadRequestError, match="invalid_grant"):
                oauth.refresh(first.refresh_token or "")
            with pytest.raises(RevokedCredentialError):
                sb_clock.advance(3601)
                kl.call("get_accounts")
        assert vault.info("acme").revoked
        oauth.close()


def test_revoking_the_grant_stops_the_client(oauth_server: tuple[Sandbox, str], tmp_path: Path) -> None:
    _, base_url = oauth_server
    client_clock = ManualClock()
    with Vault(tmp_path / "vault.db", FileKeyProvider(tmp_path / "vault.key"), clock=client_clock) as vault:
        oauth = _login(base_url, vault, client_clock)
        source = VaultTokenSource(vault, "acme", oauth, client_clock)
        with KlaviyoClient(credentials=BearerToken(source), base_url=base_url, clock=client_clock,
                           rate_limiter=RateLimiter(factor=None)) as kl:
            assert kl.call("get_profiles").status == 200
            token = vault.get_oauth_tokens("acme").access_token
            oauth.revoke(token, token_type_hint="access_token")  # revoking any token ends the grant
            with pytest.raises(RevokedCredentialError, match="invalid_grant"):
                kl.call("get_profiles")  # 401 -> refresh -> invalid_grant -> revoked in the vault
        assert vault.info("acme").revoked
        oauth.close()


def test_oauth_token_endpoint_errors_follow_klaviyos_guide(oauth_server: tuple[Sandbox, str]) -> None:
    _, base_url = oauth_server
    config = OAuthConfig.for_base_url(base_url, client_id="sbx-client", client_secret="sbx-secret",
                                      redirect_uri="http://localhost:8000/callback", scopes=SCOPES)
    with OAuthClient(config) as oauth:
        for verifier, says in (("short", 'Invalid "code_verifier"'), (pkce_pair().verifier, "Code challenge failed.")):
            _, challenge = pkce_pair()
            state = new_state()
            with httpx.Client() as browser:
                answer = consent(browser, authorization_url(config, state, challenge))
            code = parse_redirect(answer.headers["location"], state)
            with pytest.raises(BadRequestError) as err:
                oauth.exchange_code(code, verifier)
            assert says in (err.value.detail or "")
    with OAuthClient(config.replace(client_secret="wrong")) as impostor, pytest.raises(AuthenticationError) as bad:
        impostor.refresh("sbx_rt_whatever")
    assert bad.value.code == "invalid_client"
