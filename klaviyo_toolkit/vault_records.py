"""What the vault hands out and keeps beside a secret: OAuth tokens, a credential's record, and the
row conversions between them and the vault's table (kept apart from :mod:`vault`, which is about
storing and encrypting)."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .auth import fingerprint, mask
from .errors import ToolkitUsageError
from .redact import register_secret

__all__ = [
    "CredentialInfo",
    "CredentialKind",
    "RetiredTokens",
    "TokenSet",
    "info_of",
    "retired_of",
    "token_id",
    "token_payload",
    "when_of",
]

CredentialKind = Literal["api_key", "oauth"]


# -- values --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSet:
    """OAuth tokens for one grant: access token, refresh token, expiry (epoch seconds) and scopes."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    scopes: tuple[str, ...] = ()
    token_type: str = "Bearer"

    def __post_init__(self) -> None:
        # Tokens are opaque (no ``pk_`` shape to spot), so only registering them masks them in the
        # messages, log lines and stored text of this process: an error echoing one, a pasted one.
        register_secret(self.access_token, short_lived=True)
        register_secret(self.refresh_token, short_lived=True)

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
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def erased(self) -> bool:
        """The secret itself was deleted (:meth:`Vault.erase`); only this record of it is left."""
        return not self.fingerprint


@dataclass(frozen=True)
class RetiredTokens:
    """The tokens of an OAuth grant that a new login, a key or a removal replaced under ``name``, kept
    encrypted in the vault until its grant is revoked at Klaviyo (so that it is never left alive unseen).

    Attributes:
        id: the replaced entry's fingerprint (not secret).
        client_id / base_url: the app and server that issued them (from the entry's ``meta``).
    """

    name: str
    id: str
    tokens: TokenSet
    client_id: str | None
    base_url: str | None
    retired_at: _dt.datetime


def retired_of(record: Mapping[str, Any]) -> RetiredTokens:
    expires_at = record.get("expires_at")
    tokens = TokenSet(
        access_token=str(record["access_token"]),
        refresh_token=record.get("refresh_token"),
        expires_at=float(expires_at) if expires_at is not None else None,
        scopes=tuple(record.get("scopes") or ()),
        token_type=str(record.get("token_type") or "Bearer"),
    )
    return RetiredTokens(str(record["name"]), str(record["id"]), tokens, record.get("client_id"),
                         record.get("base_url"), _dt.datetime.fromisoformat(str(record["retired_at"])))  # fmt: skip


def when_of(text: str | None) -> _dt.datetime | None:
    return _dt.datetime.fromisoformat(text) if text else None


def token_payload(tokens: TokenSet) -> dict[str, Any]:
    if not tokens.access_token:
        raise ToolkitUsageError("TokenSet.access_token is empty; nothing to store.")
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": tokens.expires_at,
        "token_type": tokens.token_type,
    }


def token_id(tokens: TokenSet) -> str:
    return fingerprint(tokens.refresh_token or tokens.access_token)


def info_of(row: tuple[Any, ...]) -> CredentialInfo:
    name, kind, scopes, created, updated, rotated, revoked, expires_at, fp, meta = row
    return CredentialInfo(
        name=name,
        kind=kind,
        scopes=tuple(json.loads(scopes)),
        created_at=_dt.datetime.fromisoformat(created),
        updated_at=_dt.datetime.fromisoformat(updated),
        rotated_at=when_of(rotated),
        revoked_at=when_of(revoked),
        expires_at=_dt.datetime.fromtimestamp(expires_at, _dt.UTC) if expires_at is not None else None,
        fingerprint=fp,
        meta=json.loads(meta or "{}"),
    )
