"""The segment syncer and a double opt-in list: a person asked to confirm is not asked again each run.

Against the in-process sandbox over HTTP. On a double opt-in list Klaviyo answers a subscribe by
emailing a confirmation and leaves the person's consent as it was until they click it; nothing on
the profile says a confirmation is pending. Before, every later sync saw a consenting row "not
subscribed", made a subscribe call, sent one more confirmation email, and reported "subscribed".
"""

from __future__ import annotations

from graphs.segment_sync.report import render

from .test_segment_sync import World, run, world, write_csv

__all__ = ["world"]  # a fixture, used by name

ROWS = [{"email": "ada@example.com", "consent": "yes"}, {"email": "bo@example.com", "consent": "yes"},
        {"email": "cy@example.com", "consent": ""}]


def _confirmations(world: World, email: str) -> int:
    return len([m for m in world.sb.outbox(to=email) if m.get("source") == "double_opt_in"])


def test_a_double_opt_in_list_asks_each_person_once_and_says_who_is_awaiting_confirmation(world: World) -> None:
    list_id = world.client.call("create_list", name="Newsletter", opt_in_process="double_opt_in").data["id"]
    path = write_csv(world.home / "news.csv", ROWS, ["email", "consent"])
    payload = {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id}

    run(world.context("first"), payload)
    world.settle()
    assert len(world.sent("bulk_subscribe_profiles")) == 1
    assert _confirmations(world, "ada@example.com") == _confirmations(world, "bo@example.com") == 1
    assert world.consent("ada@example.com")["consent"] == "NEVER_SUBSCRIBED", "waiting for the click"

    for thread in ("second", "third"):
        world.reset_counts()
        snap = run(world.context(thread), payload)
        world.settle()
        assert [c.operation_id for c in world.calls] == ["get_profiles_for_list"], "nothing to do: one read"
        assert _confirmations(world, "ada@example.com") == 1, "no second confirmation email"
        result = snap.values["result"]
        assert result["subscribes"]["applied"] == 0
        assert result["awaiting_confirmation"] == {"count": 2, "sample": ["ada@example.com", "bo@example.com"]}
        assert "not confirmed yet" in render(snap.values) and "not asked again" in snap.values["summary"]

    world.reset_counts()  # the wait is a setting: 0 asks on every run
    run(world.context("eager", ask_again_after_days=0), payload)
    world.settle()
    assert len(world.sent("bulk_subscribe_profiles")) == 1 and _confirmations(world, "ada@example.com") == 2


def test_a_double_opt_in_list_found_by_name_says_people_were_asked_to_confirm_not_subscribed(world: World) -> None:
    """Its name lookup read the list's opt_in_process (no call more): the outcome says what happened."""
    world.client.call("create_list", name="Newsletter", opt_in_process="double_opt_in")
    path = write_csv(world.home / "news.csv", ROWS, ["email", "consent"])
    snap = run(world.context("named"), {"source": {"kind": "csv", "path": str(path)}, "target": "Newsletter"})
    assert snap.values["result"]["double_opt_in"] is True
    assert "asked to confirm (double opt-in) 2" in snap.values["outcome"], snap.values["outcome"]
    assert "subscribed" not in snap.values["outcome"] and "asked to confirm" in snap.values["summary"]


def test_a_single_opt_in_list_is_unchanged_subscribed_once_then_nothing_to_do(world: World) -> None:
    list_id = world.new_list("VIP")
    path = write_csv(world.home / "vip.csv", ROWS, ["email", "consent"])
    payload = {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id}
    run(world.context("first"), payload)
    world.settle()
    assert world.consent("ada@example.com")["consent"] == "SUBSCRIBED"
    world.reset_counts()
    snap = run(world.context("second"), payload)
    assert [c.operation_id for c in world.calls] == ["get_profiles_for_list"]
    assert snap.values["result"]["already_subscribed"] == 2
    assert snap.values["result"]["awaiting_confirmation"]["count"] == 0


def test_a_single_opt_in_list_named_so_asks_again_whoever_is_still_not_subscribed(world: World) -> None:
    """Nobody waits for a click on a single opt-in list: a person asked before and still not
    subscribed (a job Klaviyo failed, say) is asked again at once, not held for the wait."""
    from graphs.segment_sync.optin import Ledger

    world.client.call("create_list", name="VIP", opt_in_process="single_opt_in")
    list_id = world.client.call("get_lists", filter="equals(name,'VIP')").data[0]["id"]
    ctx = world.context("named")
    Ledger.of(ctx).record(list_id, ["ada@example.com"], ctx.clock.time())  # asked before, never subscribed
    path = write_csv(world.home / "vip.csv", ROWS, ["email", "consent"])
    snap = run(ctx, {"source": {"kind": "csv", "path": str(path)}, "target": "VIP"})
    world.settle()
    assert snap.values["result"]["awaiting_confirmation"]["count"] == 0
    assert world.consent("ada@example.com")["consent"] == "SUBSCRIBED"
