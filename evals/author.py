"""Write a case's cassette: author it from the hand-written responses in the case, or record it live.

**Authoring** (no model needed): the case's ``authored_responses`` are written by hand; the case
is run with them, so the requests in the cassette are exactly what the graph sends. It runs twice
and refuses to write if the requests differ (the cassette would not replay), or if a response was
left unused or one was missing. The cassette says ``provenance.kind: authored``, names the case
file, and is never called recorded. A case without authored responses gets no cassette: the
model must not be asked.

**Recording** (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``PERSONAS_MODEL``): the live model answers,
and the cassette is written with ``provenance.kind: recorded``, the model, base URL and date.

    personas eval lead_magnet --case hot-director-this-month --author
    personas eval lead_magnet --record
    python -m evals.author lead_magnet [--case ID]
"""

from __future__ import annotations

import datetime as _dt
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personas.kernel.cassette import Cassette, response_to_message
from personas.kernel.config import Config
from personas.kernel.models import CassetteChatModel, ModelChoice, ScriptedChatModel, live_model

from .case import Case, Suite, load_suite
from .runner import CaseResult, execute, persona_for, run_case

__all__ = ["AuthorError", "Authored", "author_case", "authored_choice", "live_choice", "main", "record_case"]

ROOT = Path(__file__).resolve().parents[1]


class AuthorError(RuntimeError):
    """The case cannot be authored as written (responses unused or missing, unstable requests)."""


@dataclass
class Authored:
    case: Case
    path: Path | None
    written: bool
    interactions: int
    result: CaseResult


def today() -> str:
    return _dt.date.today().isoformat()


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def authored_choice(suite: Suite, case: Case) -> tuple[ModelChoice, ScriptedChatModel]:
    """The case's hand-written responses, answering through a cassette that captures the requests."""
    responses = [response_to_message(r.to_response(i), i) for i, r in enumerate(case.authored_responses)]
    scripted = ScriptedChatModel(responses)
    cassette = Cassette.new(suite.cassette_path(case), {
        "kind": "authored",
        "by": "klaviyo-personas maintainers",
        "method": f"responses written by hand in {_relative(suite.case_file(case))} (authored_responses); "
                  "requests captured by running the case",
        "case": f"{suite.name}/{case.id}",
        "date": today(),
    })
    model = CassetteChatModel(cassette=cassette, live=scripted)
    return ModelChoice(model, "authored responses from the case file", "authored", cassette), scripted


def live_choice(suite: Suite, case: Case, path: Path | None = None, config: Config | None = None) -> ModelChoice:
    """The live model (``OPENAI_API_KEY``), recording to ``path`` (default: the case's cassette)."""
    config = config or Config.from_env()
    if not config.openai_api_key:
        raise AuthorError("a live run needs OPENAI_API_KEY (and OPENAI_BASE_URL, PERSONAS_MODEL for another endpoint)")
    spec = persona_for(case)
    name = config.model or spec.model
    base = config.openai_base
    cassette = Cassette.new(path or suite.cassette_path(case), {
        "kind": "recorded", "model": name, "base_url": base, "date": today(), "case": f"{suite.name}/{case.id}"})
    model = CassetteChatModel(cassette=cassette, live=live_model(spec.model, config, spec.temperature))
    return ModelChoice(model, f"live model {name} at {base}", "live", cassette)


def _capture(suite: Suite, case: Case) -> list[dict[str, Any]]:
    choice, scripted = authored_choice(suite, case)
    outcome = execute(suite, case, choice)
    given = len(case.authored_responses)
    if outcome.error is not None and "ran out of replies" in str(outcome.error):
        raise AuthorError(f"{suite.name}/{case.id}: the run asked the model more than the {given} authored_responses; "
                          "add the missing response(s) to the case file")
    if outcome.error is not None and case.expect.raises is None:
        raise AuthorError(f"{suite.name}/{case.id}: the run failed: {type(outcome.error).__name__}: {outcome.error}")
    if scripted.position < given:
        raise AuthorError(f"{suite.name}/{case.id}: the run asked the model {scripted.position} time(s); "
                          f"authored_responses has {given}. Remove the unused ones (the case's path may have changed).")
    assert choice.cassette is not None
    return choice.cassette.interactions


def author_case(suite: Suite, case: Case) -> Authored:
    """Rebuild ``case``'s cassette from its authored responses, then replay it to check the case."""
    path = suite.cassette_path(case)
    if case.model == "none" or not case.authored_responses:
        if case.model != "none":
            _capture(suite, case)  # the model must not be asked at all
        if path.exists() and case.cassette is None:
            path.unlink()
        return Authored(case, None, False, 0, run_case(suite, case))
    first = _capture(suite, case)
    second = _capture(suite, case)
    if first != second:
        raise AuthorError(f"{suite.name}/{case.id}: the model requests differ between two runs, so a cassette would "
                          "not replay; make the case deterministic (set `now`, avoid random data)")
    written = True
    if path.exists():
        try:
            old = Cassette.load(path)
            written = not (old.provenance.get("kind") == "authored" and old.interactions == first)
        except Exception:
            written = True
    if written:
        choice, _ = authored_choice(suite, case)
        assert choice.cassette is not None
        choice.cassette.interactions = first
        choice.cassette.save()
    return Authored(case, path, written, len(first), run_case(suite, case))


def record_case(suite: Suite, case: Case) -> CaseResult:
    """Run ``case`` against the live model and write its cassette (provenance recorded).

    Cases without a model, or marked ``live: false`` (their point is a particular, hand-written
    answer), are replayed instead and their cassettes left alone.
    """
    if case.model == "none" or not case.live:
        return run_case(suite, case)
    choice = live_choice(suite, case)
    result = run_case(suite, case, choice)
    if choice.cassette is not None and choice.cassette.interactions and result.error is None:
        choice.cassette.save()
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Author (or with --record, record) eval cassettes.")
    parser.add_argument("suite")
    parser.add_argument("--case", action="append", default=[])
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args(argv)
    suite = load_suite(args.suite)
    bad = 0
    for case in [suite.case(c) for c in args.case] or suite.cases:
        try:
            if args.record:
                result = record_case(suite, case)
                note = "recorded"
            else:
                done = author_case(suite, case)
                result = done.result
                verb = "wrote" if done.written else "unchanged"
                note = (f"{verb} {done.interactions} interaction(s)" if done.path
                        else "no cassette (no model call expected)")
        except AuthorError as exc:
            print(f"ERROR  {case.id}: {exc}", file=sys.stderr)
            bad += 1
            continue
        bad += not result.passed
        print(f"{result.status.upper():6} {case.id}: {note}")
        for line in ([result.error] if result.error else []) + result.failures:
            print(f"         {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

