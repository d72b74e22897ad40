"""Finding the lead: an email typed with spaces or in another case is the same lead, and a lead
Klaviyo has no profile for stops the run where a person sees it (failed, resumable), never a
quiet "done"."""

from __future__ import annotations

import copy
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.errors import NotFoundError
from personas.kernel.config import Config
from personas.runtime import RunDriver, build_context, run_persona

from .leads import HOT, choose, sb, sequence_starts, sign_up

__all__ = ["sb"]  # the sandbox fixture (leads.py), used by name

PERSONA = "lead-magnet-sequencer"


def email_only(event: dict[str, Any], email: str) -> dict[str, Any]:
    """The submission as a webhook may carry it: no profile relationship, only the typed email."""
    doc = copy.deepcopy(event)
    doc["data"]["relationships"].pop("profile")
    doc["included"] = [i for i in doc["included"] if i["type"] != "profile"]
    doc["data"]["attributes"]["event_properties"]["email"] = email
    return doc


@pytest.mark.parametrize("typed", [" typed.lead@example.com ", "Typed.Lead@Example.COM", "\ttyped.lead@example.com\n"])
def test_an_email_typed_with_spaces_or_capitals_finds_the_lead(sb: Sandbox, typed: str) -> None:
    event = sign_up(sb, "typed.lead@example.com", HOT)
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    result = run_persona(PERSONA, {"input": email_only(event, typed)}, sandbox=sb, model=choose("fast-track"),
                         saver=InMemorySaver(), clock=sb.clock)
    assert result.status == "done" and result.state["profile"]["id"] == pid, result.state.get("outcome")
    assert result.state["submission"]["email"] == typed.strip()
    assert result.state["outcome"].startswith("sent: sequence 'fast-track'")
    assert len(sequence_starts(sb, pid)) == 1


@pytest.mark.parametrize(("signed", "typed"), [
    ("jos\u00e9.lead@example.com", "jose\u0301.lead@example.com"),  # NFD, as macOS tools and some exports write it
    ("jos\u00e9.lead@example.com", " JOSE\u0301.Lead@Example.com "),
    ("zo\u00eb.nfd@example.com", "zoe\u0308.nfd@example.com"),
    ("anai\u0308s@example.com", "ana\u00efs@example.com"),  # signed up in NFD, typed precomposed
])
def test_an_email_with_a_decomposed_accent_finds_the_lead(sb: Sandbox, signed: str, typed: str) -> None:
    event = sign_up(sb, signed, HOT)
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    result = run_persona(PERSONA, {"input": email_only(event, typed)}, sandbox=sb, model=choose("fast-track"),
                         saver=InMemorySaver(), clock=sb.clock)
    assert result.status == "done" and result.state["profile"]["id"] == pid, result.state.get("outcome")
    assert result.state["submission"]["email"] == unicodedata.normalize("NFC", typed.strip())
    assert result.state["outcome"].startswith("sent: sequence 'fast-track'")
    assert len(sequence_starts(sb, pid)) == 1


def _stopped_not_found(sb: Sandbox, document: dict[str, Any], thread: str) -> tuple[NotFoundError, Any]:
    driver = RunDriver(build_context(PERSONA, sandbox=sb, model=choose("fast-track"), clock=sb.clock,
                                     thread_id=thread), InMemorySaver())
    with pytest.raises(NotFoundError) as err:
        driver.invoke({"input": document})
    return err.value, driver.result()


def test_an_email_no_profile_has_stops_the_run_instead_of_ending_it_done(sb: Sandbox) -> None:
    event = sign_up(sb, "known.lead@example.com", HOT)
    calls = sb.call_counts.copy()
    error, stopped = _stopped_not_found(sb, email_only(event, "nobody.here@example.com"), "ghost")
    assert type(error).__name__ == "LeadNotFound"
    assert str(error).startswith("no Klaviyo profile has the email nobody.here@example.com"), str(error)
    assert stopped.status == "stopped" and stopped.next == ("decide",), "resumable, not finished"
    assert "outcome" not in stopped.state
    writes = {op: n - calls[op] for op, n in sb.call_counts.items() if op in ("create_event", "update_profile")}
    assert not any(writes.values()), "nothing sent or written"


def test_a_profile_id_klaviyo_does_not_have_stops_the_run(sb: Sandbox) -> None:
    event = sign_up(sb, "merged.away@example.com", HOT)
    event["data"]["relationships"]["profile"]["data"]["id"] = "01NOSUCHPROFILE0000000000"
    error, stopped = _stopped_not_found(sb, event, "no-such-id")
    assert "no Klaviyo profile has the id 01NOSUCHPROFILE0000000000" in str(error)
    assert "deleted or merged" in str(error)
    assert stopped.status == "stopped"


def test_the_service_records_a_lead_it_cannot_find_as_failed(sb: Sandbox, tmp_path: Path) -> None:
    from personas.service.service import Service

    event = email_only(sign_up(sb, "service.lead@example.com", HOT), "service.ghost@example.com")
    service = Service.open(Config(home=tmp_path / "home"), sandbox=sb)
    try:
        run, _ = service.record_event(service.persona(PERSONA), event["data"]["id"], event, trigger="webhook")
        done = service.execute(run.id)
        assert done.status == "failed", (done.status, done.outcome)
        assert "no Klaviyo profile has the email service.ghost@example.com" in (done.error or "")
    finally:
        service.close()
