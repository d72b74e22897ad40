"""Verdicts: one per case run (and behaviour, and epoch), gathered per suite with pass rates by kind.

Every result says what answered for the model (its ``kind``), because a pass means different things:

- ``recorded`` / ``live``: a real model's answers (replayed from a recorded cassette, or asked now);
- ``authored``: answers written by hand, replayed; they test the graph around the model, not the model;
- ``scripted``: a policy case's scripted behaviour (compliant, out of policy, injected, failing);
- ``none``: no model (``model: none``, the ``absent`` behaviour, or a case that asks none);
- ``error``: the run could not be judged: the model's answers could not be had (a cassette that does
  not load, or does not answer the run: a request it does not hold, one played in part; a live model
  that did not answer) or the case could not be set up. Whatever its cassette says it holds, such a
  run is an error, never a verdict on a model nor on hand-written answers;
- ``unrecorded``: a labelled set (``--cassettes LABEL``) holds no cassette for a case that asks the
  model (the case is newer than the set): nothing answered it, so it is neither a pass, a failure nor
  an error, and it counts in no pass rate; the reports list it as "not recorded for this model".

The live pass rate is over ``recorded`` and ``live`` runs only; a suite's threshold is checked
against all its runs but the ``unrecorded`` ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .case import Case, Suite

__all__ = ["JUDGED_KINDS", "KINDS", "LIVE_KINDS", "CaseResult", "SuiteResult", "pass_at_k", "policy_events"]

KINDS = ("recorded", "live", "authored", "scripted", "none", "error", "unrecorded")
LIVE_KINDS = ("recorded", "live")
#: the runs a suite's pass rate and threshold are over: every kind but a case the selected set never recorded
JUDGED_KINDS = KINDS[:-1]
KIND_TITLES = {"recorded": "recorded", "live": "live", "authored": "authored by hand", "scripted": "scripted policy",
               "none": "no model", "error": "unanswered (error)", "unrecorded": "not recorded for this model"}


@dataclass
class CaseResult:
    """One case run's verdict: passed, failed (with why), or error (it could not run; the message says why)."""

    suite: str
    case: Case
    failures: list[str]
    error: str | None
    duration: float
    model: str
    cassette: str
    epoch: int = 0
    outcome: Any = None
    kind: str = "none"
    behaviour: str | None = None
    #: the cassette ``--record`` wrote for this run (None: nothing was written)
    recorded_to: str | None = None
    #: the cassette this run needed that is missing or does not load (the user's file to fix: exit 2)
    unusable_cassette: str | None = None
    #: why the selected set has no answer for this case (kind ``unrecorded``: counted apart, not judged)
    not_recorded: str | None = None

    def __post_init__(self) -> None:
        if self.error and self.kind != "error":  # counted under its kind, it would pass for an answer judged
            raise ValueError(f"a run that errored is of kind 'error', not {self.kind!r}: {self.error[:200]}")

    @property
    def key(self) -> str:
        """The case id, with the behaviour for a policy case (``cold-lead[injected]``)."""
        return f"{self.case.id}[{self.behaviour}]" if self.behaviour else self.case.id

    @property
    def status(self) -> str:
        if self.kind == "unrecorded":
            return "unrecorded"
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
    """A suite's results (one per case, behaviour and epoch), pass rates and the threshold verdict."""

    suite: Suite
    results: list[CaseResult]
    epochs: int = 1
    duration: float = 0.0

    def by_case(self, kinds: tuple[str, ...] | None = None) -> dict[str, list[CaseResult]]:
        """Each case's (and behaviour's) runs in order; with ``kinds``, only its runs of those kinds, and only the
        cases that have one. A case's runs can differ in kind (an epoch the live model did not answer is an
        ``error``, one whose run never reached the model ``none``): each run counts under its own kind."""
        out: dict[str, list[CaseResult]] = {}
        for r in self.results:
            if kinds is None or r.kind in kinds:
                out.setdefault(r.key, []).append(r)
        return out

    def pass_at(self, k: int, kinds: tuple[str, ...] | None = None) -> float | None:
        """pass@k over the runs of ``kinds`` (default: every judged run, not the unrecorded ones)."""
        groups = list(self.by_case(kinds or JUDGED_KINDS).values())
        if not groups:
            return None if kinds else 0.0
        return sum(pass_at_k(len(g), sum(r.passed for r in g), min(k, len(g))) for g in groups) / len(groups)

    @property
    def pass_rate(self) -> float:
        """pass@1 over every run (with epochs, the mean over them)."""
        return self.pass_at(1) or 0.0

    @property
    def live_pass_rate(self) -> float | None:
        """pass@1 over the runs a real model answered (recorded or live); None when there were none."""
        return self.pass_at(1, LIVE_KINDS)

    @property
    def ok(self) -> bool:
        judged = any(r.kind in JUDGED_KINDS for r in self.results)  # nothing judged (none recorded) never passes
        return judged and self.pass_rate + 1e-9 >= self.suite.threshold

    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "error": 0, "unrecorded": 0}
        for r in self.results:
            out[r.status] += 1
        return out

    def by_kind(self) -> dict[str, tuple[int, int]]:
        """kind -> (cases with a run of that kind, cases whose runs of that kind all passed), each case (and
        behaviour) counted once over epochs; a case whose epochs differ in kind counts under each of them."""
        groups = {kind: self.by_case((kind,)).values() for kind in KINDS}
        return {kind: (len(runs), sum(all(r.passed for r in g) for g in runs)) for kind, runs in groups.items() if runs}


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


def policy_events(result: CaseResult | None) -> tuple[str, ...]:
    """Where the run's model and the policy around it parted: an override the graph applied (the
    model was asked, the policy decided), a call refused before any request (scope, unknown tool,
    arguments the tool's schema rejects), an approval the model's call stopped for."""
    if result is None or result.outcome is None:
        return ()
    out = result.outcome
    events = []
    decision = out.state.get("decision") if isinstance(out.state, dict) else None
    asked = bool(out.model_requests)
    if asked and isinstance(decision, dict) and decision.get("decided_by") == "policy":
        choice = decision.get("model_choice")
        if isinstance(choice, dict) and choice.get("sequence"):  # the model chose, the policy overruled it
            events.append(f"override: the model chose {choice['sequence']}, the policy {decision.get('sequence')} "
                          f"({decision.get('policy_note')})")
        elif decision.get("policy_note") in ("model failed", "no model"):
            events.append(f"policy decided: {decision.get('sequence')} ({decision.get('policy_note')}: "
                          f"{str(decision.get('reason') or '')[:80]})")
    summary = out.state.get("summary") if isinstance(out.state, dict) else None
    if asked and isinstance(summary, dict) and summary.get("written_by") == "template":  # the model's was withheld
        events.append(f"override: the model's summary was not published ({str(summary.get('reason'))[:90]})")
    for message in (out.state.get("messages") or []) if isinstance(out.state, dict) else []:
        content = str(_field(message, "content") or "")
        refused = ("refused" in content or "nknown" in content  # scope, an unknown tool
                   or content.startswith("Error: Invalid arguments"))  # the toolkit's validation, before any request
        if _field(message, "status") == "error" and refused:
            events.append(f"refused: {_field(message, 'name')} ({content.removeprefix('Error: ')[:70]})")
    for asked_for in out.approvals_asked:
        tool = asked_for.get("tool") if isinstance(asked_for, dict) else None
        events.append(f"approval asked: {tool or asked_for}")
    return tuple(events)
