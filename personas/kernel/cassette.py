"""Cassettes of model responses: record a live model once, replay it anywhere without a key.

A cassette is a readable JSON file::

    {"version": 1,
     "provenance": {"kind": "recorded", "model": "gpt-4.1-mini", "base_url": "...", "date": "..."}
                 | {"kind": "authored", "by": "...", "method": "...", "date": "..."},
     "interactions": [{"request": {...normalised...}, "response": {"content": "...", "tool_calls": [...]}}]}

Requests are matched in order on a normalised form (roles, text, tool calls and the names of the
bound tools; timestamps, dates and UUIDs masked; secrets scrubbed). A request that does not match,
a cassette with too few interactions, or one played only in part is an error that says how to
re-record it. Authored cassettes (written by hand, not by a model) say so, and reports show it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from klaviyo_toolkit.redact import redact_text

__all__ = ["Cassette", "CassetteError", "normalise_request", "scrub"]

_MASKS = [
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?\b"), "<TIME>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<DATE>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<UUID>"),
    (re.compile(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*\b"), "<WEEKDAY>"),
]


class CassetteError(Exception):
    """The cassette cannot answer this run; the message says how to re-record it."""


def scrub(text: str) -> str:
    """Secrets masked by the one redaction function (``klaviyo_toolkit.redact``)."""
    return redact_text(text)


def _mask(text: str) -> str:
    text = scrub(text)
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def _digest(tool: Any) -> str:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    schema = convert_to_openai_tool(tool, strict=True)
    text = json.dumps(schema, sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def normalise_request(messages: Sequence[BaseMessage], tools: Sequence[Any] = ()) -> dict[str, Any]:
    """The comparable form of a model request: messages, the bound tools' names, and a digest of
    each tool's schema (so a changed tool definition fails replay at once)."""
    out = []
    for msg in messages:
        item: dict[str, Any] = {"role": msg.type, "text": _mask(_content_text(msg.content))}
        if isinstance(msg, AIMessage) and msg.tool_calls:
            item["tool_calls"] = [
                {"name": c["name"], "args": json.loads(_mask(json.dumps(c["args"], sort_keys=True)))}
                for c in msg.tool_calls
            ]
        if isinstance(msg, ToolMessage):
            item["tool"] = msg.name
        out.append(item)
    names = sorted(_tool_name(t) for t in tools)
    request: dict[str, Any] = {"messages": out, "tools": names}
    if tools:
        request["tool_schemas"] = dict(sorted((_tool_name(t), _digest(t)) for t in tools))
    return request


def _tool_name(tool: Any) -> str:
    if isinstance(tool, dict):
        return str(tool.get("function", {}).get("name") or tool.get("name"))
    return str(getattr(tool, "name", tool))


def response_to_message(response: dict[str, Any], index: int) -> AIMessage:
    calls = [
        {"name": c["name"], "args": c.get("args", {}), "id": c.get("id") or f"call_{index}_{i}", "type": "tool_call"}
        for i, c in enumerate(response.get("tool_calls") or [])
    ]
    return AIMessage(content=response.get("content") or "", tool_calls=calls)


def message_to_response(message: AIMessage) -> dict[str, Any]:
    return {
        "content": scrub(_content_text(message.content)),
        "tool_calls": [{"name": c["name"], "args": c["args"], "id": c.get("id")} for c in message.tool_calls],
    }


@dataclass
class Cassette:
    """An ordered list of (request, response) pairs with where they came from."""

    path: Path
    provenance: dict[str, Any]
    interactions: list[dict[str, Any]] = field(default_factory=list)
    rerecord_hint: str = ""
    position: int = 0

    @classmethod
    def load(cls, path: str | Path, rerecord_hint: str = "") -> Cassette:
        p = Path(path)
        hint = rerecord_hint or f"re-record it with --record (cassette {p})"
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CassetteError(f"cassette {p} does not exist; {hint}") from None
        except ValueError as exc:
            raise CassetteError(f"cassette {p} is not valid JSON ({exc}); {hint}") from None
        if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
            raise CassetteError(f"cassette {p} has no 'interactions' list; {hint}")
        prov = data.get("provenance")
        if not isinstance(prov, dict) or prov.get("kind") not in ("recorded", "authored"):
            raise CassetteError(
                f"cassette {p} does not say where it came from (provenance.kind recorded|authored); {hint}"
            )
        return cls(p, prov, list(data["interactions"]), hint)

    @classmethod
    def new(cls, path: str | Path, provenance: dict[str, Any]) -> Cassette:
        return cls(Path(path), dict(provenance), [])

    def describe(self) -> str:
        p = self.provenance
        if p.get("kind") == "recorded":
            return f"recorded from {p.get('model')} at {p.get('base_url')} on {p.get('date')}"
        return f"authored by hand ({p.get('method', 'written by the maintainers')}, {p.get('date')})"

    def next_response(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.position >= len(self.interactions):
            raise CassetteError(
                f"cassette {self.path} has {len(self.interactions)} responses but the run asked for more; "
                f"the prompt or graph changed: {self.rerecord_hint}"
            )
        expected = self.interactions[self.position]["request"]
        if expected != request:
            diff = "\n".join(
                difflib.unified_diff(
                    json.dumps(expected, indent=1, sort_keys=True).splitlines(),
                    json.dumps(request, indent=1, sort_keys=True).splitlines(),
                    "cassette",
                    "this run",
                    lineterm="",
                    n=1,
                )
            )
            raise CassetteError(
                f"request {self.position + 1} does not match cassette {self.path}; {self.rerecord_hint}\n{diff[:3000]}"
            )
        response = self.interactions[self.position]["response"]
        self.position += 1
        return dict(response)

    def record(self, request: dict[str, Any], response: dict[str, Any]) -> None:
        self.interactions.append({"request": request, "response": response})
        self.position = len(self.interactions)

    def check_finished(self) -> None:
        """Raise if some recorded responses were never asked for (the run took another path)."""
        if self.position != len(self.interactions):
            raise CassetteError(
                f"cassette {self.path} was played only in part ({self.position} of {len(self.interactions)} "
                f"responses used); {self.rerecord_hint}"
            )

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"version": 1, "provenance": self.provenance, "interactions": self.interactions}
        self.path.write_text(scrub(json.dumps(body, indent=1, ensure_ascii=False)) + "\n", encoding="utf-8")
