"""Run a call with room on CPython's frame stack: a workaround for CPython issue gh-142183.

From 3.11, CPython keeps Python frames in chunks of 16 KiB and frees a chunk as soon as the first
frame in it returns. Code that calls in a loop at the depth of a chunk's edge allocates and frees a
chunk (``mmap``/``munmap``) on every call. Importing LangChain defines hundreds of pydantic models in
such loops, and how often it crosses an edge depends only on how deep the caller's stack is: on the
dev container, 2,600 to 21,800 ``munmap`` calls for ``from langchain_core.tools import
StructuredTool``, and 0.45 to 0.84 s, from one call depth to the next (``benchmarks/README.md``).
CPython caches one chunk from 3.13.x and 3.14.x releases of 2026 on; 3.11 and 3.12 never will.

:func:`roomy` calls a function from a frame whose value stack is declared 7,200 slots deep. It
cannot fit the chunk its caller is in, so CPython opens a 128 KiB chunk for it, and the call runs in
the 9,000 slots left there: no edge is crossed unless the call goes deeper than that. Declaring a
deeper stack than a function uses is safe (it is an upper bound); the frame costs one chunk's
allocation per call, so it is for rare, heavy calls (first imports), not for hot paths.

:func:`heavy_import` imports a module that way with the cyclic garbage collector paused: an import
that defines hundreds of classes and models allocates objects that all live as long as the process,
so the full collections it triggers (each one walks every object made so far) find nothing to free.
Measured on the dev container, building the toolkit's tools (LangChain's import) took 0.325 s with
the pause against 0.376 s without (median of 9 fresh interpreters).
"""

from __future__ import annotations

import gc
import importlib
import platform
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["ROOM_SLOTS", "gc_paused", "heavy_import", "roomy"]

T = TypeVar("T")

#: Slots declared on the value stack of the frame :func:`roomy` calls from: more than a 16, 32 or
#: 64 KiB chunk holds (with CPython's 1,000 slots of overhead), so it opens a 128 KiB one.
ROOM_SLOTS = 7_200


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return fn(*args, **kwargs)


def _roomy_caller() -> Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]:
    """:func:`_call` with a deep value stack where frames live in chunks (CPython 3.11 and later),
    else :func:`_call` as it is."""
    if platform.python_implementation() != "CPython" or sys.version_info < (3, 11):
        return _call
    code = _call.__code__
    try:
        roomy_code = code.replace(
            co_stacksize=code.co_stacksize + ROOM_SLOTS, co_name="_roomy_call", co_qualname="_roomy_call"
        )
    except (TypeError, ValueError):  # pragma: no cover - a CPython that will not take it: no room, same result
        return _call
    return types.FunctionType(roomy_code, _call.__globals__, "_roomy_call")


_ROOMY_CALL = _roomy_caller()


def roomy(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, its frames in a stack chunk of their own (see the module docstring)."""
    result: T = _ROOMY_CALL(fn, args, kwargs)
    return result


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block, then as it was: on again only if it was on
    (a process that turned it off keeps it off). Reference counting still frees what it can."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def heavy_import(name: str) -> types.ModuleType:
    """``importlib.import_module(name)`` with room on the frame stack and the collector paused (see
    the module docstring): for a first import of a large dependency, once per process."""
    with gc_paused():
        return roomy(importlib.import_module, name)
