"""The vault's writes under its lock: one grant's tokens held for update, replaced tokens kept to revoke.

Kept apart from :mod:`vault` (storing and encrypting) so each stays short. Everything here runs inside
a ``BEGIN IMMEDIATE`` transaction (:class:`Transaction`): SQLite's write lock, which every process
sharing the vault file waits for, so a refresh, a revoke and a login that replaces a grant never
interleave on one file.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .vault_records import TokenSet, token_id, token_payload

if TYPE_CHECKING:
    from .vault import Vault

__all__ = ["RETIRED", "OAuthTokensUpdate", "Transaction", "connect", "merge_meta", "retire_oauth"]

#: Where :func:`retire_oauth` keeps replaced tokens among the vault's other secrets: ``retired-oauth:<name>:<id>``.
RETIRED = "retired-oauth:"


class OAuthTokensUpdate:
    """One grant's tokens, read under the vault's write lock (see :meth:`Vault.update_oauth_tokens`).

    Attributes:
        tokens: the latest stored tokens; after :meth:`store`, the new ones.
    """

    def __init__(self, vault: Vault, db: sqlite3.Connection, name: str, *, revoked_too: bool = False) -> None:
        self._vault = vault
        self._db = db
        self.name = name
        self.tokens: TokenSet = vault._read_oauth(db, name, revoked_too=revoked_too)

    def __repr__(self) -> str:
        return f"OAuthTokensUpdate({self.name!r})"

    def store(self, tokens: TokenSet) -> None:
        """Replace the tokens; a missing refresh token or empty scopes keep the stored ones."""
        kept = self.tokens
        tokens = dataclasses.replace(
            tokens, refresh_token=tokens.refresh_token or kept.refresh_token, scopes=tokens.scopes or kept.scopes
        )
        payload = {**token_payload(tokens), "name": self.name, "kind": "oauth", "scopes": list(tokens.scopes)}
        now = self._vault._now()
        self._db.execute(
            "UPDATE credentials SET secret = ?, scopes = ?, expires_at = ?, fingerprint = ?, updated_at = ? "
            "WHERE name = ?",
            (self._vault._encrypt(payload), json.dumps(list(tokens.scopes)), tokens.expires_at, token_id(tokens),
             now, self.name),
        )  # fmt: skip
        merge_meta(self._db, self.name, {"refreshed_at": now}, missing=self._vault._missing)
        self.tokens = tokens

    def revoked(self) -> bool:
        """True when the entry is now marked revoked or erased (or gone). Under the vault's lock no other
        writer can revoke it during an update; a refresher checks anyway before it stores new tokens."""
        found = self._db.execute("SELECT revoked_at, fingerprint FROM credentials WHERE name = ?", (self.name,))
        row = found.fetchone()
        return row is None or bool(row[0]) or not row[1]

    def revoke(self, reason: str | None = None) -> None:
        """Mark the entry revoked (as :meth:`Vault.revoke`), within this update; ``reason`` says why
        (kept in ``meta``: ``status`` "needs_reauth", ``reason``, ``status_at``)."""
        now = self._vault._now()
        self._db.execute("UPDATE credentials SET revoked_at = coalesce(revoked_at, ?) WHERE name = ?", (now, self.name))
        if reason:
            changes = {"status": "needs_reauth", "reason": reason, "status_at": now}
            merge_meta(self._db, self.name, changes, missing=self._vault._missing)

    def erase(self, **meta: Any) -> None:
        """Delete the secret for good and keep a revoked record (as :meth:`Vault.erase`), within this update."""
        self._db.execute(
            "UPDATE credentials SET secret = X'', fingerprint = '', expires_at = NULL, "
            "revoked_at = coalesce(revoked_at, ?) WHERE name = ?",
            (self._vault._now(), self.name),
        )
        merge_meta(self._db, self.name, meta, missing=self._vault._missing)


def retire_oauth(vault: Vault, db: sqlite3.Connection, name: str, replacement: str = "") -> str | None:
    """Keep the OAuth tokens stored under ``name`` (about to be replaced or deleted) among the vault's
    secrets, encrypted, with the app and server that can revoke them; returns their id, or None when
    ``name`` holds no OAuth tokens (or the very ones of fingerprint ``replacement``, stored again). Run
    in the transaction that replaces them, so no refresh rotates them in between: the kept ones are live."""
    row = db.execute("SELECT kind, secret, fingerprint, meta FROM credentials WHERE name = ?", (name,)).fetchone()
    if row is None or row[0] != "oauth" or not row[1] or row[2] == replacement:
        return None
    payload = json.loads(vault._decrypt(row[1]))
    meta = json.loads(row[3] or "{}")
    now = vault._now()
    kept = {k: payload.get(k) for k in ("access_token", "refresh_token", "expires_at", "token_type")}
    record = {**kept, "name": name, "id": row[2], "scopes": payload.get("scopes") or [], "retired_at": now,
              "client_id": meta.get("client_id"), "base_url": meta.get("base_url")}  # fmt: skip
    key = f"{RETIRED}{name}:{row[2]}"
    db.execute("INSERT OR REPLACE INTO secrets VALUES (?, ?, ?)", (key, vault._encrypt(record), now))
    return str(row[2])


class Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): one writer across processes."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def connect(path: Path, timeout: float) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA secure_delete = ON")  # erased and replaced secrets are zeroed in the file
    return db


def merge_meta(
    db: sqlite3.Connection, name: str, changes: Mapping[str, Any], *, missing: Callable[[str], Exception]
) -> None:
    row = db.execute("SELECT meta FROM credentials WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise missing(name)
    meta = {**json.loads(row[0] or "{}"), **changes}
    db.execute(
        "UPDATE credentials SET meta = ? WHERE name = ?",
        (json.dumps({k: v for k, v in meta.items() if v is not None}), name),
    )
