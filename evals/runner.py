"""Run eval cases: a fresh sandbox, the case's fixture, the persona's graph, then the checks.

Each case gets its own in-process sandbox on a manual clock set to the case's ``now`` (limits
off), the fixture made through the API, and a persona context whose Klaviyo client carries a hook
recording every call (operation id and its arguments, rebuilt from the request). The model is the
case's cassette, replayed (no key needed); or, for ``--author``, the hand-written responses in the
case file; or, for ``--record``/``--epochs``, the live model. A callback on the model records its
responses, so the trajectory holds the HTTP calls and the model's tool calls in the order they
happened. A cassette that does not match, or is played only in part, fails the case with the
command that re-records (or re-authors) it.

Example::

    suite = load_suite("lead_magnet")
    result = run_suite(suite)
    result.pass_rate, [r.failures for r in result.results if not r.passed]
"""

from __future__ import annotations

import functools
import math
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from personas.cassette import Cassette, CassetteError, normalise_request
from personas.models import CassetteChatModel, ModelChoice

from .case import Case, Suite
from .fixtures import Built, build_fixture, parse_duration, submit_form
from .matchers import MISSING, CallSpec, MatchContext, call_problems, match_trajectory, match_value, show
from .outcomes import check_outcomes, resolve_input, snapshot_files, snapshot_profiles, with_settings, write_files

__all__ = ["CaseResult", "ModelFactory", "Outcome", "SetupError", "SuiteResult", "check_case",
           "execute", "pass_at_k", "persona_for", "rerecord_hint", "run_case", "run_suite"]

class SetupError(RuntimeError):
    """The case could not be set up (its persona does not load, or its fixture cannot be built)."""


#: (suite, case, epoch) -> the model for that run; None means replay the case's cassette.
ModelFactory = Callable[[Suite, Case, int], ModelChoice | None]
FIXTURE_LEAD = 3600.0  # the fixture is built this long before the case's `now`


# -- cassettes ---------------------------------------------------------------------------------
def rerecord_hint(suite: Suite, case: Case, kind: str | None = None) -> str:
    """The command that rebuilds a case's cassette, for every cassette error."""
    author = f"`personas eval {suite.name} --case {case.id} --author`"
    record = f"`personas eval {suite.name} --case {case.id} --record` (needs OPENAI_API_KEY)"
    if kind == "recorded":
        return f"case {suite.name}/{case.id}: re-record it with {record}"
    if case.authored_responses:
        return (f"case {suite.name}/{case.id}: re-author it with {author} (responses in {suite.case_file(case)}, "
                f"authored_responses), or record it with {record}")
    return f"case {suite.name}/{case.id}: record it with {record}, or write authored_responses and run {author}"


def replay_choice(suite: Suite, case: Case) -> ModelChoice:
    """The case's cassette (or, when it has none, a cassette that expects no model call)."""
    if case.model == "none":
        return ModelChoice(None, "no model (the case runs without one)", "none")
    path = suite.cassette_path(case)
    if not path.exists():
        empty = Cassette(path, {"kind": "none", "method": "no cassette: the case expects no model call"}, [],
                         f"{rerecord_hint(suite, case)} (no cassette at {path})")
        return ModelChoice(CassetteChatModel(cassette=empty), "no model call expected (no cassette)", "none", empty)
    cassette = Cassette.load(path)
    cassette.rerecord_hint = rerecord_hint(suite, case, str(cassette.provenance.get("kind")))
    kind = str(cassette.provenance.get("kind"))
    return ModelChoice(CassetteChatModel(cassette=cassette), f"responses {cassette.describe()}", kind, cassette)


# -- observing a run ---------------------------------------------------------------------------
class _ModelObserver(BaseCallbackHandler):
    """Records each model response (its tool calls join the trajectory) and each model error."""

    def __init__(self, run: Observed) -> None:
        self.run = run

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        for generations in response.generations[:1]:
            for gen in generations[:1]:
                message = getattr(gen, "message", None)
                if isinstance(message, AIMessage):
                    self.run.model_turn(message)

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.run.model_errors.append(error)

    def on_chat_model_start(self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any) -> None:
        tools = (kwargs.get("invocation_params") or {}).get("tools") or []
        for batch in messages[:1]:
            request = normalise_request(batch, tools)
            # the text as sent (not masked), for `model_requests` checks
            for item, message in zip(request["messages"], batch, strict=True):
                item["text"] = message.content if isinstance(message.content, str) else str(message.content)
            with self.run.lock:
                self.run.model_requests.append(request)


def _unwrap(value: Any) -> Any:
    """JSON:API envelopes -> the named fields a tool takes: ``{data: {type, id, attributes}}`` -> ``{id, ...}``."""
    if isinstance(value, Mapping) and "data" in value and set(value) <= {"data", "links", "meta"}:
        return _unwrap(value["data"])
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, Mapping) and "type" in value and set(value) <= {"type", "id", "attributes", "relationships",
                                                                          "links", "meta"}:
        out: dict[str, Any] = {"id": value["id"]} if value.get("id") is not None else {}
        for key, sub in (value.get("attributes") or {}).items():
            out[key] = _unwrap(sub) if isinstance(sub, Mapping) and "data" in sub else sub
        for key, sub in (value.get("relationships") or {}).items():
            out[key] = _unwrap(sub)
        return out
    return value


@functools.lru_cache(maxsize=1)
def _catalog() -> Any:
    from klaviyo_toolkit.catalog import load_catalog

    return load_catalog(True)


def call_view(record: Any) -> dict[str, Any]:
    """One finished HTTP call as ``{source, tool, args, status, method, path}``; args by the tool's names."""
    op = _catalog().get(record.operation_id)
    args: dict[str, Any] = {}
    template, actual = op.path.strip("/").split("/"), str(record.path).split("?")[0].strip("/").split("/")
    for part, value in zip(template, actual, strict=False):
        if part.startswith("{") and part.endswith("}"):
            args[part[1:-1]] = value
    specs = {a["wire"]: a for a in op.record.get("args", []) if a.get("in") == "query"}
    for wire, value in (record.params or {}).items():
        spec = specs.get(wire)
        schema = ((spec or {}).get("shape") or {}).get("schema") or {}
        name = spec["name"] if spec else wire
        if schema.get("type") == "array" or (spec or {}).get("style") == "csv":
            args[name] = [v for v in str(value).split(",") if v]
        elif schema.get("type") == "integer" and str(value).lstrip("-").isdigit():
            args[name] = int(value)
        else:
            args[name] = value
    body = _unwrap(record.body) if record.body is not None else {}
    linkage = [a for a in op.record.get("args", []) if a.get("in") == "body" and (a.get("shape") or {}).get("kind")
               == "rel"] if (op.record.get("body") or {}).get("root") == "linkage" else []
    if len(linkage) == 1 and isinstance(body, (list, Mapping)):
        # A relationship body ({data: [{type, id}, ...]}) is the one id-list argument the tool takes.
        ids = [b.get("id") for b in body] if isinstance(body, list) else body.get("id")
        args[linkage[0]["name"]] = ids
    elif isinstance(body, Mapping):
        args.update(body)
    elif body:
        args["body"] = body
    return {"source": "http", "tool": record.operation_id, "args": args, "status": record.status,
            "method": record.method, "path": record.path}


@dataclass
class Observed:
    """Everything one case's runs did: calls per run, model turns, model errors."""

    runs: list[list[dict[str, Any]]] = field(default_factory=list)
    model_turns: list[dict[str, Any]] = field(default_factory=list)
    model_errors: list[BaseException] = field(default_factory=list)
    model_requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start_run(self) -> None:
        self.runs.append([])

    def http(self, record: Any) -> None:
        view = call_view(record)
        with self.lock:
            self.runs[-1].append(view)

    def model_turn(self, message: AIMessage) -> None:
        turn = {"content": message.content if isinstance(message.content, str) else str(message.content),
                "tool_calls": [{"name": c["name"], "args": c["args"]} for c in message.tool_calls]}
        with self.lock:
            self.model_turns.append(turn)
            for call in message.tool_calls:
                self.runs[-1].append({"source": "model", "tool": call["name"], "args": dict(call["args"])})


@dataclass
class Outcome:
    """What a case's runs left behind, for the checks and the reports."""

    state: dict[str, Any] = field(default_factory=dict)
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    all_calls: list[dict[str, Any]] = field(default_factory=list)
    model_turns: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    lists: dict[str, list[str]] = field(default_factory=dict)
    interrupts: list[Any] = field(default_factory=list)
    approvals_asked: list[Any] = field(default_factory=list)
    approvals_unused: int = 0
    error: BaseException | None = None
    built: Built = field(default_factory=Built)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_requests: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CaseResult:
    """One case's verdict: passed, failed (with why), or error (it could not run; the message says why)."""

    suite: str
    case: Case
    failures: list[str]
    error: str | None
    duration: float
    model: str
    cassette: str
    epoch: int = 0
    outcome: Outcome | None = None

    @property
    def status(self) -> str:
        return "error" if self.error else ("failed" if self.failures else "passed")

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate for c passes in n runs (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass
class SuiteResult:
    """A suite's results (one per case and epoch), pass rates and the threshold verdict."""

    suite: Suite
    results: list[CaseResult]
    epochs: int = 1
    duration: float = 0.0

    def by_case(self) -> dict[str, list[CaseResult]]:
        out: dict[str, list[CaseResult]] = {}
        for r in self.results:
            out.setdefault(r.case.id, []).append(r)
        return out

    def pass_at(self, k: int) -> float:
        groups = list(self.by_case().values())
        if not groups:
            return 0.0
        return sum(pass_at_k(len(g), sum(r.passed for r in g), min(k, len(g))) for g in groups) / len(groups)

    @property
    def pass_rate(self) -> float:
        """pass@1: the share of runs that passed (with epochs, the mean over them)."""
        return self.pass_at(1)

    @property
    def ok(self) -> bool:
        return bool(self.results) and self.pass_rate + 1e-9 >= self.suite.threshold

    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "error": 0}
        for r in self.results:
            out[r.status] += 1
        return out


# -- running -----------------------------------------------------------------------------------
def persona_for(case: Case) -> Any:
    """The persona a case runs: named, or the first one using the case's graph."""
    from personas.loader import list_personas, load_persona

    if case.persona:
        return load_persona(case.persona)
    for spec in list_personas():
        if spec.graph == case.graph:
            return spec
    raise KeyError(f"no persona uses the graph {case.graph!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseMessage):
        out: dict[str, Any] = {"type": value.type, "content": value.content}
        if isinstance(value, AIMessage) and value.tool_calls:
            out["tool_calls"] = [{"name": c["name"], "args": c["args"]} for c in value.tool_calls]
        if isinstance(value, ToolMessage):
            out["name"], out["status"] = value.name, value.status
        return out
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _snapshot(sb: Any, client: Any, outcome: Outcome) -> None:
    profiles = {v: k.split(":", 1)[1] for k, v in outcome.built.refs.items() if k.startswith("profile:")}
    for msg in sb.outbox():
        entry = dict(msg)
        entry["profile"] = profiles.get(str(entry.get("profile_id")))
        entry["flow"] = outcome.built.flow_names.get(str(entry.get("flow_id")))
        outcome.outbox.append(entry)
    outcome.outbox.sort(key=lambda m: (str(m.get("send_at")), m.get("position") or 0))
    from klaviyo_toolkit.errors import NotFoundError

    for ref, list_id in outcome.built.refs.items():
        if ref.startswith("list:"):
            try:
                members = [p["id"] if p["id"] in profiles else p.get("email") or p["id"]
                           for p in client.iterate("get_list_profiles", id=list_id, page_size=100)]
            except NotFoundError:  # the run deleted it: left out of `lists`
                continue
            outcome.lists[ref.split(":", 1)[1]] = [profiles.get(m, m) for m in members]


def execute(suite: Suite, case: Case, choice: ModelChoice) -> Outcome:
    """Run a case (all its repeats and approvals) and collect what happened; never raises for the run."""
    from langgraph.checkpoint.memory import InMemorySaver

    from graphs import load
    from klaviyo_sandbox import Sandbox
    from klaviyo_toolkit.clock import ManualClock
    from personas.runtime import build_context, run_persona

    outcome = Outcome()
    observed = Observed()
    now = case.now.timestamp()
    clock = ManualClock(now - FIXTURE_LEAD)
    sb = Sandbox(seed=case.sandbox.seed, demo_data=case.sandbox.demo_data, rate_limit_factor=None, clock=clock)
    setup = sb.client()
    try:
        spec = with_settings(persona_for(case), case.settings)
        outcome.built = build_fixture(sb, setup, case.sandbox.fixture, now)
        if case.sandbox.faults:
            from klaviyo_sandbox import Faults

            sb.faults = Faults.from_json(dict(case.sandbox.faults))
    except Exception as exc:
        outcome.error = SetupError(f"the case could not be set up: {type(exc).__name__}: {exc}")
        setup.close()
        return outcome
    clock.advance(max(0.0, now - clock.time()))
    client = sb.client()
    client.hooks.append(observed.http)
    if choice.model is not None:
        choice.model.callbacks = [_ModelObserver(observed)]
    make_input = getattr(load(spec.graph), "make_input", lambda p: p)
    result = None
    with tempfile.TemporaryDirectory(prefix="personas-eval-") as home:
        try:
            inputs = write_files(case, Path(home) / "input") if case.files else Path(home) / "input"
            for n in range(case.repeat):
                if n:
                    clock.advance(parse_duration(case.repeat_every))
                if case.form_submission is not None:
                    payload: Any = make_input(submit_form(setup, outcome.built, case.form_submission, clock.time()))
                else:
                    payload = make_input(dict(resolve_input(case.input, outcome.built.refs, inputs))) \
                        if case.input is not None else {}
                observed.start_run()
                ctx = build_context(spec, client=client, sandbox=sb, model=choice, audit=False, clock=clock,
                                    user="eval", thread_id=f"eval-{case.id}-{n + 1}")
                ctx.home = Path(home)
                saver = InMemorySaver()
                result = run_persona(spec, payload, context=ctx, saver=saver)
                answers = list(case.approvals)
                seen: set[str] = set()
                pending = _pending(spec, saver, ctx.thread_id, seen, outcome) if result.paused else []
                while result.paused and answers and pending:
                    # one answer per pending approval (parallel tool calls can stop several at once), in order
                    given = [resolve_input(a, outcome.built.refs, inputs) if isinstance(a, Mapping)
                             else {"action": str(a)} for a in answers[:len(pending)]]
                    answers = answers[len(given):]
                    resume: Any = given[0] if len(pending) == 1 else dict(zip(pending, given, strict=False))
                    result = run_persona(spec, None, context=ctx, saver=saver, resume=resume)
                    pending = _pending(spec, saver, ctx.thread_id, seen, outcome) if result.paused else []
                outcome.approvals_unused += len(answers)
        except Exception as exc:  # the run failing is a verdict, reported with the case
            outcome.error = exc
        if result is not None:
            outcome.state = _jsonable(result.state)
            outcome.interrupts = _jsonable(result.interrupts)
        cassette_errors = [e for e in observed.model_errors if isinstance(e, CassetteError)]
        other_errors = [e for e in observed.model_errors if not isinstance(e, CassetteError)]
        if cassette_errors:
            outcome.error = cassette_errors[0]
        elif other_errors and choice.kind in ("authored", "recorded", "none") and outcome.error is None:
            outcome.error = CassetteError(f"the model failed: {type(other_errors[0]).__name__}: {other_errors[0]}")
        elif outcome.error is None and choice.cassette is not None and choice.model is not None \
                and getattr(choice.model, "live", None) is None:
            try:
                choice.cassette.check_finished()
            except CassetteError as exc:
                outcome.error = exc
        outcome.files = snapshot_files(Path(home))
    outcome.trajectory = observed.runs[-1] if observed.runs else []
    outcome.all_calls = [c for run in observed.runs for c in run]
    outcome.model_turns = observed.model_turns
    outcome.model_requests = observed.model_requests
    _snapshot(sb, setup, outcome)
    if case.expect.profiles:
        outcome.profiles = snapshot_profiles(setup, outcome.built.refs, list(case.expect.profiles))
    client.close()
    setup.close()
    return outcome


def _pending(spec: Any, saver: Any, thread_id: str, seen: set[str], outcome: Outcome) -> list[str]:
    """Ids of the approvals the run is stopped on; each one seen for the first time joins ``approvals_asked``."""
    from graphs import build

    snap = build(spec.graph, checkpointer=saver).get_state({"configurable": {"thread_id": thread_id}})
    found = [i for task in snap.tasks for i in task.interrupts]
    outcome.approvals_asked += [_jsonable(i.value) for i in found if i.id not in seen]
    seen.update(i.id for i in found)
    return [i.id for i in found]


# -- checking ----------------------------------------------------------------------------------
def get_path(data: Any, path: str) -> Any:
    """``score.factors[0].points`` (or ``messages[-1].content``) in ``data``; MISSING if absent."""
    current = data
    for part in path.replace("]", "").replace("[", ".").split("."):
        if part == "":
            continue
        if isinstance(current, Mapping):
            current = current.get(part, MISSING)
        elif isinstance(current, list) and part.lstrip("-").isdigit() and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
        if current is MISSING:
            return MISSING
    return current


def check_case(case: Case, outcome: Outcome) -> list[str]:
    """Every expectation of ``case`` that ``outcome`` does not meet, as sentences."""
    exp = case.expect
    ctx = MatchContext(outcome.built.refs)
    failures: list[str] = []
    if outcome.error is not None:
        if exp.raises is None:
            return [f"the run raised {type(outcome.error).__name__}: {outcome.error}"]
        if exp.raises.type and type(outcome.error).__name__ != exp.raises.type:
            failures.append(f"raised {type(outcome.error).__name__}, expected {exp.raises.type}")
        if exp.raises.message is not None:
            failures += match_value(exp.raises.message, str(outcome.error), ctx, "raises.message")
    elif exp.raises is not None:
        failures.append(f"expected the run to raise {exp.raises.type or 'an error'}, but it finished")
    if exp.trajectory is not None:
        t = exp.trajectory
        failures += [f"trajectory ({t.mode}): {p}" for p in
                     match_trajectory(t.mode, t.calls, outcome.trajectory, ctx, source=t.source, ignore=t.ignore)]
    for item in exp.not_called:
        spec = CallSpec(tool=item) if isinstance(item, str) else item
        for call in outcome.all_calls:
            if not call_problems(spec, call, ctx):
                failures.append(f"not_called: {spec.label()} was called: {show(call.get('args'))}")
                break
    for path, matcher in exp.state.items():
        failures += [f"state: {p}" for p in match_value(matcher, get_path(outcome.state, path), ctx, path)]
    if exp.model_calls is not None:
        failures += [f"model: {p}" for p in match_value(exp.model_calls, len(outcome.model_turns), ctx, "model_calls")]
    if exp.interrupts is not None:
        failures += [f"interrupts: {p}" for p in match_value(exp.interrupts, outcome.interrupts, ctx, "interrupts")]
    if exp.approvals_asked is not None:
        failures += [f"approvals_asked: {p}" for p in
                     match_value(exp.approvals_asked, outcome.approvals_asked, ctx, "approvals_asked")]
    if outcome.approvals_unused:
        failures.append(f"approvals: {outcome.approvals_unused} answer(s) left unused; the run stopped for approval "
                        f"{len(outcome.approvals_asked)} time(s)")
    for box in exp.outbox:
        who = box.profile or "everyone"
        messages = [m for m in outcome.outbox if box.profile is None or m.get("profile") == box.profile]
        messages = [m for m in messages if not match_value(box.where, m, ctx)] if box.where else messages
        where = f"outbox[{who}]" + (f" where {show(box.where)}" if box.where else "")
        if box.count is not None:
            failures += [f"{where}: {p}" for p in match_value(box.count, len(messages), ctx, "count")]
        if box.messages:
            failures += [f"{where}: {p}" for p in match_value(box.messages, messages, ctx, "messages")]
    for item in exp.lists:
        members = outcome.lists.get(item.list)
        if f"list:{item.list}" not in outcome.built.refs:
            failures.append(f"lists: {item.list!r} is not a fixture list")
        elif (members is not None) != item.exists:
            failures.append(f"lists: {item.list!r} " + ("was deleted by the run" if item.exists else "still exists"))
        elif members is not None and item.profile is not None and f"profile:{item.profile}" in outcome.built.refs \
                and (item.profile in members) != item.member:
            failures.append(f"lists: {item.profile} is {'not ' if item.member else ''}on {item.list!r}")
    failures += check_outcomes(case, outcome, ctx)
    return failures


def run_case(suite: Suite, case: Case, model: ModelChoice | None = None, *, epoch: int = 0) -> CaseResult:
    """Run one case with ``model`` (default: replay its cassette) and check its expectations."""
    started = time.perf_counter()
    try:
        choice = model or replay_choice(suite, case)
    except CassetteError as exc:
        return CaseResult(suite.name, case, [], f"{exc}; {rerecord_hint(suite, case)}", 0.0, "cassette",
                          "unreadable", epoch)
    cassette = choice.cassette.describe() if choice.cassette is not None and choice.cassette.interactions else (
        choice.description)
    outcome = execute(suite, case, choice)
    error = None
    failures: list[str] = []
    if isinstance(outcome.error, (CassetteError, SetupError)):
        error = str(outcome.error)
    else:
        failures = check_case(case, outcome)
    return CaseResult(suite.name, case, failures, error, time.perf_counter() - started, choice.description,
                      cassette, epoch, outcome)


def run_suite(
    suite: Suite,
    *,
    case_ids: Sequence[str] = (),
    model_factory: ModelFactory | None = None,
    epochs: int = 1,
    on_result: Callable[[CaseResult], None] | None = None,
) -> SuiteResult:
    """Every case (or those in ``case_ids``), ``epochs`` times each, models from ``model_factory``."""
    started = time.perf_counter()
    cases = [suite.case(i) for i in case_ids] if case_ids else list(suite.cases)
    results = []
    for case in cases:
        for epoch in range(epochs):
            model = model_factory(suite, case, epoch) if model_factory else None
            result = run_case(suite, case, model, epoch=epoch)
            results.append(result)
            if on_result:
                on_result(result)
    return SuiteResult(suite, results, epochs, time.perf_counter() - started)
