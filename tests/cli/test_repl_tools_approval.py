"""``/tools`` in the chat REPL says which tools stop for approval as the persona's approval guard
decides it: every call of a tool whose effect always stops (adding to a list can start its flow,
unsubscribing changes consent), not only destructive ones, and the tools only some arguments make
stop (a list made with double opt-in, a profile given a new email). A person reading the list
before asking must not take a tool that will ask (or may ask) for one that never does."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock
from personas.cli.repl import Repl
from personas.kernel.models import ModelChoice, ScriptedChatModel
from personas.kernel.spec import ApprovalPolicy, PersonaSpec, ToolSelection
from personas.runtime.loader import load_persona

from .conftest import scripted_inputs


def tools_listing(spec: PersonaSpec | str, home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``/tools`` as the REPL prints it for ``spec``: each tool's flag by its name."""
    monkeypatch.setenv("PERSONAS_HOME", str(home))
    sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock())
    spec = load_persona(spec) if isinstance(spec, str) else spec
    model = ModelChoice(ScriptedChatModel([]), "scripted in the test", "scripted")
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = Repl(spec, sandbox=sb, input_fn=scripted_inputs("/tools"), model=model, tour=False).run()
    finally:
        sb.close()
    assert code == 0, out.getvalue()
    lines = re.findall(r"^  ([a-z_]+)(?: \((approval[a-z ]*)\))? - ", out.getvalue(), re.MULTILINE)
    assert lines, out.getvalue()
    return {name: flag for name, flag in lines}


def test_tools_that_always_or_sometimes_stop_are_flagged_not_only_destructive_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = tools_listing("klaviyo-assistant", tmp_path, monkeypatch)
    assert flags["delete_list"] == "approval" and flags["remove_profiles_from_list"] == "approval"
    assert flags["add_profiles_to_list"] == "approval"  # not destructive: it can start the list's flow
    assert flags["create_list"] == "approval for some arguments"  # with an opt-in process: consent
    assert flags["get_lists"] == "" and flags["get_profiles"] == ""


def test_in_mode_writes_every_write_is_flagged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = PersonaSpec(name="careful", description="Asks before every write (test persona).", graph="chat",
                       prompt="klaviyo_assistant.v1.md", scopes=["lists:read", "lists:write", "profiles:read"],
                       tools=ToolSelection(include=["get_lists", "create_list", "update_list", "delete_list"]),
                       approval=ApprovalPolicy(mode="writes"))
    flags = tools_listing(spec, tmp_path, monkeypatch)
    assert flags == {"get_lists": "", "create_list": "approval", "update_list": "approval", "delete_list": "approval"}
