"""What a case's run did: every HTTP call (as the tool's arguments), every model request and answer.

The runner hooks the Klaviyo client (:meth:`Observed.http`) and the model (:class:`ModelObserver`):
HTTP calls are rebuilt into the arguments the tool takes (path parameters by name, query parameters
by argument name, the JSON:API body unwrapped), and the model's tool calls join the same trajectory,
so a case can match both in the order they happened.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage

from personas.kernel.cassette import content_text, normalise_messages

__all__ = ["ModelObserver", "Observed", "call_view"]


class ModelObserver(BaseCallbackHandler):
    """Records each model response (its tool calls join the trajectory) and each model error."""

    def __init__(self, run: Observed) -> None:
        self.run = run

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        for generations in response.generations[:1]:
            for gen in generations[:1]:
                message = getattr(gen, "message", None)
                if isinstance(message, AIMessage):
                    self.run.model_turn(message)

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.run.model_errors.append(error)

    def on_chat_model_start(self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any) -> None:
        params = kwargs.get("invocation_params") or {}
        tools = params.get("tools") or []
        for batch in messages[:1]:
            # the text as sent (not masked), for `model_requests` and fencing checks
            items = normalise_messages(batch, masked=False)
            for item, message in zip(items, batch, strict=True):
                item["text"] = content_text(message.content)
            request = {"messages": items, "tools": sorted(_tool_name(t) for t in tools),
                       "tool_choice": params.get("tool_choice")}
            with self.run.lock:
                self.run.model_requests.append(request)


def _unwrap(value: Any) -> Any:
    """JSON:API envelopes -> the named fields a tool takes: ``{data: {type, id, attributes}}`` -> ``{id, ...}``."""
    if isinstance(value, Mapping) and "data" in value and set(value) <= {"data", "links", "meta"}:
        return _unwrap(value["data"])
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, Mapping) and "type" in value and set(value) <= {"type", "id", "attributes", "relationships",
                                                                          "links", "meta"}:
        out: dict[str, Any] = {"id": value["id"]} if value.get("id") is not None else {}
        for key, sub in (value.get("attributes") or {}).items():
            out[key] = _unwrap(sub) if isinstance(sub, Mapping) and "data" in sub else sub
        for key, sub in (value.get("relationships") or {}).items():
            out[key] = _unwrap(sub)
        return out
    return value


@functools.lru_cache(maxsize=1)
def _catalog() -> Any:
    from klaviyo_toolkit.catalog import load_catalog

    return load_catalog(True)


def call_view(record: Any) -> dict[str, Any]:
    """One finished HTTP call as ``{source, tool, args, status, method, path}``; args by the tool's names."""
    op = _catalog().get(record.operation_id)
    args: dict[str, Any] = {}
    template, actual = op.path.strip("/").split("/"), str(record.path).split("?")[0].strip("/").split("/")
    for part, value in zip(template, actual, strict=False):
        if part.startswith("{") and part.endswith("}"):
            args[part[1:-1]] = value
    specs = {a["wire"]: a for a in op.args if a.get("in") == "query"}
    for wire, value in (record.params or {}).items():
        spec = specs.get(wire)
        schema = ((spec or {}).get("shape") or {}).get("schema") or {}
        name = spec["name"] if spec else wire
        if schema.get("type") == "array" or (spec or {}).get("style") == "csv":
            args[name] = [v for v in str(value).split(",") if v]
        elif schema.get("type") == "integer" and str(value).lstrip("-").isdigit():
            args[name] = int(value)
        else:
            args[name] = value
    body = _unwrap(record.body) if record.body is not None else {}
    linkage = [a for a in op.args if a.get("in") == "body" and (a.get("shape") or {}).get("kind")
               == "rel"] if (op.record.get("body") or {}).get("root") == "linkage" else []
    if len(linkage) == 1 and isinstance(body, (list, Mapping)):
        # A relationship body ({data: [{type, id}, ...]}) is the one id-list argument the tool takes.
        ids = [b.get("id") for b in body] if isinstance(body, list) else body.get("id")
        args[linkage[0]["name"]] = ids
    elif isinstance(body, Mapping):
        args.update(body)
    elif body:
        args["body"] = body
    return {"source": "http", "tool": record.operation_id, "args": args, "status": record.status,
            "method": record.method, "path": record.path}


@dataclass
class Observed:
    """Everything one case's runs did: calls per run, model turns, model errors."""

    runs: list[list[dict[str, Any]]] = field(default_factory=list)
    model_turns: list[dict[str, Any]] = field(default_factory=list)
    model_errors: list[BaseException] = field(default_factory=list)
    model_requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start_run(self) -> None:
        self.runs.append([])

    def http(self, record: Any) -> None:
        view = call_view(record)
        with self.lock:
            self.runs[-1].append(view)

    def model_turn(self, message: AIMessage) -> None:
        turn = {"content": message.content if isinstance(message.content, str) else str(message.content),
                "tool_calls": [{"name": c["name"], "args": c["args"]} for c in message.tool_calls]}
        with self.lock:
            self.model_turns.append(turn)
            for call in message.tool_calls:
                self.runs[-1].append({"source": "model", "tool": call["name"], "args": dict(call["args"])})




def _tool_name(tool: Any) -> str:
    if isinstance(tool, dict):
        return str(tool.get("function", {}).get("name") or tool.get("name"))
    return str(getattr(tool, "name", tool))
