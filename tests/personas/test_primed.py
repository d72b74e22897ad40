"""The input's checkpoint handed back to the run that wrote it (``personas.runtime.primed``), on the
real SQLite checkpointer: the read it saves returns what the database holds, once, for that thread
only, inside the block only; a finished lead reads the database once (the check for an earlier
checkpoint), not twice; a secret in the input is still redacted where it is stored."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from klaviyo_sandbox import Sandbox
from personas.runtime import RunDriver, build_context, checkpointer
from personas.runtime.primed import primed_start, remembered
from personas.runtime.saves import inline_saves

from ..graphs.leads import HOT, choose, sign_up


class State(TypedDict, total=False):
    note: str
    seen: str


def graph(saver: Any) -> Any:
    built = StateGraph(State)
    built.add_node("look", lambda state: {"seen": state.get("note", "")})
    built.add_edge(START, "look")
    built.add_edge("look", END)
    return built.compile(checkpointer=saver)


@pytest.fixture
def sqlite_reads(reads_of: Callable[[type], list[Any]]) -> list[Any]:
    """The configs of the reads that reach SQLite (LangGraph's ``SqliteSaver.get_tuple``, called through)."""
    return reads_of(SqliteSaver)


def as_stored(found: Any) -> tuple[Any, ...]:
    cp = found.checkpoint
    return (
        found.config["configurable"]["checkpoint_id"],
        cp["id"],
        dict(cp["channel_values"]),
        dict(cp["channel_versions"]),
        {k: dict(v) for k, v in cp["versions_seen"].items()},
        found.metadata,
        found.parent_config,
        list(found.pending_writes or []),
    )


def test_the_read_after_the_input_is_what_the_database_holds(tmp_path: Path, sqlite_reads: list[Any]) -> None:
    saver = checkpointer(tmp_path / "c.sqlite")
    compiled = graph(saver)
    config = {"configurable": {"thread_id": "t1"}}
    compiled.invoke({"note": "first"}, config)  # an earlier run: the input's checkpoint has a parent
    with primed_start():
        with remembered():
            written = compiled.update_state(config, {"note": "second"}, as_node="__start__")
        before = len(sqlite_reads)
        from_memory = saver.get_tuple(config)
        assert len(sqlite_reads) == before, "the read after the write is answered from memory"
        again = saver.get_tuple(config)
        assert len(sqlite_reads) == before + 1, "once"
    from_disk = saver.get_tuple(config)
    assert from_memory is not None
    assert from_memory.config["configurable"]["checkpoint_id"] == written["configurable"]["checkpoint_id"]
    assert as_stored(from_memory) == as_stored(from_disk) == as_stored(again)
    assert from_memory.parent_config is not None


def test_only_the_write_remembered_only_for_the_threads_next_read(tmp_path: Path, sqlite_reads: list[Any]) -> None:
    saver = checkpointer(tmp_path / "c.sqlite")
    compiled = graph(saver)
    one, two = {"configurable": {"thread_id": "one"}}, {"configurable": {"thread_id": "two"}}
    compiled.invoke({"note": "other"}, two)
    with primed_start():
        with remembered():
            compiled.update_state(one, {"note": "x"}, as_node="__start__")
        assert saver.get_tuple(two).checkpoint["channel_values"]["seen"] == "other"  # another thread: the database
        before = len(sqlite_reads)
        held = saver.get_tuple(one)
        assert len(sqlite_reads) == before and held is not None and held.checkpoint["channel_values"]["note"] == "x"

    with inline_saves(), primed_start():  # writes outside `remembered` (a run's own): read as stored
        compiled.update_state(one, {"note": "not remembered"}, as_node="__start__")
        before = len(sqlite_reads)
        latest = saver.get_tuple(one)
        assert len(sqlite_reads) == before + 1 and latest.checkpoint["channel_values"]["note"] == "not remembered"
        compiled.invoke({"note": "run"}, one)
        assert saver.get_tuple(one).checkpoint["channel_values"]["seen"] == "run"

    with primed_start():  # the thread's next read spends it, even one for another checkpoint
        with remembered():
            compiled.update_state(one, {"note": "y"}, as_node="__start__")
        earlier = saver.get_tuple(
            {"configurable": {**one["configurable"], "checkpoint_id": held.config["configurable"]["checkpoint_id"]}}
        )
        assert earlier is not None and earlier.checkpoint["channel_values"]["note"] == "x"
        before = len(sqlite_reads)
        assert saver.get_tuple(one).checkpoint["channel_values"]["note"] == "y"
        assert len(sqlite_reads) == before + 1

    with primed_start(), remembered():
        compiled.update_state(one, {"note": "z"}, as_node="__start__")
    outside = saver.get_tuple(one)  # after the block: the database, which holds the same checkpoint
    assert outside is not None and outside.checkpoint["channel_values"]["note"] == "z"

    with primed_start():
        with remembered():
            written = compiled.update_state(one, {"note": "w"}, as_node="__start__")
        saver.put_writes(written, [("note", "written after")], "task-1")
        found = saver.get_tuple(one)
    assert found is not None and [w[1:] for w in found.pending_writes] == [("note", "written after")]


def test_a_send_from_the_start_runs_as_it_does_without_the_block(tmp_path: Path) -> None:
    """A ``Send`` made at ``__start__`` travels in the input's checkpoint: the run started from the
    checkpoint handed back runs it as the run that read the database does."""
    built = StateGraph(State)
    built.add_node("look", lambda state: {"seen": state.get("note", "")})
    built.add_conditional_edges(START, lambda state: [Send("look", {"note": "sent"})], ["look"])
    built.add_edge("look", END)
    saver = checkpointer(tmp_path / "c.sqlite")
    compiled = built.compile(checkpointer=saver)
    results = []
    for thread, primed in (("plain", False), ("primed", True)):
        config = {"configurable": {"thread_id": thread}}
        with primed_start() if primed else nullcontext(), remembered():
            compiled.update_state(config, {"note": "input"}, as_node="__start__")
            results.append(compiled.invoke(None, config))
    assert results[0] == results[1] == {"note": "input", "seen": "sent"}


def test_a_lead_reads_sqlite_once_and_a_secret_in_its_input_stays_redacted(
    tmp_path: Path, sqlite_reads: list[Any]
) -> None:
    """The run's one read is its check for an earlier checkpoint; the input it wrote is not read back."""
    sb = Sandbox(seed=42, rate_limit_factor=None)
    event = sign_up(sb, "primed@example.com", HOT)
    event["data"]["attributes"]["event_properties"]["note"] = "password=hunter2hunter2"
    saver = checkpointer(tmp_path / "checkpoints.sqlite")
    ctx = build_context(
        "lead-magnet-sequencer", sandbox=sb, thread_id="primed", audit=False, model=choose("fast-track")
    )
    result = RunDriver(ctx, saver).invoke({"input": event})
    assert result.status == "done" and result.state["send"]["status"] == "sent"
    assert len(sqlite_reads) == 1, sqlite_reads
    stored = saver.get_tuple({"configurable": {"thread_id": "primed"}})
    assert stored is not None and "hunter2hunter2" not in repr(stored.checkpoint["channel_values"])
