"""Vault: secrets encrypted at rest, keys rotated, credentials revoked, nothing secret printed."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from klaviyo_toolkit.auth import ApiKey
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import RevokedCredentialError, ToolkitUsageError
from klaviyo_toolkit.vault import (
    EnvKeyProvider,
    FileKeyProvider,
    TokenSet,
    Vault,
    default_key_provider,
)

PK = "pk_" + "0f1e2d3c4b5a" * 3
ACCESS = "at_" + "Acc3ssTok3n" * 4
REFRESH = "rt_" + "R3freshTok3n" * 4
TOKENS = TokenSet(ACCESS, REFRESH, expires_at=1_700_003_600.0, scopes=("lists:read", "profiles:write"))
POSIX = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def keys(tmp_path: Path) -> FileKeyProvider:
    return FileKeyProvider.in_home(tmp_path / "home")


@pytest.fixture
def vault(tmp_path: Path, keys: FileKeyProvider, clock: ManualClock) -> Vault:
    with Vault(tmp_path / "vault.db", keys, clock=clock) as v:
        yield v  # type: ignore[misc]


def raw_secrets(path: Path) -> dict[str, bytes]:
    db = sqlite3.connect(path)
    try:
        return {name: bytes(secret) for name, secret in db.execute("SELECT name, secret FROM credentials")}
    finally:
        db.close()


def file_bytes(folder: Path, prefix: str) -> bytes:
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith(prefix))


# -- keys ------------------------------------------------------------------------------------------


@POSIX
def test_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    provider = FileKeyProvider.in_home(tmp_path / "home")
    first = provider.load()
    assert len(first) == 1 and Fernet(first[0])
    assert stat.S_IMODE(provider.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(provider.path.parent.stat().st_mode) == 0o700
    assert FileKeyProvider(provider.path).load() == first  # read back, not made again


@POSIX
def test_key_file_readable_by_others_is_refused(keys: FileKeyProvider) -> None:
    keys.load()
    keys.path.chmod(0o644)
    with pytest.raises(ToolkitUsageError, match="chmod 600"):
        keys.load()


def test_default_provider_prefers_the_environment(tmp_path: Path) -> None:
    new, old = Fernet.generate_key(), Fernet.generate_key()
    env = {"PERSONAS_VAULT_KEY": f" {new.decode()} , {old.decode()} "}
    provider = default_key_provider(tmp_path, environ=env)
    assert isinstance(provider, EnvKeyProvider) and provider.load() == [new, old]

    from_home = default_key_provider(tmp_path / "h", environ={})
    assert isinstance(from_home, FileKeyProvider) and from_home.path == tmp_path / "h" / "vault.key"
    ignored = default_key_provider(tmp_path / "h", environ={"PERSONAS_HOME": str(tmp_path / "ph")})
    assert ignored.path == tmp_path / "h" / "vault.key", "the toolkit never reads PERSONAS_HOME"


def test_a_malformed_environment_key_is_refused_without_echoing_it() -> None:
    bad = "not-a-fernet-key-but-maybe-a-secret"
    with pytest.raises(ToolkitUsageError, match="Key 2 in PERSONAS_VAULT_KEY") as err:
        EnvKeyProvider(environ={"PERSONAS_VAULT_KEY": f"{Fernet.generate_key().decode()},{bad}"}).load()
    assert bad not in str(err.value)
    with pytest.raises(ToolkitUsageError, match="holds no vault key"):
        EnvKeyProvider(environ={}).load()


# -- storing and reading ---------------------------------------------------------------------------


def test_api_keys_and_tokens_round_trip(vault: Vault) -> None:
    info = vault.put_api_key("acme", PK, scopes=["profiles:read"])
    assert (info.name, info.kind, info.scopes, info.revoked) == ("acme", "api_key", ("profiles:read",), False)
    key = vault.get_api_key("acme")
    assert isinstance(key, ApiKey) and key.reveal() == PK

    vault.put_oauth_tokens("shop", TOKENS)
    assert vault.get_oauth_tokens("shop") == TOKENS
    assert [(i.name, i.kind, i.scopes) for i in vault.list()] == [
        ("acme", "api_key", ("profiles:read",)),
        ("shop", "oauth", ("lists:read", "profiles:write")),
    ]
    assert vault.info("shop").expires_at is not None


def test_wrong_kind_and_missing_names_say_what_to_do(vault: Vault) -> None:
    vault.put_api_key("acme", PK)
    with pytest.raises(ToolkitUsageError, match="use get_api_key"):
        vault.get_oauth_tokens("acme")
    with pytest.raises(ToolkitUsageError, match=r"No credential named 'nope'.*It holds: acme"):
        vault.get_api_key("nope")
    with pytest.raises(ToolkitUsageError, match="non-empty name"):
        vault.put_api_key("  ", PK)


@POSIX
def test_nothing_secret_is_stored_in_plaintext(tmp_path: Path, vault: Vault) -> None:
    vault.put_api_key("acme", PK, scopes=["profiles:read"])
    vault.put_oauth_tokens("shop", TOKENS)
    vault.rotate_key()
    vault.close()
    assert stat.S_IMODE((tmp_path / "vault.db").stat().st_mode) == 0o600
    stored = file_bytes(tmp_path, "vault.db")
    assert b"profiles:read" in stored and b"acme" in stored  # the check below looks at the right bytes
    for secret in (PK, ACCESS, REFRESH):
        assert secret.encode() not in stored


def test_repr_never_shows_a_secret(vault: Vault, keys: FileKeyProvider) -> None:
    vault.put_api_key("acme", PK)
    vault.put_oauth_tokens("shop", TOKENS)
    env = EnvKeyProvider(environ={"PERSONAS_VAULT_KEY": Fernet.generate_key().decode()})
    shown = " ".join(
        f"{x!r} {x!s}"
        for x in (vault, keys, env, TOKENS, vault.get_oauth_tokens("shop"), vault.get_api_key("acme"), vault.list())
    )
    for secret in (PK, ACCESS, REFRESH, *(k.decode() for k in keys.load()), *(k.decode() for k in env.load())):
        assert secret not in shown
    assert "shop" in shown and "acme" in shown


def test_a_ciphertext_moved_to_another_name_is_refused(tmp_path: Path, vault: Vault) -> None:
    vault.put_api_key("acme", PK)
    vault.put_api_key("other", "pk_" + "9" * 30)
    db = sqlite3.connect(tmp_path / "vault.db", isolation_level=None)
    db.execute("UPDATE credentials SET secret = (SELECT secret FROM credentials WHERE name = 'acme') "
               "WHERE name = 'other'")
    db.close()
    with pytest.raises(ToolkitUsageError, match="altered"):
        vault.get_api_key("other")


# -- revoking --------------------------------------------------------------------------------------


def test_revoked_credentials_raise_with_guidance(vault: Vault, clock: ManualClock) -> None:
    vault.put_api_key("acme", PK)
    vault.put_oauth_tokens("shop", TOKENS)
    revoked = vault.revoke("shop")
    clock.advance(3600)
    assert vault.revoke("shop").revoked_at == revoked.revoked_at  # the first time is kept
    with pytest.raises(RevokedCredentialError) as err:
        vault.get_oauth_tokens("shop")
    assert isinstance(err.value, ToolkitUsageError) and err.value.name == "shop"
    assert "Re-authenticate" in str(err.value) and "put_oauth_tokens" in str(err.value)
    assert vault.get_api_key("acme").reveal() == PK  # others are untouched
    assert {i.name: i.revoked for i in vault.list()} == {"acme": False, "shop": True}
    with pytest.raises(ToolkitUsageError, match="No credential named"):
        vault.revoke("nope")

    vault.put_oauth_tokens("shop", TOKENS)  # re-authenticated
    assert vault.get_oauth_tokens("shop") == TOKENS and not vault.info("shop").revoked


def test_update_oauth_tokens_commits_or_rolls_back(vault: Vault) -> None:
    vault.put_oauth_tokens("shop", TOKENS)
    with vault.update_oauth_tokens("shop") as update:
        assert update.tokens == TOKENS
        update.store(TokenSet("at_new", None, expires_at=1_700_007_200.0))  # no new refresh token, no scopes
        assert update.tokens.refresh_token == REFRESH
    stored = vault.get_oauth_tokens("shop")
    assert (stored.access_token, stored.refresh_token, stored.scopes) == ("at_new", REFRESH, TOKENS.scopes)

    with pytest.raises(RuntimeError), vault.update_oauth_tokens("shop") as update:
        update.store(TokenSet("at_lost", "rt_lost"))
        raise RuntimeError("the refresh failed after all")
    assert vault.get_oauth_tokens("shop").access_token == "at_new"

    with vault.update_oauth_tokens("shop") as update:
        update.revoke()
    with pytest.raises(RevokedCredentialError), vault.update_oauth_tokens("shop"):
        pass


def test_an_update_holds_the_write_lock_until_it_ends(vault: Vault, keys: FileKeyProvider) -> None:
    vault.put_oauth_tokens("shop", TOKENS)
    with Vault(vault.path, keys) as other_process:
        with vault.update_oauth_tokens("shop"):
            with pytest.raises(sqlite3.OperationalError, match="locked"), other_process.update_oauth_tokens(
                "shop", wait=0
            ):
                pass  # a second refresher cannot even read the tokens for update...
            assert other_process.get_oauth_tokens("shop") == TOKENS  # ...while plain readers go on
        with other_process.update_oauth_tokens("shop", wait=0) as update:  # released at the end of the block
            assert update.tokens == TOKENS


# -- rotating --------------------------------------------------------------------------------------


def test_rotate_key_reencrypts_everything(tmp_path: Path, vault: Vault, keys: FileKeyProvider) -> None:
    vault.put_api_key("acme", PK)
    vault.put_oauth_tokens("shop", TOKENS)
    (old,) = keys.load()
    before = raw_secrets(vault.path)

    vault.rotate_key()

    new, kept = keys.load()
    assert kept == old and new != old
    after = raw_secrets(vault.path)
    for name, token in after.items():
        assert token != before[name]
        with pytest.raises(InvalidToken):
            Fernet(old).decrypt(token)  # the old key alone no longer reads anything
        Fernet(new).decrypt(token)
    assert vault.get_api_key("acme").reveal() == PK and vault.get_oauth_tokens("shop") == TOKENS
    assert all(info.rotated_at is not None for info in vault.list())
    with Vault(vault.path, keys) as reopened:
        assert reopened.get_api_key("acme").reveal() == PK

    only_old = FileKeyProvider(tmp_path / "old.key")
    only_old.store([old])
    with Vault(vault.path, only_old) as stale, pytest.raises(ToolkitUsageError, match="cannot be decrypted"):
        stale.get_api_key("acme")


def test_rotate_key_can_drop_the_old_keys(vault: Vault, keys: FileKeyProvider) -> None:
    vault.put_api_key("acme", PK)
    new = Fernet.generate_key()
    vault.rotate_key(new, drop_old_keys=True)
    assert keys.load() == [new]
    assert vault.get_api_key("acme").reveal() == PK
    with Vault(vault.path, keys) as reopened:
        assert reopened.get_api_key("acme").reveal() == PK


def test_rotating_an_environment_key(tmp_path: Path) -> None:
    old = Fernet.generate_key()
    env = {"PERSONAS_VAULT_KEY": old.decode()}
    with Vault(tmp_path / "vault.db", EnvKeyProvider(environ=env)) as vault:
        vault.put_api_key("acme", PK)
        with pytest.raises(ToolkitUsageError, match="put it first in PERSONAS_VAULT_KEY"):
            vault.rotate_key()
        assert vault.get_api_key("acme").reveal() == PK  # the failed rotation changed nothing

    new = Fernet.generate_key()
    env["PERSONAS_VAULT_KEY"] = f"{new.decode()},{old.decode()}"  # what the error told us to do
    with Vault(tmp_path / "vault.db", EnvKeyProvider(environ=env)) as vault:
        assert vault.reencrypt() == 1
        token = raw_secrets(vault.path)["acme"]
        with pytest.raises(InvalidToken):
            Fernet(old).decrypt(token)
        assert vault.get_api_key("acme").reveal() == PK


def test_a_vault_whose_key_is_missing_here_is_refused_and_no_new_key_is_made(tmp_path: Path) -> None:
    """PERSONAS_VAULT_KEY unset in one shell must not make a key file that would take over the vault."""
    home = tmp_path / "home"
    made_with = Fernet.generate_key().decode()
    with Vault(home / "vault.sqlite", EnvKeyProvider("PERSONAS_VAULT_KEY", {"PERSONAS_VAULT_KEY": made_with})) as v:
        v.put_api_key("main", PK)
        v.put_secret("audit:key", b"k" * 32)
    unset = default_key_provider(home, environ={}, keyring_backend=_NO_KEYRING)
    with pytest.raises(ToolkitUsageError) as caught:
        Vault(home / "vault.sqlite", unset)
    assert "holds 2 encrypted entries" in str(caught.value) and "PERSONAS_VAULT_KEY" in str(caught.value)
    assert not (home / "vault.key").exists(), "no key was made"
    again = EnvKeyProvider("PERSONAS_VAULT_KEY", {"PERSONAS_VAULT_KEY": made_with})
    with Vault(home / "vault.sqlite", again) as v:
        assert v.get_api_key("main").reveal() == PK, "the vault is as it was"


def test_a_new_vault_still_makes_its_key_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Vault(home / "vault.sqlite", default_key_provider(home, environ={}, keyring_backend=_NO_KEYRING)) as v:
        v.put_api_key("main", PK)
    assert (home / "vault.key").exists()


def test_a_secret_under_another_key_names_the_vault_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "vault.sqlite"
    with Vault(path, EnvKeyProvider("K", {"K": Fernet.generate_key().decode()})) as v:
        v.put_secret("audit:key", b"k" * 32)
    with Vault(path, EnvKeyProvider("K", {"K": Fernet.generate_key().decode()})) as other:
        with pytest.raises(ToolkitUsageError) as caught:
            other.get_secret("audit:key")
        assert str(path) in str(caught.value) and "PERSONAS_VAULT_KEY" in str(caught.value)
        with pytest.raises(ToolkitUsageError, match="nothing was re-encrypted"):
            other.reencrypt()


@pytest.mark.parametrize("content", [os.urandom(4096), b"SQLite format 3\x00" + b"\x00" * 50])
def test_a_damaged_vault_file_names_itself_and_the_fix(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "vault.sqlite"
    path.write_bytes(content)
    with pytest.raises(ToolkitUsageError) as caught:
        Vault(path, EnvKeyProvider("K", {"K": Fernet.generate_key().decode()}))
    assert str(path) in str(caught.value) and "personas auth login" in str(caught.value)


class _NoKeyring:
    """A keyring backend that is never usable (``usable_keyring`` turns it down)."""

    priority = -1


_NO_KEYRING = _NoKeyring()


def test_an_empty_keyring_is_not_given_a_new_key_for_a_vault_that_holds_entries(tmp_path: Path) -> None:
    from tests.keyrings import MemoryKeyring

    home = tmp_path / "home"
    with Vault(home / "vault.sqlite", default_key_provider(home, environ={}, keyring_backend=MemoryKeyring())) as v:
        v.put_api_key("main", PK)
    elsewhere = MemoryKeyring()  # another login session's keyring, which never held this vault's key
    with pytest.raises(ToolkitUsageError, match="holds 1 encrypted entry, but its key is not here"):
        Vault(home / "vault.sqlite", default_key_provider(home, environ={}, keyring_backend=elsewhere))
    assert elsewhere.entries == {}, "no key was made in the keyring"


def test_a_folder_moved_away_from_its_keyring_entry_is_told_where_the_key_still_is(tmp_path: Path) -> None:
    """The keyring names a vault's key after its folder's full path: a folder moved (or restored to
    another path, or copied from another machine) finds no key under its new path. The person never
    saw the key, so the refusal says where it still is and how to bring it over, and that a lost key
    means logging in again."""
    from tests.keyrings import MemoryKeyring

    ring = MemoryKeyring()
    old = tmp_path / "old"
    with Vault(old / "vault.sqlite", default_key_provider(old, environ={}, keyring_backend=ring)) as v:
        v.put_api_key("main", PK)
    new = tmp_path / "new"
    old.rename(new)
    with pytest.raises(ToolkitUsageError) as caught:
        Vault(new / "vault.sqlite", default_key_provider(new, environ={}, keyring_backend=ring))
    message = str(caught.value)
    assert "keyring get 'klaviyo-personas vault' OLD_FOLDER" in message, message
    assert f"keyring set 'klaviyo-personas vault' '{new.resolve()}'" in message, message
    assert "move the vault aside and log in again" in message and "\n" not in message
    assert list(ring.entries) == [("klaviyo-personas vault", str(old.resolve()))], "no key was made"
    key = ring.entries[("klaviyo-personas vault", str(old.resolve()))]
    assert key not in message


def test_a_folder_copied_without_its_key_file_is_told_to_copy_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Vault(home / "vault.sqlite", default_key_provider(home, environ={}, keyring_backend=_NO_KEYRING)) as v:
        v.put_api_key("main", PK)
    (home / "vault.key").unlink()
    with pytest.raises(ToolkitUsageError, match=r"copy its vault.key here too \(mode 0600\)"):
        Vault(home / "vault.sqlite", default_key_provider(home, environ={}, keyring_backend=_NO_KEYRING))


def test_a_write_under_a_key_that_cannot_open_the_entries_is_refused_naming_the_key_that_can(tmp_path: Path) -> None:
    """PERSONAS_VAULT_KEY set to another valid key beside a vault written under vault.key: a secret
    stored under it would leave the vault on two keys, which no one key reads and rotate_key refuses."""
    home = tmp_path / "home"
    with Vault(home / "vault.sqlite", default_key_provider(home, environ={}, keyring_backend=_NO_KEYRING)) as v:
        v.put_api_key("acme", PK)
    before = file_bytes(home, "vault.")
    other = Fernet.generate_key().decode()
    wrong = default_key_provider(home, {"PERSONAS_VAULT_KEY": other}, keyring_backend=_NO_KEYRING)
    with Vault(home / "vault.sqlite", wrong) as v:
        writes = {
            "put_api_key": lambda: v.put_api_key("newone", PK),
            "put_oauth_tokens": lambda: v.put_oauth_tokens("shop", TOKENS),
            "put_secret": lambda: v.put_secret("audit:head", b"{}"),
            "put_secret_once": lambda: v.put_secret_once("audit:key", b"k" * 32),
            "check_writable": lambda: v.check_writable(),
        }
        for what, write in writes.items():
            with pytest.raises(ToolkitUsageError) as caught:
                write()
            message = str(caught.value)
            assert "entry 'acme'" in message and "nothing was written" in message, what
            assert "unset PERSONAS_VAULT_KEY to use that file" in message and "\n" not in message, what
            assert other not in message and (home / "vault.key").read_text().strip() not in message, what
        assert v.unreadable() == ["acme"] and v.unreadable("acme", "nope") == ["acme"]
        hint = v.key_hint()
        assert hint == f"the key in {home / 'vault.key'} opens it: unset PERSONAS_VAULT_KEY to use that file"
    assert file_bytes(home, "vault.") == before, "nothing was written"

    file_key = (home / "vault.key").read_text().strip()
    both = {"PERSONAS_VAULT_KEY": f"{other},{file_key}"}  # the new key first, the one that opens the vault after
    with Vault(home / "vault.sqlite", EnvKeyProvider(environ=both)) as v:
        assert v.unreadable() == [] and v.key_hint() is None
        v.put_api_key("newone", PK)
        assert v.reencrypt() == 2  # now on the new key alone
    with Vault(home / "vault.sqlite", EnvKeyProvider(environ={"PERSONAS_VAULT_KEY": other})) as v:
        assert v.get_api_key("acme").reveal() == PK and v.get_api_key("newone").reveal() == PK


def test_rotating_is_refused_before_a_new_key_is_kept_when_an_entry_cannot_be_opened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made_with = {"PERSONAS_VAULT_KEY": Fernet.generate_key().decode()}
    with Vault(home / "vault.sqlite", EnvKeyProvider(environ=made_with)) as v:
        v.put_api_key("acme", PK)
    stale = FileKeyProvider.in_home(home)
    stale.store([Fernet.generate_key()])  # a key file left from another vault
    before = file_bytes(home, "vault.")
    with Vault(home / "vault.sqlite", stale) as v:
        with pytest.raises(ToolkitUsageError, match=r"entry 'acme', which the key\(s\) from .*vault\.key cannot open"):
            v.rotate_key()
        hint = f"{stale.path} does not open it: set PERSONAS_VAULT_KEY to the key the vault was written with"
        assert v.key_hint() == hint
    assert file_bytes(home, "vault.") == before, "no key was added to the key file"
