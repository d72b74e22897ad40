"""The sandbox's architecture, read from its source with ``ast``: what may import what, and module size.

- outside ``klaviyo_sandbox/`` (and these tests), code uses only its public modules: the package
  itself, ``klaviyo_sandbox.domain`` and ``klaviyo_sandbox.seeding``; never a ``_``-prefixed module
  or ``klaviyo_sandbox.domains``;
- the sandbox uses only the toolkit's public API (``catalog``, ``clock``, ``filters``, ``ratelimit``,
  ``client``, and only names in their ``__all__``), so its rules cannot share a bug with the client's;
- inside the package, imports form layers: the core never imports ``domains``, the facade (``_app``)
  or ``seeding``; no module imports another of the package inside a function; the import graph has
  no cycle (type-only imports under ``TYPE_CHECKING`` aside);
- no hand-written module is longer than 600 lines.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "klaviyo_sandbox"
PUBLIC = {"klaviyo_sandbox", "klaviyo_sandbox.domain", "klaviyo_sandbox.seeding"}
TOOLKIT_PUBLIC = {"catalog", "clock", "filters", "ratelimit", "client", "webhooks"}
#: Modules above the domains: the facade, its HTTP side and the public seeding API.
UPPER = {"klaviyo_sandbox", "klaviyo_sandbox._app", "klaviyo_sandbox._server", "klaviyo_sandbox._inspect",
         "klaviyo_sandbox.seeding"}
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        if not {".venv", ".git", "build", "node_modules"} & set(path.relative_to(REPO).parts):
            yield path


def imports(path: Path) -> Iterator[tuple[str, list[str], ast.AST, bool]]:
    """(absolute module, names imported from it, node, type-only) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only |= {id(n) for child in node.body for n in ast.walk(child)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node, id(node) in type_only
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [a.name for a in node.names]
            yield module, names, node, id(node) in type_only
            for name in names:  # ``from . import lists`` imports the module ``<package>.lists``
                yield f"{module}.{name}", [], node, id(node) in type_only


def function_level(path: Path) -> set[int]:
    """ids of import nodes inside a function body."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside |= {id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return inside


def is_module(name: str) -> bool:
    return (REPO / Path(*name.split("."))).with_suffix(".py").exists() or (REPO / Path(*name.split("."))).is_dir()


def package_modules() -> list[Path]:
    return list(python_files(PACKAGE))


def test_nothing_outside_the_sandbox_imports_its_private_modules() -> None:
    offenders = []
    for path in python_files(REPO):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith(("klaviyo_sandbox/", "tests/sandbox/")):
            continue
        for module, _names, node, _ in imports(path):
            if not module.startswith("klaviyo_sandbox") or not is_module(module):
                continue
            if module not in PUBLIC:
                offenders.append(f"{rel}:{node.lineno} imports {module}")
    assert offenders == [], "use the sandbox's public API (klaviyo_sandbox, .domain, .seeding):\n" + "\n".join(
        offenders)


def test_the_sandbox_uses_only_the_toolkits_public_api() -> None:
    offenders = []
    for path in package_modules():
        for module, names, node, _ in imports(path):
            if not module.startswith("klaviyo_toolkit"):
                continue
            parts = module.split(".")
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if len(parts) != 2 or parts[1] not in TOOLKIT_PUBLIC:
                if is_module(module) or len(parts) == 2:
                    offenders.append(f"{where} imports {module}")
                continue
            public = set(importlib.import_module(module).__all__)
            offenders += [f"{where} imports {module}.{n}, not in its __all__" for n in names if n not in public]
    assert offenders == [], "\n".join(offenders)


def test_the_core_never_imports_the_domains_the_facade_or_seeding() -> None:
    offenders = []
    for path in package_modules():
        here = module_name(path)
        if here in UPPER or here.startswith("klaviyo_sandbox.domains"):
            continue
        for module, _names, node, _ in imports(path):
            if module.startswith("klaviyo_sandbox.domains") or module in UPPER - {"klaviyo_sandbox"}:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} imports {module}")
    assert offenders == [], "\n".join(offenders)


def test_the_domains_never_import_the_facade() -> None:
    offenders = []
    for path in python_files(PACKAGE / "domains"):
        for module, _names, node, _ in imports(path):
            if module in UPPER - {"klaviyo_sandbox"}:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} imports {module}")
    assert offenders == [], "\n".join(offenders)


def test_no_function_level_imports_of_the_package() -> None:
    offenders = []
    for path in package_modules():
        inside = function_level(path)
        for module, _names, node, _ in imports(path):
            if module.startswith("klaviyo_sandbox") and id(node) in inside:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} imports {module} inside a function")
    assert offenders == [], "\n".join(offenders)


def test_the_package_imports_form_layers_without_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for path in package_modules():
        here = module_name(path)
        graph[here] = {
            m for m, names, _node, type_only in imports(path)
            if not type_only and m.startswith("klaviyo_sandbox") and is_module(m) and m != here
            and not (names and all(is_module(f"{m}.{n}") for n in names))  # ``from pkg import submodule``
        }
    graph["klaviyo_sandbox"].clear()  # the package's __init__ only re-exports; importing a submodule runs it first
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join([*stack[stack.index(dep):], dep]))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_hand_written_module_is_over_600_lines() -> None:
    sizes = {str(p.relative_to(REPO)): len(p.read_text().splitlines()) for p in package_modules()}
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}


def test_the_public_names_resolve() -> None:
    for name in PUBLIC:
        module = importlib.import_module(name)
        for attr in module.__all__:
            assert getattr(module, attr) is not None, f"{name}.{attr}"
