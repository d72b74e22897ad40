"""``personas eval``: run the eval suites, replaying cassettes by default (no key needed).

::

    personas eval [SUITE ...] [--case ID] [--label L] [--report DIR]   replay the default set (cassettes/)
    personas eval ... --cassettes LABEL          replay (or record into) the set cassettes-<LABEL>/
    personas eval SUITE --case ID --author       rebuild an authored cassette from the case file
    personas eval SUITE --case ID --stamp        after reviewing authored answers: record the prompt they fit
    personas eval [SUITE ...] --record           live model; write cassettes (provenance recorded)
    personas eval [SUITE ...] --epochs N         live model, N runs per case; reports pass@1 and pass@N
    personas eval [SUITE ...] --compare A B      replay two cassette sets side by side: which decisions changed

Exit codes: 0 when every suite reaches its threshold, 1 when one falls under it, 2 for a usage
error (unknown suite or case, a broken case file, a live run without OPENAI_API_KEY) and for a case
whose cassette is missing or does not load (said after every other case has run and been reported).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

from personas.kernel.config import Config

__all__ = ["eval_cmd"]


def _usage(message: str) -> Exception:
    from personas.kernel.errors import UsageProblem

    return UsageProblem(message)


def _load(names: list[str]) -> list[Any]:
    from .case import CaseFileError, discover_suites, load_suite

    try:
        loaded = [load_suite(n) for n in names] if names else [load_suite(s.path) for s in discover_suites()]
    except CaseFileError as exc:
        raise _usage(str(exc)) from None
    empty = next((s for s in loaded if not s.cases), None)
    if empty is not None:  # "0 runs ... FAIL" would not say why
        raise _usage(f"the suite {empty.name!r} has no cases: put case files in {Path(empty.path) / 'cases'} "
                     "(one YAML file each, e.g. cases/first.yaml)")
    return loaded


def _select(suites: list[Any], cases: list[str], labels: list[str]) -> dict[str, list[str]]:
    chosen: dict[str, list[str]] = {}
    for suite in suites:
        ids = [c.id for c in suite.cases
               if (not cases or c.id in cases) and (not labels or set(labels) & set(c.labels))]
        if ids or not (cases or labels):
            chosen[suite.name] = ids
    unknown = [c for c in cases if not any(c in ids for ids in chosen.values())]
    if unknown:
        names = ", ".join(s.name for s in suites)
        raise _usage(f"no case {', '.join(map(repr, unknown))} in suite(s) {names}")
    if (cases or labels) and not any(chosen.values()):
        raise _usage(f"no case has the label(s) {', '.join(labels)}")
    return chosen


def _check_targets(loaded: list[Any], chosen: dict[str, list[str]]) -> None:
    """A persona (or graph) no persona answers to is a usage error naming its file, for a whole run and
    a ``--case`` alike, before anything runs (see ``evals/targets.py``)."""
    from .case import CaseFileError
    from .targets import check_targets

    for suite in loaded:
        if suite.name in chosen:
            try:
                check_targets(suite, chosen[suite.name])
            except CaseFileError as exc:
                raise _usage(str(exc)) from None


def _check_modes(author: bool, stamp: bool, record: bool, epochs: int | None, compare: list[str] | None) -> str:
    given = [name for name, on in (("--author", author), ("--stamp", stamp), ("--record", record),
                                   ("--epochs", bool(epochs)), ("--compare", bool(compare))) if on]
    if len(given) > 1:
        raise _usage(f"{' and '.join(given)} do not go together; run them one after the other")
    if compare is not None and len(compare) != 2:
        raise _usage("--compare takes two cassette sets, e.g. --compare cassettes qwen2.5-7b")
    if (record or epochs) and not Config.from_env().openai_api_key:
        raise _usage("--record and --epochs run the live model: set OPENAI_API_KEY "
                     "(and OPENAI_BASE_URL, PERSONAS_MODEL); any OpenAI-compatible endpoint works")
    return ("author" if author else "stamp" if stamp else "compare" if compare else
            "record" if record else f"live x{epochs}" if epochs else "replay")


_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _check_sets(loaded: list[Any], chosen: dict[str, list[str]], mode: str, labels: list[str]) -> None:
    """Every set named must be a plain folder label, go with the mode, and exist where it is read from.

    A set is read (replay, compare) from every chosen suite that has model cases, i.e. cassettes in its
    default set; ``--record`` creates it. ``--author``, ``--stamp`` and ``--epochs`` never read a set.
    """
    for label in labels:
        if not _LABEL.match(label):
            raise _usage(f"--cassettes {label!r}: a set is a folder label of letters, digits, '.', '_' and '-' "
                         "(e.g. qwen2.5-7b, for cassettes-qwen2.5-7b/)")
    if mode in ("author", "stamp") or mode.startswith("live"):
        what = "--author and --stamp work on cassettes/ (the hand-written set)" if mode in ("author", "stamp") \
            else "--epochs asks the live model and writes no set"
        raise _usage(f"--cassettes does not go with this command: {what}; leave it out")
    if mode == "record":
        return
    from .commands import suite_arg

    for suite in loaded:
        if suite.name not in chosen or not any(suite.cassette_dir().glob("*.json")):
            continue
        for label in labels:
            if not suite.cassette_dir(label).is_dir():
                sets = ", ".join(suite.cassette_sets())
                raise _usage(f"suite {suite.name} has no cassette set {label!r} (no {suite.cassette_dir(label).name}/; "
                             f"its sets: {sets}); record it with "
                             f"`personas eval {suite_arg(suite)} --record --cassettes {label}`")
            if label != "cassettes":
                from .sets import SetError, load_set

                try:  # a set whose set.json and cassettes disagree does not load
                    load_set(suite, label)
                except SetError as exc:
                    raise _usage(str(exc)) from None


def eval_cmd(
    suites: list[str] = typer.Argument(None, help="Suites to run: names under evals/suites (chat), or folders "
                                       "as paths (./my_suite); default all."),
    case: list[str] = typer.Option(None, "--case", help="Only this case (repeatable)."),
    label: list[str] = typer.Option(None, "--label", help="Only cases with this label (repeatable)."),
    cassettes: str = typer.Option(None, "--cassettes", metavar="LABEL",
                                  help="The cassette set: cassettes-LABEL/ (default: cassettes/)."),
    record: bool = typer.Option(False, "--record", help="Run the live model and write the cassettes (recorded)."),
    author: bool = typer.Option(False, "--author", help="Rebuild cassettes from the cases' authored_responses."),
    stamp: bool = typer.Option(False, "--stamp",
                               help="After reviewing authored answers: record the prompt they were written for."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Live runs per case; reports pass@1 and pass@N."),
    compare: tuple[str, str] = typer.Option(None, "--compare", metavar="A B",
                                            help="Two cassette sets to replay side by side (cassettes, or a LABEL)."),
    report: Path = typer.Option(None, "--report", help="Write report.md and junit.xml to this folder."),
) -> None:
    """Run eval suites: replay recorded or authored model responses by default; no key needed."""
    from rich.console import Console

    console = Console(highlight=False)
    mode = _check_modes(author, stamp, record, epochs, list(compare) if compare else None)
    loaded = _load(list(suites or []))
    chosen = _select(loaded, list(case or []), list(label or []))
    _check_targets(loaded, chosen)
    if cassettes is not None and mode == "compare":
        raise _usage("--compare names its two sets itself (e.g. --compare cassettes qwen2.5-7b); leave out --cassettes")
    named = list(compare) if mode == "compare" else [cassettes] if cassettes is not None else []
    if named:
        _check_sets(loaded, chosen, mode, named)
    if report is not None:
        _check_report(report)
    if mode == "compare":
        from .compare import compare_sets, compare_table, side_by_side, side_table, write_compare
        from .sets import SetError

        rows = compare_sets(loaded, chosen, compare[0], compare[1])
        try:
            sides = side_by_side(loaded, rows, compare[0], compare[1])
        except SetError as exc:
            raise _usage(str(exc)) from None
        for table in side_table(sides, rows, compare[0], compare[1]):
            console.print(table)
        console.print(compare_table(rows, compare[0], compare[1]))
        if report is None:
            console.print("Every case with its full reasons: add --report DIR (writes DIR/compare.md).")
        changed = sum(1 for r in rows if r.changed)
        console.print(f"{changed} of {len(rows)} case(s) changed decision or verdict between {compare[0]} and "
                      f"{compare[1]}.")
        if report is not None:
            console.print(f"Report: {write_compare(rows, compare[0], compare[1], report, sides)}")
        raise SystemExit(0)
    if mode == "stamp":
        _stamp(console, loaded, chosen)
        raise SystemExit(0)
    results = _run(console, loaded, chosen, mode, cassettes, epochs or 1)
    _finish(console, results, mode, report, cassettes)


def _check_report(folder: Path) -> None:
    """``--report`` must be a folder that can be written, said before the suites run (minutes, live), not after
    them as an unexpected error with exit code 1, which reads as a suite under its threshold."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise _usage(f"--report {folder}: a file is there; give a folder (report.md and junit.xml go in it)") from None
    except OSError as exc:
        raise _usage(f"--report {folder}: the folder cannot be made ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _usage(f"--report {folder}: the folder cannot be written to")


def _stamp(console: Any, loaded: list[Any], chosen: dict[str, list[str]]) -> None:
    from .author import stamp_case

    for suite in loaded:
        for case_id in chosen.get(suite.name, []):
            digest = stamp_case(suite, suite.case(case_id))
            what = f"authored_for: {digest}" if digest else "nothing to stamp (no authored responses, or no model call)"
            console.print(f"{suite.name}/{case_id}: {what}", markup=False, soft_wrap=True)


def _run(console: Any, loaded: list[Any], chosen: dict[str, list[str]], mode: str, label: str | None,
         epochs: int) -> list[Any]:
    from .author import AuthorError, author_case, live_choice, record_case
    from .results import CaseResult
    from .runner import SuiteResult, run_suite

    scratch = Path(tempfile.mkdtemp(prefix="personas-eval-live-"))
    results = []
    for suite in loaded:
        if suite.name not in chosen:
            continue
        started = time.perf_counter()
        ids = chosen[suite.name]
        out: list[Any] = []
        try:
            if mode == "author":
                for case_id in ids:
                    c = suite.case(case_id)
                    if c.policy:
                        out += run_suite(suite, case_ids=[case_id]).results
                        continue
                    try:
                        done = author_case(suite, c)
                    except AuthorError as exc:  # this case cannot be authored as written: say so, go on
                        out.append(CaseResult(suite.name, c, [], f"cannot author: {exc}", 0.0, "authored",
                                              "not written", kind="error"))
                        console.print(f"{suite.name}/{c.id}: not written: {exc}", markup=False, soft_wrap=True)
                        continue
                    out.append(done.result)
                    verb = "wrote" if done.written else "unchanged"
                    what = (f"{verb} {done.path} ({done.interactions} interaction(s), authored by hand)"
                            if done.path else "no cassette: no model call expected")
                    console.print(f"{suite.name}/{c.id}: {what}", markup=False, soft_wrap=True)
            elif mode == "record":
                for case_id in ids:
                    c = suite.case(case_id)
                    out += run_suite(suite, case_ids=[case_id]).results if c.policy else [record_case(suite, c, label)]
            elif mode.startswith("live"):
                def factory(s: Any, c: Any, epoch: int) -> Any:
                    path = scratch / f"{s.name}-{c.id}-{epoch}.json"
                    return live_choice(s, c, path) if c.model != "none" else None

                out = run_suite(suite, case_ids=ids, model_factory=factory, epochs=epochs).results
            else:
                out = run_suite(suite, case_ids=ids, label=label).results
        except AuthorError as exc:
            raise _usage(str(exc)) from None
        results.append(SuiteResult(suite, out, epochs, time.perf_counter() - started))
    return results


def _live_how(mode: str, label: str | None, results: list[Any]) -> str:
    """What answered a live run: the model asked for, at which endpoint, and what was written where
    (only the cassettes ``--record`` wrote are counted: a case the model did not answer writes nothing)."""
    from personas.kernel.cassette import public_base_url

    config = Config.from_env()
    model = config.model or "(each persona's own)"
    endpoint = public_base_url(config.openai_base_url) or "the OpenAI API"
    folder = f"cassettes-{label}/" if label and label != "cassettes" else "cassettes/"
    if mode == "record":
        written = sum(1 for r in results for x in r.results if x.recorded_to)
        done = (f"{written} cassette{'s' if written != 1 else ''} recorded into {folder}" if written
                else f"nothing recorded (no case was answered by the model); {folder} is unchanged")
    else:
        done = f"{mode.split()[-1]} per case, nothing written"
    return f"the live model {model} at {endpoint}; {done}"


def _known_failures(results: list[Any], label: str | None) -> dict[str, dict[str, str]]:
    """``{suite: {case: reason}}`` from each replayed labelled set's ``set.json``."""
    from .sets import load_set

    if not label or label == "cassettes":
        return {}
    return {r.suite.name: load_set(r.suite, label).known_failures for r in results
            if r.suite.cassette_dir(label).is_dir()}


def _finish(console: Any, results: list[Any], mode: str, report: Path | None, label: str | None) -> None:
    from .report import live_line, suite_table, write_reports

    n = max((r.epochs for r in results), default=1)
    console.print(suite_table(results))
    known = _known_failures(results, label) if mode == "replay" else {}
    for r in results:
        for x in r.results:
            if x.not_recorded:  # counted apart: the set is older than the case
                console.print(f"[yellow]NOT RECORDED[/yellow] {r.suite.name}/{x.key}")
                console.print(f"    {x.not_recorded}", markup=False, soft_wrap=True)
            elif not x.passed:
                tag = "[red]ERROR[/red]" if x.error else "[red]FAILED[/red]"
                if x.case.id in known.get(r.suite.name, {}) and x.kind != "error":  # a broken cassette is not known
                    tag += " [yellow](known failure of the set)[/yellow]"
                console.print(f"{tag} {r.suite.name}/{x.key}" + (f" (epoch {x.epoch + 1})" if n > 1 else ""))
                for line in ([x.error] if x.error else x.failures)[:8]:
                    console.print(f"    {line}", markup=False, soft_wrap=True)
    where = f" from cassettes-{label}/" if label and label != "cassettes" else ""
    how = {"replay": f"replayed cassettes{where} (no OPENAI_API_KEY needed; Klaviyo is the embedded sandbox)",
           "author": "hand-written responses from the case files (cassettes rebuilt, then replayed)"}.get(
        mode, _live_how(mode, label, results) if mode not in ("replay", "author") else "")
    runs = sum(len(r.results) - r.counts()["unrecorded"] for r in results)
    console.print(f"Model: {how}. {runs} run{'s' if runs != 1 else ''} in "
                  f"{sum(r.duration for r in results):.1f} s.")
    console.print(live_line(results), markup=False, soft_wrap=True)
    if known:
        counted = {s: sum(1 for r in results if r.suite.name == s for x in r.results if not x.passed
                          and x.kind != "error" and x.case.id in k) for s, k in known.items()}
        listed = ", ".join(f"{s} {counted[s]} of {len(k)}" for s, k in known.items() if k) or "none"
        console.print(f"Known failures of cassettes-{label}/ (set.json; counted above, no threshold lowered): "
                      f"{listed}", markup=False, soft_wrap=True)
    if report is not None:
        paths = write_reports(results, report, mode=mode)
        console.print("Reports: " + ", ".join(str(p) for p in paths))
    unusable = list(dict.fromkeys(x.unusable_cassette for r in results for x in r.results if x.unusable_cassette))
    if unusable:  # the user's files to fix, as any input is: a usage error, not a verdict on the model
        shown = ", ".join(unusable[:3]) + (f" and {len(unusable) - 3} more" if len(unusable) > 3 else "")
        many = f"{len(unusable)} cases" if len(unusable) > 1 else "1 case"
        raise _usage(f"{many} had no cassette to replay ({shown}: missing or not loading), so "
                     f"{'they were' if len(unusable) > 1 else 'it was'} not judged; write each again as its ERROR "
                     "line above says (`--author` for answers written by hand, `--record` for a live model)")
    raise SystemExit(0 if all(r.ok for r in results) else 1)
