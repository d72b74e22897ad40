"""Import cost of the toolkit and of building every tool, against the 0.5 s target (DESIGN.md).

Each figure is timed inside a fresh interpreter (so nothing is cached in memory), repeated and
reduced to the median; interpreter start-up itself is not counted. The figures:

    (a) ``import klaviyo_toolkit``
    (b) ``from klaviyo_toolkit.tools import KlaviyoToolkit`` and building all 345 tools
    (c) ``from langchain_core.tools import StructuredTool`` alone: a dependency's import we cannot avoid
    (d) our own share of (b): (b) - (c)

Run::

    python benchmarks/toolkit_import.py              # 5 runs each, one warm-up run first
    python benchmarks/toolkit_import.py --repeat 1 --no-warmup
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass

TARGET = 0.5  # seconds, from DESIGN.md "Targets"
EXPECTED_TOOLS = 345

# Each snippet times itself with perf_counter and prints a JSON object of elapsed seconds (json is
# imported after the clock stops, so it is not counted).
SNIPPETS = {
    "a": """
import time
t0 = time.perf_counter()
import klaviyo_toolkit
total = time.perf_counter() - t0
import json
print(json.dumps({"total": total}))
""",
    "b": """
import time
t0 = time.perf_counter()
from klaviyo_toolkit.tools import KlaviyoToolkit
t1 = time.perf_counter()
tools = KlaviyoToolkit(scopes="*", api_key="pk_benchmark_0000000000").get_tools()
t2 = time.perf_counter()
assert len(tools) == EXPECTED_TOOLS, len(tools)
import json
print(json.dumps({"total": t2 - t0, "import": t1 - t0, "build": t2 - t1}))
""".replace("EXPECTED_TOOLS", str(EXPECTED_TOOLS)),
    "c": """
import time
t0 = time.perf_counter()
from langchain_core.tools import StructuredTool
total = time.perf_counter() - t0
import json
print(json.dumps({"total": total}))
""",
}


@dataclass
class Figure:
    """One measured figure: its label and the median of its runs."""

    label: str
    seconds: float
    runs: list[float]


def run_once(snippet: str) -> dict[str, float]:
    """Time a snippet in a fresh interpreter; returns what it printed."""
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"benchmark snippet failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(repeat: int, warmup: bool) -> dict[str, list[dict[str, float]]]:
    """Every snippet ``repeat`` times, interleaved so drift in machine load hits all alike."""
    if warmup:  # compiles .pyc files and warms the OS file cache; not counted
        for snippet in SNIPPETS.values():
            run_once(snippet)
    runs: dict[str, list[dict[str, float]]] = {key: [] for key in SNIPPETS}
    for _ in range(repeat):
        for key, snippet in SNIPPETS.items():
            runs[key].append(run_once(snippet))
    return runs


def figures(runs: dict[str, list[dict[str, float]]]) -> list[Figure]:
    def median(key: str, part: str = "total") -> Figure:
        values = [r[part] for r in runs[key]]
        return Figure("", statistics.median(values), values)

    a, b, c = median("a"), median("b"), median("c")
    b_import, b_build = median("b", "import"), median("b", "build")
    d = Figure("", max(0.0, b.seconds - c.seconds), [])
    a.label = "(a) import klaviyo_toolkit"
    b.label = f"(b) import tools + build all {EXPECTED_TOOLS} tools"
    b_import.label = "    of which: import klaviyo_toolkit.tools"
    b_build.label = f"    of which: build {EXPECTED_TOOLS} tools"
    c.label = "(c) import langchain_core.tools (baseline)"
    d.label = "(d) our own share: (b) - (c)"
    return [a, b, b_import, b_build, c, d]


def render(rows: list[Figure], repeat: int) -> str:
    lines = [
        f"Toolkit import benchmark: median of {repeat} fresh interpreter(s) per figure; target {TARGET} s",
        "",
        f"{'figure':<48} {'seconds':>9} {'vs target':>10}",
        f"{'-' * 48} {'-' * 9} {'-' * 10}",
    ]
    for row in rows:
        lines.append(f"{row.label:<48} {row.seconds:>9.3f} {row.seconds / TARGET:>9.2f}x")
    return "\n".join(lines)


def verdict(rows: list[Figure]) -> str:
    total = next(r for r in rows if r.label.startswith("(b)"))
    ours = next(r for r in rows if r.label.startswith("(d)"))
    baseline = next(r for r in rows if r.label.startswith("(c)"))
    ok_total = total.seconds < TARGET
    ok_ours = ours.seconds < TARGET
    lines = [
        f"Target (< {TARGET} s to import the toolkit and build every tool), all included: "
        + ("MET" if ok_total else "NOT MET")
        + f" ({total.seconds:.3f} s, {total.seconds / TARGET:.2f}x).",
        "Our own share, without langchain_core's import: "
        + ("MET" if ok_ours else "NOT MET")
        + f" ({ours.seconds:.3f} s, {ours.seconds / TARGET:.2f}x).",
    ]
    if not ok_total and ok_ours:
        lines.append(
            f"The gap is langchain_core's own import ({baseline.seconds:.3f} s, "
            f"{baseline.seconds / TARGET:.2f}x the target on its own), which any LangChain tool pays."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="fresh interpreters per figure (median taken)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the uncounted warm-up run")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    rows = figures(measure(args.repeat, warmup=not args.no_warmup))
    print(render(rows, args.repeat))
    print()
    print(verdict(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
