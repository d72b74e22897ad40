"""OAuth connections against the sandbox on a real port: refresh before expiry, one refresh at a time
across threads, async tasks and processes, a failed refresh marks "needs re-auth", a grant revoked at
Klaviyo stops the next call, and revoking ends the grant at Klaviyo's revoke endpoint.

The sandbox and the client share a ManualClock, so tokens expire when the test says.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.client import AsyncKlaviyoClient, KlaviyoClient
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.connections import Account, ConnectionStore
from klaviyo_toolkit.errors import AuthenticationError, BadRequestError, ConnectionUnusableError
from klaviyo_toolkit.oauth import OAuthClient, OAuthConfig, authorization_url, new_state, parse_redirect, pkce_pair
from klaviyo_toolkit.vault import FileKeyProvider, TokenSet, Vault
from tests.oauth_consent import consent
from tests.sandbox.conftest import on_port

SCOPES = ("accounts:read", "lists:read")
LIFETIME = 3600
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class World:
    sb: Sandbox
    base_url: str
    clock: ManualClock
    tmp: Path

    def store(self) -> ConnectionStore:
        """A new handle on the one vault file (as another thread or process would open it)."""
        return ConnectionStore(Vault(self.tmp / "vault.sqlite", FileKeyProvider(self.tmp / "vault.key")))

    def oauth(self) -> OAuthClient:
        config = OAuthConfig.for_base_url(self.base_url, client_id="sbx-client", client_secret="sbx-secret",
                                          redirect_uri="http://127.0.0.1:9/callback", scopes=SCOPES)  # fmt: skip
        return OAuthClient(config, clock=self.clock)

    def login(self, store: ConnectionStore, name: str = "shop") -> TokenSet:
        oauth = self.oauth()
        verifier, challenge = pkce_pair()
        state = new_state()
        with httpx.Client() as browser:
            answer = consent(browser, authorization_url(oauth.config, state, challenge))
        tokens = oauth.exchange_code(parse_redirect(answer.headers["location"], state), verifier)
        store.save_oauth(name, tokens, base_url=self.base_url, account=Account("SbxPub"), client_id="sbx-client")
        return tokens

    def client(self, store: ConnectionStore, name: str = "shop") -> KlaviyoClient:
        return KlaviyoClient(credentials=store.credentials(name, self.oauth()), base_url=self.base_url,
                             hooks=[store.observe(name)])  # fmt: skip

    def refreshes(self) -> int:
        """Token-endpoint refreshes the sandbox answered (every grant issues one refresh token more)."""
        tokens = self.sb.store.value("oauth_refresh", {})
        grants = {info["grant"] for info in tokens.values()}
        return len(tokens) - len(grants)

    def grant_alive(self) -> bool:
        return any(info["active"] for info in self.sb.store.value("oauth_refresh", {}).values())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = ManualClock()
    sb = Sandbox(rate_limit_factor=None, clock=clock)
    with on_port(sb.app) as base_url:
        yield World(sb, base_url, clock, tmp_path)
    sb.close()


def test_the_access_token_is_refreshed_before_it_expires(world: World) -> None:
    store = world.store()
    first = world.login(store)
    kl = world.client(store)
    kl.call("get_lists")
    assert world.refreshes() == 0
    world.clock.advance(LIFETIME - 30)  # within a minute of expiry: refreshed before the call
    kl.call("get_lists")
    assert world.refreshes() == 1
    conn = store.get("shop")
    assert conn.refreshed_at is not None and conn.health() != "needs re-auth"
    stored = store.vault.get_oauth_tokens("shop")
    assert stored.refresh_token != first.refresh_token  # the rotated token was saved...
    assert stored.access_token != first.access_token
    assert first.refresh_token
    with pytest.raises(BadRequestError, match="invalid_grant"):  # ...and the spent one is dead at Klaviyo
        world.oauth().refresh(first.refresh_token)


def test_a_failed_refresh_marks_needs_reauth_and_stops_only_that_connection(world: World) -> None:
    store = world.store()
    first = world.login(store)
    assert first.refresh_token
    world.login(store, "other")
    world.oauth().revoke(first.refresh_token)  # the app was uninstalled from that account
    world.clock.advance(LIFETIME + 1)
    kl = world.client(store)
    with pytest.raises(ConnectionUnusableError) as err:
        kl.call("get_lists")
    message = str(err.value)
    assert "connection 'shop' needs re-auth: Klaviyo rejected its refresh token (invalid_grant)" in message
    assert "\n" not in message and first.refresh_token not in message
    assert store.get("shop").status == "needs_reauth"
    sent = len(world.sb.requests)
    with pytest.raises(ConnectionUnusableError):
        kl.call("get_lists")
    assert len(world.sb.requests) == sent  # failing fast, no more calls to Klaviyo
    assert world.client(store, "other").call("get_lists").status == 200  # the other connection goes on
    with pytest.raises(ConnectionUnusableError, match="needs re-auth"):
        world.client(store)  # and new clients on it are refused up front


def test_a_wrong_client_secret_in_one_process_leaves_the_connection_usable_for_the_others(world: World) -> None:
    """The token endpoint refusing the app's credentials (invalid_client) is that process's config,
    not a dead grant: it must not mark the connection "needs re-auth" for every other process."""
    store = world.store()
    world.login(store)
    world.clock.advance(LIFETIME + 1)  # the next call refreshes
    config = OAuthConfig.for_base_url(world.base_url, client_id="sbx-client", client_secret="wrong",
                                      redirect_uri="http://127.0.0.1:9/callback", scopes=SCOPES)  # fmt: skip
    misconfigured = KlaviyoClient(credentials=store.credentials("shop", OAuthClient(config, clock=world.clock)),
                                  base_url=world.base_url, hooks=[store.observe("shop")])  # fmt: skip
    with pytest.raises(AuthenticationError) as refused:
        misconfigured.call("get_lists")
    assert refused.value.operation_id == "oauth.refresh"
    assert store.get("shop").status != "needs_reauth" and world.grant_alive()
    assert world.client(world.store()).call("get_lists").status == 200, "a well-configured process goes on"


def test_a_grant_revoked_at_klaviyo_stops_the_next_call(world: World) -> None:
    store = world.store()
    first = world.login(store)
    kl = world.client(store)
    kl.call("get_lists")
    world.oauth().revoke(first.access_token, token_type_hint="access_token")  # revoked in Klaviyo's UI
    with pytest.raises(ConnectionUnusableError, match="needs re-auth"):
        kl.call("get_lists")  # 401 -> one refresh attempt -> invalid_grant -> stop
    assert store.get("shop").status == "needs_reauth"


def test_revoke_ends_the_grant_at_klaviyo_then_erases_the_tokens(world: World) -> None:
    store = world.store()
    world.login(store)
    kl = world.client(store)
    done = store.revoke("shop", oauth=world.oauth())
    assert done.changed and done.at_klaviyo and not world.grant_alive()
    assert store.get("shop").fingerprint == ""
    with pytest.raises(ConnectionUnusableError, match="was revoked"):
        kl.call("get_lists")
    assert not store.revoke("shop", oauth=world.oauth()).changed  # idempotent, and no second call out


class BarrierStore(ConnectionStore):
    """A store whose first token read in each thread waits for the others: all see the expired token."""

    def __init__(self, vault: Vault, barrier: threading.Barrier) -> None:
        super().__init__(vault)
        self.barrier = barrier
        self.seen = threading.local()

    def get_oauth_tokens(self, name: str) -> TokenSet:
        tokens = super().get_oauth_tokens(name)
        if not getattr(self.seen, "done", False):
            self.seen.done = True
            self.barrier.wait(timeout=20)
        return tokens


@pytest.mark.parametrize("threads", [2, 8])
def test_threads_with_their_own_handles_refresh_once(world: World, threads: int) -> None:
    world.login(world.store())
    world.clock.advance(LIFETIME + 1)
    barrier = threading.Barrier(threads)
    got: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            store = BarrierStore(Vault(world.tmp / "vault.sqlite", FileKeyProvider(world.tmp / "vault.key")), barrier)
            got.append(store.credentials("shop", world.oauth()).headers()["Authorization"])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not errors, errors
    assert world.refreshes() == 1 and len(got) == threads and len(set(got)) == 1
    assert world.store().get("shop").active


async def test_async_tasks_refresh_once(world: World) -> None:
    store = world.store()
    world.login(store)
    world.clock.advance(LIFETIME + 1)
    async with AsyncKlaviyoClient(credentials=store.credentials("shop", world.oauth()), base_url=world.base_url) as kl:
        answers = await asyncio.gather(*(kl.call("get_lists") for _ in range(10)))
    assert all(a.status == 200 for a in answers)
    assert world.refreshes() == 1


PROCESS = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from klaviyo_toolkit.connections import ConnectionStore
    from klaviyo_toolkit.oauth import OAuthClient, OAuthConfig
    from klaviyo_toolkit.vault import FileKeyProvider, Vault

    tmp, base_url, me = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    store = ConnectionStore(Vault(tmp / "vault.sqlite", FileKeyProvider(tmp / "vault.key")))
    config = OAuthConfig.for_base_url(base_url, client_id="sbx-client", client_secret="sbx-secret",
                                      redirect_uri="http://127.0.0.1:9/callback")
    credentials = store.credentials("shop", OAuthClient(config))   # real time: the stored token is long expired
    (tmp / f"ready-{me}").touch()
    while not (tmp / "go").exists():
        time.sleep(0.005)
    print(credentials.headers()["Authorization"])
    """
)


def test_two_processes_refresh_once_and_share_the_rotated_token(world: World) -> None:
    world.login(world.store())  # expires_at is on the test's clock (2023): expired for the processes' real clock
    script = world.tmp / "refresh.py"
    script.write_text(PROCESS)
    args = [sys.executable, str(script), str(world.tmp), world.base_url]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    procs = [subprocess.Popen([*args, str(i)], cwd=ROOT, **pipes) for i in range(2)]  # type: ignore[call-overload]
    deadline = time.monotonic() + 60
    while not all((world.tmp / f"ready-{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline, [p.communicate() for p in procs]
        time.sleep(0.01)
    (world.tmp / "go").touch()  # both read the expired token, then both want to refresh at once
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    tokens = {out.strip() for out, _ in outputs}
    assert len(tokens) == 1 and world.refreshes() == 1, outputs
    store = world.store()
    assert store.get("shop").active  # no replayed refresh token, so the grant was not revoked for reuse
    stored = store.vault.get_oauth_tokens("shop")
    assert tokens == {f"Bearer {stored.access_token}"}
    assert stored.refresh_token and world.oauth().refresh(stored.refresh_token).access_token  # the live one
