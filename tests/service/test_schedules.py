"""Schedules: the campaign reporter's cron ("0 7 * * *") in the account's time zone, durable runs,
no double run with two workers, catch-up after downtime, and a failed run retried from the CLI."""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path

import pytest

from klaviyo_sandbox import Faults, Sandbox
from personas.kernel.config import Config
from personas.kernel.errors import UsageProblem
from personas.service.schedule import schedule_tick
from personas.service.service import Service
from tests.graphs.leads import HOT, sequence_starts, sign_up


def utc(text: str) -> float:
    return _dt.datetime.fromisoformat(text).replace(tzinfo=_dt.UTC).timestamp()


START = utc("2026-10-30T12:00:00")  # the service first sees the persona (a Friday, 08:00 in New York)
AFTER = utc("2026-11-02T13:00:00")  # three days later; US daylight saving ended on Nov 1 in between


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(seed=5)


def reporter_runs(service: Service) -> list[tuple[str, str]]:
    return sorted((r.key, str(r.input.get("date"))) for r in service.store.runs(persona="campaign-reporter"))


def test_missed_slots_are_found_after_downtime_in_the_accounts_time_zone(tmp_path: Path, sandbox: Sandbox) -> None:
    service = Service.open(Config(home=tmp_path / "h"), sandbox=sandbox)
    assert schedule_tick(service, START, catch_up="all") == []  # first sight: nothing before it is missed
    new = schedule_tick(service, AFTER, catch_up="all")
    # 07:00 in New York: 11:00Z while daylight saving lasts, 12:00Z after it ends
    assert reporter_runs(service) == [
        ("schedule:2026-10-31T11:00:00+00:00", "2026-10-30"),
        ("schedule:2026-11-01T12:00:00+00:00", "2026-10-31"),
        ("schedule:2026-11-02T12:00:00+00:00", "2026-11-01"),
    ]
    assert len(new) == 3 and schedule_tick(service, AFTER + 30, catch_up="all") == []
    service.close()


@pytest.mark.parametrize(("catch_up", "keys"), [
    ("latest", ["schedule:2026-11-02T12:00:00+00:00"]),
    ("none", []),  # the newest slot is an hour late: not on time
])
def test_catch_up_is_configurable(tmp_path: Path, sandbox: Sandbox, catch_up: str, keys: list[str]) -> None:
    service = Service.open(Config(home=tmp_path / "h"), sandbox=sandbox)
    schedule_tick(service, START, catch_up=catch_up)
    schedule_tick(service, AFTER, catch_up=catch_up)
    assert [k for k, _ in reporter_runs(service)] == keys
    with pytest.raises(UsageProblem, match="--catch-up 'sometimes'"):
        schedule_tick(service, AFTER, catch_up="sometimes")
    service.close()


def test_a_slot_on_time_runs_with_catch_up_none(tmp_path: Path, sandbox: Sandbox) -> None:
    service = Service.open(Config(home=tmp_path / "h"), sandbox=sandbox)
    schedule_tick(service, START, catch_up="none")
    schedule_tick(service, utc("2026-10-31T11:00:30"), catch_up="none")
    assert [k for k, _ in reporter_runs(service)] == ["schedule:2026-10-31T11:00:00+00:00"]
    service.close()


def test_a_time_zone_that_cannot_be_read_records_no_slot_and_keeps_the_cursor(
    tmp_path: Path, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Klaviyo failing get_accounts at one tick: guessing UTC there ran 07:00 UTC (03:00 in New York)
    and 07:00 in New York too, two runs for one local day. The tick must wait instead."""
    service = Service.open(Config(home=tmp_path / "h"), sandbox=sandbox)
    schedule_tick(service, START)
    cursor = service.store.cursor("schedule:campaign-reporter")
    sandbox.faults = Faults(error_rate=1.0, status=503, operations=["get_accounts"])
    with caplog.at_level(logging.WARNING, logger="personas.service.schedule"):
        assert schedule_tick(service, utc("2026-10-31T07:00:30")) == []  # 07:00 UTC, 03:00 in New York
    assert service.store.cursor("schedule:campaign-reporter") == cursor, "the cursor did not move"
    assert service.store.cursor("timezone:campaign-reporter") is None, "no time zone was remembered"
    assert "the time zone of campaign-reporter's account cannot be read now (ServerError)" in caplog.text
    assert "the next tick tries again" in caplog.text
    sandbox.faults = Faults()
    schedule_tick(service, utc("2026-10-31T11:00:30"))  # 07:00 in New York
    assert reporter_runs(service) == [("schedule:2026-10-31T11:00:00+00:00", "2026-10-30")]
    service.close()


def _two_workers_tick(config: Config, sandbox: Sandbox) -> list[str]:
    first = Service.open(config, sandbox=sandbox)
    second = Service.open(config, sandbox=sandbox)
    schedule_tick(first, START)
    made = [r.id for r in schedule_tick(first, AFTER)] + [r.id for r in schedule_tick(second, AFTER)]
    assert len(first.store.runs(persona="campaign-reporter")) == 1
    first.close()
    second.close()
    return made


def test_two_workers_make_one_run_per_slot_on_sqlite(tmp_path: Path, sandbox: Sandbox) -> None:
    assert len(_two_workers_tick(Config(home=tmp_path / "h"), sandbox)) == 1


def test_two_workers_make_one_run_per_slot_on_postgres(tmp_path: Path, sandbox: Sandbox, pg_url: str) -> None:
    assert len(_two_workers_tick(Config(home=tmp_path / "h", database_url=pg_url), sandbox)) == 1


def test_a_scheduled_run_reports_the_day_before_its_slot(tmp_path: Path, sandbox: Sandbox) -> None:
    service = Service.open(Config(home=tmp_path / "h"), sandbox=sandbox)
    schedule_tick(service, START)
    [run] = schedule_tick(service, AFTER)
    done = service.execute(run.id)
    assert done.status == "done" and done.trigger == "schedule" and done.input == {"date": "2026-11-01"}
    report = tmp_path / "h" / "reports" / "2026-11-01"
    assert report.is_dir() and any(report.iterdir())
    service.close()


def test_a_report_whose_figures_are_missing_is_recorded_partial_not_done(
    tmp_path: Path, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Klaviyo failing the reporting call: the run finishes (files written, figures marked unavailable),
    which ``personas run`` exits 1 for; unattended it was recorded ``done``, so nobody looked."""
    service = Service.open(Config(home=tmp_path / "h"), sandbox=sandbox)
    schedule_tick(service, START)
    [run] = schedule_tick(service, AFTER)
    sandbox.faults = Faults(error_rate=1.0, status=400, operations=["query_campaign_values"])
    with caplog.at_level(logging.WARNING):
        ended = service.execute(run.id)
    assert ended.status == "partial" and "finished in part" in (ended.error or ""), ended
    assert f"run {run.id} of campaign-reporter finished in part" in caplog.text
    assert service.store.counts()["partial"] == 1 and service.store.runs(status="partial")[0].id == run.id
    service.close()


def test_a_failed_run_is_recorded_and_retried_from_its_checkpoint(tmp_path: Path, sandbox: Sandbox) -> None:
    service = Service.open(Config(home=tmp_path / "h"), sandbox=sandbox)
    event = sign_up(sandbox, "retry@example.com", HOT)
    spec = service.persona("lead-magnet-sequencer")
    run, _ = service.record_event(spec, event["data"]["id"], event, trigger="poll")
    sandbox.faults = Faults(error_rate=1.0, status=400, operations=["create_event"])  # the send is refused
    failed = service.execute(run.id)
    assert failed.status == "failed" and "400" in (failed.error or ""), failed
    assert service.store.counts()["failed"] == 1
    sandbox.faults = Faults()
    again = service.execute(service.retry(run.id).id)
    assert again.status == "done" and again.attempts == 2, again
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    assert len(sequence_starts(sandbox, pid)) == 1
    with pytest.raises(UsageProblem, match="only a failed run can be retried"):
        service.retry(run.id)
    service.close()


async def test_the_minute_tick_queues_due_slots_and_orphaned_runs(
    tmp_path: Path, sandbox: Sandbox, pg_url: str
) -> None:
    """procrastinate's periodic task body: due slots and runs recorded without a job become jobs, once."""
    import psycopg

    from personas.service.tasks import RUN_TASK, build_app, ensure_schema, tick_once

    service = Service.open(Config(home=tmp_path / "h", database_url=pg_url), sandbox=sandbox)
    app = build_app(pg_url)
    ensure_schema(app, pg_url)
    schedule_tick(service, START)
    orphan, _ = service.store.create_run("lead-magnet-sequencer", "event:orphan", "webhook", {})
    with psycopg.connect(pg_url, autocommit=True) as conn:  # recorded long ago, its receiver died before queueing
        conn.execute("UPDATE personas_runs SET updated = 0 WHERE id = %s", (orphan.id,))
    async with app.open_async():
        first = await tick_once(app, service, AFTER, catch_up="latest", stalled_after=60)
        again = await tick_once(app, service, AFTER + 60, catch_up="latest", stalled_after=60)
        jobs = await app.job_manager.list_jobs_async(task=RUN_TASK)
    slot = service.store.find("campaign-reporter", "schedule:2026-11-02T12:00:00+00:00")
    assert slot is not None and sorted(first) == sorted([slot.id, orphan.id])
    assert again == [orphan.id]  # still queued: offered again, and the queueing lock keeps it one job
    assert sorted(j.task_kwargs["run_id"] for j in jobs) == sorted([slot.id, orphan.id])
    service.close()


@pytest.mark.parametrize("stored", ["garbage", "nan", repr(AFTER + 400 * 86400)])
def test_a_damaged_or_future_schedule_cursor_starts_the_schedule_again_from_now(
        tmp_path: Path, sandbox: Sandbox, stored: str) -> None:
    """A cursor that is not a time up to now (damaged; or ahead, from a clock that was wrong and was
    put right) failed every tick with a traceback, or found no slot until that time came: the
    persona's schedule never ran again. Now it starts again from now, as a first sight does."""
    service = Service.open(Config(home=tmp_path / "h"), sandbox=sandbox)
    schedule_tick(service, START)
    service.store.set_cursor("schedule:campaign-reporter", stored)
    assert schedule_tick(service, AFTER) == []  # read again from now: nothing before it is missed
    [run] = schedule_tick(service, AFTER + 86400)
    assert run.key == "schedule:2026-11-03T12:00:00+00:00"
    service.close()
