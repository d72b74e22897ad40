"""Lead-magnet sequencer graph (see ``graph.py``)."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from personas.kernel.graphspec import GraphSpec

from .graph import OPERATIONS, LeadState, build_graph, unique_id_for
from .inputs import InputError, Submission, parse_submission
from .render import render_lead
from .settings import Settings


class LeadInput(BaseModel):
    """``personas run`` input: the form-submission event (Get Event with include=profile,metric,
    or a webhook body carrying it); checked field by field by the graph's first step."""

    model_config = ConfigDict(extra="forbid")
    input: dict[str, Any] = Field(description="The event document or webhook body.")


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
)

graph = build_graph()

__all__ = [
    "SPEC",
    "InputError",
    "LeadInput",
    "LeadState",
    "Settings",
    "Submission",
    "build_graph",
    "graph",
    "parse_submission",
    "unique_id_for",
]
