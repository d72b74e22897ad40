"""The benchmark scripts run and print their tables (timings are reported, never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_the_graph_overhead_split_times_every_part_and_puts_the_methods_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``graph_overhead.where_over`` splits what a run adds to the bare calls with timers on methods of
    the toolkit, the sandbox, LangGraph and the runtime: if a release renames one, its part reads 0
    and the table misleads; and the timers must be gone once the split is done. Two leads a set-up, on
    the in-process sandbox with real SQLite checkpoints and audit log (figures reported, never judged)."""
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import graph_overhead as bench
        from _split import split_table
    finally:
        sys.path.remove(str(BENCHMARKS))
    from langgraph.pregel.main import Pregel

    from graphs.lead_magnet.fixtures import settle_sandbox, sign_up
    from klaviyo_sandbox import Sandbox
    from klaviyo_toolkit.audit import AuditLog
    from klaviyo_toolkit.client import KlaviyoClient
    from personas.runtime import checkpointer
    from personas.runtime.driver import RunDriver

    def timed_methods() -> tuple[object, ...]:
        return (KlaviyoClient.send, KlaviyoClient.prepare, AuditLog.record, RunDriver._begin, Pregel.invoke,
                bench.build_context, type(sb.transport()).handle_request)

    sb = Sandbox(demo_data=False, rate_limit_factor=None)
    settle, client = settle_sandbox(sb), sb.client()
    originals = timed_methods()
    seed = client.call("create_profile", email="seed@split.example.com").data["id"]  # as the benchmark: the
    client.call("create_event", metric={"name": "Lead Sequence Started"}, profile={"id": seed}, properties={})
    numbers = iter(range(1000))  # bare calls look the start's metric up

    def leads(tag: str, n: int) -> list[dict[str, object]]:
        return [sign_up(client, f"{tag}{next(numbers)}@split.example.com", bench.ANSWERS, settle=settle)
                for _ in range(n)]

    setups: dict[str, bench.Setup] = {
        "graph, SQLite checkpoints + audit": {"saver": checkpointer(tmp_path / "c.sqlite"), "audit": True},
        "graph, SQLite checkpoints, no audit": {"saver": checkpointer(tmp_path / "c.sqlite"), "audit": False},
    }
    found = bench.where_over(setups, sb, client, leads, 2)

    audited, plain = found["graph, SQLite checkpoints + audit"], found["graph, SQLite checkpoints, no audit"]
    for part in ("LangGraph", "input ckpt", "context", "nodes' own"):
        assert audited[part] > 0 and plain[part] > 0, (part, found)
    assert audited["audit"] > 0 and plain["audit"] == 0, found
    for parts in found.values():  # differences of two timed sums: exactly 0 only where nothing was timed
        assert parts["sandbox"] != 0 and parts["client"] != 0, found
    assert timed_methods() == originals, "the timers are taken off after the split"
    table = split_table(found)
    assert table[0].split()[:3] == ["set-up", "over", "bare"] and len(table) == 1 + 2 + 8, table
