"""What ties an audit log to something outside it: a secret key and a head record.

A hash chain alone proves little: whoever can write the file can rewrite every hash, append a
forged row, cut the tail or delete the file. An anchor closes those gaps:

- the chain is an HMAC with a key the log file does not hold, so an edited or appended row cannot
  be given a valid hash without the key;
- after every append the newest row's number and hash (the *head*) are saved outside the log, so
  a cut tail (fewer rows than the head) and a missing file (a head but no log) are found.

The head is as durable as the log it anchors: the log commits in WAL mode with
``synchronous=NORMAL`` (a commit survives the process being killed, not necessarily a power cut),
so the head is a small record of its own, MAC'd with the log's key and overwritten in place, one
write that a killed process either made or did not, without an fsync of its own: an fsynced head
could outlive the rows it names after a power cut and report a tail that was never cut. That keeps
saving the head after every append cheap (tens of microseconds, where a vault transaction costs
milliseconds per audited call: a rollback journal and several fsyncs).

``VaultAnchor`` keeps the key encrypted in the vault (what the personas runtime uses: the key is as
safe as the vault's key, which may live in the OS keyring) and the head in a record beside the
vault; the vault remembers (durably, once) that the head lives there, so a deleted head record is
reported rather than silently made again. ``FileAnchor`` keeps both in owner-only files
(standalone use and tests). Any object with these three methods will do; ``replace_head`` is optional
(what :meth:`~klaviyo_toolkit.audit.AuditLog.accept_loss` saves with, else ``save_head``).

A head is only ever saved after the row it names, onto a log that still holds the head saved
before: an append finds a cut tail, an older copy of the log put back or a damaged head record
before it writes, and refuses (the head is not moved over the evidence) until the loss is accepted.
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
from typing import TYPE_CHECKING, Any, Protocol

from ._files import exclusive_lock
from .errors import ToolkitUsageError

if TYPE_CHECKING:
    from .vault import Vault

__all__ = ["AuditAnchor", "FileAnchor", "Head", "HeadRecordError", "VaultAnchor"]


class HeadRecordError(ToolkitUsageError):
    """The head record is altered, missing or was deleted: the log's newest row can no longer be
    checked, so rows cut from the end cannot be ruled out. A failed verification (``audit verify``
    exits 1), not a mistake in how it was asked."""


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
    """Replace ``path`` with ``data`` atomically and durably (file and folder fsynced), owner-only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # one per writer
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    try:
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError:  # a platform without directory handles
        return
    try:
        os.fsync(folder)
    except OSError:
        pass
    finally:
        os.close(folder)


def _read(path: Path) -> bytes:
    """The whole of a small file, with plain system calls (``Path.read_bytes`` builds a buffered file
    object: most of the cost of reading a 256-byte head record)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while part := os.read(fd, 65_536):
            parts.append(part)
        return b"".join(parts)
    finally:
        os.close(fd)


#: The head record's size on disk: padded, so that each save overwrites all of it in one write.
_HEAD_SIZE = 256


class _HeadRecord:
    """A head in a file of its own: JSON with an HMAC of the log's key, overwritten in place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The record's bytes as this object last wrote or verified them, with the key and the head
        # they hold: the same bytes under the same key are that head again, without decoding the JSON
        # and recomputing the MAC (an append reads the record every time). Any other bytes are checked.
        self._known: tuple[bytes, bytes, Head] | None = None

    @staticmethod
    def _mac(key: bytes, rows: int, digest: str) -> str:
        return hmac.new(key, f"head\n{rows}\n{digest}".encode(), hashlib.sha256).hexdigest()

    def load(self, key: bytes) -> Head | None:
        """The head, or None when there is no record; an altered one raises ToolkitUsageError."""
        try:
            data = _read(self.path)
        except FileNotFoundError:
            return None
        known = self._known
        if known is not None and known[0] == data and known[1] == key:
            return known[2]
        try:  # bytes that are not UTF-8 (a file overwritten with noise) are as altered as a changed number
            record = json.loads(data.decode("utf-8"))
            head = Head(int(record["rows"]), str(record["hash"]))
            genuine = hmac.compare_digest(str(record["mac"]), self._mac(key, head.rows, head.hash))
        except (ValueError, KeyError, TypeError):
            genuine = False
        if not genuine:
            raise HeadRecordError(
                f"the audit head record {self.path} was altered (its MAC does not match): the log's newest row "
                "can no longer be checked, so rows cut from the end cannot be ruled out; restore the record "
                "from a backup"
            )
        self._known = (data, key, head)
        return head

    def save(self, head: Head, key: bytes, *, create: bool = True) -> bool:
        """Overwrite the record in place (one write of a fixed size; see the module docstring).

        A missing record is made (durably, atomically) when ``create``; returns False when it was
        missing and not made."""
        record = json.dumps({"rows": head.rows, "hash": head.hash, "mac": self._mac(key, head.rows, head.hash)})
        data = record.encode().ljust(_HEAD_SIZE)  # JSON allows the trailing spaces
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except FileNotFoundError:
            fd = -1
        if fd >= 0:
            try:
                if len(data) == _HEAD_SIZE and os.fstat(fd).st_size in (0, _HEAD_SIZE):
                    os.pwrite(fd, data, 0)
                    self._known = (data, key, head)
                    return True
            finally:
                os.close(fd)
        elif not create:
            return False
        _write_private(self.path, data)  # new, or a record of another size: replaced whole, atomically
        self._known = (data, key, head)
        return True


class FileAnchor:
    """Key and head in two owner-only files (``<name>.key``, ``<name>.head``) in ``folder``.

    Keep ``folder`` apart from the log to make a rewrite need both; a key file readable by others
    is refused. The key is read once per anchor.
    """

    def __init__(self, folder: str | Path, name: str = "audit") -> None:
        self.key_path = Path(folder) / f"{name}.key"
        self.head_path = Path(folder) / f"{name}.head"
        self._head = _HeadRecord(self.head_path)
        self._key: bytes | None = None

    def __repr__(self) -> str:
        return f"FileAnchor({str(self.key_path.parent)!r})"

    def key(self) -> bytes:
        """The key, made on first use; processes sharing the folder all get the one made first."""
        if self._key is not None:
            return self._key
        with exclusive_lock(self.key_path.with_name(f".{self.key_path.name}.lock")):
            if not self.key_path.exists():
                _write_private(self.key_path, secrets.token_hex(32).encode())
            if self.key_path.stat().st_mode & 0o077:
                raise ToolkitUsageError(
                    f"{self.key_path} is readable by others; make it owner-only: chmod 600 {self.key_path}"
                )
            self._key = bytes.fromhex(self.key_path.read_text(encoding="ascii").strip())
        return self._key

    def load_head(self) -> Head | None:
        return self._head.load(self.key())

    def save_head(self, head: Head) -> None:
        self._head.save(head, self.key())


class VaultAnchor:
    """The key encrypted in a :class:`~klaviyo_toolkit.vault.Vault`, the head beside it.

    The head is ``<vault stem>.<name>.head`` in the vault's folder, MAC'd with the key (so it is as
    hard to forge as the key is to read), overwritten in place after every append. The vault keeps
    a note that the head lives there (written once, durably), so a head record that disappears is
    reported by :meth:`load_head` even after a later append made it again. ``adopt`` is a
    FileAnchor whose key, if present, is moved into the vault on first use (so a log begun with it
    still verifies); a head kept in the vault by an earlier version is read until the first save.
    """

    def __init__(self, vault: Vault, name: str = "audit", adopt: FileAnchor | None = None) -> None:
        self.vault = vault
        self.name = name
        self.adopt = adopt
        self.head_path = vault.path.with_name(f"{vault.path.stem}.{name}.head")
        self._head = _HeadRecord(self.head_path)
        self._key: bytes | None = None
        self._noted = False  # the vault's note that the head lives in head_path was seen or written
        self._settled: dict[str, Any] | None = None  # that note, as load_head last read it (never a lost one)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VaultAnchor({self.vault!r})"

    def key(self) -> bytes:
        """The key, made (or adopted) on first use; processes sharing the vault all get the one kept
        first (the vault keeps a secret only if it has none under that name yet)."""
        if self._key is not None:
            return self._key
        stored = self.vault.get_secret(f"{self.name}:key")
        if stored is None:
            if self.adopt is not None and self.adopt.key_path.exists():
                made = self.adopt.key()  # every process adopting reads the same key and head
                head = self.adopt.load_head()
                if head is not None:  # the head first: a key in the vault means the move was made
                    self.vault.put_secret(f"{self.name}:head", json.dumps([head.rows, head.hash]).encode())
            else:
                made = secrets.token_bytes(32)
            stored = self.vault.put_secret_once(f"{self.name}:key", made)
            if self.adopt is not None and stored == made:
                for path in (self.adopt.key_path, self.adopt.head_path):
                    path.unlink(missing_ok=True)
        self._key = stored
        return stored

    def _note(self) -> Any:
        """What the vault says about the head: a note (dict), an old head ([rows, hash]) or None."""
        from cryptography.fernet import InvalidToken

        try:
            stored = self.vault.get_secret(f"{self.name}:head")
            return None if stored is None else json.loads(stored)
        except (InvalidToken, ValueError):
            raise HeadRecordError("the audit head record in the vault was altered (it does not decrypt)") from None

    def load_head(self) -> Head | None:
        # The note that the head lives in head_path, once seen, is not read again: an append checks the
        # head every time, and a vault read per audited call is what the record beside it avoids.
        note = self._settled or self._note()
        if isinstance(note, dict) and note.get("lost"):
            raise HeadRecordError(
                f"the audit head record {self.head_path} was deleted (found missing when row {note['lost']} was "
                "appended): rows cut from the end before then cannot be ruled out"
            )
        if isinstance(note, dict):
            self._settled = note
        head = self._head.load(self.key())
        if head is not None:
            return head
        if isinstance(note, dict):
            raise HeadRecordError(
                f"the audit head record {self.head_path} is missing (the vault says the log's head is kept "
                "there): it was deleted, so rows cut from the end cannot be ruled out"
            )
        if isinstance(note, list):  # kept in the vault by an earlier version
            return Head(int(note[0]), str(note[1]))
        return None

    def save_head(self, head: Head) -> None:
        key = self.key()
        with self._lock:
            if self._noted and self._head.save(head, key, create=False):
                return
            self._save_noted(head, key)

    def replace_head(self, head: Head) -> None:
        """Save ``head`` over a record that is damaged, missing or names a row the log no longer has, and
        forget that it was ever lost: only after the log recorded that the loss was accepted
        (:meth:`~klaviyo_toolkit.audit.AuditLog.accept_loss`, which keeps a copy of the old record)."""
        key = self.key()
        with self._lock:
            self._head.save(head, key)
            self.vault.put_secret(f"{self.name}:head", json.dumps({"file": self.head_path.name}).encode())
            self._noted = True
            self._settled = None

    def _save_noted(self, head: Head, key: bytes) -> None:
        """The first save of this anchor, or the record gone: make it, then note it in the vault."""
        note = self._note()
        if isinstance(note, dict) and not note.get("lost") and not self.head_path.exists():
            note = {**note, "lost": head.rows}  # deleted behind our back: remembered for good
            self._settled = None
            self.vault.put_secret(f"{self.name}:head", json.dumps(note).encode())
        self._head.save(head, key)  # made durably when new, before the note that names it
        if not isinstance(note, dict):
            self.vault.put_secret(f"{self.name}:head", json.dumps({"file": self.head_path.name}).encode())
        self._noted = True
