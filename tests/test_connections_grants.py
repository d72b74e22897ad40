"""No OAuth grant is left alive at Klaviyo unseen: a grant replaced by a new login (or a key, or removed)
is kept encrypted until Klaviyo has revoked it, and a revoke racing a refresh ends the token the
refresh stored, not the one it spent.

The sandbox serves Klaviyo's OAuth endpoints on a real port, with a ManualClock shared with the client.
It follows RFC 7009 §2.2: revoking a refresh token that was already rotated away changes nothing (the
token is no longer valid), so a client that revokes a stale token leaves the grant alive, as it would
at a server that does the least the RFC allows. The races are ordered by httpx event hooks on the
clients' own HTTP connections (what each process sends and receives), never by patching our code.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import httpx
import pytest

from klaviyo_sandbox import DEMO_KEY, Faults
from klaviyo_toolkit.connections import Account
from klaviyo_toolkit.errors import ConnectionUnusableError, RevokedCredentialError, ServerError
from klaviyo_toolkit.oauth import OAuthClient, VaultTokenSource
from klaviyo_toolkit.vault import TokenSet, Vault
from tests.test_connections_oauth import LIFETIME, World, world

__all__ = ["world"]  # a fixture, used by name: a sandbox on a port, a vault and a clock


def alive(world: World, tokens: TokenSet) -> bool:
    """Whether the grant ``tokens`` began is still alive at the sandbox (any of its refresh tokens works)."""
    refresh = world.sb.store.value("oauth_refresh", {})
    assert tokens.refresh_token
    grant = refresh[tokens.refresh_token]["grant"]
    return any(info["active"] for info in refresh.values() if info["grant"] == grant)


def hooked(world: World, **hooks: list[object]) -> OAuthClient:
    """The app's OAuth client on an HTTP connection with httpx event ``hooks`` (to order a race)."""
    return OAuthClient(world.oauth().config, http_client=httpx.Client(event_hooks=hooks), clock=world.clock)


# -- a grant replaced or removed -----------------------------------------------------------------


def test_a_new_login_keeps_the_grant_it_replaced_until_klaviyo_has_revoked_it(world: World) -> None:
    store = world.store()
    first = world.login(store)
    second = world.login(store)  # the same connection, authorized again
    assert alive(world, first) and alive(world, second), "storing does not call Klaviyo"
    (old,) = store.retired("shop")
    assert old.client_id == "sbx-client" and old.base_url == world.base_url
    assert first.refresh_token and first.refresh_token not in repr(old)
    assert first.refresh_token.encode() not in (world.tmp / "vault.sqlite").read_bytes(), "kept encrypted"

    world.sb.faults = Faults(error_rate=1.0, status=503, operations=["oauth.revoke"])
    with pytest.raises(ServerError):
        store.end_retired(old, world.oauth())
    assert store.retired("shop") == [old] and alive(world, first), "a failed revoke loses nothing"

    store.vault.rotate_key(drop_old_keys=True)  # kept tokens are re-encrypted with the rest
    world.sb.faults = Faults()
    assert store.end_retired(old, world.oauth())
    assert not alive(world, first) and alive(world, second) and store.retired() == []
    assert not world.store().end_retired(old, world.oauth()), "ended once; another process finds it gone"
    assert store.get("shop").active


def test_a_key_over_an_oauth_grant_and_removing_it_keep_the_grant_to_revoke(world: World) -> None:
    store = world.store()
    first = world.login(store)
    store.save_api_key("shop", DEMO_KEY, base_url=world.base_url, account=Account("SbxPub"))
    second = world.login(store, "other")
    store.remove("other")
    assert {g.name for g in store.retired()} == {"shop", "other"}
    for grant in store.retired():
        assert store.end_retired(grant, world.oauth())
    assert not alive(world, first) and not alive(world, second)


def test_storing_the_same_tokens_again_retires_nothing(world: World) -> None:
    store = world.store()
    tokens = world.login(store)
    store.save_oauth("shop", tokens, base_url=world.base_url, account=Account("SbxPub"), client_id="sbx-client")
    assert store.retired() == [] and alive(world, tokens)


# -- a revoke racing a refresh --------------------------------------------------------------------


def test_a_revoke_racing_a_refresh_ends_the_token_the_refresh_stored(world: World) -> None:
    """One process refreshes (Klaviyo rotates the refresh token) while another revokes the connection.

    The refresh is held just after Klaviyo answered it, before the new tokens are stored; then the
    revoke starts. Reading the tokens without the refresh's lock, it would revoke the refresh token
    just spent (a no-op: it is no longer valid), then erase the entry once the refresh stored the new
    one: revoked here, alive at Klaviyo. Taking the lock, it waits, and revokes the stored one."""
    store = world.store()
    world.login(store)
    world.clock.advance(LIFETIME + 1)  # the next call refreshes
    rotated, go, revoke_sent = threading.Event(), threading.Event(), threading.Event()

    def hold_after_refresh(response: httpx.Response) -> None:
        if b"grant_type=refresh_token" in response.request.content:
            rotated.set()
            assert go.wait(30)

    def note_revoke(request: httpx.Request) -> None:
        if request.url.path == "/oauth/revoke":
            revoke_sent.set()

    refresher = world.store().credentials("shop", hooked(world, response=[hold_after_refresh]))
    errors: list[BaseException] = []
    revocations = []

    def refresh() -> None:
        try:
            refresher.headers()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def revoke() -> None:
        try:
            revocations.append(world.store().revoke("shop", oauth=hooked(world, request=[note_revoke])))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=refresh), threading.Thread(target=revoke)]
    threads[0].start()
    assert rotated.wait(30), "the refresh reached Klaviyo"
    threads[1].start()
    revoke_sent.wait(2)  # unlocked, the revoke goes out at once; locked, it waits for the refresh
    go.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert not world.grant_alive(), "the rotated refresh token is still alive at Klaviyo"
    assert not any(not info["revoked"] for info in world.sb.store.value("oauth_access", {}).values())
    (done,) = revocations
    assert done.changed and done.at_klaviyo
    conn = store.get("shop")
    assert conn.status == "revoked" and conn.fingerprint == ""
    with pytest.raises(ConnectionUnusableError, match="was revoked"):
        refresher.headers()


class Unlocked:
    """A token store whose updates do not shut other writers out (a store over a file system without
    working locks, or another database): a revoke can land while a refresh is in flight. The vault's
    own updates hold its write lock, where this cannot happen; a refresher must be safe on either."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def get_oauth_tokens(self, name: str) -> TokenSet:
        return self.vault.get_oauth_tokens(name)

    @contextlib.contextmanager
    def update_oauth_tokens(self, name: str) -> Iterator[UnlockedUpdate]:
        yield UnlockedUpdate(self.vault, name)


class UnlockedUpdate:
    def __init__(self, vault: Vault, name: str) -> None:
        self.vault, self.name = vault, name
        self.tokens = vault.get_oauth_tokens(name)

    def store(self, tokens: TokenSet) -> None:
        self.vault.put_oauth_tokens(self.name, tokens)
        self.tokens = tokens

    def revoked(self) -> bool:
        info = self.vault.info(self.name)
        return info.revoked or info.erased

    def revoke(self, reason: str | None = None) -> None:
        self.vault.revoke(self.name)


@pytest.mark.parametrize("revoke_reachable", [True, False])
def test_a_refresh_that_finds_its_connection_revoked_revokes_its_new_tokens(
    world: World, revoke_reachable: bool
) -> None:
    store = world.store()
    world.login(store)
    world.clock.advance(LIFETIME + 1)

    def revoke_meanwhile(response: httpx.Response) -> None:
        if b"grant_type=refresh_token" in response.request.content:  # Klaviyo has rotated the token
            assert world.store().revoke("shop", oauth=world.oauth()).at_klaviyo  # sends the spent one
            if not revoke_reachable:
                world.sb.faults = Faults(error_rate=1.0, status=503, operations=["oauth.revoke"])

    source = VaultTokenSource(Unlocked(store.vault), "shop", hooked(world, response=[revoke_meanwhile]))
    with pytest.raises(RevokedCredentialError) as err:
        source.access_token()
    assert "revoked while its token was being refreshed" in str(err.value)
    assert store.vault.info("shop").revoked, "the new tokens did not bring the connection back"
    if revoke_reachable:
        assert not world.grant_alive(), "the new refresh token is still alive at Klaviyo"
        assert store.vault.info("shop").erased
        return
    assert world.grant_alive() and "could not be revoked" in str(err.value)
    world.sb.faults = Faults()  # Klaviyo is back: revoking the connection again ends what was kept
    assert store.revoke("shop", oauth=world.oauth()).at_klaviyo and not world.grant_alive()
