"""A thread holds one run (but a chat's): a new input on a thread that has a run is refused, before
anything runs, and says what the thread holds. Given, the old run's state carried into the new one:
a lead's run showed the previous lead's send, and one whose form the persona ignores sent without
recording the lead on its profile (found by trying ``--thread`` reuse from outside). The same
command again (the input the thread finished) shows that run's result and runs nothing, as a
redelivered webhook does: the README's commands, run twice, name their threads."""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from klaviyo_sandbox import Faults, Sandbox
from klaviyo_toolkit.errors import ServerError
from personas.kernel.errors import UsageProblem
from personas.kernel.models import ScriptedChatModel
from personas.runtime import RunDriver, build_context, checkpointer, run_persona
from tests.warm_cli import run_personas

from ..graphs.leads import HOT, choose, sign_up
from .conftest import PERSONAS, child_env
from .make_form_submission import FORM_METRIC, LEAD, capture


def personas(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_personas([str(PERSONAS), *args], env=child_env(home), cwd=home, capture_output=True, text=True,
                          timeout=180)


@functools.cache
def another_lead() -> str:
    """A seeded lead, other than the example's, whose submission starts a sequence (tried in-process)."""
    client = Sandbox(seed=42).client()
    metric = next(m["id"] for m in client.iterate("get_metrics") if m["name"] == FORM_METRIC)
    body = client.call("get_events", filter=f'equals(metric_id,"{metric}")', include=["profile"]).body
    for email in sorted({p["attributes"]["email"] for p in body["included"]} - {LEAD}):
        if run_persona("lead-magnet-sequencer", {"input": capture(email)}, sandbox=Sandbox(seed=42),
                       audit=False).state.get("send", {}).get("status") == "sent":
            return email
    raise AssertionError("no other seeded lead starts a sequence")


def errors(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


def test_a_new_input_on_a_thread_that_holds_a_run_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps(capture()), encoding="utf-8")
    second.write_text(json.dumps(capture(another_lead())), encoding="utf-8")
    state = ["--sandbox-state", str(tmp_path / "sandbox.sqlite")]
    ran = personas(tmp_path, "run", "lead-magnet-sequencer", "--input", str(first), *state, "--thread", "T1")
    assert ran.returncode == 0 and "Outcome: sent" in ran.stdout, ran.stdout + ran.stderr

    again = personas(tmp_path, "run", "lead-magnet-sequencer", "--input", str(second), *state, "--thread", "T1")
    assert again.returncode == 2 and again.stdout == "", again.stdout + again.stderr
    assert errors(again) == [
        "error: thread 'T1' already holds a run of lead-magnet-sequencer, which finished: a new input starts a new "
        "run, on a new thread, so leave out the thread id (or give an unused one); nothing was run"
    ], again.stderr
    other = personas(tmp_path, "run", "campaign-reporter", "--input", "{}", *state, "--thread", "T1")
    assert other.returncode == 2 and "holds a run of lead-magnet-sequencer" in other.stderr, other.stderr

    # The refused runs sent nothing: the second lead starts on a thread of its own, and the first
    # thread still shows its own lead's run.
    own = personas(tmp_path, "run", "lead-magnet-sequencer", "--input", str(second), *state, "--thread", "T2",
                   "--json")
    assert own.returncode == 0, own.stdout + own.stderr
    sent = json.loads(own.stdout)["state"]["send"]
    assert sent["status"] == "sent" and sent["unique_id"].endswith(capture(another_lead())["data"]["relationships"][
        "profile"]["data"]["id"])
    retry = personas(tmp_path, "run", "lead-magnet-sequencer", "--retry", *state, "--thread", "T1")
    assert retry.returncode == 0 and "has nothing left to run; it finished" in retry.stderr


def test_the_same_command_again_shows_the_finished_run_and_runs_nothing(tmp_path: Path) -> None:
    first = tmp_path / "first.json"
    first.write_text(json.dumps(capture()), encoding="utf-8")
    state = ["--sandbox-state", str(tmp_path / "sandbox.sqlite")]
    command = ["run", "lead-magnet-sequencer", "--input", str(first), *state, "--thread", "T1", "--json"]
    ran = personas(tmp_path, *command)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    again = personas(tmp_path, *command)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "thread 'T1' finished this input before: nothing was run again; its result follows" in again.stderr
    assert json.loads(again.stdout)["state"] == json.loads(ran.stdout)["state"]
    calls = personas(tmp_path, "audit", "--thread", "T1", "--json", "--limit", "1000")
    rows = [json.loads(line) for line in calls.stdout.splitlines()]
    assert rows and len(rows) == len({row["id"] for row in rows}), "rows of the one run only"
    sent = [row["status"] for row in rows if row["tool"] == "create_event"]
    assert sorted(sent) == ["ok", "waived"], sent  # one call (and the waiver that let it go), never two
    # the campaign reporter's thread with the lead's input: another persona's run, refused
    other = personas(tmp_path, "run", "campaign-reporter", "--input", "{}", *state, "--thread", "T1")
    assert other.returncode == 2 and "holds a run of lead-magnet-sequencer" in other.stderr, other.stderr


def runs_on(saver: Any, thread: str) -> int:
    return len(list(saver.list({"configurable": {"thread_id": thread}})))


def test_the_driver_refuses_for_every_graph_that_is_not_a_conversation(tmp_path: Path) -> None:
    """From code as from the command line; the thread's checkpoints are left as they were. The
    reporter writes a checkpoint after every step, the sequencer at its input and end."""
    sb = Sandbox(seed=42, rate_limit_factor=None)
    saver = checkpointer(tmp_path / "checkpoints.sqlite")
    report = build_context("campaign-reporter", sandbox=sb, thread_id="report-1", audit=False)
    day = {"date": "2026-12-01"}
    first = RunDriver(report, saver).invoke(day)
    assert first.status == "done"
    written, calls = runs_on(saver, "report-1"), len(sb.requests)
    with pytest.raises(UsageProblem, match="thread 'report-1' already holds a run of campaign-reporter, which "
                                           "finished: a new input starts a new run"):
        RunDriver(report, saver).invoke({"date": "2026-12-02"})
    again = RunDriver(report, saver)
    assert again.invoke(day) == first and again.repeated, "the same input: the run's result, nothing run"
    assert runs_on(saver, "report-1") == written and len(sb.requests) == calls

    lead = build_context("lead-magnet-sequencer", sandbox=sb, thread_id="report-1", audit=False,
                         model=choose("fast-track"))
    with pytest.raises(UsageProblem, match="holds a run of campaign-reporter"):
        list(RunDriver(lead, saver).stream({"input": sign_up(sb, "second@example.com", HOT)}))
    assert runs_on(saver, "report-1") == written


def test_a_run_stopped_part_way_says_to_continue_it(tmp_path: Path) -> None:
    """A lead whose send failed stopped before its end: a new input there is refused and the message
    says how to continue the run instead; retrying it then finishes the first lead's run."""
    sb = Sandbox(seed=42, rate_limit_factor=None)
    saver = checkpointer(tmp_path / "checkpoints.sqlite")
    event = sign_up(sb, "stopped@example.com", HOT)
    ctx = build_context("lead-magnet-sequencer", sandbox=sb, thread_id="lead-1", audit=False,
                        model=choose("fast-track"), clock=sb.clock)
    sb.faults = Faults(error_rate=1.0, status=503, operations=["create_event"])
    try:
        with pytest.raises(ServerError):
            RunDriver(ctx, saver).invoke({"input": event})
    finally:
        sb.faults = Faults()
    with pytest.raises(UsageProblem, match=r"which stopped before its end: .* to go on with it, continue it \(--retry"):
        RunDriver(ctx, saver).invoke({"input": sign_up(sb, "other@example.com", HOT)})
    result = RunDriver(ctx, saver).retry()
    assert result.status == "done" and result.state["send"]["status"] == "sent"
    assert result.state["send"]["unique_id"].endswith(event["data"]["relationships"]["profile"]["data"]["id"])


def test_the_async_driver_refuses_too_and_a_chat_thread_goes_on(tmp_path: Path) -> None:
    """``arun_persona`` as ``run_persona``; a chat's thread is a conversation, so a new message on it
    is the next turn, not a refusal."""
    from langgraph.checkpoint.memory import InMemorySaver

    from personas.runtime import arun_persona

    sb = Sandbox(seed=42, rate_limit_factor=None)
    saver = InMemorySaver()
    options: dict[str, Any] = {"sandbox": sb, "thread_id": "async-1", "audit": False, "saver": saver}
    first = asyncio.run(arun_persona("campaign-reporter", {}, **options))
    assert first.status == "done" and asyncio.run(arun_persona("campaign-reporter", {}, **options)) == first
    with pytest.raises(UsageProblem, match="thread 'async-1' already holds a run of campaign-reporter, which finished"):
        asyncio.run(arun_persona("campaign-reporter", {"date": "2026-12-01"}, **options))

    chat = {"sandbox": sb, "thread_id": "chat-1", "audit": False, "saver": saver}
    model = ScriptedChatModel([AIMessage("Hello."), AIMessage("Still here.")])
    first = run_persona("klaviyo-assistant", {"message": "hi"}, model=model, **chat)
    second = run_persona("klaviyo-assistant", {"message": "again"}, model=model, **chat)
    answers = [m.content for m in second.state["messages"] if isinstance(m, AIMessage)]
    assert first.status == second.status == "done" and answers == ["Hello.", "Still here."], "one thread, two turns"


def test_an_event_no_run_could_use_is_refused_before_a_thread_is_made(tmp_path: Path) -> None:
    """Found from outside: a malformed event was refused by the run's first step, after the command had
    printed its thread and the ``--retry`` to continue it, and the thread then held a run no retry
    could finish (the same id refused a corrected event). It is now refused before a thread is made."""
    broken = capture()
    broken["data"].pop("id")
    bad, good = tmp_path / "bad.json", tmp_path / "good.json"
    bad.write_text(json.dumps(broken), encoding="utf-8")
    good.write_text(json.dumps(capture()), encoding="utf-8")
    state = ["--sandbox-state", str(tmp_path / "sandbox.sqlite")]
    for thread in ([], ["--thread", "T1"]):
        refused = personas(tmp_path, "run", "lead-magnet-sequencer", "--input", str(bad), *state, *thread)
        assert refused.returncode == 2, refused.stderr
        assert errors(refused) == [
            "error: Invalid arguments for lead-magnet input: data.id: the event has no id; pass the event as "
            "Klaviyo returns it"], refused.stderr
        assert "thread" not in refused.stderr and "--retry" not in refused.stderr, refused.stderr
    ran = personas(tmp_path, "run", "lead-magnet-sequencer", "--input", str(good), *state, "--thread", "T1")
    assert ran.returncode == 0 and "Outcome: sent" in ran.stdout, ran.stdout + ran.stderr


def test_from_code_a_request_no_run_could_use_leaves_no_thread(tmp_path: Path) -> None:
    """The same check for a graph run from code (``RunDriver``, sync and async): the input's error,
    no checkpoint written, no call made, and the thread id free for a corrected input."""
    from langgraph.checkpoint.memory import InMemorySaver

    from graphs.lead_magnet import InputError
    from graphs.segment_sync import SyncInputError

    sb = Sandbox(seed=42, rate_limit_factor=None)
    saver = checkpointer(tmp_path / "checkpoints.sqlite")
    event = sign_up(sb, "fixed@example.com", HOT)
    broken = json.loads(json.dumps(event))
    broken["data"]["attributes"]["event_properties"] = ["not", "answers"]
    calls = len(sb.requests)
    lead = build_context("lead-magnet-sequencer", sandbox=sb, thread_id="lead-9", audit=False,
                         model=choose("fast-track"), clock=sb.clock)
    with pytest.raises(InputError, match=r"data\.attributes\.event_properties: must be an object"):
        RunDriver(lead, saver).invoke({"input": broken})
    assert runs_on(saver, "lead-9") == 0
    memory = InMemorySaver()
    with pytest.raises(InputError, match=r"data\.attributes\.event_properties"):
        asyncio.run(RunDriver(lead, memory).ainvoke({"input": broken}))
    assert runs_on(memory, "lead-9") == 0
    sync = build_context("segment-syncer", sandbox=sb, thread_id="sync-9", audit=False)
    with pytest.raises(SyncInputError, match=r"source\.kind: xlsx"):
        list(RunDriver(sync, saver).stream({"input": {"source": {"kind": "xlsx", "path": "m.xlsx"}, "target": "VIP"}}))
    assert runs_on(saver, "lead-9") == runs_on(saver, "sync-9") == 0 and len(sb.requests) == calls
    result = RunDriver(lead, saver).invoke({"input": event})
    assert result.status == "done" and result.state["send"]["status"] == "sent"


def test_a_new_message_on_a_chat_paused_for_approval_is_refused(tmp_path: Path) -> None:
    """A chat thread waiting for an approval: a new message would drop the pending request unrecorded
    (its audit row says pending for ever) and leave the model's tool call unanswered, which OpenAI
    refuses on every later turn. So it is refused, saying how to answer; the answer still works."""
    from langgraph.checkpoint.memory import InMemorySaver

    sb = Sandbox(seed=42, rate_limit_factor=None)
    saver = InMemorySaver()  # the async driver needs a saver with async reads
    doomed = sb.client().call("create_list", name="Doomed").data["id"]
    delete = AIMessage("", tool_calls=[{"name": "delete_list", "args": {"id": doomed}, "id": "c1"}])
    model = ScriptedChatModel([delete, AIMessage("Deleted.")])
    ctx = build_context("klaviyo-assistant", sandbox=sb, thread_id="chat-paused", audit=False, model=model)
    assert RunDriver(ctx, saver).invoke({"message": "delete Doomed"}).paused
    written = runs_on(saver, "chat-paused")
    with pytest.raises(UsageProblem, match=r"thread 'chat-paused' is paused for an approval \(delete_list\).*"
                                           r"--resume approve\|reject"):
        RunDriver(ctx, saver).invoke({"message": "never mind"})
    with pytest.raises(UsageProblem, match="is paused for an approval"):
        list(RunDriver(ctx, saver).stream({"message": "never mind"}))
    with pytest.raises(UsageProblem, match="is paused for an approval"):
        asyncio.run(RunDriver(ctx, saver).ainvoke({"message": "never mind"}))
    assert runs_on(saver, "chat-paused") == written, "nothing ran"
    driver = RunDriver(ctx, saver)
    done = driver.invoke(resume="reject")
    assert done.status == "done" and done.state["messages"][-1].content == "Deleted."
