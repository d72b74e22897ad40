"""Two cassette sets side by side: which cases changed decision (``personas eval --compare A B``).

A set is ``cassettes`` (the default folder) or the label of ``cassettes-<label>/`` (e.g. one
recorded from a local model). Every model case that has a cassette in either set is replayed from
each; a case's **decision** is what its suite names in ``decisions`` (state paths such as
``decision.sequence``) followed by the model's tool calls, and the verdict (passed, failed, or why
it could not run: no cassette, a stale one). A row is marked changed when the decision or the
verdict differs.

Example::

    personas eval lead_magnet --compare cassettes qwen2.5-7b
    | case               | cassettes        | qwen2.5-7b              | changed |
    | hot-director-...   | passed: fast-track | failed: nurture       | yes     |
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .case import Case, Suite
from .checks import get_path
from .matchers import MISSING
from .results import CaseResult, policy_events
from .runner import run_case

__all__ = ["Compared", "SuiteSide", "compare_sets", "compare_table", "decision_of", "policy_events", "side_by_side",
           "side_table", "write_compare"]


@dataclass
class Compared:
    """One case replayed from two sets."""

    suite: str
    case: str
    a: str
    b: str
    a_decision: str
    b_decision: str
    a_passed: bool | None = None
    b_passed: bool | None = None
    a_policy: tuple[str, ...] = ()
    b_policy: tuple[str, ...] = ()
    #: the replay from that set was an error (its cassette does not answer the run): judged neither way
    a_error: bool = False
    b_error: bool = False

    @property
    def changed(self) -> bool:
        return (self.a_decision, self.a.split(":")[0]) != (self.b_decision, self.b.split(":")[0])


def decision_of(suite: Suite, result: CaseResult | None) -> str:
    """The decision a run made: the suite's decision paths, then the model's tool calls."""
    if result is None or result.outcome is None or result.error:
        return "-"
    parts = []
    for path in suite.decisions:
        value = get_path(result.outcome.state, path)
        parts.append(f"{path.rsplit('.', 1)[-1]}={'-' if value is MISSING else value}")
    calls = [c for c in result.outcome.trajectory if c.get("source") == "model"]
    if calls and not suite.decisions:
        parts += [f"{c['tool']}({_args(c.get('args'))})" for c in calls]
    elif calls:
        parts.append("calls " + ", ".join(c["tool"] for c in calls))
    return "; ".join(parts) or "no tool call"


def _args(args: Any) -> str:
    kept = {k: v for k, v in (args or {}).items() if v is not None and k != "reason"}
    text = json.dumps(kept, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 60 else text[:59] + "…"


def _verdict(result: CaseResult | None) -> str:
    if result is None:
        return "no cassette"
    if result.error:
        return f"error: {result.error.splitlines()[0][:80]}"
    return "passed" if result.passed else f"failed: {result.failures[0][:80]}"


def _has(suite: Suite, case: Case, label: str) -> bool:
    return suite.cassette_path(case, label).exists()


def compare_sets(suites: Sequence[Suite], chosen: dict[str, list[str]], a: str, b: str) -> list[Compared]:
    """Replay every model case with a cassette in ``a`` or ``b`` from both sets."""
    rows = []
    for suite in suites:
        for case_id in chosen.get(suite.name, []):
            case = suite.case(case_id)
            if case.policy or case.model == "none" or not (_has(suite, case, a) or _has(suite, case, b)):
                continue
            ra = run_case(suite, case, label=a) if _has(suite, case, a) else None
            rb = run_case(suite, case, label=b) if _has(suite, case, b) else None
            rows.append(Compared(suite.name, case.id, _verdict(ra), _verdict(rb), decision_of(suite, ra),
                                 decision_of(suite, rb), None if ra is None else ra.passed,
                                 None if rb is None else rb.passed, policy_events(ra), policy_events(rb),
                                 bool(ra and ra.error), bool(rb and rb.error)))
    return rows


@dataclass
class SuiteSide:
    """One suite's model cases under two sets: how many each holds and passes, and the known failures."""

    suite: str
    total: int
    held: tuple[int, int]
    passed: tuple[int, int]
    known: tuple[dict[str, str], dict[str, str]]
    #: cases whose replay from the set was an error: held, but in no pass rate
    errors: tuple[int, int] = (0, 0)

    def cell(self, i: int) -> str:
        held, passed, errors = self.held[i], self.passed[i], self.errors[i]
        judged = held - errors
        rate = f"{100 * passed / judged:.1f}%" if judged else "n/a"
        partial = "" if held == self.total else f" (PARTIAL: {held} of {self.total} recorded)"
        lost = f", {errors} error(s) (not counted)" if errors else ""
        known = f", {len(self.known[i])} known failure(s)" if self.known[i] else ""
        return f"{passed}/{judged} {rate}{partial}{lost}{known}"


def side_by_side(suites: Sequence[Suite], rows: Sequence[Compared], a: str, b: str) -> list[SuiteSide]:
    """Per suite: each set's pass rate over the model cases it holds and could replay (errors apart), out of the
    suite's model cases."""
    from .sets import load_set, model_cases

    out = []
    for suite in suites:
        mine = [r for r in rows if r.suite == suite.name]
        if not mine:
            continue
        known = tuple(load_set(suite, x).known_failures if x != "cassettes" else {} for x in (a, b))
        out.append(SuiteSide(suite.name, len(model_cases(suite)),
                             (sum(r.a_passed is not None for r in mine), sum(r.b_passed is not None for r in mine)),
                             (sum(bool(r.a_passed) for r in mine), sum(bool(r.b_passed) for r in mine)),
                             (known[0], known[1]), (sum(r.a_error for r in mine), sum(r.b_error for r in mine))))
    return out


def side_table(sides: Sequence[SuiteSide], rows: Sequence[Compared], a: str, b: str) -> Any:
    """Rich tables: the pass rates side by side, then where ``b``'s model and the policy parted."""
    from rich.table import Table

    table = Table(title=f"model cases: {a} | {b}")
    table.add_column("suite", no_wrap=True)
    table.add_column("model cases", justify="right")
    table.add_column(a)
    table.add_column(b)
    for s in sides:
        table.add_row(s.suite, str(s.total), s.cell(0), s.cell(1))
    policy = Table(title=f"{b}: where the model and the policy parted")
    policy.add_column("case", no_wrap=True)
    policy.add_column("what happened")
    for r in rows:
        if r.b_policy:
            policy.add_row(f"{r.suite}/{r.case}", "\n".join(r.b_policy))
    return (table, policy) if policy.row_count else (table, f"{b}: the model and the policy never parted.")


def compare_table(rows: Sequence[Compared], a: str, b: str) -> Any:
    """A rich Table of the cases that changed: each set's verdict and decision, in a line each (the
    full reasons are in ``compare.md``, which ``--report DIR`` writes)."""
    from rich.table import Table

    changed = [r for r in rows if r.changed]
    table = Table(title=f"cases that changed between {a} and {b} ({len(changed)} of {len(rows)})")
    table.add_column("case")
    table.add_column(a)
    table.add_column(b)
    for r in changed:
        table.add_row(_cut(f"{r.suite}/{r.case}", 38), _cut(_short(r.a, r.a_decision), 16),
                      _cut(_short(r.b, r.b_decision), 16))
    return table


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _short(verdict: str, decision: str) -> str:
    """'passed, fast-track': the verdict's first word and the decision, on one line."""
    word = verdict.split(":", 1)[0].strip()
    decision = " ".join(decision.split())
    return f"{word}, {decision}" if decision and decision != "-" else word


def write_compare(rows: Sequence[Compared], a: str, b: str, folder: Path,
                  sides: Sequence[SuiteSide] = ()) -> Path:
    """``compare.md`` in ``folder``: pass rates side by side, known failures, where the model and the
    policy parted, then every case, changed ones first."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# personas eval --compare {a} {b}", ""]
    if sides:
        lines += ["Pass rate over each suite's model cases (policy and no-model cases do not depend on the set):", "",
                  f"| suite | model cases | {a} | {b} |", "| --- | ---: | --- | --- |"]
        lines += [f"| {s.suite} | {s.total} | {s.cell(0)} | {s.cell(1)} |" for s in sides]
        known = [(s.suite, c, why) for s in sides for c, why in s.known[1].items()]
        if known:
            lines += ["", f"Known failures of {b} (kept, counted, never passed off):", ""]
            lines += [f"- `{suite}/{c}`: {why}" for suite, c, why in known]
        parted = [r for r in rows if r.b_policy]
        lines += ["", f"Where {b}'s model and the policy parted ({len(parted)} case(s)):", ""]
        lines += [f"- `{r.suite}/{r.case}`: " + "; ".join(r.b_policy) for r in parted] or ["- none"]
        lines.append("")
    lines += [f"{sum(r.changed for r in rows)} of {len(rows)} case(s) changed decision or verdict.", "",
              f"| case | {a} | {b} | changed |", "| --- | --- | --- | --- |"]
    for r in sorted(rows, key=lambda r: not r.changed):
        cell = lambda verdict, decision: f"{verdict}<br>{decision}".replace("|", "\\|")  # noqa: E731
        lines.append(f"| `{r.suite}/{r.case}` | {cell(r.a, r.a_decision)} | {cell(r.b, r.b_decision)} | "
                     f"{'yes' if r.changed else 'no'} |")
    path = folder / "compare.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
