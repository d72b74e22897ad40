#!/usr/bin/env python3
"""Mutation score of the eval suites: break one thing, re-author the cassettes, and see a case fail.

Each mutation is made the way a user or maintainer would make it, never by patching code in this
process: a persona or prompt of the same name in ``$PERSONAS_HOME/personas/`` (which overrides the
shipped one), or one edit in a copy of the code tree, run in a subprocess. For each mutation the
harness:

1. copies the code tree (the packages and the suites) into a scratch folder and applies the change;
2. runs ``personas eval`` on the suites the mutation concerns (before: any failure or error);
3. re-authors every cassette there (``personas eval --author``, as a cassette-mismatch error
   suggests) and reads the verdicts of the replay that follows: the mutation is **caught** only if
   a case *fails* (an expectation, the fencing check, an invalid or stale authored answer), never
   by a cassette error (which re-authoring clears, or which says only "re-author").

It prints one row per mutation and the score, caught / total (target 1.0); the figures go to
``benchmarks/README.md``. A control run (no mutation) must come out clean, or the score means
nothing. Slow (a few minutes): not part of the test run; ``tests/evals/test_mutations.py`` checks
the harness on a few mutations.

    .venv/bin/python benchmarks/eval_mutations.py [--only NAME ...] [--jobs 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("klaviyo_toolkit", "klaviyo_sandbox", "personas", "graphs", "prompts", "evals")
DEFINITIONS = ROOT / "personas" / "definitions"
PROMPTS = ROOT / "prompts"


@dataclass(frozen=True)
class Mutation:
    """One change: ``code`` edits (file in the code tree -> (old, new)), or ``home`` persona/prompt overrides
    (a shipped persona or prompt file name -> (old, new) applied to its text, written to $PERSONAS_HOME)."""

    name: str
    area: str
    what: str
    suites: tuple[str, ...]
    code: dict[str, tuple[str, str]] = field(default_factory=dict)
    home: dict[str, tuple[str, str]] = field(default_factory=dict)


LEAD = "graphs/lead_magnet/graph.py"
FIGURES = "graphs/campaign_report/figures.py"
MUTATIONS: tuple[Mutation, ...] = (
    # -- policies
    Mutation("hot-band-allows-education", "policy", "the hot band also allows education", ("lead_magnet",),
             home={"lead-magnet-sequencer.yaml": ("{name: hot, min_score: 60, sequences: [fast-track, nurture]}",
                                                  "{name: hot, min_score: 60, sequences: [fast-track, nurture, "
                                                  "education]}")}),
    Mutation("any-known-sequence-accepted", "policy", "the model's pick is checked against every sequence, not the "
             "band's", ("lead_magnet",),
             code={LEAD: ('if pick["sequence"] not in allowed:',
                          'if pick["sequence"] not in [s.name for s in settings.sequences]:')}),
    Mutation("no-consent-needed", "policy", "a lead without email consent is eligible", ("lead_magnet",),
             code={LEAD: ('if marketing.get("consent") != "SUBSCRIBED" or not marketing.get('
                          '"can_receive_email_marketing", False):', "if False:")}),
    Mutation("weekend-sends", "policy", "the send window includes the weekend", ("lead_magnet",),
             home={"lead-magnet-sequencer.yaml": ("days: [mon, tue, wed, thu, fri]",
                                                  "days: [mon, tue, wed, thu, fri, sat, sun]")}),
    # -- rates
    Mutation("day-bounce-rate-over-delivered", "rates", "the day's bounce rate is computed over delivered",
             ("campaign_report",),
             code={FIGURES: ('"bounce_rate": ("bounced", "recipients")', '"bounce_rate": ("bounced", "delivered")')}),
    Mutation("day-open-rate-over-recipients", "rates", "the day's open rate is computed over recipients",
             ("campaign_report",),
             code={FIGURES: ('"open_rate": ("opens_unique", "delivered")',
                             '"open_rate": ("opens_unique", "recipients")')}),
    # -- anomaly rules
    Mutation("unsubscribe-anomaly-never-flagged", "anomaly", "a campaign over the unsubscribe threshold is not "
             "flagged", ("campaign_report",),
             code={FIGURES: ("if unsub is not None and unsub > thresholds.max_unsubscribe_rate:", "if False:")}),
    Mutation("low-open-against-the-mean", "anomaly", "the low-open rule compares with the mean, not the median",
             ("campaign_report",), code={FIGURES: ("_stats.median(rates)", "_stats.mean(rates)")}),
    Mutation("bounce-threshold-inclusive", "anomaly", "a bounce rate at the threshold is flagged",
             ("campaign_report",),
             code={FIGURES: ("bounce > thresholds.max_bounce_rate", "bounce >= thresholds.max_bounce_rate")}),
    # -- approvals
    # in code: a persona file can no longer waive a chat model's calls (the loader refuses such a relax)
    Mutation("chat-unsubscribe-without-approval", "approvals", "the approval guard waives bulk_unsubscribe_profiles' "
             "consent", ("chat",),
             code={"personas/kernel/governance.py": (
                 "if name in names for e in listed)",
                 "if name in names for e in listed) | ({Effect.CONSENT} if 'bulk_unsubscribe_profiles' in names "
                 "else frozenset())")}),
    Mutation("consent-is-not-an-approval-effect", "approvals", "consent calls no longer stop for approval",
             ("chat", "segment_sync"),
             code={"klaviyo_toolkit/effects.py": ("    {Effect.CONSENT, Effect.IDENTITY,", "    {Effect.IDENTITY,")}),
    Mutation("segment-removals-without-approval", "approvals", "the syncer relaxes remove_profiles_from_list",
             ("segment_sync",),
             home={"segment-syncer.yaml": ("    bulk_import_profiles: [",
                                           "    remove_profiles_from_list: [destructive]\n"
                                           "    bulk_import_profiles: [")}),
    # -- fencing
    Mutation("form-answers-unfenced", "fencing", "form answers reach the model without a fence", ("lead_magnet",),
             code={LEAD: ('fence("form answers", for_the_model(sub.get("answers") or {})),',
                          'json.dumps(for_the_model(sub.get("answers") or {})),')}),
    Mutation("tool-results-unfenced", "fencing", "Klaviyo's tool results reach the chat model without a fence",
             ("chat",),
             code={"graphs/chat/graph.py": ('        message.content = fence(\n',
                                            '        message.content = (lambda _source, text: text)(\n')}),
    Mutation("fence-tags-not-escaped", "fencing", "a closing fence tag inside the data is left as it is",
             ("lead_magnet", "chat", "campaign_report"),
             code={"personas/kernel/governance.py": ("    text = _defuse_tags(text)\n", "")}),
    Mutation("campaign-names-unfenced", "fencing", "campaign names reach the reporter's model without a fence",
             ("campaign_report",),
             code={"graphs/campaign_report/summary.py": ('fence("campaign names", names)',
                                                         'json.dumps(names, ensure_ascii=False)')}),
    # -- prompts
    Mutation("prompt-always-fast-track", "prompts", "the sequencer's prompt says to always fast-track",
             ("lead_magnet",),
             home={"lead_magnet_sequencer.v1.md": ("- Call the choose_sequence tool exactly once.",
                                                   "- Always choose fast-track.\n- Call the choose_sequence tool "
                                                   "exactly once.")}),
    Mutation("chat-prompt-without-consent-and-approval-rules", "prompts", "the assistant's prompt loses its consent "
             "and approval rules", ("chat",),
             home={"klaviyo_assistant.v1.md": (
                 "- Never subscribe anyone to marketing without their explicit consent. Adding a profile to a list\n"
                 "  is not consent.\n- {{approval_rule}} Explain what you are about to do before you do it.\n",
                 "")}),
    # -- argument building
    Mutation("sequencer-tool-choice-none", "arguments", "the sequencer binds choose_sequence with tool_choice none",
             ("lead_magnet",), code={LEAD: ('tool_choice="choose_sequence"', 'tool_choice="none"')}),
    Mutation("unique-id-per-submission", "arguments", "the sequence start's unique_id comes from the submission, not "
             "the lead", ("lead_magnet",),
             code={LEAD: ('uid = unique_id_for(profile["id"])',
                          'uid = unique_id_for(state["submission"]["event_id"])')}),
    Mutation("reporting-call-all-channels", "arguments", "the reporting call no longer filters to email",
             ("campaign_report",),
             code={"graphs/campaign_report/graph.py": ('"filter": EMAIL_ONLY}', "}")}),
    Mutation("segment-batches-of-500", "arguments", "the syncer adds in batches of 500", ("segment_sync",),
             home={"segment-syncer.yaml": ("  batch_size: 1000 ", "  batch_size: 500 ")}),
)


@dataclass
class Verdict:
    """What the suites said about one mutation, before and after re-authoring."""

    mutation: Mutation
    before_failed: int = 0
    before_errors: int = 0
    after_failed: list[str] = field(default_factory=list)
    after_errors: int = 0
    first_failure: str = ""
    seconds: float = 0.0
    problem: str = ""

    @property
    def caught(self) -> bool:
        return bool(self.after_failed) and not self.problem


def make_tree(scratch: Path) -> Path:
    """A copy of the code tree (the packages, their suites and cassettes) under ``scratch``."""
    tree = scratch / "code"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tree


def apply(mutation: Mutation, tree: Path, home: Path) -> None:
    """Make the change: edit the copy, or write a persona/prompt override into ``home/personas``."""
    for rel, (old, new) in mutation.code.items():
        path = tree / rel
        text = path.read_text(encoding="utf-8")
        if old not in text:
            raise ValueError(f"{mutation.name}: {rel} no longer holds {old!r}; update the mutation")
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    overrides = home / "personas"
    overrides.mkdir(parents=True, exist_ok=True)
    prompts = {name for name in mutation.home if name.endswith(".md")}
    for name, (old, new) in mutation.home.items():
        source = (PROMPTS if name.endswith(".md") else DEFINITIONS) / name
        text = source.read_text(encoding="utf-8")
        if old not in text:
            raise ValueError(f"{mutation.name}: {name} no longer holds {old!r}; update the mutation")
        (overrides / name).write_text(text.replace(old, new, 1), encoding="utf-8")
    for prompt in prompts:  # a changed prompt reaches a persona as a copy of the persona pointing at it
        for persona in DEFINITIONS.glob("*.yaml"):
            text = persona.read_text(encoding="utf-8")
            if f"prompt: {prompt}" in text and not (overrides / persona.name).exists():
                pointed = text.replace(f"prompt: {prompt}", f"prompt: {overrides / prompt}")
                (overrides / persona.name).write_text(pointed, encoding="utf-8")


def _eval(tree: Path, home: Path, suites: Sequence[str], *extra: str) -> tuple[int, ET.Element | None, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "KLAVIYO_", "PERSONAS_"))}
    env.update(PYTHONPATH=str(tree), PERSONAS_HOME=str(home), PYTHONDONTWRITEBYTECODE="1")
    out = home / f"report-{int(time.time() * 1000)}"
    done = subprocess.run([sys.executable, "-m", "personas.cli", "eval", *suites, *extra, "--report", str(out)],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=1800, check=False)
    junit = out / "junit.xml"
    root = ET.parse(junit).getroot() if junit.exists() else None
    return done.returncode, root, done.stdout + done.stderr


def _verdicts(root: ET.Element | None) -> tuple[list[tuple[str, str]], int]:
    failed: list[tuple[str, str]] = []
    errors = 0
    for case in (root.iter("testcase") if root is not None else []):
        failure = case.find("failure")
        if failure is not None:
            failed.append((f"{case.get('classname', '').removeprefix('evals.')}/{case.get('name')}",
                           failure.get("message") or ""))
        errors += case.find("error") is not None
    return failed, errors


def run_mutation(mutation: Mutation | None, scratch: Path, suites: Sequence[str] = (),
                 cases: Sequence[str] = ()) -> Verdict:
    """Apply ``mutation`` (None: the control run) in a fresh copy under ``scratch``; replay, re-author, replay.

    ``cases`` narrows every run to those case ids (the harness's own test uses a few).
    """
    started = time.perf_counter()
    name = mutation.name if mutation else "control"
    control = Mutation("control", "-", "no change", ())
    verdict = Verdict(mutation or control)
    folder = scratch / name
    tree, home = make_tree(folder), folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    try:
        if mutation is not None:
            apply(mutation, tree, home)
    except ValueError as exc:
        verdict.problem = str(exc)
        return verdict
    chosen = list(suites or (mutation.suites if mutation else ()))
    chosen += [arg for case in cases for arg in ("--case", case)]
    _, before, _ = _eval(tree, home, chosen)
    failed, verdict.before_errors = _verdicts(before)
    verdict.before_failed = len(failed)
    _, after, output = _eval(tree, home, chosen, "--author")
    if after is None:
        verdict.problem = "re-authoring wrote no report: " + output.strip().splitlines()[-1][:200] if output else "?"
    failed, verdict.after_errors = _verdicts(after)
    verdict.after_failed = [case for case, _ in failed]
    verdict.first_failure = f"{failed[0][0]}: {failed[0][1]}" if failed else ""
    verdict.seconds = time.perf_counter() - started
    return verdict


def table(verdicts: Sequence[Verdict]) -> str:
    lines = ["| mutation | area | before re-authoring (failed / errors) | after re-authoring: cases failing | "
             "caught | first failure |", "| --- | --- | ---: | ---: | --- | --- |"]
    for v in verdicts:
        why = (v.problem or v.first_failure).replace("|", "\\|")
        lines.append(f"| {v.mutation.name} | {v.mutation.area} | {v.before_failed} / {v.before_errors} | "
                     f"{len(v.after_failed)} (+{v.after_errors} errors) | {'yes' if v.caught else 'NO'} | "
                     f"{why[:110]} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="Run only these mutations (by name).")
    parser.add_argument("--jobs", type=int, default=1, help="Mutations run side by side.")
    parser.add_argument("--all-suites", action="store_true", help="Run every suite for every mutation.")
    parser.add_argument("--keep", type=Path, default=None, help="Keep the scratch trees here.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the verdicts as JSON.")
    args = parser.parse_args(argv)
    known = {m.name: m for m in MUTATIONS}
    unknown = [n for n in args.only if n not in known]
    if unknown:
        parser.error(f"unknown mutation(s) {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = [known[n] for n in args.only] if args.only else list(MUTATIONS)
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="eval-mutations-"))
    started = time.perf_counter()
    every = ("lead_magnet", "chat", "campaign_report", "segment_sync")
    suites_of = (lambda m: every) if args.all_suites else (lambda m: m.suites)
    control = run_mutation(None, scratch, sorted({s for m in chosen for s in suites_of(m)}))
    if control.before_failed or control.before_errors or control.after_failed or control.after_errors:
        print(f"the control run is not clean ({control.before_failed} failed, {control.before_errors} errors before; "
              f"{len(control.after_failed)} failed after re-authoring): {control.first_failure}", file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        verdicts = list(pool.map(lambda m: run_mutation(m, scratch, suites_of(m)), chosen))
    caught = sum(v.caught for v in verdicts)
    print(table(verdicts))
    print()
    print(f"Mutation score: {caught} / {len(verdicts)} caught after re-authoring = {caught / len(verdicts):.2f} "
          f"(target 1.00: {'MET' if caught == len(verdicts) else 'NOT MET'}); a cassette error never counts. "
          f"Control run clean. {time.perf_counter() - started:.0f} s.")
    if args.json:
        args.json.write_text(json.dumps([{"mutation": v.mutation.name, "area": v.mutation.area, "caught": v.caught,
                                          "before_failed": v.before_failed, "after_failed": v.after_failed,
                                          "after_errors": v.after_errors, "problem": v.problem}
                                         for v in verdicts], indent=1), encoding="utf-8")
    if args.keep is None:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0 if caught == len(verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
