"""What a finished campaign report tells a script: its exit code, and the dates refused before any call.

A report whose figures are missing because Klaviyo failed or refused the reporting call exits
``FAILED_EXIT`` (1, ``personas run``'s runtime failure); one with every figure exits 0, a day with no
campaigns included. A date before 2012-01-01 (Klaviyo's founding) is refused by the input model and
by the graph's first step, before any call. The in-process sandbox's demo account, on a manual clock.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from graphs.campaign_report import (
    EARLIEST,
    FAILED_EXIT,
    SPEC,
    ReportInputError,
    ReportSettingsError,
    exit_code,
    missing_figures,
)
from klaviyo_sandbox import Faults, Sandbox
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.ratelimit import RateLimiter
from personas.kernel.errors import UsageProblem
from personas.kernel.models import ModelChoice
from personas.runtime import run_persona
from personas.runtime.loader import load_persona
from tests.warm_cli import run_personas

NOW = _dt.datetime(2026, 3, 10, 3, 0, tzinfo=_dt.UTC).timestamp()  # 2026-03-09 23:00 in New York
YESTERDAY_NY = "2026-03-08"
QUIET_DAY = "2025-06-01"  # long before the demo account's 90 days of campaigns
NO_MODEL = ModelChoice(None, "no model (test)", "none")


@pytest.fixture
def sb() -> Sandbox:
    return Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock(NOW))


def report(sb: Sandbox, payload: dict[str, Any], limiter: RateLimiter | None = None) -> dict[str, Any]:
    client = sb.client(rate_limiter=limiter or RateLimiter(ManualClock(NOW)))
    result = run_persona(
        "campaign-reporter",
        payload,
        sandbox=sb,
        client=client,
        model=NO_MODEL,
        clock=sb.clock,
        saver=InMemorySaver(),
        audit=False,
    )
    assert not result.paused
    return dict(result.state)


@pytest.mark.parametrize("status", [500, 400])
def test_a_failed_reporting_call_exits_1(sb: Sandbox, status: int) -> None:
    sb.faults = Faults(error_rate=1.0, status=status, operations=["query_campaign_values"])
    state = report(sb, {"date": YESTERDAY_NY})
    assert state["reports"]["Placed Order"]["source"] == "unavailable"
    assert any("The report for 'Placed Order' failed" in note for note in state["notes"])
    assert missing_figures(state) == ["Placed Order"]
    assert SPEC.exit_code is exit_code and exit_code(state) == FAILED_EXIT == 1


def test_a_spent_reporting_limit_with_no_cached_copy_exits_1(sb: Sandbox) -> None:
    limited = RateLimiter(ManualClock(NOW), factor=1 / 225)  # query_campaign_values: 1 a day
    first = report(sb, {"date": "2026-03-07"}, limited)
    assert exit_code(first) == 0
    state = report(sb, {"date": YESTERDAY_NY}, limited)
    assert state["limit"]["exhausted"] is True and state["reporting_calls"] == 0
    assert exit_code(state) == FAILED_EXIT


def test_a_report_with_every_figure_exits_0_with_or_without_campaigns(sb: Sandbox) -> None:
    busy = report(sb, {"date": YESTERDAY_NY})
    assert busy["campaigns"] and exit_code(busy) == 0
    quiet = report(sb, {"date": QUIET_DAY})
    assert quiet["campaigns"] == [] and quiet["reports_available"] is True and exit_code(quiet) == 0


def test_a_cached_copy_used_when_a_refresh_fails_exits_0(sb: Sandbox) -> None:
    report(sb, {"date": YESTERDAY_NY})
    sb.clock.advance(2 * 3600)  # the copy is due for a refresh, which fails
    sb.faults = Faults(error_rate=1.0, status=500, operations=["query_campaign_values"])
    state = report(sb, {"date": YESTERDAY_NY})
    assert state["reports"]["Placed Order"]["source"] == "cache" and state["campaigns"]
    assert missing_figures(state) == [] and exit_code(state) == 0


@pytest.mark.parametrize("date", ["0001-01-01", "2011-12-31"])
def test_a_date_before_klaviyo_began_is_refused_before_any_call(sb: Sandbox, date: str) -> None:
    with pytest.raises(UsageProblem, match=rf"^--input: date: {date} is before 2012-01-01.*give a day from 2012"):
        SPEC.make_input({"date": date})
    before = sum(sb.call_counts.values())
    with pytest.raises(ReportInputError, match=rf"date: {date} is before 2012-01-01"):
        report(sb, {"date": date})
    assert sum(sb.call_counts.values()) == before, "refused before get_accounts"


def test_the_first_day_klaviyo_existed_is_reported(sb: Sandbox) -> None:
    assert SPEC.make_input({"date": str(EARLIEST)}) == {"date": "2012-01-01"}
    state = report(sb, {"date": str(EARLIEST)})
    assert state["date"] == "2012-01-01" and state["campaigns"] == [] and exit_code(state) == 0


def test_a_date_that_is_not_a_day_is_refused_before_any_call(sb: Sandbox) -> None:
    before = sum(sb.call_counts.values())
    with pytest.raises(ReportInputError, match=r"date: '08/03/2026' is not a date; write it as YYYY-MM-DD, e\.g\."):
        report(sb, {"date": "08/03/2026"})
    assert sum(sb.call_counts.values()) == before, "refused before get_accounts"


@pytest.mark.parametrize("under", ["a-file", "a-file/reports"])
def test_an_output_dir_that_cannot_be_written_is_refused_before_any_call(sb: Sandbox, tmp_path: Path,
                                                                          under: str) -> None:
    """A folder under a file (or a file) used to fail at the last step, after the reporting calls were
    spent, as a bare ``NotADirectoryError``; it is refused first, naming ``output_dir`` and the fix."""
    (tmp_path / "a-file").write_text("not a folder")
    spec = load_persona("campaign-reporter")
    spec = spec.model_copy(update={"settings": {**spec.settings, "output_dir": str(tmp_path / under)}})
    before = sum(sb.call_counts.values())
    with pytest.raises(ReportSettingsError, match=r"output_dir: .*a-file.* set output_dir in the persona's settings "
                                                  r"to a folder you can write to"):
        run_persona(spec, {"date": YESTERDAY_NY}, sandbox=sb, model=NO_MODEL, clock=sb.clock,
                    client=sb.client(rate_limiter=RateLimiter(ManualClock(NOW))), saver=InMemorySaver(), audit=False)
    assert sum(sb.call_counts.values()) == before, "refused before get_accounts"


def test_personas_run_says_which_setting_to_fix_when_the_output_dir_cannot_be_written(tmp_path: Path) -> None:
    """From outside: exit 2 (a usage error, nothing spent), one line naming the setting, no traceback."""
    (tmp_path / "a-file").write_text("not a folder")
    persona = tmp_path / "reporter.yaml"
    text = (Path(__file__).parents[2] / "personas" / "definitions" / "campaign-reporter.yaml").read_text()
    persona.write_text(text.replace("name: campaign-reporter", "name: my-reporter")
                       + f"  output_dir: {tmp_path / 'a-file' / 'reports'}\n")
    env = {**os.environ, "PERSONAS_HOME": str(tmp_path / "home"), "HOME": str(tmp_path), "PYTHONPATH":
           str(Path(__file__).parents[2])}
    env.pop("OPENAI_API_KEY", None)
    done = run_personas([sys.executable, "-m", "personas.cli", "run", str(persona), "--input", "{}", "--sandbox"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "output_dir:" in done.stderr and "Traceback" not in done.stderr
    assert "NotADirectoryError" not in done.stderr
