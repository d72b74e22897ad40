"""The checkpoint a run just wrote for its input, handed back to it instead of read back.

A run of an ``"exit"`` graph (``RunDriver``) checkpoints its input first (``update_state`` as
``__start__``) and then starts from that checkpoint: LangGraph's loop reads the thread's latest
checkpoint (``get_tuple``) moments after the same process wrote it. With PostgreSQL that read is a
round trip of ~0.5 ms on loopback, a tenth of what a lead's run may add to its Klaviyo calls.

Inside :func:`primed_start`, a saver with :class:`PrimedStart` remembers the one checkpoint it
writes within :func:`remembered` (the driver's ``update_state`` of the input) and answers the next
read of that thread from memory, if it asks for the latest checkpoint or for that one by id: what it
would have read, the checkpoint and metadata as written (the metadata through JSON, as stored), no
pending writes. That next read of the thread spends the memory whatever it asked for, and so does
any ``put_writes``; everything else goes to the database as before (other writes, other threads,
other checkpoints, reads after the block). The checkpoint's values are the ones the run was given,
unredacted, as in any run started with its input (LangGraph keeps its input in memory then too);
the stored copy stays redacted.

Example::

    with primed_start():
        with remembered():
            graph.update_state(config, payload, as_node="__start__")   # put: remembered
        graph.invoke(None, config)                                      # get_tuple: from memory
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from langgraph.checkpoint.base import CheckpointTuple, copy_checkpoint, get_checkpoint_metadata

__all__ = ["PrimedStart", "known_empty", "primed_start", "remembered"]


class _Held:
    """The block's one remembered checkpoint (None once read or forgotten), and whether the next
    write is to be remembered (only inside :func:`remembered`, and only the first there)."""

    def __init__(self) -> None:
        self.tuple: CheckpointTuple | None = None
        self.armed = False
        self.empty: tuple[str, str] | None = None  # a thread (and namespace) just read and found empty


_HELD: contextvars.ContextVar[_Held | None] = contextvars.ContextVar("personas_primed_start", default=None)


@contextmanager
def primed_start() -> Iterator[None]:
    """Within the block, a :class:`PrimedStart` saver answers the read after its write from memory."""
    held = _Held()
    token = _HELD.set(held)
    try:
        yield
    finally:
        held.tuple, held.armed, held.empty = None, False, None  # never outlives the block, whatever runs later
        try:
            _HELD.reset(token)
        except ValueError:  # a stream closed from another context (a generator finalised elsewhere)
            _HELD.set(None)


@contextmanager
def remembered() -> Iterator[None]:
    """Within the block (inside :func:`primed_start`), the first checkpoint written is remembered."""
    held = _HELD.get()
    if held is not None:
        held.armed = True
    try:
        yield
    finally:
        if held is not None:
            held.armed = False


def known_empty(config: Any) -> None:
    """Within :func:`primed_start`: the thread of ``config`` was just read and has no checkpoint, so the
    next read of its latest checkpoint (LangGraph's, as a run starts) is answered None from memory
    (the driver reads it first, to refuse a new input on a thread that holds a run)."""
    held = _HELD.get()
    if held is not None:
        thread, ns, _ = _ids(config)
        held.empty = (thread, ns)


def _ids(config: Any) -> tuple[str, str, str | None]:
    conf = config.get("configurable") or {}
    return str(conf.get("thread_id")), str(conf.get("checkpoint_ns") or ""), conf.get("checkpoint_id")


class PrimedStart:
    """A mixin for a checkpointer (before it in the bases): see the module docstring.

    ``stored_metadata`` is what the saver stores of a checkpoint's metadata (PostgreSQL's leaves out
    ``writes``), so the checkpoint handed back carries what a read would.
    """

    stored_metadata: Any = staticmethod(get_checkpoint_metadata)

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        held = _HELD.get()
        if held is not None:
            held.empty = None  # written: no longer empty
        saved = super().put(config, checkpoint, metadata, new_versions)  # type: ignore[misc]
        if held is not None and held.armed:
            held.armed = False  # the first write only
            thread, ns, parent = _ids(config)
            stored = json.loads(json.dumps(self.stored_metadata(config, metadata), ensure_ascii=False))
            ids = {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": parent}
            parent_config: Any = {"configurable": ids} if parent else None
            held.tuple = CheckpointTuple(saved, copy_checkpoint(checkpoint), stored, parent_config, [])
        return saved

    def put_writes(self, config: Any, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = "") -> None:
        held = _HELD.get()
        if held is not None:
            held.tuple = held.empty = None  # the checkpoint now has pending writes: read it whole from the database
        super().put_writes(config, writes, task_id, task_path)  # type: ignore[misc]

    def get_tuple(self, config: Any) -> CheckpointTuple | None:
        held = _HELD.get()
        if held is not None and held.empty is not None:
            thread, ns, wanted = _ids(config)
            if (thread, ns) == held.empty:
                held.empty = None  # spent by the thread's next read, whatever it asks
                if wanted is None:
                    return None
        if held is not None and held.tuple is not None:
            thread, ns, wanted = _ids(config)
            have_thread, have_ns, have_id = _ids(held.tuple.config)
            if (thread, ns) == (have_thread, have_ns):
                found, held.tuple = held.tuple, None  # the thread's next read spends it, whatever it asks
                if wanted in (None, have_id):
                    return found
        return super().get_tuple(config)  # type: ignore[misc, no-any-return]
