"""Suites and cases: the YAML files under ``evals/suites/<suite>/``, loaded and validated.

A suite is a folder with ``suite.yaml`` (persona or graph, threshold, description, ``defaults``
merged under every case) and one case per file in ``cases/``; cassettes live in ``cassettes/``.
Every problem names the file, the line and the field, e.g.
``evals/suites/lead_magnet/cases/hot.yaml:14: expect.trajectory.mode: Input should be 'strict', ...``.
See ``evals/README.md`` for the format with a full example.
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from personas.runtime.loader import YamlFileError, line_of, loc_text, read_yaml, value_problem

from .fixtures import Fixture, FormSubmission, parse_duration
from .matchers import CallSpec, check_matcher

__all__ = [
    "AUTOMATIC_BEHAVIOURS",
    "REQUIRED_BEHAVIOURS",
    "SUITES_DIR",
    "AuthoredResponse",
    "Case",
    "CaseFileError",
    "Expect",
    "FileExpect",
    "ListExpect",
    "RowBlock",
    "SourceFile",
    "Suite",
    "discover_suites",
    "is_suite_path",
    "load_suite",
]

SUITES_DIR = Path(__file__).parent / "suites"
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
_STAMP = re.compile(r"^sha256:[0-9a-f]{16}$")
#: Behaviours every policy case runs besides its scripted ones: a model that fails, and none at all.
AUTOMATIC_BEHAVIOURS = ("failing", "absent")
#: Scripted behaviours every policy case needs (from suite.yaml `behaviours` or the case).
REQUIRED_BEHAVIOURS = ("compliant", "out_of_policy", "injected")


def _check_policy(case: Any) -> None:
    """A policy case's expectations must not depend on the model's answer."""
    if case.authored_responses or case.cassette or case.authored_for:
        raise ValueError("a policy case has scripted `behaviours`, not authored_responses, a cassette or authored_for")
    if case.model == "none":
        raise ValueError("a policy case runs without a model as one of its behaviours (absent); drop `model: none`")
    exp = case.expect
    if exp.model_calls not in (None, 0) or exp.model_requests is not None:
        raise ValueError("expect.model_calls (other than 0: never asked) and expect.model_requests depend on the "
                         "model's answers; a policy case checks the policy's decisions, approvals and the sandbox "
                         "instead (expect_when checks one behaviour)")
    if exp.trajectory is not None and exp.trajectory.source != "http":
        raise ValueError("a policy case's trajectory is the HTTP calls (the model's own calls vary by behaviour): "
                         "set expect.trajectory.source: http")
    bad = [name for name in case.behaviours if name in AUTOMATIC_BEHAVIOURS or not _ID.match(name)]
    if bad:
        raise ValueError(f"behaviours.{bad[0]}: {', '.join(AUTOMATIC_BEHAVIOURS)} are added by the runner; name "
                         "scripted ones in lowercase (compliant, out_of_policy, injected, ...)")


class CaseFileError(ValueError):
    """A suite or case file is wrong; the message is ``file:line: field: problem``."""

    def __init__(self, path: Path | str, line: int | None, field: str, problem: str) -> None:
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _matchers_ok(value: Any, field: str) -> Any:
    problems = check_matcher(value, field)
    if problems:
        raise ValueError("; ".join(problems))
    return value


class Trajectory(_Strict):
    """The calls the run made (HTTP operations and the model's tool calls), matched in ``mode``.

    By default every call, in order (``strict``), with exactly the arguments written (``match: exact``).
    """

    mode: Literal["strict", "unordered", "subset", "superset"] = "strict"
    match: Literal["exact", "partial"] = Field(
        default="exact", description="exact: arguments not written must be absent or null; partial: only those written."
    )
    source: Literal["all", "http", "model"] = "all"
    ignore: list[str] = Field(default_factory=list, description="Tools left out before matching.")
    calls: list[CallSpec] = Field(default_factory=list)

    @field_validator("calls")
    @classmethod
    def _calls(cls, calls: list[CallSpec]) -> list[CallSpec]:
        for i, call in enumerate(calls):
            _matchers_ok(call.args, f"calls[{i}].args")
        return calls


class OutboxExpect(_Strict):
    """Messages the sandbox's flows and campaigns scheduled for one profile (or every profile)."""

    profile: str | None = Field(default=None, description="A fixture profile key; omit for the whole outbox.")
    where: dict[str, Any] = Field(default_factory=dict, description="Only messages matching this count.")
    count: Any = None
    messages: list[dict[str, Any]] = Field(default_factory=list, description="Each must match a distinct message.")

    @model_validator(mode="after")
    def _check(self) -> OutboxExpect:
        _matchers_ok(self.where, "where")
        _matchers_ok(self.messages, "messages")
        _matchers_ok(self.count, "count")
        return self


class ListExpect(_Strict):
    """A fixture list after the run: it exists (``exists: false``: the run deleted it) and, with ``profile``,
    that profile is on it (``member: false``: is not)."""

    list: str
    profile: str | None = Field(default=None, description="A fixture profile key, or the email of any profile.")
    member: bool = True
    exists: bool = True
    count: Any = Field(default=None, description="How many members the list has (a number or matcher).")

    @model_validator(mode="after")
    def _check(self) -> ListExpect:
        if not self.exists and (self.profile is not None or self.count is not None):
            raise ValueError("a deleted list has no members: drop `profile`/`count` (or `exists: false`)")
        _matchers_ok(self.count, "count")
        return self


class FileExpect(_Strict):
    """Files under the run's ``$PERSONAS_HOME`` (reports, CSVs, charts): ``path`` is a glob relative to it."""

    path: str
    exists: bool = True
    count: Any = Field(default=None, description="How many files match the glob (a number or matcher).")
    format: Any = Field(default=None, description="png, sqlite, text or binary (from the file's first bytes).")
    size: Any = Field(default=None, description="Bytes (a number or matcher).")
    text: Any = Field(default=None, description="The file's text (UTF-8 files).")
    rows: Any = Field(default=None, description="CSV files: the rows as objects (header -> cell text).")

    @model_validator(mode="after")
    def _check(self) -> FileExpect:
        for name in ("count", "format", "size", "text", "rows"):
            _matchers_ok(getattr(self, name), name)
        return self


class Raises(_Strict):
    type: str | None = None
    message: Any = None


class Expect(_Strict):
    """What must hold after the run."""

    trajectory: Trajectory | None = None
    state: dict[str, Any] = Field(default_factory=dict, description="Dotted paths into the final state -> matchers.")
    outbox: list[OutboxExpect] = Field(default_factory=list)
    lists: list[ListExpect] = Field(default_factory=list)
    not_called: list[str | CallSpec] = Field(default_factory=list, description="Calls that must not happen.")
    model_calls: Any = Field(default=None, description="How many times the model was asked (a number or matcher).")
    interrupts: Any = Field(default=None, description="Matcher for the approvals still pending when the run ended.")
    approvals_asked: Any = Field(
        default=None,
        description="Matcher for every approval the run stopped for, in "
        "order, answered or not (the interrupt values: type, tool, args, request).",
    )
    raises: Raises | None = None
    call_counts: dict[str, Any] = Field(
        default_factory=dict,
        description="Calls of the last run per tool -> a number or matcher; '*' counts every "
        "call, and an 'http:' or 'model:' prefix counts only calls from there ('http:*': every HTTP call).",
    )
    profiles: dict[str, Any] = Field(
        default_factory=dict,
        description="A fixture profile key or an email -> a matcher on the profile after the "
        "run: {exists, id, email, phone_number, first_name, last_name, consent, can_receive_email_marketing, "
        "suppression, list_suppressions, properties}.",
    )
    files: list[FileExpect] = Field(default_factory=list)
    model_requests: Any = Field(
        default=None,
        description="Matcher for what the model was sent, every run: a list of {messages: [{role, text}], tools}.",
    )
    fencing: bool = Field(
        default=True,
        description="Check every model request: untrusted data (form answers, fixture profiles, campaign "
        "names, `untrusted`) only inside <untrusted-data> fences, fence tags inside it escaped.",
    )
    untrusted: list[str] = Field(
        default_factory=list, description="More text that is untrusted data and may reach the model only fenced."
    )

    @model_validator(mode="after")
    def _check(self) -> Expect:
        _matchers_ok(self.call_counts, "call_counts")
        _matchers_ok(self.profiles, "profiles")
        _matchers_ok(self.model_requests, "model_requests")
        _matchers_ok(self.state, "state")
        _matchers_ok(self.interrupts, "interrupts")
        _matchers_ok(self.approvals_asked, "approvals_asked")
        _matchers_ok(self.model_calls, "model_calls")
        return self


class AuthoredResponse(_Strict):
    """A model response written by hand (kept in the case so ``--author`` can rebuild the cassette)."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("tool_calls")
    @classmethod
    def _calls(cls, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, call in enumerate(calls):
            if not isinstance(call.get("name"), str) or not isinstance(call.get("args", {}), dict):
                raise ValueError(f"tool_calls[{i}] needs a name and an args object")
        return calls

    def to_response(self, index: int) -> dict[str, Any]:
        return {
            "content": self.content,
            "tool_calls": [
                {"name": c["name"], "args": c.get("args", {}), "id": c.get("id") or f"call_{index}_{i}"}
                for i, c in enumerate(self.tool_calls)
            ],
        }


class SandboxSpec(_Strict):
    seed: int = 42
    demo_data: bool = False
    fixture: Fixture = Field(default_factory=Fixture)
    faults: dict[str, Any] | None = Field(
        default=None,
        description="The sandbox's fault injection once the fixture is built (klaviyo_toolkit/"
        "sandbox/_faults.py), e.g. {storm_rate: 1.0, operations: [query_campaign_values]}: every such call is a 429.",
    )


class RowBlock(_Strict):
    """``count`` generated lines: ``row`` is a Python format string with ``n`` (``start``, ``start + 1``, ...)."""

    row: str
    count: int = Field(ge=0, le=100_000)
    start: int = 1

    @field_validator("row")
    @classmethod
    def _row(cls, value: str) -> str:
        try:
            value.format(n=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{exc}; use {{n}} for the row number, e.g. user{{n:04d}}@example.com") from None
        return value

    def lines(self) -> list[str]:
        return [self.row.format(n=n) for n in range(self.start, self.start + self.count)]


class SourceFile(_Strict):
    """A file written for the run (a CSV or JSON-lines source): its ``text``, or generated rows.

    ``header`` is written first, then ``row`` x ``count`` (``n`` counts from ``start``), then each
    block of ``generate``, e.g. 1,200 consenting rows and 1,300 others::

        header: email,consent
        generate:
          - {row: "hiker{n:04d}@example.com,yes", count: 1200}
          - {row: "hiker{n:04d}@example.com,no", count: 1300, start: 1201}
    """

    text: str | None = None
    header: str | None = None
    row: str | None = None
    count: int = Field(0, ge=0, le=100_000)
    start: int = 1
    generate: list[RowBlock] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> SourceFile:
        generated = self.row is not None or bool(self.generate)
        if (self.text is None) == (not generated):
            raise ValueError(
                "give the file's `text`, or rows to generate (`row` with `count`, or `generate`), "
                "optionally after a `header`"
            )
        if self.row is not None:
            RowBlock(row=self.row, count=self.count, start=self.start)
        return self

    def render(self) -> str:
        if self.text is not None:
            return self.text
        lines = [self.header] if self.header is not None else []
        blocks = [RowBlock(row=self.row, count=self.count, start=self.start)] if self.row is not None else []
        for block in [*blocks, *self.generate]:
            lines += block.lines()
        return "\n".join(lines) + "\n"


_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")


def placeholders(value: Any, kind: str) -> list[str]:
    """Every ``{kind: X}`` placeholder in ``value`` (in a case's input: ``{ref: list:NAME}``, ``{file: NAME}``)."""
    if isinstance(value, Mapping):
        if set(value) == {kind}:
            return [str(value[kind])]
        return [x for v in value.values() for x in placeholders(v, kind)]
    if isinstance(value, list):
        return [x for v in value for x in placeholders(v, kind)]
    return []


class Case(_Strict):
    """One eval case (see ``evals/README.md``)."""

    id: str
    description: str
    labels: list[str] = Field(default_factory=list)
    persona: str | None = None
    graph: str | None = None
    now: _dt.datetime
    sandbox: SandboxSpec = Field(default_factory=SandboxSpec)
    input: dict[str, Any] | None = Field(
        default=None,
        description="The graph input; {ref: list:NAME} becomes a fixture id, {file: NAME} the path "
        "of a file from `files`.",
    )
    files: dict[str, SourceFile] = Field(
        default_factory=dict, description="Files written for the run (name -> text, or generated rows)."
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Persona settings for this case, merged over the persona's (key by key)."
    )
    form_submission: FormSubmission | None = None
    repeat: int = Field(default=1, ge=1, le=10, description="Runs on the same sandbox; expectations see the last.")
    repeat_every: str = "10m"
    approvals: list[Any] = Field(default_factory=list, description="Answers, in order, when a run stops for approval.")
    model: Literal["cassette", "none"] = "cassette"
    cassette: str | None = Field(default=None, description="Relative to the suite; default cassettes/<id>.json.")
    authored_responses: list[AuthoredResponse] = Field(default_factory=list)
    authored_for: str | None = Field(
        default=None,
        description="The prompt the authored responses were written for (sha256 of the system prompt): "
        "`personas eval SUITE --case ID --stamp` writes it after a review; a changed prompt makes them stale.",
    )
    policy: bool = Field(
        default=False,
        description="A policy case: its expectations hold whatever the model answers; it runs once per "
        "behaviour (the suite's and the case's `behaviours`, then `failing` and `absent`), with no cassette.",
    )
    behaviours: dict[str, list[AuthoredResponse]] = Field(
        default_factory=dict, description="Scripted model behaviours for a policy case, by name."
    )
    expect_when: dict[str, Expect] = Field(
        default_factory=dict,
        description="A policy case's further expectations for one behaviour (how the run explains what the "
        "policy did with that answer); `expect` holds for every behaviour.",
    )
    expect: Expect = Field(default_factory=Expect)
    source: str = Field(default="", exclude=True)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("use lowercase letters, digits, '-' and '_' (e.g. hot-director-this-month)")
        return value

    @field_validator("now")
    @classmethod
    def _now(cls, value: _dt.datetime) -> _dt.datetime:
        if value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-03-10T15:00:00Z")
        return value

    @field_validator("files", mode="before")
    @classmethod
    def _files(cls, value: Any) -> Any:
        if isinstance(value, Mapping):  # a file given as its text
            return {k: {"text": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("repeat_every")
    @classmethod
    def _every(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> Case:
        if not (self.persona or self.graph):
            raise ValueError("name the persona (or graph) the case runs, here or in suite.yaml")
        if self.input is not None and self.form_submission is not None:
            raise ValueError("give `input` or `form_submission`, not both")
        if self.form_submission and self.form_submission.profile not in self.sandbox.fixture.profiles:
            raise ValueError(
                f"form_submission.profile {self.form_submission.profile!r} is not a fixture profile "
                f"(sandbox.fixture.profiles: {', '.join(self.sandbox.fixture.profiles) or 'none'})"
            )
        if self.model == "none" and self.authored_responses:
            raise ValueError("model: none runs without a model; drop authored_responses")
        if self.authored_for is not None and not _STAMP.match(self.authored_for):
            raise ValueError("authored_for is sha256:<16 hex digits>; write it with `personas eval SUITE --case ID "
                             "--stamp`")
        if (self.behaviours or self.expect_when) and not self.policy:
            raise ValueError("behaviours and expect_when are for policy cases: add `policy: true` (expectations that "
                             "hold whatever the model answers)")
        if self.policy:
            _check_policy(self)
        for name in self.files:
            if not _FILE_NAME.match(name):
                raise ValueError(f"files: {name!r}: use a plain file name (letters, digits, '.', '_', '-')")
        missing = [f for f in placeholders(self.input, "file") if f not in self.files]
        if missing:
            raise ValueError(
                f"input names file {missing[0]!r}, which is not under `files` ({', '.join(self.files) or 'none'})"
            )
        return self

    @property
    def labels_text(self) -> str:
        return ", ".join(self.labels)


class Suite(_Strict):
    """A folder of cases for one persona (or graph), with the pass rate it must reach."""

    name: str
    description: str
    persona: str | None = None
    graph: str | None = None
    threshold: float = Field(ge=0.0, le=1.0)
    defaults: dict[str, Any] = Field(default_factory=dict)
    behaviours: dict[str, list[AuthoredResponse]] = Field(
        default_factory=dict, description="Scripted model behaviours for every policy case (a case's own win)."
    )
    decisions: list[str] = Field(
        default_factory=list,
        description="State paths that hold the persona's decision (e.g. decision.sequence), shown by --compare.",
    )
    path: Path = Field(exclude=True)
    cases: list[Case] = Field(default_factory=list, exclude=True)

    def case(self, case_id: str) -> Case:
        for case in self.cases:
            if case.id == case_id:
                return case
        raise KeyError(f"suite {self.name} has no case {case_id!r}; cases: {', '.join(c.id for c in self.cases)}")

    def cassette_dir(self, label: str | None = None) -> Path:
        """``cassettes/`` (the default set) or ``cassettes-<label>/`` (e.g. one recorded from a local model)."""
        return self.path / ("cassettes" if not label or label == "cassettes" else f"cassettes-{label}")

    def cassette_path(self, case: Case, label: str | None = None) -> Path:
        if case.cassette and not label:
            return self.path / case.cassette
        return self.cassette_dir(label) / f"{case.id}.json"

    def cassette_sets(self) -> list[str]:
        """The labels of the cassette sets this suite holds (``cassettes`` is the default set)."""
        return sorted(p.name.removeprefix("cassettes-") for p in self.path.glob("cassettes*") if p.is_dir())

    def behaviours_for(self, case: Case) -> dict[str, list[AuthoredResponse]]:
        """A policy case's scripted behaviours: the suite's, then the case's own (same names replaced)."""
        return {**self.behaviours, **case.behaviours}

    def case_file(self, case: Case) -> Path:
        return Path(case.source) if case.source else self.path / "cases" / f"{case.id}.yaml"


# -- loading -----------------------------------------------------------------------------------
def _read(path: Path) -> tuple[dict[str, Any], yaml.Node | None]:
    """A suite or case file: UTF-8 YAML with no key given twice (YAML would keep the last one silently)."""
    if not path.exists():
        raise CaseFileError(path, None, "", "no such file")
    try:
        data, root = read_yaml(path, fast=True)
    except YamlFileError as exc:
        raise CaseFileError(path, exc.line, "", exc.problem) from None
    return data or {}, root


def _validate(model: type[BaseModel], data: Any, path: Path, root: yaml.Node | None, extra: Mapping[str, Any]) -> Any:
    if not isinstance(data, dict):
        raise CaseFileError(path, 1, "", "the file must be a mapping of keys")
    try:
        return model.model_validate({**data, **extra})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tagged-union")))]
        msg = value_problem(err)  # what to write instead, as a persona file's errors say it
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise CaseFileError(path, line_of(root, loc), loc_text(loc), msg) from None


def merge(base: Any, over: Any) -> Any:
    """``over`` on top of ``base``: mappings merge key by key, anything else replaces."""
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        out = dict(copy.deepcopy(base))
        for key, value in over.items():
            out[key] = merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def _with_defaults(defaults: Mapping[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Suite defaults under a case; defaults for ``input``/``form_submission`` only fill in a case's own."""
    base = {k: v for k, v in defaults.items() if k not in ("input", "form_submission") or k in data}
    return dict(merge(base, data))


def is_suite_path(name: str) -> bool:
    """Whether a suite given as text is a folder (``./chat``, ``my/chat``, ``/abs/chat``, ``~/chat``), not a name."""
    return name.startswith((".", "~")) or any(sep and sep in name for sep in ("/", os.sep, os.altsep))


def _suite_folder(path: str | Path) -> Path:
    """Where a suite lives: a bare name (``chat``) is always the shipped suite (a folder of that name here
    never replaces it unnoticed), a folder is a path (``./chat``); a :class:`Path` falls back to a name."""
    if isinstance(path, Path):
        shipped = SUITES_DIR / str(path)
        return shipped if not (path / "suite.yaml").exists() and (shipped / "suite.yaml").exists() else path
    if is_suite_path(path):
        return Path(path).expanduser()
    folder = SUITES_DIR / path
    if not (folder / "suite.yaml").exists():
        known = ", ".join(s.name for s in discover_suites()) or "none"
        fix = (f"for the suite folder here, give its path: ./{path}" if (Path(path) / "suite.yaml").exists()
               else f"a suite folder is given as a path (e.g. ./{path})")
        raise CaseFileError(path, None, "", f"no suite here (no shipped suite of this name; suites: {known}); {fix}")
    return folder


def load_suite(path: str | Path) -> Suite:
    """A suite from its folder (``./chat``) or its name (``chat``), with every case validated."""
    if not ((folder := _suite_folder(path)) / "suite.yaml").exists():
        known = ", ".join(s.name for s in discover_suites()) or "none"
        raise CaseFileError(folder, None, "", f"no suite here (no suite.yaml); suites: {known}")
    data, root = _read(folder / "suite.yaml")
    suite = _validate(Suite, data, folder / "suite.yaml", root, {"name": data.get("name", folder.name), "path": folder})
    defaults = {k: v for k, v in {"persona": suite.persona, "graph": suite.graph}.items() if v} | suite.defaults
    cases: list[Case] = []
    for file in sorted((folder / "cases").glob("*.y*ml")):
        raw, node = _read(file)
        if not isinstance(raw, dict):
            raise CaseFileError(file, 1, "", "a case file is a mapping of keys (id, description, expect, ...)")
        case = _validate(Case, _with_defaults(defaults, raw), file, node, {"source": str(file)})
        if any(c.id == case.id for c in cases):
            raise CaseFileError(file, line_of(node, ["id"]), "id", f"{case.id!r} is used by another case of this suite")
        missing = [b for b in REQUIRED_BEHAVIOURS if case.policy and b not in suite.behaviours_for(case)]
        unknown = [b for b in case.expect_when if b not in [*suite.behaviours_for(case), *AUTOMATIC_BEHAVIOURS]]
        if unknown:
            raise CaseFileError(file, line_of(node, ["expect_when", unknown[0]]), f"expect_when.{unknown[0]}",
                                "not a behaviour of this case (behaviours: "
                                f"{', '.join([*suite.behaviours_for(case), *AUTOMATIC_BEHAVIOURS])})")
        if missing:
            raise CaseFileError(file, line_of(node, ["policy"]), "behaviours",
                                f"a policy case runs with every kind of model: add {', '.join(missing)} "
                                "(here or in suite.yaml `behaviours`)")
        cases.append(case)
    return suite.model_copy(update={"cases": cases})


def discover_suites(root: Path | None = None) -> list[Suite]:
    """Every suite under ``root`` (default ``evals/suites``), without loading their cases."""
    base = root or SUITES_DIR
    out = []
    for file in sorted(base.glob("*/suite.yaml")):
        data, node = _read(file)
        extra = {"name": data.get("name", file.parent.name), "path": file.parent}
        out.append(_validate(Suite, data, file, node, extra))
    return out
