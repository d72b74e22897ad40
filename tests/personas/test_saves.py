"""Checkpoint writes in the run's own thread (``personas.runtime.saves``): installed on this
LangGraph, writes made in place and in order inside the block, a failed write still fails the run,
parallel tasks still run in LangGraph's pool, and loops outside the block are untouched."""

from __future__ import annotations

import operator
import threading
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from personas.runtime import checkpointer
from personas.runtime.saves import inline_saves, install, installed


class State(TypedDict, total=False):
    steps: Annotated[list[str], operator.add]


class Recording(InMemorySaver):
    """An in-memory saver that notes which thread made each write (and can be told to fail)."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[tuple[str, str]] = []
        self.fail_on: str | None = None

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        self.threads.append(("put", threading.current_thread().name))
        if self.fail_on == "put" and metadata.get("step", -1) >= 1:
            raise OSError("disk full")
        return super().put(config, checkpoint, metadata, new_versions)

    def put_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        self.threads.append(("put_writes", threading.current_thread().name))
        if self.fail_on == "put_writes":
            raise OSError("disk full")
        super().put_writes(config, writes, task_id, task_path)


def chain(saver: Any) -> Any:
    graph = StateGraph(State)
    for name in ("a", "b", "c"):
        graph.add_node(name, lambda state, n=name: {"steps": [n]})
    graph.add_edge(START, "a")
    graph.add_edge("a", "b")
    graph.add_edge("b", "c")
    graph.add_edge("c", END)
    return graph.compile(checkpointer=saver)


def test_installed_on_this_langgraph() -> None:
    install()
    assert installed(), "LangGraph moved BackgroundExecutor or _checkpointer_put_after_previous; update saves.py"


def test_writes_run_in_the_calling_thread_inside_the_block() -> None:
    saver = Recording()
    with inline_saves():
        out = chain(saver).invoke({"steps": []}, {"configurable": {"thread_id": "t"}}, durability="sync")
    assert out["steps"] == ["a", "b", "c"]
    me = threading.current_thread().name
    assert saver.threads and all(name == me for _, name in saver.threads), saver.threads
    assert {kind for kind, _ in saver.threads} == {"put", "put_writes"}
    # Every step's checkpoint is there, in order, and the run resumes from the last one as before.
    history = list(chain(saver).get_state_history({"configurable": {"thread_id": "t"}}))
    assert [s.values.get("steps") for s in reversed(history)][-1] == ["a", "b", "c"]


def test_outside_the_block_writes_go_to_langgraphs_pool() -> None:
    saver = Recording()
    chain(saver).invoke({"steps": []}, {"configurable": {"thread_id": "t"}}, durability="sync")
    me = threading.current_thread().name
    assert any(name != me for _, name in saver.threads), "writes outside the block should stay in the pool"


@pytest.mark.parametrize("where", ["put", "put_writes"])
def test_a_failed_write_fails_the_run(where: str) -> None:
    saver = Recording()
    saver.fail_on = where
    with inline_saves(), pytest.raises(OSError, match="disk full"):
        chain(saver).invoke({"steps": []}, {"configurable": {"thread_id": "t"}}, durability="sync")


def test_parallel_tasks_still_run_in_the_pool() -> None:
    seen: set[str] = set()
    both = threading.Barrier(2, timeout=5)

    def branch(state: State) -> State:
        seen.add(threading.current_thread().name)
        both.wait()  # deadlocks (BrokenBarrierError) if the two branches ran one after the other
        return {"steps": ["x"]}

    graph = StateGraph(State)
    graph.add_node("left", branch)
    graph.add_node("right", branch)
    graph.add_edge(START, "left")
    graph.add_edge(START, "right")
    graph.add_edge("left", END)
    graph.add_edge("right", END)
    compiled = graph.compile(checkpointer=Recording())
    with inline_saves():
        out = compiled.invoke({"steps": []}, {"configurable": {"thread_id": "p"}}, durability="sync")
    assert out["steps"] == ["x", "x"] and len(seen) == 2


def test_a_run_killed_between_steps_resumes_from_sqlite(tmp_path: Path) -> None:
    """With the shared SQLite checkpointer: a node that fails leaves the steps before it on disk,
    and the retry continues from there, running each earlier step once."""
    ran: list[str] = []
    fail = {"b": True}

    def step(name: str) -> Any:
        def node(state: State) -> State:
            ran.append(name)
            if fail.get(name):
                fail[name] = False
                raise RuntimeError(f"{name} failed")
            return {"steps": [name]}

        return node

    graph = StateGraph(State)
    for name in ("a", "b", "c"):
        graph.add_node(name, step(name))
    graph.add_edge(START, "a")
    graph.add_edge("a", "b")
    graph.add_edge("b", "c")
    graph.add_edge("c", END)
    saver = checkpointer(tmp_path / "checkpoints.sqlite")
    compiled = graph.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "k"}}
    with inline_saves(), pytest.raises(RuntimeError, match="b failed"):
        compiled.invoke({"steps": []}, config, durability="sync")
    with inline_saves():
        out = compiled.invoke(None, config, durability="sync")
    assert out["steps"] == ["a", "b", "c"]
    assert ran == ["a", "b", "b", "c"]


def test_a_stream_closed_from_another_context_ends_cleanly() -> None:
    """``RunDriver.stream`` holds the block across yields; a consumer that started it in one context
    and drops it in another (a generator finalised elsewhere) must not get a ValueError from the reset."""
    import contextvars

    def stream() -> Any:
        with inline_saves():
            yield 1
            yield 2

    chunks = stream()
    contextvars.copy_context().run(next, chunks)
    chunks.close()  # runs the block's exit here, outside the context that entered it
