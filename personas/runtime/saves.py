"""Checkpoint writes in the run's own thread, for runs that wait for every write anyway.

With ``durability="sync"`` LangGraph waits for each checkpoint before the next step starts, yet it
still hands every write (``put`` and ``put_writes``) to a thread pool it starts for each run and
then blocks on the future: two thread start-ups per run and a hand-off per write, about 1 ms of a
three-step run (measured in ``benchmarks/graph_overhead.py``: LangGraph's own loop with a saver
that does nothing takes 1.9 ms per run that way, 0.8 ms with the writes made in place).

:func:`inline_saves` makes the writes of the sync loops started inside it run where they are
submitted, in order, before the step goes on: the same guarantee, sooner. Everything else LangGraph
submits (parallel tasks, cache writes) still goes to its pool, started only if something needs it.
A write that fails raises from the future the loop waits on, as before, and again when the run
ends if nothing waited on it. Loops started outside the block (a caller's own graphs, async runs)
are untouched.

LangGraph has no setting for its executor, so this replaces the executor class its sync loop
uses, once, with one that behaves exactly like it unless the block is active. If a LangGraph
release moves either name, :func:`install` leaves LangGraph as it is (runs stay correct, only
slower) and :func:`installed` says so; ``tests/personas/test_saves.py`` fails on that release.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["inline_saves", "install", "installed"]

_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("personas_inline_saves", default=False)
_INSTALLED = False


@contextmanager
def inline_saves() -> Iterator[None]:
    """Within the block, sync LangGraph loops write their checkpoints in the calling thread."""
    install()
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        try:
            _ACTIVE.reset(token)
        except ValueError:  # a stream closed from another context (a generator finalised elsewhere)
            _ACTIVE.set(False)


def installed() -> bool:
    """Whether LangGraph's sync loop uses the executor below (False on a release that moved it)."""
    return _INSTALLED


def install() -> None:
    """Put the executor in place of LangGraph's (once; a no-op where the names it needs are gone)."""
    global _INSTALLED
    if _INSTALLED:
        return
    try:
        from langgraph.pregel import _executor, _loop
        from langgraph.pregel._loop import SyncPregelLoop
    except ImportError:  # pragma: no cover - a LangGraph without these modules
        return
    original = getattr(_loop, "BackgroundExecutor", None)
    save = getattr(SyncPregelLoop, "_checkpointer_put_after_previous", None)
    if original is not _executor.BackgroundExecutor or save is None:
        return
    _loop.BackgroundExecutor = _executor_class(original, save)  # type: ignore[attr-defined,assignment]
    _INSTALLED = True


def _executor_class(original: Any, save: Callable[..., Any]) -> type:
    """LangGraph's ``BackgroundExecutor``, except for checkpoint writes inside :func:`inline_saves`."""

    def is_save(fn: Any) -> bool:
        owner = getattr(fn, "__self__", None)
        if getattr(fn, "__func__", None) is save:
            return True
        # ``put_writes`` is submitted as the checkpointer's own bound method.
        return owner is not None and getattr(fn, "__name__", "") == "put_writes" and hasattr(owner, "get_tuple")

    class InlineSavesExecutor:
        """Runs checkpoint writes in place when the block was active at the loop's start; the rest
        (and everything, outside the block) goes to LangGraph's own executor, made on first use."""

        def __init__(self, config: Any) -> None:
            self.config = config
            self.inline = _ACTIVE.get()
            self.pool: Any = None if self.inline else original(config)
            self.pool_submit: Any = None if self.pool is None else self.pool.__enter__()
            self.failed: list[concurrent.futures.Future[Any]] = []

        def __enter__(self) -> Any:
            return self.submit

        def submit(
            self,
            fn: Callable[..., Any],
            *args: Any,
            __name__: str | None = None,
            __cancel_on_exit__: bool = False,
            __reraise_on_exit__: bool = True,
            __next_tick__: bool = False,
            **kwargs: Any,
        ) -> Any:
            if self.inline and not __next_tick__ and is_save(fn):
                future: concurrent.futures.Future[Any] = concurrent.futures.Future()
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # kept for whoever waits, as a pool would keep it
                    future.set_exception(exc)
                    if __reraise_on_exit__:
                        self.failed.append(future)
                return future
            if self.pool is None:
                self.pool = original(self.config)
                self.pool_submit = self.pool.__enter__()
            return self.pool_submit(
                fn,
                *args,
                __name__=__name__,
                __cancel_on_exit__=__cancel_on_exit__,
                __reraise_on_exit__=__reraise_on_exit__,
                __next_tick__=__next_tick__,
                **kwargs,
            )

        def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> bool | None:
            result = None if self.pool is None else self.pool.__exit__(exc_type, exc_value, traceback)
            if exc_type is None:
                for future in self.failed:
                    future.result()  # the first failed write, as LangGraph's executor re-raises it
            return result

    InlineSavesExecutor.__qualname__ = InlineSavesExecutor.__name__ = "InlineSavesExecutor"
    return InlineSavesExecutor
