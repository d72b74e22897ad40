"""Lead-magnet sequencer graph (see ``graph.py``)."""

from .graph import LeadState, build_graph, unique_id_for
from .inputs import InputError, Submission, parse_submission
from .settings import Settings

graph = build_graph()


def make_input(payload: dict) -> dict:  # type: ignore[type-arg]
    """CLI input -> state: the event document (or webhook body) goes under ``input``."""
    return payload if set(payload) == {"input"} else {"input": payload}


__all__ = [
    "InputError",
    "LeadState",
    "Settings",
    "Submission",
    "build_graph",
    "graph",
    "parse_submission",
    "unique_id_for",
]
