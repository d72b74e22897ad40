"""Signing leads up through the sandbox's real API, the way the lead-magnet form would."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from graphs.lead_magnet.fixtures import settle_sandbox
from graphs.lead_magnet.fixtures import sign_up as _sign_up
from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock
from personas.kernel.models import ScriptedChatModel

HOT = {
    "company_size": "201-1000",
    "role": "Outdoor program director",
    "interest": "team outfitting",
    "timeline": "this month",
    "budget": "$5k-$25k",
}  # 5+15+10+15+20+12 = 77
WARM = {
    "company_size": "11-50",
    "role": "Trip leader",
    "interest": "guided trips",
    "timeline": "this quarter",
    "budget": "$1k-$5k",
}  # 5+5+5+10+12+5 = 42
COLD = {
    "company_size": "1-10",
    "role": "Enthusiast",
    "interest": "just the guide",
    "timeline": "just browsing",
    "budget": "<$1k",
}  # 5+0+0-5-10+0 = -10


#: A Wednesday, 3 pm in New York: inside the send window, so a first touchpoint goes at once.
WEDNESDAY_3PM_NY = dt.datetime(2026, 11, 25, 20, 0, tzinfo=dt.UTC).timestamp()


def choose(sequence: str) -> ScriptedChatModel:
    """A scripted model that picks ``sequence``."""
    call = {"name": "choose_sequence", "args": {"sequence": sequence, "reason": "fits"}, "id": "call_1"}
    return ScriptedChatModel([AIMessage("", tool_calls=[call])])


def sign_up(sb: Sandbox, email: str, answers: dict[str, Any], *, client: Any = None, **options: Any) -> dict[str, Any]:
    """Create the lead and its form submission in the sandbox; return the Get Event document."""
    return _sign_up(client or sb.client(), email, answers, settle=settle_sandbox(sb), **options)


def sequence_starts(sb: Sandbox, profile_id: str) -> list[Any]:
    """The lead's 'Lead Sequence Started' events, straight from the sandbox's store."""
    metric = sb.store.find("metric", "name", "Lead Sequence Started")
    if metric is None:
        return []
    return [
        e
        for e in sb.store.all("event")
        if e.linked("profile") == [("profile", profile_id)] and e.linked("metric") == [("metric", metric.id)]
    ]


def first_touchpoints(sb: Sandbox, profile_id: str) -> list[dict[str, Any]]:
    return [m for m in sb.outbox(profile_id=profile_id) if m.get("position") == 1 and m.get("source") == "flow"]


def saved_sign_up(tmp_path: Path, email: str) -> tuple[Path, Path, str]:
    """A hot lead signed up in a sandbox kept in a file, for a child process to open:
    (the sandbox's state file, the submission event's JSON file, the lead's profile id)."""
    state = tmp_path / "sandbox.sqlite"
    sb = Sandbox(seed=42, state=state, rate_limit_factor=None)
    event = sign_up(sb, email, HOT)
    sb.close()
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event), encoding="utf-8")
    return state, event_path, event["data"]["relationships"]["profile"]["data"]["id"]



def failed_send(sb: Sandbox, saver: Any, email: str, thread: str) -> tuple[Any, ScriptedChatModel, str]:
    """A hot lead's run whose send Klaviyo refused once (503, no retries): ``(driver, model, profile id)``,
    the run stopped at the send with its decision saved in ``saver``."""
    import pytest

    from klaviyo_sandbox import Faults
    from klaviyo_toolkit.client import RetryPolicy
    from klaviyo_toolkit.errors import ServerError
    from personas.runtime import RunDriver, build_context

    event = sign_up(sb, email, HOT)
    model = choose("fast-track")
    client = sb.client(retry=RetryPolicy(max_retries=0))
    ctx = build_context("lead-magnet-sequencer", client=client, thread_id=thread, audit=False, model=model)
    sb.faults = Faults(error_rate=1.0, status=503, operations=["create_event"], count=1)
    driver = RunDriver(ctx, saver)
    with pytest.raises(ServerError):
        driver.invoke({"input": event})
    assert driver.result().next == ("send",), "the decision is saved; the retry starts at the send"
    return driver, model, event["data"]["relationships"]["profile"]["data"]["id"]


@pytest.fixture()
def sb() -> Iterator[Sandbox]:
    """The sandbox most lead-magnet tests run on (seed 7, a Wednesday afternoon in New York, no
    rate limits); a test module takes it with ``from .leads import sb``."""
    sandbox = Sandbox(seed=7, rate_limit_factor=None, clock=ManualClock(WEDNESDAY_3PM_NY))
    yield sandbox
    sandbox.close()
