"""Leads under faults: 5% 5xx, 5% 429, 2% dropped connections and writes applied with their answer lost.

After the retries an operator would do (``RunDriver.retry()`` on each stopped thread), every lead
with consent has exactly one sequence start, one first touchpoint and the sequence recorded on its
profile; every other lead has none; and the audit log holds one row per HTTP attempt, matching the
sandbox's request log operation by operation and status by status (``fleet.py`` says why that is
exact). The default run takes 100 leads; ``-m reliability`` adds the 1,000-lead run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from klaviyo_sandbox import Faults
from klaviyo_toolkit.client import RetryPolicy
from klaviyo_toolkit.errors import ServerError
from klaviyo_toolkit.ratelimit import RateLimiter
from personas.kernel.config import Config
from personas.runtime.context import audit_log

from .fleet import Operator, faults, lead_sandbox, outcome, run_fleet, seed_leads, starts_by_profile

pytestmark = pytest.mark.reliability


def test_100_leads_under_the_issues_faults_none_lost_none_twice_every_attempt_audited(_home: Path) -> None:
    run = run_fleet(100, seed=11, fault_settings=faults(seed=11), home=_home)
    out = run.outcome
    assert out.ok, out.explain()
    assert out.should_start > 70 and out.started_once == out.should_start
    assert out.client_attempts == out.server_attempts > 600
    assert set(out.faults) == {"dropped", "error", "lost_response", "storm"}, "every kind of fault happened"


def test_leads_under_heavy_faults_stop_and_are_retried_to_the_same_end(_home: Path) -> None:
    """A fault rate the client's own retries cannot absorb: threads stop (at any step) and the
    operator's retries finish them, still with one start per lead and every attempt audited."""
    heavy = faults(seed=12, error_rate=0.2, storm_rate=0.2, drop_rate=0.05, lost_response_rate=0.05)
    run = run_fleet(40, seed=12, fault_settings=heavy, home=_home)
    assert run.outcome.ok, run.outcome.explain()
    assert run.retries >= 3 and {"ServerError", "RateLimitError"} <= set(run.failures), run.failures


def test_a_submission_delivered_again_starts_no_second_sequence_and_keeps_the_first_recorded(_home: Path) -> None:
    """Every lead's webhook delivered three times, each on its own thread: right after the first
    (Klaviyo not yet showing its start: the send's unique_id keeps one) and ten minutes later (the
    run finds the start and sends nothing). One start, one touchpoint, and no later run erases the
    sequence the first one recorded on the profile."""
    run = run_fleet(12, seed=13, fault_settings=faults(seed=13), home=_home, repeat_every=1)
    assert run.outcome.ok, run.outcome.explain()
    assert run.outcome.started_once == run.outcome.should_start > 6


def test_a_profile_record_that_keeps_failing_stops_at_record_and_a_retry_records_the_sequence(_home: Path) -> None:
    sb = lead_sandbox(realistic=False)
    (lead,) = [x for x in seed_leads(sb, 8, seed=3) if x.should_start][:1]
    config = Config.from_env()
    client = sb.client(rate_limiter=RateLimiter(factor=None), clock=sb.clock, retry=RetryPolicy(max_retries=3))
    operator = Operator(client, config, sb.clock)
    sb.log.clear()
    sb.faults = Faults(error_rate=1.0, status=503, operations=["update_profile"], count=4)  # one more than retries
    driver = operator.driver(lead)
    with pytest.raises(ServerError):
        driver.invoke({"input": lead.event})
    stopped = driver.result()
    assert stopped.status == "stopped" and stopped.next == ("record",), "resumable at the record, not finished"
    assert len(starts_by_profile(sb)[lead.profile_id]) == 1, "the send before it is done and checkpointed"
    assert operator.driver(lead).retry().status == "done"
    properties = sb.store.get("profile", lead.profile_id).attributes["properties"]
    assert properties["lead_sequence"] == starts_by_profile(sb)[lead.profile_id][0]
    result = outcome(sb, [lead], {lead.thread: "done"}, audit_log(config))
    assert result.ok and result.started_once == 1, result.explain()


@pytest.mark.reliability_full
def test_1000_leads_under_the_issues_faults(_home: Path) -> None:
    run = run_fleet(1000, seed=21, fault_settings=faults(seed=21), home=_home)
    out = run.outcome
    assert out.ok, out.explain()
    assert out.leads == 1000 and out.started_once == out.should_start > 800
    assert out.client_attempts == out.server_attempts > 6000
