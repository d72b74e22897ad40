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

from pathlib import Path

import pytest

from .kills import kill_leads, kill_sync

pytestmark = pytest.mark.reliability


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
