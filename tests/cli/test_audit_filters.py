"""``personas audit``'s filters as a person uses them: a time copied from the table into ``--since``
finds that row (the table shows local time, so a time without a zone is local), ``export`` writes only
the rows the filters match, a bad filter is refused before any subcommand, ``verify`` (which checks the
whole log) refuses filters it would ignore, and the table's summaries read as English.

Every test writes a real audit log (anchored in the state folder's vault, as a run does) and runs the
real ``personas`` command on it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.warm_cli import run_personas

from .conftest import PERSONAS, ROOT, child_env

#: A zone five hours behind UTC all year (POSIX ``TZ``: no tzdata, no daylight saving to move it).
BEHIND = "EST5"
#: Three rows an hour apart, as (UTC time, tool, status, persona).
ROWS = (
    ("2026-12-06T08:00:00+00:00", "get_accounts", "ok", "campaign-reporter"),
    ("2026-12-06T09:00:00+00:00", "get_metrics", "error", "campaign-reporter"),
    ("2026-12-06T10:00:00+00:00", "get_lists", "error", "klaviyo-assistant"),
)
WRITE = """
import datetime as dt, json, sys
from klaviyo_toolkit.audit import AuditContext, AuditLog
from klaviyo_toolkit.clock import ManualClock
from personas.kernel.config import Config
from personas.runtime.audit import audit_anchor

rows = json.loads(sys.argv[1])
clock = ManualClock(dt.datetime.fromisoformat(rows[0][0]).timestamp())
cfg = Config.from_env()
with AuditLog(cfg.path("audit.sqlite"), anchor=audit_anchor(cfg), clock=clock) as log:
    for when, tool, status, persona in rows:
        clock.advance(dt.datetime.fromisoformat(when).timestamp() - clock.time())
        log.record(tool, status, context=AuditContext(user="ada", persona=persona))
"""


def personas(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_personas(
        [str(PERSONAS), *args], env=child_env(home, **env), capture_output=True, text=True, timeout=180, cwd=ROOT
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line of a usage error (exit 2, no traceback)."""
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A state folder whose audit log holds :data:`ROWS`."""
    done = subprocess.run(
        [sys.executable, "-c", WRITE, json.dumps(ROWS)],
        env=child_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return tmp_path


def tools(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The tools of the JSON lines a command printed, in its order."""
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["tool"] for line in done.stdout.splitlines()]


# -- a time without a zone is the table's local time --------------------------------------------------


def test_a_time_copied_from_the_table_into_since_finds_that_row(home: Path) -> None:
    table = personas(home, "audit", TZ=BEHIND)
    assert table.returncode == 0, table.stderr
    shown = re.search(r"^(\S+ \S+)  get_metrics", table.stdout, re.M)
    assert shown and shown.group(1) == "2026-12-06 04:00:00", table.stdout  # 09:00 UTC, five hours behind
    assert "UTC-05:00" in table.stdout.splitlines()[0], "the header says which zone the times are in"
    since = personas(home, "audit", "--since", shown.group(1), "--json", TZ=BEHIND)
    assert tools(since) == ["get_lists", "get_metrics"]  # before: read as 04:00 UTC, every row
    assert tools(personas(home, "audit", "--since", "2026-12-06T04:00", "--json", TZ=BEHIND)) == [
        "get_lists",
        "get_metrics",
    ]


def test_a_time_with_a_zone_keeps_it(home: Path) -> None:
    for text in ("2026-12-06T09:00:00Z", "2026-12-06 09:00:00+00:00", "2026-12-06T10:00:00+01:00"):
        assert tools(personas(home, "audit", "--since", text, "--json", TZ=BEHIND)) == ["get_lists", "get_metrics"]


def test_a_date_is_local_midnight_and_a_zone_ahead_of_utc_is_read_too(home: Path) -> None:
    # midnight ten hours behind UTC is 10:00 UTC: the newest row only (read as UTC, it was every row)
    assert tools(personas(home, "audit", "--since", "2026-12-06", "--json", TZ="HST10")) == ["get_lists"]
    # 17:30 nine hours ahead of UTC is 08:30 UTC (read as UTC, it was no row)
    assert tools(personas(home, "audit", "--since", "2026-12-06 17:30", "--json", TZ="JST-9")) == [
        "get_lists",
        "get_metrics",
    ]


def test_the_help_says_a_time_without_a_zone_is_local(tmp_path: Path) -> None:
    shown = personas(tmp_path, "audit", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "without a zone is local time" in " ".join(shown.stdout.split())


# -- export applies the filters; every subcommand refuses a bad one; verify refuses any ------------------


def test_export_writes_only_the_rows_the_filters_match_oldest_first(home: Path) -> None:
    assert tools(personas(home, "audit", "--status", "error", "export", "-")) == ["get_metrics", "get_lists"]
    assert tools(personas(home, "audit", "export", "-")) == ["get_accounts", "get_metrics", "get_lists"]
    out = home / "errors.jsonl"
    done = personas(home, "audit", "--persona", "campaign-reporter", "--since", "2026-12-06T08:30Z", "export", str(out))
    assert done.returncode == 0 and "wrote 1 row" in done.stderr, done.stderr
    assert [json.loads(line)["tool"] for line in out.read_text().splitlines()] == ["get_metrics"]
    assert out.stat().st_mode & 0o077 == 0, "an export is owner-only, filtered or not"
    newest = personas(home, "audit", "--limit", "2", "export", "-")
    assert tools(newest) == ["get_metrics", "get_lists"]  # the newest two, oldest first


def test_export_refuses_a_name_no_row_or_persona_has(home: Path) -> None:
    line = one_line_error(personas(home, "audit", "--persona", "campaign-reportr", "export", "-"))
    assert "--persona" in line and "did you mean campaign-reporter" in line


@pytest.mark.parametrize("command", [["export", "-"], ["verify"], ["accept-loss", "--reason", "x"]])
@pytest.mark.parametrize(("option", "value", "said"), [
    ("--since", "garbage", "use 24h, 30m, 7d, today, yesterday, or an ISO date"),
    ("--status", "bogus", "not an audit status"),
    ("--limit", "0", "1 or more"),
])  # fmt: skip
def test_a_bad_filter_is_refused_whatever_the_subcommand(
    home: Path, command: list[str], option: str, value: str, said: str
) -> None:
    line = one_line_error(personas(home, "audit", option, value, *command))
    assert option in line and said in line
    assert len(tools(personas(home, "audit", "export", "-"))) == 3, "nothing was written"


@pytest.mark.parametrize("filters", [["--status", "error"], ["--since", "24h"], ["--persona", "campaign-reporter"]])
def test_verify_refuses_a_filter_it_would_ignore(home: Path, filters: list[str]) -> None:
    line = one_line_error(personas(home, "audit", *filters, "verify"))
    assert filters[0] in line and "whole log" in line
    assert "chain intact" in personas(home, "audit", "verify").stdout


# -- the table's summaries ------------------------------------------------------------------------------


def test_a_report_run_reads_as_english_in_the_table(tmp_path: Path) -> None:
    ran = personas(tmp_path, "run", "campaign-reporter", "--sandbox", "--input", "{}")
    assert ran.returncode == 0, ran.stderr
    table = personas(tmp_path, "audit")
    assert table.returncode == 0, table.stderr
    text = " ".join(table.stdout.split())
    assert "None" not in text and re.search(r"campaign-values-report: \d+ results?\b", text), text
    assert re.search(r"\b\d+ metrics: ", text) and re.search(r"\b\d+ campaigns: ", text), text
    assert not re.search(r"\b(0|[2-9]|\d\d+) (metric|campaign|account):", text), text
    assert "1 account: " in text, text
    assert datetime_in_header(table.stdout)


def datetime_in_header(stdout: str) -> bool:
    """The header names the zone the table's times are in (this machine's, now)."""
    offset = dt.datetime.now().astimezone().utcoffset() or dt.timedelta()
    hours, minutes = divmod(abs(int(offset.total_seconds())) // 60, 60)
    return f"UTC{'-' if offset < dt.timedelta() else '+'}{hours:02d}:{minutes:02d}" in stdout.splitlines()[0]
