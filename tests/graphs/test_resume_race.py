"""One approval sends its request once, even when two processes answer the same pause at once.

The chat persona pauses on a consent change (real SQLite checkpoints in a state folder, the sandbox
on a real port); then several processes resume it with ``approve`` at the same instant, as two
``personas run --resume approve`` would. One sends it; the others find nothing left to answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage

from klaviyo_sandbox import DEMO_KEY, Sandbox
from klaviyo_toolkit.client import KlaviyoClient
from personas.kernel.config import Config
from personas.kernel.models import ScriptedChatModel
from personas.runtime import build_context, run_persona
from tests.sandbox.conftest import on_port

ROOT = Path(__file__).resolve().parents[2]
PERSONA = "klaviyo-assistant"
THREAD = "race-1"
UNSUBSCRIBE = {"profiles": [{"email": "race@example.com",
                             "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}}]}

RESUME = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from langchain_core.messages import AIMessage
    from klaviyo_toolkit.client import KlaviyoClient
    from personas.kernel.config import Config
    from personas.kernel.errors import UsageProblem
    from personas.kernel.models import ScriptedChatModel
    from personas.runtime import build_context, run_persona

    url, home, start = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    client = KlaviyoClient(api_key="pk_sandbox_demo", base_url=url)
    ctx = build_context("klaviyo-assistant", client=client, config=Config(home=home), thread_id="race-1",
                        model=ScriptedChatModel([AIMessage("Unsubscribed.")]))
    while time.time() < start:
        time.sleep(0.001)
    try:
        run_persona("klaviyo-assistant", None, context=ctx, resume="approve")
        print("resumed")
    except UsageProblem as exc:
        print("refused:", exc)
""")


def test_two_processes_answering_one_pause_send_its_request_once(tmp_path: Path) -> None:
    sb = Sandbox(demo_data=False, rate_limit_factor=None)
    home = tmp_path / "home"
    try:
        with on_port(sb.app) as url:
            client = KlaviyoClient(api_key=DEMO_KEY, base_url=url)
            script = [AIMessage("", tool_calls=[{"name": "bulk_unsubscribe_profiles", "args": UNSUBSCRIBE,
                                                 "id": "c1"}])]
            ctx = build_context(PERSONA, client=client, config=Config(home=home), thread_id=THREAD,
                                model=ScriptedChatModel(script))
            paused = run_persona(PERSONA, {"messages": [HumanMessage("unsubscribe race@example.com")]}, context=ctx)
            assert paused.paused and paused.interrupts[0]["tool"] == "bulk_unsubscribe_profiles"
            start = str(time.time() + 4)  # every child has imported everything by then
            env = {**os.environ, "PYTHONPATH": str(ROOT), "PERSONAS_HOME": str(home),
                   "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
            children = [subprocess.Popen([sys.executable, "-c", RESUME, url, str(home), start], env=env, cwd=ROOT,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                        for _ in range(3)]
            outputs = [child.communicate(timeout=120) for child in children]
    finally:
        sb.close()
    said = [out.strip().splitlines()[-1] if out.strip() else err for out, err in outputs]
    assert sb.call_counts["bulk_unsubscribe_profiles"] == 1, said
    assert sorted(line.split(":")[0] for line in said) == ["refused", "refused", "resumed"], said
    assert all("not waiting for an approval" in line for line in said if line.startswith("refused")), said
