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
import re
from typing import Protocol, runtime_checkable

from .errors import ToolkitUsageError

__all__ = [
    "ApiKey",
    "BearerToken",
    "Credentials",
    "TokenSource",
    "credentials_from_env",
    "fingerprint",
    "mask",
    "pasted_around",
]

_QUOTES = "\"'`\u201c\u201d\u2018\u2019"
_ASSIGNMENT = re.compile(r"(?:export\s+)?[A-Z][A-Z0-9]*_[A-Z0-9_]*=")


def mask(secret: str) -> str:
    """``pk_abc…wxyz``-style masking that keeps just enough to recognise a key."""
    if len(secret) <= 10:
        return "***"
    return f"{secret[:6]}…{secret[-4:]}"


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible id for a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def pasted_around(key: str) -> str | None:
    """What to fix when more than the key was pasted (one clause, after the key's name), or None.

    Two slips of copying are common: the key in quotes (``"pk_..."``, from a ``.env`` file or a shell
    line) and the whole assignment (``KLAVIYO_API_KEY=pk_...``). The clause names the fix and never
    repeats the key; it is phrased so that no word follows ``key:`` or ``key is`` (the redactor
    would mask it).

    Example::

        pasted_around('"pk_..."')                # 'came in quotes; remove the quotes'
        pasted_around("KLAVIYO_API_KEY=pk_...")  # 'starts with KLAVIYO_API_KEY=; paste only the key, ...'
    """
    text = key.strip()
    assignment = _ASSIGNMENT.match(text)
    if assignment and text[assignment.end() :].strip():
        said = " ".join(assignment.group(0).split())  # the variable's name (and an export): no secret
        return f"starts with {said}; paste only the key, without {said}"
    if text[:1] in _QUOTES or text[-1:] in _QUOTES:
        return "came in quotes; remove the quotes"
    return None


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
