"""A turn resumed after an approval shows each tool result once.

When one AI message asks for several calls and one of them stops for approval, the calls that
already ran keep their results in the checkpoint; on resume LangGraph replays those results as
``updates`` marked ``cached``. The REPL had shown them when they ran, so it printed them again
(and, after an edit, a third time), as if the calls had been made again.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock
from personas.cli.repl import Repl
from personas.kernel.models import ModelChoice, ScriptedChatModel
from personas.runtime.loader import load_persona

from .conftest import scripted_inputs


def test_results_of_calls_that_ran_before_the_pause_are_shown_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path))
    sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock())
    doomed = sb.client().call("create_list", name="Doomed").data["id"]
    calls = [{"name": "get_lists", "args": {}, "id": "c1"}, {"name": "delete_list", "args": {"id": doomed}, "id": "c2"}]
    model = ModelChoice(ScriptedChatModel([AIMessage("", tool_calls=calls), AIMessage("Deleted.")]),
                        "scripted in the test", "scripted")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = Repl(load_persona("klaviyo-assistant"), sandbox=sb, input_fn=scripted_inputs("delete Doomed", "a"),
                    model=model, tour=False).run()
    transcript = out.getvalue()
    assert code == 0, transcript
    assert "Approval needed: delete_list" in transcript and "← delete_list" in transcript, transcript
    assert transcript.count("← get_lists") == 1, transcript
    assert transcript.count("← delete_list") == 1, transcript
