"""An event given by its metric id alone (Get Event without ``include=metric``, as a poller or a
webhook may pass it): the sequencer resolves the id to its metric's name from the account's metrics
and refuses an event that is not a form submission, naming the field, before anything is sent."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from graphs.lead_magnet.inputs import InputError
from klaviyo_sandbox import Sandbox
from personas.runtime import run_persona

from .leads import HOT, sb, sequence_starts, sign_up

__all__ = ["sb"]  # the sandbox fixture (leads.py), used by name

PERSONA = "lead-magnet-sequencer"


def _by_id_alone(sb: Sandbox, profile_id: str, metric: str) -> dict[str, Any]:
    """The lead's latest ``metric`` event as Get Event returns it without ``include``: its metric is an id."""
    client = sb.client()
    names = {m["id"]: m["attributes"]["name"] for page in client.pages("get_metrics") for m in page.data or []}
    events = client.call("get_events", filter=f'equals(profile_id,"{profile_id}")', sort="-datetime").body
    event = next(e for e in events["data"] if names[e["relationships"]["metric"]["data"]["id"]] == metric)
    doc = dict(client.call("get_event", id=event["id"]).body)
    assert "included" not in doc or not doc["included"]
    return doc


def _profile_properties(sb: Sandbox, profile_id: str) -> dict[str, Any]:
    return dict(sb.client().call("get_profile", id=profile_id).body["data"]["attributes"].get("properties") or {})


@pytest.mark.parametrize("metric", ["Placed Order", "no such metric"])
def test_an_event_of_another_metric_named_by_id_alone_is_refused_naming_the_field(sb: Sandbox, metric: str) -> None:
    event = sign_up(sb, f"not.a.form.{len(metric)}@example.com", HOT)
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    sb.client().call("create_event", properties={"ItemNames": ["boots"]}, value=120,
                     metric={"name": "Placed Order"}, profile={"id": pid})
    doc = _by_id_alone(sb, pid, "Placed Order")
    if metric != "Placed Order":  # an id the account has no metric for
        doc = copy.deepcopy(doc)
        doc["data"]["relationships"]["metric"]["data"]["id"] = "NoSuchMetricId"
    before = _profile_properties(sb, pid)
    with pytest.raises(InputError) as caught:
        run_persona(PERSONA, {"input": doc}, sandbox=sb, clock=sb.clock)
    text = str(caught.value)
    assert "data.relationships.metric.data.id" in text and "not a form submission" in text
    assert ("'Placed Order'" if metric == "Placed Order" else "no metric of this Klaviyo account") in text
    assert sequence_starts(sb, pid) == [] and _profile_properties(sb, pid) == before


def test_a_form_submission_named_by_its_metric_id_alone_still_starts_its_sequence_once(sb: Sandbox) -> None:
    event = sign_up(sb, "form.by.id@example.com", HOT)
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    doc = _by_id_alone(sb, pid, "Form submitted by profile")
    doc["included"] = [i for i in event["included"] if i["type"] == "profile"]  # the lead, not the metric
    result = run_persona(PERSONA, {"input": doc}, sandbox=sb, clock=sb.clock)
    assert result.state["send"]["status"] == "sent", result.state.get("outcome")
    assert len(sequence_starts(sb, pid)) == 1
