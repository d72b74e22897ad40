"""The graphs as LangGraph Server serves them (``personas/runtime/served.py``): an approval pauses the
served run, and a resume answers it only when it carries the request's fingerprint, as a LangGraph
client sends it. Against ``personas sandbox serve`` on a port, with the server's environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graphs.lead_magnet.fixtures import sign_up
from klaviyo_toolkit.client import KlaviyoClient
from personas.runtime import served
from tests.graphs.leads import HOT
from tests.service.test_paused import careful_persona  # the sequencer with its send needing approval


def starts(client: KlaviyoClient, pid: str) -> list[Any]:
    metrics = {m["attributes"]["name"]: m["id"] for m in client.call("get_metrics").data}
    if "Lead Sequence Started" not in metrics:
        return []
    found = client.call("get_events", filter=f'and(equals(metric_id,"{metrics["Lead Sequence Started"]}"),'
                                                f'equals(profile_id,"{pid}"))')
    return list(found.data)


def test_a_served_run_pauses_and_takes_only_an_approval_bound_to_its_request(
    tmp_path: Path, sandbox_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    careful_persona(home)
    for name, value in {"PERSONAS_HOME": str(home), "KLAVIYO_BASE_URL": sandbox_server,
                        "KLAVIYO_API_KEY": "pk_sandbox_demo"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(served, "_CONFIG", [])  # the server reads its environment when the first run starts
    client = KlaviyoClient(api_key="pk_sandbox_demo", base_url=sandbox_server)
    event = sign_up(client, "served@example.com", HOT,
                    settle=lambda: httpx.post(f"{sandbox_server}/sandbox/settle", timeout=30).raise_for_status())
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    graph = served.served_graph("lead_magnet").builder.compile(checkpointer=InMemorySaver())  # the server's saver
    config: Any = {"configurable": {"thread_id": "served-1", "persona": "careful-sequencer"}}

    graph.invoke({"input": event}, config)
    [pending] = [i for task in graph.get_state(config).tasks for i in task.interrupts]
    assert pending.value["tool"] == "create_event" and starts(client, pid) == []
    fingerprint = pending.value["fingerprint"]

    graph.invoke(Command(resume={"action": "approve"}), config)  # no fingerprint: asked again
    [again] = [i for task in graph.get_state(config).tasks for i in task.interrupts]
    assert again.value["fingerprint"] == fingerprint and starts(client, pid) == []

    # not answers (a typo, a bare boolean, a list, an edit with nothing in it): the run stays paused on
    # the same request, told why, and nothing is sent or ended
    for wrong in ("aprove", True, ["approve"], {"action": "edit", "args": {}}, {"action": "maybe"}):
        graph.invoke(Command(resume=wrong), config)
        [still] = [i for task in graph.get_state(config).tasks for i in task.interrupts]
        assert still.value["fingerprint"] == fingerprint and starts(client, pid) == [], wrong
        assert "answer" in still.value["refused_answer"] or "edit needs" in still.value["refused_answer"], wrong

    # the fingerprint as a person may paste it: surrounding space, upper case
    graph.invoke(Command(resume={"action": "approve", "fingerprint": f" {fingerprint.upper()} "}), config)
    assert not graph.get_state(config).tasks and len(starts(client, pid)) == 1


def test_a_served_run_is_audited_under_the_authenticated_user_never_one_a_client_claims(
    tmp_path: Path, sandbox_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from personas.kernel.config import Config
    from personas.runtime.audit import audit_log

    home = tmp_path / "home"
    for name, value in {"PERSONAS_HOME": str(home), "KLAVIYO_BASE_URL": sandbox_server,
                        "KLAVIYO_API_KEY": "pk_sandbox_demo", "PERSONAS_USER": "ops"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(served, "_CONFIG", [])
    graph = served.served_graph("campaign_report").builder.compile(checkpointer=InMemorySaver())
    runs = {
        "claimed": {"user": "mallory"},  # anyone's to send: kept as a claim beside the server's user
        "authenticated": {"langgraph_auth_user": {"identity": "alice"}, "user": "mallory"},
    }
    for thread, extra in runs.items():
        graph.invoke({}, {"configurable": {"thread_id": thread, **extra}})
    log = audit_log(Config.from_env())
    users = {thread: {row.user for row in log.query(thread_id=thread, limit=None)} for thread in runs}
    assert users["claimed"] == {"ops (claimed: mallory)"}, users
    assert users["authenticated"] == {"alice (claimed: mallory)"}, users
