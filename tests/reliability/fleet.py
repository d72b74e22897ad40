"""A fleet of lead-magnet sign-ups in a sandbox, the sequencer run over them, and what must hold after.

Shared by the reliability tests (``tests/reliability/``) and ``benchmarks/reliability.py``:

- :func:`lead_sandbox` makes a sandbox with Klaviyo's timing (``realistic``), a manual clock, every
  request kept in its log, and a live flow per lead sequence (the flow puts the first touchpoint in
  the outbox when its sequence starts);
- :func:`seed_leads` signs ``n`` leads up the way the form does: profiles imported in bulk, most of
  them with email consent (the rest never consented, or are suppressed: they must get nothing), each
  with a form submission, handed to the sequencer as Klaviyo's Get Event document;
- :class:`Operator` runs the sequencer once per lead on its own thread and then does what a person
  on call would: ``RunDriver.retry()`` every thread that stopped, until none is left;
- :func:`outcome` counts, lead by lead, sequence starts (the trigger events), first touchpoints
  (the outbox), the sequence recorded on the profile, and compares the audit log with the sandbox's
  request log attempt by attempt (see :func:`attempts`).

"Attempt" is one HTTP request the client sent, whatever became of it: answered (any status),
dropped before it was handled, or handled with its answer lost. The client's side of it is the
audit log's ``ok``/``error`` rows (one per attempt, retries included); the server's side is the
sandbox's request log (every request that reached its door, dropped ones included; the ``ASYNC``
entries are Klaviyo applying an accepted write later, not requests). In-process nothing can fail
before the door, so the two must be equal, operation by operation and status by status (a dropped
or lost answer has no status on the client's side).
"""

from __future__ import annotations

import collections
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from evals.fixtures import Fixture as SandboxFixture
from evals.fixtures import FlowFixture, FlowMessage, FlowTrigger, build_fixture, finish_jobs
from klaviyo_sandbox import Faults, Sandbox
from klaviyo_toolkit.audit import AuditLog
from klaviyo_toolkit.client import KlaviyoClient, RetryPolicy
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.ratelimit import RateLimiter
from personas.kernel.config import Config
from personas.kernel.models import ScriptedChatModel
from personas.runtime import RunDriver, build_context, checkpointer

PERSONA = "lead-magnet-sequencer"
SEQUENCES = ("fast-track", "nurture", "education")
TRIGGER = "Lead Sequence Started"
FORM = "Form submitted by profile"
#: Monday 2026-11-23 14:00 UTC: inside the send window, so schedules vary only by time zone.
START = 1_795_442_400.0
ANSWERS = (
    {"company_size": "201-1000", "role": "Outdoor program director", "interest": "team outfitting",
     "timeline": "this month", "budget": "$5k-$25k"},  # hot
    {"company_size": "11-50", "role": "Trip leader", "interest": "guided trips", "timeline": "this quarter",
     "budget": "$1k-$5k"},  # warm
    {"company_size": "1-10", "role": "Enthusiast", "interest": "just the guide", "timeline": "just browsing",
     "budget": "<$1k"},  # cold
)
TIMEZONES = ("America/New_York", "America/Denver", "Europe/Berlin", "Asia/Tokyo", None)
#: The faults of the issue: 5% 5xx, 5% 429, 2% dropped connections, and writes applied with their answer lost.
ISSUE_FAULTS = {"error_rate": 0.05, "status": 503, "storm_rate": 0.05, "drop_rate": 0.02, "lost_response_rate": 0.02}


def faults(seed: int, **overrides: Any) -> Faults:
    """The issue's faults, seeded (``storm_retry_after`` 1 s, waited on the manual clock)."""
    return Faults(**{**ISSUE_FAULTS, **overrides}, seed=seed)


@dataclass(frozen=True)
class Lead:
    """One sign-up: who, their consent, and the Get Event document the sequencer is given."""

    index: int
    email: str
    profile_id: str
    consent: str  # "subscribed" | "never" | "suppressed"
    event: dict[str, Any]

    @property
    def thread(self) -> str:
        return f"lead-{self.index:05d}"

    @property
    def should_start(self) -> bool:
        """Only a lead with email marketing consent gets a sequence (and exactly one)."""
        return self.consent == "subscribed"

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "email": self.email, "profile_id": self.profile_id, "consent": self.consent,
                "event": self.event}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Lead:
        return cls(int(data["index"]), str(data["email"]), str(data["profile_id"]), str(data["consent"]),
                   dict(data["event"]))


def lead_sandbox(*, state: Path | None = None, realistic: bool = True, seed: int = 7,
                 clock: ManualClock | None = None) -> Sandbox:
    """An empty sandbox for a fleet: Klaviyo's timing, limits off (429s come from storms), every request logged."""
    return Sandbox(demo_data=False, seed=seed, state=state, rate_limit_factor=None, realistic=realistic,
                   clock=clock if clock is not None else ManualClock(START), request_log_size=None)


def setup_client(sb: Sandbox) -> KlaviyoClient:
    """A client for building fixtures: no pacing, no faults expected."""
    return sb.client(rate_limiter=RateLimiter(factor=None))


def settle_jobs(sb: Sandbox) -> None:
    """Let bulk jobs and asynchronous writes finish, as a caller of Klaviyo would wait for them."""
    if isinstance(sb.clock, ManualClock):
        finish_jobs(sb)
    else:
        sb.settle()


def add_sequence_flows(sb: Sandbox, client: KlaviyoClient) -> None:
    """A live flow per sequence, triggered by its start event, whose first message is the first touchpoint."""
    flows = [
        FlowFixture(name=f"Lead sequence: {name}", trigger=FlowTrigger(metric=TRIGGER, where={"sequence": name}),
                    messages=[FlowMessage(subject=f"{name}: your Trail Guide"),
                              FlowMessage(subject=f"{name}: day two", delay_days=2)])
        for name in SEQUENCES
    ]
    build_fixture(sb, client, SandboxFixture(flows=flows), sb.clock.time())


def seed_leads(sb: Sandbox, n: int, *, seed: int = 1, first: int = 0) -> list[Lead]:
    """Sign ``n`` leads up (85% with consent, 10% never asked, 5% suppressed); their Get Event documents."""
    rng = random.Random(seed)
    client = setup_client(sb)
    if sb.seeding.find_metric(TRIGGER) is None:
        add_sequence_flows(sb, client)
    people = []
    for i in range(first, first + n):
        roll = rng.random()
        consent = "subscribed" if roll < 0.85 else "never" if roll < 0.95 else "suppressed"
        people.append((i, f"lead{i:05d}@fleet.example", consent, rng.choice(ANSWERS), rng.choice(TIMEZONES)))
    for chunk in _chunks(people, 1000):
        rows = [{"email": email, **({"location": {"timezone": tz}} if tz else {})} for _, email, _, _, tz in chunk]
        client.call("bulk_import_profiles", profiles=rows)
    settle_jobs(sb)
    consenting = [email for _, email, consent, _, _ in people if consent != "never"]
    for emails in _chunks(consenting, 1000):
        client.call("bulk_subscribe_profiles", custom_source="Trail Guide form", profiles=[
            {"email": e, "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}} for e in emails])
    settle_jobs(sb)
    suppressed = [email for _, email, consent, _, _ in people if consent == "suppressed"]
    for emails in _chunks(suppressed, 100):
        client.call("bulk_suppress_profiles", profiles=[{"email": e} for e in emails])
    settle_jobs(sb)
    ids = {p["email"]: p["id"] for p in client.iterate("get_profiles", page_size=100)}
    leads = []
    for i, email, consent, answers, _ in people:
        event = sb.seeding.event(ids[email], FORM, {"form_id": "TRAILG", "form_name": "Trail Guide", **answers},
                                 unique_id=f"form:{email}", trigger_flows=False)
        doc = client.call("get_event", id=event.id, include=["profile", "metric"]).body
        leads.append(Lead(i, email, ids[email], consent, dict(doc)))
    client.close()
    return leads


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def picks_nurture(messages: list[BaseMessage]) -> AIMessage:
    """A scripted model that always wants the nurture sequence (out of policy for cold leads: the
    policy then decides, and the run says so)."""
    return AIMessage("", tool_calls=[{"name": "choose_sequence", "id": "pick",
                                      "args": {"sequence": "nurture", "reason": "fits most leads"}}])


class Operator:
    """Runs the sequencer for each lead on its own thread, then retries stopped threads as a person would.

    Args:
        client: the Klaviyo client every run uses (the sandbox's, with faults and a manual clock).
        config: where the checkpoints and the audit log live.
        clock: the runs' clock (the sandbox's, so schedules and retries see the same time).
    """

    def __init__(self, client: KlaviyoClient, config: Config, clock: ManualClock, saver: Any = None) -> None:
        self.client = client
        self.config = config
        self.clock = clock
        self.saver = saver if saver is not None else checkpointer(config.path("checkpoints.sqlite"))
        self.failures: collections.Counter[str] = collections.Counter()
        self.retries = 0

    def driver(self, lead: Lead) -> RunDriver:
        ctx = build_context(PERSONA, config=self.config, client=self.client, thread_id=lead.thread,
                            clock=self.clock, model=ScriptedChatModel([picks_nurture] * 6))
        return RunDriver(ctx, self.saver)

    def _go(self, lead: Lead, first: bool) -> str:
        driver = self.driver(lead)
        try:
            result = driver.invoke({"input": lead.event}) if first else driver.retry()
        except Exception as exc:  # the thread stops at the failed step; it is retried later
            self.failures[type(exc).__name__] += 1
            return "stopped"
        return result.status

    def run(self, leads: Sequence[Lead], *, max_passes: int = 8) -> dict[str, str]:
        """Every lead's final status (``done`` unless it kept failing for ``max_passes`` retries)."""
        status = {lead.thread: self._go(lead, True) for lead in leads}
        for _ in range(max_passes):
            stopped = [lead for lead in leads if status[lead.thread] == "stopped"]
            if not stopped:
                break
            for lead in stopped:
                self.retries += 1
                status[lead.thread] = self._go(lead, False)
        return status


# -- what must hold ------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What happened to a fleet, lead by lead and attempt by attempt (every figure the suite checks)."""

    leads: int = 0
    should_start: int = 0
    started_once: int = 0
    lost: list[str] = field(default_factory=list)  # should start, did not (no start event or no touchpoint)
    duplicates: list[str] = field(default_factory=list)  # two starts or two first touchpoints
    started_wrongly: list[str] = field(default_factory=list)  # started though not eligible
    wrong_record: list[str] = field(default_factory=list)  # profile's lead_sequence is not the sequence started
    not_done: list[str] = field(default_factory=list)
    client_attempts: int = 0
    server_attempts: int = 0
    attempt_mismatch: dict[str, int] = field(default_factory=dict)  # (operation status) -> server - client
    faults: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicates or self.started_wrongly or self.wrong_record or self.not_done
                    or self.attempt_mismatch)

    def explain(self) -> str:
        parts = {k: v for k, v in {
            "lost": self.lost[:10], "duplicates": self.duplicates[:10], "started wrongly": self.started_wrongly[:10],
            "wrong record on the profile": self.wrong_record[:10], "threads not done": self.not_done[:10],
            "attempts, server minus client": self.attempt_mismatch}.items() if v}
        return f"{self.leads} leads: " + "; ".join(f"{k}: {v}" for k, v in parts.items())


def starts_by_profile(sb: Sandbox) -> dict[str, list[str]]:
    """Profile id -> the sequences of its ``Lead Sequence Started`` events, from the store."""
    metric = sb.seeding.find_metric(TRIGGER)
    out: dict[str, list[str]] = collections.defaultdict(list)
    if metric is None:
        return out
    for event in sb.store.all("event"):
        if event.linked("metric") == [("metric", metric.id)]:
            (_, pid), = event.linked("profile")
            out[pid].append(str(event.attributes["event_properties"].get("sequence")))
    return out


def touchpoints_by_profile(sb: Sandbox) -> dict[str, int]:
    """Profile id -> first touchpoints (a flow's first message) in the outbox."""
    counts: dict[str, int] = collections.Counter()
    for message in sb.outbox(source="flow"):
        if message.get("position") == 1:
            counts[str(message.get("profile_id"))] += 1
    return counts


def attempts(audit: AuditLog, threads: Iterable[str], sb: Sandbox, since: int = 0) -> tuple[
        collections.Counter[tuple[str, Any]], collections.Counter[tuple[str, Any]]]:
    """(client's attempts, server's attempts) as counts of ``(operation, status)``; a dropped connection
    or a lost answer has status None on both sides (the client never saw one)."""
    wanted = set(threads)
    client: collections.Counter[tuple[str, Any]] = collections.Counter()
    for row in audit.query(limit=None):
        if row.status in ("ok", "error") and row.thread_id in wanted:
            client[(row.tool, row.http_status)] += 1
    server: collections.Counter[tuple[str, Any]] = collections.Counter()
    for entry in list(sb.requests)[since:]:
        if entry["method"] == "ASYNC":
            continue
        lost = entry.get("fault") in ("dropped", "lost_response")
        server[(entry["operation_id"], None if lost else entry["status"])] += 1
    return client, server


def fault_counts(sb: Sandbox, since: int = 0) -> dict[str, int]:
    found = collections.Counter(e.get("fault") for e in list(sb.requests)[since:] if e["method"] != "ASYNC")
    return {str(k): v for k, v in sorted(found.items(), key=lambda kv: str(kv[0])) if k}


def outcome(sb: Sandbox, leads: Sequence[Lead], status: Mapping[str, str], audit: AuditLog, *,
            log_from: int = 0, in_flight: int = 0) -> Outcome:
    """Everything the suite checks about a fleet after its runs (the sandbox settled first).

    ``leads`` are the people (one each); ``status`` has every run's final status by thread (a lead
    whose submission was delivered twice has two), and the attempts compared are those runs'.

    ``in_flight``: requests the server answered whose client was killed before it could write its
    audit row (known exactly by the kill suite); they are the only allowed gap between the two sides.
    """
    sb.settle()
    starts, touches = starts_by_profile(sb), touchpoints_by_profile(sb)
    out = Outcome(leads=len(leads), should_start=sum(lead.should_start for lead in leads))
    profiles = {p.id: p for p in sb.store.all("profile")}
    out.not_done = [f"{lead.thread}: missing" for lead in leads if lead.thread not in status]
    out.not_done += [f"{thread}: {st}" for thread, st in status.items() if st != "done"]
    for lead in leads:
        got, touched = starts.get(lead.profile_id, []), touches.get(lead.profile_id, 0)
        if not lead.should_start:
            if got or touched:
                out.started_wrongly.append(f"{lead.email} ({lead.consent}): {len(got)} starts, {touched} touchpoints")
            continue
        if len(got) > 1 or touched > 1:
            out.duplicates.append(f"{lead.email}: {len(got)} starts, {touched} touchpoints")
        elif len(got) == 0 or touched == 0:
            out.lost.append(f"{lead.email}: {len(got)} starts, {touched} touchpoints")
        else:
            out.started_once += 1
            recorded = (profiles[lead.profile_id].attributes.get("properties") or {}).get("lead_sequence")
            if recorded != got[0]:
                out.wrong_record.append(f"{lead.email}: started {got[0]!r}, profile says {recorded!r}")
    client, server = attempts(audit, status, sb, log_from)
    out.client_attempts, out.server_attempts = sum(client.values()), sum(server.values())
    diff = {f"{op} {st}": server[(op, st)] - client[(op, st)] for op, st in set(client) | set(server)
            if server[(op, st)] != client[(op, st)]}
    if sum(diff.values()) != in_flight or any(v < 0 for v in diff.values()):
        out.attempt_mismatch = diff
    out.faults = fault_counts(sb, log_from)
    return out


@dataclass
class FleetRun:
    """A fleet run's outcome and what it took."""

    outcome: Outcome
    retries: int
    failures: dict[str, int]
    seconds: float


def run_fleet(n: int, *, seed: int, fault_settings: Faults, home: Path, repeat_every: int = 0) -> FleetRun:
    """Sign ``n`` leads up, run the sequencer over them under ``fault_settings`` as an operator would,
    and check the outcome.

    ``repeat_every``: every k-th lead's submission is delivered twice more (a webhook its sender
    retried), each on its own thread: once right after the first, before Klaviyo shows the first
    run's start, and once ten minutes later, when it does."""
    import time

    sb = lead_sandbox(seed=seed)
    leads = seed_leads(sb, n, seed=seed)
    runs: list[Lead] = []
    late: list[Lead] = []
    for lead in leads:
        runs.append(lead)
        if repeat_every and lead.index % repeat_every == 0:
            runs.append(Lead(lead.index + 1_000_000, lead.email, lead.profile_id, lead.consent, lead.event))
            late.append(Lead(lead.index + 2_000_000, lead.email, lead.profile_id, lead.consent, lead.event))
    sb.log.clear()
    sb.faults = fault_settings
    config = Config.from_env().replace(home=home)
    clock = sb.clock
    assert isinstance(clock, ManualClock)
    client = sb.client(rate_limiter=RateLimiter(factor=None), clock=clock, retry=RetryPolicy(seed=seed))
    operator = Operator(client, config, clock)
    started = time.perf_counter()
    status = operator.run(runs)
    if late:
        clock.advance(600)
        status.update(operator.run(late))
    seconds = time.perf_counter() - started
    from personas.runtime.context import audit_log

    result = outcome(sb, leads, status, audit_log(config))
    client.close()
    sb.close()
    return FleetRun(result, operator.retries, dict(operator.failures), seconds)
