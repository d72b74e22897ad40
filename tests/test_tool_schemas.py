"""Every tool's schema is what OpenAI's strict mode accepts, typed, described and short."""

from __future__ import annotations

import re
from typing import Any

import pytest
from langchain_core.utils.function_calling import convert_to_openai_tool

from klaviyo_toolkit.tools import KlaviyoToolkit, check_strict_schema

ALL = KlaviyoToolkit(scopes="*", include_beta=True).get_tools()


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, sub in (schema.get("properties") or {}).items():
        out.append((f"{path}.{name}", sub))
        out += _walk(sub, f"{path}.{name}")
        if "items" in sub:
            out += _walk(sub["items"], f"{path}.{name}[]")
        for i, alt in enumerate(sub.get("anyOf", [])):
            out += _walk(alt, f"{path}.{name}|{i}")
            if "items" in alt:
                out += _walk(alt["items"], f"{path}.{name}|{i}[]")
    return out


def test_there_is_one_tool_per_operation() -> None:
    assert len(ALL) == 345 + 148
    assert len(KlaviyoToolkit(scopes="*").get_tools()) == 345


@pytest.mark.parametrize("tool", ALL, ids=lambda t: t.name)
def test_schema_is_accepted_by_strict_mode(tool: Any) -> None:
    definition = convert_to_openai_tool(tool, strict=True)
    fn = definition["function"]
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", fn["name"])
    assert fn["strict"] is True
    problems = check_strict_schema(fn["parameters"])
    assert not problems, problems
    for where, prop in _walk(fn["parameters"]):
        assert prop.get("description"), f"{where} has no description"
        assert "type" in prop or "anyOf" in prop, f"{where} has no type"
        assert "__" not in where, f"{where}: no data__attributes chains"
    assert "type" not in fn["parameters"]["properties"] or fn["name"].startswith(("create_", "update_"))


def test_descriptions_state_scopes_and_limits_and_stay_short() -> None:
    for tool in ALL:
        assert "Scopes:" in tool.description and "Rate limit:" in tool.description, tool.name
        assert len(tool.description) < 450, (tool.name, len(tool.description))


def test_no_constant_type_fields_or_envelopes_in_arguments() -> None:
    tool = KlaviyoToolkit(scopes="*").tool("create_profile")
    props = convert_to_openai_tool(tool, strict=True)["function"]["parameters"]["properties"]
    assert {"email", "phone_number", "first_name", "location", "properties"} <= set(props)
    assert not {"data", "type", "attributes"} & set(props)


def test_the_strict_checker_rejects_what_openai_rejects() -> None:
    ok = {"type": "object", "properties": {"a": {"type": "string", "description": "x"}}, "required": ["a"],
          "additionalProperties": False}
    assert check_strict_schema(ok) == []
    assert check_strict_schema({**ok, "required": []})
    assert check_strict_schema({**ok, "additionalProperties": True})
    assert check_strict_schema({**ok, "properties": {"a": {"type": "string", "description": "x", "default": "y"}}})
    assert check_strict_schema({**ok, "properties": {"a": {"oneOf": [{"type": "string"}], "description": "x"}}})
    assert check_strict_schema({**ok, "properties": {"a": {"type": "string", "format": "uri", "description": "x"}}})
    assert check_strict_schema({**ok, "properties": {"a": {"type": "object", "description": "free-form"}}})
