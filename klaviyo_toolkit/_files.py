"""A lock that several processes on one machine can hold in turn, for "read it, or make it" steps.

Keys made on first use (the vault key file, the audit key) are read by every process that shares a
state folder. Checked and made without a lock, two processes started together (``personas worker``
four times on a fresh machine) could each make their own and each keep the one it made, and the
second's rows or secrets would then not verify or decrypt with the first's key.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["HeldLockFile", "exclusive_lock"]


def _open_lock(path: Path) -> int | None:
    """A descriptor of the lock file, or None where there is no ``flock`` or the file cannot be made."""
    try:
        import fcntl  # noqa: F401 - only whether the platform has it
    except ImportError:  # pragma: no cover - not POSIX
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # a read-only folder (a key mounted there): no process can make a key in it anyway
        return None


@contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (an empty owner-only file, made if missing) until
    the block ends: ``flock`` where the platform has it; elsewhere, or where the file cannot be made
    (a read-only folder), the block runs unlocked."""
    fd = _open_lock(Path(path))
    if fd is None:
        yield
        return
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


#: Every HeldLockFile, for a forked child to make their thread locks anew (see the class).
_HELD: weakref.WeakSet[HeldLockFile] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for held in list(_HELD):
        held._thread_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class HeldLockFile:
    """:func:`exclusive_lock` for a lock taken again and again (one per audit append): the file is
    opened once and kept open, so each hold is a ``flock`` and an unlock, not a mkdir, open and close.

    Safe where a kept descriptor could go wrong: threads take turns (a ``flock`` on one descriptor does
    not exclude another thread); after a ``fork`` the child opens its own (a lock on the parent's shared
    descriptor would not exclude the parent, and unlocking it would free the parent's hold), and its
    thread lock is made anew (a thread of the parent may have held it); and once locked, the path must
    still name the file locked, else (the file was deleted or replaced, so another process opening the
    path now locks another file) it is opened again.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._pid = 0
        self._file: tuple[int, int] = (0, 0)  # (device, inode) of the file _fd is open on
        self._thread_lock = threading.Lock()
        self._locked: int | None = None  # the descriptor locked by the hold under way
        _HELD.add(self)

    def hold(self) -> HeldLockFile:
        """The lock, for a ``with`` block (unlocked where :func:`exclusive_lock` would be): a plain
        context manager, as a generator-based one costs more than the flock it wraps."""
        return self

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            self._locked = self._acquire()
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        fd, self._locked = self._locked, None
        try:
            if fd is not None:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _acquire(self) -> int | None:
        """The descriptor, locked, of the file the path names now; None when unlocked."""
        import fcntl

        while True:
            fd = self._descriptor()
            if fd is None:
                return None
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                now = os.stat(self.path)
            except OSError:  # removed since we opened it
                now = None
            if now is not None and (now.st_dev, now.st_ino) == self._file:
                return fd
            self._forget()  # closing our only descriptor of the old file also unlocks it

    def _descriptor(self) -> int | None:
        if self._fd is not None and self._pid == os.getpid():
            return self._fd
        self._forget()
        fd = _open_lock(self.path)
        if fd is not None:
            found = os.fstat(fd)
            self._fd, self._pid, self._file = fd, os.getpid(), (found.st_dev, found.st_ino)
        return fd

    def _forget(self) -> None:
        """Close our descriptor (a forked child closes only its copy: the parent's lock stays)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:  # pragma: no cover - already closed
                pass

    def close(self) -> None:
        """Close the kept descriptor (a later hold opens it again)."""
        with self._thread_lock:
            self._forget()
