"""Segment sync: API calls against the minimum (target <= 1.05), and peak memory on a large source.

Table 1 runs the segment syncer on the in-process sandbox (rate limits off, a manual clock) and
counts every call the sandbox answered, against the least any sync could make::

    minimum = ceil(adds/1000) + ceil(removes/1000) + ceil(subscribes/1000) + reads
    reads   = ceil(list members/100)                      the target list, 100 per page
            + ceil(source list members/100)               a list or segment as the source
            + ceil(consenting rows not in the list/100)   their suppression state, 100 emails per call

(DESIGN.md's formula is the first two terms plus reads; subscribes and lookups only occur when the
source carries consent.) What the syncer spends beyond the minimum is the check of its import jobs.

Table 2 measures, with tracemalloc, the peak Python memory of a dry run that plans a file source
against a 10,000-member list, at 10,000 and 100,000 rows; the bound is 50 MB and the ratio of the
two peaks shows that memory does not grow with the source (rows stream into SQLite). tracemalloc
counts Python allocations (the in-process sandbox's included), not SQLite's own page cache, which
SQLite bounds (2 MB by default).

Run::

    python benchmarks/segment_sync_calls.py
    python benchmarks/segment_sync_calls.py --members 2000 --adds 1500 --removes 500 --memory-rows 20000
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import bench_line
from langgraph.checkpoint.memory import InMemorySaver

from graphs.segment_sync import build_graph
from graphs.segment_sync.graph import WRITES
from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.effects import APPROVAL_EFFECTS
from klaviyo_toolkit.ratelimit import RateLimiter
from personas.kernel.spec import ApprovalPolicy
from personas.runtime import build_context
from personas.runtime.loader import load_persona

TARGET = 1.05
MEMORY_BOUND_MB = 50.0


@dataclass
class Row:
    scenario: str
    adds: int
    removes: int
    subscribes: int
    reads: int
    minimum: int
    calls: int
    extra: str

    @property
    def ratio(self) -> float:
        return self.calls / self.minimum


class Bench:
    """A fresh sandbox with a target list of ``members`` profiles."""

    def __init__(self, members: int, home: Path) -> None:
        self.home = home
        self.clock = ManualClock()
        self.sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=self.clock)
        self.client = self.sb.client(clock=self.clock, rate_limiter=RateLimiter(self.clock, factor=None))
        self.target = self.new_list("Target", (f"m{i}@example.com" for i in range(members)))

    def new_list(self, name: str, emails: Iterable[str]) -> str:
        list_id: str = self.client.call("create_list", name=name).data["id"]
        batch: list[dict[str, str]] = []
        for email in emails:
            batch.append({"email": email})
            if len(batch) == 1000:
                self.client.call("bulk_import_profiles", profiles=batch, list_ids=[list_id])
                batch = []
        if batch:
            self.client.call("bulk_import_profiles", profiles=batch, list_ids=[list_id])
        self.clock.advance(60)
        self.sb.tick()
        return list_id

    def run(self, thread: str, source: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        self.sb.call_counts.clear()
        spec = load_persona("segment-syncer")
        # approvals add no calls: every effect of every write is waived
        relaxed = ApprovalPolicy(relax={op: sorted(APPROVAL_EFFECTS) for op in WRITES.values()})
        spec = spec.model_copy(update={"approval": relaxed})
        ctx = build_context(spec, client=self.client, audit=False, thread_id=thread, clock=self.clock)
        graph = build_graph(InMemorySaver())
        config = {"configurable": {"thread_id": thread}, "recursion_limit": 10_000}
        graph.invoke({"input": {"source": source, "target_list_id": self.target, "dry_run": dry_run}}, config,
                     context=ctx)
        result: dict[str, Any] = graph.get_state(config).values["result"]
        return result


def write_csv(path: Path, rows: Iterable[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "consent"])
        for email, consent in rows:
            writer.writerow([email, "Sam", consent])
    return path


def file_rows(members: int, adds: int, removes: int, consent_every: int) -> Iterable[tuple[str, str]]:
    """Members kept (all but the last ``removes``) then ``adds`` new people; every nth row consents."""
    n = 0
    for i in range(members - removes):
        n += 1
        yield f"m{i}@example.com", "yes" if consent_every and n % consent_every == 0 else ""
    for i in range(adds):
        n += 1
        yield f"new{i}@example.com", "yes" if consent_every and n % consent_every == 0 else ""


def scenario(name: str, bench: Bench, result: dict[str, Any], source_pages: int, lookups_rows: int) -> Row:
    adds, removes, subs = (result[k]["applied"] for k in ("adds", "removes", "subscribes"))
    reads = math.ceil(result["members_before"] / 100) + source_pages + math.ceil(lookups_rows / 100)
    minimum = math.ceil(adds / 1000) + math.ceil(removes / 1000) + math.ceil(subs / 1000) + reads
    calls = sum(bench.sb.call_counts.values())
    jobs = bench.sb.call_counts.get("get_bulk_import_profiles_jobs", 0)
    return Row(name, adds, removes, subs, reads, minimum, calls, f"{jobs} job check(s)")


def run_calls(members: int, adds: int, removes: int, home: Path) -> list[Row]:
    rows = []
    bench = Bench(members, home)
    path = write_csv(home / "plain.csv", file_rows(members, adds, removes, 0))
    result = bench.run("plain", {"kind": "csv", "path": str(path)})
    rows.append(scenario("file, membership only", bench, result, 0, 0))

    bench = Bench(members, home)
    path = write_csv(home / "consent.csv", file_rows(members, adds, removes, 5))
    result = bench.run("consent", {"kind": "csv", "path": str(path)})
    consenting_new = sum(1 for i in range(members - removes + 1, members - removes + adds + 1) if i % 5 == 0)
    rows.append(scenario("file, 1 in 5 rows consent", bench, result, 0, consenting_new))

    bench = Bench(members, home)
    kept = (f"m{i}@example.com" for i in range(members - removes))
    fresh = (f"new{i}@example.com" for i in range(adds))
    source = bench.new_list("Source", (e for part in (kept, fresh) for e in part))
    result = bench.run("l2l", {"kind": "list", "id": source})
    rows.append(scenario("list -> list", bench, result, math.ceil((members - removes + adds) / 100), 0))
    return rows


def measure_memory(members: int, sizes: list[int], home: Path) -> list[tuple[int, float, float]]:
    """(rows, peak MB, seconds) of a dry run planning ``rows`` against a ``members``-member list."""
    out = []
    for size in sizes:
        bench = Bench(members, home)
        path = write_csv(home / f"mem{size}.csv", file_rows(members, max(0, size - members), 0, 10))
        tracemalloc.start()
        started = time.perf_counter()
        result = bench.run(f"mem{size}", {"kind": "csv", "path": str(path)}, dry_run=True)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        assert result["source_rows"] == size, result["source_rows"]
        out.append((size, peak, seconds))
    return out


def render(rows: list[Row], memory: list[tuple[int, float, float]]) -> str:
    lines = ["Segment sync API calls vs the minimum (in-process sandbox; every call the sandbox answered)", "",
             f"{'scenario':<27} {'adds':>6} {'removes':>7} {'subs':>5} {'reads':>5} {'minimum':>7} {'calls':>6} "
             f"{'ratio':>6}  {'beyond the minimum'}",
             f"{'-' * 27} {'-' * 6} {'-' * 7} {'-' * 5} {'-' * 5} {'-' * 7} {'-' * 6} {'-' * 6}  {'-' * 20}"]
    for r in rows:
        lines.append(f"{r.scenario:<27} {r.adds:>6} {r.removes:>7} {r.subscribes:>5} {r.reads:>5} {r.minimum:>7} "
                     f"{r.calls:>6} {r.ratio:>6.3f}  {r.extra}")
    worst = max(r.ratio for r in rows)
    lines += ["", f"Target (calls / minimum <= {TARGET}): {'MET' if worst <= TARGET else 'NOT MET'} "
                  f"(worst {worst:.3f})", "",
              f"Peak Python memory of a dry run (plan only) against a {MEMORY_MEMBERS}-member list (tracemalloc)", "",
              f"{'source rows':>11} {'peak MB':>8} {'vs bound':>9} {'seconds':>8}",
              f"{'-' * 11} {'-' * 8} {'-' * 9} {'-' * 8}"]
    for size, peak, seconds in memory:
        lines.append(f"{size:>11} {peak:>8.1f} {peak / MEMORY_BOUND_MB:>8.2f}x {seconds:>8.1f}")
    if len(memory) >= 2:
        growth = memory[-1][1] / memory[0][1]
        lines.append(f"peak at {memory[-1][0]} rows / peak at {memory[0][0]} rows: {growth:.2f}x "
                     f"(rows x{memory[-1][0] / memory[0][0]:.0f})")
    ok = all(peak < MEMORY_BOUND_MB for _, peak, _ in memory)
    lines.append(f"Bound (< {MEMORY_BOUND_MB:.0f} MB): {'MET' if ok else 'NOT MET'}")
    return "\n".join(lines)


MEMORY_MEMBERS = 10_000


def main(argv: list[str] | None = None) -> int:
    global MEMORY_MEMBERS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--members", type=int, default=10_000, help="members of the target list")
    parser.add_argument("--adds", type=int, default=5_000)
    parser.add_argument("--removes", type=int, default=2_000)
    parser.add_argument("--memory-rows", type=int, default=100_000, help="rows of the large source (0: skip)")
    parser.add_argument("--memory-members", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.removes > args.members:
        parser.error("--removes cannot exceed --members")
    MEMORY_MEMBERS = args.memory_members
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ["PERSONAS_HOME"] = str(home / "home")
        os.environ.pop("OPENAI_API_KEY", None)
        rows = run_calls(args.members, args.adds, args.removes, home)
        sizes = sorted({max(args.memory_members, args.memory_rows // 10), args.memory_rows}) if args.memory_rows else []
        memory = measure_memory(args.memory_members, sizes, home)
    print(render(rows, memory))
    worst = max(r.ratio for r in rows)
    bench_line("segment sync: API calls / minimum (worst scenario)", measured=f"{worst:.3f}",
               baseline="the minimum", ratio=worst, target=f"≤ {TARGET}", met=worst <= TARGET)
    if memory:
        size, peak, _ = memory[-1]
        bench_line(f"segment sync dry run: peak Python memory, {size:,} rows", measured=f"{peak:.1f} MB",
                   baseline=f"bound {MEMORY_BOUND_MB:.0f} MB", ratio=peak / MEMORY_BOUND_MB,
                   target=f"< {MEMORY_BOUND_MB:.0f} MB", met=peak < MEMORY_BOUND_MB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
