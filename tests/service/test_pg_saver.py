"""The PostgreSQL checkpointer's one-statement writes (``personas.service.pg_saver``): the rows upstream's
``PostgresSaver`` would write, read back the same, in one statement and one transaction per write; a
graph interrupted and a lead-magnet run that failed are resumed on it.

Real PostgreSQL (``PERSONAS_TEST_DATABASE_URL``, see conftest). Statements are counted from libpq's
protocol trace of the pool's one connection (``Execute`` messages the server received); transactions
from the transaction ids the writes used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypedDict

import psycopg
import pytest
from langgraph.checkpoint.base import ERROR, INTERRUPT, empty_checkpoint
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from klaviyo_sandbox import Sandbox
from personas.runtime import RunDriver, build_context
from personas.service.pg_saver import PostgresCheckpointSaver
from personas.service.postgres import checkpointer
from tests.graphs.leads import HOT, choose, failed_send, first_touchpoints, sequence_starts, sign_up

ROWS = {
    "checkpoints": "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata "
    "FROM checkpoints WHERE thread_id = %s ORDER BY checkpoint_ns, checkpoint_id",
    "checkpoint_blobs": "SELECT checkpoint_ns, channel, version, type, blob FROM checkpoint_blobs "
    "WHERE thread_id = %s ORDER BY checkpoint_ns, channel, version",
    "checkpoint_writes": "SELECT checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob "
    "FROM checkpoint_writes WHERE thread_id = %s ORDER BY checkpoint_ns, checkpoint_id, task_id, idx",
}


@pytest.fixture
def savers(pg_url: str) -> Iterator[tuple[PostgresCheckpointSaver, PostgresSaver]]:
    """Ours as ``checkpointer`` makes it (one pooled connection) and upstream's on the same pool and serde."""
    ours = checkpointer(pg_url, max_size=1)
    assert isinstance(ours, PostgresCheckpointSaver)
    try:
        yield ours, PostgresSaver(ours.conn, serde=ours.serde)
    finally:
        ours.conn.close()


def rows(url: str, thread_id: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {table: conn.execute(sql, (thread_id,)).fetchall() for table, sql in ROWS.items()}


def cfg(thread_id: str, checkpoint_id: str | None = None, ns: str = "") -> dict[str, Any]:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def checkpoint(n: int, values: dict[str, Any], versions: dict[str, str]) -> dict[str, Any]:
    ck = empty_checkpoint()
    ck["id"], ck["ts"] = f"1f1f0000-0000-6000-8000-{n:012d}", f"2026-11-25T20:00:{n:02d}+00:00"
    ck["channel_values"] = values
    ck["channel_versions"] = versions
    return ck


def v(n: int) -> str:
    return f"{n:032}.0.5"


#: Each: (checkpoint values, their versions, the new versions put is given). One thread writes them in turn,
#: each the child of the one before.
SHAPES: list[tuple[dict[str, Any], dict[str, str], dict[str, str]]] = [
    ({}, {}, {}),  # nothing at all
    ({"a": 1, "b": "x", "c": None, "d": True, "e": 2.5}, {k: v(1) for k in "abcde"}, {k: v(1) for k in "abcde"}),
    (
        {"a": 1, "profile": {"id": "01J", "email": "lead@example.com"}, "metrics": [1, 2, 3], "s": "text"},
        {"a": v(2), "profile": v(2), "metrics": v(2), "s": v(2)},
        {"a": v(2), "profile": v(2), "metrics": v(2), "s": v(2)},
    ),
    (  # a new version of one channel only; the others keep theirs (their blobs are not written again)
        {"a": 1, "profile": {"id": "01J", "score": 77}, "metrics": [1, 2, 3], "s": "text"},
        {"a": v(2), "profile": v(3), "metrics": v(2), "s": v(2)},
        {"profile": v(3)},
    ),
    (  # a delta snapshot: a blob behind an inline `true`
        {"profile": {"id": "01J", "score": 77}, "log": _DeltaSnapshot(["one", "two"])},
        {"profile": v(3), "log": v(4)},
        {"log": v(4)},
    ),
    (  # a version named that has no value
        {"a": 2},
        {"a": v(5), "gone": v(5)},
        {"a": v(5), "gone": v(5)},
    ),
]


def put_all(saver: PostgresSaver, thread_id: str) -> list[dict[str, Any]]:
    """Write SHAPES as one thread's chain (and some writes to each); the configs ``put`` answered."""
    answered, parent = [], None
    for n, (values, versions, new) in enumerate(SHAPES, start=1):
        metadata = {"source": "loop", "step": n, "parents": {}, "note": "a\u0000b"}
        config = {**cfg(thread_id, parent), "metadata": {"run_by": "test"}}
        answered.append(saver.put(config, checkpoint(n, values, versions), metadata, new))  # type: ignore[arg-type]
        parent = answered[-1]["configurable"]["checkpoint_id"]
        saver.put_writes(answered[-1], [("a", n), ("profile", {"n": n}), ("s", "t")], f"task-{n}", "~node")
        saver.put_writes(answered[-1], [("a", -n)], f"task-{n}", "~node")  # kept as first written
        saver.put_writes(answered[-1], [(ERROR, ValueError("first"))], f"task-{n}")
        saver.put_writes(answered[-1], [(ERROR, ValueError("second"))], f"task-{n}")  # replaces
        saver.put_writes(answered[-1], [(INTERRUPT, "a"), (INTERRUPT, "b")], "task-i")  # one idx twice: the last
        saver.put_writes(answered[-1], [], "task-none")
    return answered


def test_the_rows_written_and_read_back_are_upstreams(savers: Any, pg_url: str) -> None:
    ours, upstream = savers
    ours_answered, upstream_answered = put_all(ours, "ours"), put_all(upstream, "upstream")
    for mine, theirs in zip(ours_answered, upstream_answered, strict=True):
        assert mine["configurable"] == {**theirs["configurable"], "thread_id": "ours"}
    mine, theirs = rows(pg_url, "ours"), rows(pg_url, "upstream")
    assert mine == theirs
    assert len(mine["checkpoints"]) == len(SHAPES) and len(mine["checkpoint_blobs"]) == 4
    assert len(mine["checkpoint_writes"]) == len(SHAPES) * 5
    for answered in upstream_answered:
        config = answered["configurable"]
        a = ours.get_tuple(cfg("ours", config["checkpoint_id"]))
        b = ours.get_tuple(cfg("upstream", config["checkpoint_id"]))
        assert (a.checkpoint, a.metadata, a.parent_config and a.parent_config["configurable"]["checkpoint_id"]) == (
            b.checkpoint, b.metadata, b.parent_config and b.parent_config["configurable"]["checkpoint_id"])
        assert [(t, c, repr(w)) for t, c, w in a.pending_writes] == [(t, c, repr(w)) for t, c, w in b.pending_writes]
    assert ours.get_tuple(cfg("ours")).checkpoint["id"] == ours_answered[-1]["configurable"]["checkpoint_id"]


class Traced:
    """The protocol messages the pool's one connection sends while the block runs (libpq's trace)."""

    def __init__(self, saver: PostgresSaver, path: Path) -> None:
        self.saver, self.path = saver, path

    def __enter__(self) -> Traced:
        self.file = self.path.open("w")
        with self.saver.conn.connection() as conn:  # type: ignore[union-attr]
            conn.pgconn.trace(self.file.fileno())
        return self

    def __exit__(self, *exc: object) -> None:
        with self.saver.conn.connection() as conn:  # type: ignore[union-attr]
            conn.pgconn.untrace()
        self.file.close()

    def sent(self, message: str) -> int:
        return len(re.findall(rf"^\S+\s+\S+\s+F\s+\d+\s+{message}\b", self.path.read_text(), re.M))


def transactions(url: str, write: Any) -> int:
    """Transaction ids ``write()`` used: one per transaction that wrote a row (two reads of the counter apart)."""
    with psycopg.connect(url, autocommit=True) as conn:
        before = int(conn.execute("SELECT txid_current()").fetchone()[0])
        write()
        return int(conn.execute("SELECT txid_current()").fetchone()[0]) - before - 1


@pytest.mark.parametrize("which", ["ours", "upstream"])
def test_a_put_is_one_statement_in_one_transaction(savers: Any, pg_url: str, tmp_path: Path, which: str) -> None:
    saver = savers[0] if which == "ours" else savers[1]
    values, versions, new = SHAPES[2]
    saver.put(cfg("warm"), checkpoint(1, values, versions), {}, new)  # the statements are prepared
    saver.put_writes(cfg("warm", checkpoint(1, {}, {})["id"]), [("a", 1), ("b", 2)], "t")
    with Traced(saver, tmp_path / "trace") as traced:
        used = transactions(pg_url, lambda: saver.put(cfg(which), checkpoint(1, values, versions), {}, new))
    statements = traced.sent("Execute")
    assert traced.sent("Sync") == 1 and used == 1, "one transaction either way (upstream pipelines its statements)"
    with Traced(saver, tmp_path / "trace-w") as traced:
        saver.put_writes(cfg(which, checkpoint(1, {}, {})["id"]), [("a", 1), ("b", 2), ("c", 3)], "t")
    if which == "ours":
        assert statements == 1 and traced.sent("Execute") == 1
    else:  # what the test would find without our saver: a statement for each blob and write
        assert statements == 3 and traced.sent("Execute") == 3  # two blobs and the checkpoint; three writes


class State(TypedDict, total=False):
    lead: dict[str, Any]
    answer: str
    done: str


def asks(state: State) -> State:
    return {"answer": interrupt({"question": "send?", "lead": state["lead"]})}


def finishes(state: State) -> State:
    return {"done": f"{state['lead']['email']}: {state['answer']}"}


def graph(saver: PostgresSaver) -> Any:
    builder = StateGraph(State)
    builder.add_node("asks", asks)
    builder.add_node("finishes", finishes)
    builder.add_edge(START, "asks")
    builder.add_edge("asks", "finishes")
    builder.add_edge("finishes", END)
    return builder.compile(checkpointer=saver)


def test_an_interrupted_graph_resumes_on_a_new_saver(pg_url: str) -> None:
    config = {"configurable": {"thread_id": "ask"}}
    first = checkpointer(pg_url, max_size=1)
    try:
        out = graph(first).invoke({"lead": {"email": "lead@example.com"}}, config)
        assert out["__interrupt__"][0].value["question"] == "send?"
    finally:
        first.conn.close()
    second = checkpointer(pg_url, max_size=2)  # another process's worth: a new pool
    try:
        assert graph(second).get_state(config).next == ("asks",)
        out = graph(second).invoke(Command(resume="yes"), config)
        assert out["done"] == "lead@example.com: yes"
        assert graph(second).get_state(config).next == ()
        assert len(list(second.list(config))) >= 3
    finally:
        second.conn.close()


def test_a_lead_magnet_run_that_failed_is_retried_where_it_failed(pg_url: str) -> None:
    sb = Sandbox(seed=42, rate_limit_factor=None)
    saver = checkpointer(pg_url)
    try:
        driver, model, profile_id = failed_send(sb, saver, "pg.failed.send@example.com", "pg-failed")
        result = driver.retry()
        assert result.status == "done" and result.state["send"]["status"] == "sent"
        assert len(model.requests) == 1
        assert len(sequence_starts(sb, profile_id)) == 1 and len(first_touchpoints(sb, profile_id)) == 1
        saved = list(saver.list({"configurable": {"thread_id": "pg-failed"}}))
        assert saved[0].checkpoint["channel_values"]["send"]["status"] == "sent"
    finally:
        saver.conn.close()
        sb.close()


def test_a_lead_reads_its_input_checkpoint_from_memory_as_the_database_holds_it(
    pg_url: str, reads_of: Callable[[type], list[Any]]
) -> None:
    """``PrimedStart`` on PostgreSQL: a finished lead's one read that reaches the server is the check for
    an earlier checkpoint (upstream's ``get_tuple``, counted and called through); the input checkpoint
    handed back is the one the server holds."""
    reads = reads_of(PostgresSaver)
    sb = Sandbox(seed=42, rate_limit_factor=None)
    event = sign_up(sb, "pg.primed@example.com", HOT)
    saver = checkpointer(pg_url, max_size=1)
    try:
        ctx = build_context("lead-magnet-sequencer", sandbox=sb, thread_id="pg-primed", audit=False,
                            model=choose("fast-track"))
        result = RunDriver(ctx, saver).invoke({"input": event})
        assert result.status == "done" and result.state["send"]["status"] == "sent"
        assert len(reads) == 1, reads

        from personas.runtime.primed import primed_start, remembered

        config = {"configurable": {"thread_id": "pg-primed-2"}}
        with primed_start():
            with remembered():
                RunDriver(ctx, saver).graph.update_state(config, {"input": event}, as_node="__start__")
            from_memory = saver.get_tuple(config)
        from_server = saver.get_tuple(config)
        assert from_memory is not None and from_server is not None
        assert from_memory.config == from_server.config and from_memory.metadata == from_server.metadata
        assert from_memory.checkpoint["channel_values"] == from_server.checkpoint["channel_values"]
        assert from_memory.checkpoint["channel_versions"] == from_server.checkpoint["channel_versions"]
        assert from_memory.pending_writes == from_server.pending_writes == []
    finally:
        saver.conn.close()
        sb.close()
