"""Segment syncer graph: make a Klaviyo list hold exactly a source's people (see ``graph.py``;
LangGraph loads when the graph is built)."""

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from graphs import lazy_package
from personas.kernel.graphspec import GraphSpec

from .operations import OPERATIONS, WRITES
from .report import PARTIAL_EXIT, exit_code, render
from .settings import Settings
from .sources import SyncInputError, parse_input, read_file


class SyncInput(BaseModel):
    """``personas run`` input: ``{"source": {...}, "target_list_id": ...}``, checked by ``check_input``
    before a run starts."""

    model_config = ConfigDict(extra="forbid")
    input: dict[str, Any] = Field(description="The sync request.")


def check_input(state: Mapping[str, Any]) -> None:
    """The request read as the graph's first step reads it (``parse_input``: keys, mode, source kind,
    the file's presence), so a request no run could use is refused (``SyncInputError``, naming the
    field) before a thread is made; names are resolved, and the file's columns read, by the run."""
    parse_input(state.get("input"))


def build_graph(checkpointer: Any = None) -> Any:
    """The compiled graph (``graph.build_graph``)."""
    from .graph import build_graph as build

    return build(checkpointer)


SPEC = GraphSpec(
    name="segment_sync",
    description="Keep a Klaviyo list in step with a file, list or segment, in the fewest calls.",
    settings=Settings,
    build=build_graph,
    operations=OPERATIONS,
    input_model=SyncInput,
    input_key="input",
    render=render,
    exit_code=exit_code,  # a partial sync exits PARTIAL_EXIT
    recursion_limit=100_000,  # one step per batch: a large sync takes many steps
    check_input=check_input,
)

__all__ = ["OPERATIONS", "PARTIAL_EXIT", "SPEC", "WRITES", "Settings", "SyncInput", "SyncInputError", "SyncState",
           "build_graph", "exit_code", "graph", "parse_input", "read_file", "render"]

lazy_package(__name__, {"SyncState": ".graph"})
