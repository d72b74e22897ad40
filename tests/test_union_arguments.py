"""A union argument (``oneOf``/``anyOf``) that fits none of its branches is refused with the fault of the
branch its value meant, before any request.

pydantic reports every branch's errors and the first said of each field was kept: an sms message
whose content had a ``subject`` came back as "channel: must be 'email'", sending the model to change
the one field that was right. The branch is told by the value's discriminators (``channel``,
``method``, ``type``, ``value``, ``is_local``), then by the fields it gives; a discriminator no branch
takes, or one left out, is itself the error. Checked through the client and through a tool call as a
model makes it, on the in-process sandbox over real HTTP ("nothing sent" means the sandbox logged
no request); and over every union of the catalog.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit import KlaviyoToolkit
from klaviyo_toolkit._arguments import prepare
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import InvalidArgumentError

CAT = load_catalog()
AT = "2030-01-01T00:00:00Z"
EMAIL = {"channel": "email", "content": {"subject": "Trails"}}


@pytest.fixture
def sb() -> Sandbox:
    return Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock())


@pytest.fixture
def list_id(sb: Sandbox) -> str:
    with sb.client() as kl:
        return str(kl.call("create_list", name="Hikers").data["id"])


def refused(sb: Sandbox, operation: str, **args: Any) -> dict[str, str]:
    """The problems (field -> fix) of a call the toolkit refuses; fails if anything reached HTTP."""
    sb.requests.clear()
    with sb.client() as kl, pytest.raises(InvalidArgumentError) as err:
        kl.call(operation, **args)
    assert list(sb.requests) == [], "a refused call must not reach HTTP"
    return dict(err.value.problems)


def campaign(list_id: str, definition: Any = None, **more: Any) -> dict[str, Any]:
    return {"name": "Trails", "audiences": {"included": [list_id]},
            "campaign_messages": [{"definition": definition or EMAIL}], **more}


MESSAGE = "campaign_messages[0].definition"
CASES = [
    # (arguments past the audience, field named, what it says, what it must not say)
    ({"definition": {"channel": "sms", "content": {"subject": "Hi"}}},
     f"{MESSAGE}.content.subject", "is not a field of content when channel is 'sms'; its fields are: body", "'email'"),
    ({"definition": {"channel": "mobile_push", "content": {"title": "Hi"}}},
     f"{MESSAGE}.content.body", "is required when channel is 'mobile_push'", "'email'"),
    ({"definition": {"channel": "text", "content": {"body": "Hi"}}},
     f"{MESSAGE}.channel", "'text' is not a valid channel; use one of: 'email', 'sms', 'mobile_push'", "content"),
    ({"definition": {"content": {"body": "Hi"}}},
     f"{MESSAGE}.channel", "is required; it says which kind of definition this is, one of: 'email', 'sms'", "body"),
    ({"definition": "sms"}, MESSAGE, "must be an object with channel one of: 'email', 'sms'", "Args"),
    ({"send_strategy": {"method": "throttled", "datetime": AT}},
     "send_strategy.throttle_percentage", "is required when method is 'throttled'", "'static'"),
    ({"send_strategy": {"method": "static"}}, "send_strategy.datetime", "is required when method is 'static'",
     "'throttled'"),
    ({"send_strategy": {"method": "smart_send_time", "date": "2030-01-01", "datetime": AT}},
     "send_strategy.datetime", "is not a field of send_strategy when method is 'smart_send_time'", "'static'"),
    ({"send_strategy": {"method": "now"}}, "send_strategy.method",
     "'now' is not a valid method; use one of: 'static', 'throttled', 'immediate', 'smart_send_time'", "datetime"),
    ({"send_strategy": {"method": "static", "datetime": AT,
                        "options": {"is_local": False, "send_past_recipients_immediately": True}}},
     "send_strategy.options.send_past_recipients_immediately", "when is_local is false", "must be true"),
    ({"send_options": {"use_smart": True}}, "send_options.use_smart", "its fields are: use_smart_sending",
     "argument of this operation"),
]


@pytest.mark.parametrize(("args", "field", "says", "not_says"), CASES)
def test_a_campaign_union_names_the_fault_of_the_branch_it_meant(
    sb: Sandbox, list_id: str, args: dict[str, Any], field: str, says: str, not_says: str
) -> None:
    definition = args.pop("definition", None)
    problems = refused(sb, "create_campaign", **campaign(list_id, definition, **args))
    assert field in problems and says in problems[field], problems
    assert not_says not in json.dumps(problems), problems


@pytest.mark.parametrize(("operation", "args", "field", "says"), [
    ("update_review", {"id": "R1", "status": {"value": "rejected"}}, "status.rejection_reason",
     "is required when value is 'rejected'"),
    ("update_review", {"id": "R1", "status": {"value": "rejected", "rejection_reason": {"reason": "spam"}}},
     "status.rejection_reason.reason", "'spam' is not a valid reason; use one of: 'other', 'fake'"),
    ("update_review", {"id": "R1", "status": {"rejection_reason": {"reason": "fake"}}}, "status.value",
     "is required; it says which kind of status this is"),
    ("create_flow", {"name": "F", "definition": {"triggers": "[]", "actions": [{"type": "send_email"}]}},
     "definition.actions[0].type", "(did you mean 'send-email'?)"),
    ("create_flow", {"name": "F", "definition": {"triggers": "[]", "actions": [{"type": "time-delay"}]}},
     "definition.actions[0].data", "is required when type is 'time-delay'"),
    ("update_campaign_message", {"id": "M1", "definition": {"channel": "sms", "content": {"subject": "Hi"}}},
     "definition.content.subject", "is not a field of content when channel is 'sms'"),
    ("query_campaign_values", {"timeframe": {}, "statistics": ["opens"], "conversion_metric_id": "M1"},
     "timeframe", "give {key} or {start, end}"),
    ("query_campaign_values", {"timeframe": {"start": AT}, "statistics": ["opens"], "conversion_metric_id": "M1"},
     "timeframe.end", "is required"),
    ("create_profile", {"email": "ada@example.com", "location": {"latitude": True}}, "location.latitude",
     "must be a string or a number, not true"),
    ("update_profile", {"id": "P1", "patch_properties": {"unset": 5}}, "patch_properties.unset",
     "must be a string or a list of strings, not 5"),
    ("create_flow", {"name": "F", "definition": {"triggers": "[]", "actions": [{"type": "time-delay", "data": "{}"}],
                                                 "reentry_criteria": {"duration": 1, "unit": "month"}}},
     "definition.reentry_criteria.unit", "use one of: 'day', 'hour', 'week', 'alltime'"),
    ("create_profile", {"email": "ada@example.com", "location": "London"}, "location",
     "must be an object with the fields address1, address2, city"),
])
def test_other_unions_name_the_fault_of_the_branch_meant(
    sb: Sandbox, operation: str, args: dict[str, Any], field: str, says: str
) -> None:
    problems = refused(sb, operation, **args)
    assert field in problems and says in problems[field], problems


def test_a_tool_call_gets_the_fault_of_the_branch_meant(sb: Sandbox, list_id: str) -> None:
    """The model's path: LangChain checks the arguments first, and its refusal says the same."""
    tool = KlaviyoToolkit(sb.client(), scopes="*").get_tools(include=["create_campaign"])[0]
    sb.requests.clear()
    args = campaign(list_id, {"channel": "sms", "content": {"subject": "Hi"}},
                    send_strategy={"method": "throttled", "datetime": AT})
    answer = tool.invoke({"type": "tool_call", "id": "c1", "name": tool.name, "args": args})
    assert isinstance(answer, ToolMessage) and answer.status == "error"
    assert "content.subject: is not a field of content when channel is 'sms'" in answer.content
    assert "throttle_percentage: is required when method is 'throttled'" in answer.content
    assert "'email'" not in answer.content and "'static'" not in answer.content
    assert answer.content.endswith("Fix the arguments and call again.")
    assert list(sb.requests) == []


async def test_an_async_tool_call_gets_the_fault_of_the_branch_meant(sb: Sandbox, list_id: str) -> None:
    tool = KlaviyoToolkit(sb.client(), scopes="*").get_tools(include=["update_review"])[0]
    sb.requests.clear()
    reason = {"reason": "fake", "status_explanation": "x"}
    args = {"id": "R1", "status": {"value": "rejected", "rejection_reason": reason}}
    answer = await tool.ainvoke({"type": "tool_call", "id": "c2", "name": tool.name, "args": args})
    assert isinstance(answer, ToolMessage) and answer.status == "error"
    assert "status_explanation: is not a field of rejection_reason when reason is 'fake'" in answer.content
    assert "'featured'" not in answer.content and "'other'" not in answer.content
    assert list(sb.requests) == []


@pytest.mark.parametrize("definition", [
    EMAIL, {"channel": "sms", "content": {"body": "Hi"}}, {"channel": "mobile_push", "content": {"body": "Hi"}},
    {"channel": "mobile_push", "notification_type": "silent"},
])
@pytest.mark.parametrize("strategy", [
    None, {"method": "static", "datetime": AT, "options": {"is_local": True, "send_past_recipients_immediately": True}},
    {"method": "static", "datetime": AT, "options": {"is_local": False}},
    {"method": "throttled", "datetime": AT, "throttle_percentage": 20}, {"method": "immediate"},
    {"method": "smart_send_time", "date": "2030-01-01"},
])
def test_every_branch_given_right_is_sent_and_accepted(
    sb: Sandbox, list_id: str, definition: dict[str, Any], strategy: dict[str, Any] | None
) -> None:
    args = campaign(list_id, definition, **({"send_strategy": strategy} if strategy else {}))
    with sb.client() as kl:
        assert kl.call("create_campaign", **args).status == 201


# -- every union of the catalog ----------------------------------------------------------------
def _fixed(variant: dict[str, Any]) -> dict[str, Any]:
    return {f["name"]: f["shape"]["schema"]["enum"][0] for f in variant["fields"]
            if f["shape"]["kind"] == "scalar" and len(f["shape"]["schema"].get("enum") or ()) == 1}


def _sites(shape: dict[str, Any], path: str, wrap: Any) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(where, discriminators, args builder) for each object branch told by its discriminators; the
    builder puts a value at the branch's place (inside the branches of enclosing unions)."""
    kind = shape["kind"]
    if kind == "data":
        yield from _sites(shape["item"], path, wrap)
    elif kind == "array":
        yield from _sites(shape["items"], f"{path}[0]", lambda v: wrap([v]))
    elif kind in ("object", "resource"):
        for f in shape["fields"]:
            yield from _sites(f["shape"], f"{path}.{f['name']}", lambda v, n=f["name"]: wrap({n: v}))
    elif kind == "union" and all(v["kind"] == "object" for v in shape["variants"]):
        told = [_fixed(v) for v in shape["variants"]]
        for variant, fixed in zip(shape["variants"], told, strict=True):
            if fixed and sum(1 for other in told if other.items() >= fixed.items()) == 1:
                yield path, fixed, wrap
                for f in variant["fields"]:
                    yield from _sites(f["shape"], f"{path}.{f['name']}",
                                      lambda v, n=f["name"], w=wrap, d=fixed: w({**d, n: v}))


def _union_sites() -> Iterator[Any]:
    for op in CAT:
        for arg in op.args:
            for where, fixed, wrap in _sites(arg["shape"], arg["name"], lambda v: v):
                told = ",".join(f"{k}={v}" for k, v in fixed.items())
                case = f"{op.operation_id}:{where}:{told}"
                yield pytest.param(op.operation_id, arg["name"], where, fixed, wrap, id=case)


SITES = list(_union_sites())


def test_the_catalog_has_the_unions_checked_here() -> None:
    ids = {p.id.rsplit(":", 1)[0] for p in SITES}
    assert {"create_campaign:send_strategy", "create_campaign:campaign_messages[0].definition",
            "create_flow:definition.actions[0]", "update_review:status.rejection_reason"} <= ids
    assert len(SITES) > 100


@pytest.mark.parametrize(("operation", "arg", "where", "fixed", "wrap"), SITES)
def test_an_unknown_field_in_any_branch_is_named_and_its_discriminators_are_not(
    operation: str, arg: str, where: str, fixed: dict[str, Any], wrap: Any
) -> None:
    """A branch's discriminators given right, and a field no branch has: the field is the fault."""
    op = CAT.get(operation)
    with pytest.raises(InvalidArgumentError) as err:
        prepare(op, {arg: wrap({**fixed, "not_a_field": 1})})
    problems = dict(err.value.problems)
    wrong = [f"{where}.{key}" for key in fixed if f"{where}.{key}" in problems]
    assert not wrong, f"the discriminators given right were blamed: {problems}"
    assert "is not a field of" in problems.get(f"{where}.not_a_field", ""), problems
