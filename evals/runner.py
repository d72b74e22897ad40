"""Run eval cases: a fresh sandbox, the case's fixture, the persona's graph, then the checks.

Each case gets its own in-process sandbox on a manual clock set to the case's ``now`` (limits
off), the fixture made through the API, and a persona context whose Klaviyo client carries a hook
recording every call (operation id and its arguments, rebuilt from the request). The model is the
case's cassette, replayed (no key needed), from the default set ``cassettes/`` or a labelled one
(``cassettes-<label>/``); or, for ``--author``, the hand-written responses in the case file; or,
for ``--record``/``--epochs``, the live model; or, for a policy case, each scripted behaviour in
turn. A callback on the model records its requests and answers, so the trajectory holds the HTTP
calls and the model's tool calls in the order they happened. A cassette that does not match, or is
played only in part, is an error for the case with the command that re-records (or re-authors) it;
everything else that is wrong is a failure (``checks.py``).

Example::

    suite = load_suite("lead_magnet")
    result = run_suite(suite)
    result.pass_rate, [r.failures for r in result.results if not r.passed]
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from graphs import graph_spec
from klaviyo_sandbox import Faults, Sandbox
from klaviyo_toolkit.clock import ManualClock
from personas.kernel.cassette import Cassette, CassetteError, UnexpectedModelCall, UnusableCassette, stored
from personas.kernel.config import Config
from personas.kernel.models import CassetteChatModel, ModelChoice
from personas.runtime.context import build_context
from personas.runtime.driver import RunDriver
from personas.runtime.loader import list_personas, load_persona

from .behaviours import ScriptedFailure, behaviour_choice, behaviour_names
from .case import Case, Suite
from .checks import check_case, judge
from .commands import suite_arg
from .fixtures import Built, build_fixture, parse_duration, submit_form
from .observe import ModelObserver, Observed
from .outcomes import resolve_input, snapshot_files, snapshot_profiles, with_settings, write_files
from .results import CaseResult, SuiteResult, pass_at_k

__all__ = ["CaseResult", "ModelFactory", "NotRecorded", "Outcome", "SetupError", "SuiteResult", "execute",
           "model_identity", "pass_at_k", "persona_for", "replay_choice", "rerecord_hint", "run_case", "run_suite",
           "set_manifest"]


class SetupError(RuntimeError):
    """The case could not be set up (its persona does not load, or its fixture cannot be built)."""


class NotRecorded(Exception):
    """A labelled set (``cassettes-LABEL/``) has no cassette for a case that asks the model: the case was
    added after the set was recorded. Nothing answers it for that model, so it is reported as not recorded
    and counted apart (never a pass, a failure or a crash); only recording it can judge it."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


#: (suite, case, epoch) -> the model for that run; None means replay the case's cassette.
ModelFactory = Callable[[Suite, Case, int], ModelChoice | None]
FIXTURE_LEAD = 3600.0  # the fixture is built this long before the case's `now`
MANIFEST = "set.json"


# -- cassettes ---------------------------------------------------------------------------------
def rerecord_hint(suite: Suite, case: Case, kind: str | None = None, label: str | None = None) -> str:
    """The command that rebuilds a case's cassette, for every cassette error."""
    where = f" --cassettes {label}" if label and label != "cassettes" else ""
    author = f"`personas eval {suite_arg(suite)} --case {case.id} --author`"
    record = f"`personas eval {suite_arg(suite)} --case {case.id} --record{where}` (needs OPENAI_API_KEY)"
    if kind == "recorded" or where:
        return f"case {suite.name}/{case.id}: re-record it with {record}"
    if case.authored_responses:
        return (f"case {suite.name}/{case.id}: re-author it with {author} (responses in {suite.case_file(case)}, "
                f"authored_responses), or record it with {record}")
    return f"case {suite.name}/{case.id}: record it with {record}, or write authored_responses and run {author}"


def set_manifest(suite: Suite, label: str | None) -> dict[str, Any]:
    """What a labelled cassette set says about itself (``cassettes-<label>/set.json``: the model it was
    recorded from, the endpoint, the date); empty for the default set."""
    path = suite.cassette_dir(label) / MANIFEST
    if not label or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def model_identity(suite: Suite, case: Case, label: str | None = None,
                   config: Config | None = None) -> tuple[str, dict[str, Any]]:
    """(the model a run asks for, its generation settings): ``PERSONAS_MODEL``, else the model a labelled set
    was recorded from, else the persona's; the persona's temperature."""
    config = config or Config.from_env()
    spec = persona_for(case, config.home)
    name = config.model or set_manifest(suite, label).get("requested_model") or spec.model
    return str(name), {"temperature": float(spec.temperature)}


def _cassette_expected(suite: Suite, case: Case, label: str | None) -> str | None:
    """Why ``case`` must have a cassette in set ``label`` (None: it may have none, and then asks no model).

    Hand-written answers, a cassette the case names, or (in a labelled set) a cassette in the default set
    all say the model is asked; without the cassette nothing answers it.
    """
    if case.authored_responses:
        return f"the case has {len(case.authored_responses)} authored_responses"
    if case.cassette and not label:
        return f"the case names it (cassette: {case.cassette})"
    if label and label != "cassettes" and suite.cassette_path(case).exists():
        return f"the case asks a model: it has {suite.cassette_path(case)} in the default set"
    return None


def replay_choice(suite: Suite, case: Case, label: str | None = None) -> ModelChoice:
    """The case's cassette from set ``label`` (or, when it has none and needs none, a cassette that expects no
    model call); raises :class:`UnusableCassette` when the cassette the case needs is missing, does not load
    or is not this case's, :class:`CassetteError` when it no longer holds the case's authored answers."""
    if case.model == "none":
        return ModelChoice(None, "no model (the case runs without one)", "none")
    name, generation = model_identity(suite, case, label)
    path = suite.cassette_path(case, label)
    expected = None if path.exists() else _cassette_expected(suite, case, label)
    if expected and label and label != "cassettes":  # a case newer than the set: no answer of that model exists
        raise NotRecorded(f"not recorded for this model: the set has no cassette at {path}, and {expected} (a case "
                          f"written after the set was recorded); {rerecord_hint(suite, case, label=label)}", path)
    if expected:  # an error whether or not this run would ask the model: the answers were never replayed
        raise UnusableCassette(f"there is no cassette at {path}, and {expected}; "
                               f"{rerecord_hint(suite, case, label=label)}", path)
    if not path.exists():
        empty = Cassette(path, {"kind": "none", "method": "no cassette: the case expects no model call"}, [],
                         rerecord_hint(suite, case, label=label))
        model = CassetteChatModel(cassette=empty, model_name=name, generation=generation)
        return ModelChoice(model, "no model call expected (no cassette)", "none", empty)
    cassette = Cassette.load(path, rerecord_hint(suite, case, label=label))
    cassette.rerecord_hint = rerecord_hint(suite, case, cassette.kind, label)
    made_for = str(cassette.provenance.get("case") or "")
    if made_for and made_for.rsplit("/", 1)[-1] != case.id:  # a suite may be copied to another folder name
        raise UnusableCassette(f"cassette {path} was made for case {made_for}, not {suite.name}/{case.id} (copied "
                               f"or renamed?); {cassette.rerecord_hint}", path)
    if label and label != "cassettes":
        from .sets import disagreement

        problem = disagreement(path, cassette.provenance, set_manifest(suite, label))
        if problem:
            raise UnusableCassette(f"{problem}; {cassette.rerecord_hint}", path)
    if cassette.kind == "authored":
        written = stored([r.to_response(i) for i, r in enumerate(case.authored_responses)])  # secrets masked
        held = [i["response"] for i in cassette.interactions]
        if held != written:
            n = next((n for n, (a, b) in enumerate(zip(held, written, strict=False), 1) if a != b),
                     min(len(held), len(written)) + 1)
            raise CassetteError(f"cassette {path} does not hold the case's authored_responses: interaction {n}'s "
                                f"response is not authored_responses[{n - 1}] of {suite.case_file(case)} ({len(held)} "
                                f"held, {len(written)} authored: the case file or the cassette changed since it was "
                                f"authored); {cassette.rerecord_hint}")
    model = CassetteChatModel(cassette=cassette, model_name=name, generation=generation)
    return ModelChoice(model, f"responses {cassette.describe()}", cassette.kind, cassette)


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
    #: the graph asked the model in a case that expects no model call (a verdict, not a cassette problem)
    unexpected_model: str | None = None
    model_failed: str | None = None
    #: a live model that did not answer (unreachable, refused, timed out): an error, and nothing is recorded
    model_unreachable: bool = False
    built: Built = field(default_factory=Built)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_requests: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


# -- running -----------------------------------------------------------------------------------
def persona_for(case: Case, home: Path | None = None) -> Any:
    """The persona a case runs: named, or the first one using the case's graph (yours in ``home`` included)."""
    home = home if home is not None else Config.from_env().home
    if case.persona:
        return load_persona(case.persona, home=home)
    for spec in list_personas(home):
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
            sb.faults = Faults.from_json(dict(case.sandbox.faults))
    except Exception as exc:
        outcome.error = SetupError(f"the case could not be set up: {type(exc).__name__}: {exc}")
        setup.close()
        return outcome
    clock.advance(max(0.0, now - clock.time()))
    client = sb.client()
    client.hooks.append(observed.http)
    if choice.model is not None:
        choice.model.callbacks = [ModelObserver(observed)]
    make_input = graph_spec(spec.graph).make_input
    outcome.settings = dict(spec.settings)
    result = None
    driver = None
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
                ctx = build_context(spec, config=Config(home=Path(home)), client=client, sandbox=sb, model=choice,
                                    audit=False, clock=clock, user="eval", thread_id=f"eval-{case.id}-{n + 1}")
                driver = RunDriver(ctx)
                result = None
                result = driver.invoke(payload)
                answers = list(case.approvals)
                seen: set[str] = set()
                pending = _pending(driver, seen, outcome) if result.paused else []
                while result.paused and answers and pending:
                    # one answer per pending approval (parallel tool calls can stop several at once), in order
                    given = [resolve_input(a, outcome.built.refs, inputs) if isinstance(a, Mapping)
                             else {"action": str(a)} for a in answers[:len(pending)]]
                    answers = answers[len(given):]
                    resume: Any = given[0] if len(pending) == 1 else dict(zip(pending, given, strict=False))
                    result = driver.invoke(resume=resume)
                    pending = _pending(driver, seen, outcome) if result.paused else []
                outcome.approvals_unused += len(answers)
        except ScriptedFailure as exc:  # a policy behaviour's model failed and the graph let it through
            outcome.model_failed = str(exc)
        except Exception as exc:  # the run failing is a verdict, reported with the case
            outcome.error = exc
        if result is None and driver is not None and outcome.error is None:
            result = driver.result()  # the state at the last checkpoint of a run the model stopped
        if result is not None:
            outcome.state = _jsonable(result.state)
            outcome.interrupts = _jsonable(result.interrupts)
        cassette_errors = [e for e in observed.model_errors if isinstance(e, CassetteError)]
        other_errors = [e for e in observed.model_errors if not isinstance(e, (CassetteError, ScriptedFailure))]
        if cassette_errors and not case.authored_responses \
                and all(isinstance(e, UnexpectedModelCall) for e in cassette_errors):
            outcome.unexpected_model = str(cassette_errors[0])
            if isinstance(outcome.error, CassetteError):  # the graph let the refused call through: it stopped
                outcome.error = RuntimeError(f"the run stopped on a model call the case does not expect: "
                                             f"{outcome.error}")
        elif cassette_errors:
            outcome.error = cassette_errors[0]
        elif other_errors and choice.kind in ("authored", "recorded", "none") and outcome.error is None:
            outcome.error = CassetteError(f"the model failed: {type(other_errors[0]).__name__}: {other_errors[0]}")
        elif other_errors and choice.kind == "live":
            # whether the graph fell back to its policy or the run raised with the model's error, this run was to
            # judge (or record) the live model, and the model did not answer: an error, never a verdict
            from personas.kernel.cassette import public_base_url

            where = public_base_url(Config.from_env().openai_base_url) or "the OpenAI API"
            answered = len(observed.model_turns)
            outcome.model_unreachable = True
            outcome.error = CassetteError(
                f"the live model at {where} did not answer ({type(other_errors[0]).__name__}: "
                f"{other_errors[0]})" + (f" after {answered} answer(s)" if answered else "")
                + "; nothing was recorded for this case: check OPENAI_BASE_URL, OPENAI_API_KEY and "
                "PERSONAS_MODEL_TIMEOUT")
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
    sb.settle()  # what the run started (bulk consent and import jobs) finishes, as it would in Klaviyo
    _snapshot(sb, setup, outcome)
    if case.expect.profiles:
        outcome.profiles = snapshot_profiles(setup, outcome.built.refs, list(case.expect.profiles))
    client.close()
    setup.close()
    return outcome


def _pending(driver: RunDriver, seen: set[str], outcome: Outcome) -> list[str]:
    """Ids of the approvals the run is stopped on; each one seen for the first time joins ``approvals_asked``."""
    found = driver.pending()
    outcome.approvals_asked += [_jsonable(i.value) for i in found if i.id not in seen]
    seen.update(i.id for i in found)
    return [i.id for i in found]


# -- verdicts ----------------------------------------------------------------------------------
def run_case(suite: Suite, case: Case, model: ModelChoice | None = None, *, epoch: int = 0,
             label: str | None = None, behaviour: str | None = None) -> CaseResult:
    """Run one case with ``model`` (default: replay its cassette from set ``label``) and judge it."""
    started = time.perf_counter()
    try:
        choice = model or replay_choice(suite, case, label)
    except NotRecorded as exc:  # counted apart: not judged, and no file of the user's is broken
        return CaseResult(suite.name, case, [], None, time.perf_counter() - started,
                          f"no answer in {suite.cassette_dir(label).name}/", "not recorded",
                          epoch, kind="unrecorded", behaviour=behaviour, not_recorded=str(exc))
    except CassetteError as exc:
        # the model's answers cannot be had: an error of kind "error", never counted as a run without a model
        return CaseResult(suite.name, case, [], str(exc), time.perf_counter() - started, "cassette", "unreadable",
                          epoch, kind="error", behaviour=behaviour,
                          unusable_cassette=str(exc.path) if isinstance(exc, UnusableCassette) else None)
    live = getattr(choice.model, "live", None) is not None and choice.kind == "live"
    kind = "live" if live else choice.kind if choice.kind in ("recorded", "authored", "scripted") else "none"
    cassette = choice.cassette.describe() if choice.cassette is not None and choice.cassette.interactions else (
        choice.description)
    outcome = execute(suite, case, choice)
    error = None
    failures: list[str] = []
    if isinstance(outcome.error, (CassetteError, SetupError)):
        error = str(outcome.error)
    else:
        played = choice.cassette.interactions[:choice.cassette.position] if choice.cassette is not None else []
        schemas = choice.cassette.schemas if choice.cassette is not None else {}
        failures = judge(suite, case, outcome, kind, played, schemas)
        if outcome.unexpected_model:
            failures.insert(0, "model asked: the case expects no model call (no authored_responses, no cassette) and "
                               "the run asked the model; if it now should, write authored_responses and run "
                               f"`personas eval {suite_arg(suite)} --case {case.id} --author`")
        extra = case.expect_when.get(behaviour or "")
        if extra is not None:
            failures += [f"when {behaviour}: {f}" for f in check_case(case.model_copy(update={"expect": extra}),
                                                                      outcome)]
    if error is not None:
        # the run could not be judged: a cassette that stopped answering it (a request that does not match, one
        # played in part, a live model that did not answer) or a case that could not be set up. Whatever the
        # cassette says it holds, no answer of that kind was judged: no pass rate of a kind counts it
        kind = "error"
    elif kind == "live" and not outcome.model_turns:
        kind = "none"  # the run never got to ask the model: its verdict says nothing about the model
    return CaseResult(suite.name, case, failures, error, time.perf_counter() - started, choice.description,
                      cassette, epoch, outcome, kind, behaviour)


def run_policy_case(suite: Suite, case: Case, on_result: Callable[[CaseResult], None] | None = None
                    ) -> list[CaseResult]:
    """A policy case once per behaviour (scripted ones, then failing and absent)."""
    out = []
    for name in behaviour_names(suite, case):
        result = run_case(suite, case, behaviour_choice(suite, case, name), behaviour=name)
        out.append(result)
        if on_result:
            on_result(result)
    return out


def run_suite(
    suite: Suite,
    *,
    case_ids: Sequence[str] = (),
    model_factory: ModelFactory | None = None,
    epochs: int = 1,
    on_result: Callable[[CaseResult], None] | None = None,
    label: str | None = None,
) -> SuiteResult:
    """Every case (or those in ``case_ids``), ``epochs`` times each, models from ``model_factory``.

    Policy cases run once per behaviour (their scripted models are the same every epoch); a model
    case's cassette comes from set ``label`` unless ``model_factory`` gives a model.
    """
    started = time.perf_counter()
    cases = [suite.case(i) for i in case_ids] if case_ids else list(suite.cases)
    results: list[CaseResult] = []
    for case in cases:
        if case.policy:
            results += run_policy_case(suite, case, on_result)
            continue
        for epoch in range(epochs):
            model = model_factory(suite, case, epoch) if model_factory else None
            result = run_case(suite, case, model, epoch=epoch, label=label)
            results.append(result)
            if on_result:
                on_result(result)
            if model is None and epoch == 0 and result.kind != "live":
                break  # a replayed case answers the same every time
    return SuiteResult(suite, results, epochs, time.perf_counter() - started)
