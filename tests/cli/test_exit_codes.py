"""The exit code a script sees, as the ``personas`` command ends with it (run in a subprocess).

``--debug`` adds the traceback and changes nothing else: the same error line and exit code for a
usage error (2), a runtime failure (1) and a run finished in part (3). A campaign report whose
reporting call Klaviyo failed exits 1 (figures are missing), a report of a day with no campaigns
exits 0, and a date before Klaviyo began is refused before the run starts. ``tools schema`` refuses
tool names given with ``--all`` or ``--persona`` instead of ignoring them.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.warm_cli import run_personas

from .conftest import PERSONAS, ROOT, child_env

DEMO_KEY = "pk_sandbox_demo"


def personas(home: Path, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return run_personas(
        [str(PERSONAS), *args],
        env=child_env(home, **env),
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
    )


def said(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The ``error: ...`` line a failed command ended with (after a thread line or a traceback)."""
    lines = [line for line in proc.stderr.strip().splitlines() if not re.match(r"thread \S+: ", line)]
    assert lines and lines[-1].startswith("error: "), said(proc)
    return lines[-1]


USAGE_ERRORS = {
    "a connection name": (["auth", "login", "x/y"], DEMO_KEY, "is not a usable connection name"),
    "a --since": (["audit", "--since", "garbage"], None, "--since 'garbage'"),
    "a tool name": (["tools", "schema", "nope"], None, "Unknown Klaviyo operation 'nope'"),
    "a report date": (
        ["run", "campaign-reporter", "--sandbox", "--input", '{"date": "0001-01-01"}'],
        None,
        "--input: date: 0001-01-01 is before 2012-01-01",
    ),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_debug_adds_the_traceback_and_keeps_exit_2_of_a_usage_error(tmp_path: Path, case: str) -> None:
    args, stdin, words = USAGE_ERRORS[case]
    plain = personas(tmp_path / "home", *args, stdin=stdin)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr, said(plain)
    line = error_line(plain)
    assert words in line, said(plain)
    debug = personas(tmp_path / "home", "--debug", *args, stdin=stdin)
    assert debug.returncode == 2, said(debug)
    assert "Traceback (most recent call last)" in debug.stderr and error_line(debug) == line, said(debug)


def test_debug_keeps_exit_1_of_a_runtime_failure(tmp_path: Path) -> None:
    env = {"KLAVIYO_BASE_URL": "http://127.0.0.1:9", "KLAVIYO_API_KEY": "pk_not_used_here"}
    plain = personas(tmp_path / "home", "run", "campaign-reporter", "--input", "{}", **env)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr, said(plain)
    debug = personas(tmp_path / "home", "--debug", "run", "campaign-reporter", "--input", "{}", **env)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr, said(debug)
    assert error_line(debug).startswith("error: cannot reach http://127.0.0.1:9 (get_accounts)"), said(debug)


def test_debug_keeps_exit_3_of_a_sync_finished_in_part(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("email,first_name\nnot-an-email,X\nok@example.com,Y\n")
    sync = json.dumps({"source": {"kind": "csv", "path": str(rows)}, "target": "VIP Customers"})
    proc = personas(tmp_path / "home", "--debug", "run", "segment-syncer", "--input", sync, "--sandbox")
    assert proc.returncode == 3 and "Sync partial" in proc.stdout and "Traceback" not in proc.stderr, said(proc)


def test_a_report_whose_reporting_call_failed_exits_1_and_a_quiet_day_0(tmp_path: Path, sandbox_server: str) -> None:
    env = {"KLAVIYO_BASE_URL": sandbox_server, "KLAVIYO_API_KEY": DEMO_KEY}
    # 400: refused at once (a 500 is retried with real waits; the graph's tests take it on a manual clock)
    faults = {"error_rate": 1.0, "status": 400, "operations": ["query_campaign_values"]}
    httpx.put(f"{sandbox_server}/sandbox/faults", json=faults, timeout=10).raise_for_status()
    failed = personas(tmp_path / "home", "run", "campaign-reporter", "--input", "{}", **env)
    assert failed.returncode == 1, said(failed)
    assert "The report for 'Placed Order' failed" in failed.stdout and "HTTP 400" in failed.stdout, said(failed)
    httpx.put(f"{sandbox_server}/sandbox/faults", json={"error_rate": 0}, timeout=10).raise_for_status()
    quiet = personas(tmp_path / "home", "run", "campaign-reporter", "--input", '{"date": "2013-06-01"}', **env)
    assert quiet.returncode == 0 and "No email campaigns had activity on 2013-06-01" in quiet.stdout, said(quiet)


def test_a_report_date_before_klaviyo_began_is_refused_before_the_run_starts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = personas(home, "run", "campaign-reporter", "--sandbox", "--input", '{"date": "2011-12-31"}')
    assert proc.returncode == 2 and not proc.stdout, said(proc)
    assert proc.stderr.strip().splitlines() == [
        "error: --input: date: 2011-12-31 is before 2012-01-01, when Klaviyo began, so no account has campaign "
        "figures for it; give a day from 2012-01-01 on"
    ]
    assert not (home / "reports").exists(), "no report was written"


@pytest.mark.parametrize(
    ("args", "chosen"),
    [
        (["--all", "get_profiles"], "tool names and --all"),
        (["get_profiles", "--persona", "campaign-reporter"], "tool names and --persona"),
        (["--all", "--persona", "campaign-reporter"], "--all and --persona"),
    ],
)
def test_tools_schema_refuses_names_it_would_ignore(tmp_path: Path, args: list[str], chosen: str) -> None:
    proc = personas(tmp_path / "home", "tools", "schema", *args)
    assert proc.returncode == 2 and not proc.stdout and "Traceback" not in proc.stderr, said(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: give tool names, --all or --persona, not {chosen}")
    assert "personas tools schema --all" in lines[0]


def test_tools_schema_of_names_alone_still_prints_them(tmp_path: Path) -> None:
    proc = personas(tmp_path / "home", "tools", "schema", "get_profiles", "get_lists")
    assert proc.returncode == 0, said(proc)
    assert [d["function"]["name"] for d in json.loads(proc.stdout)] == ["get_profiles", "get_lists"]


@pytest.mark.parametrize("text", ['"2026-12-05"', "null", "5"])
def test_json_that_is_not_an_object_is_named_so(tmp_path: Path, text: str) -> None:
    proc = personas(tmp_path / "home", "run", "campaign-reporter", "--sandbox", "--input", text)
    assert proc.returncode == 2, said(proc)
    line = error_line(proc)
    kind = {'"2026-12-05"': "a string", "null": "null", "5": "a number"}[text]
    assert line == f"error: --input must be a JSON object (got {kind}); give the input as {{...}}, a JSON file, or - " \
        "for stdin", line
