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
from .results import CaseResult
from .runner import run_case

__all__ = ["Compared", "compare_sets", "compare_table", "decision_of", "write_compare"]


@dataclass
class Compared:
    """One case replayed from two sets."""

    suite: str
    case: str
    a: str
    b: str
    a_decision: str
    b_decision: str

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
                                 decision_of(suite, rb)))
    return rows


def compare_table(rows: Sequence[Compared], a: str, b: str) -> Any:
    """A rich Table: case, each set's verdict and decision, changed."""
    from rich.table import Table

    table = Table(title=f"personas eval --compare {a} {b}")
    table.add_column("case", no_wrap=True)
    table.add_column(a)
    table.add_column(b)
    table.add_column("changed")
    for r in rows:
        table.add_row(f"{r.suite}/{r.case}", f"{r.a}\n{r.a_decision}", f"{r.b}\n{r.b_decision}",
                      "[yellow]yes[/yellow]" if r.changed else "no")
    return table


def write_compare(rows: Sequence[Compared], a: str, b: str, folder: Path) -> Path:
    """``compare.md`` in ``folder``: the same table, changed cases first."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# personas eval --compare {a} {b}", "",
             f"{sum(r.changed for r in rows)} of {len(rows)} case(s) changed decision or verdict.", "",
             f"| case | {a} | {b} | changed |", "| --- | --- | --- | --- |"]
    for r in sorted(rows, key=lambda r: not r.changed):
        cell = lambda verdict, decision: f"{verdict}<br>{decision}".replace("|", "\\|")  # noqa: E731
        lines.append(f"| `{r.suite}/{r.case}` | {cell(r.a, r.a_decision)} | {cell(r.b, r.b_decision)} | "
                     f"{'yes' if r.changed else 'no'} |")
    path = folder / "compare.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
