"""An encrypted store for credentials: private API keys and OAuth tokens, rotated and revocable.

Secrets are encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256) through ``MultiFernet``, so
the key can be rotated: the newest key encrypts, every listed key still decrypts, and
:meth:`Vault.rotate_key` re-encrypts every row under a fresh key. What is not secret (name, kind,
scopes, times) is stored beside the ciphertext so :meth:`Vault.list` needs no key; it is repeated
inside the ciphertext and checked on read, so a row's ciphertext cannot be moved to another name.

Where the key comes from (:func:`~klaviyo_toolkit.vault_keys.default_key_provider`)::

    the OS keyring                        when the keyring library has a usable backend
    PERSONAS_VAULT_KEY=<newest>,<older>   else: Fernet keys, comma-separated, newest first
    <folder of the vault>/vault.key       else: created with mode 0600 (looser modes refused)

Deleted rows are overwritten in the file (SQLite ``secure_delete``), so an erased secret's
ciphertext does not linger in free pages.

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
import datetime as _dt
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ._files import exclusive_lock
from .auth import ApiKey, fingerprint
from .clock import Clock, SystemClock
from .errors import RevokedCredentialError, ToolkitUsageError
from .vault_keys import (
    ENV_VAULT_KEY,
    DamagedKeyError,
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    KeyringKeyProvider,
    default_key_provider,
    key_source,
    refuse_a_new_key_for_old_entries,
    where_the_key_is,
)
from .vault_records import (
    CredentialInfo,
    CredentialKind,
    RetiredTokens,
    TokenSet,
    info_of,
    retired_of,
    token_id,
    token_payload,
    when_of,
)
from .vault_update import RETIRED, OAuthTokensUpdate, Transaction, connect, merge_meta, retire_oauth

__all__ = [
    "ENV_VAULT_KEY",
    "CredentialInfo",
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyProvider",
    "KeyringKeyProvider",
    "OAuthTokensUpdate",
    "RetiredTokens",
    "TokenSet",
    "Vault",
    "default_key_provider",
]

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
    revoked_at  TEXT,
    meta        TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, secret BLOB NOT NULL, updated_at TEXT NOT NULL);
"""
_INFO_COLUMNS = "name, kind, scopes, created_at, updated_at, rotated_at, revoked_at, expires_at, fingerprint, meta"


class Vault:
    """Credentials encrypted at rest in one SQLite file; safe to share between threads.

    Args:
        path: the database file (created with mode 0600, with its folder, if missing).
        key_provider: where the Fernet keys come from; default :func:`default_key_provider` in the
            database's folder.
        clock: for the created/updated/rotated/revoked times.

    Beside each secret the vault keeps ``meta``: non-secret facts about it that the caller chooses
    (which account, which server), written in the same transaction as the secret.
    """

    def __init__(
        self, path: str | Path, key_provider: KeyProvider | None = None, *, clock: Clock | None = None
    ) -> None:
        self.path = Path(path).expanduser()
        self.key_provider: KeyProvider = key_provider or default_key_provider(self.path.parent)
        self._clock: Clock = clock or SystemClock()
        refuse_a_new_key_for_old_entries(self.path, self.key_provider)
        self._fernet = self._load_keys()
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        try:
            self._db = connect(self.path, 30.0)
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise _broken(self.path, exc) from None
        if "meta" not in {row[1] for row in self._db.execute("PRAGMA table_info(credentials)")}:
            self._db.execute("ALTER TABLE credentials ADD COLUMN meta TEXT NOT NULL DEFAULT '{}'")

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
    def put_api_key(
        self,
        name: str,
        key: str | ApiKey,
        scopes: Iterable[str] = (),
        *,
        meta: Mapping[str, Any] | None = None,
        retire: bool = False,
    ) -> CredentialInfo:
        """Store (or replace, un-revoking) a private API key under ``name``, with non-secret ``meta``;
        ``retire``: OAuth tokens it replaces are kept for :meth:`retired_oauth` (not dropped)."""
        secret = key.reveal() if isinstance(key, ApiKey) else ApiKey(key).reveal()
        return self._put(name, "api_key", {"key": secret}, tuple(scopes), None, fingerprint(secret), meta, retire)

    def put_oauth_tokens(
        self, name: str, tokens: TokenSet, *, meta: Mapping[str, Any] | None = None, retire: bool = False
    ) -> CredentialInfo:
        """Store (or replace, un-revoking) the OAuth tokens of a grant under ``name``, with non-secret ``meta``;
        ``retire``: the tokens of another grant it replaces are kept for :meth:`retired_oauth`."""
        payload = token_payload(tokens)
        fp = token_id(tokens)
        return self._put(name, "oauth", payload, tokens.scopes, tokens.expires_at, fp, meta, retire)

    @contextlib.contextmanager
    def update_oauth_tokens(
        self, name: str, *, wait: float = 60.0, revoked_too: bool = False
    ) -> Iterator[OAuthTokensUpdate]:
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
            revoked_too: also an entry marked revoked that still holds its tokens (to end its grant).

        Raises:
            RevokedCredentialError: the entry is revoked (raised on entering the block).
        """
        db = connect(self.path, wait)
        try:
            with Transaction(db):
                self._reload_keys()  # a rotation by another process meanwhile: encrypt with its new key
                yield OAuthTokensUpdate(self, db, name, revoked_too=revoked_too)
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
        meta: Mapping[str, Any] | None,
        retire: bool = False,
    ) -> CredentialInfo:
        _check_name(name)
        payload = {**secret, "name": name, "kind": kind, "scopes": list(scopes)}
        now = self._now()
        with self._lock, self._write():
            self._reload_keys()
            self._refuse_a_second_key(self._db)
            if retire:
                retire_oauth(self, self._db, name, replacement=fp)
            self._db.execute(
                "INSERT OR REPLACE INTO credentials (name, kind, secret, scopes, expires_at, fingerprint, "
                "created_at, updated_at, rotated_at, revoked_at, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?)",
                (name, kind, self._encrypt(payload), json.dumps(list(scopes)), expires_at, fp, now, now,
                 json.dumps(dict(meta or {}))),
            )  # fmt: skip
        return self.info(name)

    def set_meta(self, name: str, **changes: Any) -> CredentialInfo:
        """Change non-secret facts about ``name`` (a value of None removes the fact)."""
        with self._lock, self._write():
            merge_meta(self._db, name, changes, missing=self._missing)
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

    def get_oauth_tokens(self, name: str, *, revoked_too: bool = False) -> TokenSet:
        """The OAuth tokens stored under ``name`` (raises like :meth:`get_api_key`, unless ``revoked_too``:
        for ending at Klaviyo a grant revoked here)."""
        with self._lock:
            return self._read_oauth(self._db, name, revoked_too=revoked_too)

    def info(self, name: str) -> CredentialInfo:
        """What is known about ``name`` without decrypting it."""
        with self._lock:
            row = self._db.execute(f"SELECT {_INFO_COLUMNS} FROM credentials WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise self._missing(name)
        return info_of(row)

    def _read_oauth(self, db: sqlite3.Connection, name: str, *, revoked_too: bool = False) -> TokenSet:
        payload = self._payload(db, name, "oauth", revoked_too=revoked_too)
        expires_at = payload.get("expires_at")
        return TokenSet(
            access_token=str(payload["access_token"]),
            refresh_token=payload.get("refresh_token"),
            expires_at=float(expires_at) if expires_at is not None else None,
            scopes=tuple(payload.get("scopes") or ()),
            token_type=str(payload.get("token_type") or "Bearer"),
        )

    def _payload(
        self, db: sqlite3.Connection, name: str, kind: CredentialKind, *, revoked_too: bool = False
    ) -> dict[str, Any]:
        row = db.execute("SELECT kind, secret, revoked_at FROM credentials WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise self._missing(name)
        stored_kind, token, revoked_at = row
        if revoked_at and (not revoked_too or not token):
            raise RevokedCredentialError(name, reason="it was revoked in the vault", revoked_at=when_of(revoked_at))
        if stored_kind != kind:
            wanted = "get_oauth_tokens" if stored_kind == "oauth" else "get_api_key"
            raise ToolkitUsageError(f"The vault entry {name!r} holds {stored_kind} credentials; use {wanted}().")
        try:
            payload: dict[str, Any] = json.loads(self._decrypt(token))
        except InvalidToken:
            raise ToolkitUsageError(
                f"The vault entry {name!r} cannot be decrypted with the current vault key(s) from "
                f"{self.key_provider!r}: the key was changed or lost. Restore the old key (list it after the new "
                f"one in {ENV_VAULT_KEY}), or delete the entry and store the credential again."
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
    def revoke(self, name: str, **meta: Any) -> CredentialInfo:
        """Mark ``name`` revoked (and merge ``meta``): every ``get_*`` afterwards raises RevokedCredentialError.

        Only the vault forgets it; to end an OAuth grant at Klaviyo too, use ``VaultTokenSource.revoke()``
        or ``ConnectionStore.revoke()``, which hold the write lock so no refresh rotates the token being
        revoked. Revoking twice keeps the first time.
        """
        with self._lock, self._write():
            cursor = self._db.execute(
                "UPDATE credentials SET revoked_at = coalesce(revoked_at, ?) WHERE name = ?", (self._now(), name)
            )
            if cursor.rowcount == 0:
                raise self._missing(name)
            if meta:
                merge_meta(self._db, name, meta, missing=self._missing)
        return self.info(name)

    def erase(self, name: str, **meta: Any) -> CredentialInfo:
        """Delete the secret of ``name`` for good, keep a revoked record of it (with ``meta`` merged).

        The row's ciphertext is overwritten in the file (``secure_delete``); ``info``/``list`` still
        show the name, kind, scopes and times. Erasing twice changes nothing but ``meta``.
        """
        with self._lock, self._write():
            cursor = self._db.execute(
                "UPDATE credentials SET secret = X'', fingerprint = '', expires_at = NULL, "
                "revoked_at = coalesce(revoked_at, ?) WHERE name = ?",
                (self._now(), name),
            )
            if cursor.rowcount == 0:
                raise self._missing(name)
            merge_meta(self._db, name, meta, missing=self._missing)
        return self.info(name)

    def delete(self, name: str, *, retire: bool = False) -> bool:
        """Remove ``name`` and every trace of it (``retire``: but keep its OAuth tokens for
        :meth:`retired_oauth`); False when there was nothing to remove."""
        with self._lock, self._write():
            if retire:
                retire_oauth(self, self._db, name)
            return self._db.execute("DELETE FROM credentials WHERE name = ?", (name,)).rowcount > 0

    def retired_oauth(self, name: str | None = None) -> builtins.list[RetiredTokens]:
        """The OAuth tokens replaced or removed with ``retire`` (of ``name``, else of every entry), oldest
        first: grants that may still be alive at Klaviyo until revoked there; then :meth:`forget_retired`.
        Those the current key(s) cannot open are left out (and kept), as :meth:`unreadable` entries are."""
        with self._lock:
            self._reload_keys()
            rows = self._db.execute("SELECT secret FROM secrets WHERE substr(name, 1, ?) = ? ORDER BY updated_at",
                                    (len(RETIRED), RETIRED)).fetchall()  # fmt: skip
            found = [retired_of(json.loads(self._fernet.decrypt(token))) for (token,) in rows if self._opens(token)]
        return [r for r in found if name is None or r.name == name]

    def forget_retired(self, name: str, id: str) -> bool:
        """Delete retired tokens for good (their grant was revoked); False when they were gone already."""
        with self._lock, self._write():
            return self._db.execute("DELETE FROM secrets WHERE name = ?", (f"{RETIRED}{name}:{id}",)).rowcount > 0

    def rotate_key(self, new_key: bytes | None = None, *, drop_old_keys: bool = False) -> int:
        """Add a new vault key (generated unless given), then re-encrypt every credential with it (one
        transaction: all or none); returns how many were re-encrypted.

        Args:
            new_key: a Fernet key to use; by default one is generated.
            drop_old_keys: after re-encrypting, keep only the new key (old copies of the file or of
                the key can then no longer read this vault's secrets, nor can this vault read old backups).
        """
        key = new_key or Fernet.generate_key()
        # One rotation at a time across processes: another one's key list stored between this one's read and
        # write (or its retiring of old keys) would drop the key the rows were just re-encrypted under.
        with self._lock, exclusive_lock(self.path.with_name(f".{self.path.name}.rotate.lock")):
            self.check_writable()  # before the new key is kept: nothing changes when some entry cannot be read
            old = self.key_provider.load()
            self.key_provider.store([key, *[k for k in old if k != key]])
            self._fernet = _multi_fernet(self.key_provider.load())
            count = self.reencrypt()
            if drop_old_keys:
                self.key_provider.store([key])
                self._fernet = _multi_fernet([key])
            return count

    # -- other secrets (the audit log's key and head) -----------------------------------------
    def put_secret(self, name: str, value: bytes) -> None:
        """Keep ``value`` encrypted under ``name`` (not a credential: no scopes, never listed)."""
        with self._lock, self._write():
            self._reload_keys()
            self._refuse_a_second_key(self._db)
            self._db.execute(
                "INSERT OR REPLACE INTO secrets VALUES (?, ?, ?)", (name, self._fernet.encrypt(value), self._now())
            )

    def put_secret_once(self, name: str, value: bytes) -> bytes:
        """Keep ``value`` under ``name`` unless a secret is kept there already; the one kept either way.

        One transaction (SQLite's write lock) across processes: of several processes making a key at
        once, every one gets the key the first kept."""
        with self._lock, self._write():
            row = self._db.execute("SELECT secret FROM secrets WHERE name = ?", (name,)).fetchone()
            if row is None:
                self._reload_keys()
                self._refuse_a_second_key(self._db)
                sealed = self._fernet.encrypt(value)
                self._db.execute("INSERT INTO secrets VALUES (?, ?, ?)", (name, sealed, self._now()))
                return value
        return self._open_secret(name, row[0])

    def get_secret(self, name: str) -> bytes | None:
        """The secret kept under ``name``, or None."""
        with self._lock:
            row = self._db.execute("SELECT secret FROM secrets WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._open_secret(name, row[0])

    def _open_secret(self, name: str, token: bytes) -> bytes:
        try:
            return self._decrypt(token)
        except InvalidToken:
            raise self._undecryptable(f"secret {name!r}") from None

    def _undecryptable(self, what: str, done: str = "") -> ToolkitUsageError:
        """The error for an entry the current key(s) cannot read: which entry, which key, what to do."""
        return ToolkitUsageError(
            f"The vault {self.path}: its {what} cannot be decrypted with the key(s) from {self.key_provider!r}"
            f"{done}. The vault key was changed or lost: set {ENV_VAULT_KEY} (or restore vault.key) to the key "
            "the vault was made with; list an old key after the new one to read both."
        )

    def reencrypt(self) -> int:
        """Re-encrypt every credential and secret under the newest key (after adding one), in one
        transaction: all rows or none. Returns how many."""
        with self._lock, self._write():
            self._reload_keys()
            for name, token in self._db.execute("SELECT name, secret FROM secrets").fetchall():
                try:
                    fresh = self._fernet.rotate(token)
                except InvalidToken:
                    raise self._undecryptable(f"secret {name!r}", "; nothing was re-encrypted") from None
                self._db.execute("UPDATE secrets SET secret = ? WHERE name = ?", (fresh, name))
            rows = self._db.execute("SELECT name, secret FROM credentials WHERE length(secret) > 0").fetchall()
            now = self._now()
            for name, token in rows:
                try:
                    fresh = self._fernet.rotate(token)
                except InvalidToken:
                    raise self._undecryptable(f"entry {name!r}", "; nothing was re-encrypted") from None
                self._db.execute("UPDATE credentials SET secret = ?, rotated_at = ? WHERE name = ?", (fresh, now, name))
            return len(rows)

    # -- one key for every entry -------------------------------------------------------------
    def unreadable(self, *names: str) -> builtins.list[str]:
        """The credentials (of ``names``, else every one) whose secret the current key(s) cannot open.

        Erased entries hold no secret and are never listed. Each secret is decrypted to know."""
        with self._lock:
            self._reload_keys()
            rows = self._db.execute("SELECT name, secret FROM credentials WHERE length(secret) > 0 ORDER BY name")
            return [name for name, token in rows.fetchall() if (not names or name in names) and not self._opens(token)]

    def check_writable(self) -> None:
        """Raise unless the current key(s) open every stored secret; a write is refused otherwise.

        A secret written under a key that cannot open the others leaves the vault on two keys: no
        one key reads it whole, and :meth:`rotate_key` refuses it. Every write that encrypts checks
        this first, in its transaction; callers check it too before a step that cannot be undone
        (asking Klaviyo for a grant that would then not be kept)."""
        with self._lock:
            self._reload_keys()
            self._refuse_a_second_key(self._db)

    def key_hint(self) -> str | None:
        """How to reach the key that opens the secrets the current key(s) cannot (one clause, never a
        key), or None when they open everything."""
        with self._lock:
            self._reload_keys()
            shut = [token for _, token in self._sealed(self._db) if not self._opens(token)]
        if not shut:
            return None
        return where_the_key_is(self.key_provider, self.path.parent, shut)

    def _refuse_a_second_key(self, db: sqlite3.Connection) -> None:
        shut = [(what, token) for what, token in self._sealed(db) if not self._opens(token)]
        if not shut:
            return
        names = ", ".join(what for what, _ in shut[:3]) + (f" and {len(shut) - 3} more" if len(shut) > 3 else "")
        fix = where_the_key_is(self.key_provider, self.path.parent, [token for _, token in shut])
        raise ToolkitUsageError(
            f"The vault {self.path} holds {names}, which the key(s) from {key_source(self.key_provider)} cannot open; "
            f"nothing was written, so that the vault stays on one key. {fix[:1].upper()}{fix[1:]}."
        )

    @staticmethod
    def _sealed(db: sqlite3.Connection) -> builtins.list[tuple[str, bytes]]:
        """Every stored ciphertext, named for a message: ``entry 'acme'``, ``secret 'audit'``."""
        rows = db.execute("SELECT name, secret FROM credentials WHERE length(secret) > 0 ORDER BY name").fetchall()
        kept = db.execute("SELECT name, secret FROM secrets ORDER BY name").fetchall()
        return [(f"entry {n!r}", t) for n, t in rows] + [(f"secret {n!r}", t) for n, t in kept]

    def _opens(self, token: bytes) -> bool:
        try:
            self._fernet.decrypt(token)
        except InvalidToken:
            return False
        return True

    # -- helpers ---------------------------------------------------------------------------
    def _encrypt(self, payload: Mapping[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(payload, separators=(",", ":")).encode())

    def _decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:  # another process may have rotated the key since we loaded it
            self._reload_keys()
            return self._fernet.decrypt(token)

    def _reload_keys(self) -> None:
        self._fernet = self._load_keys()

    def _load_keys(self) -> MultiFernet:
        """The keys, or an error that, when entries need the key that was there, says to restore it."""
        try:
            return _multi_fernet(self.key_provider.load())
        except DamagedKeyError as exc:
            raise exc.for_vault(self.path) from None

    def _now(self) -> str:
        return _dt.datetime.fromtimestamp(self._clock.time(), _dt.UTC).isoformat(timespec="microseconds")

    def _write(self) -> Transaction:
        return Transaction(self._db)

    def list(self) -> builtins.list[CredentialInfo]:
        """Every credential (name, kind, scopes, times, fingerprint), sorted by name; no secrets."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_INFO_COLUMNS} FROM credentials ORDER BY name").fetchall()
        return [info_of(row) for row in rows]


def _multi_fernet(keys: Sequence[bytes]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _broken(path: Path, exc: sqlite3.DatabaseError) -> ToolkitUsageError:
    """A vault file SQLite cannot read (not a database, malformed): where, and what to do."""
    return ToolkitUsageError(
        f"The vault {path} cannot be read ({exc}): the file is damaged or is not a vault. Restore it from a "
        "backup, or move it aside and log in again (personas auth login)."
    )


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ToolkitUsageError(f"A vault entry needs a non-empty name of at most 200 characters, not {name!r}.")
