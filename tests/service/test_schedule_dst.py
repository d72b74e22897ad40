"""Schedules across daylight-saving changes, as cron users expect (vixie cron): a job at a fixed wall
time runs once on the autumn day whose hour repeats, and once on the spring day whose hour is
skipped; a job with a wildcard minute or hour (hourly, ``*/30``) runs through both real hours.

The service ticks minute by minute across the change (``schedule_tick`` with its ``now``), with a
persona whose ``schedule`` is the cron, in the sandbox account's time zone (America/New_York).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from klaviyo_sandbox import Sandbox
from personas.kernel.config import Config
from personas.service.schedule import schedule_tick, slots_between
from personas.service.service import Service

NEW_YORK = ZoneInfo("America/New_York")
SHIPPED = Path(__file__).resolve().parents[2] / "personas" / "definitions" / "campaign-reporter.yaml"


def local(*args: int, fold: int = 0) -> float:
    return _dt.datetime(*args, tzinfo=NEW_YORK, fold=fold).timestamp()


def shown(slot: float) -> str:
    return _dt.datetime.fromtimestamp(slot, NEW_YORK).strftime("%m-%d %H:%M%z")


def scheduled(home: Path, cron: str) -> None:
    """A persona ``cron-probe``: the campaign reporter on ``cron``."""
    text = SHIPPED.read_text().replace("name: campaign-reporter", "name: cron-probe")
    lines = [f'schedule: "{cron}"' if line.startswith("schedule:") else line for line in text.splitlines()]
    (home / "personas").mkdir(parents=True, exist_ok=True)
    (home / "personas" / "cron-probe.yaml").write_text("\n".join(lines) + "\n")


def ticked(tmp_path: Path, cron: str, start: float, hours: float) -> list[tuple[str, str]]:
    """Tick every minute for ``hours`` from ``start``; the probe's runs as (local slot, date reported)."""
    home = tmp_path / "home"
    scheduled(home, cron)
    sandbox = Sandbox(seed=3)
    service = Service.open(Config(home=home), sandbox=sandbox)
    try:
        assert "cron-probe" in service.personas()
        now = start
        while now <= start + hours * 3600:
            schedule_tick(service, now)
            now += 60
        runs = sorted(service.store.runs(persona="cron-probe", limit=500), key=lambda r: r.scheduled_for or 0)
        return [(shown(r.scheduled_for or 0), str(r.input.get("date"))) for r in runs]
    finally:
        service.close()
        sandbox.close()


def test_a_daily_job_in_the_repeated_hour_runs_once(tmp_path: Path) -> None:
    """01:30 comes twice on 2026-11-01 in New York (EDT, then EST): one run, at the first."""
    assert ticked(tmp_path, "30 1 * * *", local(2026, 10, 31, 23, 0), 6) == [("11-01 01:30-0400", "2026-10-31")]


def test_a_job_at_several_fixed_hours_runs_once_at_each(tmp_path: Path) -> None:
    assert [s for s, _ in ticked(tmp_path, "0 0-3 * * *", local(2026, 10, 31, 23, 30), 5)] == [
        "11-01 00:00-0400", "11-01 01:00-0400", "11-01 02:00-0500", "11-01 03:00-0500",
    ]


@pytest.mark.parametrize(("cron", "expected"), [
    ("0 * * * *", ["00:00-0400", "01:00-0400", "01:00-0500", "02:00-0500"]),
    ("*/30 * * * *",
     ["00:00-0400", "00:30-0400", "01:00-0400", "01:30-0400", "01:00-0500", "01:30-0500", "02:00-0500"]),
    ("*/20 1 * * *", ["01:00-0400", "01:20-0400", "01:40-0400", "01:00-0500", "01:20-0500", "01:40-0500"]),
])
def test_a_job_with_a_wildcard_runs_through_both_real_hours(cron: str, expected: list[str]) -> None:
    slots = slots_between(cron, NEW_YORK, local(2026, 11, 1, 0, 0) - 1, local(2026, 11, 1, 2, 0, fold=1) + 1)
    assert [shown(s)[6:] for s in slots] == expected


def test_a_daily_job_in_the_skipped_hour_still_runs_once(tmp_path: Path) -> None:
    """02:30 does not exist on 2026-03-08 in New York: the job runs once that day (as before)."""
    runs = ticked(tmp_path, "30 2 * * *", local(2026, 3, 7, 23, 0), 6)
    assert len(runs) == 1 and runs[0][0].startswith("03-08 03:") and runs[0][1] == "2026-03-07", runs


def test_the_days_around_the_change_run_once_each(tmp_path: Path) -> None:
    assert slots_between("30 1 * * *", NEW_YORK, local(2026, 10, 30, 12), local(2026, 11, 3, 12)) == [
        local(2026, 10, 31, 1, 30), local(2026, 11, 1, 1, 30), local(2026, 11, 2, 1, 30), local(2026, 11, 3, 1, 30),
    ]
