"""Tool-schema tokens per model request: each persona's toolset against all 345 tools (target ≤ 0.05).

What is counted is exactly what the model receives: the OpenAI function definitions (strict) that
``personas tools schema --persona P`` prints, serialised as JSON, in tokens of o200k_base (the
GPT-4o / GPT-4.1 tokenizer; see ``_tokens.py`` for how it works offline). Characters / 4, OpenAI's
rule of thumb, is shown beside it.

Run::

    python benchmarks/tool_schema_tokens.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import bench_line
from _tokens import METHOD, count
from langchain_core.utils.function_calling import convert_to_openai_tool

from klaviyo_toolkit.tools import KlaviyoToolkit
from personas.kernel.context import select_tools
from personas.runtime.loader import list_personas

TARGET = 0.05


def measure(tools: list) -> tuple[int, int, int]:
    text = json.dumps([convert_to_openai_tool(t, strict=True) for t in tools], separators=(",", ":"))
    return len(tools), len(text) // 4, count(text)


def main() -> int:
    all_count, all_chars, all_pieces = measure(KlaviyoToolkit(scopes="*").get_tools())
    rows = [("all stable tools", all_count, all_chars, all_pieces, 1.0, 1.0)]
    worst = 0.0
    for spec in list_personas():
        tools = select_tools(KlaviyoToolkit(scopes=spec.scopes), spec.tools)
        if spec.tools.search:  # what the chat graph binds besides: find_tools and describe_tool
            from graphs.chat.graph import search_schemas

            tools = [*tools, *search_schemas()]
        count, chars, pieces = measure(tools)
        ratio_chars, ratio_pieces = chars / all_chars, pieces / all_pieces
        worst = max(worst, ratio_chars, ratio_pieces)
        rows.append((spec.name, count, chars, pieces, ratio_chars, ratio_pieces))
    print(f"Tokens: {METHOD}")
    print(f"{'toolset':28} {'tools':>6} {'tokens≈chars/4':>15} {'tokens':>14} {'ratio':>7} {'ratio':>7}")
    for name, count, chars, pieces, rc, rp in rows:
        print(f"{name:28} {count:6d} {chars:15,d} {pieces:14,d} {rc:7.3f} {rp:7.3f}")
    verdict = "met" if worst <= TARGET else "NOT met"
    print(f"\nworst persona ratio {worst:.3f} vs target ≤ {TARGET}: {verdict}")
    bench_line("tool-schema tokens per request, worst persona", measured=f"{worst:.3f} of all tools",
               baseline=f"all 345 tools {all_pieces:,} tokens", ratio=worst / TARGET, target=f"≤ {TARGET}",
               met=worst <= TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
