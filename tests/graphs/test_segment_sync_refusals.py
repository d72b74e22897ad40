"""The segment syncer and rows Klaviyo refuses: none sinks its batch, counts say what Klaviyo took.

Against the in-process sandbox over real HTTP. Where a row must pass every local check and still
be refused (Klaviyo checks more than a client can: blocked domains, addresses it knows bounce), the
client's transport is the sandbox behind :class:`StricterKlaviyo`, which answers a batch holding
such a row as Klaviyo does: a 400 whose JSON:API errors point at each refused item.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver

from graphs.segment_sync import PARTIAL_EXIT, exit_code
from graphs.segment_sync.graph import refused_items
from klaviyo_sandbox import DEMO_KEY, PUBLIC_KEY
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.effects import APPROVAL_EFFECTS
from klaviyo_toolkit.errors import BadRequestError, InvalidArgumentError
from klaviyo_toolkit.ratelimit import RateLimiter
from personas.kernel.context import PersonaContext
from personas.kernel.spec import ApprovalPolicy
from personas.runtime import build_context
from personas.runtime.loader import load_persona

from .test_segment_sync import WRITES, World, run, write_csv

PATHS = {  # the write each kind of batch makes: (method, path ending, where its items sit)
    "bulk_subscribe_profiles": ("POST", "/profile-subscription-bulk-create-jobs", "profiles"),
    "bulk_import_profiles": ("POST", "/profile-bulk-import-jobs", "profiles"),
    "add_profiles_to_list": ("POST", "/relationships/profiles", "data"),
}
DETAIL = "Klaviyo will not take {who}: the address is on the account's block list."


class StricterKlaviyo(httpx.BaseTransport):
    """The sandbox, except that ``operation`` refuses the profiles in ``refuse`` (emails or ids).

    ``style`` says how: ``all`` (one 400 listing every refused item, as Klaviyo does), ``first``
    (one item per answer, as the sandbox does), or a 400 that names no item: ``data`` (pointer
    ``/data``), ``list`` (pointer at the items' array, no index) or ``bare`` (no source at all).
    """

    def __init__(self, inner: httpx.BaseTransport, operation: str, refuse: set[str], style: str) -> None:
        self.inner, self.operation, self.refuse, self.style = inner, operation, refuse, style
        self.refusals = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        method, ending, where = PATHS[self.operation]
        if request.method != method or not request.url.path.rstrip("/").endswith(ending):
            return self.inner.handle_request(request)
        body = json.loads(request.content)
        if where == "profiles":
            items = [(i.get("attributes") or {}).get("email") for i in body["data"]["attributes"]["profiles"]["data"]]
            pointer = "/data/attributes/profiles/data/{i}/attributes/email"
        else:
            items = [i.get("id") for i in body["data"]]
            pointer = "/data/{i}/id"
        bad = [i for i, who in enumerate(items) if who in self.refuse]
        if not bad:
            return self.inner.handle_request(request)
        self.refusals += 1
        if self.style == "first":
            bad = bad[:1]
        errors: list[dict[str, Any]] = []
        for i in bad:
            error: dict[str, Any] = {"id": f"e{i}", "status": 400, "code": "invalid", "title": "Invalid input.",
                                     "detail": DETAIL.format(who=items[i])}
            if self.style in ("all", "first"):
                error["source"] = {"pointer": pointer.format(i=i)}
            elif self.style == "data":
                error["source"] = {"pointer": "/data"}
            elif self.style == "list":
                error["source"] = {"pointer": pointer.split("/{i}")[0]}
            errors.append(error)
            if self.style not in ("all", "first"):
                break
        return httpx.Response(400, json={"errors": errors}, headers={"content-type": "application/vnd.api+json"})


def stricter(world: World, thread: str, transport: StricterKlaviyo, **settings: Any) -> PersonaContext:
    """The shipped persona (every effect of every write waived) on a client whose transport is ``transport``."""
    client = KlaviyoClient(api_key=DEMO_KEY, transport=transport, base_url=world.sb.BASE_URL,
                           public_api_key=PUBLIC_KEY, clock=world.clock,
                           rate_limiter=RateLimiter(world.clock, factor=None))
    client.hooks.append(world.calls.append)
    spec = load_persona("segment-syncer")
    spec = spec.model_copy(update={"approval": ApprovalPolicy(relax={op: sorted(APPROVAL_EFFECTS) for op in WRITES}),
                                   "settings": {**spec.settings, **settings}})
    return build_context(spec, client=client, audit=False, thread_id=thread, clock=world.clock)


def calls(world: World, operation: str) -> int:
    return sum(1 for c in world.calls if c.operation_id == operation and c.final)


def sent_emails(world: World, operation: str) -> list[str]:
    return [p["attributes"]["email"] for body in world.sent(operation)
            for p in body["data"]["attributes"]["profiles"]["data"]]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return World(tmp_path)


# -- the source check is at least as strict as Klaviyo ------------------------------------------------
HOSTILE = [
    ("email", "trailing@example.com."),  # a dot at the end of the domain
    ("email", "double@example..com"),  # an empty domain label
    ("email", "dot@.example.com"),  # a domain that starts with a dot
    ("email", "x" * 65 + "@example.com"),  # 65 characters before the @ (64 at most)
    ("email", "a@" + "b" * 250 + ".com"),  # 256 characters in all (254 at most)
    ("phone_number", "+1\u0665\u0660\u0660\u0665\u0665\u0665\u0660\u0660\u0660\u0668"),  # Arabic-Indic digits
    ("phone_number", "+\uff11\uff15\uff10\uff10\uff15\uff15\uff15\uff10\uff10\uff10\uff16"),  # full-width digits
    ("phone_number", "+1\u096b\u0966\u0966\u096b\u096b\u096b\u0966\u0966\u0966\u096c"),  # Devanagari digits
]


@pytest.mark.parametrize(("field", "value"), HOSTILE, ids=[f"{f}-{i}" for i, (f, _) in enumerate(HOSTILE)])
def test_a_row_klaviyo_would_refuse_is_invalid_and_the_consenting_rows_are_subscribed(
    world: World, field: str, value: str
) -> None:
    list_id = world.new_list("Target")
    hostile = {"email": "hostile@example.com", "phone_number": value} if field == "phone_number" else {"email": value}
    rows = [
        {"email": "good1@example.com", "consent": "yes"},
        {**hostile, "consent": "yes"},
        {"email": "good2@example.com", "consent": "yes"},
        {"email": "nope@example.com", "consent": "no"},
    ]
    path = write_csv(world.home / "hostile.csv", rows, ["email", "phone_number", "consent"])
    world.reset_counts()
    state = run(world.context("hostile"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id})
    result = state.values["result"]
    assert [(r["row"], r["field"], r["by"]) for r in result["invalid"]["rows"]] == [(3, field, "source")]
    assert result["invalid_rows"] == 1 and result["problems"] == [], result["problems"]
    sent = json.dumps([c.body for c in world.calls if c.operation_id in WRITES], ensure_ascii=False)
    assert json.dumps(value, ensure_ascii=False)[1:-1] not in sent and "hostile@" not in sent  # never sent
    assert sorted(sent_emails(world, "bulk_subscribe_profiles")) == ["good1@example.com", "good2@example.com"]
    assert world.sb.call_counts["bulk_subscribe_profiles"] == 1
    assert result["subscribes"]["applied"] == 2 and result["adds"]["applied"] == 3
    assert result["status"] == "partial" and exit_code(state.values) == PARTIAL_EXIT
    world.settle()
    assert world.consent("good1@example.com")["consent"] == "SUBSCRIBED"
    assert world.consent("good2@example.com")["consent"] == "SUBSCRIBED"
    assert world.consent("nope@example.com")["consent"] == "NEVER_SUBSCRIBED"


# -- a batch Klaviyo refuses because of some rows keeps the others -------------------------------------
REFUSALS = [
    ("bulk_subscribe_profiles", "all", (1,)),
    ("bulk_subscribe_profiles", "all", (0, 4)),
    ("bulk_subscribe_profiles", "first", (0, 2, 4)),
    ("bulk_import_profiles", "all", (2,)),
    ("bulk_import_profiles", "first", (1, 3)),
    ("add_profiles_to_list", "all", (1,)),
    ("add_profiles_to_list", "first", (0, 3)),
]


@pytest.mark.parametrize(("operation", "style", "refused"), REFUSALS)
def test_rows_klaviyo_refuses_leave_their_batch_and_the_rest_is_sent_once_more(
    world: World, operation: str, style: str, refused: tuple[int, ...]
) -> None:
    people = [f"p{i}@example.com" for i in range(5)]
    bad = {people[i] for i in refused}
    if operation == "add_profiles_to_list":  # a list source: adds by profile id
        source = world.new_list("Source", people)
        ids = {p["email"]: p["id"] for p in world.client.iterate("get_profiles", page_size=100)}
        target = world.new_list("Target")
        payload: dict[str, Any] = {"source": {"kind": "list", "id": source}, "target_list_id": target}
        transport = StricterKlaviyo(world.sb.transport(), operation, {ids[p] for p in bad}, style)
    else:
        target = world.new_list("Target")
        path = write_csv(world.home / "src.csv", ({"email": p, "consent": "yes"} for p in people), ["email", "consent"])
        payload = {"source": {"kind": "csv", "path": str(path)}, "target_list_id": target}
        transport = StricterKlaviyo(world.sb.transport(), operation, bad, style)
    world.reset_counts()
    state = run(stricter(world, "refusals", transport), payload)
    result = state.values["result"]

    # One more call when Klaviyo lists every bad row; one per bad row when it names one per answer.
    assert calls(world, operation) == (2 if style == "all" else len(refused) + 1)
    assert transport.refusals == calls(world, operation) - 1
    kind = "subscribes" if operation == "bulk_subscribe_profiles" else "adds"
    assert (result[kind]["applied"], result[kind]["refused"], result[kind]["failed"]) == (5 - len(bad), len(bad), 0)
    assert result["problems"] == []
    listed = {r["value"]: r for r in result["invalid"]["rows"]}
    for who in bad:
        row = listed[who]
        assert row["by"] == "klaviyo" and "block list" in row["problem"]  # Klaviyo's reason
        if operation != "add_profiles_to_list":
            assert row["row"] == people.index(who) + 2 and row["field"] == "email"
    assert result["refused_rows"] >= len(bad) and result["invalid"]["count"] >= len(bad)
    assert result["status"] == "partial" and exit_code(state.values) == PARTIAL_EXIT
    assert f"Klaviyo refused {len(bad)} {kind}" in state.values["summary"]
    world.settle()
    if operation == "add_profiles_to_list":
        assert world.members(target) == set(people) - bad
    elif operation == "bulk_import_profiles":
        assert world.members(target) == set(people) - bad
        # an address refused on import is not sent to the subscribe call either (it would be refused again)
        assert sorted(sent_emails(world, "bulk_subscribe_profiles")) == sorted(set(people) - bad)
        assert calls(world, "bulk_subscribe_profiles") == 1 and result["subscribes"]["refused"] == len(bad)
    else:
        for who in people:
            assert world.consent(who)["consent"] == ("NEVER_SUBSCRIBED" if who in bad else "SUBSCRIBED")


@pytest.mark.parametrize("style", ["data", "list", "bare"])
@pytest.mark.parametrize("operation", ["bulk_subscribe_profiles", "bulk_import_profiles"])
def test_an_error_that_names_no_row_fails_the_batch_with_its_reason_and_is_not_split(
    world: World, operation: str, style: str
) -> None:
    people = [f"p{i}@example.com" for i in range(4)]
    target = world.new_list("Target")
    path = write_csv(world.home / "src.csv", ({"email": p, "consent": "yes"} for p in people), ["email", "consent"])
    transport = StricterKlaviyo(world.sb.transport(), operation, {people[2]}, style)
    world.reset_counts()
    state = run(stricter(world, "no-row", transport), {"source": {"kind": "csv", "path": str(path)},
                                                       "target_list_id": target})
    result = state.values["result"]
    assert calls(world, operation) == 1  # the same request would fail whatever subset is sent
    kind = "subscribes" if operation == "bulk_subscribe_profiles" else "adds"
    assert (result[kind]["applied"], result[kind]["failed"], result[kind]["refused"]) == (0, 4, 0)
    assert result["problems"][0]["status"] == "failed" and "block list" in result["problems"][0]["detail"]
    assert result["status"] == "partial" and state.values["outcome"].startswith("partial:")
    assert exit_code(state.values) == PARTIAL_EXIT
    world.settle()
    if operation == "bulk_subscribe_profiles":
        assert all(world.consent(p)["consent"] == "NEVER_SUBSCRIBED" for p in people)


# -- counts are what Klaviyo accepted, on every run -------------------------------------------------------
def test_a_rerun_does_not_count_rows_an_import_job_refused_as_added(world: World) -> None:
    list_id = world.new_list("Target")
    world.client.call("create_profile", email="owner@example.com")
    world.client.call("create_profile", phone_number="+15005550006")  # another profile owns this phone
    rows = [
        {"email": "owner@example.com", "phone_number": "+15005550006"},  # the import job refuses it
        {"email": "fine@example.com", "phone_number": ""},
    ]
    path = write_csv(world.home / "conflict.csv", rows, ["email", "phone_number"])
    payload = {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id}
    first = run(world.context("first"), payload).values
    second = run(world.context("second"), payload).values
    for state, added in ((first, 1), (second, 0)):
        result = state["result"]
        assert (result["adds"]["applied"], result["adds"]["refused"]) == (added, 1)
        assert state["summary"].startswith(f"Sync partial: added {added} profiles")
        assert [(r["row"], r["value"], r["by"]) for r in result["invalid"]["rows"]] == [
            (2, "owner@example.com", "klaviyo")
        ]
        assert exit_code(state) == PARTIAL_EXIT
    world.settle()
    assert world.members(list_id) == {"fine@example.com"}


def test_only_a_sync_that_did_everything_exits_zero(world: World) -> None:
    list_id = world.new_list("Target")
    good = write_csv(world.home / "good.csv", [{"email": "a@example.com"}], ["email"])
    done = run(world.context("done"), {"source": {"kind": "csv", "path": str(good)}, "target_list_id": list_id})
    assert done.values["result"]["status"] == "done" and exit_code(done.values) == 0
    assert done.values["outcome"].startswith("done: added 1")
    mixed = write_csv(world.home / "mixed.csv", [{"email": "b@example.com"}, {"email": "b@example..com"}], ["email"])
    partial = run(world.context("partial"), {"source": {"kind": "csv", "path": str(mixed)}, "target_list_id": list_id})
    assert partial.values["result"]["status"] == "partial" and exit_code(partial.values) == PARTIAL_EXIT != 0
    dry = run(world.context("dry"), {"source": {"kind": "csv", "path": str(mixed)}, "target_list_id": list_id,
                                     "dry_run": True})
    assert dry.values["result"]["status"] == "dry_run" and exit_code(dry.values) == 0


# -- where an error points ----------------------------------------------------------------------------------
def _api_error(*pointers: str | None) -> BadRequestError:
    errors = [{"detail": f"bad {i}", **({"source": {"pointer": p}} if p else {})} for i, p in enumerate(pointers)]
    return BadRequestError(400, detail="bad 0", source=errors[0].get("source"), errors=errors)


@pytest.mark.parametrize(
    ("kind", "error", "expected"),
    [
        ("subscribe", _api_error("/data/attributes/profiles/data/3/attributes/email"), {3: ("email", "bad 0")}),
        ("import", _api_error("/data/attributes/profiles/data/0/attributes/phone_number",
                              "/data/attributes/profiles/data/2/attributes/email"),
         {0: ("phone_number", "bad 0"), 2: ("email", "bad 1")}),
        ("subscribe", _api_error("/data/attributes/profiles/data/1/attributes/subscriptions/email/marketing"),
         {1: ("subscriptions", "bad 0")}),
        ("add", _api_error("/data/4/id"), {4: ("id", "bad 0")}),
        ("subscribe", _api_error("/data/attributes/profiles/data/9/attributes/email"), {}),  # beyond the batch
        ("subscribe", _api_error("/data/attributes/profiles/data"), {}),
        ("subscribe", _api_error("/data"), {}),
        ("subscribe", _api_error(None), {}),
        ("add", _api_error("/data/attributes/profiles/data/1/attributes/email"), {}),  # another body's shape
        ("subscribe", InvalidArgumentError("bulk_subscribe_profiles", [("profiles[2].email", "no")]),
         {2: ("email", "no")}),
        ("add", InvalidArgumentError("add_profiles_to_list", [("profile_ids[1]", "empty")]), {1: (None, "empty")}),
        ("import", InvalidArgumentError("bulk_import_profiles", [("list_ids", "bad")]), {}),
    ],
)
def test_refused_items_reads_the_rows_an_error_points_at(kind: str, error: Exception, expected: dict[int, Any]) -> None:
    assert refused_items(kind, error, 5) == expected


def test_a_mirror_sync_keeps_a_member_whose_source_row_is_invalid_for_another_field(world: World) -> None:
    """bo's row has a phone number with a typo: the row is reported invalid, but bo is still in the
    source by email, so mirroring does not remove bo from the list (only cy, who is not in it)."""
    list_id = world.new_list("Club", ["ann@example.com", "bo@example.com", "cy@example.com"])
    rows = [{"email": "ann@example.com", "phone_number": "", "consent": "no"},
            {"email": "bo@example.com", "phone_number": "+1500555ABCD", "consent": "no"}]
    path = write_csv(world.home / "mirror.csv", rows, ["email", "phone_number", "consent"])
    state = run(world.context("mirror-keep", approvals=True), {"source": {"kind": "csv", "path": str(path)},
                                                               "target_list_id": list_id, "mode": "mirror"})
    removal = [i for task in state.tasks for i in task.interrupts]
    assert removal, "the removal of cy waits for approval"
    ids = removal[0].value["args"]["profile_ids"]
    emails = {world.client.call("get_profile", id=pid).data["attributes"]["email"] for pid in ids}
    assert emails == {"cy@example.com"}, emails
    assert world.members(list_id) >= {"bo@example.com"}


def test_a_mirror_sync_keeps_members_an_invalid_row_names_by_phone_or_external_id(world: World) -> None:
    """Rows that name a member by phone number (as written with spaces) or external id only, invalid
    for another field (a consent cell saying "maybe", a name Klaviyo refuses), are still that member:
    mirroring keeps them, and the person another of whose rows is in doubt is not subscribed."""
    list_id = world.client.call("create_list", name="SMS").data["id"]
    world.client.call("bulk_import_profiles", list_ids=[list_id], profiles=[
        {"phone_number": "+15005550006"}, {"email": "kim@example.com", "phone_number": "+15005550008"},
        {"external_id": "crm-9"}, {"email": "gone@example.com"}])
    world.settle()
    rows = [{"email": "", "phone_number": "+1 500 555 0006", "external_id": "", "consent": "maybe"},
            {"email": "", "phone_number": "+15005550008", "external_id": "", "consent": "perhaps"},
            {"email": "kim@example.com", "phone_number": "+15005550008", "external_id": "", "consent": "yes"},
            {"email": "", "phone_number": "", "external_id": "crm-9", "consent": ""}]  # no email, no phone
    path = write_csv(world.home / "sms.csv", rows, ["email", "phone_number", "external_id", "consent"])
    world.reset_counts()
    state = run(world.context("mirror-phones"), {"source": {"kind": "csv", "path": str(path)},
                                                 "target_list_id": list_id, "mode": "mirror"})
    result, plan = state.values["result"], state.values["plan"]
    removed = [pid for body in world.sent("remove_profiles_from_list") for pid in (r["id"] for r in body["data"])]
    gone = world.client.call("get_profiles", filter='equals(email,"gone@example.com")').data[0]["id"]
    assert removed == [gone] and result["removes"]["applied"] == 1
    assert plan["kept_invalid"]["sample"] == ["+15005550006", "crm-9"]  # kim is matched by her valid row
    assert not world.sent("bulk_subscribe_profiles"), "kim's other row is in doubt: not subscribed"
    assert plan["withheld_for_invalid_rows"]["sample"] == ["kim@example.com"]


def test_rows_an_approver_edits_out_of_a_removal_count_as_rejected_not_removed(world: World) -> None:
    """The approver edits the removal batch down to one profile: one is removed, the other is reported
    rejected (by the approver), and the sync is partial."""
    list_id = world.new_list("Club", ["keep@example.com", "gone1@example.com", "gone2@example.com"])
    path = write_csv(world.home / "keep.csv", [{"email": "keep@example.com"}], ["email"])
    ctx = world.context("edit", approvals=True)
    saver = InMemorySaver()
    state = run(ctx, {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id},
                saver=saver)
    [asked] = [i.value for task in state.tasks for i in task.interrupts]
    one = asked["args"]["profile_ids"][:1]
    state = run(ctx, None, saver=saver, resume={"action": "edit", "args": {"profile_ids": one},
                                                 "fingerprint": asked["fingerprint"]})
    [edited] = [i.value for task in state.tasks for i in task.interrupts]
    state = run(ctx, None, saver=saver, resume={"action": "approve", "fingerprint": edited["fingerprint"]})
    removes = state.values["result"]["removes"]
    assert (removes["planned"], removes["applied"], removes["rejected"]) == (2, 1, 1), removes
    assert state.values["result"]["status"] == "partial"
    assert len(world.members(list_id)) == 2


def test_a_target_list_deleted_mid_sync_stops_the_batches_that_name_it(world: World) -> None:
    """Every batch names the target list: once a 404 that points at no row is the list's (one read
    says so), the batches after it are reported not sent, not each sent to fail the same way."""
    from graphs.segment_sync import build_graph

    list_id = world.new_list("Target", ["old@example.com"])
    people = [f"n{i}@example.com" for i in range(2500)]
    path = write_csv(world.home / "src.csv", ({"email": p, "consent": "yes"} for p in people), ["email", "consent"])
    ctx = world.context("deleted")
    graph = build_graph(InMemorySaver())
    config = {"configurable": {"thread_id": "deleted"}, "recursion_limit": 500}
    world.reset_counts()
    for update in graph.stream({"input": {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id}},
                               config, context=ctx, stream_mode="updates"):
        if "apply" in update:  # the first import is sent: the list is deleted in Klaviyo's app
            world.client.call("delete_list", id=list_id)
            break
    graph.invoke(None, config, context=ctx)
    result = graph.get_state(config).values["result"]

    assert world.sb.call_counts["bulk_import_profiles"] == 2  # the first, and the one that found it gone
    assert world.sb.call_counts["bulk_subscribe_profiles"] == 0 and world.sb.call_counts["get_lists"] == 1
    assert result["adds"]["applied"] == 1000 and result["adds"]["failed"] == 1500
    assert result["subscribes"]["failed"] == 2500 and result["status"] == "partial"
    assert any("no longer exists" in str(p["detail"]) for p in result["problems"])


def test_an_edited_removal_is_shown_as_edited_never_under_the_batch_summary_it_replaced(world: World) -> None:
    """The approver edits the removal batch to name one more profile: the request shown again says
    what it now removes (both profiles, read from Klaviyo), not the batch's count, sample and file,
    which still named only the one the sync planned. Before, it showed "removes 1 profile(s)" over a
    body of two."""
    list_id = world.new_list("Club", ["keep@example.com", "gone@example.com"])
    path = write_csv(world.home / "keep.csv", [{"email": "keep@example.com"}], ["email"])
    ctx = world.context("edit-wider", approvals=True)
    saver = InMemorySaver()
    state = run(ctx, {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id},
                saver=saver)
    [asked] = [i.value for task in state.tasks for i in task.interrupts]
    assert asked["details"] and "gone@example.com" in json.dumps(asked["details"])  # the batch, as planned
    keep = world.client.call("get_profiles", filter='equals(email,"keep@example.com")').data[0]["id"]
    wider = [*asked["args"]["profile_ids"], keep]
    state = run(ctx, None, saver=saver, resume={"action": "edit", "args": {"profile_ids": wider},
                                                 "fingerprint": asked["fingerprint"]})
    [edited] = [i.value for task in state.tasks for i in task.interrupts]
    assert edited["args"]["profile_ids"] == wider
    assert edited["details"] is None, f"the planned batch's summary shown over the edited request: {edited['details']}"
    shown = json.dumps(edited["current"])
    assert "keep@example.com" in shown and "gone@example.com" in shown, shown
    assert len(world.members(list_id)) == 2, "nothing removed while it waits"


def test_a_removal_an_approver_widens_or_sends_elsewhere_is_reported_as_sent(world: World) -> None:
    """The approver edits the removal batch to name one more profile, and approves it: the result
    counts both removals (one of them added by the edit, not planned) and says so. Before, it said
    "removed 1" over a request that removed two, since only rows edited *out* were counted. An edit
    that sends the batch to another list is said too, never reported as the target's change."""
    other = world.new_list("Other", ["keep@example.com", "gone@example.com"])
    path = write_csv(world.home / "keep.csv", [{"email": "keep@example.com"}], ["email"])
    keep = world.client.call("get_profiles", filter='equals(email,"keep@example.com")').data[0]["id"]
    for thread, edit in (("wider", {"profile_ids": None}), ("elsewhere", {"id": other})):
        list_id = world.new_list(f"Club {thread}", ["keep@example.com", "gone@example.com"])
        ctx = world.context(thread, approvals=True)
        saver = InMemorySaver()
        state = run(ctx, {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id},
                    saver=saver)  # fmt: skip
        [asked] = [i.value for task in state.tasks for i in task.interrupts]
        args = {k: v if v is not None else [*asked["args"]["profile_ids"], keep] for k, v in edit.items()}
        answer = {"action": "edit", "args": args, "fingerprint": asked["fingerprint"]}
        state = run(ctx, None, saver=saver, resume=answer)
        [edited] = [i.value for task in state.tasks for i in task.interrupts]
        state = run(ctx, None, saver=saver, resume={"action": "approve", "fingerprint": edited["fingerprint"]})
        result, summary = state.values["result"], state.values["summary"]
        [problem] = result["problems"]
        assert problem["status"] == "done" and problem["detail"].startswith("sent as edited by the approver: ")
        if thread == "wider":
            removes = result["removes"]
            assert (removes["planned"], removes["applied"], removes["added_by_approver"]) == (1, 2, 1), removes
            assert "removed 2" in summary and "1 of the removes were added by an approver's edit" in summary
            assert "1 profile(s) not in the plan added" in problem["detail"]
            assert not world.members(list_id)
        else:
            assert f'sent to "{other}", not the target "{list_id}"' in problem["detail"]
            assert len(world.members(other)) == 1 and len(world.members(list_id)) == 2
