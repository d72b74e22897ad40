"""Tool choice at scale, for the chat persona: ``find_tools`` against binding every allowed tool.

``klaviyo-assistant`` binds 15 tools at the start plus ``find_tools``/``describe_tool`` (``tools.search:
true``), which load more within its scopes when a request needs them. The alternative is to bind
every tool its scopes allow (capped at 128, OpenAI's limit per request) and never search. Over the
chat eval suite (every case, replayed from its cassette, which must pass), for each way:

- **tokens per model request**: the tool definitions bound to that request (strict OpenAI function
  definitions as JSON) plus its messages (text, tool calls and results), in o200k_base tokens (see
  ``_tokens.py``); mean, median and largest, and the total per task;
- **calls per task**: model requests, and tool calls the model made.

With ``find_tools`` these are measured: the requests the cassettes replay. With every tool bound
they are derived from the same conversations, as no live model is reachable here: the model would
not search, so each turn that only called ``find_tools``/``describe_tool`` (and its results) drops
out, every other turn stays as it was, and each remaining request carries all the allowed tools.

Run::

    python benchmarks/tool_choice.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import bench_line
from _tokens import METHOD, count

PERSONA = "klaviyo-assistant"
SEARCH = {"find_tools", "describe_tool"}
MAX_TOOLS = 128
MESSAGE_OVERHEAD = 4  # tokens OpenAI's chat format adds per message (role and separators)


@dataclass
class Way:
    """One way of binding tools: its requests' token counts and its calls, per task."""

    name: str
    tools_per_request: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    per_task_tokens: list[int] = field(default_factory=list)
    per_task_requests: list[int] = field(default_factory=list)
    per_task_calls: list[int] = field(default_factory=list)


def message_tokens(messages: list[dict[str, Any]]) -> int:
    total = 0
    for m in messages:
        total += MESSAGE_OVERHEAD + count(m.get("text") or "")
        for call in m.get("tool_calls") or []:
            total += count(call["name"]) + count(json.dumps(call.get("args") or {}, separators=(",", ":")))
    return total


def without_search(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as it would be had the model never searched."""
    out = []
    for m in messages:
        if m.get("tool") in SEARCH:
            continue
        calls = [c for c in m.get("tool_calls") or [] if c["name"] not in SEARCH]
        if m.get("tool_calls") and not calls and not m.get("text"):
            continue
        out.append({**m, "tool_calls": calls} if m.get("tool_calls") else m)
    return out


def main() -> int:
    os.environ.setdefault("PERSONAS_HOME", tempfile.mkdtemp(prefix="bench-tool-choice-"))
    os.environ.pop("OPENAI_API_KEY", None)
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from evals.case import load_suite
    from evals.runner import run_suite
    from graphs.chat.graph import search_schemas
    from klaviyo_toolkit.tools import KlaviyoToolkit
    from personas.runtime.loader import load_persona

    spec = load_persona(PERSONA)
    kit = KlaviyoToolkit(scopes=spec.scopes)
    schema_tokens: dict[str, int] = {
        s["function"]["name"]: count(json.dumps(s, separators=(",", ":"))) for s in search_schemas()
    }

    def tool_tokens(name: str) -> int:
        if name not in schema_tokens:
            schema_tokens[name] = count(json.dumps(convert_to_openai_tool(kit.tool(name), strict=True),
                                                   separators=(",", ":")))
        return schema_tokens[name]

    allowed = [op.operation_id for op in kit.operations()]
    first = [n for n in spec.tools.include if n in allowed]
    every = (first + [n for n in allowed if n not in first])[:MAX_TOOLS]
    every_tokens = sum(tool_tokens(n) for n in every)

    suite = load_suite("chat")
    result = run_suite(suite)
    failed = [r.case.id for r in result.results if not r.passed]
    search, bound = Way(f"find_tools ({len(spec.tools.include)} tools first, more on demand)"), \
        Way(f"every allowed tool bound ({len(every)} of {len(allowed)}, cap {MAX_TOOLS})")
    for r in result.results:
        outcome = r.outcome
        if outcome is None:
            continue
        requests, turns = outcome.model_requests, outcome.model_turns
        task_a = task_b = 0
        calls_a = sum(len(t["tool_calls"]) for t in turns)
        calls_b = sum(1 for t in turns for c in t["tool_calls"] if c["name"] not in SEARCH)
        kept = 0
        for i, request in enumerate(requests):
            a = sum(tool_tokens(n) for n in request["tools"]) + message_tokens(request["messages"])
            search.tools_per_request.append(len(request["tools"]))
            search.tokens.append(a)
            task_a += a
            turn = turns[i] if i < len(turns) else {"tool_calls": []}
            names = [c["name"] for c in turn["tool_calls"]]
            if names and all(n in SEARCH for n in names):
                continue  # with every tool bound, this turn (only a search) never happens
            b = every_tokens + message_tokens(without_search(request["messages"]))
            bound.tools_per_request.append(len(every))
            bound.tokens.append(b)
            task_b += b
            kept += 1
        search.per_task_tokens.append(task_a)
        search.per_task_requests.append(len(requests))
        search.per_task_calls.append(calls_a)
        bound.per_task_tokens.append(task_b)
        bound.per_task_requests.append(kept)
        bound.per_task_calls.append(calls_b)
    print(render(search, bound, len(result.results), failed))
    return 0


def render(a: Way, b: Way, cases: int, failed: list[str]) -> str:
    def row(w: Way) -> str:
        mean = statistics.mean
        return (f"{w.name:<48} {mean(w.tools_per_request):>6.1f} {mean(w.tokens):>9,.0f} "
                f"{statistics.median(w.tokens):>9,.0f} {max(w.tokens):>9,} {mean(w.per_task_requests):>9.2f} "
                f"{mean(w.per_task_calls):>8.2f} {mean(w.per_task_tokens):>11,.0f}")

    lines = [f"Tool choice for {PERSONA} over the chat eval suite ({cases} cases, replayed; tokens: {METHOD})",
             "" if not failed else f"WARNING: cases that did not pass (their figures are still counted): {failed}",
             f"{'binding':<48} {'tools':>6} {'tok/req':>9} {'median':>9} {'largest':>9} {'req/task':>9} "
             f"{'calls/t':>8} {'tokens/task':>11}",
             f"{'-' * 48} {'-' * 6} {'-' * 9} {'-' * 9} {'-' * 9} {'-' * 9} {'-' * 8} {'-' * 11}",
             row(a), row(b), ""]
    per_req = statistics.mean(a.tokens) / statistics.mean(b.tokens)
    per_task = statistics.mean(a.per_task_tokens) / statistics.mean(b.per_task_tokens)
    lines.append(f"find_tools / every tool: tokens per request {per_req:.2f}, tokens per task {per_task:.2f}, "
                 f"requests per task {statistics.mean(a.per_task_requests) / statistics.mean(b.per_task_requests):.2f}")
    lines.append("(every tool bound is derived from the same conversations without their search turns: see the "
                 "module docstring)")
    bench_line("chat tool choice: tokens per task, find_tools", measured=f"{statistics.mean(a.per_task_tokens):,.0f}",
               baseline=f"every tool bound {statistics.mean(b.per_task_tokens):,.0f}", ratio=per_task,
               target="< 1", met=per_task < 1 and not failed)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
