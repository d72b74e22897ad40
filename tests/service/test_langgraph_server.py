"""LangGraph Server: ``langgraph dev`` (langgraph-cli[inmem]) serves every graph of langgraph.json,
and a graph runs through its HTTP API against the sandbox served on another port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from tests.graphs.leads import HOT, first_touchpoints, sequence_starts, sign_up

from .conftest import free_port, serve_app

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def served() -> Iterator[tuple[Sandbox, str]]:
    sb = Sandbox(seed=17, rate_limit_factor=None)
    with serve_app(sb.app) as url:
        yield sb, url
    sb.close()


def test_langgraph_dev_runs_the_sequencer_against_the_sandbox(tmp_path: Path, served: tuple[Sandbox, str]) -> None:
    sb, url = served
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "KLAVIYO_", "PERSONAS_", "LANGSMITH"))}
    env.update(
        KLAVIYO_BASE_URL=url, KLAVIYO_API_KEY="pk_sandbox_demo", PERSONAS_HOME=str(tmp_path / "home"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", LANGGRAPH_CLI_NO_ANALYTICS="1",
        LANGSMITH_TRACING="false",
    )
    langgraph = str(Path(sys.executable).with_name("langgraph"))
    server = subprocess.Popen(
        [langgraph, "dev", "--port", str(port), "--no-browser", "--no-reload",
         "--config", str(ROOT / "langgraph.json")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "langgraph dev did not start"
            time.sleep(0.5)
        assistants = httpx.post(f"{base}/assistants/search", json={"limit": 20}).json()
        assert {a["graph_id"] for a in assistants} == {"lead_magnet", "segment_sync", "campaign_report", "chat"}
        event = sign_up(sb, "served.lead@example.com", HOT)
        thread = httpx.post(f"{base}/threads", json={}).json()["thread_id"]
        answer = httpx.post(
            f"{base}/threads/{thread}/runs/wait",
            json={"assistant_id": "lead_magnet", "input": {"input": event},
                  "config": {"configurable": {"persona": "lead-magnet-sequencer"}}},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        state = answer.json()
        assert "send" in state, state
        assert state["send"]["status"] == "sent" and state["decision"]["sequence"] in ("fast-track", "nurture")
        pid = event["data"]["relationships"]["profile"]["data"]["id"]
        assert len(sequence_starts(sb, pid)) == 1 and len(first_touchpoints(sb, pid)) == 1
        saved = httpx.get(f"{base}/threads/{thread}/state").json()
        assert "pk_sandbox_demo" not in str(saved)
    finally:
        server.terminate()
        try:
            output = server.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            server.kill()
            output = server.communicate()[0]
    assert "Traceback" not in output, output[-3000:]
