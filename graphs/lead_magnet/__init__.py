"""Lead-magnet sequencer graph (see ``graph.py``; LangGraph loads when the graph is built)."""

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from graphs import lazy_package
from personas.kernel.graphspec import GraphSpec

from .inputs import InputError, LeadNotFound, Submission, parse_submission
from .operations import OPERATIONS
from .render import render_lead
from .settings import Settings


class LeadInput(BaseModel):
    """``personas run`` input: the form-submission event (Get Event with include=profile,metric,
    or a webhook body carrying it); checked field by field (``check_input``) before a run starts."""

    model_config = ConfigDict(extra="forbid")
    input: dict[str, Any] = Field(description="The event document or webhook body.")


def check_input(state: Mapping[str, Any]) -> None:
    """The submission read as the graph's first step reads it (``parse_submission``), so an event no
    run could use is refused (``InputError``, naming the field) before a thread is made."""
    parse_submission(state.get("input"))


def build_graph(checkpointer: Any = None) -> Any:
    """The compiled graph (``graph.build_graph``)."""
    from .graph import build_graph as build

    return build(checkpointer)


SPEC = GraphSpec(
    name="lead_magnet",
    description="Form submission -> transparent score -> sequence within policy -> first touchpoint, once.",
    settings=Settings,
    build=build_graph,
    operations=OPERATIONS,
    input_model=LeadInput,
    input_key="input",
    render=render_lead,
    trigger_setting="form_metric",
    # Every effect is idempotent (the start's unique_id; the profile set to the same values), so a
    # run is checkpointed at its input and where it stops, not after each step: see graph.py.
    durability="exit",
    check_input=check_input,
)

__all__ = [
    "SPEC",
    "InputError",
    "LeadInput",
    "LeadNotFound",
    "LeadState",
    "Settings",
    "Submission",
    "build_graph",
    "graph",
    "parse_submission",
    "unique_id_for",
]

lazy_package(__name__, {"LeadState": ".graph", "unique_id_for": ".graph"})
