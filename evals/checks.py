"""Judge a case's outcome: its expectations, and the checks every case gets whatever it says.

:func:`check_case` checks what the case expects (trajectory, state, outbox, lists, approvals and
the outcome checks of ``outcomes.py``). :func:`judge` adds the checks that do not depend on the
case's author remembering them:

- **fencing** (``expect.fencing``, on by default): untrusted data reached the model only fenced
  and escaped (``fencing.py``);
- **authored answers** must be answers a model could give to the request the graph sent (tools
  bound, their strict schemas, ``tool_choice``, ``parallel_tool_calls``: ``answers.py``), and must
  have been reviewed for the prompt they answer: ``authored_for`` is the digest of the system
  prompt they were written for, and a changed prompt makes them **stale** until someone reviews them
  and runs ``--stamp`` (re-authoring the cassette does not);
- **something to judge**: a case whose ``expect`` checks nothing the run decides (empty, or a ``superset``
  trajectory of no calls) fails instead of passing whatever its agent did.

Every failure is a sentence; none of them is a cassette error, so a cassette re-authored after a
regression never turns one of them green.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from personas.kernel.cassette import mask

from .answers import answer_problems
from .case import Case, Suite
from .commands import suite_arg
from .fencing import fence_problems, vocabulary
from .matchers import MISSING, CallSpec, MatchContext, call_problems, match_trajectory, match_value, show
from .outcomes import check_outcomes

__all__ = ["check_case", "get_path", "judge", "prompt_digest"]


def prompt_digest(request: Mapping[str, Any]) -> str:
    """The digest of a request's system prompt (dates masked), what ``authored_for`` names."""
    text = "\n\n".join(str(m.get("text") or "") for m in request.get("messages") or [] if m.get("role") == "system")
    return "sha256:" + hashlib.sha256(mask(text).encode()).hexdigest()[:16]


def judge(suite: Suite, case: Case, outcome: Any, kind: str, played: Sequence[Mapping[str, Any]] = (),
          schemas: Mapping[str, Any] | None = None) -> list[str]:
    """:func:`check_case`, then fencing, for authored answers their validity and freshness, and (when nothing else
    failed) that the case checks something at all."""
    failures = unknown_tools(case) + check_case(case, outcome)
    requests = outcome.model_requests
    if case.expect.fencing and requests:
        system = "\n".join(str(m.get("text") or "") for m in requests[0].get("messages") or []
                           if m.get("role") == "system")
        failures += fence_problems(case, requests, vocabulary(outcome.settings), system)
    if kind == "authored" and requests:
        current = prompt_digest(requests[0])
        stamp = f"`personas eval {suite_arg(suite)} --case {case.id} --stamp`"
        if case.authored_for is None:
            failures.append(f"stale: the authored responses do not say which prompt they were written for; review "
                            f"them against the prompt, then run {stamp}")
        elif case.authored_for != current:
            failures.append(f"stale: the authored responses were written for prompt {case.authored_for}, and the "
                            f"prompt is now {current}; review them against the new prompt (re-authoring the cassette "
                            f"does not), then run {stamp}")
        for n, item in enumerate(played, 1):
            failures += [f"authored answer invalid: {p}" for p in
                         answer_problems(item["request"], item["response"], schemas or {}, n)]
    failures += [p for e in (case.expect, *case.expect_when.values()) for p in always_met(e)]
    if not failures and not any(_decides(e) for e in (case.expect, *case.expect_when.values())):
        failures.append("expect: the case checks nothing the run decides (no trajectory, state, outbox, lists, "
                        "not_called, model_calls, call_counts, profiles, files, ...), so it would pass whatever the "
                        "agent did; write what the run must decide")
    return failures


#: The tools a model calls that are no Klaviyo operation: the sequencer's choice, the chat's tool search.
MODEL_TOOLS = ("choose_sequence", "describe_tool", "find_tools")


def unknown_tools(case: Case) -> list[str]:
    """The tool names ``case`` expects (trajectory, ``not_called``, ``call_counts``, ``ignore``) that no call can
    have, as failures: calls are recorded by operation id (or the model tool's name), so a misspelt name or an
    alias never matches, and a ``not_called`` or a zero count naming one holds whatever the run does. A name no
    tool has is allowed for the model's calls only (``source: model``, ``model:`` in a count): a model may
    invent one, and a case may check it did not."""
    from klaviyo_toolkit.catalog import load_catalog
    from klaviyo_toolkit.errors import UnknownOperationError

    catalog = load_catalog(True)
    problems: list[str] = []
    for exp in (case.expect, *case.expect_when.values()):
        named = [("not_called", i, False) if isinstance(i, str) else ("not_called", i.tool, i.source == "model")
                 for i in exp.not_called]
        named += [("call_counts", k.split(":", 1)[-1], k.startswith("model:")) for k in exp.call_counts]
        if exp.trajectory is not None:
            model = exp.trajectory.source == "model"
            named += [("trajectory", c.tool, model or c.source == "model") for c in exp.trajectory.calls]
            named += [("trajectory.ignore", t, model) for t in exp.trajectory.ignore]
        for where, name, invented in named:
            if name == "*" or name in MODEL_TOOLS:
                continue
            try:
                known = catalog.get(name).operation_id
            except UnknownOperationError as exc:
                if not invented:
                    problems.append(f"expect.{where}: {exc} Nor is it a model tool ({', '.join(MODEL_TOOLS)}), so a "
                                    "check naming it never sees a call; for a tool a model might invent, write "
                                    f"{{tool: {name}, source: model}}")
                continue
            if known != name:
                problems.append(f"expect.{where}: {name!r} is an alias; calls are recorded by operation id: write "
                                f"{known!r}")
    return list(dict.fromkeys(problems))


#: Values a run may give a count (``model_calls``, ``call_counts``) and any other checked field: a matcher that
#: every one of them meets (``{min: 0}``, ``{any_of: [{absent: true}, {present: true}]}``) holds whatever the run does.
_ANY_COUNT = (0, 1, 2, 7, 1_000_000)
_ANY_VALUE = (MISSING, None, 0, -1, 2.5, True, False, "", "\x00probe", [], [None], {}, {"\x00probe": 1})
_COUNTED = ("model_calls", "call_counts")
_MATCHED = ("model_calls", "interrupts", "approvals_asked", "model_requests")


def _met_by_all(matcher: Any, probes: Sequence[Any]) -> bool:
    """Whether every probe meets ``matcher``; never for one that negates (``not: {contains: "99%"}`` is a real
    check that a few probes cannot cover), so only a matcher that truly holds for anything is reported."""
    if _negates(matcher):
        return False
    try:
        return all(not match_value(matcher, probe) for probe in probes)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError):  # a probe the matcher cannot take
        return False


def _negates(matcher: Any) -> bool:
    if isinstance(matcher, Mapping):
        return "not" in matcher or any(_negates(v) for v in matcher.values())
    return isinstance(matcher, list) and any(_negates(v) for v in matcher)


def always_met(exp: Any) -> list[str]:
    """The checks in ``exp`` that every run meets, as failures: a matcher that holds for any count (or any value,
    or none) says nothing about what the agent did, so a case leaning on it would pass whatever happened."""
    probes = {name: _ANY_COUNT if name in _COUNTED else _ANY_VALUE for name in (*_COUNTED, *_MATCHED, "state")}
    named = [(f"expect.{n}", getattr(exp, n), probes[n]) for n in _MATCHED if getattr(exp, n) is not None]
    named += [(f"expect.call_counts[{k!r}]", m, probes["call_counts"]) for k, m in exp.call_counts.items()]
    named += [(f"expect.state[{k!r}]", m, probes["state"]) for k, m in exp.state.items()]
    return [f"{where}: {show(matcher)} holds whatever the run does (any count, any value or none), so it checks "
            "nothing; write what the run must decide"
            for where, matcher, values in named if _met_by_all(matcher, values)]


def _decides(exp: Any) -> bool:
    """Whether ``exp`` checks anything the run decides: fencing alone, or a ``superset`` trajectory of no calls
    (which every run meets), does not; a case expecting only that passes whatever its agent does."""
    given = exp.model_dump(exclude={"trajectory", "fencing", "untrusted"}, exclude_defaults=True)
    path = exp.trajectory
    return bool(given) or (path is not None and (path.mode != "superset" or bool(path.calls)))


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


def check_case(case: Case, outcome: Any) -> list[str]:
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
        failures += [f"trajectory ({t.mode}, {t.match} arguments): {p}" for p in
                     match_trajectory(t.mode, t.calls, outcome.trajectory, ctx, source=t.source, ignore=t.ignore,
                                      match=t.match)]
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
    # match_value starts each problem with its path, the field's name: no second prefix ("interrupts: interrupts: ")
    if exp.interrupts is not None:
        failures += match_value(exp.interrupts, outcome.interrupts, ctx, "interrupts")
    if exp.approvals_asked is not None:
        failures += match_value(exp.approvals_asked, outcome.approvals_asked, ctx, "approvals_asked")
    if outcome.approvals_unused and not case.policy:
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
