"""One machine-readable line per figure a benchmark holds to a target, for ``python3 dev.py bench``.

A benchmark prints its own table for people, and for each target it checks one line
``BENCH {json}`` that ``run_all.py`` collects into the combined table (and ``benchmarks/README.md``).

Example::

    bench_line("graph overhead, SQLite", measured="8.1 ms", baseline="bare calls 5.6 ms", ratio=1.45,
               target="≤ 1.5", met=True)
"""

from __future__ import annotations

import json

__all__ = ["PREFIX", "bench_line"]

PREFIX = "BENCH "


def bench_line(what: str, *, measured: str, baseline: str, ratio: float | None, target: str, met: bool) -> None:
    """Print one combined-table row: what, measured, its baseline or limit, ratio, target, met."""
    row = {"what": what, "measured": measured, "baseline": baseline,
           "ratio": None if ratio is None else round(ratio, 3), "target": target, "met": bool(met)}
    print(PREFIX + json.dumps(row, ensure_ascii=False), flush=True)
