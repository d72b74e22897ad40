"""``personas eval``: run the eval suites, replaying cassettes by default (no key needed).

::

    personas eval [SUITE ...] [--case ID] [--label L] [--report DIR]   replay (the default)
    personas eval SUITE --case ID --author      rebuild an authored cassette from the case file
    personas eval [SUITE ...] --record          live model; rewrite cassettes (provenance recorded)
    personas eval [SUITE ...] --epochs N        live model, N runs per case; reports pass@1 and pass@N

Exit codes: 0 when every suite reaches its threshold, 1 when one falls under it, 2 for a usage
error (unknown suite or case, a broken case file, a live run without OPENAI_API_KEY).
"""

from __future__ import annotations

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
        return [load_suite(n) for n in names] if names else [load_suite(s.path) for s in discover_suites()]
    except CaseFileError as exc:
        raise _usage(str(exc)) from None


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


def eval_cmd(
    suites: list[str] = typer.Argument(None, help="Suites to run (names under evals/suites, or folders); default all."),
    case: list[str] = typer.Option(None, "--case", help="Only this case (repeatable)."),
    label: list[str] = typer.Option(None, "--label", help="Only cases with this label (repeatable)."),
    record: bool = typer.Option(False, "--record", help="Run the live model and rewrite the cassettes (recorded)."),
    author: bool = typer.Option(False, "--author", help="Rebuild cassettes from the cases' authored_responses."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Live runs per case; reports pass@1 and pass@N."),
    report: Path = typer.Option(None, "--report", help="Write report.md and junit.xml to this folder."),
) -> None:
    """Run eval suites: replay recorded or authored model responses by default; no key needed."""
    from rich.console import Console

    from .author import AuthorError, author_case, live_choice, record_case
    from .report import suite_table, write_reports
    from .runner import SuiteResult, run_case

    console = Console(highlight=False)
    if author and (record or epochs):
        raise _usage("--author rebuilds cassettes from hand-written responses; it does not go with --record/--epochs")
    live = record or bool(epochs)
    if live and not Config.from_env().openai_api_key:
        raise _usage("--record and --epochs run the live model: set OPENAI_API_KEY "
                     "(and OPENAI_BASE_URL, PERSONAS_MODEL)")
    loaded = _load(list(suites or []))
    chosen = _select(loaded, list(case or []), list(label or []))
    mode = "author" if author else "record" if record else f"live x{epochs}" if epochs else "replay"
    n = epochs or 1
    scratch = Path(tempfile.mkdtemp(prefix="personas-eval-live-")) if live else Path()
    results = []
    started = time.perf_counter()
    for suite in loaded:
        if suite.name not in chosen:
            continue
        suite_started = time.perf_counter()
        out = []
        for case_id in chosen[suite.name]:
            c = suite.case(case_id)
            for epoch in range(n):
                try:
                    if author:
                        done = author_case(suite, c)
                        out.append(done.result)
                        verb = "wrote" if done.written else "unchanged"
                        what = (f"{verb} {done.path} ({done.interactions} interaction(s), authored by hand)"
                                if done.path else "no cassette: no model call expected")
                        console.print(f"{suite.name}/{c.id}: {what}", markup=False, soft_wrap=True)
                    elif record and epoch == 0:
                        out.append(record_case(suite, c))
                    elif live:
                        path = scratch / f"{suite.name}-{c.id}.json"
                        model = live_choice(suite, c, path) if c.model != "none" and c.live else None
                        out.append(run_case(suite, c, model, epoch=epoch))
                    else:
                        out.append(run_case(suite, c))
                except AuthorError as exc:
                    raise _usage(str(exc)) from None
                out[-1].epoch = epoch
        results.append(SuiteResult(suite, out, n, time.perf_counter() - suite_started))
    console.print(suite_table(results))
    for r in results:
        for x in r.results:
            if not x.passed:
                tag = "[red]ERROR[/red]" if x.error else "[red]FAILED[/red]"
                console.print(f"{tag} {r.suite.name}/{x.case.id}" + (f" (epoch {x.epoch + 1})" if n > 1 else ""))
                for line in ([x.error] if x.error else x.failures)[:8]:
                    console.print(f"    {line}", markup=False, soft_wrap=True)
    how = {"replay": "replayed cassettes (no OPENAI_API_KEY needed; Klaviyo is the embedded sandbox)",
           "author": "hand-written responses from the case files (cassettes rebuilt, then replayed)"}.get(
        mode, f"the live model ({Config.from_env().model or 'the persona model'}), {mode}")
    runs = sum(len(r.results) for r in results)
    console.print(f"Model: {how}. {runs} run{'s' if runs != 1 else ''} in {time.perf_counter() - started:.1f} s.")
    if report is not None:
        paths = write_reports(results, report, mode=mode)
        console.print("Reports: " + ", ".join(str(p) for p in paths))
    raise SystemExit(0 if all(r.ok for r in results) else 1)
