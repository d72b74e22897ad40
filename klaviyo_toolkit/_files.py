"""A lock that several processes on one machine can hold in turn, for "read it, or make it" steps.

Keys made on first use (the vault key file, the audit key) are read by every process that shares a
state folder. Checked and made without a lock, two processes started together (``personas worker``
four times on a fresh machine) could each make their own and each keep the one it made, and the
second's rows or secrets would then not verify or decrypt with the first's key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["exclusive_lock"]


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
