"""Driving worker processes through seeded SIGKILLs and resumes (see ``child.py`` for the kill points).

A :class:`KillRun` serves one sandbox on a local port (this process, a uvicorn thread: Klaviyo
outlives its clients), runs the child worker once per kill plan (each one SIGKILLed at its point,
or finishing first), then runs it again without a plan until no thread is left unfinished, as an
operator restarting a crashed worker would.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import SystemClock
from personas.kernel.config import Config
from personas.runtime import RunDriver, build_context, checkpointer
from personas.runtime.context import audit_log
from tests.sandbox.conftest import serve

from .child import SYNC_THREAD
from .fleet import PERSONA, Outcome, attempts, faults, lead_sandbox, outcome, seed_leads
from .syncjob import SyncOutcome, check_sync, make_sync, read_jsonl

ROOT = Path(__file__).resolve().parents[2]
WHERE = ("before_send", "after_response", "after_audit", "after_step")


def kill_plans(count: int, seed: int, *, attempt_span: int, step_span: int) -> list[dict[str, Any]]:
    """``count`` seeded kill points: where (each of the four in turn, then at random) and at which
    attempt or step of that worker's life (uniform in 1..span)."""
    rng = random.Random(seed)
    plans = []
    for n in range(count):
        where = WHERE[n] if n < len(WHERE) else rng.choice(WHERE)
        if where == "after_step":
            plans.append({"where": where, "step": rng.randint(1, step_span)})
        else:
            plans.append({"where": where, "attempt": rng.randint(1, attempt_span)})
    return plans


@dataclass
class KillTally:
    """What the workers did: kills that landed (with where), runs that finished first, in-flight attempts."""

    kills: list[dict[str, Any]] = field(default_factory=list)
    finished_early: int = 0
    passes: int = 0
    workers: int = 0

    @property
    def in_flight(self) -> int:
        """Attempts Klaviyo answered whose worker died before writing their audit row."""
        return sum(1 for k in self.kills if k.get("in_flight"))

    def by_where(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for kill in self.kills:
            counts[kill["where"]] = counts.get(kill["where"], 0) + 1
        return counts


class KillRun:
    """One kind of worker (``leads`` or ``sync``) against one served sandbox, in ``work``."""

    def __init__(self, kind: str, work: Path, url: str) -> None:
        self.kind, self.work, self.url = kind, work, url
        self.home = work / "home"
        self.tally = KillTally()

    def _worker(self, plan: dict[str, Any] | None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PERSONAS_HOME": str(self.home), "PYTHONPATH": str(ROOT)}
        env.pop("OPENAI_API_KEY", None)
        argv = [sys.executable, "-m", "tests.reliability.child", self.kind, str(self.work), self.url]
        if plan is not None:
            argv.append(json.dumps(plan))
        self.tally.workers += 1
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)

    def _kills_so_far(self) -> list[dict[str, Any]]:
        path = self.work / "kills.jsonl"
        return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []

    def kill(self, plans: list[dict[str, Any]]) -> None:
        """One worker per plan; each must die by SIGKILL at its point, or finish before reaching it."""
        for plan in plans:
            done = self._worker(plan)
            if done.returncode == -signal.SIGKILL:
                continue
            assert done.returncode == 0, f"worker failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            self.tally.finished_early += 1
        self.tally.kills = self._kills_so_far()
        assert len(self.tally.kills) == len(plans) - self.tally.finished_early

    def finish(self, max_passes: int = 6) -> int:
        """Restart the worker (no kill) until nothing is left; the number of unfinished threads."""
        left = -1
        for _ in range(max_passes):
            done = self._worker(None)
            assert done.returncode == 0, f"worker failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            self.tally.passes += 1
            left = json.loads(done.stdout.strip().splitlines()[-1])["left"]
            if left == 0:
                break
        return left


@contextlib.contextmanager
def served(sb: Sandbox) -> Iterator[str]:
    """``sb`` on a local port for the workers; its base URL."""
    with serve(sb.app) as url:
        yield url


def kill_leads(work: Path, *, leads: int, kills: int, seed: int) -> tuple[Outcome, KillTally]:
    """Sign ``leads`` up, run the sequencer's workers through ``kills`` seeded kills under the issue's
    faults, restart them until every thread is done, and check the fleet (see ``fleet.outcome``)."""
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
    """A sync (``syncjob.make_sync(**size)``) through ``kills`` seeded kills under the issue's faults;
    its outcome, the kills, and the attempts the sandbox saw (audit rows = those minus the in-flight)."""
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
