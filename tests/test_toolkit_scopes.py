"""The scopes a KlaviyoToolkit is granted are checked: text is split, a typo raises, never "no tools".

Before, ``KlaviyoToolkit(scopes="lists:read")`` was read as the set of its characters and
``scopes=["list:read"]`` as a scope no operation needs: both granted nothing, silently, and an agent
built on them had no tools and no error saying why.
"""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import ToolMessage

from klaviyo_sandbox import DEMO_KEY, Sandbox
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.errors import UnknownScopeError
from klaviyo_toolkit.scopes import known_scopes
from klaviyo_toolkit.tools import CLIENT_SCOPE, KlaviyoToolkit


def test_every_scope_as_text_or_list_grants_exactly_the_operations_it_covers() -> None:
    catalog = load_catalog(include_beta=True)
    for scope in sorted(known_scopes()):
        expected = {op.operation_id for op in catalog if op.scopes and set(op.scopes) <= {scope}}
        for given in (scope, [scope], f" {scope}, ", [f"{scope},"]):
            kit = KlaviyoToolkit(scopes=given, include_beta=True)
            assert {op.operation_id for op in kit.operations()} == expected, (scope, given)
    pairs = "lists:read, profiles:read"
    expected = {op.operation_id for op in catalog if op.scopes and set(op.scopes) <= {"lists:read", "profiles:read"}}
    for given in (pairs, pairs.split(", "), [pairs], "lists:read profiles:read"):
        kit = KlaviyoToolkit(scopes=given, include_beta=True)  # type: ignore[arg-type]
        assert {op.operation_id for op in kit.operations()} == expected, given
    client_ops = {op.operation_id for op in catalog if not op.scopes}
    assert {op.operation_id for op in KlaviyoToolkit(scopes=CLIENT_SCOPE, include_beta=True).operations()} == client_ops
    assert len(KlaviyoToolkit(scopes=["*"]).operations()) == len(KlaviyoToolkit(scopes="*").operations()) == 345


@pytest.mark.parametrize(
    ("given", "suggestion"),
    [
        (["list:read"], "lists:read"),
        ("profiles:reed", "profiles:read"),
        (["lists:read", "campaign:write"], "campaigns:write"),
    ],
)
def test_a_scope_no_operation_uses_raises_naming_the_closest(given: object, suggestion: str) -> None:
    with pytest.raises(UnknownScopeError) as err:
        KlaviyoToolkit(scopes=given)  # type: ignore[arg-type]
    assert f"did you mean {suggestion!r}" in str(err.value)


def test_a_toolkit_granted_scopes_as_text_calls_the_sandbox() -> None:
    sandbox = Sandbox()
    kit = KlaviyoToolkit(sandbox.client(DEMO_KEY), scopes="lists:read")
    tool = kit.tool("get_lists")
    message = tool.invoke({"type": "tool_call", "id": "c1", "name": tool.name, "args": {}})
    assert isinstance(message, ToolMessage) and message.status == "success", message.content
    assert json.loads(message.content)["count"] >= 1
    assert not kit.allows("create_list")
