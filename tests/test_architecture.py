"""The layers hold: no import goes up a layer (function-local ones included), no import circles,
no hand-written module over 600 lines.

Layers, bottom to top::

    klaviyo_toolkit, prompts            the library (and prompt data)
    klaviyo_sandbox | personas.kernel   the emulator | what graphs are built on (side by side)
    graphs                              the LangGraph state machines
    personas.runtime                    loader, context building, the run driver
    evals | personas.service            suites and their runner | unattended runs (webhooks, queue, schedules)
    personas.cli                        the CLI, the REPL, the demo
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package prefix -> (layer, name); the longest prefix wins.
LAYERS: dict[str, tuple[int, str]] = {
    "klaviyo_toolkit": (0, "toolkit"),
    "prompts": (0, "prompts"),
    "klaviyo_sandbox": (1, "sandbox"),
    "personas.kernel": (1, "kernel"),
    "graphs": (2, "graphs"),
    "personas.runtime": (3, "runtime"),
    "evals": (4, "evals"),
    "personas.service": (4, "service"),
    "personas.cli": (5, "cli"),
    "personas": (6, "facade"),  # personas/__init__.py: lazy public names only
}
#: Side by side on one layer, and still not allowed to import each other.
APART = {("kernel", "sandbox"), ("sandbox", "kernel"), ("service", "evals"), ("evals", "service")}
PACKAGES = ("klaviyo_toolkit", "klaviyo_sandbox", "personas", "graphs", "evals", "prompts")
GENERATED_MARK = "GENERATED"
MAX_LINES = 600


def layer_of(module: str) -> tuple[int, str] | None:
    best = None
    for prefix, layer in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, layer)
    return best[1] if best else None


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def imports(module: str, path: Path) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, at top level) for every import in the file, function-local ones too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, node.lineno, id(node) in top
            for alias in node.names:  # `from pkg import submodule`
                yield f"{target}.{alias.name}", node.lineno, id(node) in top


def ours(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def test_no_import_goes_up_a_layer() -> None:
    problems = []
    for module, path in modules():
        here = layer_of(module)
        assert here is not None, module
        for target, line, _ in imports(module, path):
            if not ours(target):
                continue
            there = layer_of(target)
            if there is None:
                continue
            if there[0] > here[0] or (here[1], there[1]) in APART:
                problems.append(f"{path.relative_to(ROOT)}:{line}: {here[1]} imports {there[1]} ({target})")
    assert not problems, "imports that go up a layer:\n" + "\n".join(problems)


def test_the_toolkit_never_imports_the_sandbox_or_reads_personas_home() -> None:
    for module, path in modules():
        if module.startswith("klaviyo_toolkit"):
            text = path.read_text(encoding="utf-8")
            assert "PERSONAS_HOME" not in text, f"{path}: the toolkit takes explicit paths"
            assert not any(t.startswith("klaviyo_sandbox") for t, _, _ in imports(module, path)), path


def _real_modules() -> set[str]:
    return {m for m, _ in modules()}


def test_no_import_circles_between_modules() -> None:
    """Top-level imports only (what runs at import time); a circle means a piece belongs lower."""
    known = _real_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules():
        targets = set()
        for target, _, at_top in imports(module, path):
            if not at_top or not ours(target):
                continue
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                targets.add(target)
        graph[module] = targets
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_hand_written_module_over_600_lines(package: str) -> None:
    too_long = []
    for path in sorted((ROOT / package).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if GENERATED_MARK in text.splitlines()[0] if text else False:
            continue
        lines = text.count("\n")
        if lines > MAX_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not too_long, "split these by concern:\n" + "\n".join(too_long)
