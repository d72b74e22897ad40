"""Chat graph: any persona in conversation, with the tools its scopes allow (see ``graph.py``)."""

from .graph import ChatState, Settings, bound_tools, build_graph

graph = build_graph()

__all__ = ["ChatState", "Settings", "bound_tools", "build_graph", "graph"]
