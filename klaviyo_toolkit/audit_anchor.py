"""What ties an audit log to something outside it: a secret key and a head record.

A hash chain alone proves little: whoever can write the file can rewrite every hash, append a
forged row, cut the tail or delete the file. An anchor closes those gaps:

- the chain is an HMAC with a key the log file does not hold, so an edited or appended row cannot
  be given a valid hash without the key;
- after every append the newest row's number and hash (the *head*) are saved outside the log, so
  a cut tail (fewer rows than the head) and a missing file (a head but no log) are found.

The head is as durable as the log it anchors: the log commits in WAL mode with
``synchronous=NORMAL`` (a commit survives the process being killed, not necessarily a power cut),
so the head is written in place, one small write that a killed process either made or did not,
without an fsync of its own: an fsynced head could outlive the rows it names after a power cut and
report a tail that was never cut. That keeps saving the head after every append cheap (tens of
microseconds, where a new file and an fsync cost half a millisecond per audited call).

``VaultAnchor`` keeps both encrypted in the vault (what the personas runtime uses: the key is as
safe as the vault's key, which may live in the OS keyring); ``FileAnchor`` keeps them in owner-only
files (standalone use and tests). Any object with these three methods will do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .errors import ToolkitUsageError

if TYPE_CHECKING:
    from .vault import Vault

__all__ = ["AuditAnchor", "FileAnchor", "Head", "VaultAnchor"]


@dataclass(frozen=True)
class Head:
    """The newest row of a log: how many rows it has, and the newest hash."""

    rows: int
    hash: str


class AuditAnchor(Protocol):
    """Where a log's HMAC key and head live (outside the log)."""

    def key(self) -> bytes:
        """The HMAC key (created on first use)."""
        ...

    def load_head(self) -> Head | None:
        """The head saved last, or None if the log never had a row."""
        ...

    def save_head(self, head: Head) -> None:
        """Remember ``head`` (atomically)."""
        ...


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # one per writer
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


#: The head record's size on disk: padded, so that each save overwrites all of it in one write.
_HEAD_SIZE = 256


class FileAnchor:
    """Key and head in two owner-only files (``<name>.key``, ``<name>.head``) in ``folder``.

    Keep ``folder`` apart from the log to make a rewrite need both; a key file readable by others
    is refused. The key is read once per anchor.
    """

    def __init__(self, folder: str | Path, name: str = "audit") -> None:
        self.key_path = Path(folder) / f"{name}.key"
        self.head_path = Path(folder) / f"{name}.head"
        self._key: bytes | None = None

    def __repr__(self) -> str:
        return f"FileAnchor({str(self.key_path.parent)!r})"

    def key(self) -> bytes:
        if self._key is not None:
            return self._key
        if not self.key_path.exists():
            _write_private(self.key_path, secrets.token_hex(32).encode())
        if self.key_path.stat().st_mode & 0o077:
            raise ToolkitUsageError(
                f"{self.key_path} is readable by others; make it owner-only: chmod 600 {self.key_path}"
            )
        self._key = bytes.fromhex(self.key_path.read_text(encoding="ascii").strip())
        return self._key

    def _mac(self, rows: int, digest: str) -> str:
        return hmac.new(self.key(), f"head\n{rows}\n{digest}".encode(), hashlib.sha256).hexdigest()

    def load_head(self) -> Head | None:
        if not self.head_path.exists():
            return None
        try:
            data = json.loads(self.head_path.read_text(encoding="utf-8"))
            head = Head(int(data["rows"]), str(data["hash"]))
            genuine = hmac.compare_digest(str(data["mac"]), self._mac(head.rows, head.hash))
        except (ValueError, KeyError, TypeError):
            genuine = False
        if not genuine:
            raise ToolkitUsageError(f"the audit head record {self.head_path} was altered (its MAC does not match)")
        return head

    def save_head(self, head: Head) -> None:
        """Overwrite the head record in place (one write of a fixed size; see the module docstring)."""
        record = json.dumps({"rows": head.rows, "hash": head.hash, "mac": self._mac(head.rows, head.hash)}).encode()
        data = record.ljust(_HEAD_SIZE)  # JSON allows the trailing spaces
        try:
            fd = os.open(self.head_path, os.O_WRONLY | os.O_CREAT, 0o600)
        except FileNotFoundError:  # no folder yet
            fd = -1
        if fd >= 0:
            try:
                if len(data) == _HEAD_SIZE and os.fstat(fd).st_size in (0, _HEAD_SIZE):
                    os.pwrite(fd, data, 0)
                    return
            finally:
                os.close(fd)
        _write_private(self.head_path, data)  # a record of another size: replaced whole, atomically


class VaultAnchor:
    """Key and head encrypted in a :class:`~klaviyo_toolkit.vault.Vault` (Fernet also authenticates
    them, so an altered head does not decrypt). ``adopt`` is a FileAnchor whose key, if present, is
    moved into the vault on first use (so a log begun with it still verifies)."""

    def __init__(self, vault: Vault, name: str = "audit", adopt: FileAnchor | None = None) -> None:
        self.vault = vault
        self.name = name
        self.adopt = adopt

    def __repr__(self) -> str:
        return f"VaultAnchor({self.vault!r})"

    def key(self) -> bytes:
        stored = self.vault.get_secret(f"{self.name}:key")
        if stored is None:
            if self.adopt is not None and self.adopt.key_path.exists():
                stored = self.adopt.key()
                head = self.adopt.load_head()
                if head is not None:
                    self.vault.put_secret(f"{self.name}:head", json.dumps([head.rows, head.hash]).encode())
            else:
                stored = secrets.token_bytes(32)
            self.vault.put_secret(f"{self.name}:key", stored)
            if self.adopt is not None:
                for path in (self.adopt.key_path, self.adopt.head_path):
                    path.unlink(missing_ok=True)
        return stored

    def load_head(self) -> Head | None:
        from cryptography.fernet import InvalidToken

        try:
            stored = self.vault.get_secret(f"{self.name}:head")
            if stored is None:
                return None
            rows, digest = json.loads(stored)
        except (InvalidToken, ValueError):
            raise ToolkitUsageError("the audit head record in the vault was altered (it does not decrypt)") from None
        return Head(int(rows), str(digest))

    def save_head(self, head: Head) -> None:
        self.vault.put_secret(f"{self.name}:head", json.dumps([head.rows, head.hash]).encode())
