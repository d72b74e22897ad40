"""Load and validate persona YAML files; every problem names the file and the line.

Personas live in ``personas/definitions/`` (shipped) and ``$PERSONAS_HOME/personas/`` (yours; a
file there with the same name overrides a shipped one). Validation covers YAML syntax, unknown
keys, scopes Klaviyo does not have, tools that do not exist or fall outside the scopes, a missing
prompt file, more than 128 tools, and the graph's own settings.

Example::

    spec = load_persona("lead-magnet-sequencer")
    kit = persona_toolkit(spec, client)          # KlaviyoToolkit granted exactly spec.scopes
    tools = kit.initial_tools()
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from klaviyo_toolkit.errors import ToolkitUsageError

from .spec import PersonaSpec

__all__ = [
    "PersonaConfigError",
    "line_of",
    "list_personas",
    "load_persona",
    "loc_text",
    "persona_dirs",
    "persona_toolkit",
    "prompts_dir",
]

BUILTIN_DIR = Path(__file__).parent / "definitions"


class PersonaConfigError(ToolkitUsageError):
    """A persona file is wrong; the message is ``file:line: field: problem``."""

    def __init__(self, path: Path | str, line: int | None, field: str, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.problem = problem
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")


def prompts_dir() -> Path:
    import prompts

    return Path(prompts.__file__).parent


def persona_dirs() -> list[Path]:
    home = Path(os.environ.get("PERSONAS_HOME") or Path.home() / ".personas")
    return [BUILTIN_DIR, home / "personas"]


def _files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in persona_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                found[path.stem] = path
    return found


def list_personas() -> list[PersonaSpec]:
    """Every persona that loads (invalid ones raise: a broken persona must not hide)."""
    return [load_persona(str(path)) for path in _files().values()]


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
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out


def _known_scopes() -> set[str]:
    from klaviyo_toolkit.catalog import load_catalog

    scopes = {s for op in load_catalog() for s in op.scopes}
    return scopes | {"client"}


def _resolve_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    files = _files()
    if name_or_path in files:
        return files[name_or_path]
    hint = difflib.get_close_matches(name_or_path, list(files), n=3)
    raise PersonaConfigError(
        name_or_path,
        None,
        "",
        "no such persona"
        + (f"; did you mean {', '.join(hint)}?" if hint else ".")
        + f" Known personas: {', '.join(sorted(files)) or 'none'} (see `personas list`).",
    )


@functools.lru_cache(maxsize=64)
def _load_cached(path: str, mtime: float) -> PersonaSpec:
    return _validate(Path(path))


def load_persona(name_or_path: str) -> PersonaSpec:
    """Load a persona by name (``lead-magnet-sequencer``) or by path to its YAML file."""
    path = _resolve_path(name_or_path)
    return _load_cached(str(path), path.stat().st_mtime)


def _validate(path: Path) -> PersonaSpec:
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PersonaConfigError(
            path, mark.line + 1 if mark else None, "", f"not valid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    if not isinstance(data, dict):
        raise PersonaConfigError(path, 1, "", "a persona file is a mapping of keys (name, graph, prompt, ...)")
    try:
        spec = PersonaSpec.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = [p for p in err["loc"] if p != "source"]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(k for k in PersonaSpec.model_fields if k != "source")
            msg = f"unknown key; allowed keys: {allowed}"
        elif err["type"] == "missing":
            msg = "is required"
        raise PersonaConfigError(path, line_of(root, loc), loc_text(loc), msg) from None

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
    return spec


def _check_tools(spec: PersonaSpec, path: Path, root: yaml.Node) -> None:
    from klaviyo_toolkit.errors import UnknownOperationError
    from klaviyo_toolkit.tools import MAX_TOOLS_PER_REQUEST

    kit = persona_toolkit(spec, client=None)
    for key in ("include", "exclude"):
        for i, name in enumerate(getattr(spec.tools, key)):
            try:
                op = kit.toolkit.catalog.get(name)
            except UnknownOperationError as exc:
                raise PersonaConfigError(
                    path, line_of(root, ["tools", key, i]), f"tools.{key}[{i}]", str(exc)
                ) from None
            missing = kit.toolkit.missing_scopes(op)
            if key == "include" and missing:
                raise PersonaConfigError(
                    path,
                    line_of(root, ["tools", key, i]),
                    f"tools.{key}[{i}]",
                    f"{name} needs scope(s) {', '.join(missing)}, which this persona does not have; "
                    "add them to scopes or drop the tool",
                )
    known_tags = {op.tag.lower() for op in kit.toolkit.catalog}
    for i, tag in enumerate(spec.tools.tags):
        if tag.lower() not in known_tags:
            raise PersonaConfigError(
                path,
                line_of(root, ["tools", "tags", i]),
                f"tools.tags[{i}]",
                f"unknown tag {tag!r}; known: {', '.join(sorted({op.tag for op in kit.toolkit.catalog}))}",
            )
    count = len(kit.initial_tools())
    if count > MAX_TOOLS_PER_REQUEST:
        raise PersonaConfigError(
            path,
            line_of(root, ["tools"]),
            "tools",
            f"selects {count} tools, over {MAX_TOOLS_PER_REQUEST}; narrow it and set search: true",
        )


def _check_settings(spec: PersonaSpec, path: Path, root: yaml.Node) -> None:
    from graphs import settings_model

    model = settings_model(spec.graph)
    try:
        model.model_validate(spec.settings)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ["settings", *err["loc"]]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown setting; allowed: {', '.join(model.model_fields)}"
        raise PersonaConfigError(path, line_of(root, loc), loc_text(loc), msg) from None


@dataclass
class PersonaToolkit:
    """A persona's tools: the scoped KlaviyoToolkit and the selection bound at the start."""

    spec: PersonaSpec
    toolkit: Any  # KlaviyoToolkit

    def initial_tools(self) -> list[Any]:
        sel = self.spec.tools
        tools: dict[str, Any] = {}
        if sel.tags or (sel.read_only is not None and not sel.include):
            for tool in self.toolkit.get_tools(tags=sel.tags or None, read_only=sel.read_only, exclude=sel.exclude):
                tools[tool.name] = tool
        if sel.include:
            for tool in self.toolkit.get_tools(include=sel.include, exclude=sel.exclude):
                tools[tool.name] = tool
        return list(tools.values())


def persona_toolkit(
    spec: PersonaSpec, client: Any, *, async_client: Any = None, guards: Sequence[Any] = ()
) -> PersonaToolkit:
    """A KlaviyoToolkit granted exactly the persona's scopes, with the given guards."""
    from klaviyo_toolkit.tools import KlaviyoToolkit

    kit = KlaviyoToolkit(client, async_client, scopes=spec.scopes, guards=guards)
    return PersonaToolkit(spec, kit)
