"""Matchers for eval expectations: values, argument dicts, and whole trajectories of tool calls.

A matcher is plain YAML data. A scalar must be equal; a mapping is a **partial** match (every key
given must match, other keys are ignored); a list must have, for each item given, a distinct
actual item that matches it (any order, others allowed), and an empty list ``[]`` matches only an
empty list (``{type: array}`` is any list). A mapping whose keys are all operators
is an operator matcher (several operators in one mapping must all hold)::

    exact: {...}            deep equality, no partial matching (also: eq)
    regex: "^lead-sequence:"   re.search on the text
    contains: "consult"     a substring of a string, or an item of a list that matches
                            ({contains: {ref: profile:maya}}: the text holds that fixture id)
    any_of: [m1, m2]        one of the matchers holds          all_of: [m1, m2]   all hold
    not: m                  the matcher does not hold (matched partially, even under match: exact)
    absent: true            the key is missing or null (absent: false = present and not null)
    present: true           the key is there and not null
    min / max / gt / lt     number bounds                      between: [lo, hi]  inclusive
    len: m                  the length matches m (a number or a matcher)
    items: [m1, m2]         a list of exactly these items, in this order
    ref: profile:maya       equals the id the fixture gave (profile:KEY, list:NAME, flow:NAME)
    type: string            string | number | integer | boolean | object | array | null
    fields: {...}           a partial match of an object, for keys that are themselves operator names

Trajectories are lists of calls ``{source, tool, args, status}`` matched against expected calls
``{tool, args, source, status}`` in one of four modes (as agentevals names them):

- ``strict`` (the default): the same calls in the same order;
- ``unordered``: the same calls in any order;
- ``superset``: every expected call happened (others may have too);
- ``subset``: every call that happened was expected (some expected ones may not have).

Arguments match **exactly** by default (``match: exact``): an argument that is not written in the
expected call must be absent or null (a strict-mode model sends null for arguments it does not
use), a list must have exactly the items written, and a call written without ``args`` must have
none. ``match: partial`` (on the trajectory or one call) checks only the arguments written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "MODES",
    "CallSpec",
    "MatchContext",
    "check_matcher",
    "match_calls",
    "match_trajectory",
    "match_value",
    "show",
]

MODES = ("strict", "unordered", "subset", "superset")
Mode = Literal["strict", "unordered", "subset", "superset"]
OPERATORS = frozenset({
    "exact", "eq", "regex", "contains", "any_of", "all_of", "not", "absent", "present",
    "min", "max", "gt", "lt", "between", "len", "items", "ref", "type", "fields",
})
_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, Mapping),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclass
class MatchContext:
    """What matchers may refer to: ids the fixture created (``ref: profile:maya``)."""

    refs: Mapping[str, str] = field(default_factory=dict)


class CallSpec(BaseModel):
    """One expected call: the tool (operation id or model tool name) and what its arguments hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tool: str
    args: Any = None
    source: Literal["http", "model"] | None = None
    status: Any = None
    match: Literal["exact", "partial"] | None = None

    def label(self) -> str:
        where = f"{self.source}:" if self.source else ""
        return f"{where}{self.tool}" + (f" {show(self.args)}" if self.args is not None else "")


def show(value: Any, limit: int = 160) -> str:
    """A short one-line rendering of a value for failure messages."""
    if value is MISSING:
        return "<missing>"
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_operator(matcher: Any) -> bool:
    return isinstance(matcher, Mapping) and bool(matcher) and all(k in OPERATORS for k in matcher)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _number(a) and _number(b):
        return float(a) == float(b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def match_value(
    expected: Any, actual: Any, ctx: MatchContext | None = None, path: str = "", *, closed: bool = False
) -> list[str]:
    """Why ``actual`` does not match ``expected`` (an empty list when it does).

    ``closed``: objects may hold no key beyond those written (unless null) and lists no item beyond
    those written, at every level (how call arguments match by default).
    """
    ctx = ctx or MatchContext()
    where = path or "value"
    if is_operator(expected):
        problems: list[str] = []
        for op, arg in expected.items():
            problems += _operator(op, arg, actual, ctx, where, closed)
        return problems
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [f"{where}: expected an object holding {show(expected)}, got {show(actual)}"]
        problems = []
        for key, sub in expected.items():
            problems += match_value(sub, actual.get(key, MISSING), ctx, f"{path}.{key}" if path else str(key),
                                    closed=closed)
        if closed:
            extra = [k for k, v in actual.items() if k not in expected and v is not None]
            problems += [f"{path}.{k}: not expected, got {show(actual[k])} (match: partial allows it)" if path
                         else f"{k}: not expected, got {show(actual[k])} (match: partial allows it)" for k in extra]
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list holding {show(expected)}, got {show(actual)}"]
        if not expected and actual:  # `[]` is written to mean "none"; as "these items, others allowed" it held always
            return [f"{where}: expected an empty list, got {show(actual)} (write {{type: array}} for any list)"]
        pairs = _assign(expected, actual, lambda e, a: not match_value(e, a, ctx, closed=closed))
        missing = [e for i, e in enumerate(expected) if i not in pairs]
        problems = [f"{where}: no item matches {show(e)} (items: {show(actual)})" for e in missing]
        if closed and len(actual) > len(expected):
            used = set(pairs.values())
            problems += [f"{where}: unexpected item {show(a)}" for j, a in enumerate(actual) if j not in used]
        return problems
    if actual is MISSING:
        return [f"{where}: missing (expected {show(expected)})"]
    if not _equal(expected, actual):
        return [f"{where}: expected {show(expected)}, got {show(actual)}"]
    return []


def _operator(op: str, arg: Any, actual: Any, ctx: MatchContext, where: str, closed: bool = False) -> list[str]:
    present = actual is not MISSING and actual is not None
    if op in ("exact", "eq"):
        if actual is not MISSING and _equal(arg, actual):
            return []
        return [f"{where}: expected exactly {show(arg)}, got {show(actual)}"]
    if op == "absent":
        return [] if (not present) == bool(arg) else [
            f"{where}: expected {'no value' if arg else 'a value'}, got {show(actual)}"]
    if op == "present":
        wanted = "a value" if arg else "no value"
        return [] if present == bool(arg) else [f"{where}: expected {wanted}, got {show(actual)}"]
    if op == "any_of":
        options = [match_value(m, actual, ctx, where, closed=closed) for m in arg]
        return [] if any(not o for o in options) else [f"{where}: matches none of {show(arg)} (got {show(actual)})"]
    if op == "all_of":
        return [p for m in arg for p in match_value(m, actual, ctx, where, closed=closed)]
    if op == "not":
        # what is written must not be there: matched partially, else under `match: exact` an extra key or item
        # (a call's other arguments) would make the inner matcher fail and `not` hold whatever the run did
        if match_value(arg, actual, ctx, where):
            return []
        return [f"{where}: must not match {show(arg)}, got {show(actual)}"]
    if op == "type":
        return [] if actual is not MISSING and _TYPES[str(arg)](actual) else [
            f"{where}: expected a {arg}, got {show(actual)}"]
    if not present:
        return [f"{where}: missing (expected {op} {show(arg)})"]
    if op == "regex":
        text = actual if isinstance(actual, str) else show(actual, 10_000)
        return [] if re.search(str(arg), text) else [f"{where}: {show(actual)} does not match /{arg}/"]
    if op == "contains":
        if isinstance(actual, str) and isinstance(arg, Mapping) and set(arg) == {"ref"}:
            if arg["ref"] not in ctx.refs:
                return [f"{where}: unknown ref {arg['ref']!r} (known: {', '.join(sorted(ctx.refs)) or 'none'})"]
            wanted = ctx.refs[arg["ref"]]
            return [] if wanted in actual else [f"{where}: {show(actual)} does not contain {arg['ref']} ({wanted})"]
        if isinstance(actual, str):
            return [] if str(arg) in actual else [f"{where}: {show(actual)} does not contain {show(arg)}"]
        if isinstance(actual, list):
            return [] if any(not match_value(arg, item, ctx, closed=closed) for item in actual) else [
                f"{where}: no item of {show(actual)} matches {show(arg)}"]
        return match_value(arg, actual, ctx, where, closed=closed)
    if op in ("min", "max", "gt", "lt", "between"):
        if not _number(actual):
            return [f"{where}: expected a number ({op} {show(arg)}), got {show(actual)}"]
        ok = {"min": lambda: actual >= arg, "max": lambda: actual <= arg, "gt": lambda: actual > arg,
              "lt": lambda: actual < arg, "between": lambda: arg[0] <= actual <= arg[1]}[op]()
        return [] if ok else [f"{where}: {actual} is not {op} {show(arg)}"]
    if op == "len":
        if not hasattr(actual, "__len__"):
            return [f"{where}: has no length ({show(actual)})"]
        return match_value(arg, len(actual), ctx, f"len({where})")
    if op == "items":
        if not isinstance(actual, list) or len(actual) != len(arg):
            return [f"{where}: expected {len(arg)} items in order, got {show(actual)}"]
        return [p for i, (m, a) in enumerate(zip(arg, actual, strict=True))
                for p in match_value(m, a, ctx, f"{where}[{i}]", closed=closed)]
    if op == "ref":
        if arg not in ctx.refs:
            return [f"{where}: unknown ref {arg!r} (known: {', '.join(sorted(ctx.refs)) or 'none'})"]
        return [] if actual == ctx.refs[arg] else [f"{where}: expected {arg} ({ctx.refs[arg]}), got {show(actual)}"]
    if op == "fields":
        if not isinstance(actual, Mapping):
            return [f"{where}: expected an object, got {show(actual)}"]
        problems = [p for k, m in arg.items()
                    for p in match_value(m, actual.get(k, MISSING), ctx, f"{where}.{k}", closed=closed)]
        if closed:
            problems += [f"{where}.{k}: not expected, got {show(v)}" for k, v in actual.items()
                         if k not in arg and v is not None]
        return problems
    raise AssertionError(op)  # pragma: no cover - OPERATORS and this function agree


def check_matcher(matcher: Any, path: str = "") -> list[str]:
    """Problems with how a matcher is written (bad regex, wrong operator arguments)."""
    where = path or "matcher"
    if is_operator(matcher):
        problems: list[str] = []
        for op, arg in matcher.items():
            at = f"{where}.{op}"
            if op == "regex":
                try:
                    re.compile(str(arg))
                except re.error as exc:
                    problems.append(f"{at}: not a valid regular expression ({exc})")
            elif op in ("any_of", "all_of", "items"):
                if not isinstance(arg, list) or (op != "items" and not arg):
                    problems.append(f"{at}: give a list of matchers")
                else:
                    problems += [p for i, m in enumerate(arg) for p in check_matcher(m, f"{at}[{i}]")]
            elif op in ("not", "len", "contains", "exact", "eq"):
                problems += check_matcher(arg, at) if op in ("not", "len", "contains") else []
            elif op in ("min", "max", "gt", "lt") and not _number(arg):
                problems.append(f"{at}: give a number")
            elif op == "between" and not (isinstance(arg, list) and len(arg) == 2 and all(_number(x) for x in arg)):
                problems.append(f"{at}: give [low, high] numbers")
            elif op in ("absent", "present") and not isinstance(arg, bool):
                problems.append(f"{at}: give true or false")
            elif op == "type" and arg not in _TYPES:
                problems.append(f"{at}: one of {', '.join(_TYPES)}")
            elif op == "fields":
                if not isinstance(arg, Mapping):
                    problems.append(f"{at}: give an object of matchers")
                else:
                    problems += [p for k, m in arg.items() for p in check_matcher(m, f"{at}.{k}")]
            elif op == "ref" and not (isinstance(arg, str) and ":" in arg):
                problems.append(f"{at}: give KIND:NAME, e.g. profile:maya")
        return problems
    if isinstance(matcher, Mapping):
        return [p for k, v in matcher.items() for p in check_matcher(v, f"{path}.{k}" if path else str(k))]
    if isinstance(matcher, list):
        return [p for i, v in enumerate(matcher) for p in check_matcher(v, f"{where}[{i}]")]
    return []


# -- trajectories --------------------------------------------------------------------------------
def call_problems(
    spec: CallSpec, call: Mapping[str, Any], ctx: MatchContext | None = None, match: str = "partial"
) -> list[str]:
    """Why one actual call is not the expected one (empty when it is); ``match`` unless the spec says."""
    if call.get("tool") != spec.tool:
        return [f"tool is {call.get('tool')}, not {spec.tool}"]
    if spec.source and call.get("source") != spec.source:
        return [f"source is {call.get('source')}, not {spec.source}"]
    problems = []
    closed = (spec.match or match) == "exact"
    if spec.args is not None or closed:
        problems += match_value({} if spec.args is None else spec.args, call.get("args") or {}, ctx, "args",
                                closed=closed)
    if spec.status is not None:
        problems += match_value(spec.status, call.get("status", MISSING), ctx, "status")
    return problems


def _assign(expected: Sequence[Any], actual: Sequence[Any], fits: Callable[[Any, Any], bool]) -> dict[int, int]:
    """A maximum matching expected index -> actual index (Kuhn's augmenting paths; lists are small)."""
    options = [[j for j, a in enumerate(actual) if fits(e, a)] for e in expected]
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in options[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(len(expected)):
        augment(i, set())
    return {i: j for j, i in owner.items()}


def _label(call: Mapping[str, Any]) -> str:
    return f"{call.get('source')}:{call.get('tool')} {show(call.get('args'), 120)}"


def _closest(spec: CallSpec, calls: Sequence[Mapping[str, Any]], ctx: MatchContext | None, match: str) -> str:
    same = [c for c in calls if c.get("tool") == spec.tool]
    if not same:
        return f"no {spec.tool} call was made"
    fitting = [c for c in same if not call_problems(spec, c, ctx, match)]
    if fitting:
        return f"only {len(fitting)} matching {spec.tool} call(s) were made, each matched by another expected call"
    problems = min((call_problems(spec, c, ctx, match) for c in same), key=len)
    return f"the nearest {spec.tool} call differs: " + "; ".join(problems[:3])


def match_calls(
    mode: Mode,
    expected: Sequence[CallSpec],
    actual: Sequence[Mapping[str, Any]],
    ctx: MatchContext | None = None,
    match: str = "exact",
) -> list[str]:
    """Why a trajectory does not match ``expected`` in ``mode`` (empty when it does); arguments by ``match``."""
    if mode not in MODES:
        raise ValueError(f"unknown trajectory mode {mode!r}; use one of {', '.join(MODES)}")
    if mode == "strict":
        problems = []
        for i in range(max(len(expected), len(actual))):
            if i >= len(actual):
                problems.append(f"call {i + 1}: expected {expected[i].label()}, "
                                f"but the run made only {len(actual)} calls")
            elif i >= len(expected):
                problems.append(f"call {i + 1}: unexpected {_label(actual[i])}")
            else:
                why = call_problems(expected[i], actual[i], ctx, match)
                if why:
                    problems.append(f"call {i + 1} ({actual[i].get('tool')}): " + "; ".join(why))
        return problems
    pairs = _assign(expected, actual, lambda e, a: not call_problems(e, a, ctx, match))
    used = set(pairs.values())
    problems = []
    if mode in ("unordered", "superset"):
        problems += [f"expected {e.label()}: {_closest(e, actual, ctx, match)}"
                     for i, e in enumerate(expected) if i not in pairs]
    if mode in ("unordered", "subset"):
        problems += [f"unexpected call {_label(a)}" for j, a in enumerate(actual) if j not in used]
    return problems


def match_trajectory(
    mode: Mode,
    expected: Sequence[CallSpec | Mapping[str, Any]],
    actual: Sequence[Mapping[str, Any]],
    ctx: MatchContext | None = None,
    *,
    source: str = "all",
    ignore: Sequence[str] = (),
    match: str = "exact",
) -> list[str]:
    """:func:`match_calls` after keeping calls from ``source`` (http | model | all) and dropping ``ignore``d tools."""
    specs = [e if isinstance(e, CallSpec) else CallSpec.model_validate(e) for e in expected]
    kept = [c for c in actual if (source == "all" or c.get("source") == source) and c.get("tool") not in ignore]
    return match_calls(mode, specs, kept, ctx, match)
