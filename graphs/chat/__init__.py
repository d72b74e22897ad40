"""Chat graph: any persona in conversation, with the tools its scopes allow (see ``graph.py``;
LangGraph and LangChain load when the graph is built)."""

from collections.abc import Mapping
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


def _render(state: Mapping[str, Any]) -> str:
    """``personas run`` of a chat: the last turn's answer (secrets masked), and the tools it loaded.
    The default view leaves the messages out, so a run printed no answer at all."""
    from klaviyo_toolkit.redact import clip, redact_text

    def field(message: Any, name: str) -> Any:
        return message.get(name) if isinstance(message, Mapping) else getattr(message, name, None)

    answer = ""
    for message in reversed(state.get("messages") or []):
        if field(message, "type") == "human":
            break  # an earlier turn's answer is not this run's
        content = field(message, "content")
        if field(message, "type") == "ai" and content:
            answer = content if isinstance(content, str) else str(content)
            break
    lines = [f"answer: {clip(redact_text(answer), 4000)}" if answer.strip() else "answer: (none yet)"]
    if state.get("loaded_tools"):
        lines.append("tools loaded: " + ", ".join(state["loaded_tools"]))
    return "\n".join(lines)


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
    render=_render,
    recursion_limit=100,
    conversation=True,  # a thread is a conversation: each message goes on with it
)

__all__ = ["SPEC", "ChatInput", "ChatState", "Settings", "bound_tools", "build_graph", "graph"]

lazy_package(__name__, {"ChatState": ".graph", "bound_tools": ".graph"})
