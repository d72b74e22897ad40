"""Chat graph: any persona in conversation, with the tools its scopes allow (see ``graph.py``;
LangGraph and LangChain load when the graph is built)."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from graphs import lazy_package
from personas.kernel.graphspec import GraphSpec

from .settings import Settings


class ChatInput(BaseModel):
    """``personas run`` input: ``{"message": "..."}`` (one user turn), or ``{"messages": [{role, content}]}``."""

    model_config = ConfigDict(extra="forbid")
    message: str | None = Field(None, description="What the user says.")
    messages: list[dict[str, Any]] | None = Field(None, description="Messages as {role, content} objects.")

    @model_validator(mode="after")
    def _one(self) -> "ChatInput":
        if (self.message is None) == (self.messages is None):
            raise ValueError('give "message" (text) or "messages" (a list of {role, content}), not both')
        return self


def _to_state(given: ChatInput) -> dict[str, Any]:
    from langchain_core.messages import HumanMessage

    if given.message is not None:
        return {"messages": [HumanMessage(given.message)]}
    return {"messages": list(given.messages or [])}


def build_graph(checkpointer: Any = None) -> Any:
    """The compiled graph (``graph.build_graph``)."""
    from .graph import build_graph as build

    return build(checkpointer)


SPEC = GraphSpec(
    name="chat",
    description="Open chat: the model calls the tools the persona's scopes allow, with approvals.",
    settings=Settings,
    build=build_graph,
    operations=(),  # every call is the model's, bound by the persona's tools
    input_model=ChatInput,
    to_state=_to_state,
    recursion_limit=100,
    conversation=True,  # a thread is a conversation: each message goes on with it
)

__all__ = ["SPEC", "ChatInput", "ChatState", "Settings", "bound_tools", "build_graph", "graph"]

lazy_package(__name__, {"ChatState": ".graph", "bound_tools": ".graph"})
