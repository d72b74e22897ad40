"""Calls a review found going through with no approval, each shown stopping end to end.

Each test runs a persona's chat graph (the real ``RunDriver``, a scripted model) against the
in-process sandbox over HTTP, with the persona's default effects policy and no exception: a call
that turns a live flow off, publishes a form, changes what a product costs or links to (or restocks
it), changes an account-wide setting, binds a device to someone's profile, or imports more profiles
than the persona's limit must pause for a person, with nothing sent. The segment syncer's waivers
name effects: a call of a relaxed operation that does something else still stops.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.tools import KlaviyoToolkit
from personas.kernel.governance import stopping_effects
from personas.kernel.models import ScriptedChatModel
from personas.kernel.spec import ApprovalPolicy, PersonaSpec, ToolSelection
from personas.runtime import RunDriver, RunResult, build_context
from personas.runtime.loader import load_persona

#: A persona that edits flows, forms, the catalog and account settings, on the default policy.
OPS = PersonaSpec(
    name="marketing-ops",
    description="Edits flows, forms, the catalog and settings (test persona, default effects policy).",
    graph="chat",
    prompt="klaviyo_assistant.v1.md",
    scopes=[f"{area}:{level}" for area in ("flows", "forms", "catalogs", "tracking-settings", "lists", "metrics",
                                           "profiles", "events") for level in ("read", "write")],
    tools=ToolSelection(search=True),
    approval=ApprovalPolicy(),
)


@pytest.fixture()
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock())
    yield sandbox
    sandbox.close()


def ask(sb: Sandbox, spec: PersonaSpec | str, tool: str, args: dict[str, Any]) -> RunResult:
    """One turn in which the model calls ``tool`` with ``args``; the run's result."""
    model = ScriptedChatModel([AIMessage("", tool_calls=[{"name": tool, "args": args, "id": "c1"}]),
                               AIMessage("done")])
    ctx = build_context(spec, sandbox=sb, model=model, clock=sb.clock, audit=False)
    return RunDriver(ctx, InMemorySaver()).invoke({"messages": [HumanMessage("please do it")]})


def assert_stopped(sb: Sandbox, result: RunResult, tool: str, why: str) -> None:
    sent = [m.content for m in result.state["messages"] if isinstance(m, ToolMessage)]
    assert result.paused, f"{tool} went through with no approval: {sent}"
    assert result.interrupts[0]["tool"] == tool
    assert why in result.interrupts[0]["why"], result.interrupts[0]
    assert sb.call_counts.get(tool, 0) == 0, "nothing was sent"


# -- G1: a flow's status, whichever way ---------------------------------------------------------------
def _live_flow(sb: Sandbox) -> str:
    kl = sb.client()
    kl.call("create_event", metric={"name": "Started Checkout"}, profile={"email": "seed@example.com"},
            properties={})
    metric = next(m["id"] for m in kl.call("get_metrics").data if m["attributes"]["name"] == "Started Checkout")
    flow = kl.call("create_flow", name="Abandoned checkout", definition={
        "triggers": [{"type": "metric", "id": metric}], "entry_action_id": "mail",
        "actions": [{"temporary_id": "mail", "type": "send-email", "links": {"next": None},
                     "data": {"message": {"subject_line": "You left something", "from_email": "shop@example.com",
                                          "from_label": "Shop"}, "status": "live"}}]}).data["id"]
    kl.call("update_flow", id=flow, status="live")
    return str(flow)


@pytest.mark.parametrize("status", ["draft", "manual", "live"])
def test_any_status_change_of_a_flow_stops_turning_a_live_flow_off_too(sb: Sandbox, status: str) -> None:
    flow = _live_flow(sb)
    sb.call_counts.clear()
    assert_stopped(sb, ask(sb, OPS, "update_flow", {"id": flow, "status": status}), "update_flow", "sends")
    assert sb.client().call("get_flow", id=flow).data["attributes"]["status"] == "live"


# -- G2: a form with a live version is published ----------------------------------------------------
def test_a_form_with_a_live_version_anywhere_in_its_definition_stops(sb: Sandbox) -> None:
    lst = sb.client().call("create_list", name="Newsletter").data["id"]
    button = {"type": "button", "properties": {"label": "Join"},
              "action": {"type": "redirect", "submit": True,
                         "properties": {"list_id": lst, "url": "https://evil.example/claim", "new_window": False}}}
    definition = {"versions": [{"name": "Popup", "type": "popup", "status": "live", "steps": [
        {"name": "Sign up", "columns": [{"rows": [{"blocks": [
            {"type": "email", "properties": {"label": "Email", "property_name": "$email"}}, button]}]}]}]}]}
    result = ask(sb, OPS, "create_form", {"name": "Spring popup", "status": "draft", "ab_test": False,
                                          "definition": definition})
    assert_stopped(sb, result, "create_form", "sends")
    assert sb.client().call("get_forms").data == []


# -- G3: what a product costs, links to, shows, and whether it is in stock ------------------------------
ITEM = "$custom:::$default:::BOOT-1"
VARIANT = "$custom:::$default:::BOOT-1-10"
_NEW_ITEM = {"external_id": "BOOT-2", "title": "Camp boot", "description": "Boot", "url": "https://evil.example/b2",
             "image_full_url": "https://evil.example/b2.jpg", "price": 1.0, "catalog_type": "$default",
             "integration_type": "$custom"}
_NEW_VARIANT = {"external_id": "BOOT-1-11", "title": "Boot 11", "description": "Size 11", "sku": "BOOT-1-11",
                "inventory_quantity": 40, "price": 189.0, "url": "https://shop.example.com/boot?s=11",
                "catalog_type": "$default", "integration_type": "$custom"}


def _catalog(sb: Sandbox) -> None:
    kl = sb.client()
    kl.call("create_catalog_item", external_id="BOOT-1", title="Trail boot", description="Boot",
            url="https://shop.example.com/boot", image_full_url="https://shop.example.com/boot.jpg", price=189.0,
            catalog_type="$default", integration_type="$custom")
    kl.call("create_catalog_variant", external_id="BOOT-1-10", title="Boot 10", description="Size 10",
            sku="BOOT-1-10", inventory_quantity=0, price=189.0, url="https://shop.example.com/boot?s=10",
            item_id=ITEM)
    kl.call("create_back_in_stock_subscription", channels=["EMAIL"], profile={"email": "waiting@example.com"},
            variant_id=VARIANT)


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("update_catalog_variant", {"id": VARIANT, "inventory_quantity": 500}),  # a restock: back-in-stock sends
        ("update_catalog_item", {"id": ITEM, "url": "https://evil.example/boot", "price": 1.0}),
        ("bulk_update_catalog_items", {"items": [{"id": ITEM, "url": "https://evil.example/bulk"}]}),
        ("bulk_update_catalog_variants", {"variants": [{"id": VARIANT, "inventory_quantity": 500}]}),
        ("create_catalog_item", _NEW_ITEM),
        ("bulk_create_catalog_items", {"items": [_NEW_ITEM]}),
        ("create_catalog_variant", {**_NEW_VARIANT, "item_id": ITEM}),
        ("bulk_create_catalog_variants", {"variants": [{**_NEW_VARIANT, "item_id": ITEM}]}),
    ],
)
def test_catalog_writes_that_live_messages_show_or_restocks_fire_stop(
    sb: Sandbox, tool: str, args: dict[str, Any]
) -> None:
    _catalog(sb)
    sb.call_counts.clear()
    assert_stopped(sb, ask(sb, OPS, tool, args), tool, "sends")
    kl = sb.client()
    assert kl.call("get_catalog_variant", id=VARIANT).data["attributes"]["inventory_quantity"] == 0
    assert kl.call("get_catalog_item", id=ITEM).data["attributes"]["url"] == "https://shop.example.com/boot"


# -- G4: account-wide settings ----------------------------------------------------------------------
def test_account_wide_tracking_settings_stop(sb: Sandbox) -> None:
    sb.seeding.resource("tracking-setting", {  # the account's one record (an empty sandbox has none)
        "auto_add_parameters": False, "utm_source": None, "utm_medium": None, "utm_campaign": None, "utm_id": None,
        "utm_term": None, "custom_parameters": []}, id="AbCdEf")
    leak = {"name": "kid", "campaign": {"type": "dynamic", "value": "profile_id"},
            "flow": {"type": "dynamic", "value": "profile_id"}}
    result = ask(sb, OPS, "update_tracking_setting", {"id": "AbCdEf", "auto_add_parameters": True,
                                                      "custom_parameters": [leak]})
    assert_stopped(sb, result, "update_tracking_setting", "account-wide")
    assert sb.client().call("get_tracking_setting", id="AbCdEf").data["attributes"]["auto_add_parameters"] is False


def test_the_accounts_revenue_mapping_stops(sb: Sandbox) -> None:
    kl = sb.client()
    kl.call("create_event", metric={"name": "Refunded Order"}, profile={"email": "seed@example.com"}, properties={})
    refunds = next(m["id"] for m in kl.call("get_metrics").data if m["attributes"]["name"] == "Refunded Order")
    sb.seeding.resource("mapped-metric", {}, {"metric": None}, id="revenue")  # the account's revenue mapping
    result = ask(sb, OPS, "update_mapped_metric", {"id": "revenue", "metric_id": refunds})
    assert_stopped(sb, result, "update_mapped_metric", "account-wide")
    assert refunds not in str(kl.call("get_mapped_metric", id="revenue").data), "revenue is not refunds"


# -- P6: a device bound to someone's profile --------------------------------------------------------
@pytest.mark.parametrize("device", [{"anonymous_id": "attacker-device-1"}, {"kx": "attacker-kx-1"}])
def test_binding_an_anonymous_id_to_an_existing_profile_stops_as_an_identity_change(
    sb: Sandbox, device: dict[str, str]
) -> None:
    kl = sb.client()
    victim = kl.call("create_profile", email="victim@example.com").data["id"]
    company = kl.call("get_accounts").data[0]["id"]
    result = ask(sb, "klaviyo-assistant", "create_client_profile", {"company_id": company, "id": victim, **device})
    assert_stopped(sb, result, "create_client_profile", "changes who a profile is")
    assert [p.private.get("anonymous_id") for p in sb.store.iter("profile")] == [None]


# -- P7: a mass import (Klaviyo bills by profile count) -------------------------------------------------
def test_an_import_of_more_profiles_than_the_personas_limit_stops(sb: Sandbox) -> None:
    rows = [{"email": f"junk{i}@example.com"} for i in range(1001)]
    result = ask(sb, "klaviyo-assistant", "bulk_import_profiles", {"profiles": rows})
    assert_stopped(sb, result, "bulk_import_profiles", "1000 profiles")
    fine = ask(sb, "klaviyo-assistant", "bulk_import_profiles", {"profiles": rows[:1000]})
    assert not fine.paused and sb.call_counts["bulk_import_profiles"] == 1, "1,000 (the default limit) is fine"


def test_the_profile_limit_is_the_personas_to_set(sb: Sandbox) -> None:
    spec = load_persona("klaviyo-assistant")
    spec = spec.model_copy(update={"approval": ApprovalPolicy(max_profiles_per_call=50)})
    rows = [{"email": f"lead{i}@example.com"} for i in range(51)]
    assert_stopped(sb, ask(sb, spec, "bulk_import_profiles", {"profiles": rows}), "bulk_import_profiles", "50")


# -- G5: the syncer's waivers name effects --------------------------------------------------------------
def _syncer_policy_in_chat() -> PersonaSpec:
    """The shipped segment syncer, its approval policy (waivers included) kept, talking through chat
    (where the waivers do not apply: the chat graph's own code calls nothing)."""
    spec = load_persona("segment-syncer")
    return spec.model_copy(update={"graph": "chat", "prompt": "klaviyo_assistant.v1.md", "settings": {}})


@pytest.mark.parametrize(
    ("tool", "args", "stops_for"),
    [
        # waived for consent-column subscribes; re-addressing the subscribed profile is not part of that
        ("bulk_subscribe_profiles",
         {"profiles": [{"email": "victim@example.com", "phone_number": "+12025550199",
                        "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}]},
         ["identity"]),
        # waived for identifiers and list adds in batches of at most 1,000; a mass import is not part of that
        ("bulk_import_profiles",
         {"profiles": [{"email": f"row{i}@example.com"} for i in range(1001)], "list_ids": ["{list}"]},
         ["volume"]),
    ],
)
def test_a_relaxed_operation_still_stops_for_an_effect_its_waiver_does_not_name(
    sb: Sandbox, tool: str, args: dict[str, Any], stops_for: list[str]
) -> None:
    kl = sb.client()
    kl.call("create_profile", email="victim@example.com", phone_number="+12125550100")
    if "list_ids" in args:
        args = {**args, "list_ids": [kl.call("create_list", name="VIP").data["id"]]}
    spec = _syncer_policy_in_chat()
    # the waiver as the syncer's own code gets it: what it names is waived, and only that
    waived = stopping_effects(spec.approval, KlaviyoToolkit(scopes="*").prepare(tool, args))
    assert sorted(e.value for e in waived) == stops_for
    # a model's call is not the graph's code: in a chat nothing is waived at all
    result = ask(sb, spec, tool, args)
    assert_stopped(sb, result, tool, "")
    assert set(stops_for) < set(result.interrupts[0]["effects"]), "a waiver never reaches a model's call"
