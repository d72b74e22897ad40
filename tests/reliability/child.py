"""A worker process the kill suite SIGKILLs at a seeded point, then starts again to resume.

Run as ``python -m tests.reliability.child (leads|sync) WORK_DIR KLAVIYO_URL [KILL_JSON]`` from the
repository root, with ``PERSONAS_HOME`` set. It does what a worker does after a crash: every thread
it finds stopped is continued from its checkpoint (``RunDriver``), every thread not started yet is
started, and (for the syncer) each removal batch waiting for approval is approved by the request's
fingerprint, as a person at the REPL would. The Klaviyo sandbox is another process's server, so a
kill never takes Klaviyo's state with it.

``KILL_JSON`` (``{"where": ..., "attempt": K}`` or ``{"where": "after_step", "step": K}``) says where
this process kills itself with SIGKILL:

- ``before_send``: as HTTP attempt K is about to leave (nothing reaches Klaviyo);
- ``after_response``: once Klaviyo answered attempt K, before the client hears it (the write is
  applied; the answer and the audit row die with the process: "in flight");
- ``after_audit``: right after attempt K's audit row is written, before the step that made it ends;
- ``after_step``: after the K-th graph step reported its update.

Before dying it appends what it was doing to ``WORK_DIR/kills.jsonl`` (flushed and fsynced), so the
suite knows exactly which attempts were in flight. Answers given to approvals go to
``WORK_DIR/answers.jsonl``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from klaviyo_sandbox import DEMO_KEY
from klaviyo_toolkit.audit import AuditEntry, AuditLog
from klaviyo_toolkit.client import KlaviyoClient, RetryPolicy
from klaviyo_toolkit.clock import ManualClock, SystemClock
from klaviyo_toolkit.ratelimit import RateLimiter
from personas.kernel.config import Config
from personas.kernel.models import ScriptedChatModel
from personas.runtime import RunDriver, build_context, checkpointer
from personas.runtime.context import audit_anchor
from personas.runtime.loader import load_persona

from .fleet import PERSONA, Lead, picks_nurture

SYNC_THREAD = "sync-fleet"


class Plan:
    """Where to die (see module docstring); ``note`` is written just before."""

    def __init__(self, work: Path, spec: dict[str, Any] | None) -> None:
        self.work = work
        self.where = (spec or {}).get("where")
        self.at = int((spec or {}).get("attempt") or (spec or {}).get("step") or 0)
        self.attempts = self.rows = self.steps = 0
        self.operation = ""

    def die(self, **note: Any) -> None:
        with (self.work / "kills.jsonl").open("a", encoding="utf-8") as out:
            out.write(json.dumps({"where": self.where, "at": self.at, "operation": self.operation, **note}) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    def step(self) -> None:
        self.steps += 1
        if self.where == "after_step" and self.steps == self.at:
            self.die(in_flight=False)


class KillSwitch(httpx.BaseTransport):
    """The real HTTP transport, with a seeded death before or after attempt K."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        plan = self.plan
        plan.attempts += 1
        plan.operation = f"{request.method} {request.url.path}"
        if plan.where == "before_send" and plan.attempts == plan.at:
            plan.die(in_flight=False)
        if plan.where != "after_response" or plan.attempts != plan.at:
            return self.inner.handle_request(request)
        try:
            response = self.inner.handle_request(request)
            response.read()
        finally:  # answered, or its connection broke: the server has it either way
            plan.die(in_flight=True)
        return response  # pragma: no cover - the process is gone

    def close(self) -> None:
        self.inner.close()


class KillingAudit(AuditLog):
    """The state folder's audit log, which dies right after writing attempt K's row when told to."""

    plan: Plan

    def record(self, tool: str, status: Any, **fields: Any) -> AuditEntry:
        entry = super().record(tool, status, **fields)
        if status in ("ok", "error"):
            self.plan.rows += 1
            if self.plan.where == "after_audit" and self.plan.rows == self.plan.at:
                self.plan.die(in_flight=False)
        return entry


def client(url: str, plan: Plan) -> KlaviyoClient:
    """Our client on the served sandbox; retry waits on a manual clock (the suite never sleeps)."""
    return KlaviyoClient(api_key=DEMO_KEY, base_url=url, transport=KillSwitch(plan), clock=ManualClock(),
                         rate_limiter=RateLimiter(factor=None), retry=RetryPolicy(seed=plan.at))


def _advance(driver: RunDriver, plan: Plan, first_input: dict[str, Any] | None) -> None:
    """Start or continue one thread, counting its steps (a failure leaves it stopped for the next pass)."""
    payload = first_input if not driver.exists() else None
    for mode, _ in driver.stream(payload, modes=("updates",)):
        if mode == "updates":
            plan.step()


def run_leads(work: Path, url: str, plan: Plan, config: Config, audit: KillingAudit) -> int:
    leads = [Lead.from_json(item) for item in json.loads((work / "leads.json").read_text(encoding="utf-8"))]
    saver = checkpointer(config.path("checkpoints.sqlite"))
    kl = client(url, plan)
    left = 0
    for lead in leads:
        ctx = build_context(PERSONA, config=config, client=kl, thread_id=lead.thread, audit=audit,
                            model=ScriptedChatModel([picks_nurture] * 6))
        driver = RunDriver(ctx, saver)
        if driver.exists() and driver.result().status == "done":
            continue
        try:
            _advance(driver, plan, {"input": lead.event})
        except Exception as exc:
            print(f"{lead.thread}: stopped ({type(exc).__name__})", flush=True)
        left += driver.result().status != "done"
    return left


def run_sync(work: Path, url: str, plan: Plan, config: Config, audit: KillingAudit) -> int:
    job = json.loads((work / "sync.json").read_text(encoding="utf-8"))
    spec = load_persona("segment-syncer")
    spec = spec.model_copy(update={"settings": {**spec.settings, **job["settings"]}})
    saver = checkpointer(config.path("checkpoints.sqlite"))
    ctx = build_context(spec, config=config, client=client(url, plan), thread_id=SYNC_THREAD, audit=audit,
                        clock=SystemClock())
    driver = RunDriver(ctx, saver)
    for _ in range(200):
        result = driver.result()
        if driver.exists() and result.status == "done":
            return 0
        try:
            if result.status == "paused":
                pending = driver.pending()
                answers = {p.value["fingerprint"]: {"action": "approve", "fingerprint": p.value["fingerprint"]}
                           for p in pending}
                with (work / "answers.jsonl").open("a", encoding="utf-8") as out:
                    for p in pending:
                        out.write(json.dumps({"fingerprint": p.value["fingerprint"], "tool": p.value["tool"],
                                              "args": p.value["args"]}) + "\n")
                for mode, _ in driver.stream(resume=answers, modes=("updates",)):
                    if mode == "updates":
                        plan.step()
            else:
                _advance(driver, plan, {"input": job["input"]})
        except Exception as exc:
            print(f"sync: stopped ({type(exc).__name__}: {exc})", flush=True)
    return 1


def main(argv: list[str]) -> int:
    kind, work_dir, url = argv[:3]
    work = Path(work_dir)
    plan = Plan(work, json.loads(argv[3]) if len(argv) > 3 else None)
    config = Config.from_env()
    audit = KillingAudit(config.path("audit.sqlite"), anchor=audit_anchor(config))
    audit.plan = plan
    left = (run_leads if kind == "leads" else run_sync)(work, url, plan, config, audit)
    print(json.dumps({"finished": True, "left": left, "attempts": plan.attempts}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
