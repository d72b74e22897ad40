"""Write a case's cassette: author it from the hand-written responses in the case, or record it live.

**Authoring** (no model needed): the case's ``authored_responses`` are written by hand; the case
is run with them, so the requests in the cassette are exactly what the graph sends. It runs twice
and refuses to write if the requests differ (the cassette would not replay), or if a response was
left unused or one was missing. The cassette says ``provenance.kind: authored``, names the case
file, and is never called recorded. A case without authored responses gets no cassette: the
model must not be asked.

Authoring never vouches for the answers: they must still be answers a model could give to the
request (``answers.py``) and carry ``authored_for``, the digest of the prompt they were reviewed
against. **Stamping** (``--stamp``) writes that digest into the case file; run it only after reading
the answers against the current prompt.

**Recording** (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``PERSONAS_MODEL``): the live model answers,
and the cassette is written with ``provenance.kind: recorded``: the model asked for, the models that
served the answers, each answer's response id and token usage, the endpoint (without credentials),
the date and the package version. ``--cassettes LABEL`` records into ``cassettes-<label>/`` (with a
``set.json`` naming the model), leaving the authored set alone.

    personas eval lead_magnet --case hot-director-this-month --author
    personas eval lead_magnet --case hot-director-this-month --stamp
    personas eval lead_magnet --record --cassettes qwen2.5-7b
    python -m evals.author lead_magnet [--case ID]
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personas.kernel.cassette import Cassette, response_to_message, stored
from personas.kernel.config import Config
from personas.kernel.models import CassetteChatModel, ModelChoice, ScriptedChatModel, live_model, recorded_provenance

from .case import Case, Suite, load_suite
from .checks import prompt_digest
from .runner import MANIFEST, CaseResult, execute, model_identity, persona_for, run_case

__all__ = ["AuthorError", "Authored", "author_case", "authored_choice", "live_choice", "main", "record_case",
           "stamp_case"]

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
    name, generation = model_identity(suite, case)
    cassette = Cassette.new(suite.cassette_path(case), {
        "kind": "authored",
        "by": "klaviyo-personas maintainers",
        "method": f"responses written by hand in {_relative(suite.case_file(case))} (authored_responses); "
                  "requests captured by running the case",
        "case": f"{suite.name}/{case.id}",
        "date": today(),
    })
    model = CassetteChatModel(cassette=cassette, live=scripted, model_name=name, generation=generation)
    return ModelChoice(model, "authored responses from the case file", "authored", cassette), scripted


def live_choice(suite: Suite, case: Case, path: Path | None = None, config: Config | None = None,
                label: str | None = None) -> ModelChoice:
    """The live model (``OPENAI_API_KEY``), recording to ``path`` (default: the case's cassette in set ``label``)."""
    config = config or Config.from_env()
    if not config.openai_api_key:
        raise AuthorError("a live run needs OPENAI_API_KEY (and OPENAI_BASE_URL, PERSONAS_MODEL for another endpoint)")
    spec = persona_for(case, config.home)
    name = config.model or spec.model
    provenance = recorded_provenance(name, config, case=f"{suite.name}/{case.id}")
    cassette = Cassette.new(path or suite.cassette_path(case, label), provenance)
    model = CassetteChatModel(cassette=cassette, live=live_model(name, config, spec.temperature, streaming=False),
                              model_name=name, generation={"temperature": float(spec.temperature)})
    return ModelChoice(model, f"live model {name} at {provenance['base_url']}", "live", cassette)


def _capture(suite: Suite, case: Case) -> Cassette:
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
    return choice.cassette


def author_case(suite: Suite, case: Case) -> Authored:
    """Rebuild ``case``'s cassette from its authored responses, then replay it to check the case."""
    path = suite.cassette_path(case)
    if case.policy:
        raise AuthorError(f"{suite.name}/{case.id} is a policy case: its models are scripted, it has no cassette")
    if case.model == "none" or not case.authored_responses:
        # nothing to author: the run is judged as it is (a model call it should not make fails the case)
        if path.exists() and case.cassette is None:
            path.unlink()
        return Authored(case, None, False, 0, run_case(suite, case))
    captured = _capture(suite, case)
    first, second = captured.interactions, _capture(suite, case).interactions
    if first != second:
        raise AuthorError(f"{suite.name}/{case.id}: the model requests differ between two runs, so a cassette would "
                          "not replay; make the case deterministic (set `now`, avoid random data)")
    written = True
    if path.exists():
        try:
            old = Cassette.load(path)
            written = not (old.provenance.get("kind") == "authored" and old.interactions == stored(first))
        except Exception:
            written = True
    if written:
        choice, _ = authored_choice(suite, case)
        assert choice.cassette is not None
        choice.cassette.interactions = first
        choice.cassette.schemas = dict(captured.schemas)
        choice.cassette.save()
    return Authored(case, path, written, len(first), run_case(suite, case))


def record_case(suite: Suite, case: Case, label: str | None = None) -> CaseResult:
    """Run ``case`` against the live model and write its cassette into set ``label`` (provenance recorded).

    A case without a model is run as it is; a policy case is refused (its models are scripted).
    The cassette is written when the run asked the model and the cassette could be made, whatever the
    verdict: a recording is evidence of what the model did, passing or not.
    """
    if case.policy:
        raise AuthorError(f"{suite.name}/{case.id} is a policy case: its models are scripted; run it, do not record it")
    if case.model == "none":
        return run_case(suite, case, label=label)
    choice = live_choice(suite, case, label=label)
    result = run_case(suite, case, choice)
    if choice.cassette is not None and choice.cassette.interactions and result.error is None:
        choice.cassette.save()
        result.recorded_to = str(choice.cassette.path)
        if label and label != "cassettes":
            write_manifest(suite, label, choice.cassette.provenance)
    return result


def write_manifest(suite: Suite, label: str, provenance: dict[str, Any]) -> Path:
    """``cassettes-<label>/set.json``: the model the set was recorded from (replay asks for the same)."""
    path = suite.cassette_dir(label) / MANIFEST
    keep = {k: provenance.get(k) for k in ("requested_model", "base_url", "date", "package_version")}
    try:  # what was added since (the server, known failures) stays; evals/sets.py re-checks it on load
        before = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except ValueError:
        before = {}
    extra = {k: v for k, v in before.items() if k in ("server", "known_failures")} if isinstance(before, dict) else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"label": label, **keep, **extra}, indent=1, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    return path


_STAMP_LINE = re.compile(r"^authored_for:.*$", re.MULTILINE)


def stamp_case(suite: Suite, case: Case) -> str | None:
    """Write into the case file the digest of the prompt its authored responses answer (after a review).

    Returns the digest, or None when the case has no authored responses or the model is not asked.
    """
    if not case.authored_responses:
        return None
    choice, _ = authored_choice(suite, case)
    outcome = execute(suite, case, choice)
    if not outcome.model_requests:
        return None
    digest = prompt_digest(outcome.model_requests[0])
    path = suite.case_file(case)
    text = path.read_text(encoding="utf-8")
    line = f"authored_for: {digest}       # the prompt these responses were reviewed against (--stamp)"
    if _STAMP_LINE.search(text):
        text = _STAMP_LINE.sub(line, text, count=1)
    else:
        text = re.sub(r"^authored_responses:", line + "\nauthored_responses:", text, count=1, flags=re.MULTILINE)
    path.write_text(text, encoding="utf-8")
    return digest


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
        if case.policy:
            continue  # scripted behaviours, no cassette
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

