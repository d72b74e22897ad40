"""The seeded demo account kept on disk, so the next sandbox of the same day loads it instead of
building it again: 0.15 s instead of 0.5 s (about 1 s in a new process, with the builder's imports),
paid by every ``personas run --sandbox``, ``personas chat --sandbox`` and ``personas demo``.

The account depends only on the seed, the day in its zone, the sandbox's code and the store it is
built into (see the package docstring), so a snapshot is found by all four: the seed, the day, a hash
of every source file of ``klaviyo_sandbox``, and the empty store's id generator and indexes. A store
that is not fresh is never restored. The file is ``marshal`` data (loading it runs no code), in a
folder of this user's only in the temp folder (``klaviyo-sandbox-<uid>``; one found that is not
private, or is a link, is not used). One that cannot be read (damaged, another Python's) is built
again; one that cannot be written is skipped. The eight used last are kept (10 MB each), and the
temporary file of a writer killed mid-write is removed by the next write.
``KLAVIYO_SANDBOX_SEED_CACHE=off`` builds every time.
"""

from __future__ import annotations

import datetime as _dt
import functools
import gc
import hashlib
import marshal
import os
import stat
import sys
import tempfile
import time
from pathlib import Path

from ..._store import Store

__all__ = ["FORMAT", "folder", "key", "load", "save"]

#: Changed when what a snapshot holds changes shape (``Store.state``).
FORMAT = 1
_PACKAGE = Path(__file__).resolve().parents[2]
#: Snapshots kept: the most recently loaded or written (a test session builds a dozen accounts).
_MAX_KEPT = 8
#: A temporary file older than this was left by a writer that was killed: removed by the next save.
_STALE_SECONDS = 600


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """A hash of every source file of the sandbox package (paths and contents): any change to the
    code that builds the account, or to the store it is built into, is another snapshot."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def folder() -> Path | None:
    """This user's snapshot folder (made 0700 if missing), or None when snapshots are off or the
    folder found is not this user's alone."""
    if os.environ.get("KLAVIYO_SANDBOX_SEED_CACHE", "").strip().lower() in ("off", "0", "no", "false"):
        return None
    uid = os.getuid() if hasattr(os, "getuid") else 0
    where = Path(tempfile.gettempdir()) / f"klaviyo-sandbox-{uid}"
    try:
        where.mkdir(mode=0o700, exist_ok=True)
        found = os.lstat(where)
    except OSError:
        return None
    private = stat.S_ISDIR(found.st_mode) and not found.st_mode & 0o077
    return where if private and (not hasattr(os, "getuid") or found.st_uid == uid) else None


def key(store: Store, seed: int, day: _dt.date) -> str | None:
    """The snapshot's name for the account ``seed`` builds on ``day`` into ``store``; None when the
    store is not fresh (a snapshot holds what the builder did to an empty store, nothing else)."""
    if not store.is_fresh():
        return None
    _, _, _, _, rng, indexes = store.state()
    parts = (FORMAT, sys.version_info[:2], marshal.version, seed, day.isoformat(), _source_digest(), rng, indexes)
    return f"demo-{day.isoformat()}-{hashlib.sha256(marshal.dumps(parts)).hexdigest()[:24]}"


def load(store: Store, name: str) -> bool:
    """Restore ``store`` from the snapshot ``name``; False (``store`` untouched) when there is none
    usable."""
    where = folder()
    if where is None:
        return False
    paused = gc.isenabled()
    gc.disable()  # ~300,000 objects come back at once: collections on the way would only slow it
    try:
        fd = os.open(where / f"{name}.marshal", os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as file:
            state = marshal.loads(file.read())  # whole: marshal.load reads a file in small pieces, 8x slower
            os.utime(file.fileno())  # used now: the last to be removed (``save``)
        store.restore(state)
    except (OSError, EOFError, ValueError, TypeError, KeyError, IndexError):
        return False
    finally:
        if paused:
            gc.enable()
    return True


def save(store: Store, name: str) -> None:
    """Write ``store`` as the snapshot ``name`` (whole or not at all: a temporary file renamed), and
    remove all but the :data:`_MAX_KEPT` used last; nothing when it cannot be written."""
    where = folder()
    if where is None:
        return
    temporary = where / f".{name}.{os.getpid()}.tmp"
    try:
        data = marshal.dumps(store.state())
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, where / f"{name}.marshal")
        for path in sorted(where.glob("demo-*.marshal"), key=lambda p: p.stat().st_mtime_ns)[:-_MAX_KEPT]:
            path.unlink(missing_ok=True)
        for path in where.glob(".demo-*.tmp"):  # a writer killed before its rename (a write takes < 1 s)
            if path.stat().st_mtime < time.time() - _STALE_SECONDS:
                path.unlink(missing_ok=True)
    except (OSError, ValueError):
        temporary.unlink(missing_ok=True)
