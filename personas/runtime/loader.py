"""Load and validate persona YAML files; every problem names the file and the line.

Personas live in ``personas/definitions/`` (shipped) and ``$PERSONAS_HOME/personas/`` (yours).
A persona is known by its ``name:``, whatever its file is called. Two of yours with the same name
are an error; one of yours replaces a shipped persona only when its file says so by its name
(``campaign-reporter.yaml`` with ``name: campaign-reporter``), never by accident.

Validation covers YAML syntax and duplicate keys, unknown keys, scopes Klaviyo does not have,
tools that do not exist or fall outside the scopes, unknown names in ``approval.also``/``relax``, an
effect ``relax`` waives that its operation can never have, a missing prompt file, more than 128
tools, the graph's own settings, and the graph's contract: the persona's scopes and tools must
cover every operation its graph calls.

Example::

    spec = load_persona("lead-magnet-sequencer", home=config.home)
    found = scan_personas(home=config.home)      # every persona, and the files that failed
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from graphs import GRAPHS, graph_spec
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.effects import Effect, possible_effects
from klaviyo_toolkit.errors import ToolkitUsageError, UnknownOperationError
from klaviyo_toolkit.tools import MAX_TOOLS_PER_REQUEST, KlaviyoToolkit
from personas.kernel.context import prompts_dir, select_operations
from personas.kernel.spec import PersonaSpec

__all__ = [
    "BUILTIN_DIR",
    "PersonaConfigError",
    "Scan",
    "YamlFileError",
    "broken_file",
    "line_of",
    "list_personas",
    "load_persona",
    "loc_text",
    "persona_dirs",
    "read_yaml",
    "scan_personas",
    "value_problem",
]

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "definitions"


class PersonaConfigError(ToolkitUsageError):
    """A persona file is wrong; the message is ``file:line: field: problem``.

    ``persona`` is the ``name:`` the file gives, when it can be read from the file: a persona is known
    by that name, whatever its file is called, so ``personas run NAME`` finds a broken file by it.
    """

    def __init__(self, path: Path | str, line: int | None, field: str, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.problem = problem
        self.persona: str | None = None
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")


def broken_file(errors: Sequence[PersonaConfigError], name: str) -> PersonaConfigError | None:
    """The error of the broken file meant to be persona ``name``: the file that gives ``name:`` so, or
    is named so (``name.yaml``). Without it, a broken ``my-report.yaml`` giving ``name: daily-report``
    was reported as "no such persona" and another persona offered in its place, its error unseen."""
    return next((e for e in errors if name in (e.persona, Path(e.path).stem)), None)


def persona_dirs(home: Path | None) -> list[Path]:
    """Where personas are looked for: the shipped ones, then ``<home>/personas``."""
    return [BUILTIN_DIR] + ([home / "personas"] if home is not None else [])


# -- YAML with lines, refusing duplicate keys -----------------------------------------------------
class YamlFileError(ValueError):
    """A YAML file that cannot be read as it is: ``line`` (when known) and ``problem`` say why."""

    def __init__(self, line: int | None, problem: str) -> None:
        super().__init__(problem)
        self.line, self.problem = line, problem


def _mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return dict(loader.construct_mapping(node, deep=deep))


def _finite_float(loader: Any, node: yaml.ScalarNode) -> float:
    """A YAML float, refused when it is not a finite number: ``.nan`` compares false with everything
    (a threshold written as ``.nan`` silently never fires), and ``.inf`` or an overflowing ``1.0e+999``
    is no setting's value; a model's temperature of NaN fails only at the model, mid-run."""
    value = float(yaml.SafeLoader.construct_yaml_float(loader, node))
    if not math.isfinite(value):
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a finite number; give a number such as 0.5", node.start_mark
        )
    return value


class _NoDuplicates(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (YAML would keep the last)."""


class _FastNoDuplicates(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same on libyaml's parser, when it is there: for many files (an eval suite's cases)."""


for _loader in (_NoDuplicates, _FastNoDuplicates):
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
    _loader.add_constructor("tag:yaml.org,2002:float", _finite_float)


#: The largest YAML file read (a persona or an eval case is a few kB). Parsing is pure Python, about
#: 10 s and 250 MB a megabyte on the dev container, and every command scans every persona file: a
#: stray 4 MB file made ``personas list`` take 40 s and 1 GB, whatever persona was asked for.
MAX_YAML_BYTES = 256 * 1024


def read_yaml(path: Path, *, fast: bool = False) -> tuple[Any, yaml.Node | None]:
    """A YAML file's data and node tree (for :func:`line_of`), read as UTF-8 with no key given twice.

    Raises :class:`YamlFileError` for a file that cannot be read, is over :data:`MAX_YAML_BYTES`, is
    not UTF-8 text, is not YAML, gives a key twice in one mapping or a number that is not finite
    (``.nan``, ``.inf``); the caller names the file. ``fast`` parses with libyaml.
    """
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise YamlFileError(None, f"cannot be read ({exc.strerror}); check the path and its permissions") from None
    if len(raw) > MAX_YAML_BYTES:
        raise YamlFileError(
            None,
            f"is over {MAX_YAML_BYTES // 1024} KiB, the most a persona or eval case file may be (the shipped ones "
            "are a few kB); check it is the file you meant, and move any other file out of its folder",
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlFileError(line, f"is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    loader = (_FastNoDuplicates if fast else _NoDuplicates)(text)
    try:  # parsed once: the node tree, then the data built from it (as yaml.load does)
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = str(getattr(exc, "problem", exc))
        if "'\\t'" in problem:  # a tab where YAML wants spaces: the one fix there is
            problem += "; YAML indents with spaces only: replace the tab with spaces"
        raise YamlFileError(mark.line + 1 if mark else None, f"not valid YAML: {problem}") from None
    finally:
        loader.dispose()


def line_of(node: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (closest existing parent if absent)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            key = next((k for k, _ in node.value if k.value == part), None)
            if match is None:
                return line
            line = (key or match).start_mark.line + 1
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def loc_text(loc: Sequence[Any]) -> str:
    """``loc`` as a dotted path with [n] indexes; a mapping's bad key (pydantic's ``(..., key, "[key]")``)
    names the mapping, as the problem names the key."""
    if tuple(loc[-1:]) == ("[key]",):
        loc = loc[:-2]
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out


@functools.lru_cache(maxsize=1)
def _known_scopes() -> frozenset[str]:
    return frozenset({s for op in load_catalog() for s in op.scopes} | {"client"})


# -- finding personas ------------------------------------------------------------------------------
@dataclass
class Scan:
    """Every persona file found: the ones that load, by name, and the ones that do not."""

    personas: dict[str, PersonaSpec] = field(default_factory=dict)
    errors: list[PersonaConfigError] = field(default_factory=list)


def _listing(home: Path | None) -> tuple[tuple[str, str, int, int], ...]:
    """Every persona file, in the order they are read: (its path as found, absolute path, mtime in ns,
    size). One listing per folder and one stat per file, no path objects: what a scan is cached by."""
    out: list[tuple[str, str, int, int]] = []
    for folder in persona_dirs(home):
        try:
            with os.scandir(folder) as entries:  # one listing, no per-file path objects until a match
                names = sorted(e.name for e in entries if e.name.endswith((".yaml", ".yml")) and e.is_file())
        except (FileNotFoundError, NotADirectoryError):
            continue
        where = str(folder)
        for name in names:
            shown = os.path.join(where, name)
            found = os.stat(shown)
            out.append((shown, os.path.abspath(shown), found.st_mtime_ns, found.st_size))
    return tuple(out)


#: Scans by listing (:func:`_listing`), newest last: a run loads its persona by name, and reading
#: and validating every file again for each run cost about a third of building its context. A file
#: edited, added or removed, or another ``home``, is another listing; a scan with a broken file is
#: never kept (it may load once something outside the file changes, e.g. its prompt is added).
_SCANS: dict[tuple[tuple[str, str, int, int], ...], Scan] = {}
_SCANS_KEPT = 8


def scan_personas(home: Path | None = None) -> Scan:
    """Load every persona file; a broken file is reported, never hides the others. A broken file named
    after a shipped persona (meant to replace it) leaves that name out: the shipped one is not run
    in its place."""
    listing = _listing(home)
    kept = _SCANS.get(listing)
    if kept is None:
        kept = _scan(listing)
        if kept.errors:
            return kept
        _SCANS[listing] = kept
        while len(_SCANS) > _SCANS_KEPT:
            _SCANS.pop(next(iter(_SCANS)))
    return Scan(dict(kept.personas), list(kept.errors))  # a caller's changes never reach the cache


def _scan(listing: tuple[tuple[str, str, int, int], ...]) -> Scan:
    scan = Scan()
    where: dict[str, Path] = {}
    for shown, absolute, mtime, size in listing:
        path = Path(shown)
        try:
            spec = _load_cached(absolute, (mtime, size))
        except PersonaConfigError as exc:
            scan.errors.append(exc)
            replaced = where.get(path.stem)
            if replaced is not None and replaced.parent == BUILTIN_DIR and path.parent != BUILTIN_DIR:
                # it was to replace the shipped persona of its name: running the shipped one instead would
                # drop what the file changes (an approval it requires, a setting) unseen, in `personas serve`
                # too; neither runs until the file loads (`load_persona` raises its error)
                del scan.personas[path.stem]
            continue
        first = where.get(spec.name)
        replaces_shipped = first is not None and first.parent == BUILTIN_DIR and path.stem == spec.name
        if first is not None and not replaces_shipped:
            how = f"; to replace the shipped one, name the file {spec.name}.yaml" if first.parent == BUILTIN_DIR else ""
            scan.errors.append(
                PersonaConfigError(
                    path,
                    1,
                    "name",
                    f"{spec.name!r} is already the name of {first}; give this persona another name{how}",
                )
            )
            continue
        where[spec.name] = path
        scan.personas[spec.name] = spec
    return scan


def list_personas(home: Path | None = None) -> list[PersonaSpec]:
    """Every persona that loads (see :func:`scan_personas` for the files that did not)."""
    return list(scan_personas(home).personas.values())


def load_persona(name_or_path: str, home: Path | None = None) -> PersonaSpec:
    """Load a persona by name (``lead-magnet-sequencer``) or by path to its YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return _load_file(candidate)
    scan = scan_personas(home)
    if name_or_path in scan.personas:
        return scan.personas[name_or_path]
    broken = broken_file(scan.errors, name_or_path)
    if broken is not None:
        raise broken
    hint = difflib.get_close_matches(name_or_path, list(scan.personas), n=3)
    raise PersonaConfigError(
        name_or_path,
        None,
        "",
        "no such persona"
        + (f"; did you mean {', '.join(hint)}?" if hint else ".")
        + f" Known personas: {', '.join(sorted(scan.personas)) or 'none'} (see `personas list`).",
    )


def _load_file(path: Path) -> PersonaSpec:
    """A persona file, validated once per version of the file (cached by path, modification time and size)."""
    name = os.path.abspath(path)
    found = os.stat(name)
    return _load_cached(name, (found.st_mtime_ns, found.st_size))


@functools.lru_cache(maxsize=64)
def _load_cached(path: str, stamp: tuple[int, int]) -> PersonaSpec:
    """``path`` validated, for one version of it (``stamp``: its mtime in ns and size)."""
    return _validate(Path(path))


# -- validating one file ---------------------------------------------------------------------------
#: What each required key looks like, for the message that says it is missing.
_EXAMPLES = {
    "name": "my-persona",
    "description": "What it does, in a sentence.",
    "graph": f"one of {', '.join(GRAPHS)}",
    "prompt": "a file of prompts/, e.g. klaviyo_assistant.v1.md",
    "scopes": "[profiles:read, lists:read]",
}


def value_problem(err: Any) -> str:
    """One validation error as what to write instead: pydantic's own words name its classes
    ("a valid dictionary or instance of ToolSelection") and say nothing of YAML. Persona files and
    eval case files alike."""
    given, kind = err.get("input"), err["type"]
    shown = "nothing" if given is None else f"a {type(given).__name__}" if isinstance(given, list | dict) \
        else repr(given)
    if kind == "missing":
        return "is required"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping (indented `key: value` lines under it), not {shown}"
    if kind == "list_type":
        return f"must be a list (indented `- item` lines under it, or [a, b]), not {shown}"
    if kind == "string_type":
        key = tuple(err["loc"][-1:]) == ("[key]",)
        said = f"has a key YAML read as {shown}, not text" if key else f"must be text, not {shown}"
        return said + ("; give a value after the colon" if given is None else _quote_it(given))
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing", "int_from_float"):
        whole = "a whole number (e.g. 30)" if kind.startswith("int") else "a number (e.g. 0.05)"
        return f"must be {whole}, not {shown}" + ("; give a value after the colon" if given is None else "")
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false, not {shown}"
    return str(err["msg"]).removeprefix("Value error, ")


def _quote_it(given: Any) -> str:
    """The fix for a scalar YAML read as other than the text it looks like: quote it."""
    if isinstance(given, bool):
        return '; YAML reads an unquoted yes, no, on, off, true or false as true or false: quote it ("Yes", not Yes)'
    if isinstance(given, int | float):
        return f'; YAML reads it as a number: quote it ("{given}", not {given})'
    return ""


_NAME_LINE = re.compile(rb"""^name:[ \t]*["']?([A-Za-z0-9_.-]+)""", re.M)


def _declared_name(path: Path) -> str | None:
    """The ``name:`` a persona file gives, read as text from its start: known even when the file is not
    valid YAML or too big to parse."""
    try:
        with path.open("rb") as file:
            found = _NAME_LINE.search(file.read(64 * 1024).removeprefix(b"\xef\xbb\xbf"))
    except OSError:
        return None
    return found.group(1).decode() if found else None


def _validate(path: Path) -> PersonaSpec:
    """``path`` as a persona; a :class:`PersonaConfigError` carries the name the file gives."""
    try:
        return _validate_file(path)
    except PersonaConfigError as exc:
        exc.persona = _declared_name(path)
        raise


def _validate_file(path: Path) -> PersonaSpec:
    try:
        data, root = read_yaml(path)
    except YamlFileError as exc:
        raise PersonaConfigError(path, exc.line, "", exc.problem) from None
    if not isinstance(data, dict):
        raise PersonaConfigError(path, 1, "", "a persona file is a mapping of keys (name, graph, prompt, ...)")
    try:
        spec = PersonaSpec.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = [p for p in err["loc"] if p != "source"]
        msg = value_problem(err)
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(k for k in PersonaSpec.model_fields if k != "source")
            msg = f"unknown key; allowed keys: {allowed}"
        elif err["type"] == "missing" and len(loc) == 1 and loc[0] in _EXAMPLES:
            msg = f"is required; add it, e.g. `{loc[0]}: {_EXAMPLES[loc[0]]}`"
        raise PersonaConfigError(path, line_of(root, loc), loc_text(loc), msg) from None
    if spec.graph not in GRAPHS:
        raise PersonaConfigError(
            path, line_of(root, ["graph"]), "graph", f"unknown graph {spec.graph!r}; graphs: {', '.join(GRAPHS)}"
        )
    known = _known_scopes()
    for i, scope in enumerate(spec.scopes):
        if scope not in known:
            hint = difflib.get_close_matches(scope, sorted(known), n=1)
            raise PersonaConfigError(
                path,
                line_of(root, ["scopes", i]),
                f"scopes[{i}]",
                f"{scope!r} is not a Klaviyo scope" + (f"; did you mean {hint[0]!r}?" if hint else ""),
            )
    prompt = prompts_dir() / spec.prompt
    if not prompt.is_file():
        available = ", ".join(sorted(p.name for p in prompts_dir().glob("*.md")))
        raise PersonaConfigError(
            path,
            line_of(root, ["prompt"]),
            "prompt",
            f"no prompt file {spec.prompt!r} in prompts/; available: {available}",
        )
    _check_tools(spec, path, root)
    _check_settings(spec, path, root)
    _check_graph_operations(spec, path, root)
    return spec


def _check_tools(spec: PersonaSpec, path: Path, root: yaml.Node | None) -> None:
    kit = KlaviyoToolkit(scopes=spec.scopes)
    for key in ("include", "exclude"):
        for i, name in enumerate(getattr(spec.tools, key)):
            try:
                op = kit.catalog.get(name)
            except UnknownOperationError as exc:
                raise PersonaConfigError(
                    path, line_of(root, ["tools", key, i]), f"tools.{key}[{i}]", str(exc)
                ) from None
            missing = kit.missing_scopes(op)
            if key == "include" and missing:
                raise PersonaConfigError(
                    path,
                    line_of(root, ["tools", key, i]),
                    f"tools.{key}[{i}]",
                    f"{name} needs scope(s) {', '.join(missing)}, which this persona does not have; "
                    "add them to scopes or drop the tool",
                )
    for i, name in enumerate(spec.approval.also):
        try:
            kit.catalog.get(name)
        except UnknownOperationError as exc:
            where = line_of(root, ["approval", "also", i])
            raise PersonaConfigError(path, where, f"approval.also[{i}]", str(exc)) from None
    _check_relax(spec, kit, path, root)
    known_tags = {op.tag.lower() for op in kit.catalog}
    for i, tag in enumerate(spec.tools.tags):
        if tag.lower() not in known_tags:
            raise PersonaConfigError(
                path,
                line_of(root, ["tools", "tags", i]),
                f"tools.tags[{i}]",
                f"unknown tag {tag!r}; known: {', '.join(sorted({op.tag for op in kit.catalog}))}",
            )
    count = len(select_operations(kit, spec.tools))
    if count > MAX_TOOLS_PER_REQUEST:
        raise PersonaConfigError(
            path,
            line_of(root, ["tools"]),
            "tools",
            f"selects {count} tools, over {MAX_TOOLS_PER_REQUEST}; narrow it and set search: true",
        )


def _check_relax(spec: PersonaSpec, kit: KlaviyoToolkit, path: Path, root: yaml.Node | None) -> None:
    """Each operation in ``approval.relax`` exists, is one the persona's graph's own code calls (a
    model's calls always stop: in a chat, every call is the model's), and waives only effects a call
    of it can have."""
    for name, waived in spec.approval.relax.items():
        where, field = line_of(root, ["approval", "relax", name]), f"approval.relax.{name}"
        try:
            op = kit.catalog.get(name)
        except UnknownOperationError as exc:
            raise PersonaConfigError(path, where, field, str(exc)) from None
        if op.operation_id not in graph_spec(spec.graph).operations:
            raise PersonaConfigError(
                path, where, field,
                f"the {spec.graph} graph's own code never calls {name}: a relax waives effects only for the calls "
                "a graph's code makes (and accounts for), and a model's calls always stop; remove it",
            )  # fmt: skip
        can = [e.value for e in Effect if e in possible_effects(op) and e not in (Effect.READ, Effect.WRITE)]
        can += ["write"] if spec.approval.mode == "writes" else []
        for effect in waived:
            if effect not in can:
                raise PersonaConfigError(
                    path, where, field, f"{name} never has effect {effect!r}; it can have: {', '.join(can) or 'none'}"
                )


def _check_settings(spec: PersonaSpec, path: Path, root: yaml.Node | None) -> None:
    model = graph_spec(spec.graph).settings
    try:
        model.model_validate(spec.settings)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ["settings", *err["loc"]]
        msg = value_problem(err)
        if err["type"] == "extra_forbidden":
            msg = f"unknown setting; allowed: {', '.join(model.model_fields)}"
        raise PersonaConfigError(path, line_of(root, loc), loc_text(loc), msg) from None


def _check_graph_operations(spec: PersonaSpec, path: Path, root: yaml.Node | None) -> None:
    """The graph's own calls must be within the persona's scopes and tools."""
    graph = graph_spec(spec.graph)
    if not graph.operations:
        return
    kit = KlaviyoToolkit(scopes=spec.scopes)
    scopes_missing: dict[str, list[str]] = {}
    for name in graph.operations:
        missing = kit.missing_scopes(kit.catalog.get(name))
        if missing:
            scopes_missing[name] = missing
    if scopes_missing:
        needed = sorted({s for v in scopes_missing.values() for s in v})
        raise PersonaConfigError(
            path,
            line_of(root, ["scopes"]),
            "scopes",
            f"the {spec.graph} graph calls {', '.join(sorted(scopes_missing))}, which need(s) "
            f"{', '.join(needed)}; add {'it' if len(needed) == 1 else 'them'} to scopes",
        )
    if spec.tools.include or spec.tools.tags:
        bound = {op.operation_id for op in select_operations(kit, spec.tools)}
        absent = [name for name in graph.operations if kit.catalog.resolve(name) not in bound]
        if absent:
            raise PersonaConfigError(
                path,
                line_of(root, ["tools"]),
                "tools",
                f"the {spec.graph} graph calls {', '.join(absent)}, which the persona's tools leave out; "
                "add them to tools.include",
            )
