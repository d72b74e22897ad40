"""The graphs as LangGraph Server (``langgraph dev``, LangGraph Platform) serves them.

The server cannot build a :class:`PersonaContext` (a scoped toolkit, a client, the model, the audit
log): it can only pass JSON. So ``langgraph.json`` points at the graphs here: each is the persona's
graph wrapped in one node that builds the context from the run's configuration, then runs the graph
with it as a subgraph (the server's checkpointer and interrupts work through it, so approvals pause
and resume as usual)::

    POST /threads/{thread}/runs/wait
    {"assistant_id": "lead_magnet", "input": {"input": <event>},
     "config": {"configurable": {"persona": "lead-magnet-sequencer", "dry_run": false}}}

``configurable.persona`` names the persona (default: the first persona of the graph); Klaviyo, the
model and the state folder come from the server's environment (``KLAVIYO_API_KEY``,
``KLAVIYO_BASE_URL``, ``OPENAI_API_KEY``, ``PERSONAS_HOME``, ... in ``.env``), read once, when the
first run starts. The context travels as LangGraph's run context, never in state: no key or token
reaches the server's checkpoints.
"""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.runnables import RunnableConfig

from graphs import GRAPHS, build, graph_spec
from personas.kernel.config import Config
from personas.kernel.errors import UsageProblem
from personas.runtime.context import build_context
from personas.runtime.loader import scan_personas
from personas.runtime.saves import inline_saves

__all__ = ["campaign_report", "chat", "lead_magnet", "segment_sync", "served_graph"]

_CONFIG: list[Config] = []
_CONFIG_LOCK = threading.Lock()


def _config() -> Config:
    with _CONFIG_LOCK:
        if not _CONFIG:
            _CONFIG.append(Config.from_env())
        return _CONFIG[0]


def _persona_for(graph: str, configurable: dict[str, Any], config: Config) -> Any:
    found = scan_personas(config.home).personas
    name = configurable.get("persona")
    if name:
        if name not in found:
            raise UsageProblem(f"configurable.persona {name!r} is not a persona; personas: {', '.join(sorted(found))}")
        spec = found[name]
        if spec.graph != graph:
            raise UsageProblem(f"configurable.persona {name!r} runs the graph {spec.graph!r}, not {graph!r}")
        return spec
    for spec in found.values():
        if spec.graph == graph:
            return spec
    raise UsageProblem(f"no persona uses the graph {graph!r}; name one in configurable.persona")


def _user(configurable: dict[str, Any], settings: Config) -> str:
    """Who the audit log files a served run under: the identity LangGraph Server authenticated
    (``langgraph_auth_user``, set by a custom auth handler), else the server's own user. A ``user``
    a client merely sends is anyone's to choose, so it is kept beside it as a claim, never as the user."""
    authenticated = configurable.get("langgraph_auth_user")
    identity = getattr(authenticated, "identity", None)
    if identity is None and isinstance(authenticated, dict):
        identity = authenticated.get("identity")
    user = str(identity) if identity else settings.user
    claimed = configurable.get("user")
    return f"{user} (claimed: {claimed})" if claimed and str(claimed) != user else user


def served_graph(name: str) -> Any:
    """Graph ``name`` for LangGraph Server: its persona's context built per run (module docstring)."""
    from langgraph.graph import START, StateGraph

    inner = build(name)
    state = inner.builder.state_schema

    def run_persona(values: dict[str, Any], config: RunnableConfig) -> Any:
        configurable = dict(config.get("configurable") or {})
        settings = _config()
        spec = _persona_for(name, configurable, settings)
        context = build_context(
            spec,
            config=settings,
            thread_id=str(configurable.get("thread_id") or ""),
            dry_run=bool(configurable["dry_run"]) if "dry_run" in configurable else None,
            user=_user(configurable, settings),
        )
        with inline_saves():
            return inner.invoke(values, config, context=context, durability="sync")

    outer = StateGraph(state)
    outer.add_node("persona", run_persona)  # type: ignore[call-overload]
    outer.add_edge(START, "persona")
    graph = outer.compile(name=name)
    graph_spec(name)  # an unknown name fails here, at import
    return graph


lead_magnet = served_graph("lead_magnet")
segment_sync = served_graph("segment_sync")
campaign_report = served_graph("campaign_report")
chat = served_graph("chat")

assert set(GRAPHS) == {"lead_magnet", "segment_sync", "campaign_report", "chat"}, "serve every graph here"
