"""The sequencer's input and settings, where a lead was lost or a run crashed mid-way: a webhook
delivery carrying several events (only the first was run), and a misspelt ``default_timezone``
(accepted at load, then a traceback on the first lead without a zone of its own)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import ValidationError

from graphs.lead_magnet import InputError, parse_submission
from graphs.lead_magnet.settings import Settings
from klaviyo_sandbox import Sandbox
from personas.runtime import load_persona, run_persona

from .leads import HOT, sequence_starts, sign_up
from .test_lead_magnet import sb

__all__ = ["sb"]  # a fixture, used by name: the seeded sandbox on a Wednesday afternoon

PERSONA = "lead-magnet-sequencer"


def delivery(*events: dict[str, Any]) -> dict[str, Any]:
    """A Klaviyo system-webhook body carrying ``events`` (see ``klaviyo_toolkit.webhooks``)."""
    return {"data": [{"topic": "event:klaviyo.form_submitted_by_profile", "external_id": e["data"]["id"],
                      "payload": e} for e in events],
            "meta": {"klaviyo_account_id": "A", "klaviyo_webhook_id": "W", "timestamp": "now", "version": "1"}}


def test_a_delivery_of_several_leads_is_refused_naming_the_second_not_cut_to_the_first(sb: Sandbox) -> None:
    events = [sign_up(sb, f"batch{i}@example.com", HOT) for i in range(3)]
    with pytest.raises(InputError, match=r"data\[1\]: the body carries 3 events and a run takes one"):
        run_persona(PERSONA, {"input": delivery(*events)}, sandbox=sb, saver=InMemorySaver(), clock=sb.clock)
    for event in events:  # nothing was started for any of them: each is run on its own
        assert sequence_starts(sb, event["data"]["relationships"]["profile"]["data"]["id"]) == []
    # a delivery of one event, or the same event twice, is still that event
    assert parse_submission(delivery(events[0])).event_id == events[0]["data"]["id"]
    assert parse_submission(delivery(events[0], events[0])).event_id == events[0]["data"]["id"]


def test_a_misspelt_default_time_zone_is_refused_when_the_persona_loads() -> None:
    settings = dict(load_persona(PERSONA).settings)
    with pytest.raises(ValidationError, match=re.escape("'America/New_Yrok' is not an IANA time zone")):
        Settings.model_validate({**settings, "default_timezone": "America/New_Yrok"})
    berlin = Settings.model_validate({**settings, "default_timezone": "europe/berlin"})
    assert berlin.default_timezone == "Europe/Berlin", "written in any case, kept in its canonical spelling"


def test_a_lead_without_a_time_zone_is_scheduled_in_the_default_one(sb: Sandbox) -> None:
    event = sign_up(sb, "no.zone@example.com", HOT, timezone=None)
    spec = load_persona(PERSONA)
    spec = spec.model_copy(update={"settings": {**spec.settings, "default_timezone": "europe/berlin"}})
    state = run_persona(spec, {"input": event}, sandbox=sb, saver=InMemorySaver(), clock=sb.clock).state
    assert state["schedule"]["timezone"] == "Europe/Berlin" and state["send"]["status"] == "sent"


@pytest.mark.parametrize("zone", ["Europe", "America", "x" * 300, "localtime", "posixrules"])
def test_a_profile_time_zone_that_is_a_folder_or_file_of_the_zone_list_is_unknown_not_a_crash(
    sb: Sandbox, zone: str
) -> None:
    """A profile's time zone is whatever was written into it: a zone folder ("Europe") or an
    overlong name raised OSError from every retry of the run, so the lead never got a sequence;
    ``localtime`` scheduled it in the sequencer's own zone. Each is an unknown zone: the default
    is used, the schedule says so, and the lead is started once."""
    event = sign_up(sb, f"zone.{len(zone)}.{zone[:12].lower()}@example.com", HOT, timezone=zone)
    state = run_persona(PERSONA, {"input": event}, sandbox=sb, saver=InMemorySaver(), clock=sb.clock).state
    assert state["schedule"]["timezone"] == "America/New_York", state["schedule"]
    assert "unknown time zone" in state["schedule"]["reason"] and len(state["schedule"]["reason"]) < 300
    assert state["send"]["status"] == "sent"
    assert len(sequence_starts(sb, event["data"]["relationships"]["profile"]["data"]["id"])) == 1


@pytest.mark.parametrize("zone", ["Europe", "x" * 300, "localtime"])
def test_a_default_time_zone_that_names_no_zone_is_refused_naming_the_setting(zone: str) -> None:
    settings = dict(load_persona(PERSONA).settings)
    with pytest.raises(ValidationError, match="is not an IANA time zone"):
        Settings.model_validate({**settings, "default_timezone": zone})
