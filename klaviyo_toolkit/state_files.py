"""What a SQLite error on a state file means, said with the file's name and the fix.

SQLite's own messages name no file and no remedy (``attempt to write a readonly database``,
``database disk image is malformed``); every state file (the audit log, the checkpoints, the run
records) is described once as a :class:`StateFile` and its errors become one line in the same words,
as the vault reports a damaged ``vault.sqlite``::

    AUDIT_LOG = StateFile("the audit log", if_moved="its rows are no longer shown or verified")
    try:
        db.execute(...)
    except sqlite3.DatabaseError as exc:
        raise AUDIT_LOG.error(path, exc) or exc

Only errors about the file itself are translated: it cannot be written (permissions, a read-only
file system), cannot be opened, is damaged or is not a database, or the disk is full. Anything else
(a locked database, a constraint) is the caller's to handle, and :meth:`StateFile.error` returns None.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolkitUsageError

__all__ = ["StateFile", "StateFileError"]


class StateFileError(ToolkitUsageError):
    """A state file that cannot be used as it is: which file, what is wrong, what to do."""

    def __init__(self, message: str, path: Path, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.cause = cause


def _kind(exc: BaseException) -> str | None:
    """What an error says about the file: read-only, cannot open, damaged, full, I/O; None otherwise."""
    if isinstance(exc, OSError):  # making the file, or its folder
        codes = {errno.EACCES: "readonly", errno.EPERM: "readonly", errno.EROFS: "readonly", errno.ENOSPC: "full",
                 errno.ENOENT: "cantopen", errno.ENOTDIR: "cantopen"}  # fmt: skip
        return codes.get(exc.errno or 0, "io")
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc).lower()
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return "readonly"
    if name.startswith("SQLITE_CANTOPEN") or "unable to open database file" in text:
        return "cantopen"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        return "damaged"
    if name.startswith("SQLITE_FULL") or "database or disk is full" in text:
        return "full"
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in text:
        return "io"
    return None


def _me() -> str:
    return f"this user (uid {os.geteuid()})" if hasattr(os, "geteuid") else "this user"


def _owned(path: Path) -> str:
    try:
        info = path.stat()
    except OSError:
        return ""
    return f" (owner uid {info.st_uid}, mode {info.st_mode & 0o777:o})"


def _why_not_writable(path: Path) -> str:
    """Which of the file, the journal files SQLite keeps beside it, and its folder this user may not write."""
    folder = path.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"the file system holding {folder} is mounted read-only"
    except OSError:
        pass
    for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if os.path.lexists(part) and not os.access(part, os.W_OK):  # never raises, where Path.exists() may
            return f"{_me()} may not write {part}{_owned(part)}"
    if not os.access(folder, os.W_OK):
        return f"{_me()} may not write its folder {folder}{_owned(folder)}, where SQLite keeps a journal beside it"
    return f"{_me()} may not write it"


def _why_not_openable(path: Path) -> str:
    """Why SQLite could not open ``path``: no folder, a folder this user may not enter, a file it may not read."""
    folder = path.parent
    if not folder.is_dir():
        return f"its folder {folder} does not exist"
    if not os.access(folder, os.X_OK):
        return f"{_me()} may not enter its folder {folder}{_owned(folder)}"
    if os.path.lexists(path) and not os.access(path, os.R_OK):
        return f"{_me()} may not read it{_owned(path)}"
    return "check the path and its permissions"


@dataclass(frozen=True)
class StateFile:
    """A kind of state file: what it is and what moving it aside loses (for the messages).

    Args:
        what: what the file is, as a sentence names it ("the audit log").
        if_moved: what is lost when the file is moved aside and a new one is made ("runs paused in it
            can no longer be resumed").
        then: what to do after moving it aside, if anything ("log in again (personas auth login)").
    """

    what: str
    if_moved: str
    then: str = ""

    def error(self, path: str | Path, exc: BaseException) -> StateFileError | None:
        """The error to raise for ``exc`` (SQLite's, or an OSError making the file) on the file at
        ``path``; None when it is not about the file."""
        target = Path(path)
        kind = _kind(exc)
        said = f"{self.what} {target}"
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        if kind == "readonly":
            return StateFileError(
                f"{said} cannot be written ({why}): {_why_not_writable(target)}. Give this user write access "
                f"to the file and its folder (as their owner: chmod u+w {target} {target.parent}), or run "
                "the command as the user that owns them",
                target,
                exc,
            )
        if kind == "cantopen":
            return StateFileError(
                f"{said} cannot be opened ({why}): {_why_not_openable(target)}; fix the path or the permissions",
                target,
                exc,
            )
        if kind == "damaged":
            aside = target.with_name(target.name + ".damaged")
            then = f", then {self.then}" if self.then else ""
            return StateFileError(
                f"{said} cannot be read ({why}): the file is damaged, or is not a SQLite database. "
                f"Restore it from a backup, or move it aside (mv {target} {aside}; {self.if_moved}){then}",
                target,
                exc,
            )
        if kind == "full":
            return StateFileError(f"{said} cannot grow ({why}): free space on the disk that holds it", target, exc)
        if kind == "io":
            return StateFileError(
                f"{said} cannot be read or written ({why}): check the disk that holds it", target, exc
            )
        return None
