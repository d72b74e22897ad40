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

Some damage SQLite does not report: a write-ahead log (``NAME-wal``) whose header is not SQLite's is
dropped without a word, with every write it held. :meth:`StateFile.check` looks before the file is
opened (its header, its log's header), so such a file is refused, and left as it is, instead.
Moving a damaged file aside moves its ``-wal`` and ``-shm`` with it: a log left beside a new file
would be played into it.
"""

from __future__ import annotations

import errno
import os
import shlex
import struct
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolkitUsageError

__all__ = ["StateFile", "StateFileError", "set_aside"]

#: The first 16 bytes of every SQLite database file, and the magic numbers of a write-ahead log's header.
SQLITE_HEADER = b"SQLite format 3\x00"
WAL_MAGIC = (0x377F0682, 0x377F0683)
#: The files SQLite keeps beside a database, which belong to it.
COMPANIONS = ("-wal", "-shm", "-journal")


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


def _wal_problem(wal: Path) -> str | None:
    """What is wrong with the header of a write-ahead log, or None when it is SQLite's (or empty).

    The header is 32 bytes: magic, version, page size, checkpoint number, two salts and a checksum
    of the first 24 bytes (big-endian words when the magic's low bit is set, else little-endian).
    """
    try:
        with wal.open("rb") as f:
            head = f.read(32)
    except FileNotFoundError:
        return None
    if not head:
        return None  # an empty log: nothing written since the last checkpoint
    if len(head) < 32:
        return f"it is {len(head)} bytes long, shorter than a log's 32-byte header"
    magic, version, page_size = struct.unpack(">3I", head[:12])
    if magic not in WAL_MAGIC:
        return "its header is not a SQLite write-ahead log's"
    words = struct.unpack((">" if magic & 1 else "<") + "6I", head[:24])
    first = second = 0
    for i in range(0, 6, 2):
        first = (first + words[i] + second) & 0xFFFFFFFF
        second = (second + words[i + 1] + first) & 0xFFFFFFFF
    if (first, second) != struct.unpack(">2I", head[24:32]) or version != 3007000 or page_size & (page_size - 1):
        return "its header's checksum does not match (the header is damaged)"
    return None


def set_aside(path: Path, *, log_only: bool = False) -> str:
    """The shell command that moves a damaged file (or, ``log_only``, its write-ahead log) aside, keeping it.

    The ``-wal``/``-shm``/``-journal`` beside the file go with it, under the new name, so the copy
    opens as it was: whichever of them exist when the command runs (SQLite removes a log when the last
    connection closes, after the message was made). A name already taken is not reused (``.damaged``,
    ``.damaged-2``, ...) and ``mv -n`` overwrites nothing.
    """
    base = Path(f"{path}-wal") if log_only else path
    n = 1
    while True:
        aside = base.with_name(base.name + (".damaged" if n == 1 else f".damaged-{n}"))
        if not any(Path(f"{aside}{s}").exists() for s in ("", *COMPANIONS)):
            break
        n += 1
    if log_only:
        return f"mv -n {shlex.quote(str(base))} {shlex.quote(str(aside))}"
    src, dst = shlex.quote(str(path)), shlex.quote(str(aside))
    return f'for s in "" {" ".join(COMPANIONS)}; do [ ! -e {src}$s ] || mv -n {src}$s {dst}$s; done'


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
            then = f", then {self.then}" if self.then else ""
            return StateFileError(
                f"{said} cannot be read ({why}): the file is damaged, or is not a SQLite database. "
                f"Restore it from a backup, or move it aside, keeping it (`{set_aside(target)}`; "
                f"{self.if_moved}){then}",
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

    def check(self, path: str | Path) -> None:
        """Refuse, before SQLite opens it, a file that is not a database or whose write-ahead log is
        damaged (which SQLite would drop silently, with the writes in it); the files are left as they are.

        Raises:
            StateFileError: which file, what is wrong, how to set it aside and what that loses.
        """
        target = Path(path)
        try:
            with target.open("rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except FileNotFoundError:
            head = b""
        except OSError as exc:
            raise self.error(target, exc) or exc from exc
        if head and head != SQLITE_HEADER:
            problem = "its header is not SQLite's" if len(head) == len(SQLITE_HEADER) else "it is cut short"
            raise StateFileError(
                f"{self.what} {target} cannot be read ({problem}): the file is damaged, or is not a SQLite "
                f"database. Restore it from a backup, or move it aside, keeping it (`{set_aside(target)}`; "
                f"{self.if_moved}){f', then {self.then}' if self.then else ''}",
                target,
            )
        wal = Path(f"{target}-wal")
        damage = _wal_problem(wal)
        if damage is not None:
            raise StateFileError(
                f"the write-ahead log {wal} of {self.what} {target} is damaged ({damage}): SQLite would drop "
                "it, and the writes it holds, without a word, so nothing was opened. Restore the file and its "
                f"log together from a backup, or move the log aside, keeping it (`{set_aside(target, log_only=True)}`;"
                f" the writes made since it was last merged into {target.name} are lost: {self.if_moved})",
                wal,
            )
