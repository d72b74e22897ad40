"""An approval shows what the request changes: the resource as it is now (read before the pause,
scoped and audited) and, for an update, each field's value now and after. Through the chat persona
on the sandbox, and the toolkit's view for the cases no shipped persona reaches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from klaviyo_sandbox import Faults, Sandbox
from klaviyo_toolkit.approval_view import current_view
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.tools import KlaviyoToolkit
from personas.cli.approvals import current_lines, describe_approval
from personas.kernel.models import ScriptedChatModel
from personas.kernel.spec import ApprovalPolicy, PersonaSpec, ToolSelection
from personas.runtime import RunResult, build_context, run_persona

PERSONA = "klaviyo-assistant"


@pytest.fixture()
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock())
    yield sandbox
    sandbox.close()


def _call(name: str, args: dict[str, Any]) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": "c1"}])


def _pause(sb: Sandbox, name: str, args: dict[str, Any],
           persona: str | PersonaSpec = PERSONA) -> tuple[Any, InMemorySaver, RunResult]:
    ctx = build_context(persona, sandbox=sb, model=ScriptedChatModel([_call(name, args), AIMessage("ok")]))
    saver = InMemorySaver()
    paused = run_persona(persona, {"messages": [HumanMessage("do it")]}, context=ctx, saver=saver)
    assert paused.paused and paused.interrupts[0]["tool"] == name
    return ctx, saver, paused


def test_an_email_change_shows_the_email_it_replaces_and_rejecting_changes_nothing(sb: Sandbox) -> None:
    pid = sb.client().call("create_profile", email="ada@example.com", first_name="Ada").data["id"]
    ctx, saver, paused = _pause(sb, "update_profile", {"id": pid, "email": "mallory@evil.test"})
    current = paused.interrupts[0]["current"]
    assert current["resource"] == f"profile {pid} 'ada@example.com'"
    assert current["fields"]["first_name"] == "Ada"
    assert {"field": "email", "before": "ada@example.com", "after": "mallory@evil.test", "same": False,
            "returned": True} in (
        current["changes"]
    )
    text = describe_approval(paused.interrupts[0], ctx.config.home / "approvals")
    assert 'email: "ada@example.com" → "mallory@evil.test"' in text
    run_persona(PERSONA, None, context=ctx, saver=saver, resume={"action": "reject", "reason": "no"})
    assert sb.store.get("profile", pid).attributes["email"] == "ada@example.com"
    # the read was this persona's own, audited once (the resume in this process used what was shown)
    assert ctx.audit is not None
    reads = ctx.audit.query(tool="get_profile", limit=None)
    assert [(r.status, r.persona) for r in reads] == [("ok", PERSONA)]


def test_a_delete_shows_the_name_and_size_of_what_it_deletes(sb: Sandbox) -> None:
    kl = sb.client()
    lid = kl.call("create_list", name="Old promo").data["id"]
    pids = [kl.call("create_profile", email=f"p{i}@example.com").data["id"] for i in range(3)]
    kl.call("add_profiles_to_list", id=lid, profile_ids=pids)
    ctx, saver, paused = _pause(sb, "delete_list", {"id": lid})
    current = paused.interrupts[0]["current"]
    assert current["resource"] == f"list {lid} 'Old promo'" and current["fields"]["profile_count"] == 3
    assert "changes" not in current
    # resumed elsewhere (a new context, as `personas run --resume` in another process): read again, then sent
    other = build_context(PERSONA, sandbox=sb, model=ScriptedChatModel([AIMessage("deleted")]),
                          thread_id=ctx.thread_id)
    done = run_persona(PERSONA, None, context=other, saver=saver, resume={"action": "approve"})
    assert not done.paused and sb.store.get("list", lid) is None


def test_a_nested_object_is_shown_field_by_field_and_secret_fields_masked(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    pid = kit.fetch("create_profile", email="b@example.com", properties={"tier": "gold", "pin": "1"},
                    location={"city": "Oslo"}).data["id"]
    call = kit.prepare("update_profile", {"id": pid, "properties": {"tier": "silver", "password": "hunter2"},
                                          "location": {"city": "Oslo"}})
    view = current_view(kit, call.operation, call.args, call.request.describe().get("body"))
    assert view is not None
    changes = {c["field"]: c for c in view["changes"]}
    assert (changes["properties.tier"]["before"], changes["properties.tier"]["after"]) == ("gold", "silver")
    assert changes["properties.password"]["after"] == "[redacted]"
    assert changes["location.city"]["same"] is True
    assert '  location.city: "Oslo" → "Oslo" (unchanged)' in current_lines(view)


def test_a_read_the_persona_may_not_make_is_named_not_made(sb: Sandbox) -> None:
    lid = sb.client().call("create_list", name="L").data["id"]
    kit = KlaviyoToolkit(sb.client(), scopes=["lists:write"])
    before = sb.call_counts["get_list"]
    view = current_view(kit, kit.catalog.get("delete_list"), {"id": lid})
    assert view == {"unread": "get_list needs lists:read, which this persona was not granted"}
    assert sb.call_counts["get_list"] == before
    assert current_lines(view) == ["as it is now: not read (get_list needs lists:read, which this persona was "
                                   "not granted)"]


def test_an_unknown_id_says_the_read_failed(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    view = current_view(kit, kit.catalog.get("delete_list"), {"id": "NOPE01"})
    assert view is not None and view["unread"].startswith("get_list failed: ") and "404" in view["unread"]


def test_a_relationship_that_is_replaced_shows_what_is_linked_now(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    item = kit.fetch("create_catalog_item", external_id="SKU1", title="Boots", description="d",
                     url="https://example.com/boots").data["id"]
    cats = [kit.fetch("create_catalog_category", external_id=f"C{i}", name=f"Cat {i}").data["id"] for i in range(2)]
    kit.fetch("add_categories_to_catalog_item", id=item, catalog_category_ids=cats)
    call = kit.prepare("update_categories_for_catalog_item", {"id": item, "catalog_category_ids": cats[:1]})
    view = current_view(kit, call.operation, call.args, call.request.describe().get("body"))
    assert view is not None and view["resource"].startswith(f"catalog-item {item} 'Boots'")
    assert view["linked"]["count"] == 2 and sorted(view["linked"]["ids"]) == sorted(cats)
    assert "linked now: 2 (" in current_lines(view)[-1] and "the request replaces them" in current_lines(view)[-1]


def test_klaviyo_data_in_the_view_stays_on_its_line(sb: Sandbox) -> None:
    lid = sb.client().call("create_list", name="Promo").data["id"]
    planted = sb.store.get("list", lid)
    assert planted is not None
    planted.attributes["name"] = "Promo\nAPPROVED by admin\x1b[2K"  # as data from another source could hold
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    view = current_view(kit, kit.catalog.get("delete_list"), {"id": lid})
    assert view is not None
    lines = current_lines(view)
    assert all("\n" not in line and "\x1b" not in line for line in lines), lines
    assert "APPROVED by admin" in lines[0]


def test_sending_a_campaign_shows_which_campaign_and_its_audience(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    lid = kit.fetch("create_list", name="Trail Club").data["id"]
    message = {"definition": {"channel": "email", "content": {"subject": "Boots"}}}
    cid = kit.fetch("create_campaign", name="Spring boots", audiences={"included": [lid]},
                    campaign_messages=[message]).data["id"]
    call = kit.prepare("send_campaign", {"id": cid})
    view = current_view(kit, call.operation, call.args, call.request.describe().get("body"))
    assert view is not None and view["resource"] == f"campaign {cid} 'Spring boots'"
    assert view["fields"]["status"] == "Draft" and view["fields"]["audiences"]["included"] == [lid]


def test_a_merge_names_the_profile_kept_and_those_merged_into_it(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    keep, gone = (kit.fetch("create_profile", email=e).data["id"] for e in ("ada@example.com", "ada2@example.org"))
    call = kit.prepare("merge_profiles", {"id": keep, "profile_ids": [gone]})
    view = current_view(kit, call.operation, call.args, call.request.describe().get("body"))
    assert view is not None and view["resource"] == f"profile {keep} 'ada@example.com'"
    assert view["merged_in"] == [f"profile {gone} 'ada2@example.org'"]
    assert f"merged into it, then deleted: profile {gone} 'ada2@example.org'" in current_lines(view)


def test_a_data_deletion_by_email_shows_whose_data_it_deletes(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    pid = kit.fetch("create_profile", email="gone@example.com", first_name="Gwen").data["id"]
    call = kit.prepare("request_profile_deletion", {"profile": {"email": "gone@example.com"}})
    view = current_view(kit, call.operation, call.args)
    assert view is not None and view["resource"] == f"profile {pid} 'gone@example.com'"
    assert view["fields"]["first_name"] == "Gwen"
    call = kit.prepare("request_profile_deletion", {"profile": {"email": "nobody@example.com"}})
    assert current_view(kit, call.operation, call.args) == {"unread": "no profile has email 'nobody@example.com'"}


def test_a_post_that_names_no_resource_has_nothing_to_read(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    before = dict(sb.call_counts)
    call = kit.prepare("bulk_suppress_profiles", {"profiles": [{"email": "x@example.com"}]})  # no list named
    assert current_view(kit, call.operation, call.args) is None
    assert dict(sb.call_counts) == before


def test_an_upsert_by_id_shows_the_identity_it_changes(sb: Sandbox) -> None:
    pid = sb.client().call("create_profile", email="ada@example.com").data["id"]
    _, _, paused = _pause(sb, "create_or_update_profile", {"id": pid, "email": "ada@analytical.example"})
    changes = paused.interrupts[0]["current"]["changes"]
    assert [(c["field"], c["before"], c["after"]) for c in changes] == [
        ("email", "ada@example.com", "ada@analytical.example")]


def test_profiles_added_to_a_list_are_named_and_counted(sb: Sandbox) -> None:
    kl = sb.client()
    lid = kl.call("create_list", name="VIP").data["id"]
    pids = [kl.call("create_profile", email=f"v{i}@example.com").data["id"] for i in range(12)]
    _, _, paused = _pause(sb, "add_profiles_to_list", {"id": lid, "profile_ids": pids})  # adding sends (flows)
    profiles = paused.interrupts[0]["current"]["profiles"]
    assert profiles["count"] == 12 and len(profiles["named"]) == 10
    assert profiles["named"][0] == f"profile {pids[0]} 'v0@example.com'"
    line = current_lines(paused.interrupts[0]["current"])[-1]
    assert line.startswith("the request names 12 profile(s): ") and line.endswith(" and 2 more"), line


def test_profiles_a_caller_names_already_are_not_read_again(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    lid = kit.fetch("create_list", name="L").data["id"]
    pid = kit.fetch("create_profile", email="q@example.com").data["id"]
    call = kit.prepare("remove_profiles_from_list", {"id": lid, "profile_ids": [pid]})
    before = sb.call_counts["get_profiles"]
    view = current_view(kit, call.operation, call.args, name_profiles=False)
    assert view is not None and "profiles" not in view and sb.call_counts["get_profiles"] == before


def test_a_merge_of_many_profiles_says_how_many_it_deletes_beyond_those_named(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    pids = [kit.fetch("create_profile", email=f"m{i}@example.com").data["id"] for i in range(10)]
    before = sb.call_counts["get_profile"]
    call = kit.prepare("merge_profiles", {"id": pids[0], "profile_ids": pids[1:]})
    view = current_view(kit, call.operation, call.args, call.request.describe().get("body"))
    assert view is not None and sb.call_counts["get_profile"] - before == 6  # the one kept and five merged in
    line = next(li for li in current_lines(view) if li.startswith("merged into it, then deleted: "))
    assert line.startswith("merged into it, then deleted: 9 profiles: ") and line.endswith("; and 4 more"), line


def test_profiles_and_links_the_persona_may_not_read_say_which_scope(sb: Sandbox) -> None:
    kl = sb.client()
    lid = kl.call("create_list", name="VIP").data["id"]
    pids = [kl.call("create_profile", email=f"v{i}@example.com").data["id"] for i in range(3)]
    kit = KlaviyoToolkit(sb.client(), scopes=["lists:read", "lists:write"])
    call = kit.prepare("add_profiles_to_list", {"id": lid, "profile_ids": pids})
    view = current_view(kit, call.operation, call.args)
    assert view is not None and view["profiles"]["unread"] == (
        "get_profiles needs profiles:read, which this persona was not granted")
    assert current_lines(view)[-1] == ("the request names 3 profile(s), not named (get_profiles needs profiles:read, "
                                       "which this persona was not granted)")
    full = KlaviyoToolkit(sb.client(), scopes="*")
    item = full.fetch("create_catalog_item", external_id="SKU1", title="Boots", description="d",
                      url="https://example.com/boots").data["id"]
    cat = full.fetch("create_catalog_category", external_id="C1", name="Cat").data["id"]
    sb.faults = Faults(error_rate=1.0, operations=["get_category_ids_for_catalog_item"])
    call = full.prepare("update_categories_for_catalog_item", {"id": item, "catalog_category_ids": [cat]})
    view = current_view(full, call.operation, call.args, call.request.describe().get("body"))
    assert view is not None and view["linked"]["unread"].startswith("get_category_ids_for_catalog_item failed: ")
    assert current_lines(view)[-1].startswith("linked now: not read (get_category_ids_for_catalog_item failed: ")


def test_a_long_value_changed_past_its_head_shows_where_it_differs(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    page = "<html>" + "a" * 3000 + "<a href='https://{}.example/'>shop</a></html>"
    tid = kit.fetch("create_template", name="T", editor_type="CODE", html=page.format("good")).data["id"]
    call = kit.prepare("update_template", {"id": tid, "html": page.format("evil")})
    view = current_view(kit, call.operation, call.args, call.request.describe().get("body"))
    assert view is not None
    change = view["changes"][0]
    assert change["before"] != change["after"]
    assert "good.example" in change["before"] and "evil.example" in change["after"]
    assert "from character 2," in change["before"] and "of 3,053 characters" in change["before"], change


def test_a_field_the_read_does_not_return_is_not_shown_as_unset(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    topic = kit.fetch("get_webhook_topics").data[0]["id"]
    hook = kit.fetch("create_webhook", name="W", endpoint_url="https://hooks.example.com/x",
                     secret_key="whsec_abcdefghijklmnop", webhook_topic_ids=[topic]).data["id"]
    call = kit.prepare("update_webhook", {"id": hook, "secret_key": "whsec_zyxwvutsrqponmlk", "name": "W2"})
    view = current_view(kit, call.operation, call.args, call.request.describe().get("body"))
    assert view is not None
    changes = {c["field"]: c for c in view["changes"]}
    assert changes["secret_key"]["returned"] is False and changes["name"]["returned"] is True
    lines = current_lines(view)
    assert '  secret_key: (not returned by get_webhook) → "[redacted]"' in lines, lines
    assert '  name: "W" → "W2"' in lines
    assert "whsec_" not in repr(view)


def test_each_request_shown_is_read_once_through_edits_and_the_approval(sb: Sandbox) -> None:
    kl = sb.client()
    first, second = (kl.call("create_profile", email=e).data["id"] for e in ("a@example.com", "b@example.com"))
    ctx, saver, paused = _pause(sb, "update_profile", {"id": first, "email": "x@example.com"})
    for edit in ({"id": second}, {"email": "y@example.com"}):  # another profile, then another email: two showings
        answer = {"action": "edit", "args": edit, "fingerprint": paused.interrupts[0]["fingerprint"]}
        paused = run_persona(PERSONA, None, context=ctx, saver=saver, resume=answer)
        assert paused.paused
    assert paused.interrupts[0]["current"]["resource"] == f"profile {second} 'b@example.com'"
    done = run_persona(PERSONA, None, context=ctx, saver=saver,
                       resume={"action": "approve", "fingerprint": paused.interrupts[0]["fingerprint"]})
    assert not done.paused and sb.store.get("profile", second).attributes["email"] == "y@example.com"
    assert ctx.audit is not None
    reads = [r.path.rsplit("/", 1)[-1] for r in reversed(ctx.audit.query(tool="get_profile", limit=None))]
    assert reads == [first, second, second], reads  # three requests shown, each read once; none on the approval


def test_a_change_deep_in_a_nested_object_is_shown_field_by_field(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    lid = kit.fetch("create_list", name="L").data["id"]
    content = {"subject": "Old", "preview_text": "pre", "from_email": "a@example.com", "from_label": "A"}
    body = kit.fetch("create_campaign", name="D", audiences={"included": [lid]},
                     campaign_messages=[{"definition": {"channel": "email", "content": content}}]).body
    mid = body["data"]["relationships"]["campaign-messages"]["data"][0]["id"]
    definition = {"channel": "email", "content": {"subject": "New"}}
    call = kit.prepare("update_campaign_message", {"id": mid, "definition": definition})
    view = current_view(kit, call.operation, call.args, call.request.describe().get("body"))
    assert view is not None
    # a PATCH sets the fields it names: only the subject changes (not the whole content, as it looked)
    assert [(c["field"], c["before"], c["after"], c["same"]) for c in view["changes"]] == [
        ("definition.content.subject", "Old", "New", False), ("definition.channel", "email", "email", True)]
    kit.fetch("update_campaign_message", id=mid, definition=definition)
    after = kit.fetch("get_campaign_message", id=mid).data["attributes"]["definition"]["content"]
    assert (after["subject"], after["preview_text"]) == ("New", "pre")


def test_a_secret_in_the_request_is_masked_on_screen_as_in_the_view(sb: Sandbox, tmp_path: Path) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    topic = kit.fetch("get_webhook_topics").data[0]["id"]
    hook = kit.fetch("create_webhook", name="W", endpoint_url="https://hooks.example.com/x",
                     secret_key="whsec_abcdefghijklmnop", webhook_topic_ids=[topic]).data["id"]
    spec = PersonaSpec(name="hooks", description="Manages webhooks (test persona).", graph="chat",
                       prompt="klaviyo_assistant.v1.md", scopes=["webhooks:read", "webhooks:write"],
                       tools=ToolSelection(search=True), approval=ApprovalPolicy())
    new = "whsec_zyxwvutsrqponmlk"
    _, _, paused = _pause(sb, "update_webhook", {"id": hook, "secret_key": new}, spec)
    item = paused.interrupts[0]
    assert item["current"]["changes"][0]["after"] == "[redacted]"
    text = describe_approval(item, tmp_path)
    assert "PATCH /api/webhooks/" in text and '"secret_key": "***"' in text, text
    assert new not in text and "abcdefghijklmnop" not in text
    long = {**item, "request": {**item["request"], "body": {**item["request"]["body"], "pad": "x" * 2000}}}
    text = describe_approval(long, tmp_path)  # summarised, the whole request in a file
    saved = Path(text.rsplit("the whole request: ", 1)[1].splitlines()[0])
    assert new not in text and new not in saved.read_text()


def test_a_real_change_is_never_pushed_out_of_view_by_unchanged_fields(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    same = {f"k{i:02}": "v" for i in range(40)}
    pid = kit.fetch("create_profile", email="p@example.com", properties=same).data["id"]
    call = kit.prepare("update_profile", {"id": pid, "properties": {**same, "tier": "platinum"}})
    view = current_view(kit, call.operation, call.args, call.request.describe().get("body"))
    assert view is not None
    assert view["changes"][0]["field"] == "properties.tier" and view["changes"][0]["after"] == "platinum"
    assert view["changes"][-1]["after"] == "16 more in the request, none of them a change", view["changes"][-1]
    assert current_lines(view)[-1] == "  … 16 more in the request, none of them a change"


def test_a_campaign_send_names_its_audiences_and_repeated_ids_count_once(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    lid, out = (kit.fetch("create_list", name=n).data["id"] for n in ("Trail Club", "Unsubscribed last year"))
    message = {"definition": {"channel": "email", "content": {"subject": "Boots"}}}
    cid = kit.fetch("create_campaign", name="Boots", audiences={"included": [lid], "excluded": [out]},
                    campaign_messages=[message]).data["id"]
    call = kit.prepare("send_campaign", {"id": cid})
    view = current_view(kit, call.operation, call.args)
    assert view is not None
    assert view["audiences"] == {"included": [f"list {lid} 'Trail Club'"],
                                 "excluded": [f"list {out} 'Unsubscribed last year'"]}
    line = f"audiences: included: list {lid} 'Trail Club' | excluded: list {out} 'Unsubscribed last year'"
    assert line in current_lines(view)
    # an audience no read finds (here: one the persona may not read) is shown by its id
    campaigns_only = KlaviyoToolkit(sb.client(), scopes=["campaigns:read"])
    view = current_view(campaigns_only, call.operation, call.args)
    assert view is not None and view["audiences"]["included"] == [f"{lid} (not read)"]
    pid = kit.fetch("create_profile", email="twice@example.com").data["id"]
    call = kit.prepare("add_profiles_to_list", {"id": lid, "profile_ids": [pid, pid]})
    view = current_view(kit, call.operation, call.args)
    assert view is not None and view["profiles"]["count"] == 1 and view["profiles"]["repeated"] == 1
    assert "names 1 profile(s) (1 id(s) given more than once, counted once): profile" in current_lines(view)[-1]


def test_a_read_whose_rate_limit_slot_is_a_minute_away_is_said_so_not_waited_for() -> None:
    # A list's profile_count allows 15 reads a minute; the approval of a 16th delete in that minute
    # must not wait the minute out for its view (the person is waiting), nor take the slot.
    clock = ManualClock()
    sandbox = Sandbox(demo_data=False, rate_limit_factor=1.0, clock=clock)
    try:
        kl = sandbox.client()
        lid = kl.call("create_list", name="Busy list").data["id"]
        for _ in range(15):
            kl.call("get_list", id=lid, additional_fields_list=["profile_count"])
        slept = len(clock.slept)
        ctx, saver, paused = _pause(sandbox, "delete_list", {"id": lid})
        current = paused.interrupts[0]["current"]
        assert "get_list not read: its rate limit has no slot within 2s" in current["unread"]
        assert all(s < 2.0 for s in clock.slept[slept:]), clock.slept[slept:]  # no minute-long wait
        assert ctx.audit is not None and ctx.audit.query(tool="get_list", limit=None) == []
        text = describe_approval(paused.interrupts[0], ctx.config.home / "approvals")
        assert "get_list not read" in text
        # the delete itself still goes through once approved (it waits for its own slot as any call)
        done = run_persona(PERSONA, None, context=ctx, saver=saver, resume={"action": "approve"})
        assert not done.paused and sandbox.store.get("list", lid) is None
    finally:
        sandbox.close()


def test_a_campaign_message_is_named_by_the_label_in_its_definition(sb: Sandbox) -> None:
    kit = KlaviyoToolkit(sb.client(), scopes="*")
    message = {"definition": {"channel": "email", "label": "Boots, first touch", "content": {"subject": "Boots"}}}
    cid = kit.fetch("create_campaign", name="Spring boots", audiences={"included": []},
                    campaign_messages=[message]).data["id"]
    mid = kit.fetch("get_messages_for_campaign", id=cid).data[0]["id"]
    call = kit.prepare("update_campaign_message", {"id": mid, "definition": {
        "channel": "email", "label": "Boots, first touch", "content": {"subject": "Boots are back"}}})
    view = current_view(kit, call.operation, call.args, call.request.describe().get("body"))
    assert view is not None and view["resource"] == f"campaign-message {mid} 'Boots, first touch'"
    assert current_lines(view)[0].startswith(f"as it is now: campaign-message {mid} 'Boots, first touch'")


# -- an upsert with no id: the profile its identifiers find is the one it re-addresses -------------------
def test_an_upsert_by_email_shows_the_profile_whose_external_id_it_replaces_and_rejecting_changes_nothing(
    sb: Sandbox,
) -> None:
    pid = sb.client().call("create_or_update_profile", email="ada@example.com", external_id="crm-ada",
                           first_name="Ada").data["id"]
    ctx, saver, paused = _pause(sb, "create_or_update_profile", {"email": "ada@example.com", "external_id": "evil-1"})
    current = paused.interrupts[0]["current"]
    assert current["resource"] == f"profile {pid} 'ada@example.com'"
    assert {"field": "external_id", "before": "crm-ada", "after": "evil-1", "same": False, "returned": True} in (
        current["changes"]
    )
    text = describe_approval(paused.interrupts[0], ctx.config.home / "approvals")
    assert 'external_id: "crm-ada" → "evil-1"' in text
    run_persona(PERSONA, None, context=ctx, saver=saver, resume={"action": "reject", "reason": "no"})
    assert sb.store.get("profile", pid).attributes["external_id"] == "crm-ada"


def test_an_upsert_finds_its_profile_by_phone_when_no_profile_has_the_email(sb: Sandbox) -> None:
    pid = sb.client().call("create_profile", phone_number="+15005550006", first_name="Ada").data["id"]
    args = {"email": "mallory@evil.test", "phone_number": "+15005550006"}
    _, _, paused = _pause(sb, "create_or_update_profile", args)
    current = paused.interrupts[0]["current"]
    assert current["resource"] == f"profile {pid} '+15005550006'"
    assert {"field": "email", "before": None, "after": "mallory@evil.test", "same": False, "returned": True} in (
        current["changes"]
    )


def test_an_upsert_whose_identifiers_no_profile_has_says_it_makes_a_new_one(sb: Sandbox) -> None:
    _, _, paused = _pause(sb, "create_or_update_profile", {"email": "new@example.com", "external_id": "crm-9"})
    assert paused.interrupts[0]["current"] == {
        "unread": "no profile has email 'new@example.com' or external_id 'crm-9': it makes a new profile"
    }


# -- a bulk consent job names the list or segment it acts on, whichever argument names it ----------------
def test_a_bulk_subscribe_names_the_list_its_profiles_join(sb: Sandbox) -> None:
    lid = sb.client().call("create_list", name="VIP").data["id"]
    profile = {"email": "a@example.com", "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}
    _, _, paused = _pause(sb, "bulk_subscribe_profiles", {"list_id": lid, "profiles": [profile]})
    current = paused.interrupts[0]["current"]
    assert current["resource"] == f"list {lid} 'VIP'" and current["fields"]["profile_count"] == 0


@pytest.mark.parametrize("tool", ["bulk_suppress_profiles", "bulk_unsuppress_profiles"])
def test_a_bulk_suppression_of_a_segment_names_the_segment_and_how_many_it_holds(sb: Sandbox, tool: str) -> None:
    kl = sb.client()
    for n in range(3):
        kl.call("create_profile", email=f"m{n}@example.com", properties={"tier": "gold"})
    condition = {"type": "profile-property", "property": "properties['tier']",
                 "filter": {"type": "string", "operator": "equals", "value": "gold"}}
    seg = kl.call("create_segment", name="Gold", definition={"condition_groups": [{"conditions": [condition]}]})
    sid = seg.data["id"]
    ctx, _, paused = _pause(sb, tool, {"segment_id": sid})
    current = paused.interrupts[0]["current"]
    assert current["resource"] == f"segment {sid} 'Gold'" and current["read_with"] == "get_segment"
    assert "profile_count" in current["fields"]
    text = describe_approval(paused.interrupts[0], ctx.config.home / "approvals")
    assert f"as it is now: segment {sid} 'Gold' (read with get_segment)" in text
