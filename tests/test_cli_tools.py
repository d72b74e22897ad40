"""``personas tools list`` and ``personas tools schema``, run as a user runs them (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from klaviyo_toolkit.tools import check_strict_schema
from tests.warm_cli import run_personas

PERSONAS = Path(sys.executable).with_name("personas")
CONTRACT_FIELDS = {
    "name",
    "operation_id",
    "method",
    "path",
    "tag",
    "scopes",
    "rate_limit",
    "read_only",
    "destructive",
    "beta",
}

pytestmark = pytest.mark.skipif(not PERSONAS.exists(), reason=f"console script not installed at {PERSONAS}")


def personas(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLAVIYO_", "PERSONAS_"))}
    return run_personas([str(PERSONAS), *args], capture_output=True, text=True, timeout=120, env=env)


def test_tools_list_json_has_every_operation_with_the_contract_fields() -> None:
    done = personas("tools", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert isinstance(rows, list) and len(rows) == 345
    for row in rows:
        assert set(row) >= CONTRACT_FIELDS, row.get("name")
        assert row["method"] in {"GET", "POST", "PATCH", "PUT", "DELETE"}
        assert row["path"].startswith(("/api/", "/client/"))
        assert isinstance(row["scopes"], list) and isinstance(row["read_only"], bool)
        assert row["beta"] is False
    by_name = {row["name"]: row for row in rows}
    assert len(by_name) == 345
    assert by_name["query_campaign_values"]["rate_limit"] == {"burst": 1, "steady": 2, "daily": 225}
    assert by_name["delete_list"]["destructive"] is True


def test_tools_schema_prints_strict_definitions_and_resolves_aliases() -> None:
    done = personas("tools", "schema", "get_profiles", "create_campaign_send_job")
    assert done.returncode == 0, done.stderr
    definitions = json.loads(done.stdout)
    assert [d["function"]["name"] for d in definitions] == ["get_profiles", "send_campaign"]
    for definition in definitions:
        assert definition["type"] == "function"
        fn = definition["function"]
        assert fn["strict"] is True and fn["description"]
        assert check_strict_schema(fn["parameters"]) == []


def test_an_unknown_tool_exits_2_with_one_line_and_no_traceback() -> None:
    done = personas("tools", "schema", "nope")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0]
    assert "Traceback" not in done.stderr


def test_tools_schema_all_prints_every_tool() -> None:
    done = personas("tools", "schema", "--all")
    assert done.returncode == 0, done.stderr
    definitions = json.loads(done.stdout)
    assert len(definitions) == 345
    assert len({d["function"]["name"] for d in definitions}) == 345
