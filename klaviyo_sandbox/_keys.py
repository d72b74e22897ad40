"""The account's API keys: the demo key every sandbox accepts, keys made with chosen scopes, revocation.

Keys are stored in the store (named value ``keys``), so they survive a restart with ``state=`` and
go with ``reset()``. ``DEMO_KEY`` has every scope; ``PUBLIC_KEY`` is the account's public key (the
client API's ``company_id``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from ._store import Store

Json = dict[str, Any]
#: The private key every sandbox accepts, with every scope.
DEMO_KEY = "pk_sandbox_demo"
#: The account's public key: ``company_id`` for the client API.
PUBLIC_KEY = "SbxPub"
#: The scopes value of a key with every scope.
ALL_SCOPES = "*"


class Keys:
    """Private API keys of one sandbox: look up, create with scopes, revoke."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def all(self) -> dict[str, Json]:
        """Key -> ``{"name", "scopes", "revoked"}``; the demo key is always there."""
        keys: dict[str, Json] = self._store.mutable("keys", dict)
        keys.setdefault(DEMO_KEY, {"name": "demo", "scopes": ALL_SCOPES, "revoked": False})
        return keys

    def get(self, key: str) -> Json | None:
        return self.all().get(key)

    def create(self, scopes: Iterable[str] | str, name: str | None = None) -> str:
        """A new private key with exactly ``scopes`` (or ``"*"``)."""
        key = "pk_sbx_" + uuid.UUID(int=self._store.rng.getrandbits(128)).hex[:24]
        granted: Any = ALL_SCOPES if scopes == ALL_SCOPES else sorted(scopes)
        self.all()[key] = {"name": name or key[:12], "scopes": granted, "revoked": False}
        self._store.flush()
        return key

    def revoke(self, key: str) -> None:
        if key in self.all():
            self.all()[key]["revoked"] = True
            self._store.flush()
