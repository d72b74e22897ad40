"""A connection logged in again while a client made for it still runs (a chat, a worker's run).

The client was made for one login: its server, its account, its kind of secret, its toolset. A later
login under the same name for another server, account, app or kind, or with fewer scopes, must stop
that client before its next request, with a message that says so: never send the new login's secret
to the old server (which answers 401 and would mark the new login "needs re-auth"), act in another
account under the first one's name, or fail with a developer's error about vault entry kinds. A new
key for the same login (a rotated key) goes on being used.

Real parts only: two in-process sandboxes (two servers), a vault in a SQLite file, the sandbox's own
OAuth consent and token endpoints.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from klaviyo_sandbox import DEMO_KEY, Sandbox
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.connections import Account, ConnectionHints, ConnectionStore, fetch_account
from klaviyo_toolkit.errors import ConnectionUnusableError, ToolkitUsageError
from klaviyo_toolkit.oauth import OAuthClient, OAuthConfig, authorization_url, new_state, parse_redirect, pkce_pair
from klaviyo_toolkit.vault import FileKeyProvider, Vault
from tests.oauth_consent import consent

OLD, NEW = "http://127.0.0.1:8787", "http://127.0.0.1:8788"


@pytest.fixture
def sandboxes() -> Iterator[tuple[Sandbox, Sandbox]]:
    old, new = Sandbox(rate_limit_factor=None), Sandbox(rate_limit_factor=None)
    yield old, new
    old.close()
    new.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConnectionStore]:
    vault = Vault(tmp_path / "vault.sqlite", FileKeyProvider(tmp_path / "vault.key"))
    yield ConnectionStore(vault)
    vault.close()


def login_key(store: ConnectionStore, sb: Sandbox, base_url: str, key: str = DEMO_KEY, **kw: object) -> None:
    with sb.client(api_key=key) as kl:
        account = fetch_account(kl)
    store.save_api_key("acme", key, base_url=base_url, account=account, **kw)  # type: ignore[arg-type]


def login_oauth(store: ConnectionStore, sb: Sandbox) -> OAuthClient:
    config = OAuthConfig.for_base_url(OLD, client_id="sbx-client", client_secret="sbx-secret",
                                      redirect_uri="http://127.0.0.1:9/callback", scopes=("lists:read",))  # fmt: skip
    oauth = OAuthClient(config, transport=sb.transport())
    verifier, challenge = pkce_pair()
    state = new_state()
    with httpx.Client(transport=sb.transport()) as browser:
        answer = consent(browser, authorization_url(config, state, challenge))
    tokens = oauth.exchange_code(parse_redirect(answer.headers["location"], state), verifier)
    store.save_oauth("acme", tokens, base_url=OLD, account=Account("SbxPub"), client_id="sbx-client")
    return oauth


def running_client(store: ConnectionStore, sb: Sandbox, oauth: OAuthClient | None = None) -> KlaviyoClient:
    kl = KlaviyoClient(credentials=store.credentials("acme", oauth), transport=sb.transport(),
                       hooks=[store.observe("acme")])  # fmt: skip
    assert kl.call("get_lists").status == 200
    return kl


def test_a_login_on_another_server_stops_the_old_client_before_it_sends_the_new_key(
    store: ConnectionStore, sandboxes: tuple[Sandbox, Sandbox]
) -> None:
    old, new = sandboxes
    login_key(store, old, OLD)
    kl = running_client(store, old)
    key = new.create_key(["accounts:read", "lists:read"])
    login_key(store, new, NEW, key, scopes=("accounts:read", "lists:read"))
    seen = len(old.requests)
    with pytest.raises(ConnectionUnusableError, match=r"'acme' changed: .*another server \(http://127.0.0.1:8788\)"):
        kl.call("get_lists")
    assert len(old.requests) == seen, "the new login's key was sent to the old server"
    assert store.get("acme").active, "the new login stays usable"
    with KlaviyoClient(credentials=store.credentials("acme"), transport=new.transport()) as fresh:
        assert fresh.call("get_lists").status == 200


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"account": Account("OtherCo")}, r"for another account \(OtherCo\)"),
        ({"scopes": ("lists:read",)}, r"with fewer scopes \(without \*\)"),
    ],
)
def test_a_login_for_another_account_or_with_fewer_scopes_stops_the_old_client(
    store: ConnectionStore, sandboxes: tuple[Sandbox, Sandbox], change: dict[str, object], says: str
) -> None:
    old, _ = sandboxes
    login_key(store, old, OLD)
    kl = running_client(store, old)
    account = change.get("account", Account("SbxPub"))
    store.save_api_key("acme", DEMO_KEY, base_url=OLD, account=account, scopes=change.get("scopes", ("*",)))  # type: ignore[arg-type]
    seen = len(old.requests)
    with pytest.raises(ConnectionUnusableError, match=says):
        kl.call("get_lists")
    assert len(old.requests) == seen


def test_a_new_key_for_the_same_login_is_used_by_the_running_client(
    store: ConnectionStore, sandboxes: tuple[Sandbox, Sandbox]
) -> None:
    old, _ = sandboxes
    login_key(store, old, OLD, old.create_key(["accounts:read", "lists:read"]), scopes=("accounts:read", "lists:read"))
    kl = running_client(store, old)
    login_key(store, old, OLD, DEMO_KEY)  # a rotated key, with more scopes: the same login
    assert kl.call("get_lists").status == 200
    assert old.requests[-1]["operation_id"] == "get_lists"


def test_a_key_over_a_running_oauth_client_and_an_oauth_grant_over_a_key_client_stop_them_clearly(
    store: ConnectionStore, sandboxes: tuple[Sandbox, Sandbox]
) -> None:
    old, _ = sandboxes
    oauth = login_oauth(store, old)
    on_grant = running_client(store, old, oauth)
    login_key(store, old, OLD)
    with pytest.raises(ConnectionUnusableError, match="logged in again with a private key"):
        on_grant.call("get_lists")
    on_key = running_client(store, old)
    login_oauth(store, old)
    seen = len(old.requests)
    with pytest.raises(ConnectionUnusableError, match="logged in again with an OAuth grant"):
        on_key.call("get_lists")
    assert len(old.requests) == seen


def test_a_connection_removed_under_a_running_client_is_said_in_the_applications_words(
    tmp_path: Path, sandboxes: tuple[Sandbox, Sandbox]
) -> None:
    old, _ = sandboxes
    vault = Vault(tmp_path / "app.sqlite", FileKeyProvider(tmp_path / "app.key"))
    store = ConnectionStore(vault, hints=ConnectionHints(unknown="run `app login NAME`"))
    login_key(store, old, OLD)
    kl = running_client(store, old)
    store.remove("acme")
    with pytest.raises(ToolkitUsageError, match=r"no connection named 'acme' \(stored: none\); run `app login NAME`$"):
        kl.call("get_lists")
    vault.close()
