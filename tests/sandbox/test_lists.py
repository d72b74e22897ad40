"""Sandbox lists and segments: membership, joined_group_at, profile counts and segment evaluation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_sandbox._store import Resource
from klaviyo_sandbox.domains._common import find_or_create_metric, record_event
from klaviyo_toolkit.clock import ManualClock

Json = dict[str, Any]
DAY = 86400.0


def error(response: httpx.Response) -> Json:
    return response.json()["errors"][0]  # type: ignore[no-any-return]


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def people(client: Any, *emails: str, **attrs: Any) -> list[str]:
    return [client.call("create_profile", email=e, **attrs).data["id"] for e in emails]


def ids(response: Any) -> list[str]:
    return [item["id"] for item in response.data]


def definition(*groups: list[Json]) -> Json:
    return {"condition_groups": [{"conditions": conditions} for conditions in groups]}


def prop(name: str, filt: Json) -> Json:
    return {"type": "profile-property", "property": name, "filter": filt}


def segment(client: Any, *groups: list[Json], name: str = "Seg") -> str:
    return client.call("create_segment", name=name, definition=definition(*groups)).data["id"]  # type: ignore[no-any-return]


# -- lists -------------------------------------------------------------------------------------------------
def test_create_update_delete_list(client: Any, raw: httpx.Client) -> None:
    created = client.call("create_list", name="Newsletter")
    assert created.status == 201 and created.data["attributes"]["opt_in_process"] == "single_opt_in"
    lid = created.data["id"]
    assert client.call("update_list", id=lid, name="Weekly").data["attributes"]["name"] == "Weekly"
    assert ids(client.call("get_lists", filter="equals(name,'Weekly')")) == [lid]
    nameless = raw.post("/api/lists", json={"data": {"type": "list", "attributes": {}}})
    assert nameless.status_code == 400 and "name" in error(nameless)["detail"]
    blank = raw.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": "  "}}})
    assert blank.status_code == 400 and error(blank)["source"]["pointer"] == "/data/attributes/name"
    assert raw.delete(f"/api/lists/{lid}").status_code == 204
    assert raw.get(f"/api/lists/{lid}").status_code == 404


def test_add_and_remove_members_announce_once_and_keep_consent(client: Any,
                                                                added_to_list: list[tuple[str, str]]) -> None:
    a, b = people(client, "a@example.com", "b@example.com")
    lid = client.call("create_list", name="L").data["id"]
    client.call("add_profiles_to_list", id=lid, profile_ids=[a, b])
    client.call("add_profiles_to_list", id=lid, profile_ids=[a])  # already a member: no second announcement
    assert added_to_list == [(lid, a), (lid, b)]
    assert sorted(ids(client.call("get_profiles_for_list", id=lid))) == sorted([a, b])
    client.call("remove_profiles_from_list", id=lid, profile_ids=[a])
    assert ids(client.call("get_profiles_for_list", id=lid)) == [b]
    assert ids(client.call("get_lists_for_profile", id=a)) == []
    assert ids(client.call("get_list_ids_for_profile", id=b)) == [lid]
    subs = client.call("get_profile", id=b, additional_fields_profile=["subscriptions"]).data["attributes"]
    assert subs["subscriptions"]["email"]["marketing"]["consent"] == "NEVER_SUBSCRIBED"


def test_membership_call_limits_and_unknown_profiles(client: Any, raw: httpx.Client) -> None:
    (a,) = people(client, "only@example.com")
    lid = client.call("create_list", name="L").data["id"]
    path = f"/api/lists/{lid}/relationships/profiles"
    unknown = raw.post(path, json={"data": [{"type": "profile", "id": a}, {"type": "profile", "id": "01NOPE"}]})
    assert unknown.status_code == 404 and error(unknown)["source"]["pointer"] == "/data/1/id"
    assert ids(client.call("get_profiles_for_list", id=lid)) == []  # all or nothing
    too_many = {"data": [{"type": "profile", "id": f"p{i}"} for i in range(1001)]}
    for method in ("POST", "DELETE"):
        res = raw.request(method, path, json=too_many)
        assert res.status_code == 400 and "1000" in error(res)["detail"]
    assert raw.post("/api/lists/NoSuch/relationships/profiles", json={"data": []}).status_code == 404


def test_joined_group_at_filters_sorts_and_pages(client: Any, clock: ManualClock, raw: httpx.Client) -> None:
    lid = client.call("create_list", name="L").data["id"]
    pids = people(client, *(f"m{i}@example.com" for i in range(5)))
    start = clock.time()
    for pid in pids:
        client.call("add_profiles_to_list", id=lid, profile_ids=[pid])
        clock.advance(DAY)
    members = client.call("get_profiles_for_list", id=lid, sort="-joined_group_at").data
    assert [m["id"] for m in members] == pids[::-1]
    assert members[-1]["attributes"]["joined_group_at"].startswith(iso(start)[:19])
    since = f"greater-or-equal(joined_group_at,{iso(start + 3 * DAY)})"
    later = client.call("get_profiles_for_list", id=lid, filter=since)
    assert ids(later) == pids[3:]
    page = raw.get(f"/api/lists/{lid}/relationships/profiles",
                   params={"page[size]": "2", "filter": f"less-than(joined_group_at,{iso(start + 4 * DAY)})"}).json()
    assert [d["id"] for d in page["data"]] == pids[:2] and all(d["type"] == "profile" for d in page["data"])
    rest = raw.get(page["links"]["next"]).json()
    assert [d["id"] for d in rest["data"]] == pids[2:4] and "next" not in rest["links"]
    by_email = client.call("get_profile_ids_for_list", id=lid, filter="equals(email,'m1@example.com')")
    assert ids(by_email) == [pids[1]]


def test_profile_count_only_when_asked(client: Any) -> None:
    lid = client.call("create_list", name="L").data["id"]
    client.call("add_profiles_to_list", id=lid, profile_ids=people(client, "x@example.com", "y@example.com"))
    assert "profile_count" not in client.call("get_list", id=lid).data["attributes"]
    counted = client.call("get_list", id=lid, additional_fields_list=["profile_count"]).data["attributes"]
    assert counted["profile_count"] == 2


def test_profile_includes_its_lists_and_segments(client: Any) -> None:
    (pid,) = people(client, "inc@example.com", first_name="Inc")
    lid = client.call("create_list", name="L").data["id"]
    client.call("add_profiles_to_list", id=lid, profile_ids=[pid])
    sid = segment(client, [prop("first_name", {"type": "string", "operator": "equals", "value": "Inc"})])
    res = client.call("get_profile", id=pid, include=["lists", "segments"])
    rels = res.data["relationships"]
    assert rels["lists"]["data"] == [{"type": "list", "id": lid}]
    assert rels["segments"]["data"] == [{"type": "segment", "id": sid}]
    assert sorted(i["type"] for i in res.body["included"]) == ["list", "segment"]


# -- segments ----------------------------------------------------------------------------------------------
def test_segment_membership_follows_profile_properties(client: Any) -> None:
    gold, silver, none = people(client, "g@example.com", "s@example.com", "n@example.com")
    client.call("update_profile", id=gold, properties={"tier": "gold", "spend": 900}, location={"city": "Boston"})
    client.call("update_profile", id=silver, properties={"tier": "silver", "spend": 120})
    created = client.call("create_segment", name="Big spenders", definition=definition(
        [prop("properties['spend']", {"type": "numeric", "operator": "greater-than", "value": 500}),
         prop("location['city']", {"type": "string", "operator": "equals", "value": "Paris"})]))
    assert created.status == 201
    attrs = created.data["attributes"]
    assert (attrs["is_active"], attrs["is_processing"], attrs["is_starred"]) == (True, False, False)
    sid = created.data["id"]
    assert ids(client.call("get_profiles_for_segment", id=sid)) == [gold]
    client.call("update_profile", id=silver, properties={"spend": 501})
    assert sorted(ids(client.call("get_profile_ids_for_segment", id=sid))) == sorted([gold, silver])
    assert client.call("get_segment", id=sid, additional_fields_segment=["profile_count"]).data["attributes"][
        "profile_count"] == 2
    assert ids(client.call("get_segments_for_profile", id=gold)) == [sid]
    assert ids(client.call("get_segment_ids_for_profile", id=none)) == []
    client.call("update_segment", id=sid, definition=definition(
        [prop("tier", {"type": "string", "operator": "in", "value": ["gold"]})],
        [prop("properties['spend']", {"type": "existence", "operator": "is-set"})]))
    assert ids(client.call("get_profiles_for_segment", id=sid)) == [gold]


@pytest.mark.parametrize(("filt", "expected"), [
    ({"type": "string", "operator": "contains", "value": "ann"}, ["joann"]),
    ({"type": "string", "operator": "not-equals", "value": "joann"}, ["bob"]),
    ({"type": "string", "operator": "regex", "value": "^b"}, ["bob"]),
    ({"type": "boolean", "operator": "equals", "value": True}, ["joann"]),
    ({"type": "list", "operator": "contains", "value": "hiking"}, ["bob"]),
    ({"type": "list", "operator": "length-greater-than", "value": 1}, ["bob"]),
    ({"type": "existence", "operator": "not-set"}, ["nobody"]),
])
def test_property_filters(client: Any, filt: Json, expected: list[str]) -> None:
    values = {"joann": {"nick": "joann", "vip": True, "likes": ["running"]},
              "bob": {"nick": "bob", "vip": "false", "likes": ["hiking", "camping"]}, "nobody": {}}
    who = {client.call("create_profile", email=f"{k}@example.com", properties=v).data["id"]: k
           for k, v in values.items()}
    field = {"string": "nick", "boolean": "vip", "list": "likes", "existence": "nick"}[filt["type"]]
    sid = segment(client, [prop(field, filt)])
    assert sorted(who[i] for i in ids(client.call("get_profiles_for_segment", id=sid))) == expected


def test_group_membership_and_consent_conditions(client: Any, sb: Sandbox, clock: ManualClock) -> None:
    a, b, c = people(client, "a@example.com", "b@example.com", "c@example.com")
    lid = client.call("create_list", name="Leads").data["id"]
    client.call("add_profiles_to_list", id=lid, profile_ids=[a, b])
    in_list = segment(client, [{"type": "profile-group-membership", "is_member": True, "group_ids": [lid]}])
    outside = segment(client, [{"type": "profile-group-membership", "is_member": False, "group_ids": [lid]}])
    assert sorted(ids(client.call("get_profiles_for_segment", id=in_list))) == sorted([a, b])
    assert ids(client.call("get_profiles_for_segment", id=outside)) == [c]
    client.call("bulk_subscribe_profiles", profiles=[{"email": "b@example.com", "subscriptions": {
        "email": {"marketing": {"consent": "SUBSCRIBED"}}}}])
    clock.advance(5)
    sb.tick()
    reachable = {"type": "profile-marketing-consent", "consent": {
        "channel": "email", "can_receive_marketing": True, "consent_status": {"subscription": "any"}}}
    never = {"type": "profile-marketing-consent", "consent": {
        "channel": "email", "can_receive_marketing": True, "consent_status": {"subscription": "never_subscribed",
                                                                               "filters": []}}}
    subscribed = {"type": "profile-marketing-consent", "consent": {
        "channel": "email", "can_receive_marketing": True, "consent_status": {"subscription": "subscribed"}}}
    # groups are ANDed: in the list AND can receive email (never-subscribed profiles have implied consent)
    both = segment(client, [{"type": "profile-group-membership", "is_member": True, "group_ids": [in_list]}],
                   [reachable])
    assert sorted(ids(client.call("get_profiles_for_segment", id=both))) == sorted([a, b])
    opted_in = segment(client, [{"type": "profile-group-membership", "is_member": True, "group_ids": [in_list]}],
                       [subscribed])
    assert ids(client.call("get_profiles_for_segment", id=opted_in)) == [b]
    assert sorted(ids(client.call("get_profiles_for_segment", id=segment(client, [never])))) == sorted([a, c])


def test_metric_condition_counts_events_in_a_window(client: Any, sb: Sandbox, clock: ManualClock) -> None:
    buyer, browser = people(client, "buyer@example.com", "browser@example.com")
    metric = find_or_create_metric(sb.services, "Placed Order", clock.time())
    buyer_res = sb.store.get("profile", buyer)
    assert buyer_res is not None
    for n, total in enumerate((40.0, 60.0)):
        record_event(sb.services, buyer_res, metric, {"$value": total, "Category": "boots"}, clock.time() - n * DAY,
                     unique_id=f"o{n}")
    recent = {"type": "date", "operator": "in-the-last", "quantity": 30, "unit": "day"}

    def metric_cond(measurement: str, op: str, value: float, **extra: Any) -> Json:
        return {"type": "profile-metric", "metric_id": metric.id, "measurement": measurement,
                "measurement_filter": {"type": "numeric", "operator": op, "value": value},
                "timeframe_filter": recent, **extra}

    repeat = segment(client, [metric_cond("count", "greater-than-or-equal", 2)])
    big = segment(client, [metric_cond("sum", "greater-than", 90)])
    never = segment(client, [metric_cond("count", "equals", 0)])
    boots = segment(client, [metric_cond("count", "greater-than", 0, metric_filters=[
        {"property": "Category", "filter": {"type": "string", "operator": "equals", "value": "boots"}}])])
    for sid, expected in ((repeat, [buyer]), (big, [buyer]), (never, [browser]), (boots, [buyer])):
        assert ids(client.call("get_profiles_for_segment", id=sid)) == expected
    clock.advance(30 * DAY + 60)  # the orders age out of the window
    assert ids(client.call("get_profiles_for_segment", id=repeat)) == []
    assert sorted(ids(client.call("get_profiles_for_segment", id=never))) == sorted([buyer, browser])


def test_joined_group_at_is_when_a_profile_entered(client: Any, clock: ManualClock) -> None:
    (pid,) = people(client, "late@example.com")
    sid = segment(client, [prop("plan", {"type": "string", "operator": "equals", "value": "pro"})])
    clock.advance(DAY)
    client.call("update_profile", id=pid, properties={"plan": "pro"})
    member = client.call("get_profiles_for_segment", id=sid).data[0]
    assert member["attributes"]["joined_group_at"].startswith(iso(clock.time())[:19])
    clock.advance(DAY)
    assert ids(client.call("get_profiles_for_segment", id=sid,
                           filter=f"less-than(joined_group_at,{iso(clock.time())})")) == [pid]


def test_unevaluated_conditions_fall_back_to_stored_members(client: Any, sb: Sandbox) -> None:
    a, _b = people(client, "eu@example.com", "us@example.com")
    sid = segment(client, [{"type": "profile-region", "in_region": True, "region": "european_union"}])
    assert ids(client.call("get_profiles_for_segment", id=sid)) == []
    seg = sb.store.get("segment", sid)
    assert seg is not None
    seg.private["members"] = [a]
    sb.store.put(seg)
    assert ids(client.call("get_profiles_for_segment", id=sid)) == [a]
    assert ids(client.call("get_segments_for_profile", id=a)) == [sid]


def test_segment_requests_are_checked(client: Any, raw: httpx.Client, sb: Sandbox) -> None:
    sid = segment(client, [prop("plan", {"type": "existence", "operator": "is-set"})])

    def create(defn: Json) -> httpx.Response:
        attrs = {"name": "S", "definition": defn}
        return raw.post("/api/segments", json={"data": {"type": "segment", "attributes": attrs}})

    missing = create(definition([{"type": "profile-group-membership", "is_member": True, "group_ids": ["NoSuch"]}]))
    assert missing.status_code == 400
    where = "/data/attributes/definition/condition_groups/0/conditions/0"
    assert error(missing)["source"]["pointer"] == f"{where}/group_ids"
    no_metric = create(definition([{"type": "profile-metric", "metric_id": "NoSuch", "measurement": "count",
                                    "measurement_filter": {"type": "numeric", "operator": "equals", "value": 1},
                                    "timeframe_filter": {"type": "date", "operator": "alltime"}}]))
    assert error(no_metric)["source"]["pointer"].endswith("/metric_id")
    assert create({"condition_groups": []}).status_code == 400
    bad_regex = create(definition([prop("nick", {"type": "string", "operator": "regex", "value": "(["})]))
    assert bad_regex.status_code == 400 and error(bad_regex)["source"]["pointer"].endswith("/filter/value")
    path = f"/api/segments/{sid}"
    selfref = raw.patch(path, json={"data": {"type": "segment", "id": sid, "attributes": {"definition": definition(
        [{"type": "profile-group-membership", "is_member": True, "group_ids": [sid]}])}}})
    assert selfref.status_code == 400 and "itself" in error(selfref)["detail"]
    mixed = raw.patch(path, json={"data": {"type": "segment", "id": sid,
                                           "attributes": {"is_active": False, "name": "x"}}})
    assert mixed.status_code == 400 and error(mixed)["source"]["pointer"] == "/data/attributes/is_active"
    off = raw.patch(path, json={"data": {"type": "segment", "id": sid, "attributes": {"is_active": False}}})
    assert off.status_code == 200 and off.json()["data"]["attributes"]["is_active"] is False
    assert ids(client.call("get_segments", filter="equals(is_active,false)")) == [sid]


def test_a_segment_is_not_defined_through_itself_by_way_of_other_segments(
    client: Any, raw: httpx.Client, sb: Sandbox
) -> None:
    """A -> B -> C -> A would leave each of them empty; refused like A -> A, pointing at the group id."""
    (pid,) = people(client, "loop@example.com")
    lid = client.call("create_list", name="Loop").data["id"]
    client.call("add_profiles_to_list", id=lid, profile_ids=[pid])

    def member(*gids: str) -> Json:
        return {"type": "profile-group-membership", "is_member": True, "group_ids": list(gids)}

    a = segment(client, [member(lid)], name="A")
    b = segment(client, [member(a)], name="B")
    c = segment(client, [prop("plan", {"type": "existence", "operator": "is-set"}), member(b)], name="C")
    looped = raw.patch(f"/api/segments/{a}", json={"data": {"type": "segment", "id": a, "attributes": {
        "definition": definition([member(lid)], [member(lid, c)])}}})
    assert looped.status_code == 400, looped.text
    where = "/data/attributes/definition/condition_groups/1/conditions/0/group_ids/1"
    assert error(looped)["source"]["pointer"] == where and f"{a} -> {c} -> {b} -> {a}" in error(looped)["detail"]
    assert sb.store.get("segment", a).attributes["definition"] == definition([member(lid)])  # unchanged
    assert ids(client.call("get_profiles_for_segment", id=b)) == [pid]
    # a segment named twice, or reached by two paths, is no loop
    d = segment(client, [member(a, b)], name="D")
    fine = raw.patch(f"/api/segments/{d}", json={"data": {"type": "segment", "id": d, "attributes": {
        "definition": definition([member(a, b)], [member(b)])}}})
    assert fine.status_code == 200, fine.text
    assert ids(client.call("get_profiles_for_segment", id=d)) == [pid]


def test_suppress_every_member_of_a_segment(client: Any, sb: Sandbox, clock: ManualClock) -> None:
    risky, fine = people(client, "risky@example.com", "fine@example.com")
    client.call("update_profile", id=risky, properties={"bounced_before": True})
    sid = segment(client, [prop("bounced_before", {"type": "boolean", "operator": "equals", "value": True})])
    client.call("bulk_suppress_profiles", segment_id=sid)
    clock.advance(5)
    sb.tick()
    reasons = {}
    for pid in (risky, fine):
        subs = client.call("get_profile", id=pid, additional_fields_profile=["subscriptions"]).data["attributes"]
        reasons[pid] = [s["reason"] for s in subs["subscriptions"]["email"]["marketing"]["suppression"]]
    assert reasons == {risky: ["USER_SUPPRESSED"], fine: []}


def test_deleting_a_list_forgets_its_members(client: Any, sb: Sandbox, raw: httpx.Client) -> None:
    (pid,) = people(client, "gone@example.com")
    lid = client.call("create_list", name="Temp").data["id"]
    client.call("add_profiles_to_list", id=lid, profile_ids=[pid])
    assert raw.delete(f"/api/lists/{lid}").status_code == 204
    assert ids(client.call("get_lists_for_profile", id=pid)) == []
    assert isinstance(sb.store.get("profile", pid), Resource)


def test_sweep_minimal_calls_succeed_for_profiles_lists_and_segments(sb: Sandbox) -> None:
    from klaviyo_toolkit.catalog import load_catalog
    from tests.sandbox.sweep import sweep

    client_side = {"create_client_profile", "create_client_subscription", "create_client_push_token",
                   "unregister_client_push_token", "request_profile_deletion"}
    mine = {op.operation_id for op in load_catalog()
            if (op.tag in ("Profiles", "Lists", "Segments") or op.operation_id in client_side)
            and "conversation" not in op.operation_id}  # conversations belong to the messaging domain
    problems = sweep(sb)
    assert {op: problems[op] for op in sorted(mine) if op in problems} == {}
