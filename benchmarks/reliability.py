"""The reliability suite at full size, as a table of figures (issue 10, point 8).

Four runs, each with the suite's own harness (``tests/reliability/``):

1. **leads under faults**: N leads (default 1,000) under 5% 5xx, 5% 429, 2% dropped connections
   and 2% writes applied with their answer lost; the operator retries stopped threads. Counts lost
   and duplicated sequence starts and first touchpoints, wrong profile records, and audit rows
   against the attempts the sandbox saw.
2. **sequencer kills**: worker processes SIGKILLed at K seeded points (before an attempt leaves,
   after Klaviyo answered it, after its audit row, after a step) and resumed, under the same faults.
3. **syncer kills**: the same for a segment sync with removals that wait for approval.
4. **injection and bad input**: the suite's cases, run by pytest; how many, and how many held.

Targets (from the design): 0 lost, 0 duplicates, audit rows = attempts (under kills: attempts minus
those in flight when a worker died, which no process can record), 0 unapproved consequential calls,
0 partial writes. Timings are reported, never asserted.

Run::

    python benchmarks/reliability.py [--leads 1000] [--kills 20] [--kill-leads 200] [--sync-kills 20] [--seed 21]
    python benchmarks/reliability.py --quick      # small sizes, a smoke test of the script
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.pop("OPENAI_API_KEY", None)

from tests.reliability.fleet import faults, run_fleet  # noqa: E402
from tests.reliability.kills import kill_leads, kill_sync  # noqa: E402

Row = tuple[str, str, str, str]


def _verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def leads_under_faults(n: int, seed: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PERSONAS_HOME"] = str(Path(tmp) / "home")
        run = run_fleet(n, seed=seed, fault_settings=faults(seed=seed), home=Path(tmp) / "home")
    out = run.outcome
    faulted = ", ".join(f"{k} {v}" for k, v in out.faults.items())
    stops = ", ".join(f"{k} {v}" for k, v in sorted(run.failures.items())) or "none"
    return [
        (f"{n} leads under faults: leads that should start / started exactly once",
         f"{out.should_start} / {out.started_once}", "equal", _verdict(out.started_once == out.should_start)),
        ("  lost (no start or no first touchpoint) / duplicated / started though not eligible",
         f"{len(out.lost)} / {len(out.duplicates)} / {len(out.started_wrongly)}", "0 / 0 / 0",
         _verdict(not (out.lost or out.duplicates or out.started_wrongly))),
        ("  profile records that miss or contradict the sequence started", str(len(out.wrong_record)), "0",
         _verdict(not out.wrong_record)),
        ("  audit rows (ok/error) / attempts the sandbox saw", f"{out.client_attempts} / {out.server_attempts}",
         "equal, per operation and status", _verdict(out.client_attempts == out.server_attempts
                                                     and not out.attempt_mismatch)),
        ("  faults injected (of those attempts)", faulted, "—", "—"),
        ("  threads stopped and retried by the operator", f"{run.retries} ({stops})", "—", "—"),
        ("  wall time (leads run, not seeding)", f"{run.seconds:.1f} s ({run.seconds / n * 1000:.0f} ms per lead)",
         "—", "—"),
    ]


def sequencer_kills(leads: int, kills: int, seed: int) -> list[Row]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PERSONAS_HOME"] = str(Path(tmp) / "home")
        out, tally = kill_leads(Path(tmp), leads=leads, kills=kills, seed=seed)
    where = ", ".join(f"{k} {v}" for k, v in sorted(tally.by_where().items()))
    gap = out.server_attempts - out.client_attempts
    return [
        (f"sequencer, {leads} leads: kills landed ({where})", str(len(tally.kills)), str(kills),
         _verdict(len(tally.kills) == kills)),
        ("  lost / duplicated / wrong profile records",
         f"{len(out.lost)} / {len(out.duplicates)} / {len(out.wrong_record)}", "0 / 0 / 0", _verdict(out.ok)),
        ("  attempts seen by the sandbox minus audit rows / attempts in flight at a kill",
         f"{gap} / {tally.in_flight}", "equal", _verdict(gap == tally.in_flight and not out.attempt_mismatch)),
        ("  workers started (killed + finishing passes); wall time",
         f"{tally.workers}; {time.perf_counter() - started:.0f} s", "—", "—"),
    ]


def syncer_kills(kills: int, seed: int, members: int = 1200, removes: int = 400, adds: int = 600) -> list[Row]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PERSONAS_HOME"] = str(Path(tmp) / "home")
        out, tally, attempts = kill_sync(Path(tmp), kills=kills, seed=seed, members=members, removes=removes,
                                         adds=adds)
    where = ", ".join(f"{k} {v}" for k, v in sorted(tally.by_where().items()))
    batches = -(-removes // 50)
    return [
        (f"syncer, {members:,} members -> {members - removes + adds:,} rows, batches of 50: kills landed ({where})",
         str(len(tally.kills)), str(kills), _verdict(len(tally.kills) == kills)),
        ("  list vs source: missing / extra; consenting rows not subscribed",
         f"{len(out.missing)} / {len(out.extra)}; {len(out.not_subscribed)}", "0 / 0; 0",
         _verdict(not (out.missing or out.extra or out.not_subscribed))),
        ("  removal batches applied / sent without their own approval / answers to requests never shown",
         f"{out.removal_batches} / {len(out.unbound_removals)} / {len(out.stray_answers)}", f"{batches} / 0 / 0",
         _verdict(out.removal_batches == batches and not out.unbound_removals and not out.stray_answers)),
        ("  attempts the sandbox saw (audit rows = these minus in flight)", f"{attempts} ({tally.in_flight} in flight)",
         "—", "—"),
        ("  workers started; wall time", f"{tally.workers}; {time.perf_counter() - started:.0f} s", "—", "—"),
    ]


def suites() -> list[Row]:
    rows: list[Row] = []
    for module, what in (("test_injection.py", "injection cases (planted call, answers) held"),
                         ("test_bad_inputs.py", "bad inputs: one clear line, nothing written")):
        done = subprocess.run([sys.executable, "-m", "pytest", f"tests/reliability/{module}", "-p", "no:cacheprovider",
                               "-o", "addopts=", "-q", "-rN"], cwd=ROOT, capture_output=True, text=True, check=False)
        tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-200:]
        passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", tail)) else 0
        failed = int(m.group(1)) if (m := re.search(r"(\d+) failed", tail)) else 0
        rows.append((what, f"{passed} of {passed + failed}", "all", _verdict(failed == 0 and passed > 0)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--kill-leads", type=int, default=200, help="leads in the sequencer's kill run")
    parser.add_argument("--kills", type=int, default=20, help="kills of the sequencer")
    parser.add_argument("--sync-kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of this script")
    args = parser.parse_args()
    if args.quick:
        args.leads, args.kill_leads, args.kills, args.sync_kills = 40, 12, 4, 4
    rows = leads_under_faults(args.leads, args.seed)
    rows += sequencer_kills(args.kill_leads, args.kills, args.seed + 20)
    size = {"members": 300, "removes": 100, "adds": 150} if args.quick else {}
    rows += syncer_kills(args.sync_kills, args.seed + 21, **size)
    rows += suites()
    width = max(len(r[0]) for r in rows)
    print(f"{'what':{width}}  {'measured':32}  {'target':20}  met")
    for what, measured, target, met in rows:
        print(f"{what:{width}}  {measured:32}  {target:20}  {met}")
    failed = [r for r in rows if r[3] == "NO"]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} rows as targeted" + ("" if not failed else
          "; NOT MET: " + "; ".join(r[0].strip() for r in failed)))
    from _report import bench_line

    what, measured, _target, met = rows[0]
    bench_line(f"reliability: {what.split(':')[0]}, started exactly once", measured=measured,
               baseline="leads that should start", ratio=None, target="equal, 0 lost, 0 duplicated",
               met=met == "yes")
    bench_line("reliability: rows as targeted (faults, kills, injections, bad inputs)",
               measured=f"{len(rows) - len(failed)} of {len(rows)}", baseline="every row",
               ratio=(len(rows) - len(failed)) / len(rows), target="all", met=not failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
