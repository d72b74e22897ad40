"""Keyring backends for tests: fakes of the OS keyring, registered through keyring's own API.

``MemoryKeyring`` keeps entries in a dict (``keyring.set_keyring(MemoryKeyring())`` in-process);
``FileKeyring`` keeps them in the JSON file named by ``TEST_KEYRING_FILE``, so a child process picks it
with ``PYTHON_KEYRING_BACKEND=tests.keyrings.FileKeyring``; ``LockedKeyring`` is one the user has not
unlocked. keyring never picks them by itself: tests/conftest.py pins ``PYTHON_KEYRING_BACKEND``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked, PasswordDeleteError


class MemoryKeyring(KeyringBackend):
    """An OS keyring that lives in this object."""

    priority = 1  # type: ignore[assignment]  # usable (> 0); keyring's own choice never sees it (set_keyring)

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


class FileKeyring(KeyringBackend):
    """An OS keyring shared by processes: a JSON file named by ``TEST_KEYRING_FILE``."""

    priority = 1  # type: ignore[assignment]

    @property
    def path(self) -> Path:
        return Path(os.environ["TEST_KEYRING_FILE"])

    def _all(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._all().get(f"{service}|{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        entries = self._all()
        entries[f"{service}|{username}"] = password
        self.path.write_text(json.dumps(entries))

    def delete_password(self, service: str, username: str) -> None:
        entries = self._all()
        entries.pop(f"{service}|{username}", None)
        self.path.write_text(json.dumps(entries))


class LockedKeyring(MemoryKeyring):
    """A keyring the user has not unlocked."""

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("the keyring is locked")
