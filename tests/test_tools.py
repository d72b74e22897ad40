"""Tools invoked as a model would: results and fixable errors are ToolMessages; developer mistakes raise."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import ToolkitUsageError
from klaviyo_toolkit.ratelimit import RateLimiter
from klaviyo_toolkit.tools import Call, KlaviyoTool, KlaviyoToolkit, Sent, Stopped, Toolset

from .contract.fake_klaviyo import FakeKlaviyo
from .scripted import Scripted, error_body, reply

pytestmark = pytest.mark.usefixtures("clean_env")

KEY = "pk_test_0123456789abcdef"


def call(tool: KlaviyoTool, **args: Any) -> ToolMessage:
    message = tool.invoke({"type": "tool_call", "id": "call-7", "name": tool.name, "args": args})
    assert isinstance(message, ToolMessage)
    assert message.tool_call_id == "call-7" and message.name == tool.name
    return message


async def acall(tool: KlaviyoTool, **args: Any) -> ToolMessage:
    message = await tool.ainvoke({"type": "tool_call", "id": "call-8", "name": tool.name, "args": args})
    assert isinstance(message, ToolMessage)
    return message


def toolkit(server: Any, scopes: Any = "*", **options: Any) -> KlaviyoToolkit:
    return KlaviyoToolkit(scopes=scopes, api_key=KEY, transport=server.transport(), clock=ManualClock(), **options)


def test_a_tool_call_returns_a_tool_message_with_the_result() -> None:
    fake = FakeKlaviyo(api_key=KEY)
    kit = toolkit(fake, scopes=["profiles:write"])
    message = call(kit.tool("create_profile"), email="ada@example.com", first_name="Ada")
    assert message.status == "success"
    view = json.loads(message.content)
    assert view["type"] == "profile" and view["data"]["email"] == "ada@example.com"
    assert next(iter(fake.profiles.values()))["first_name"] == "Ada"


async def test_an_async_tool_call_returns_a_tool_message() -> None:
    fake = FakeKlaviyo(api_key=KEY)
    fake.seed_profiles(1)
    message = await acall(toolkit(fake, scopes=["profiles:read"]).tool("get_profiles"))
    assert message.status == "success" and json.loads(message.content)["count"] == 1


def test_the_strict_nulls_a_model_sends_mean_not_given() -> None:
    fake = FakeKlaviyo(api_key=KEY)
    tool = toolkit(fake).tool("create_profile")
    nulls = {name: None for name in tool.tool_call_schema["properties"]}
    message = call(tool, **{**nulls, "email": "ada@example.com"})
    assert message.status == "success"
    sent = json.loads(fake.requests[0].content)["data"]["attributes"]
    assert sent == {"email": "ada@example.com"}


def test_bad_arguments_come_back_as_an_error_message_naming_the_field() -> None:
    server = Scripted()
    tool = toolkit(server).tool("create_profile")
    message = call(tool, email="not-an-email")
    assert message.status == "error"
    assert "email" in message.content and "name@example.com" in message.content
    message = call(tool, email="a@example.com", favourite_colour="red")
    assert message.status == "error" and "favourite_colour" in message.content
    message = call(toolkit(server).tool("add_profiles_to_list"), id="L1", profile_ids=[f"P{i}" for i in range(1001)])
    assert message.status == "error" and "profile_ids" in message.content and "at most 1000" in message.content
    assert server.requests == [], "nothing was sent"


def test_a_4xx_comes_back_as_an_error_message_naming_the_field() -> None:
    body = error_body(
        400, "invalid", "'+1' is not a valid phone number.", source={"pointer": "/data/attributes/phone_number"}
    )
    server = Scripted(reply(400, body))
    message = call(toolkit(server).tool("create_profile"), phone_number="+15005550006")
    assert message.status == "error"
    assert "/data/attributes/phone_number" in message.content and "Fix the request" in message.content


@pytest.mark.parametrize(("status", "hint"), [(404, "check the id"), (403, "scope"), (409, "already exists")])
def test_other_client_errors_come_back_with_a_hint(status: int, hint: str) -> None:
    server = Scripted(reply(status, error_body(status)))
    message = call(toolkit(server).tool("get_profile"), id="P1")
    assert message.status == "error" and hint in message.content


def test_a_server_error_after_retries_comes_back_as_an_error_message() -> None:
    server = Scripted(reply(503, error_body(503)))
    message = call(toolkit(server).tool("get_lists"))
    assert message.status == "error" and "temporary" in message.content
    assert len(server.requests) == 4, "retried first"


def test_a_spent_daily_limit_comes_back_as_an_error_message() -> None:
    server = Scripted()
    clock = ManualClock()
    kit = KlaviyoToolkit(
        scopes="*", api_key=KEY, transport=server.transport(), clock=clock, rate_limiter=RateLimiter(clock, factor=0.01)
    )
    tool = kit.tool("create_list")  # 150/day -> 2/day at 1%
    assert [call(tool, name=f"L{i}").status for i in range(3)] == ["success", "success", "error"]
    assert len(server.requests) == 2


def test_missing_credentials_raise_to_the_developer() -> None:
    server = Scripted()
    kit = KlaviyoToolkit(scopes="*", transport=server.transport(), clock=ManualClock())
    with pytest.raises(ToolkitUsageError) as err:
        call(kit.tool("get_lists"))
    assert "KLAVIYO_API_KEY" in str(err.value)
    assert server.requests == []


def test_a_tool_outside_the_granted_scopes_refuses_before_any_request() -> None:
    server = Scripted()
    kit = toolkit(server, scopes=["lists:read"])
    with pytest.raises(ToolkitUsageError) as err:
        kit.tool("delete_list")
    assert "lists:write" in str(err.value)
    # A tool that reaches a toolkit without the scope anyway (built elsewhere, handed over) refuses too.
    stray = KlaviyoTool(operation=load_catalog().get("delete_list"), executor=kit)
    message = call(stray, id="L1")
    assert message.status == "error" and "lists:write" in message.content and "refused" in message.content
    assert server.requests == []


def test_get_tools_selects_by_scope_tag_name_and_read_only() -> None:
    kit = toolkit(Scripted(), scopes=["lists:read", "lists:write", "profiles:read"])
    names = {t.name for t in kit.get_tools()}
    assert {"get_lists", "create_list", "get_profiles"} <= names and "create_profile" not in names
    assert {t.name for t in kit.get_tools(read_only=True)} >= {"get_lists", "get_profiles"}
    assert "create_list" not in {t.name for t in kit.get_tools(read_only=True)}
    assert {t.operation.tag for t in kit.get_tools(tags=["Lists"])} == {"Lists"}
    assert [t.name for t in kit.get_tools(include=["get_lists"])] == ["get_lists"]
    assert "delete_list" not in {t.name for t in kit.get_tools(exclude=["delete_list"])}
    with pytest.raises(ToolkitUsageError):
        kit.get_tools(include=["get_listz"])
    with pytest.raises(ToolkitUsageError):
        kit.get_tools(tags=["Nope"])
    with pytest.raises(ToolkitUsageError):
        kit.get_tools(max_tools=2)
    assert KlaviyoToolkit(scopes=()).get_tools() == [], "deny by default"


class _StopDestructive:
    """A guard that stops destructive calls (and keeps what it saw)."""

    def __init__(self) -> None:
        self.seen: list[Call] = []

    def before(self, call: Call) -> Call | Stopped:
        self.seen.append(call)
        return Stopped(call, "rejected", "Waiting for approval.") if call.operation.destructive else call


def test_a_guard_can_stop_a_call_before_it_is_sent() -> None:
    server = Scripted()
    guard = _StopDestructive()
    kit = toolkit(server).guarded(guard)
    message = call(kit.tool("delete_list"), id="L1")
    assert message.content == "Waiting for approval." and server.requests == []
    assert guard.seen[0].request.describe() == {"method": "DELETE", "path": "/api/lists/L1"}
    call(kit.tool("get_lists"))
    assert len(server.requests) == 1


def test_graph_code_and_tools_share_one_pipeline_with_typed_outcomes() -> None:
    server = Scripted(reply(200, {"data": [], "links": {}}))
    guard = _StopDestructive()
    base = toolkit(server, scopes=["lists:read", "lists:write"])
    kit: Toolset = base.guarded(guard)
    stopped = kit.run("delete_list", id="L1")
    assert isinstance(stopped, Stopped) and stopped.status == "rejected" and server.requests == []
    sent = kit.run("get_lists")
    assert isinstance(sent, Sent) and sent.response.status == 200
    denied = kit.run("get_profiles")
    assert isinstance(denied, Stopped) and denied.status == "denied" and "profiles:read" in denied.reason
    assert [c.tool_name for c in guard.seen] == ["delete_list", "get_lists"], "no guard sees a call it cannot make"
    assert base.tool("delete_list") is not kit.tool("delete_list"), "each toolset builds its own tools"
    call(base.tool("delete_list"), id="L1")  # the unguarded toolkit sends it
    assert [r.method for r in server.requests] == ["GET", "DELETE"]




def test_a_write_whose_answer_was_lost_tells_the_model_it_may_have_been_applied() -> None:
    """Not 'temporary; try later': a create sent again after a lost answer makes a second one."""
    from klaviyo_sandbox import Faults, Sandbox
    from klaviyo_toolkit import KlaviyoToolkit

    sb = Sandbox(demo_data=False, rate_limit_factor=None)
    tool = KlaviyoToolkit(sb.client(), scopes="*").get_tools(include=["create_list"])[0]
    sb.faults = Faults(lost_response_rate=1.0, count=1, operations=["create_list"])
    answer = tool.invoke({"name": "create_list", "args": {"name": "lost"}, "id": "c1", "type": "tool_call"})
    assert answer.status == "error"
    assert "may have been applied" in answer.content and "Do not call it again" in answer.content
    assert "try later" not in answer.content
    assert sum(1 for item in sb.client().iterate("get_lists") if item["name"] == "lost") == 1
