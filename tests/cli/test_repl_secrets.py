"""The REPL never prints a secret a tool call carries: a webhook's new secret key, given by the
user and sent to Klaviyo as asked, is masked in the call line and in the approval, both."""

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
from personas.kernel.spec import ApprovalPolicy, PersonaSpec, ToolSelection

from .conftest import scripted_inputs

NEW_SECRET = "whsec_zyxwvutsrqponmlk"
HOOKS = PersonaSpec(name="hooks", description="Manages webhooks (test persona).", graph="chat",
                    prompt="klaviyo_assistant.v1.md", scopes=["webhooks:read", "webhooks:write"],
                    tools=ToolSelection(search=True), approval=ApprovalPolicy())


def test_a_secret_in_a_tool_call_is_masked_in_the_repl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path))
    sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock())
    kl = sb.client()
    topic = kl.call("get_webhook_topics").data[0]["id"]
    hook = kl.call("create_webhook", name="W", endpoint_url="https://hooks.example.com/x",
                   secret_key="whsec_abcdefghijklmnop", webhook_topic_ids=[topic]).data["id"]
    call = {"name": "update_webhook", "args": {"id": hook, "secret_key": NEW_SECRET}, "id": "c1"}
    model = ModelChoice(ScriptedChatModel([AIMessage("", tool_calls=[call]), AIMessage("Not changed.")]),
                        "scripted in the test", "scripted")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = Repl(HOOKS, sandbox=sb, input_fn=scripted_inputs(f"rotate the secret of webhook {hook}", "r", "no"),
                    model=model, tour=False).run()
    transcript = out.getvalue()
    assert code == 0, transcript
    assert "→ update_webhook" in transcript and "Approval needed: update_webhook" in transcript, transcript
    assert NEW_SECRET not in transcript.replace(f"rotate the secret of webhook {hook}", ""), transcript
