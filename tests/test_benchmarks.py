"""The benchmark scripts run and print their tables (timings are reported, never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_toolkit_import_benchmark_prints_every_figure_and_a_verdict() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "toolkit_import.py"), "--repeat", "1", "--no-warmup"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for label in (
        "(a) import klaviyo_toolkit",
        "(b) import tools + build all 345 tools",
        "(c) import langchain_core.tools",
        "(d) our own share",
        "(b) and (c) from the caller's call depth",
    ):
        assert label in out, out
    verdicts = re.findall(r"^\((?:b|d)\) .*\s(yes|no)$", out, re.M)  # a ratio, or n/a on a loaded machine
    assert len(verdicts) >= 2, "each figure with a target has its ratio and a verdict"
    assert "Target (< 0.5 s" in out and ("MET" in out)
    assert len(re.findall(r"^BENCH \{", out, re.M)) >= 3, "the combined table's lines (dev.py bench)"


def test_every_eval_mutation_still_finds_the_code_it_changes() -> None:
    """A mutation whose text the code no longer holds cannot run, and the mutation score drops
    (it happened twice when the code it targets was rewritten): each one must apply to this tree."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import eval_mutations
    finally:
        sys.path.remove(str(BENCHMARKS))
    stale = []
    for mutation in eval_mutations.MUTATIONS:
        for rel, (old, _new) in mutation.code.items():
            if (eval_mutations.ROOT / rel).read_text(encoding="utf-8").count(old) != 1:
                stale.append(f"{mutation.name}: {rel}")
        for name, (old, _new) in mutation.home.items():
            source = (eval_mutations.PROMPTS if name.endswith(".md") else eval_mutations.DEFINITIONS) / name
            if source.read_text(encoding="utf-8").count(old) != 1:
                stale.append(f"{mutation.name}: {name}")
    assert len(eval_mutations.MUTATIONS) >= 20
    assert not stale, f"these mutations no longer match the code once (update them): {stale}"
