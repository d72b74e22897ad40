"""No call acts unrecorded, however long the conversation: the audit log is checked before each
write, not only when the chat began. A conversation on a real SQLite audit log, changed between
turns as someone with the file would change it (its newest rows cut, rows refused), with the chat
persona calling the in-process sandbox over HTTP."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from klaviyo_sandbox import Sandbox
from personas.kernel.config import Config
from personas.kernel.models import ScriptedChatModel
from personas.runtime import RunDriver, RunResult, build_context

from .test_chat import sb

__all__ = ["sb"]  # the fixture, shared with test_chat

PERSONA = "klaviyo-assistant"


class Conversation:
    """The assistant on ``home``'s audit log; each turn, the model makes one call, then answers."""

    def __init__(self, sb: Sandbox, home: Path, calls: list[tuple[str, dict[str, object]]]) -> None:
        script: list[AIMessage] = []
        for i, (tool, args) in enumerate(calls):
            script += [AIMessage("", tool_calls=[{"name": tool, "args": args, "id": f"c{i}"}]), AIMessage("done")]
        self.ctx = build_context(PERSONA, sandbox=sb, model=ScriptedChatModel(script), clock=sb.clock,
                                 config=Config(home=home))
        self.driver = RunDriver(self.ctx, InMemorySaver())

    def turn(self) -> str:
        result: RunResult = self.driver.invoke({"messages": [HumanMessage("go on")]})
        return str([m for m in result.state["messages"] if isinstance(m, ToolMessage)][-1].content)

    def rows(self) -> list[tuple[str, str]]:
        assert self.ctx.audit is not None
        return [(r.tool, r.status) for r in reversed(self.ctx.audit.query(limit=None))]


def _lists(sb: Sandbox) -> list[str]:
    return [str(item["attributes"]["name"]) for item in sb.client().call("get_lists").data]


def test_a_write_after_the_logs_newest_rows_were_cut_is_not_sent(sb: Sandbox, tmp_path: Path) -> None:
    chat = Conversation(sb, tmp_path, [("create_list", {"name": "first"}), ("create_list", {"name": "second"})])
    chat.turn()
    assert chat.rows() == [("create_list", "ok")] and _lists(sb) == ["first"]
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:  # someone deletes the newest row
        db.execute("DROP TRIGGER audit_log_no_delete")
        db.execute("DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)")
    said = chat.turn()
    assert "Not sent: the audit log cannot record this call" in said, said
    assert _lists(sb) == ["first"], "the second list was made with no row to record it"


def test_once_a_row_could_not_be_written_no_later_call_runs(sb: Sandbox, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    chat = Conversation(sb, tmp_path, [("create_list", {"name": "first"}), ("create_list", {"name": "second"}),
                                       ("create_list", {"name": "third"}), ("get_lists", {})])
    chat.turn()
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:  # the log stops taking rows (a full disk, say)
        db.execute("CREATE TRIGGER full BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk is full'); END")
    chat.turn()  # its request went out before its row was refused: that one cannot be had back
    assert _lists(sb) == ["first", "second"]
    said_once = [r for r in caplog.records if "the audit log could not record create_list" in r.getMessage()]
    assert said_once and said_once[0].exc_info is None, "said in a line, not a traceback"
    for _ in range(2):  # a write and a read: neither runs unrecorded
        said = chat.turn()
        assert "Not sent: the audit log cannot record this call" in said and "disk is full" in said, said
    assert _lists(sb) == ["first", "second"]
    assert sb.call_counts.get("get_lists", 0) == 2  # only this test's own reads above
