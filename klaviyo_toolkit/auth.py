"""Credentials: a private API key or an OAuth access token, turned into request headers.

A credential never prints its secret: ``repr()`` and ``str()`` show a masked form, and
:func:`fingerprint` gives a stable non-secret id (for rate-limit buckets and audit records).

Example::

    ApiKey("pk_...").headers()         # {'Authorization': 'Klaviyo-API-Key pk_...'}
    BearerToken("eyJ...").headers()    # {'Authorization': 'Bearer eyJ...'}
"""

from __future__ import annotations

import hashlib
import os
from typing import Protocol, runtime_checkable

from .errors import ToolkitUsageError

__all__ = ["ApiKey", "BearerToken", "Credentials", "TokenSource", "credentials_from_env", "fingerprint", "mask"]


def mask(secret: str) -> str:
    """``pk_abc…wxyz``-style masking that keeps just enough to recognise a key."""
    if len(secret) <= 10:
        return "***"
    return f"{secret[:6]}…{secret[-4:]}"


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible id for a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


@runtime_checkable
class Credentials(Protocol):
    """Anything that can authenticate a request."""

    def headers(self) -> dict[str, str]:
        """Headers to add to each request."""

    @property
    def account_key(self) -> str:
        """Non-secret id of the account/credential (rate-limit buckets are per account)."""


@runtime_checkable
class TokenSource(Protocol):
    """A source of OAuth access tokens that can refresh them (see the vault)."""

    def access_token(self) -> str:
        """A currently valid access token."""

    def invalidate(self) -> None:
        """Forget the current token (after a 401) so the next call refreshes it."""


def _register(secret: str) -> None:
    """Mask ``secret`` in every message, log line and stored text of this process (``redact``)."""
    from .redact import register_secret  # redact imports this module

    register_secret(secret)


class ApiKey:
    """A Klaviyo private API key (``pk_...``), sent as ``Authorization: Klaviyo-API-Key``."""

    def __init__(self, key: str) -> None:
        key = key.strip()
        if not key:
            raise ToolkitUsageError("The Klaviyo API key is empty; set KLAVIYO_API_KEY or pass api_key=.")
        self._key = key
        _register(key)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Klaviyo-API-Key {self._key}"}

    @property
    def account_key(self) -> str:
        return "key:" + fingerprint(self._key)

    def reveal(self) -> str:
        """The key itself (for code that must store it, such as the vault)."""
        return self._key

    def __repr__(self) -> str:
        return f"ApiKey({mask(self._key)})"

    __str__ = __repr__


class BearerToken:
    """An OAuth access token (fixed, or from a refreshing TokenSource)."""

    def __init__(self, token: str | TokenSource) -> None:
        self._source = token

    def headers(self) -> dict[str, str]:
        token = self._source if isinstance(self._source, str) else self._source.access_token()
        _register(token)  # a refreshed token is new: masked wherever it is echoed from now on
        return {"Authorization": f"Bearer {token}"}

    @property
    def refreshable(self) -> bool:
        """True when a TokenSource can hand out a fresh token after a 401."""
        return not isinstance(self._source, str)

    def invalidate(self) -> None:
        if not isinstance(self._source, str):
            self._source.invalidate()

    @property
    def account_key(self) -> str:
        if isinstance(self._source, str):
            return "oauth:" + fingerprint(self._source)
        return "oauth:" + str(getattr(self._source, "account_key", id(self._source)))

    def __repr__(self) -> str:
        return "BearerToken(***)"

    __str__ = __repr__


def credentials_from_env() -> Credentials | None:
    """An ApiKey from ``KLAVIYO_API_KEY``, or None when it is not set."""
    key = os.environ.get("KLAVIYO_API_KEY", "").strip()
    return ApiKey(key) if key else None
