"""An approver's edit is recorded in the audit log without the secrets it carries.

A chat persona with webhook tools, a scripted model, the sandbox; the reviewer edits a webhook's
secret key at the approval prompt; the audit log's SQLite file is then read byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock
from personas.kernel.models import ScriptedChatModel
from personas.runtime import build_context, run_persona
from personas.runtime.loader import load_persona

OLD_SECRET = "Wh00kOldSecretValue1"
NEW_SECRET = "Wh00kNewSecretValue2"


@pytest.fixture()
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock())
    yield sandbox
    sandbox.close()


def test_an_edit_that_sets_a_secret_key_is_audited_masked(sb: Sandbox) -> None:
    spec = load_persona("klaviyo-assistant")
    spec = spec.model_copy(update={
        "name": "hooks-admin",
        "scopes": [*spec.scopes, "webhooks:read", "webhooks:write"],
        "tools": spec.tools.model_copy(update={"include": [*spec.tools.include, "create_webhook"]}),
        "approval": spec.approval.model_copy(update={"also": ["create_webhook"]}),
    })  # fmt: skip
    made: dict[str, Any] = {"name": "crm", "endpoint_url": "https://crm.example.com/hook", "secret_key": OLD_SECRET,
                            "webhook_topic_ids": ["event:klaviyo.placed_order"]}  # fmt: skip
    model = ScriptedChatModel([AIMessage("", tool_calls=[{"name": "create_webhook", "args": made, "id": "c1"}]),
                               AIMessage("Done.")])  # fmt: skip
    ctx = build_context(spec, sandbox=sb, model=model, clock=sb.clock)
    saver = InMemorySaver()
    paused = run_persona(spec, {"messages": [HumanMessage("hook the CRM up")]}, context=ctx, saver=saver)
    [asked] = paused.interrupts
    edit = {"action": "edit", "args": {"secret_key": NEW_SECRET}, "fingerprint": asked["fingerprint"]}
    again = run_persona(spec, None, context=ctx, saver=saver, resume=edit)
    [edited] = again.interrupts
    approve = {"action": "approve", "fingerprint": edited["fingerprint"]}
    run_persona(spec, None, context=ctx, saver=saver, resume=approve)
    assert ctx.audit is not None
    statuses = [r.status for r in ctx.audit.query(tool="create_webhook")]
    assert "edited" in statuses and statuses[0] in ("ok", "error"), statuses
    stored = ctx.audit.path.read_bytes() + b"".join(
        p.read_bytes() for p in ctx.audit.path.parent.glob(ctx.audit.path.name + "-wal")
    )
    for secret in (OLD_SECRET, NEW_SECRET):
        assert secret.encode() not in stored, f"{secret} reached the audit log"
