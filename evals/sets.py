"""A labelled cassette set as a whole: what its ``set.json`` says, checked against its cassettes.

A recorded set (``cassettes-<label>/``) is evidence about one model, so it must say which one and
agree with itself. ``set.json`` names the model asked for, the endpoint, the date and the package
version (written by ``--record``), and may add:

- ``server``: what served the answers: ``name`` (e.g. ``llama.cpp llama-server``), ``package`` (the
  pinned build), ``weights`` and ``weights_sha256`` (the GGUF file and its sha256), ``served_model``
  (the name the endpoint gave every answer) and ``proxy`` (what rewrote tool calls, if anything);
- ``known_failures``: ``{case id: reason}``, the recorded cases that fail, each kept with why.
  They are counted and shown; a suite's threshold is never lowered for them.

:func:`load_set` refuses a set whose ``set.json`` is wrong: a missing field, a malformed
``weights_sha256``, a known failure naming a case the set does not hold, a cassette no case owns.
A cassette that does not load, is not recorded, or was recorded from another model or endpoint
than the set names (or served by another model than ``server`` says) is one case's problem, as in
the default set: :attr:`CassetteSet.broken` lists it, and replaying the case is an error for that
case alone (:func:`disagreement`). :func:`known_failures` replays a set and lists the cases that
fail, with their first failure, for ``python -m evals.sets LABEL --write``; a case whose replay is an
error (its cassette no longer answers the run) is never one of them, and nothing is written then.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personas.kernel.cassette import Cassette, CassetteError

from .case import Case, Suite
from .commands import suite_arg
from .results import policy_events

__all__ = ["CassetteSet", "SetError", "disagreement", "known_failures", "load_set", "main", "model_cases",
           "replay_set", "usage"]

MANIFEST = "set.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SERVER_FIELDS = ("name", "package", "weights", "weights_sha256", "served_model")


class SetError(ValueError):
    """A labelled set whose ``set.json`` and cassettes disagree; the message names the file and the field."""


@dataclass
class CassetteSet:
    """A suite's labelled set, checked: its manifest, the cases it holds, and its known failures."""

    suite: Suite
    label: str
    manifest: dict[str, Any]
    recorded: list[str] = field(default_factory=list)
    known_failures: dict[str, str] = field(default_factory=dict)
    #: {case id: why its cassette cannot be replayed as part of the set}; each is an error for its case only
    broken: dict[str, str] = field(default_factory=dict)

    @property
    def server(self) -> dict[str, Any]:
        value = self.manifest.get("server")
        return dict(value) if isinstance(value, Mapping) else {}

    @property
    def total(self) -> int:
        """How many of the suite's cases ask a model (the cases a complete set records)."""
        return len(model_cases(self.suite))

    @property
    def complete(self) -> bool:
        return set(model_cases(self.suite)) <= set(self.recorded)


def model_cases(suite: Suite) -> list[str]:
    """The suite's cases that ask a model: the ones with a cassette in the default (authored) set."""
    return [c.id for c in suite.cases if not c.policy and c.model != "none" and suite.cassette_path(c).exists()]


def _manifest_problems(data: Any, label: str) -> list[str]:
    if not isinstance(data, Mapping):
        return ["it is not a JSON object"]
    problems = []
    if data.get("label") != label:
        problems.append(f"label is {data.get('label')!r}, the folder says {label!r}")
    for name in ("requested_model", "base_url", "package_version"):
        if not isinstance(data.get(name), str) or not data[name]:
            problems.append(f"{name} is missing (what the set was recorded from)")
    if not isinstance(data.get("date"), str) or not _DATE.match(data["date"]):
        problems.append("date is not YYYY-MM-DD")
    server = data.get("server")
    if server is not None:
        if not isinstance(server, Mapping):
            problems.append("server is not an object")
        else:
            problems += [f"server.{n} is missing" for n in SERVER_FIELDS if not isinstance(server.get(n), str)
                         or not server[n]]
            sha = server.get("weights_sha256")
            if isinstance(sha, str) and sha and not _SHA256.match(sha):
                problems.append("server.weights_sha256 is not 64 lowercase hex digits")
    known = data.get("known_failures", {})
    if not isinstance(known, Mapping) or not all(isinstance(v, str) and v.strip() for v in known.values()):
        problems.append("known_failures is not {case id: reason} with a reason for each")
    return problems


def disagreement(file: Path, provenance: Mapping[str, Any], manifest: Mapping[str, Any]) -> str | None:
    """Where a labelled set's cassette (already loaded) disagrees with the set's ``set.json``; None if nowhere.

    The message names the file and the field; the set as a whole is checked by :func:`load_set`.
    """
    where = f"cassette {file}: "
    if provenance.get("kind") != "recorded":
        return where + f"provenance.kind is {provenance.get('kind')!r}; a labelled set holds recorded cassettes"
    for name in ("requested_model", "base_url"):
        if name in manifest and provenance.get(name) != manifest[name]:
            return where + f"provenance.{name} is {provenance.get(name)!r}, set.json says {manifest[name]!r}"
    server = manifest.get("server")
    served = server.get("served_model") if isinstance(server, Mapping) else None
    if served and set(provenance.get("served_models") or []) != {served}:
        return where + f"served by {provenance.get('served_models')}, set.json's server serves {served!r}"
    return None


def load_set(suite: Suite, label: str) -> CassetteSet:
    """Read and check ``cassettes-<label>/`` of ``suite``; raise :class:`SetError` when its ``set.json`` is wrong
    (a cassette that does not load or disagrees with it goes into ``broken``: its case's error, not the set's)."""
    folder = suite.cassette_dir(label)
    path = folder / MANIFEST
    if not path.exists():
        raise SetError(f"{path}: a recorded set needs its set.json (the model it was recorded from); "
                       f"re-record it with `personas eval {suite_arg(suite)} --record --cassettes {label}`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SetError(f"{path}: not JSON ({exc})") from None
    problems = _manifest_problems(data, label)
    if problems:
        raise SetError(f"{path}: " + "; ".join(problems))
    cases: dict[str, Case] = {c.id: c for c in suite.cases}
    recorded: list[str] = []
    broken: dict[str, str] = {}
    for file in sorted(folder.glob("*.json")):
        if file.name == MANIFEST:
            continue
        if file.stem not in cases:
            raise SetError(f"{file}: no case {file.stem!r} in suite {suite.name} owns this cassette; delete it")
        hint = (f"re-record it with `personas eval {suite_arg(suite)} --case {file.stem} --record --cassettes {label}` "
                "(needs OPENAI_API_KEY)")
        try:
            problem = disagreement(file, Cassette.load(file, hint).provenance, data)
        except CassetteError as exc:
            broken[file.stem] = str(exc)
            continue
        if problem:
            broken[file.stem] = f"{problem}; {hint}"
        else:
            recorded.append(file.stem)
    known = dict(data.get("known_failures") or {})
    stray = sorted(set(known) - set(recorded) - set(broken))
    if stray:
        raise SetError(f"{path}: known_failures names {', '.join(stray)}, which the set does not hold")
    return CassetteSet(suite, label, dict(data), recorded, known, broken)


def usage(cset: CassetteSet) -> tuple[int, int, int]:
    """(answers, input tokens, output tokens) over every recorded answer in the set, from its evidence."""
    answers = tokens_in = tokens_out = 0
    for case_id in cset.recorded:
        data = json.loads((cset.suite.cassette_dir(cset.label) / f"{case_id}.json").read_text(encoding="utf-8"))
        for item in data.get("interactions") or []:
            got = (item.get("evidence") or {}).get("usage") or {}
            answers += 1
            tokens_in += int(got.get("input_tokens") or 0)
            tokens_out += int(got.get("output_tokens") or 0)
    return answers, tokens_in, tokens_out


def replay_set(cset: CassetteSet) -> tuple[dict[str, str], dict[str, str]]:
    """Replay every case the set holds: ``({case id: its first failure}, {case id: its error})``.

    An error (a cassette that no longer answers the run: a request it does not hold, one played in part)
    judged nothing the model did, so it is never one of the set's failures.
    """
    from .runner import run_case

    failed: dict[str, str] = {}
    errors: dict[str, str] = {}
    for case_id in cset.recorded:
        result = run_case(cset.suite, cset.suite.case(case_id), label=cset.label)
        if result.error:
            errors[case_id] = result.error
        elif not result.passed:
            parted = "; ".join(policy_events(result))
            failed[case_id] = " ".join(result.failures[0].split())[:400] + (f" [{parted}]" if parted else "")
    return failed, errors


def known_failures(cset: CassetteSet) -> dict[str, str]:
    """Replay every case the set holds; ``{case id: its first failure}`` for the ones that fail (errors left out)."""
    return replay_set(cset)[0]


def write_manifest_fields(cset: CassetteSet, **fields: Any) -> Path:
    """Rewrite ``set.json`` with ``fields`` set (the rest kept); checked again by loading it."""
    path = cset.suite.cassette_dir(cset.label) / MANIFEST
    data = {**cset.manifest, **fields}
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    load_set(cset.suite, cset.label)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m evals.sets LABEL [SUITE ...] [--write]``: check a set, list (and keep) its known failures."""
    import argparse

    from .case import discover_suites, load_suite

    parser = argparse.ArgumentParser(prog="python -m evals.sets", description=main.__doc__)
    parser.add_argument("label")
    parser.add_argument("suites", nargs="*")
    parser.add_argument("--write", action="store_true", help="write the failing cases into set.json's known_failures")
    args = parser.parse_args(argv)
    suites = [load_suite(n) for n in args.suites] if args.suites else [load_suite(s.path) for s in discover_suites()]
    status = 0
    for suite in suites:
        if not suite.cassette_dir(args.label).is_dir():
            continue
        try:
            cset = load_set(suite, args.label)
        except SetError as exc:
            print(f"{suite.name}: {exc}", file=sys.stderr)
            status = 1
            continue
        failing, errors = replay_set(cset)
        for case_id, why in {**cset.broken, **errors}.items():
            print(f"{suite.name}/{case_id}: {why}", file=sys.stderr)
            status = 1
        answers, tokens_in, tokens_out = usage(cset)
        lost = f", {len(errors)} error(s), not failures" if errors else ""
        print(f"{suite.name}: {len(cset.recorded)} of {cset.total} model case(s) recorded, {len(failing)} failing"
              f"{lost}; {answers} answer(s), {tokens_in} input and {tokens_out} output token(s)")
        for case_id, reason in failing.items():
            print(f"  {case_id}: {reason}")
        if args.write and (cset.broken or errors):
            print("  set.json not written: re-record the broken cassette(s) above first")
        elif args.write:
            print(f"  wrote {write_manifest_fields(cset, known_failures=failing)}")
        elif failing != cset.known_failures:
            status = 1
            print("  set.json's known_failures differ (run with --write after reading them)")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
