"""A read that shows what an approval changes never holds the approval up: against a sandbox
server whose read is slow, or answers 429 with a long Retry-After, the request is asked about at
once, says why the resource was not read, and is sent once approved."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from klaviyo_sandbox import DEMO_KEY
from klaviyo_toolkit.client import KlaviyoClient
from personas.kernel.models import ScriptedChatModel
from personas.runtime import build_context, run_persona

PERSONA = "klaviyo-assistant"


@pytest.mark.parametrize(("faults", "why"), [
    ({"slow_rate": 1.0, "delay": 30.0, "operations": ["get_list"]}, "timed out"),
    ({"storm_rate": 1.0, "storm_retry_after": 30.0, "operations": ["get_list"]}, "429"),
])
def test_a_slow_or_throttled_read_never_holds_the_approval_up(
        faults: dict[str, Any], why: str, sandbox_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path))
    client = KlaviyoClient(api_key=DEMO_KEY, base_url=sandbox_server)
    lid = client.call("create_list", name="Old promo").data["id"]
    assert httpx.put(f"{sandbox_server}/sandbox/faults", json=faults).status_code == 200
    call = {"name": "delete_list", "args": {"id": lid}, "id": "c1"}
    ctx = build_context(PERSONA, client=client, model=ScriptedChatModel([AIMessage("", tool_calls=[call]),
                                                                         AIMessage("deleted")]))
    saver = InMemorySaver()
    started = time.monotonic()
    paused = run_persona(PERSONA, {"messages": [HumanMessage("delete Old promo")]}, context=ctx, saver=saver)
    took = time.monotonic() - started
    assert paused.paused and took < 15, f"the approval was asked after {took:.1f} s"
    unread = paused.interrupts[0]["current"]["unread"]
    assert unread.startswith("get_list failed: ") and why in unread, unread
    assert httpx.put(f"{sandbox_server}/sandbox/faults", json={}).status_code == 200
    done = run_persona(PERSONA, None, context=ctx, saver=saver,
                       resume={"action": "approve", "fingerprint": paused.interrupts[0]["fingerprint"]})
    assert not done.paused
    assert client.call("get_lists", filter=f'equals(id,"{lid}")').data == []
