"""What every case runs on, checked before any case runs: its persona exists (or a persona uses its graph).

A persona misspelled in ``suite.yaml`` (or a case file) is a mistake in the suite, not a verdict on a
case: ``personas eval`` refuses it as a usage error (exit 2) naming the file, the line and the fix,
the same whether the whole suite runs or one ``--case``; before this check the whole run stopped
with an error naming no file and ``--case`` reported an error per case (exit 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from personas.kernel.config import Config
from personas.runtime.loader import PersonaConfigError, YamlFileError, line_of, list_personas, load_persona, read_yaml

from .case import CaseFileError

__all__ = ["check_targets"]


def check_targets(suite: Any, case_ids: list[str] | None = None) -> None:
    """Raise :class:`CaseFileError` for the first case (of ``case_ids``, default all) whose persona or
    graph no persona answers to, pointing at the file that names it (the case's, else ``suite.yaml``)."""
    home = Config.from_env().home
    seen: dict[tuple[str | None, str | None], str | None] = {}
    for case in suite.cases:
        if case_ids is not None and case.id not in case_ids:
            continue
        key = (case.persona, case.graph)
        if key not in seen:
            seen[key] = _problem(case.persona, case.graph, home)
        problem = seen[key]
        if problem is None:
            continue
        field = "persona" if case.persona else "graph"
        file = suite.case_file(case)
        line = _line(file, field)
        if line is None:  # not in the case file: the suite's default
            file = Path(suite.path) / "suite.yaml"
            line = _line(file, field)
        raise CaseFileError(file, line, field, problem)


def _problem(persona: str | None, graph: str | None, home: Path) -> str | None:
    """Why no persona answers to ``persona`` (or ``graph``), with the fix; None when one does."""
    if persona:
        try:
            load_persona(persona, home=home)
        except PersonaConfigError as exc:
            if exc.path == persona:  # "no such persona; did you mean ...? Known personas: ..."
                return f"{persona!r}: {exc.problem}"
            return f"the persona {persona!r} does not load ({exc}); fix its file"
        return None
    graphs = sorted({spec.graph for spec in list_personas(home)})
    if graph in graphs:
        return None
    return f"no persona uses the graph {graph!r} (graphs in use: {', '.join(graphs) or 'none'}); name one of them"


def _line(file: Path, key: str) -> int | None:
    """The line of the top-level ``key`` in ``file``, or None when the file does not give it."""
    try:
        data, root = read_yaml(file, fast=True)
    except YamlFileError:
        return None
    return line_of(root, [key]) if isinstance(data, dict) and key in data else None
