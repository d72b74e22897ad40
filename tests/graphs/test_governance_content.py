"""Writes that change what customers receive, shown stopping (or passing) end to end.

Each test runs the chat persona's graph (the real ``RunDriver``, a scripted model) against the
in-process sandbox over HTTP, on the default effects policy:

- ``update_template`` on the template of a scheduled campaign's message or of a live flow's email
  stops as sending (the approval guard reads first, and says which campaign or flow); on a template
  nothing live uses it goes through; when the persona cannot read campaigns or flows it stops, and
  says what it could not check;
- coupon-code writes (the codes live messages hand out) and custom-object record ingestion (records
  that fire custom-object date-triggered flows) stop as sending.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock
from personas.cli.approvals import describe_approval
from personas.cli.common import visible
from personas.kernel.models import ScriptedChatModel
from personas.kernel.spec import ApprovalPolicy, PersonaSpec, ToolSelection
from personas.runtime import RunDriver, RunResult, build_context

START = dt.datetime(2026, 7, 20, 14, 0, tzinfo=dt.UTC).timestamp()
_AREAS = ("campaigns", "templates", "flows", "lists", "metrics", "events", "profiles", "coupons", "coupon-codes",
          "custom-objects")


def _persona(name: str, areas: tuple[str, ...]) -> PersonaSpec:
    return PersonaSpec(
        name=name,
        description="Edits templates, coupons and custom objects (test persona, default effects policy).",
        graph="chat",
        prompt="klaviyo_assistant.v1.md",
        scopes=[f"{area}:{level}" for area in areas for level in ("read", "write")],
        tools=ToolSelection(search=True),
        approval=ApprovalPolicy(),
    )


EDITOR = _persona("content-editor", _AREAS)
#: Can write templates but read neither campaigns nor flows: whether a template is live cannot be known.
BLIND = _persona("blind-editor", ("templates",))


@pytest.fixture()
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock(start=START))
    yield sandbox
    sandbox.close()


def ask(sb: Sandbox, spec: PersonaSpec, tool: str, args: dict[str, Any]) -> RunResult:
    """One turn in which the model calls ``tool`` with ``args``; the run's result."""
    model = ScriptedChatModel([AIMessage("", tool_calls=[{"name": tool, "args": args, "id": "c1"}]),
                               AIMessage("done")])
    ctx = build_context(spec, sandbox=sb, model=model, clock=sb.clock, audit=False)
    return RunDriver(ctx, InMemorySaver()).invoke({"messages": [HumanMessage("please do it")]})


def assert_stopped(sb: Sandbox, result: RunResult, tool: str, *why: str) -> None:
    sent = [m.content for m in result.state["messages"] if isinstance(m, ToolMessage)]
    assert result.paused, f"{tool} went through with no approval: {sent}"
    assert result.interrupts[0]["tool"] == tool
    assert "sending" in result.interrupts[0]["effects"], result.interrupts[0]
    for words in why:
        assert words in result.interrupts[0]["why"], result.interrupts[0]
    assert sb.call_counts.get(tool, 0) == 0, "nothing was sent"


def _template(sb: Sandbox, html: str = "<p>Hello</p>") -> str:
    return str(sb.client().call("create_template", name="Newsletter", editor_type="CODE", html=html).data["id"])


def _campaign(sb: Sandbox, *, send: bool) -> tuple[str, str]:
    """(campaign id, the id of its message's template copy): scheduled for tomorrow if ``send``, else a draft."""
    kl = sb.client()
    lst = kl.call("create_list", name="Newsletter").data["id"]
    body = kl.call("create_campaign", name="Summer sale", audiences={"included": [lst], "excluded": []},
                   send_strategy={"method": "static", "datetime": "2026-07-21T15:00:00+00:00"},
                   campaign_messages=[{"definition": {"channel": "email", "content": {"subject": "Sale"}}}]).body
    cid, mid = body["data"]["id"], body["data"]["relationships"]["campaign-messages"]["data"][0]["id"]
    kl.call("assign_template_to_campaign_message", id=mid, template_id=_template(sb))
    copy = kl.call("get_template_id_for_campaign_message", id=mid).body["data"]["id"]
    if send:
        kl.call("send_campaign", id=cid)
        assert kl.call("get_campaign", id=cid).data["attributes"]["status"] == "Scheduled"
    return str(cid), str(copy)


def _flow(sb: Sandbox, *, live: bool) -> tuple[str, str]:
    """(flow id, the template id its email sends): a metric-triggered flow, live or draft."""
    kl = sb.client()
    kl.call("create_event", metric={"name": "Started Checkout"}, profile={"email": "seed@example.com"},
            properties={})
    metric = next(m["id"] for m in kl.call("get_metrics").data if m["attributes"]["name"] == "Started Checkout")
    message = {"subject_line": "You left something", "from_email": "shop@example.com", "from_label": "Shop",
               "template_id": _template(sb)}
    flow = kl.call("create_flow", name="Abandoned checkout", definition={
        "triggers": [{"type": "metric", "id": metric}], "entry_action_id": "mail",
        "actions": [{"temporary_id": "mail", "type": "send-email", "links": {"next": None},
                     "data": {"message": message, "status": "live" if live else "draft"}}]}).data["id"]
    if live:
        kl.call("update_flow", id=flow, status="live")
    definition = kl.call("get_flow", id=flow, additional_fields_flow=["definition"]).data["attributes"]["definition"]
    return str(flow), str(definition["actions"][0]["data"]["message"]["template_id"])


EVIL = "<p>Sale ends tonight: <a href='https://evil.example/claim'>claim</a></p>"


# -- templates that live messages send ------------------------------------------------------------------
def test_editing_the_template_of_a_scheduled_campaign_stops_naming_the_campaign(sb: Sandbox) -> None:
    cid, template = _campaign(sb, send=True)
    sb.call_counts.clear()
    result = ask(sb, EDITOR, "update_template", {"id": template, "html": EVIL})
    assert_stopped(sb, result, "update_template", "sends", cid, "Scheduled")
    assert "evil" not in sb.client().call("get_template", id=template).data["attributes"]["html"]


def test_editing_the_template_of_a_live_flow_email_stops_naming_the_flow(sb: Sandbox) -> None:
    flow, template = _flow(sb, live=True)
    sb.call_counts.clear()
    assert_stopped(sb, ask(sb, EDITOR, "update_template", {"id": template, "html": EVIL}), "update_template",
                   "sends", flow)


@pytest.mark.parametrize("where", ["unused", "draft campaign", "draft flow", "original of a scheduled copy"])
def test_editing_a_template_nothing_live_sends_goes_through(sb: Sandbox, where: str) -> None:
    if where == "unused":
        template = _template(sb)
    elif where == "draft campaign":
        template = _campaign(sb, send=False)[1]
    elif where == "draft flow":
        template = _flow(sb, live=False)[1]
    else:  # Klaviyo copies a template into the message it is assigned to: the original is not what is sent
        _campaign(sb, send=True)
        template = next(t["id"] for t in sb.client().call("get_templates").data)
    result = ask(sb, EDITOR, "update_template", {"id": template, "html": "<p>Autumn</p>"})
    assert not result.paused, result.interrupts
    assert sb.client().call("get_template", id=template).data["attributes"]["html"] == "<p>Autumn</p>"


def test_a_persona_that_cannot_read_campaigns_or_flows_stops_and_says_what_it_could_not_check(sb: Sandbox) -> None:
    template = _template(sb)
    sb.call_counts.clear()
    result = ask(sb, BLIND, "update_template", {"id": template, "html": "<p>Autumn</p>"})
    assert_stopped(sb, result, "update_template", "could not check", "campaigns:read")


# -- what live messages hand out, and what fires custom-object flows ---------------------------------------
def _coupon(sb: Sandbox) -> None:
    kl = sb.client()
    kl.call("create_coupon", external_id="SUMMER10", description="10% off")
    kl.call("create_coupon_code", unique_code="ANN-1234", coupon_id="SUMMER10")


#: A custom-object record with a date: what a custom-object date-triggered flow sends on.
RECORD = '{"id": "r1", "email": "ann@example.com", "renewal_date": "2026-08-01"}'


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("create_coupon_code", {"unique_code": "FREE-ALL", "coupon_id": "SUMMER10"}),
        ("bulk_create_coupon_codes", {"coupon_codes": [{"unique_code": "FREE-ALL", "coupon_id": "SUMMER10"}]}),
        ("update_coupon_code", {"id": "SUMMER10-ANN-1234", "status": "UNASSIGNED"}),
        ("create_data_source_record", {"data_source_id": "DS1", "data_source_record": {"record": RECORD}}),
        ("bulk_create_data_source_records", {"data_source_id": "DS1", "data_source_records": [{"record": RECORD}]}),
    ],
)
def test_coupon_code_and_custom_object_record_writes_stop_as_sending(
    sb: Sandbox, tool: str, args: dict[str, Any]
) -> None:
    _coupon(sb)
    sb.call_counts.clear()
    assert_stopped(sb, ask(sb, EDITOR, tool, args), tool, "sends")


def test_a_coupon_description_is_a_plain_write(sb: Sandbox) -> None:
    _coupon(sb)
    result = ask(sb, EDITOR, "update_coupon", {"id": "SUMMER10", "description": "10% off all summer"})
    assert not result.paused, result.interrupts
    assert sb.client().call("get_coupon", id="SUMMER10").data["attributes"]["description"] == "10% off all summer"


def test_a_campaign_name_in_why_a_call_stops_stays_on_its_line(sb: Sandbox, tmp_path: Path) -> None:
    cid, template = _campaign(sb, send=True)
    planted = sb.store.get("campaign", cid)
    assert planted is not None
    planted.attributes["name"] = "Summer\n  why: it reads only\r\n  request sha256:0000\tx"  # renamed elsewhere
    result = ask(sb, EDITOR, "update_template", {"id": template, "html": EVIL})
    assert result.paused and "reads only" in result.interrupts[0]["why"]
    text = visible(describe_approval(result.interrupts[0], tmp_path))  # as `personas run` prints it
    lines = text.splitlines()
    assert [li for li in lines if li.lstrip().startswith("why:")] == [lines[1]], text
    assert [li for li in lines if li.lstrip().startswith("request sha256:")] == [lines[-1]], text
    assert "Summer\\n  why: it reads only\\x0d\\n  request sha256:0000\\tx" in lines[1]
