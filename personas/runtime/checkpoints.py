"""The SQLite checkpointer of ``$PERSONAS_HOME/checkpoints.sqlite``, refusing a damaged file by name.

The checkpoints hold what makes a run exactly-once: where a paused or stopped run is, which of its
steps already ran. A damaged file must stop runs, not be replaced: starting afresh would forget a
run's progress without anyone choosing to. So the file is checked before SQLite opens it (its
header, and its write-ahead log's, which SQLite would otherwise drop silently), its schema is read
at once, and every SQLite error the saver meets on the file later becomes a
:class:`~klaviyo_toolkit.state_files.StateFileError` that names the file, says how to set it aside
(keeping it) and what that loses: the same line for ``personas run``, the chat REPL, the service's
recorded runs and code calling ``run_persona``.

Example::

    saver = checkpointer(config.path("checkpoints.sqlite"))   # StateFileError if it is damaged
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver

from personas.kernel.privacy import RedactingSerde, private_file
from personas.kernel.state_files import CHECKPOINTS

from .primed import PrimedStart

__all__ = ["CheckpointSaver", "checkpointer", "forget_checkpointers"]

#: One SQLite checkpointer per file per process (a connection is opened once, not per run), with the
#: file's identity, so a file deleted and made again gets a new connection.
_SAVERS: dict[str, tuple[tuple[int, int], Any]] = {}
_SAVERS_LOCK = threading.Lock()


class CheckpointSaver(PrimedStart, SqliteSaver):
    """LangGraph's ``SqliteSaver`` whose errors about its file name the file and the fix (and which
    hands a run the checkpoint of its input without reading it back: ``primed.PrimedStart``).

    Every read and write goes through :meth:`cursor`, so translating there covers them all; errors
    that are not about the file (a locked database) pass through as they are.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, **kwargs: Any) -> None:
        super().__init__(conn, **kwargs)
        self.path = path

    @contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        try:
            with super().cursor(transaction) as cur:
                yield cur
        except sqlite3.Error as exc:
            raise CHECKPOINTS.error(self.path, exc) or exc from exc

    def setup(self) -> None:
        try:
            super().setup()
        except sqlite3.Error as exc:
            raise CHECKPOINTS.error(self.path, exc) or exc from exc


def _usable(conn: sqlite3.Connection) -> bool:
    """False once someone closed the shared connection (a caller that owned a saver, or thought it did)."""
    try:
        conn.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return False
    return True


def forget_checkpointers() -> None:
    """Close every SQLite checkpointer this process keeps open (one per file) and forget it: for a
    process done with its state folders (tests make one per test)."""
    with _SAVERS_LOCK:
        for _identity, saver in _SAVERS.values():
            saver.conn.close()
        _SAVERS.clear()


def checkpointer(path: Path | str) -> CheckpointSaver:
    """The SQLite checkpointer for ``path`` (created 0600), shared by every run in this process.

    Opening a connection (WAL, schema check) costs more than a whole step's checkpoint, so runs
    reuse one per file; ``SqliteSaver`` serialises its writes with its own lock.

    Raises:
        StateFileError: the file or its write-ahead log is damaged (see the module docstring); nothing
            was opened or changed.
    """
    target = Path(path)
    CHECKPOINTS.check(target)  # before SQLite opens it: SQLite would drop a damaged log, and reset it
    try:
        target = private_file(target)
    except OSError as exc:
        raise CHECKPOINTS.error(target, exc) or exc from exc
    key = str(target.resolve())
    stat = target.stat()
    identity = (stat.st_dev, stat.st_ino)
    with _SAVERS_LOCK:
        cached = _SAVERS.get(key)
        if cached is not None and cached[0] == identity and _usable(cached[1].conn):
            return cached[1]  # type: ignore[no-any-return]
        conn = sqlite3.connect(str(target), check_same_thread=False)
        try:
            # WAL with synchronous=NORMAL: a commit survives the process being killed (what resuming
            # needs) without an fsync per step.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            conn.close()
            raise CHECKPOINTS.error(target, exc) or exc from exc
        serde = RedactingSerde(SqliteSaver(conn).serde)
        saver = CheckpointSaver(conn, target, serde=serde)
        try:
            saver.setup()  # reads the schema now: a damaged file is refused before any run starts
        except Exception:
            conn.close()
            raise
        _SAVERS[key] = (identity, saver)
        return saver
