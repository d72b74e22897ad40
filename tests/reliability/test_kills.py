"""Seeded SIGKILLs of the sequencer and the syncer, then resumes in new processes, under the same faults.

Each worker is a real child process (``child.py``) talking HTTP to a sandbox served from this
process; it is SIGKILLed at a seeded point: before an attempt leaves, after Klaviyo answered it but
before the client heard (the write applied, its answer and audit row lost with the process), right
after an attempt's audit row, or after a graph step. A new worker then resumes every thread from
its SQLite checkpoint. After the last one:

- the sequencer: every lead with consent has one start, one first touchpoint and the sequence on
  its profile; no other lead has any; the audit chain verifies;
- the syncer: the list equals the source, every consenting row is subscribed, each removal sent had
  an approval for exactly that request, and no answer went to a request that was never shown;
- both: audit rows = attempts the sandbox saw, except the attempts in flight when a worker died
  (the only rows no process could write), counted exactly from the kill points.

The default run kills each 4 times (one of each kind); ``-m reliability`` adds 20 + 20.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import SystemClock
from personas.kernel.config import Config
from personas.runtime import RunDriver, build_context, checkpointer
from personas.runtime.context import audit_log

from .child import SYNC_THREAD
from .fleet import PERSONA, Outcome, attempts, faults, lead_sandbox, outcome, seed_leads
from .kills import KillRun, KillTally, kill_plans, served
from .syncjob import SyncOutcome, check_sync, make_sync, read_jsonl

pytestmark = pytest.mark.reliability


def kill_leads(work: Path, *, leads: int, kills: int, seed: int) -> tuple[Outcome, KillTally]:
    sb = lead_sandbox(seed=seed)
    fleet = seed_leads(sb, leads, seed=seed)
    (work / "leads.json").write_text(json.dumps([lead.to_json() for lead in fleet]), encoding="utf-8")
    sb.log.clear()
    sb.faults = faults(seed=seed)
    with served(sb) as url:
        run = KillRun("leads", work, url)
        run.kill(kill_plans(kills, seed, attempt_span=max(2, 6 * leads // kills), step_span=max(2, 4 * leads // kills)))
        assert run.finish() == 0, "every thread finished after the restarts"
    config = Config.from_env().replace(home=run.home)
    saver = checkpointer(config.path("checkpoints.sqlite"))
    status = {}
    for lead in fleet:
        ctx = build_context(PERSONA, config=config, client=sb.client(), thread_id=lead.thread, audit=False)
        status[lead.thread] = RunDriver(ctx, saver).result().status
    audit = audit_log(config)
    result = outcome(sb, fleet, status, audit, in_flight=run.tally.in_flight)
    assert audit.verify(), "the anchored audit chain survives every kill"
    sb.close()
    return result, run.tally


def kill_sync(work: Path, *, kills: int, seed: int, **size: int) -> tuple[SyncOutcome, KillTally, int]:
    sb = Sandbox(demo_data=False, rate_limit_factor=None, request_log_size=None, clock=SystemClock(),
                 job_seconds=0.2, seed=seed)
    job = make_sync(sb, work, **size)
    sb.log.clear()
    sb.faults = faults(seed=seed)
    with served(sb) as url:
        run = KillRun("sync", work, url)
        run.kill(kill_plans(kills, seed, attempt_span=4, step_span=2))
        assert run.finish() == 0, "the sync finished after the restarts"
    config = Config.from_env().replace(home=run.home)
    audit = audit_log(config)
    result = check_sync(sb, job, audit, SYNC_THREAD, read_jsonl(work / "answers.jsonl"))
    client, server = attempts(audit, [SYNC_THREAD], sb)
    gap = {k: server[k] - client[k] for k in set(client) | set(server) if server[k] != client[k]}
    assert all(v > 0 for v in gap.values()) and sum(gap.values()) == run.tally.in_flight, (gap, run.tally.kills)
    assert audit.verify()
    sb.close()
    return result, run.tally, sum(server.values())


def test_the_sequencer_killed_four_ways_resumes_to_one_start_per_lead(tmp_path: Path) -> None:
    result, tally = kill_leads(tmp_path, leads=20, kills=4, seed=31)
    assert result.ok, result.explain()
    assert tally.by_where() == {"before_send": 1, "after_response": 1, "after_audit": 1, "after_step": 1}
    assert result.started_once == result.should_start > 12
    assert result.server_attempts - result.client_attempts == tally.in_flight == 1


def test_the_syncer_killed_four_ways_resumes_to_the_source_with_every_removal_approved(tmp_path: Path) -> None:
    result, tally, _ = kill_sync(tmp_path, kills=4, seed=32, members=300, removes=100, adds=150)
    assert result.ok, result.explain()
    assert len(tally.kills) == 4 and result.removal_batches == 2 and result.approvals >= 2


@pytest.mark.reliability_full
def test_the_sequencer_killed_twenty_times(tmp_path: Path) -> None:
    result, tally = kill_leads(tmp_path, leads=200, kills=20, seed=41)
    assert result.ok, result.explain()
    assert len(tally.kills) == 20 and set(tally.by_where()) == {"before_send", "after_response", "after_audit",
                                                                "after_step"}


@pytest.mark.reliability_full
def test_the_syncer_killed_twenty_times(tmp_path: Path) -> None:
    result, tally, _ = kill_sync(tmp_path, kills=20, seed=42, members=1200, removes=400, adds=600)
    assert result.ok, result.explain()
    assert len(tally.kills) == 20 and result.removal_batches == 8
