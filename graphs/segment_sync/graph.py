"""The segment syncer: make a Klaviyo list hold exactly a source's people, in the fewest calls.

::

    prepare -> read_target -> read_source -> diff -> plan -+-> apply (one batch per step) -> verify -> report
                                                            +-> report   (dry run, or nothing to change)

- **Reads** stream into the plan's SQLite file (``plan.py``); the diff is SQL. The state holds only
  counts and a batch cursor, so checkpoints stay small whatever the source's size.
- **Adds** from a file go through ``bulk_import_profiles`` with the target list in its relationships:
  one call per 1,000 rows creates or updates the profiles (names, phone, external id) *and* adds them
  to the list, with no profile-id lookups at all; ``add_profiles_to_list`` would need each id first
  (a lookup call per 100 emails, plus creating the missing ones). From a list or segment, the ids are
  known, so adds use ``add_profiles_to_list`` directly. Neither changes consent.
- **Subscribes** need explicit consent in the source: only those rows go through
  ``bulk_subscribe_profiles`` (with the list; a person in several rows only if every one says yes,
  else a reported consent conflict), and never a profile that is suppressed or unsubscribed
  from this list (members' state comes with the list read; other consenting rows are looked up, 100
  emails per call, then the phone numbers and external ids no known profile holds: the import puts a
  row on the profile any of them names, and the subscribe follows it there; a row naming two profiles
  is sent in no batch, ``identity.py``). Suppressed profiles are reported. A person this syncer asked
  before and who has not confirmed (a double opt-in list) is not asked again for a while (``optin.py``).
- **Removes** (``remove_profiles_from_list``) are destructive: the approval guard stops each batch
  for a human (approve: it runs; reject: skipped and reported) unless the persona's policy says not.
- **Rows Klaviyo refuses** do not sink their batch: when a batch call fails because of particular
  rows (a 4xx whose JSON:API errors point at items, ``/data/attributes/profiles/data/3/...`` or
  ``/data/3/id``, or the toolkit's own check naming ``profiles[3]``), those rows are moved to
  ``invalid`` with Klaviyo's reason and the rest of the batch is sent again in the next step (its
  own call, approved on its own if the policy asks). An answer that lists every bad item (JSON:API
  ``errors`` is a list) costs one more call per such batch; a server that names one row per answer
  (as the sandbox does) costs one call per bad row, up to ``REFUSAL_ROUNDS``, after which the rest
  of the batch is reported failed. Rows are only ever taken out, never added, so nobody is
  subscribed without the consent the plan found. An
  error that names no row (the list, the key, the whole payload) fails every subset of the batch
  too, so the batch is reported failed with the reason and nothing is split: bisecting would cost
  up to 2n-1 calls and refuse nothing more, and a rerun after the fix sends it again.
- Each finished batch is recorded in the plan before the step ends; a killed or failed run resumes
  from its checkpoint at the first unfinished batch. Every batch write is idempotent by what it does
  (membership is a set, subscribing twice subscribes once, an import upserts), so the one batch that
  may have been applied before a crash or a lost response is safely sent again. Klaviyo has no
  idempotency-key header, and nothing here relies on one.
- Progress goes to ``runtime.stream_writer`` as ``{"phase", "done", "total", ...}`` events.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypedDict

from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from klaviyo_toolkit.errors import (
    InvalidArgumentError,
    KlaviyoAPIError,
    NotFoundError,
    ServerError,
    TransportError,
    stops_the_run,
)
from klaviyo_toolkit.filters import quoted
from klaviyo_toolkit.tools import Stopped
from personas.kernel.context import PersonaContext, thread_key

from . import duplicates, identity
from .consent import other_channel_consent
from .jobs import verify_jobs
from .members import LOOKUP_FIELDS, PAGE_SIZE, klaviyo_read, lookup_profiles, read_group, subscribed_without_consent
from .operations import OPERATIONS, WRITES
from .optin import Ledger, awaiting
from .plan import Batch, Plan
from .report import build_result, outcome, summarize
from .settings import Settings
from .sources import SyncInputError, SyncRequest, check_file, parse_input, read_file, resolve_group

__all__ = ["OPERATIONS", "WRITES", "SyncState", "build_graph"]

PROBLEMS_KEPT = 20
#: Sends of one batch after rows of it were refused (each answer that names rows takes them out).
REFUSAL_ROUNDS = 10
#: Where a refused item sits in each kind of batch's request body (JSON:API ``source.pointer``) and in
#: the toolkit's own argument check (``InvalidArgumentError`` fields): its position and field.
_POINTERS = {
    "import": re.compile(r"^/data/attributes/profiles/data/(\d+)(?:/attributes)?(?:/([^/]+))?"),
    "subscribe": re.compile(r"^/data/attributes/profiles/data/(\d+)(?:/attributes)?(?:/([^/]+))?"),
    "add": re.compile(r"^/data/(\d+)(?:/([^/]+))?"),
    "remove": re.compile(r"^/data/(\d+)(?:/([^/]+))?"),
}
_ARGUMENTS = {
    "import": re.compile(r"^profiles\[(\d+)\](?:\.(\w+))?"),
    "subscribe": re.compile(r"^profiles\[(\d+)\](?:\.(\w+))?"),
    "add": re.compile(r"^profile_ids\[(\d+)\]()"),
    "remove": re.compile(r"^profile_ids\[(\d+)\]()"),
}


class SyncState(TypedDict, total=False):
    # input: the whole payload under "input", or its keys at the top level
    input: dict[str, Any] | None
    source: dict[str, Any] | None
    target_list_id: str | None
    dry_run: bool | None
    # the run (small: counts, a cursor, samples)
    request: dict[str, Any]
    run_id: str
    plan_file: str
    mode: str  # "apply" | "dry_run"
    counts: dict[str, Any]
    plan: dict[str, Any]
    cursor: int
    batches_total: int
    calls: dict[str, int]
    jobs: dict[str, Any]
    result: dict[str, Any]
    summary: str
    outcome: str  # one line: status and counts (``personas runs`` shows it)


def _settings(runtime: Runtime[PersonaContext]) -> Settings:
    settings = runtime.context.settings
    assert isinstance(settings, Settings)
    return settings


def _calls(state: SyncState, reads: int = 0, writes: int = 0) -> dict[str, int]:
    calls = dict(state.get("calls") or {})
    return {"reads": calls.get("reads", 0) + reads, "writes": calls.get("writes", 0) + writes}


SAMPLE = 10


class _BatchSummary(Mapping[str, Any]):
    """What an approval of a batch shows (:func:`_approval_summary`), made only when an approval asks
    for it: a batch that needs none (most subscribes and adds) leaves no file of emails behind, where
    every batch of a 100k-row sync wrote one (150 files, never removed)."""

    def __init__(self, plan: Plan, batch: Batch) -> None:
        self._plan, self._batch = plan, batch
        self._made: dict[str, Any] | None = None

    def _shown(self) -> dict[str, Any]:
        if self._made is None:
            self._made = _approval_summary(self._plan, self._batch)
        return self._made

    def __getitem__(self, key: str) -> Any:
        return self._shown()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._shown())

    def __len__(self) -> int:
        return 3  # batch, sample, full list: known without making them


def _approval_summary(plan: Plan, batch: Batch) -> dict[str, Any]:
    """What an approval of this batch shows: counts and a sample of emails; the full list in a file."""
    people = plan.people(batch)
    listing = plan.path.with_name(f"{plan.path.stem}.batch-{batch.n}.{batch.kind}.txt")
    fd = os.open(listing, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(people) + "\n")
    verb = {"remove": "removes", "add": "adds", "import": "imports", "subscribe": "subscribes"}[batch.kind]
    return {
        "batch": f"{batch.n} ({batch.kind}): {verb} {len(people):,} profile(s)",
        "sample": ", ".join(people[:SAMPLE]) + (f" and {len(people) - SAMPLE:,} more" if len(people) > SAMPLE else ""),
        "full list": str(listing),
    }


def _resolve(ctx: PersonaContext, request: SyncRequest) -> tuple[SyncRequest, int]:
    """The request with the target list and source groups given by name resolved to ids."""
    target = resolve_group(ctx.toolkit, "list", request.target_list_id, request.target_key)
    reads = target.reads
    source = request.source
    if source.names:
        ids = []
        for name in source.names:
            found = resolve_group(ctx.toolkit, source.kind, name, "source")
            ids.append(found.id)
            reads += found.reads
        source = replace(source, ids=tuple(ids), names=())
        if source.kind == "list" and target.id in source.ids:
            raise SyncInputError("source", "is the target list itself; sync from another list or a segment")
    resolved = replace(request, target_list_id=target.id, source=source, target_name=target.name,
                       target_unread=target.unread, target_opt_in=target.opt_in)
    return resolved, reads


def _thread(ctx: PersonaContext) -> str:
    """The run's thread: LangGraph's (the checkpoint's key), else the context's."""
    return str((get_config().get("configurable") or {}).get("thread_id") or ctx.thread_id or "")


def _plan(state: SyncState) -> Plan:
    return Plan.open(Path(state["plan_file"]))


def _request(state: SyncState) -> SyncRequest:
    return SyncRequest.from_json(state["request"])


# -- nodes -------------------------------------------------------------------------------------------
def prepare(state: SyncState, runtime: Runtime[PersonaContext]) -> SyncState:
    """Validate the input, fail fast on a file that cannot work, and start an empty plan."""
    ctx = runtime.context
    raw = state.get("input")
    payload = (
        raw
        if raw is not None
        else {k: state.get(k) for k in ("source", "target_list_id", "dry_run") if state.get(k) is not None}
    )
    settings = _settings(runtime)
    request = parse_input(payload, settings.mode)
    counts: dict[str, Any] = {}
    if request.source.is_file:
        consent_column = settings.consent_column if settings.subscribe_with_consent else None
        columns = check_file(request.source, consent_column)
        if consent_column and request.source.kind == "csv" and consent_column not in columns:
            counts["missing_consent_column"] = consent_column  # reported: nobody is subscribed
            if unread := other_channel_consent(columns):  # SMS consent is not email consent: said, never read
                counts["other_channel_consent"] = unread
    request, reads = _resolve(ctx, request)
    run_id = uuid.uuid4().hex[:12]
    thread = _thread(ctx) or f"run-{run_id}"
    path = ctx.home / "sync" / f"{thread_key(thread)}.sqlite"
    Plan.create(path).close()
    dry = request.dry_run or ctx.spec.approval.dry_run
    return {
        "input": None,
        "source": None,
        "target_list_id": None,
        "dry_run": None,
        "request": request.to_json(),
        "run_id": run_id,
        "plan_file": str(path),
        "mode": "dry_run" if dry else "apply",
        "counts": counts,
        "plan": {},
        "cursor": 1,
        "batches_total": 0,
        "calls": {"reads": reads, "writes": 0},
        "jobs": {},
        "result": {},
        "summary": "",
        "outcome": "",
    }


def read_source(state: SyncState, runtime: Runtime[PersonaContext]) -> SyncState:
    """Stream the source into the plan: a file row by row, or lists/segments page by page."""
    settings = _settings(runtime)
    request = _request(state)
    write = runtime.stream_writer
    src = request.source
    with _plan(state) as plan:
        if src.is_file:
            rows = read_file(src, settings.consent_column, set(settings.consent_values))
            counts = plan.load_rows(
                rows, lambda n: write({"phase": "read_source", "done": n, "total": None, "unit": "rows"})
            )
            reads = 0
        else:

            def pages() -> Any:
                for group_id in src.ids:
                    yield from read_group(runtime.context.toolkit, src.kind, group_id, field="source.id")

            counts = plan.load_group_rows(
                pages(), lambda p, n: write({"phase": "read_source", "done": n, "total": None, "unit": "profiles"})
            )
            reads = counts["pages"]
    return {"counts": {**state.get("counts", {}), "source": counts}, "calls": _calls(state, reads=reads)}


def read_target(state: SyncState, runtime: Runtime[PersonaContext]) -> SyncState:
    """Read the target list's members, 100 per call (with consent state when subscribing)."""
    settings = _settings(runtime)
    request = _request(state)
    need_consent = request.source.is_file and settings.subscribe_with_consent
    pages = read_group(
        runtime.context.toolkit,
        "list",
        request.target_list_id,
        field=request.target_key,
        list_id=request.target_list_id,
        subscriptions=need_consent,
        named_too=request.target_unread,
    )
    with _plan(state) as plan:
        counts = plan.load_members(
            pages,
            lambda p, n: runtime.stream_writer({"phase": "read_target", "done": n, "total": None, "unit": "profiles"}),
        )
    return {"counts": {**state.get("counts", {}), "target": counts}, "calls": _calls(state, reads=counts["pages"])}


def diff(state: SyncState, runtime: Runtime[PersonaContext]) -> SyncState:
    """Match source rows to members; look up the profiles consenting rows not in the list will land on
    (by email, then phone number and external id: ``identity.py``), with their consent state."""
    settings = _settings(runtime)
    request = _request(state)
    lookups = 0
    with _plan(state) as plan:
        matched = plan.match()
        if request.source.is_file and settings.subscribe_with_consent:

            def pages() -> Any:
                nonlocal lookups
                for field in LOOKUP_FIELDS:  # lazily: a phone an email's profile holds is not looked up
                    for values, wide in plan.to_look_up(field, PAGE_SIZE):
                        lookups += 1
                        yield lookup_profiles(runtime.context.toolkit, field, values, request.target_list_id,
                                              identifiers=wide)

            found = plan.load_members(
                pages(),
                lambda p, n: runtime.stream_writer(
                    {"phase": "check_consent", "done": p, "total": None, "unit": "lookups"}
                ),
                table="profiles",
            )
            matched["looked_up"] = found["profiles"]
    return {"counts": {**state.get("counts", {}), "diff": matched}, "calls": _calls(state, reads=lookups)}


def plan(state: SyncState, runtime: Runtime[PersonaContext]) -> SyncState:
    """Number the batches (adds, subscribes, removes; each at most batch_size) and summarize them."""
    settings = _settings(runtime)
    request = _request(state)
    source = state["counts"]["source"]
    with _plan(state) as p:
        mirror = request.mode == "mirror"
        if source["valid"] == 0 and mirror and p.member_count():
            # An empty source would empty the list: refuse, whatever made it empty.
            where = "source.path" if request.source.is_file else "source.id"
            why = (
                f"none of its {source['invalid']} rows is valid (first: {p.invalid(1)[0]['problem']})"
                if source.get("invalid")
                else "it has no members"
                if not request.source.is_file
                else "it has no rows"
            )
            raise SyncInputError(
                where,
                f"{why}; syncing it would remove all {p.member_count()} members of the "
                "target list. Fix the source, or sync with mode add-only",
            )
        since = runtime.context.clock.time() - settings.ask_again_after_days * 86400
        total = p.build(
            batch_size=settings.batch_size,
            file_source=request.source.is_file,
            subscribe=request.source.is_file and settings.subscribe_with_consent,
            remove=mirror,
            # a single opt-in list subscribes at once: nobody waits there, so nobody is held
            hold=(lambda db: 0) if request.target_opt_in == "single_opt_in"
            else Ledger.of(runtime.context).holder(request.target_list_id, since),
        )
        summary = p.summary(settings.sample_size)
        summary["invalid"] = {"count": source.get("invalid", 0), "rows": p.invalid(PROBLEMS_KEPT)}
        summary["duplicates"] = source.get("duplicates", 0)
        summary["consent_conflicts"] = p.conflicts(PROBLEMS_KEPT)
        summary["merged_values"] = p.merged(PROBLEMS_KEPT)
        summary["awaiting_confirmation"] = awaiting(p.db, settings.sample_size)
        summary["subscribed_without_consent"] = subscribed_without_consent(p.db, settings.sample_size)
        summary["withheld_for_invalid_rows"] = duplicates.withheld_for_invalid(p.db, settings.sample_size)
        if mirror:
            summary["kept_invalid"] = identity.kept_invalid(p.db, settings.sample_size)
    runtime.stream_writer({"phase": "plan", "done": total, "total": total, "unit": "batches"})
    return {"plan": summary, "batches_total": total, "cursor": 1}


def _args(request: SyncRequest, settings: Settings, batch: Batch, items: list[dict[str, Any]]) -> dict[str, Any]:
    list_id = request.target_list_id
    if batch.kind == "import":
        return {"profiles": items, "list_ids": [list_id]}
    if batch.kind == "subscribe":
        consent = {"email": {"marketing": {"consent": "SUBSCRIBED"}}}
        return {
            "profiles": [{"email": i["value"], "subscriptions": consent} for i in items],
            "list_id": list_id,
            "custom_source": settings.custom_source,
        }
    return {"id": list_id, "profile_ids": [i["value"] for i in items]}


_TARGET = {"import": "list_ids", "subscribe": "list_id", "add": "id", "remove": "id"}


def _edited(planned: dict[str, Any], sent: dict[str, Any], kind: str) -> tuple[int, int, str | None]:
    """What an approver's edit changed of a batch: (planned rows not sent, rows sent that were not
    planned, what the report says of it or None). Rows are compared as values, not counted, so an
    edit that adds profiles or swaps them, or sends the batch to another list, is reported as such."""
    if planned == sent:
        return 0, 0, None
    key = "profile_ids" if kind in ("add", "remove") else "profiles"

    def rows(args: dict[str, Any]) -> list[str]:
        items = args.get(key)
        return [json.dumps(i, sort_keys=True, default=str) for i in items] if isinstance(items, list) else []

    before, after = rows(planned), rows(sent)
    withheld = len(set(before) - set(after))
    added = len(set(after) - set(before))
    said = [f"{withheld} planned profile(s) left out"] if withheld else []
    said += [f"{added} profile(s) not in the plan added"] if added else []
    if planned.get(_TARGET[kind]) != sent.get(_TARGET[kind]):
        said.append(f"sent to {json.dumps(sent.get(_TARGET[kind]))}, not the target "
                    f"{json.dumps(planned.get(_TARGET[kind]))}")  # fmt: skip
    other = sorted(k for k in {*planned, *sent} if k not in (key, _TARGET[kind]) and planned.get(k) != sent.get(k))
    said += [f"{', '.join(other)} changed"] if other else []
    return withheld, added, ("sent as edited by the approver: " + "; ".join(said)) if said else None


def refused_items(kind: str, exc: Exception, size: int) -> dict[int, tuple[str | None, str]]:
    """The batch's items an error says were refused: position -> (field, reason); empty when it names none.

    Reads every JSON:API error of a Klaviyo answer (``source.pointer``), or every problem of the
    toolkit's own argument check, and keeps those that point at an item of a ``size``-item batch.
    """
    found: dict[int, tuple[str | None, str]] = {}
    if isinstance(exc, InvalidArgumentError):
        places = [(field, why) for field, why in exc.problems]
        pattern = _ARGUMENTS[kind]
    elif isinstance(exc, KlaviyoAPIError):
        errors = exc.errors or [{"source": exc.source, "detail": exc.detail, "title": exc.title}]
        places = []
        for err in errors:
            source = err.get("source")
            pointer = source.get("pointer") if isinstance(source, dict) else None
            places.append((str(pointer or ""), str(err.get("detail") or err.get("title") or exc)))
        pattern = _POINTERS[kind]
    else:
        return found
    for where, why in places:
        match = pattern.match(where)
        if match and int(match.group(1)) < size:
            found.setdefault(int(match.group(1)), (match.group(2) or None, why))
    return found


def _target_exists(ctx: PersonaContext, request: SyncRequest) -> bool:
    """Whether the target list still exists (one read, made only after a batch's 404 named no row)."""
    page = klaviyo_read(ctx.toolkit, "get_lists", filter=f"equals(id,{quoted(request.target_list_id)})")
    return bool(page.data)


def apply(state: SyncState, runtime: Runtime[PersonaContext]) -> SyncState:
    """Apply one batch (so each finished batch is checkpointed); removals stop for approval."""
    ctx = runtime.context
    settings = _settings(runtime)
    request = _request(state)
    n, total = state["cursor"], state["batches_total"]
    update: SyncState = {"cursor": n + 1}
    with _plan(state) as p:
        batch = p.batch(n)
        if batch.status != "pending":  # sent before the run was stopped, not yet checkpointed
            return update
        runtime.stream_writer(
            {
                "phase": "apply",
                "kind": batch.kind,
                "batch": n,
                "done": n - 1,
                "total": total,
                "unit": "batches",
                "profiles": batch.size,
            }
        )
        items = p.items(batch)
        if not items:  # every row of it was refused: nothing left to send
            p.mark(n, "done")
            return update
        args = _args(request, settings, batch, items)
        try:
            result = ctx.toolkit.run(WRITES[batch.kind], **args, _summary=_BatchSummary(p, batch))
        except (ServerError, TransportError):
            raise  # repeated by the client already (safe for these writes); resume later at this batch
        except (KlaviyoAPIError, InvalidArgumentError) as exc:
            if stops_the_run(exc) or getattr(exc, "status", None) == 429:
                raise
            sent = 1 if isinstance(exc, KlaviyoAPIError) else 0  # the toolkit's own check sends nothing
            refused = refused_items(batch.kind, exc, len(items))
            if refused and batch.attempts < REFUSAL_ROUNDS:
                # Those rows go to invalid; the rest is sent again in the next step (its own call).
                p.refuse(batch, refused)
                return {"cursor": n, "calls": _calls(state, writes=sent)}
            p.mark(n, "failed", detail=str(exc))  # a 4xx will not pass on a retry: report it and go on
            if isinstance(exc, NotFoundError) and not refused and not _target_exists(ctx, request):
                # The list was deleted mid-sync: every later batch names it and would fail alike.
                p.mark_rest(n + 1, "failed", detail=f"not sent: the target list {request.target_list_id} no "
                            "longer exists (deleted during the sync); create it or pick another list and sync again")
                return {"cursor": total + 1, "calls": _calls(state, reads=1, writes=sent)}
            return {**update, "calls": _calls(state, writes=sent)}
        if isinstance(result, Stopped):
            if result.status == "dry_run":
                p.mark_rest(n, "dry_run")
                return {**update, "mode": "dry_run"}
            p.mark(n, "rejected", detail=result.reason)
            return update
        job_id = result.data.get("id") if batch.kind == "import" and isinstance(result.data, dict) else None
        sent_items = result.call.args.get("profile_ids" if batch.kind in ("add", "remove") else "profiles")
        withheld, added, edit = _edited(args, dict(result.call.args), batch.kind)  # an approver's edit
        p.mark(n, "done", job_id=job_id, withheld=withheld, added=added, detail=edit)
        if batch.kind == "subscribe" and isinstance(sent_items, list):  # not asked again while it waits (optin.py)
            Ledger.of(ctx).record(request.target_list_id, [str(i.get("email") or "") for i in sent_items
                                                             if isinstance(i, dict)], ctx.clock.time())
    runtime.stream_writer(
        {
            "phase": "apply",
            "kind": batch.kind,
            "batch": n,
            "done": n,
            "total": total,
            "unit": "batches",
            "profiles": batch.size,
        }
    )
    return {**update, "calls": _calls(state, writes=1)}


def verify(state: SyncState, runtime: Runtime[PersonaContext]) -> SyncState:
    """Wait for the import jobs and count the rows Klaviyo refused (with a sample of why)."""
    settings = _settings(runtime)
    with _plan(state) as p:
        if not settings.verify_jobs or not p.jobs():
            return {"jobs": p.job_totals()}
        report, reads = verify_jobs(runtime.context, p, settings, runtime.stream_writer)
    return {"jobs": report, "calls": _calls(state, reads=reads)}


def report(state: SyncState, runtime: Runtime[PersonaContext]) -> SyncState:
    """The result: planned vs applied per kind, problems, invalid rows, and a short summary."""
    settings = _settings(runtime)
    with _plan(state) as p:
        result = build_result(state, p, PROBLEMS_KEPT)
    return {"result": result, "summary": summarize(runtime.context, settings, result), "outcome": outcome(result)}


# -- routing -----------------------------------------------------------------------------------------
def _after_plan(state: SyncState) -> str:
    if state.get("mode") == "dry_run":
        return "report"
    return "apply" if state.get("batches_total") else "report"


def _after_apply(state: SyncState) -> str:
    if state.get("mode") == "dry_run":
        return "report"
    return "apply" if state["cursor"] <= state["batches_total"] else "verify"


def build_graph(checkpointer: Any = None) -> Any:
    graph = StateGraph(SyncState, context_schema=PersonaContext)
    graph.add_node("prepare", prepare)
    graph.add_node("read_target", read_target)
    graph.add_node("read_source", read_source)
    graph.add_node("diff", diff)
    graph.add_node("plan", plan)
    graph.add_node("apply", apply)
    graph.add_node("verify", verify)
    graph.add_node("report", report)
    graph.add_edge(START, "prepare")
    graph.add_edge("prepare", "read_target")
    graph.add_edge("read_target", "read_source")
    graph.add_edge("read_source", "diff")
    graph.add_edge("diff", "plan")
    graph.add_conditional_edges("plan", _after_plan, ["apply", "report"])
    graph.add_conditional_edges("apply", _after_apply, ["apply", "verify", "report"])
    graph.add_edge("verify", "report")
    graph.add_edge("report", END)
    return graph.compile(checkpointer=checkpointer)
