"""Eval reports: a pass-rate table per suite for the terminal, ``report.md`` and ``junit.xml``.

Every case shows where its model responses came from (recorded from a named model, live, authored
by hand, a policy case's scripted behaviour, or no model), the tables count each kind apart, and
the **live pass rate** is computed over the runs a real model answered only, so a reader never
mistakes hand-written or scripted answers for a model's. With ``--epochs N`` the tables add pass@k
(the unbiased estimate over the N live runs).
"""

from __future__ import annotations

import datetime as _dt
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .results import KIND_TITLES, LIVE_KINDS, CaseResult, SuiteResult

__all__ = ["cassette_summary", "label_counts", "live_line", "suite_table", "write_junit", "write_markdown",
           "write_reports"]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def cassette_summary(result: SuiteResult) -> str:
    """``12 recorded (11 passed), 30 authored by hand (30 passed), 1 unanswered (error)``."""
    return ", ".join(f"{n} {KIND_TITLES[k]}" + ("" if k in ("error", "unrecorded") else f" ({ok} passed)")
                     for k, (n, ok) in result.by_kind().items())


def live_line(results: Sequence[SuiteResult]) -> str:
    """One sentence: the live pass rate over the runs a real model answered, or that there were none.

    A run whose model could not be had (kind ``error``) is counted apart: it says nothing about a model. Each
    run counts under its own kind, so the answered epochs of a case that lost one still count.
    """
    groups = [g for r in results for g in r.by_case(LIVE_KINDS).values()]
    lost = [(runs, r.by_case()[key]) for r in results for key, runs in r.by_case(("error",)).items()]
    whole = all(len(runs) == len(every) for runs, every in lost)  # else some epochs of a case were answered
    what = f"{len(lost)} case(s)" if whole else f"{sum(len(runs) for runs, _ in lost)} run(s)"
    apart = f"; {what} got no model answer (errors, not counted)" if lost else ""
    unrecorded = sum(len(r.by_case(("unrecorded",))) for r in results)
    apart += f"; {unrecorded} case(s) not recorded for this model (not counted)" if unrecorded else ""
    if not groups:
        why = (apart if apart else " (authored, scripted and no-model runs test the graph around the model, not "
               "the model)")
        return f"Live pass rate: n/a: no case was answered by a real model{why}."
    mean = sum(sum(x.passed for x in g) / len(g) for g in groups) / len(groups)
    per = ", ".join(f"{r.suite.name} {_pct(r.live_pass_rate)}" for r in results if r.live_pass_rate is not None)
    return f"Live pass rate: {_pct(mean)} over {len(groups)} case(s) a real model answered ({per}){apart}."


def case_runs(result: SuiteResult) -> dict[str, list[CaseResult]]:
    """Each case file's runs, behaviours and epochs together: what "cases" counts (``by_case`` keys a
    policy case once per behaviour, so a suite of 15 cases read as 20)."""
    out: dict[str, list[CaseResult]] = {}
    for run in result.results:
        out.setdefault(run.case.id, []).append(run)
    return out


def label_counts(result: SuiteResult) -> list[tuple[str, int, int]]:
    """(label, cases, cases passed) for every label in the suite, most used first; a case passes when every
    run of it (each behaviour, each epoch) passed."""
    total: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    for runs in case_runs(result).values():
        ok = all(r.passed for r in runs)
        for label in runs[0].case.labels:
            total[label] += 1
            passed[label] += ok
    return [(label, total[label], passed[label]) for label, _ in total.most_common()]


def _runs_are(result: SuiteResult) -> str:
    """What a suite's runs are, beside its number of cases."""
    parts = ["a policy case once per behaviour"] if any(r.behaviour for r in result.results) else []
    parts.append(f"{result.epochs} epoch{'' if result.epochs == 1 else 's'} each" if result.epochs > 1
                 else "1 epoch")
    return "; ".join(parts)


def suite_table(results: Sequence[SuiteResult]) -> Any:
    """A rich Table: one row per suite with its pass rate against its threshold (fits 80 columns).

    ``runs`` counts a policy case once per behaviour and a case once per epoch; ``err`` are runs that could not
    be judged (a cassette that does not answer); ``live`` is the pass rate over runs a real model answered.
    """
    from rich import box
    from rich.table import Table

    epochs = max((r.epochs for r in results), default=1)
    table = Table(title="personas eval", box=box.SIMPLE_HEAD, padding=(0, 1), caption="model responses: " + "; ".join(
        f"{r.suite.name}: {cassette_summary(r)}" for r in results) if results else None)
    width = max((len(r.suite.name) for r in results), default=5)
    table.add_column("suite", min_width=width, no_wrap=True)
    for col in ("runs", "pass", "fail", "err"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("rate" if epochs == 1 else "pass@1", justify="right", no_wrap=True)
    if epochs > 1:
        table.add_column(f"pass@{epochs}", justify="right", no_wrap=True)
    for col in ("live", "needs"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for r in results:
        counts = r.counts()
        # runs: every run (each behaviour, each epoch), the same runs that pass, fail and err count
        runs = len(r.results) - counts["unrecorded"]  # a case the set never recorded is no run: counted apart
        row = [r.suite.name, str(runs), str(counts["passed"]), str(counts["failed"]), str(counts["error"]),
               _pct(r.pass_rate)]
        if epochs > 1:
            row.append(_pct(r.pass_at(r.epochs)))
        row += [_pct(r.live_pass_rate), _pct(r.suite.threshold), "[green]PASS[/green]" if r.ok else "[red]FAIL[/red]"]
        table.add_row(*row)
    return table


def _why(r: CaseResult) -> list[str]:
    return [r.error] if r.error else list(r.failures)


def write_markdown(results: Sequence[SuiteResult], path: Path, *, mode: str = "replay") -> None:
    """``report.md``: per suite the verdict, pass rate per label, every case with its provenance, failures."""
    lines = [f"# personas eval ({mode})", "", f"Run {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC.", "",
             live_line(results), "",
             "| suite | cases | pass rate | live pass rate | threshold | result | model responses |",
             "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in results:
        rate = _pct(r.pass_rate) + (f" (pass@{r.epochs} {_pct(r.pass_at(r.epochs))})" if r.epochs > 1 else "")
        lines.append(f"| {r.suite.name} | {len(case_runs(r))} | {rate} | {_pct(r.live_pass_rate)} | "
                     f"{_pct(r.suite.threshold)} | {'PASS' if r.ok else 'FAIL'} | {cassette_summary(r)} |")
    lines += ["", "| model answers | case runs | passed |", "| --- | ---: | ---: |"]
    kinds: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    for r in results:
        for kind, (n, ok) in r.by_kind().items():
            kinds[kind] += n
            passed[kind] += ok
    lines += [f"| {KIND_TITLES[k]} | {kinds[k]} | {passed[k]} |" for k in KIND_TITLES if kinds[k]]
    for r in results:
        lines += ["", f"## {r.suite.name}", "", r.suite.description.strip(), "",
                  f"Persona: `{r.suite.persona or r.suite.graph}`. {len(case_runs(r))} cases, {len(r.results)} runs "
                  f"({_runs_are(r)}), {r.duration:.1f} s.", "", "| label | cases | passed |", "| --- | ---: | ---: |"]
        lines += [f"| {label} | {n} | {ok} |" for label, n, ok in label_counts(r)]
        for kind, title in KIND_TITLES.items():
            group = r.by_case((kind,))
            if not group:
                continue
            lines += ["", f"### {title.capitalize()} ({len(group)})", "",
                      "| case | labels | result | model responses | time |", "| --- | --- | --- | --- | ---: |"]
            for case_id, runs in group.items():
                status = runs[0].status if len(runs) == 1 else f"{sum(x.passed for x in runs)}/{len(runs)} passed"
                lines.append(f"| `{case_id}` | {runs[0].case.labels_text} | {status} | {runs[0].cassette} | "
                             f"{sum(x.duration for x in runs):.2f} s |")
        bad = [x for x in r.results if not x.passed and x.kind != "unrecorded"]  # listed with their kind above
        if bad:
            lines += ["", "### Failures", ""]
            for x in bad:
                epoch = f" (epoch {x.epoch + 1})" if r.epochs > 1 else ""
                lines.append(f"- **{x.key}**{epoch}: {x.case.description.strip()}")
                lines += [f"  - {line}" for line in _why(x)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _trajectory_text(r: CaseResult) -> str:
    if r.outcome is None:
        return ""
    out = [f"{c.get('source')}:{c.get('tool')}" + (f" -> {c['status']}" if c.get("status") else "")
           for c in r.outcome.trajectory]
    state = r.outcome.state
    if state.get("outcome"):
        out.append(f"outcome: {state['outcome']}")
    return "\n".join(out)


def write_junit(results: Sequence[SuiteResult], path: Path) -> None:
    """``junit.xml``: a testsuite per suite, a testcase per case (and epoch), provenance as properties."""
    root = ET.Element("testsuites", name="personas eval")
    totals: Counter[str] = Counter()
    for r in results:
        counts = r.counts()
        suite = ET.SubElement(root, "testsuite", name=r.suite.name, tests=str(len(r.results)),
                              failures=str(counts["failed"]), errors=str(counts["error"]),
                              skipped=str(counts["unrecorded"]),
                              time=f"{r.duration:.3f}")
        props = ET.SubElement(suite, "properties")
        values = {"persona": r.suite.persona or r.suite.graph or "", "threshold": f"{r.suite.threshold:.3f}",
                  "pass_rate": f"{r.pass_rate:.3f}", "result": "pass" if r.ok else "fail", "epochs": str(r.epochs),
                  "model_responses": cassette_summary(r),
                  "live_pass_rate": "n/a" if r.live_pass_rate is None else f"{r.live_pass_rate:.3f}"}
        if r.epochs > 1:
            values[f"pass_at_{r.epochs}"] = f"{r.pass_at(r.epochs):.3f}"
        for key, value in values.items():
            ET.SubElement(props, "property", name=key, value=value)
        for x in r.results:
            name = x.key + (f" [epoch {x.epoch + 1}]" if r.epochs > 1 else "")
            case = ET.SubElement(suite, "testcase", classname=f"evals.{r.suite.name}", name=name,
                                 time=f"{x.duration:.3f}", file=_relative(x.case.source))
            cprops = ET.SubElement(case, "properties")
            fields = [("labels", x.case.labels_text), ("cassette", x.cassette), ("kind", x.kind),
                      ("description", x.case.description.strip())]
            if not x.model.endswith(x.cassette):
                fields.append(("model", x.model))
            for key, value in fields:
                ET.SubElement(cprops, "property", name=key, value=value)
            if x.not_recorded:
                ET.SubElement(case, "skipped", message=x.not_recorded[:500])
            elif x.error:
                ET.SubElement(case, "error", message=x.error.splitlines()[0][:500], type="EvalError").text = x.error
            elif x.failures:
                ET.SubElement(case, "failure", message=x.failures[0][:500], type="EvalFailure").text = \
                    "\n".join(x.failures)
            ET.SubElement(case, "system-out").text = _trajectory_text(x)
        totals.update({"tests": len(r.results), "failures": counts["failed"], "errors": counts["error"],
                       "skipped": counts["unrecorded"]})
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(totals[key]))
    for element in root.iter():  # a control character anywhere (a model's answer, a description) is no XML
        element.text = _xml_safe(element.text)
        element.attrib.update({k: _xml_safe(v) or "" for k, v in element.attrib.items()})
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


#: What XML 1.0 cannot hold, even escaped: control characters but tab and newlines, surrogates, U+FFFE/U+FFFF.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str | None) -> str | None:
    """``text`` with what XML cannot hold written as ``\\u0007``: a CI that cannot parse junit.xml shows no result."""
    return None if text is None else _NOT_XML.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def write_reports(results: Sequence[SuiteResult], folder: Path, *, mode: str = "replay") -> list[Path]:
    """``report.md`` and ``junit.xml`` in ``folder`` (made if needed); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    md, xml = folder / "report.md", folder / "junit.xml"
    write_markdown(results, md, mode=mode)
    write_junit(results, xml)
    return [md, xml]
