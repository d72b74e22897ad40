"""An encrypted store for credentials: private API keys and OAuth tokens, rotated and revocable.

Secrets are encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256) through ``MultiFernet``, so
the key can be rotated: the newest key encrypts, every listed key still decrypts, and
:meth:`Vault.rotate_key` re-encrypts every row under a fresh key. What is not secret (name, kind,
scopes, times) is stored beside the ciphertext so :meth:`Vault.list` needs no key; it is repeated
inside the ciphertext and checked on read, so a row's ciphertext cannot be moved to another name.

Where the key comes from (:func:`default_key_provider`)::

    PERSONAS_VAULT_KEY=<newest>,<older>   Fernet keys, comma-separated, newest first
    <folder of the vault>/vault.key       otherwise; created with mode 0600

Example::

    vault = Vault(home / "vault.db")
    vault.put_api_key("acme", "pk_...", scopes=["profiles:read"])
    client = KlaviyoClient(credentials=vault.get_api_key("acme"))
    vault.revoke("acme")          # get_api_key("acme") now raises RevokedCredentialError

Note:
    Nothing here prints a secret: ``repr()`` of the vault, key providers, ``TokenSet`` and
    ``CredentialInfo`` shows names, fingerprints and masks only.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import datetime as _dt
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .auth import ApiKey, fingerprint, mask
from .clock import Clock, SystemClock
from .errors import RevokedCredentialError, ToolkitUsageError

__all__ = [
    "ENV_VAULT_KEY",
    "CredentialInfo",
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyProvider",
    "OAuthTokensUpdate",
    "TokenSet",
    "Vault",
    "default_key_provider",
]

ENV_VAULT_KEY = "PERSONAS_VAULT_KEY"
CredentialKind = Literal["api_key", "oauth"]
_GENERATE_HINT = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


# -- values --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSet:
    """OAuth tokens for one grant: access token, refresh token, expiry (epoch seconds) and scopes."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    scopes: tuple[str, ...] = ()
    token_type: str = "Bearer"

    def expires_within(self, now: float, seconds: float) -> bool:
        """True when the access token is expired or expires in less than ``seconds`` after ``now``."""
        return self.expires_at is not None and self.expires_at - now < seconds

    def __repr__(self) -> str:
        refresh = mask(self.refresh_token) if self.refresh_token else None
        return (
            f"TokenSet(access_token={mask(self.access_token)!r}, refresh_token={refresh!r}, "
            f"expires_at={self.expires_at!r}, scopes={self.scopes!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True)
class CredentialInfo:
    """What :meth:`Vault.list` shows about a credential: never the secret itself.

    Attributes:
        updated_at: when the secret last changed (stored again, or an OAuth refresh).
        rotated_at: when it was last re-encrypted under a new vault key.
        fingerprint: a short non-reversible id of the secret (the API key or the refresh token).
    """

    name: str
    kind: CredentialKind
    scopes: tuple[str, ...]
    created_at: _dt.datetime
    updated_at: _dt.datetime
    rotated_at: _dt.datetime | None
    revoked_at: _dt.datetime | None
    expires_at: _dt.datetime | None
    fingerprint: str

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


# -- keys ----------------------------------------------------------------------------------------


@runtime_checkable
class KeyProvider(Protocol):
    """Where the vault's Fernet keys live (newest first)."""

    def load(self) -> list[bytes]:
        """The keys, newest first; the first encrypts, all of them decrypt."""

    def store(self, keys: Sequence[bytes]) -> None:
        """Persist a new key list (newest first); called by :meth:`Vault.rotate_key`."""


def _check_keys(keys: Sequence[bytes], where: str) -> list[bytes]:
    if not keys:
        raise ToolkitUsageError(f"{where} holds no vault key. Generate one with: {_GENERATE_HINT}")
    for number, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ToolkitUsageError(
                f"Key {number} in {where} is not a Fernet key (32 url-safe base64-encoded bytes). "
                f"Generate one with: {_GENERATE_HINT}"
            ) from None
    return list(keys)


class EnvKeyProvider:
    """Keys from an environment variable (``PERSONAS_VAULT_KEY``): comma-separated, newest first.

    The vault cannot write the environment, so rotating means: put a new key first in the variable,
    restart, and call :meth:`Vault.reencrypt`.
    """

    def __init__(self, var: str = ENV_VAULT_KEY, environ: Mapping[str, str] | None = None) -> None:
        self.var = var
        self._environ = os.environ if environ is None else environ

    def load(self) -> list[bytes]:
        raw = self._environ.get(self.var, "")
        return _check_keys([part.strip().encode() for part in raw.split(",") if part.strip()], self.var)

    def store(self, keys: Sequence[bytes]) -> None:
        if list(keys) == self.load():
            return
        raise ToolkitUsageError(
            f"The vault key comes from {self.var}, which the vault cannot change. To rotate: generate a key "
            f"({_GENERATE_HINT}), put it first in {self.var} (comma-separated, newest first), restart, then "
            "call Vault.reencrypt()."
        )

    def __repr__(self) -> str:
        return f"EnvKeyProvider({self.var!r})"


class FileKeyProvider:
    """Keys in a file only its owner can read (mode 0600), one per line, newest first; made on first use."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()

    @classmethod
    def in_home(cls, home: str | Path) -> FileKeyProvider:
        """``<home>/vault.key``."""
        return cls(Path(home).expanduser() / "vault.key")

    def load(self) -> list[bytes]:
        with self._lock:
            if not self.path.exists():
                self._create()
            if os.name == "posix":
                mode = stat.S_IMODE(self.path.stat().st_mode)
                if mode & 0o077:
                    raise ToolkitUsageError(
                        f"The vault key file {self.path} can be read by others (mode {mode:o}); "
                        f"run `chmod 600 {self.path}`."
                    )
            lines = self.path.read_text(encoding="ascii").split()
            return _check_keys([line.encode() for line in lines], str(self.path))

    def store(self, keys: Sequence[bytes]) -> None:
        keys = _check_keys(keys, "the new key list")
        with self._lock:
            self._write(keys, replace=True)

    def _create(self) -> None:
        try:
            self._write([Fernet.generate_key()], replace=False)
        except FileExistsError:  # another process made it first
            pass

    def _write(self, keys: Sequence[bytes], *, replace: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.path.with_name(self.path.name + ".tmp") if replace else self.path
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
        fd = os.open(target, flags, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write("".join(key.decode() + "\n" for key in keys))
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(target, self.path)

    def __repr__(self) -> str:
        return f"FileKeyProvider({str(self.path)!r})"


def default_key_provider(
    home: str | Path, environ: Mapping[str, str] | None = None
) -> EnvKeyProvider | FileKeyProvider:
    """``PERSONAS_VAULT_KEY`` when set, else ``vault.key`` in the folder ``home`` (the caller's state folder)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_VAULT_KEY, "").strip():
        return EnvKeyProvider(ENV_VAULT_KEY, env)
    return FileKeyProvider.in_home(home)


# -- the vault -----------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('api_key', 'oauth')),
    secret      BLOB NOT NULL,
    scopes      TEXT NOT NULL,
    expires_at  REAL,
    fingerprint TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    rotated_at  TEXT,
    revoked_at  TEXT
);
"""
_INFO_COLUMNS = "name, kind, scopes, created_at, updated_at, rotated_at, revoked_at, expires_at, fingerprint"


def _when(text: str | None) -> _dt.datetime | None:
    return _dt.datetime.fromisoformat(text) if text else None


class Vault:
    """Credentials encrypted at rest in one SQLite file; safe to share between threads.

    Args:
        path: the database file (created with mode 0600, with its folder, if missing).
        key_provider: where the Fernet keys come from; default :func:`default_key_provider` in the
            database's folder.
        clock: for the created/updated/rotated/revoked times.
    """

    def __init__(
        self, path: str | Path, key_provider: KeyProvider | None = None, *, clock: Clock | None = None
    ) -> None:
        self.path = Path(path).expanduser()
        self.key_provider: KeyProvider = key_provider or default_key_provider(self.path.parent)
        self._clock: Clock = clock or SystemClock()
        self._fernet = _multi_fernet(self.key_provider.load())
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"Vault({str(self.path)!r}, {self.key_provider!r})"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- storing ---------------------------------------------------------------------------
    def put_api_key(self, name: str, key: str | ApiKey, scopes: Iterable[str] = ()) -> CredentialInfo:
        """Store (or replace, un-revoking) a private API key under ``name``."""
        secret = key.reveal() if isinstance(key, ApiKey) else ApiKey(key).reveal()
        return self._put(name, "api_key", {"key": secret}, tuple(scopes), None, fingerprint(secret))

    def put_oauth_tokens(self, name: str, tokens: TokenSet) -> CredentialInfo:
        """Store (or replace, un-revoking) the OAuth tokens of a grant under ``name``."""
        return self._put(name, "oauth", _token_payload(tokens), tokens.scopes, tokens.expires_at, _token_id(tokens))

    @contextlib.contextmanager
    def update_oauth_tokens(self, name: str, *, wait: float = 60.0) -> Iterator[OAuthTokensUpdate]:
        """Hold the vault's write lock while reading, then replacing, the tokens of one grant.

        Meant for a refresh: read the latest tokens, call the token endpoint, store the rotated pair,
        all while every other writer (another thread or process refreshing the same grant) waits. So a
        rotated refresh token is never sent twice, which servers that detect reuse punish by revoking
        the whole grant. Readers are not blocked. Changes commit when the block ends without an error.

        Example::

            with vault.update_oauth_tokens("acme") as update:
                if update.tokens.expires_within(now, 60):
                    update.store(oauth.refresh(update.tokens.refresh_token))

        Args:
            wait: seconds to wait for another holder before giving up (sqlite3.OperationalError).

        Raises:
            RevokedCredentialError: the entry is revoked (raised on entering the block).
        """
        db = sqlite3.connect(self.path, timeout=wait, isolation_level=None, check_same_thread=False)
        try:
            with _Transaction(db):
                yield OAuthTokensUpdate(self, db, name)
        finally:
            db.close()

    def _put(
        self,
        name: str,
        kind: CredentialKind,
        secret: dict[str, Any],
        scopes: tuple[str, ...],
        expires_at: float | None,
        fp: str,
    ) -> CredentialInfo:
        _check_name(name)
        payload = {**secret, "name": name, "kind": kind, "scopes": list(scopes)}
        now = self._now()
        with self._lock, self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO credentials (name, kind, secret, scopes, expires_at, fingerprint, "
                "created_at, updated_at, rotated_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (name, kind, self._encrypt(payload), json.dumps(list(scopes)), expires_at, fp, now, now),
            )
        return self.info(name)

    # -- reading ---------------------------------------------------------------------------
    def get_api_key(self, name: str) -> ApiKey:
        """The API key stored under ``name``.

        Raises:
            RevokedCredentialError: it was revoked (the message says how to re-authenticate).
            ToolkitUsageError: no such name, it holds OAuth tokens, or the vault key cannot decrypt it.
        """
        with self._lock:
            payload = self._payload(self._db, name, "api_key")
        return ApiKey(str(payload["key"]))

    def get_oauth_tokens(self, name: str) -> TokenSet:
        """The OAuth tokens stored under ``name`` (raises like :meth:`get_api_key`)."""
        with self._lock:
            return self._read_oauth(self._db, name)

    def info(self, name: str) -> CredentialInfo:
        """What is known about ``name`` without decrypting it."""
        with self._lock:
            row = self._db.execute(f"SELECT {_INFO_COLUMNS} FROM credentials WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise self._missing(name)
        return _info(row)

    def _read_oauth(self, db: sqlite3.Connection, name: str) -> TokenSet:
        payload = self._payload(db, name, "oauth")
        expires_at = payload.get("expires_at")
        return TokenSet(
            access_token=str(payload["access_token"]),
            refresh_token=payload.get("refresh_token"),
            expires_at=float(expires_at) if expires_at is not None else None,
            scopes=tuple(payload.get("scopes") or ()),
            token_type=str(payload.get("token_type") or "Bearer"),
        )

    def _payload(self, db: sqlite3.Connection, name: str, kind: CredentialKind) -> dict[str, Any]:
        row = db.execute("SELECT kind, secret, revoked_at FROM credentials WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise self._missing(name)
        stored_kind, token, revoked_at = row
        if revoked_at:
            raise RevokedCredentialError(name, reason="it was revoked in the vault", revoked_at=_when(revoked_at))
        if stored_kind != kind:
            wanted = "get_oauth_tokens" if stored_kind == "oauth" else "get_api_key"
            raise ToolkitUsageError(f"The vault entry {name!r} holds {stored_kind} credentials; use {wanted}().")
        try:
            payload: dict[str, Any] = json.loads(self._fernet.decrypt(token))
        except InvalidToken:
            raise ToolkitUsageError(
                f"The vault entry {name!r} cannot be decrypted with the current vault key(s) from "
                f"{self.key_provider!r}: the key was changed or lost. Restore the old key (list it after the new "
                f"one in {ENV_VAULT_KEY}) or store the credential again."
            ) from None
        if payload.get("name") != name or payload.get("kind") != kind:
            raise ToolkitUsageError(f"The vault entry {name!r} holds another entry's ciphertext; the file was altered.")
        return payload

    def _missing(self, name: str) -> ToolkitUsageError:
        known = [info.name for info in self.list()]
        listing = f" It holds: {', '.join(known)}." if known else " It is empty."
        return ToolkitUsageError(
            f"No credential named {name!r} in the vault at {self.path}.{listing} "
            "Store one with Vault.put_api_key() or Vault.put_oauth_tokens()."
        )

    # -- revoking and rotating -------------------------------------------------------------
    def revoke(self, name: str) -> CredentialInfo:
        """Mark ``name`` revoked: every ``get_*`` afterwards raises RevokedCredentialError.

        Only the vault forgets it; to end an OAuth grant at Klaviyo too, use
        ``VaultTokenSource.revoke()`` (or ``OAuthClient.revoke``) first. Revoking twice keeps the first time.
        """
        with self._lock, self._write():
            cursor = self._db.execute(
                "UPDATE credentials SET revoked_at = coalesce(revoked_at, ?) WHERE name = ?", (self._now(), name)
            )
            if cursor.rowcount == 0:
                raise self._missing(name)
        return self.info(name)

    def rotate_key(self, new_key: bytes | None = None, *, drop_old_keys: bool = False) -> None:
        """Add a new vault key (generated unless given), then re-encrypt every credential with it.

        Args:
            new_key: a Fernet key to use; by default one is generated.
            drop_old_keys: after re-encrypting, keep only the new key (old copies of the file or of
                the key can then no longer read this vault's secrets, nor can this vault read old backups).
        """
        key = new_key or Fernet.generate_key()
        with self._lock:
            old = self.key_provider.load()
            self.key_provider.store([key, *[k for k in old if k != key]])
            self._fernet = _multi_fernet(self.key_provider.load())
            self.reencrypt()
            if drop_old_keys:
                self.key_provider.store([key])
                self._fernet = _multi_fernet([key])

    def reencrypt(self) -> int:
        """Re-encrypt every credential under the newest key (after adding one); returns how many."""
        with self._lock, self._write():
            rows = self._db.execute("SELECT name, secret FROM credentials").fetchall()
            now = self._now()
            for name, token in rows:
                try:
                    fresh = self._fernet.rotate(token)
                except InvalidToken:
                    raise ToolkitUsageError(
                        f"The vault entry {name!r} cannot be decrypted with the current keys; nothing was "
                        "re-encrypted. Restore the old key first."
                    ) from None
                self._db.execute("UPDATE credentials SET secret = ?, rotated_at = ? WHERE name = ?", (fresh, now, name))
            return len(rows)

    # -- helpers ---------------------------------------------------------------------------
    def _encrypt(self, payload: Mapping[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(payload, separators=(",", ":")).encode())

    def _now(self) -> str:
        return _dt.datetime.fromtimestamp(self._clock.time(), _dt.UTC).isoformat(timespec="microseconds")

    def _write(self) -> _Transaction:
        return _Transaction(self._db)

    def list(self) -> builtins.list[CredentialInfo]:
        """Every credential (name, kind, scopes, times, fingerprint), sorted by name; no secrets."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_INFO_COLUMNS} FROM credentials ORDER BY name").fetchall()
        return [_info(row) for row in rows]


class OAuthTokensUpdate:
    """One grant's tokens, read under the vault's write lock (see :meth:`Vault.update_oauth_tokens`).

    Attributes:
        tokens: the latest stored tokens; after :meth:`store`, the new ones.
    """

    def __init__(self, vault: Vault, db: sqlite3.Connection, name: str) -> None:
        self._vault = vault
        self._db = db
        self.name = name
        self.tokens: TokenSet = vault._read_oauth(db, name)

    def __repr__(self) -> str:
        return f"OAuthTokensUpdate({self.name!r})"

    def store(self, tokens: TokenSet) -> None:
        """Replace the tokens; a missing refresh token or empty scopes keep the stored ones."""
        kept = self.tokens
        tokens = dataclasses.replace(
            tokens, refresh_token=tokens.refresh_token or kept.refresh_token, scopes=tokens.scopes or kept.scopes
        )
        payload = {**_token_payload(tokens), "name": self.name, "kind": "oauth", "scopes": list(tokens.scopes)}
        self._db.execute(
            "UPDATE credentials SET secret = ?, scopes = ?, expires_at = ?, fingerprint = ?, updated_at = ? "
            "WHERE name = ?",
            (self._vault._encrypt(payload), json.dumps(list(tokens.scopes)), tokens.expires_at, _token_id(tokens),
             self._vault._now(), self.name),
        )  # fmt: skip
        self.tokens = tokens

    def revoke(self) -> None:
        """Mark the entry revoked (as :meth:`Vault.revoke`), within this update."""
        self._db.execute(
            "UPDATE credentials SET revoked_at = coalesce(revoked_at, ?) WHERE name = ?",
            (self._vault._now(), self.name),
        )


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): one writer across processes."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _multi_fernet(keys: Sequence[bytes]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ToolkitUsageError(f"A vault entry needs a non-empty name of at most 200 characters, not {name!r}.")


def _token_payload(tokens: TokenSet) -> dict[str, Any]:
    if not tokens.access_token:
        raise ToolkitUsageError("TokenSet.access_token is empty; nothing to store.")
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": tokens.expires_at,
        "token_type": tokens.token_type,
    }


def _token_id(tokens: TokenSet) -> str:
    return fingerprint(tokens.refresh_token or tokens.access_token)


def _info(row: tuple[Any, ...]) -> CredentialInfo:
    name, kind, scopes, created, updated, rotated, revoked, expires_at, fp = row
    return CredentialInfo(
        name=name,
        kind=kind,
        scopes=tuple(json.loads(scopes)),
        created_at=_dt.datetime.fromisoformat(created),
        updated_at=_dt.datetime.fromisoformat(updated),
        rotated_at=_when(rotated),
        revoked_at=_when(revoked),
        expires_at=_dt.datetime.fromtimestamp(expires_at, _dt.UTC) if expires_at is not None else None,
        fingerprint=fp,
    )
