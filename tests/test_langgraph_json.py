"""langgraph.json names every graph, and each entry point is a compiled graph without a checkpointer."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from graphs import GRAPHS

ROOT = Path(__file__).resolve().parents[1]


def test_every_graph_is_served_and_compiles_without_a_checkpointer() -> None:
    spec = json.loads((ROOT / "langgraph.json").read_text(encoding="utf-8"))
    assert set(spec["graphs"]) == set(GRAPHS)
    for name, target in spec["graphs"].items():
        path, attr = target.split(":")
        assert (ROOT / path).is_file(), path
        module = importlib.import_module(
            path.removeprefix("./").removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        )
        graph = getattr(module, attr)
        assert graph.checkpointer is None, name
        assert graph.get_graph().nodes, name
