"""Flows in the sandbox: the definition API, flow actions and messages, and the engine's outbox."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_sandbox._store import Resource
from klaviyo_sandbox.domains._common import set_email_consent, set_sms_consent, suppress_email
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import KlaviyoError
from tests.sandbox.sweep import minimal_args

#: 2026-03-06T20:00:00Z: Friday 15:00 in New York, two days before DST starts (2026-03-08).
FRIDAY = 1772827200.0
NY = {"timezone": "America/New_York"}
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=FRIDAY)


# -- helpers -------------------------------------------------------------------------------------
def send_event(http: httpx.Client, email: str | None, metric: str = "Signed Up", props: dict[str, Any] | None = None,
               profile: dict[str, Any] | None = None, **attrs: Any) -> None:
    who = {"email": email, "location": NY, **(profile or {})}
    resp = http.post("/api/events", json={"data": {"type": "event", "attributes": {
        "properties": props or {}, "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
        "profile": {"data": {"type": "profile", "attributes": {k: v for k, v in who.items() if v is not None}}},
        **attrs}}})
    assert resp.status_code == 202, resp.text


def subscriber(sb: Sandbox, http: httpx.Client, email: str, metric: str = "Signed Up", **profile: Any) -> Resource:
    """A profile (created by a backfilled event, so no flow runs) that consents to email marketing."""
    send_event(http, email, metric, profile=profile, backfill=True, unique_id="setup")
    found = sb.store.find("profile", "email", email)
    assert found is not None
    set_email_consent(found, "SUBSCRIBED", sb.clock.time())
    sb.store.put(found)
    return found


def metric(sb: Sandbox, name: str) -> str:
    found = sb.store.find("metric", "name", name)
    assert found is not None
    return found.id


def delay(tid: str, nxt: str | None, value: int, unit: str = "days", **data: Any) -> dict[str, Any]:
    return {"temporary_id": tid, "type": "time-delay", "links": {"next": nxt},
            "data": {"unit": unit, "value": value, **data}}


def email(tid: str, nxt: str | None, subject: str, **message: Any) -> dict[str, Any]:
    return {"temporary_id": tid, "type": "send-email", "links": {"next": nxt},
            "data": {"message": {"subject_line": subject, "name": subject, **message}}}


def create_flow(http: httpx.Client, trigger: dict[str, Any], actions: list[dict[str, Any]], name: str = "Welcome",
                entry: str | None = None, **extra: Any) -> httpx.Response:
    definition = {"triggers": [trigger], "actions": actions, "entry_action_id": entry or actions[0]["temporary_id"],
                  **extra}
    return http.post("/api/flows", json=flow_body(name, definition))


def flow_body(name: str, definition: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"type": "flow", "attributes": {"name": name, "definition": definition}}}


def live_flow(http: httpx.Client, trigger: dict[str, Any], actions: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    resp = create_flow(http, trigger, actions, **kw)
    assert resp.status_code == 201, resp.text
    flow: dict[str, Any] = resp.json()["data"]
    set_status(http, flow["id"], "live")
    return flow


def set_status(http: httpx.Client, flow_id: str, status: str) -> httpx.Response:
    return http.patch(f"/api/flows/{flow_id}", json=status_body(flow_id, status))


def status_body(flow_id: str, status: str) -> dict[str, Any]:
    return {"data": {"type": "flow", "id": flow_id, "attributes": {"status": status}}}


def error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["errors"][0]
    return err


def two_touch(http: httpx.Client, sb: Sandbox) -> dict[str, Any]:
    """Live flow on "Signed Up": wait 2 days until 09:00 on a weekday, email, wait 1 day until 09:00, email."""
    return live_flow(http, {"type": "metric", "id": metric(sb, "Signed Up")}, [
        delay("d1", "e1", 2, delay_until_time="09:00", delay_until_weekdays=WEEKDAYS, timezone="profile"),
        email("e1", "d2", "Welcome!", preview_text="Glad you're here"),
        delay("d2", "e2", 1, delay_until_time="09:00:00", delay_until_weekdays=WEEKDAYS),
        email("e2", None, "Getting started"),
    ])


# -- the definition API ---------------------------------------------------------------------------
def test_create_flow_assigns_ids_and_derives_actions_and_messages(sb: Sandbox, raw: httpx.Client) -> None:
    send_event(raw, "x@example.com", backfill=True)
    template = raw.post("/api/templates", json={"data": {"type": "template", "attributes": {
        "name": "Welcome", "editor_type": "CODE", "html": "<p>Hi</p>"}}}).json()["data"]["id"]
    resp = create_flow(raw, {"type": "metric", "id": metric(sb, "Signed Up")},
                       [delay("wait", "hello", 1), email("hello", None, "Hello", template_id=template)])
    assert resp.status_code == 201, resp.text
    flow = resp.json()["data"]
    assert flow["attributes"]["status"] == "draft" and flow["attributes"]["trigger_type"] == "Metric"
    wait, hello = flow["attributes"]["definition"]["actions"]
    assert "temporary_id" not in wait and wait["id"].isdigit() and wait["links"] == {"next": hello["id"]}
    assert flow["attributes"]["definition"]["entry_action_id"] == wait["id"]

    actions = raw.get(f"/api/flows/{flow['id']}/flow-actions",
                       params={"filter": "equals(action_type,'send-email')"}).json()["data"]
    assert [a["id"] for a in actions] == [hello["id"]]
    legacy = raw.get(f"/api/flows/{flow['id']}/flow-actions", params={"filter": "equals(action_type,'TIME_DELAY')"})
    assert [a["id"] for a in legacy.json()["data"]] == [wait["id"]]
    [message] = raw.get(f"/api/flow-actions/{hello['id']}/flow-messages").json()["data"]
    assert message["attributes"]["channel"] == "email"
    assert message["attributes"]["definition"]["subject_line"] == "Hello"
    assert message["id"] == hello["data"]["message"]["id"]
    got = raw.get(f"/api/flow-messages/{message['id']}", params={"include": "template,flow-action"}).json()
    assert {(r["type"], r["id"]) for r in got["included"]} == {("template", template), ("flow-action", hello["id"])}
    assert raw.get(f"/api/flow-messages/{message['id']}/template").json()["data"]["id"] == template
    assert raw.get(f"/api/flow-actions/{wait['id']}/flow").json()["data"]["id"] == flow["id"]
    plain = raw.get(f"/api/flows/{flow['id']}").json()["data"]["attributes"]
    assert "definition" not in plain
    full = raw.get(f"/api/flows/{flow['id']}", params={"additional-fields[flow]": "definition"}).json()["data"]
    assert full["attributes"]["definition"]["actions"] == [wait, hello]


def test_flows_list_filter_sort_and_metric_triggers(sb: Sandbox, raw: httpx.Client) -> None:
    send_event(raw, "x@example.com", backfill=True)
    trigger = {"type": "metric", "id": metric(sb, "Signed Up")}
    b = live_flow(raw, trigger, [email("e", None, "B")], name="B flow")
    a = create_flow(raw, trigger, [email("e", None, "A")], name="A flow").json()["data"]
    live = raw.get("/api/flows", params={"filter": "equals(status,'live')"}).json()["data"]
    assert [f["id"] for f in live] == [b["id"]]
    named = raw.get("/api/flows", params={"sort": "name", "filter": "equals(trigger_type,'Metric')"}).json()["data"]
    assert [f["attributes"]["name"] for f in named] == ["A flow", "B flow"]
    triggered = raw.get(f"/api/metrics/{trigger['id']}/flow-triggers").json()["data"]
    assert sorted(f["id"] for f in triggered) == sorted([a["id"], b["id"]])


@pytest.mark.parametrize(("change", "pointer", "says"), [
    (lambda d: d["triggers"].append(d["triggers"][0]), "/data/attributes/definition/triggers", "exactly one trigger"),
    (lambda d: d["triggers"][0].update(id="NOPE"), "/data/attributes/definition/triggers/0/id", "NOPE"),
    (lambda d: d["actions"][0]["links"].update(next="ghost"), "/data/attributes/definition/actions/0/links/next",
     "ghost"),
    (lambda d: d.update(entry_action_id="ghost"), "/data/attributes/definition/entry_action_id", "temporary_id"),
    (lambda d: d["actions"][0].update(id="123"), "/data/attributes/definition/actions/0/id", "temporary_id"),
    (lambda d: d["actions"][1].update(temporary_id="d"), "/data/attributes/definition/actions/1/temporary_id",
     "unique"),
    (lambda d: d["actions"][1]["data"]["message"].update(template_id="T0"),
     "/data/attributes/definition/actions/1/data/message/template_id", "T0"),
])
def test_create_flow_rejects_bad_definitions_naming_the_field(sb: Sandbox, raw: httpx.Client, change: Any,
                                                              pointer: str, says: str) -> None:
    send_event(raw, "x@example.com", backfill=True)
    definition = {"triggers": [{"type": "metric", "id": metric(sb, "Signed Up")}],
                  "actions": [delay("d", "e", 1), email("e", None, "Hi")], "entry_action_id": "d"}
    change(definition)
    resp = raw.post("/api/flows", json=flow_body("x", definition))
    err = error(resp, 400)
    assert err["source"]["pointer"] == pointer and says in err["detail"]
    assert sb.store.all("flow") == [] and sb.store.all("flow-action") == []


def test_update_flow_sets_the_status_of_the_flow_and_its_actions(sb: Sandbox, raw: httpx.Client) -> None:
    send_event(raw, "x@example.com", backfill=True)
    flow = create_flow(raw, {"type": "metric", "id": metric(sb, "Signed Up")}, [email("e", None, "Hi")]).json()["data"]
    resp = set_status(raw, flow["id"], "manual")
    assert resp.status_code == 200 and resp.json()["data"]["attributes"]["status"] == "manual"
    manual = raw.get(f"/api/flows/{flow['id']}/flow-actions", params={"filter": "equals(status,'manual')"})
    assert len(manual.json()["data"]) == 1
    err = error(set_status(raw, flow["id"], "paused"), 400)
    assert err["source"]["pointer"] == "/data/attributes/status" and "draft, manual, live" in err["detail"]
    resp = raw.patch(f"/api/flows/{flow['id']}", json=status_body("OTHER", "live"))
    assert error(resp, 409)["source"]["pointer"] == "/data/id"
    assert set_status(raw, "NOPE", "live").status_code == 404


def test_update_and_delete_flow_actions_keep_the_definition_in_step(sb: Sandbox, raw: httpx.Client) -> None:
    send_event(raw, "x@example.com", backfill=True)
    flow = create_flow(raw, {"type": "metric", "id": metric(sb, "Signed Up")},
                       [email("e1", "d", "One"), delay("d", "e2", 1), email("e2", None, "Two")]).json()["data"]
    one, wait, two = flow["attributes"]["definition"]["actions"]
    patched = {**two, "data": {**two["data"], "message": {**two["data"]["message"], "subject_line": "Second"}}}
    resp = raw.patch(f"/api/flow-actions/{two['id']}", json={"data": {"type": "flow-action", "id": two["id"],
                                                                       "attributes": {"definition": patched}}})
    assert resp.status_code == 200, resp.text
    message = raw.get(f"/api/flow-messages/{two['data']['message']['id']}").json()["data"]
    assert message["attributes"]["definition"]["subject_line"] == "Second"
    wrong = {"id": wait["id"], "type": "send-email", "data": {}}
    resp = raw.patch(f"/api/flow-actions/{wait['id']}", json={"data": {"type": "flow-action", "id": wait["id"],
                                                                        "attributes": {"definition": wrong}}})
    assert error(resp, 400)["source"]["pointer"] == "/data/attributes/definition/type"

    assert raw.delete(f"/api/flow-actions/{wait['id']}").status_code == 204
    definition = raw.get(f"/api/flows/{flow['id']}", params={"additional-fields[flow]": "definition"}).json()
    actions = definition["data"]["attributes"]["definition"]["actions"]
    assert [a["id"] for a in actions] == [one["id"], two["id"]] and actions[0]["links"]["next"] == two["id"]
    assert actions[1]["data"]["message"]["subject_line"] == "Second"

    assert raw.delete(f"/api/flows/{flow['id']}").status_code == 204
    assert raw.get(f"/api/flow-actions/{one['id']}").status_code == 404
    assert raw.get(f"/api/flow-messages/{one['data']['message']['id']}").status_code == 404


# -- the engine -----------------------------------------------------------------------------------
def test_live_flow_schedules_delays_in_the_profiles_time_zone_across_a_weekend(sb: Sandbox, raw: httpx.Client) -> None:
    profile = subscriber(sb, raw, "ny@example.com")
    flow = two_touch(raw, sb)
    send_event(raw, "ny@example.com", unique_id="signup-1")  # Friday 15:00 EST
    first, second = sorted(sb.outbox(source="flow"), key=lambda m: m["position"])
    # +2 days = Sunday 15:00 (DST began that morning) -> next weekday 09:00 = Monday 09:00 EDT = 13:00 UTC
    assert first["send_at"] == "2026-03-09T13:00:00+00:00"
    # +1 day = Tuesday 09:00 EDT, already 09:00 -> stays
    assert second["send_at"] == "2026-03-10T13:00:00+00:00"
    [event] = [e for e in sb.store.all("event") if e.private["unique_id"] == "signup-1"]
    actions = flow["attributes"]["definition"]["actions"]
    assert first == {**first, "status": "scheduled", "skip_reason": None, "to": "ny@example.com", "channel": "email",
                     "profile_id": profile.id, "flow_id": flow["id"], "flow_action_id": actions[1]["id"],
                     "flow_message_id": actions[1]["data"]["message"]["id"], "subject": "Welcome!",
                     "preview": "Glad you're here", "trigger_event_id": event.id}
    assert second["position"] == 2 and second["subject"] == "Getting started"


def test_a_repeated_event_schedules_once(sb: Sandbox, raw: httpx.Client) -> None:
    subscriber(sb, raw, "a@example.com")
    live_flow(raw, {"type": "metric", "id": metric(sb, "Signed Up")}, [email("e", None, "Hi")])
    for _ in range(2):
        send_event(raw, "a@example.com", unique_id="same")
    assert len([e for e in sb.store.all("event") if e.private["unique_id"] == "same"]) == 1
    assert len(sb.outbox(source="flow")) == 1


def test_send_at_schedules_the_first_message_and_later_delays_count_from_it(sb: Sandbox, raw: httpx.Client) -> None:
    subscriber(sb, raw, "a@example.com")
    two_touch(raw, sb)
    send_event(raw, "a@example.com", props={"send_at": "2026-03-12T15:30:00+00:00"}, unique_id="s")
    first, second = sorted(sb.outbox(source="flow"), key=lambda m: m["position"])
    assert first["send_at"] == "2026-03-12T15:30:00+00:00"
    # Thursday 11:30 EDT + 1 day = Friday 11:30, past 09:00 -> Saturday 09:00, not a weekday -> Monday 09:00 EDT
    assert second["send_at"] == "2026-03-16T13:00:00+00:00"


@pytest.mark.parametrize("status", ["draft", "manual"])
def test_flows_that_are_not_live_do_nothing(sb: Sandbox, raw: httpx.Client, status: str) -> None:
    subscriber(sb, raw, "a@example.com")
    flow = live_flow(raw, {"type": "metric", "id": metric(sb, "Signed Up")}, [email("e", None, "Hi")])
    set_status(raw, flow["id"], status)
    send_event(raw, "a@example.com", unique_id="1")
    assert sb.outbox() == []
    set_status(raw, flow["id"], "live")
    send_event(raw, "a@example.com", unique_id="2")
    assert len(sb.outbox()) == 1


def test_backfilled_events_do_not_trigger_flows(sb: Sandbox, raw: httpx.Client, clock: ManualClock) -> None:
    subscriber(sb, raw, "a@example.com")
    live_flow(raw, {"type": "metric", "id": metric(sb, "Signed Up")}, [email("e", None, "Hi")])
    send_event(raw, "a@example.com", unique_id="old", backfill=True)
    body = {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [{
        "type": "event-bulk-create", "attributes": {
            "backfill": True, "profile": {"data": {"type": "profile", "attributes": {"email": "a@example.com"}}},
            "events": {"data": [{"type": "event", "attributes": {
                "properties": {}, "unique_id": "older",
                "metric": {"data": {"type": "metric", "attributes": {"name": "Signed Up"}}}}}]}}}]}}}}
    assert raw.post("/api/event-bulk-create-jobs", json=body).status_code == 202
    clock.advance(2)
    sb.tick()
    assert len(sb.store.all("event")) == 3 and sb.outbox() == []


def test_consent_suppression_and_missing_addresses_are_recorded_as_skips(sb: Sandbox, raw: httpx.Client) -> None:
    suppressed = subscriber(sb, raw, "gone@example.com")
    suppress_email(suppressed, "HARD_BOUNCE", sb.clock.time())
    sms_only = subscriber(sb, raw, "sms@example.com", phone_number="+15005550006")
    set_sms_consent(sms_only, "SUBSCRIBED", sb.clock.time())
    sms = {"temporary_id": "s", "type": "send-sms", "links": {"next": None}, "data": {"message": {"body": "Yo"}}}
    live_flow(raw, {"type": "metric", "id": metric(sb, "Signed Up")}, [email("e", "s", "Hi"), sms])
    for who in ("gone@example.com", "never@example.com", "sms@example.com"):
        send_event(raw, who, unique_id="go")
    outcome = {(m["to"], m["channel"]): (m["status"], m["skip_reason"]) for m in sb.outbox()}
    assert outcome == {
        ("gone@example.com", "email"): ("skipped", "suppressed"),
        (None, "sms"): ("skipped", "no phone number"),
        ("never@example.com", "email"): ("scheduled", None),  # implied email consent
        ("sms@example.com", "email"): ("scheduled", None),
        ("+15005550006", "sms"): ("scheduled", None),
    }
    [text] = [m for m in sb.outbox() if m["to"] == "+15005550006"]
    assert text["body"] == "Yo" and text["position"] == 2


def test_trigger_filters_and_conditional_splits(sb: Sandbox, raw: httpx.Client) -> None:
    subscriber(sb, raw, "vip@example.com", properties={"Plan": "Gold"})
    subscriber(sb, raw, "std@example.com", properties={"Plan": "Basic"})
    condition = {"type": "profile-property", "property": "properties['Plan']",
                 "filter": {"type": "string", "operator": "equals", "value": "gold"}}
    trigger = {"type": "metric", "id": metric(sb, "Signed Up"), "trigger_filter": {"condition_groups": [{"conditions": [
        {"type": "metric-property", "metric_id": metric(sb, "Signed Up"), "field": "source",
         "filter": {"type": "string", "operator": "in", "value": ["web", "app"]}}]}]}}
    live_flow(raw, trigger, [
        {"temporary_id": "split", "type": "conditional-split",
         "links": {"next_if_true": "gold", "next_if_false": "std"},
         "data": {"profile_filter": {"condition_groups": [{"conditions": [condition]}]}}},
        email("gold", None, "VIP welcome"), email("std", None, "Welcome")])
    send_event(raw, "vip@example.com", props={"source": "web"}, unique_id="1")
    send_event(raw, "std@example.com", props={"source": "app"}, unique_id="1")
    send_event(raw, "std@example.com", props={"source": "store"}, unique_id="2")  # filtered out
    assert sorted((m["to"], m["subject"]) for m in sb.outbox()) == [("std@example.com", "Welcome"),
                                                                     ("vip@example.com", "VIP welcome")]


def test_reentry_criteria_alltime_lets_a_profile_in_once(sb: Sandbox, raw: httpx.Client) -> None:
    subscriber(sb, raw, "a@example.com")
    live_flow(raw, {"type": "metric", "id": metric(sb, "Signed Up")}, [email("e", None, "Hi")],
              reentry_criteria={"duration": 1, "unit": "alltime"})
    send_event(raw, "a@example.com", unique_id="1")
    send_event(raw, "a@example.com", unique_id="2")
    assert len(sb.outbox()) == 1


def test_a_list_triggered_flow_runs_when_a_profile_is_added(sb: Sandbox, raw: httpx.Client) -> None:
    profile = subscriber(sb, raw, "a@example.com")
    lst = raw.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": "Newsletter"}}}).json()["data"]
    flow = live_flow(raw, {"type": "list", "id": lst["id"]},
                     [delay("d", "e", 3, unit="hours"), email("e", None, "Hi")])
    assert flow["attributes"]["trigger_type"] == "Added to List"
    triggered = raw.get(f"/api/lists/{lst['id']}/relationships/flow-triggers").json()["data"]
    assert triggered == [{"type": "flow", "id": flow["id"]}]
    sb.emit("profile_added_to_list", {"list": sb.store.get("list", lst["id"]), "profile": profile})
    [message] = sb.outbox()
    assert message["send_at"] == "2026-03-06T23:00:00+00:00" and message["trigger_event_id"] is None
    assert message["flow_id"] == flow["id"] and message["status"] == "scheduled"


def test_a_list_trigger_must_name_an_existing_list(raw: httpx.Client) -> None:
    err = error(create_flow(raw, {"type": "list", "id": "NOLIST"}, [email("e", None, "Hi")]), 400)
    assert err["source"]["pointer"] == "/data/attributes/definition/triggers/0/id"


# -- every flow, event and metric operation answers with minimal arguments ------------------------------
@pytest.mark.parametrize("demo_data", [False, True])
def test_minimal_calls_of_these_operations_succeed(clock: ManualClock, demo_data: bool) -> None:
    sb = Sandbox(validate_responses=True, demo_data=demo_data, rate_limit_factor=None, clock=clock)
    client = sb.client()
    problems = {}
    for op in load_catalog():
        if op.tag not in ("Events", "Flows", "Metrics"):
            continue
        try:
            client.call(op, **minimal_args(op, sb))
        except KlaviyoError as exc:
            problems[op.operation_id] = str(exc)[:200]
    assert problems == {}


def test_an_action_edit_that_leaves_the_status_out_keeps_it(sb: Sandbox, raw: httpx.Client) -> None:
    """A paused (manual) message of a live flow stays paused when its content is edited without a status:
    the edit must not switch the send on."""
    send_event(raw, "x@example.com", backfill=True)
    flow = create_flow(raw, {"type": "metric", "id": metric(sb, "Signed Up")}, [email("e", None, "Hi")]).json()["data"]
    assert set_status(raw, flow["id"], "live").status_code == 200
    action = raw.get(f"/api/flows/{flow['id']}", params={"additional-fields[flow]": "definition"}).json()[
        "data"]["attributes"]["definition"]["actions"][0]
    paused = {**action, "data": {**action["data"], "status": "manual"}}
    body = {"data": {"type": "flow-action", "id": action["id"], "attributes": {"definition": paused}}}
    assert raw.patch(f"/api/flow-actions/{action['id']}", json=body).status_code == 200
    data = {k: v for k, v in action["data"].items() if k != "status"}
    edited = {**action, "data": {**data, "message": {**data["message"], "subject_line": "Edited"}}}
    body = {"data": {"type": "flow-action", "id": action["id"], "attributes": {"definition": edited}}}
    assert raw.patch(f"/api/flow-actions/{action['id']}", json=body).status_code == 200
    now = raw.get(f"/api/flows/{flow['id']}", params={"additional-fields[flow]": "definition"}).json()[
        "data"]["attributes"]["definition"]["actions"][0]
    assert now["data"]["status"] == "manual" and now["data"]["message"]["subject_line"] == "Edited", now
