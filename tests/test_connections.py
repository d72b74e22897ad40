"""Connections in the toolkit: key shapes, scopes, the vault key's home (keyring, env, file), the
store (save, health, revoke, erase), checks before every call, and the loopback redirect.

Everything runs against real things: the sandbox in-process or on a port, SQLite files, a real
listener on 127.0.0.1; the OS keyring is a fake registered through keyring's own API.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import keyring
import pytest
from cryptography.fernet import Fernet, InvalidToken
from keyring.backends import fail, null

from klaviyo_sandbox import DEMO_KEY, Sandbox
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.connections import Account, ConnectionStore, check_key_shape, fetch_account
from klaviyo_toolkit.errors import (
    AuthenticationError,
    ConnectionUnusableError,
    KlaviyoError,
    ToolkitUsageError,
    UnknownScopeError,
)
from klaviyo_toolkit.oauth_loopback import LoopbackRedirect, RedirectError, RedirectTimeout
from klaviyo_toolkit.redact import redact_text
from klaviyo_toolkit.scopes import covers, narrow, parse_scopes
from klaviyo_toolkit.vault import Vault
from klaviyo_toolkit.vault_keys import (
    EnvKeyProvider,
    FileKeyProvider,
    KeyringKeyProvider,
    default_key_provider,
    usable_keyring,
)
from tests.keyrings import LockedKeyring, MemoryKeyring

REAL_KEY = "pk_" + "0123456789abcdef" * 2 + "ab"
KLAVIYO = "https://a.klaviyo.com"
SANDBOX = "http://127.0.0.1:8787"
POSIX = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox(rate_limit_factor=None)
    yield sandbox
    sandbox.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConnectionStore]:
    vault = Vault(tmp_path / "vault.sqlite", FileKeyProvider(tmp_path / "vault.key"))
    yield ConnectionStore(vault)
    vault.close()


def login_key(store: ConnectionStore, sb: Sandbox, name: str, key: str = DEMO_KEY, **kw: object) -> Account | None:
    with sb.client(api_key=key) as kl:
        account = fetch_account(kl)
    store.save_api_key(name, key, base_url=SANDBOX, account=account, **kw)  # type: ignore[arg-type]
    return account


def client_on(store: ConnectionStore, sb: Sandbox, name: str) -> KlaviyoClient:
    return KlaviyoClient(credentials=store.credentials(name), transport=sb.transport(), hooks=[store.observe(name)])


# -- key shapes and scopes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "base", "says"),
    [
        ("hello", KLAVIYO, "not a Klaviyo private key"),
        ("hello", SANDBOX, "not a Klaviyo private key"),
        ("pk_short", KLAVIYO, "not a Klaviyo private key"),
        ("pk_" + "a" * 30 + "!", KLAVIYO, "not a Klaviyo private key"),
        ("AbC123", KLAVIYO, "public key"),
        ("pk_sandbox_demo", KLAVIYO, "sandbox key"),
        ("pk_sbx_0123456789abcdef01234567", KLAVIYO, "sandbox key"),
        ("   ", KLAVIYO, "no key"),
        (f'"{REAL_KEY}"', KLAVIYO, "^the key came in quotes; remove the quotes$"),
        (f"'{DEMO_KEY}'", SANDBOX, "^the key came in quotes; remove the quotes$"),
        (f"\u201c{REAL_KEY}\u201d", KLAVIYO, "^the key came in quotes; remove the quotes$"),
        (f"KLAVIYO_API_KEY={REAL_KEY}", KLAVIYO,
         "^the key starts with KLAVIYO_API_KEY=; paste only the key, without KLAVIYO_API_KEY=$"),
        (f'export KLAVIYO_API_KEY="{REAL_KEY}"', KLAVIYO, "without export KLAVIYO_API_KEY=$"),
    ],
)
def test_a_malformed_key_is_refused_without_echoing_it(key: str, base: str, says: str) -> None:
    with pytest.raises(ToolkitUsageError, match=says) as err:
        check_key_shape(key, base)
    assert key.strip() not in str(err.value) or not key.strip()
    assert REAL_KEY not in str(err.value) and REAL_KEY[3:] not in str(err.value)
    assert redact_text(str(err.value)) == str(err.value), "no word of the message is taken for a secret"


def test_well_formed_keys_pass_and_sandbox_keys_only_off_klaviyo() -> None:
    assert check_key_shape(f"  {REAL_KEY}\n", KLAVIYO) == REAL_KEY
    assert check_key_shape(REAL_KEY, SANDBOX) == REAL_KEY
    assert check_key_shape("pk_sandbox_demo", SANDBOX) == "pk_sandbox_demo"
    assert check_key_shape("pk_sbx_0123456789abcdef01234567", SANDBOX)


def test_scopes_are_checked_against_the_catalog_with_a_suggestion() -> None:
    assert parse_scopes("lists:read, profiles:write lists:read") == ("lists:read", "profiles:write")
    with pytest.raises(UnknownScopeError, match=r"did you mean 'campaigns:read'\?"):
        parse_scopes("campaign:read")
    with pytest.raises(UnknownScopeError, match=r"'nonsense' is not a Klaviyo scope$"):
        parse_scopes(["lists:read", "nonsense"])


def test_write_covers_read_and_narrow_splits_what_a_grant_allows() -> None:
    assert covers({"lists:write"}, "lists:read") and not covers({"lists:read"}, "lists:write")
    assert covers({"*"}, "anything:write")
    effective, missing = narrow(["lists:write", "metrics:read"], ["lists:read", "profiles:read", "metrics:read"])
    assert effective == ("lists:read", "metrics:read") and missing == ("profiles:read",)


# -- where the vault key lives ------------------------------------------------------------------------


def test_without_a_usable_keyring_the_environment_then_a_0600_file_holds_the_key(tmp_path: Path) -> None:
    assert usable_keyring(fail.Keyring()) is None and usable_keyring(null.Keyring()) is None
    key = Fernet.generate_key().decode()
    from_env = default_key_provider(tmp_path, {"PERSONAS_VAULT_KEY": key}, keyring_backend=fail.Keyring())
    assert isinstance(from_env, EnvKeyProvider) and from_env.load() == [key.encode()]
    from_file = default_key_provider(tmp_path, {}, keyring_backend=fail.Keyring())
    assert isinstance(from_file, FileKeyProvider) and from_file.path == tmp_path / "vault.key"


#: Run in a fresh interpreter (keyring not imported yet): for each environment, what ``none_possible``
#: says; then, for the last one, whether keyring itself finds a usable backend, and whether asking
#: ``usable_keyring`` imported keyring at all.
_ASK = """
import json, sys
from klaviyo_toolkit.vault_keys import none_possible, usable_keyring
envs = json.loads(sys.argv[1])
said = [none_possible(env) for env in envs]
before = usable_keyring()
imported = "keyring" in sys.modules
import keyring
print(json.dumps({"said": said, "fast": before is None and not imported,
                  "keyring_finds": usable_keyring(keyring.get_keyring()) is not None}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the no-D-Bus shortcut is Linux's")
def test_keyring_is_not_imported_where_it_can_find_no_backend_and_keyring_agrees(tmp_path: Path) -> None:
    """Importing keyring and probing its backends costs 60-150 ms a command; where none can be usable
    (turned off, or Linux with no D-Bus session, config or plugin) it is skipped, and keyring, asked
    all the same, finds none. Each sign of a possible backend sends the question to keyring."""
    import json
    import subprocess

    home, runtime, config = tmp_path / "home", tmp_path / "run", tmp_path / "config"
    for folder in (home, runtime, config / "python_keyring"):
        folder.mkdir(parents=True)
    headless = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime),
                "XDG_CONFIG_HOME": str(config)}
    if Path(f"/run/user/{os.getuid()}/bus").exists():
        pytest.skip("this machine has a D-Bus session socket for this user: not headless")
    envs = [
        {**headless, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"},
        {**headless, "PYTHON_KEYRING_BACKEND": " keyring.backends.null.Keyring "},
        {**headless, "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring"},  # a plugin: keyring decides
        {**headless, "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nowhere"},
        {**headless, "DISPLAY": ":0"},
        {**headless, "WAYLAND_DISPLAY": "wayland-0"},
        headless,
    ]
    ran = subprocess.run([sys.executable, "-c", _ASK, json.dumps(envs)], env=headless, capture_output=True,
                         text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout)
    assert found["said"] == [True, True, False, False, False, False, True]
    assert found["fast"] and not found["keyring_finds"]  # skipped, and rightly: keyring finds none either

    # a session bus socket (a file will do for the check), then keyring's own config file, each alone
    rc = "[backend]\ndefault-keyring=keyring.backends.null.Keyring\n"
    for made, text in ((runtime / "bus", ""), (config / "python_keyring" / "keyringrc.cfg", rc)):
        made.write_text(text)
        ran = subprocess.run([sys.executable, "-c", _ASK, json.dumps([headless])], env=headless, capture_output=True,
                             text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["said"] == [False], made  # keyring is asked
        made.unlink()


def test_keyring_already_imported_is_asked_so_a_backend_set_in_process_is_used() -> None:
    """A program that chose a backend with ``keyring.set_keyring`` keeps it, whatever the environment says."""
    from klaviyo_toolkit.vault_keys import none_possible

    assert "keyring.core" in sys.modules  # this module imports keyring
    assert none_possible({"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}) is False


def test_keyring_configured_by_keyrings_own_api_is_used_first(tmp_path: Path) -> None:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        key = Fernet.generate_key().decode()
        provider = default_key_provider(tmp_path, {"PERSONAS_VAULT_KEY": key})
        assert isinstance(provider, KeyringKeyProvider)
        assert provider.load() == [key.encode()]  # an empty keyring adopts the environment's key
    finally:
        keyring.set_keyring(fail.Keyring())
    assert list(backend.entries) == [("klaviyo-personas vault", str(tmp_path.resolve()))]


@POSIX
def test_a_vault_made_before_the_keyring_stays_readable_and_its_key_file_goes(tmp_path: Path) -> None:
    before = Vault(tmp_path / "vault.sqlite", FileKeyProvider.in_home(tmp_path))
    before.put_api_key("acme", REAL_KEY)
    before.close()
    assert (tmp_path / "vault.key").exists()

    backend = MemoryKeyring()
    provider = default_key_provider(tmp_path, {}, keyring_backend=backend)
    with Vault(tmp_path / "vault.sqlite", provider) as vault:
        assert vault.get_api_key("acme").reveal() == REAL_KEY
    assert not (tmp_path / "vault.key").exists(), "the key moved into the keyring"
    assert len(backend.entries) == 1


def test_a_fresh_vault_with_a_keyring_makes_its_key_there_and_no_file(tmp_path: Path) -> None:
    backend = MemoryKeyring()
    with Vault(tmp_path / "vault.sqlite", default_key_provider(tmp_path, {}, keyring_backend=backend)) as vault:
        vault.put_api_key("acme", REAL_KEY)
    assert not (tmp_path / "vault.key").exists()
    (stored,) = backend.entries.values()
    assert Fernet(stored.encode()) and REAL_KEY not in stored


def test_a_locked_keyring_is_a_clear_error_not_a_new_key(tmp_path: Path) -> None:
    provider = default_key_provider(tmp_path, {}, keyring_backend=LockedKeyring())
    with pytest.raises(ToolkitUsageError, match=r"OS keyring .* cannot be used .*unlock it"):
        provider.load()
    assert not (tmp_path / "vault.key").exists()


@POSIX
def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    provider = default_key_provider(tmp_path, {}, keyring_backend=fail.Keyring())
    provider.load()
    assert stat.S_IMODE((tmp_path / "vault.key").stat().st_mode) == 0o600
    (tmp_path / "vault.key").chmod(0o640)
    with pytest.raises(ToolkitUsageError, match="chmod 600"):
        Vault(tmp_path / "vault.sqlite", default_key_provider(tmp_path, {}, keyring_backend=fail.Keyring()))


def test_rotating_a_keyring_key_reencrypts_everything_and_can_retire_the_old(tmp_path: Path) -> None:
    backend = MemoryKeyring()
    provider = KeyringKeyProvider("home", backend=backend)
    with Vault(tmp_path / "vault.sqlite", provider) as vault:
        vault.put_api_key("a", REAL_KEY)
        vault.put_api_key("b", REAL_KEY.replace("0", "1"))
        (old,) = provider.load()
        assert vault.rotate_key(drop_old_keys=True) == 2
        (new,) = provider.load()
        assert new != old
        for (token,) in sqlite3.connect(vault.path).execute("SELECT secret FROM credentials"):
            Fernet(new).decrypt(token)
            with pytest.raises(InvalidToken):
                Fernet(old).decrypt(token)
        assert vault.get_api_key("a").reveal() == REAL_KEY


def test_another_process_rotating_the_key_does_not_strand_this_one(tmp_path: Path) -> None:
    keys = FileKeyProvider(tmp_path / "vault.key")
    with Vault(tmp_path / "vault.sqlite", keys) as here, Vault(tmp_path / "vault.sqlite", keys) as there:
        here.put_api_key("a", REAL_KEY)
        there.rotate_key(drop_old_keys=True)  # `here` still holds the old key in memory
        assert here.get_api_key("a").reveal() == REAL_KEY  # re-reads the key list when it must
        here.put_api_key("b", REAL_KEY)  # and encrypts with the newest one
        assert there.get_api_key("b").reveal() == REAL_KEY


# -- the store --------------------------------------------------------------------------------------


def test_a_connection_records_account_scopes_and_health_never_a_secret(store: ConnectionStore, sb: Sandbox) -> None:
    account = login_key(store, sb, "acme", scopes=("lists:read",))
    assert account == Account("SbxPub", "Northwind Outfitters", "America/New_York")
    conn = store.get("acme")
    assert (conn.kind, conn.account, conn.scopes, conn.status, conn.health()) == (
        "api_key", account, ("lists:read",), "active", "ok",
    )  # fmt: skip
    shown = f"{conn!r} {conn.as_dict()} {store!r} {store.list()}"
    assert DEMO_KEY not in shown
    with pytest.raises(ToolkitUsageError, match=r"no connection named 'nope' \(stored: acme\)"):
        store.get("nope")


def test_a_connection_the_vault_key_cannot_open_is_not_healthy(tmp_path: Path, sb: Sandbox) -> None:
    """Health must not be read from the record alone: an entry written under another vault key is
    listed, but nothing can be done with it until that key is used."""
    with Vault(tmp_path / "vault.sqlite", FileKeyProvider(tmp_path / "vault.key")) as vault:
        login_key(ConnectionStore(vault), sb, "acme")
    other = EnvKeyProvider(environ={"PERSONAS_VAULT_KEY": Fernet.generate_key().decode()})
    with Vault(tmp_path / "vault.sqlite", other) as vault:
        store = ConnectionStore(vault)
        (listed,) = store.list()
        for conn in (listed, store.get("acme")):
            assert conn.active and not conn.readable
            assert conn.health() == conn.as_dict()["health"] == "not readable (another vault key)"
            assert conn.as_dict()["readable"] is False
    with Vault(tmp_path / "vault.sqlite", FileKeyProvider(tmp_path / "vault.key")) as vault:
        conn = ConnectionStore(vault).get("acme")
        assert conn.readable and conn.health() == "ok"


def test_calls_check_the_connection_first_so_a_revoke_stops_the_next_call(store: ConnectionStore, sb: Sandbox) -> None:
    login_key(store, sb, "acme")
    kl = client_on(store, sb, "acme")
    assert kl.call("get_lists").status == 200
    seen = len(sb.requests)
    done = store.revoke("acme")
    assert done.changed and not done.at_klaviyo
    with pytest.raises(ConnectionUnusableError, match="connection 'acme' was revoked") as err:
        kl.call("get_lists")
    assert not isinstance(err.value, KlaviyoError), "handlers of failed calls must not swallow it"
    assert len(sb.requests) == seen, "no request was sent"
    again = store.revoke("acme")
    assert not again.changed and again.connection.status_at == done.connection.status_at


@POSIX
def test_revoking_erases_the_secret_from_the_file(tmp_path: Path, store: ConnectionStore, sb: Sandbox) -> None:
    login_key(store, sb, "acme")
    db = sqlite3.connect(tmp_path / "vault.sqlite")
    (ciphertext,) = [bytes(r[0]) for r in db.execute("SELECT secret FROM credentials")]
    db.close()
    store.revoke("acme")
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("vault.sqlite"))
    assert ciphertext[:40] not in raw and DEMO_KEY.encode() not in raw
    assert b"acme" in raw  # the record stays, so status and running personas can say what happened
    assert stat.S_IMODE((tmp_path / "vault.sqlite").stat().st_mode) == 0o600


def test_a_401_marks_the_connection_needs_reauth(store: ConnectionStore, sb: Sandbox) -> None:
    key = sb.create_key(["lists:read", "accounts:read"])
    login_key(store, sb, "acme", key)
    kl = client_on(store, sb, "acme")
    kl.call("get_lists")
    sb.revoke_key(key)  # deleted in Klaviyo by someone else
    with pytest.raises(AuthenticationError):
        kl.call("get_lists")
    conn = store.get("acme")
    assert conn.status == "needs_reauth" and "rejected its key" in (conn.reason or "")
    seen = len(sb.requests)
    with pytest.raises(ConnectionUnusableError, match="needs re-auth: Klaviyo rejected its key"):
        kl.call("get_lists")
    assert len(sb.requests) == seen


def test_saving_again_makes_it_active_and_hints_speak_the_callers_words(tmp_path: Path, sb: Sandbox) -> None:
    from klaviyo_toolkit.connections import ConnectionHints

    vault = Vault(tmp_path / "v.sqlite", FileKeyProvider(tmp_path / "k"))
    store = ConnectionStore(vault, hints=ConnectionHints(login_key="run `app login {name}`"))
    login_key(store, sb, "acme")
    store.revoke("acme")
    with pytest.raises(ConnectionUnusableError, match=r"; run `app login acme`$"):
        store.usable("acme")
    login_key(store, sb, "acme")
    assert store.get("acme").active and client_on(store, sb, "acme").call("get_lists").status == 200
    vault.close()


# -- the loopback redirect --------------------------------------------------------------------------


def _hit(url: str, out: list[httpx.Response]) -> threading.Thread:
    def go() -> None:
        out.append(httpx.get(url, timeout=10))

    thread = threading.Thread(target=go)
    thread.start()
    return thread


def test_the_redirect_listener_returns_the_code_and_answers_the_browser() -> None:
    got: list[str] = []
    with LoopbackRedirect() as listener:
        assert listener.redirect_uri.startswith("http://127.0.0.1:")
        waiting = threading.Thread(target=lambda: got.append(listener.wait("s1", timeout=10)))
        waiting.start()
        stray = httpx.get(listener.redirect_uri.replace("/callback", "/favicon.ico"), timeout=10)
        good = httpx.get(listener.redirect_uri + "?code=c0de&state=s1", timeout=10)
        waiting.join()
    assert got == ["c0de"]
    assert stray.status_code == 404 and good.status_code == 200 and "close this tab" in good.text


@pytest.mark.parametrize(
    ("query", "code", "says"),
    [
        ("code=c0de&state=forged", "state_mismatch", "state does not match"),
        ("error=access_denied&error_description=the+user+denied&state=s1", "access_denied", "did not authorize"),
        ("state=s1", "no_code", "no authorization code"),
    ],
)
def test_a_bad_redirect_is_refused(query: str, code: str, says: str) -> None:
    answers: list[httpx.Response] = []
    with LoopbackRedirect() as listener:
        hit = _hit(f"{listener.redirect_uri}?{query}", answers)
        with pytest.raises(RedirectError, match=says) as err:
            listener.wait("s1", timeout=10)
        hit.join()
    assert err.value.code == code and answers[0].status_code == 400


def test_a_connection_that_sends_nothing_does_not_hold_the_login_past_its_timeout() -> None:
    """A browser's speculative pre-connection (or any local process) opens and stays silent."""
    import socket
    import time

    with LoopbackRedirect() as listener:
        port = int(listener.redirect_uri.split(":")[2].split("/")[0])
        idle = socket.create_connection(("127.0.0.1", port))
        try:
            started = time.monotonic()
            with pytest.raises(RedirectTimeout):
                listener.wait("s1", timeout=1.0)
            assert time.monotonic() - started < 5.0
        finally:
            idle.close()


def test_no_redirect_in_time_is_a_timeout() -> None:
    with LoopbackRedirect() as listener, pytest.raises(RedirectTimeout, match="within"):
        listener.wait("s1", timeout=0.3)
