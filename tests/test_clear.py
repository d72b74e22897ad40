"""Clearing a field in an update: ``CLEAR`` and ``clear=[...]`` send Klaviyo's ``null``, over real HTTP
(the sandbox's in-process transport); what cannot be cleared is refused before any request, naming the
field; a model gets the ``clear`` argument only when asked; approvals, audit rows and checkpoints hold
the clears as plain data."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit import CLEAR, KlaviyoToolkit
from klaviyo_toolkit._clear import CLEAR_ARG, clearable_paths
from klaviyo_toolkit.audit import AuditContext, AuditLog
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.client import CallRecord, KlaviyoClient
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.effects import Effect
from klaviyo_toolkit.errors import InvalidArgumentError
from klaviyo_toolkit.ratelimit import RateLimiter
from klaviyo_toolkit.tools import Stopped
from klaviyo_toolkit.tools._strict import check_strict_schema
from personas.kernel.governance import AuditGuard, DryRunGuard

pytestmark = pytest.mark.usefixtures("clean_env")
CTX = AuditContext(user="ada", persona="chat", thread_id="t-1")


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock(), validate_responses=True)
    yield sandbox
    sandbox.close()


@pytest.fixture
def sent(sb: Sandbox) -> list[CallRecord]:
    return []


@pytest.fixture
def client(sb: Sandbox, sent: list[CallRecord]) -> KlaviyoClient:
    return sb.client(rate_limiter=RateLimiter(factor=None), hooks=[sent.append])


@pytest.fixture
def pid(client: KlaviyoClient) -> str:
    made = client.call("create_profile", email="ann@example.com", phone_number="+15005550006", first_name="Ann",
                       last_name="Lee", title="Buyer", location={"city": "Oslo", "zip": "0150", "country": "NO"})
    return str(made.data["id"])


def attributes(client: KlaviyoClient, pid: str) -> dict[str, Any]:
    return dict(client.call("get_profile", id=pid).data["attributes"])


# -- code callers ----------------------------------------------------------------------------------
def test_clear_sends_null_and_klaviyo_clears_the_field(client: KlaviyoClient, pid: str,
                                                       sent: list[CallRecord]) -> None:
    client.call("update_profile", id=pid, last_name=CLEAR, title="Lead buyer", location={"city": CLEAR})
    assert sent[-1].body["data"]["attributes"] == {"last_name": None, "title": "Lead buyer",
                                                   "location": {"city": None}}
    now = attributes(client, pid)
    assert now["last_name"] is None and now["title"] == "Lead buyer" and now["first_name"] == "Ann"
    assert now["location"]["city"] is None and now["location"]["zip"] == "0150"  # only the field named


def test_the_clear_list_is_the_same_request(client: KlaviyoClient, pid: str) -> None:
    by_sentinel = client.prepare("update_profile", {"id": pid, "phone_number": CLEAR, "location": {"zip": CLEAR}})
    by_list = client.prepare("update_profile", {"id": pid, CLEAR_ARG: ["location.zip", "phone_number"]})
    assert by_sentinel.json_body == by_list.json_body
    assert by_list.cleared == ("location.zip", "phone_number")
    client.call("update_profile", id=pid, clear=["phone_number", "location.zip"])
    now = attributes(client, pid)
    assert now["phone_number"] is None and now["location"]["zip"] is None and now["location"]["city"] == "Oslo"


def test_clearing_inside_an_object_given_keeps_the_rest_of_it(client: KlaviyoClient, pid: str) -> None:
    client.call("update_profile", id=pid, location={"city": "Bergen", "zip": CLEAR})
    location = attributes(client, pid)["location"]
    assert (location["city"], location["zip"], location["country"]) == ("Bergen", None, "NO")


def test_every_update_that_can_clear_sends_null_where_it_is_named(client: KlaviyoClient) -> None:
    ops = [op for op in load_catalog() if clearable_paths(op)]
    assert {op.method for op in ops} == {"PATCH"}
    assert len(ops) >= 15  # profiles, campaigns, catalogs, coupons, lists, segments, templates, webhooks ...
    for op in ops:
        for path in clearable_paths(op):
            wires = _wires(op.args, path.split("."))
            if wires is None:  # inside an object with required fields: given whole (refused below)
                continue
            place = client.prepare(op, {"id": "X1", CLEAR_ARG: [path]}).json_body["data"]["attributes"]
            for wire in wires[:-1]:
                place = place[wire]
            assert place == {wires[-1]: None}, (op.operation_id, path)


def _wires(fields: list[dict[str, Any]], names: list[str]) -> list[str] | None:
    """The wire names along a dotted path; None when an object on it has required fields."""
    field = next(f for f in fields if f["name"] == names[0])
    if len(names) == 1:
        return [field["wire"]]
    inner = field["shape"]["fields"]
    if any(f.get("required") for f in inner):
        return None
    rest = _wires(inner, names[1:])
    return None if rest is None else [field["wire"], *rest]


def test_no_operation_has_an_argument_of_its_own_named_clear() -> None:
    for op in load_catalog(include_beta=True):
        assert CLEAR_ARG not in {a["name"] for a in op.args}, op.operation_id
        assert not clearable_paths(op) or op.method == "PATCH"


@pytest.mark.parametrize(("operation", "args", "field", "says"), [
    ("update_profile", {"id": CLEAR}, "id", "path parameter"),
    ("update_profile", {"id": "P1", "patch_properties": CLEAR}, "patch_properties", "meta"),
    ("update_profile", {"id": "P1", "properties": {"plan": CLEAR}}, "properties.plan",
     "patch_properties={'unset': ['plan']}"),
    ("update_profile", {"id": "P1", "last_name": "Lee", "clear": ["last_name"]}, "last_name", "both given"),
    ("update_profile", {"id": "P1", "clear": ["location", "location.city"]}, "location.city", "cleared whole"),
    ("update_profile", {"id": "P1", "clear": "last_name"}, "clear", "list of field names"),
    ("update_profile", {"id": "P1", "clear": ["nickname"]}, "nickname", "last_name"),
    ("create_profile", {"email": "a@example.com", "last_name": CLEAR}, "last_name", "only updates (PATCH)"),
    # deep inside a create: found once validation fails (a create's arguments are not walked for it)
    ("create_profile", {"email": "a@example.com", "location": {"city": CLEAR}}, "location.city", "only updates"),
    ("create_profile", {"email": "a@example.com", "properties": {"x": CLEAR}}, "properties.x", "only updates"),
    ("bulk_import_profiles", {"profiles": [{"email": "a@example.com", "last_name": CLEAR}]},
     "profiles[0].last_name", "inside a list"),
    ("get_profiles", {"clear": ["email"]}, "email", "only updates (PATCH)"),
    ("update_tag", {"id": "T1", "name": CLEAR}, "name", "required"),
    ("update_flow", {"id": "F1", "status": CLEAR}, "status", "required"),
    ("update_campaign", {"id": "C1", "name": CLEAR}, "name", "always has a value"),
    ("update_image", {"id": "I1", "hidden": CLEAR}, "hidden", "always has a value"),
    ("update_webhook", {"id": "W1", "webhook_topic_ids": CLEAR}, "webhook_topic_ids", "relationship"),
    ("update_campaign", {"id": "C1", "audiences": {"included": [CLEAR]}}, "audiences.included[0]", "inside a list"),
    ("update_template", {"id": "T1", "clear": ["definition.id"]}, "definition.id", "needs body, styles"),
])
def test_what_cannot_be_cleared_is_refused_before_any_request(
    client: KlaviyoClient, sb: Sandbox, operation: str, args: dict[str, Any], field: str, says: str
) -> None:
    calls = sum(sb.call_counts.values())
    with pytest.raises(InvalidArgumentError) as refused:
        client.call(operation, **args)
    assert field in refused.value.fields
    assert says in dict(refused.value.problems)[field]
    assert sum(sb.call_counts.values()) == calls  # nothing was sent


def test_clear_is_one_value_through_copies_and_pickles() -> None:
    assert copy.copy(CLEAR) is CLEAR and copy.deepcopy({"a": CLEAR})["a"] is CLEAR
    assert pickle.loads(pickle.dumps(CLEAR)) is CLEAR and repr(CLEAR) == "CLEAR"


# -- models ----------------------------------------------------------------------------------------
def test_models_clear_a_field_with_the_clear_argument(client: KlaviyoClient, pid: str) -> None:
    plain = KlaviyoToolkit(client, scopes="*", clear_argument=False).tool("update_profile")
    assert CLEAR_ARG not in plain.tool_call_schema["properties"]  # asked away: the schema without it
    kit = KlaviyoToolkit(client, scopes="*")  # on by default
    tool = kit.tool("update_profile")
    offered = tool.tool_call_schema["properties"][CLEAR_ARG]
    assert offered["type"] == ["array", "null"] and "last_name" in offered["items"]["enum"]
    assert "location.city" in offered["items"]["enum"] and "id" not in offered["items"]["enum"]
    args: dict[str, Any] = dict.fromkeys(tool.tool_call_schema["properties"])  # strict mode: every field, null
    args.update(id=pid, clear=["last_name", "location.city"])
    tool.invoke({"type": "tool_call", "id": "c1", "name": tool.name, "args": args})
    now = attributes(client, pid)
    assert now["last_name"] is None and now["location"]["city"] is None and now["first_name"] == "Ann"
    refused = tool.invoke({"type": "tool_call", "id": "c2", "name": tool.name, "args": {**args, "clear": ["id"]}})
    assert str(refused.content).startswith("Error:") and "clear" in str(refused.content)
    assert CLEAR_ARG not in kit.tool("get_profile").tool_call_schema["properties"]


def test_every_update_tool_with_clear_passes_strict_mode(client: KlaviyoClient) -> None:
    kit = KlaviyoToolkit(client, scopes="*", clear_argument=True, include_beta=True)
    updates = [op for op in kit.catalog if clearable_paths(op)]
    for op in updates:
        definition = convert_to_openai_tool(kit.tool(op.operation_id), strict=True)["function"]["parameters"]
        items = definition["properties"][CLEAR_ARG]["items"]
        assert items.get("enum", [items.get("const")]) == list(clearable_paths(op))  # one name: a const
        assert check_strict_schema(definition) == [], op.operation_id


# -- what is kept of a call ---------------------------------------------------------------------------
def test_a_call_keeps_its_clears_as_plain_data_that_prepares_the_same_request(client: KlaviyoClient,
                                                                                pid: str) -> None:
    kit = KlaviyoToolkit(client, scopes="*")
    call = kit.prepare("update_profile", {"id": pid, "last_name": CLEAR, "location": {"city": CLEAR}})
    assert call.args == {"id": pid, "clear": ["last_name", "location.city"]}
    again = kit.prepare("update_profile", call.args)
    assert again.request.json_body == call.request.json_body and again.fingerprint == call.fingerprint
    serde = JsonPlusSerializer()  # what a LangGraph checkpoint stores of an approval's payload
    payload = {"args": dict(call.args), "request": call.request.describe()}
    assert serde.loads_typed(serde.dumps_typed(payload)) == payload
    assert payload["request"]["body"]["data"]["attributes"]["last_name"] is None


def test_clearing_an_identifier_or_opt_in_is_an_effect_to_approve(client: KlaviyoClient, pid: str) -> None:
    kit = KlaviyoToolkit(client, scopes="*")
    assert Effect.IDENTITY in kit.prepare("update_profile", {"id": pid, "email": CLEAR}).effects
    assert Effect.IDENTITY in kit.prepare("update_profile", {"id": pid, "clear": ["phone_number"]}).effects
    assert Effect.IDENTITY not in kit.prepare("update_profile", {"id": pid, "title": CLEAR}).effects
    assert Effect.CONSENT in kit.prepare("update_list", {"id": "L1", "opt_in_process": CLEAR}).effects


def test_audit_rows_record_clears_readably(client: KlaviyoClient, pid: str, tmp_path: Path) -> None:
    with AuditLog(tmp_path / "audit.db") as log:
        kit = KlaviyoToolkit(client, scopes="*")
        kit.guarded(AuditGuard(log, lambda: CTX)).run("update_profile", id=pid, last_name=CLEAR)
        stopped = kit.guarded(AuditGuard(log, lambda: CTX), DryRunGuard()).run("update_profile", id=pid, title=CLEAR)
        assert isinstance(stopped, Stopped) and '"title": null' in stopped.reason
        log.record("update_profile", "ok", context=CTX, arguments={"id": pid, "first_name": CLEAR})
        rows = [row.arguments for row in reversed(log.query(tool="update_profile"))]  # oldest first
    sent, dry_run, recorded = rows
    assert sent["body"]["data"]["attributes"] == {"last_name": None}  # the request as sent: null
    assert dry_run == {"id": pid, "clear": ["title"]}  # the call's arguments: the fields it clears
    assert recorded == {"id": pid, "first_name": None}  # CLEAR handed to the log as is: null, as it is sent


def test_json_of_a_prepared_call_never_meets_clear(client: KlaviyoClient, pid: str) -> None:
    call = KlaviyoToolkit(client, scopes="*").prepare("update_profile", {"id": pid, "image": CLEAR})
    assert json.loads(json.dumps(call.args)) == {"id": pid, "clear": ["image"]}
    assert json.loads(json.dumps(call.request.describe()))["body"]["data"]["attributes"] == {"image": None}
