"""Run every benchmark and print one combined table; write it into benchmarks/README.md (``dev.py bench``).

Every ``benchmarks/*.py`` that is not a helper (``_*.py``) or this file runs in its own interpreter,
one after another (they time things: running two at once would skew both). A script's ``BENCH``
lines (``_report.bench_line``) become rows of the table: what, measured, baseline or limit, ratio,
target, met. A script without them gives a row per verdict line it prints (``Target ...: MET``).
The table, with the machine and the date, replaces the one between the markers in
``benchmarks/README.md``; each script's whole output goes to ``benchmarks/out/NAME.txt``.

Run::

    python3 dev.py bench                      # every benchmark, full size (about 40 minutes)
    python3 dev.py bench --quick              # smaller sizes where a script has them (about 10 minutes)
    python3 dev.py bench graph_overhead toolkit_import --no-readme
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
START, END = "<!-- bench:table:start -->", "<!-- bench:table:end -->"
#: Arguments for --quick, by script; scripts not named here run as they are.
QUICK = {
    "bulk_sync_throughput": ["--profiles", "34000", "--factor", "0.22"],
    "sync_memory": ["--rows", "10000", "100000"],
    "graph_overhead": ["--leads", "20"],
    "toolkit_import": ["--repeat", "3"],
    "sandbox_conformance": ["--examples", "5", "--no-sdk"],
    "segment_sync_calls": ["--memory-rows", "0"],
}
#: The slow ones last, so a quick look at the rest comes first.
LAST = ("sandbox_conformance", "sync_memory", "bulk_sync_throughput")
VERDICT = re.compile(r"(?i)\b(target|bound)\b.*?\b(not met|met)\b")


@dataclass
class Row:
    script: str
    what: str
    measured: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None


def scripts(names: list[str]) -> list[Path]:
    found = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != Path(__file__).name)
    if names:
        known = {p.stem: p for p in found}
        missing = [n for n in names if n.removesuffix(".py") not in known]
        if missing:
            raise SystemExit(f"no benchmark {', '.join(missing)}; there are: {', '.join(known)}")
        return [known[n.removesuffix(".py")] for n in names]
    return sorted(found, key=lambda p: (p.stem in LAST, LAST.index(p.stem) if p.stem in LAST else 0, p.stem))


def rows_of(script: str, output: str, code: int) -> list[Row]:
    rows = []
    for line in output.splitlines():
        if line.startswith("BENCH "):
            data = json.loads(line[len("BENCH "):])
            rows.append(Row(script, data["what"], data["measured"], data["baseline"], data["ratio"], data["target"],
                            data["met"]))
    if rows:
        return rows
    for line in output.splitlines():
        match = VERDICT.search(line)
        if match:
            rows.append(Row(script, line.strip()[:90], "see its output", "", None, "its verdict line",
                            match.group(2).lower() == "met"))
    if code != 0:
        rows.append(Row(script, "the script failed", f"exit {code}", "", None, "", False))
    return rows or [Row(script, "(no verdict printed)", "see its output", "", None, "", None)]


def machine() -> str:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    try:
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores ({cpu}), Python "
            f"{platform.python_version()}; load average at the end {load}")


def table(rows: list[Row]) -> str:
    lines = ["| benchmark | what | measured | baseline or limit | ratio | target | met? |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.3f}"
        met = {True: "yes", False: "**no**", None: "?"}[r.met]
        lines.append(f"| `{r.script}` | {r.what} | {r.measured} | {r.baseline} | {ratio} | {r.target} | {met} |")
    return "\n".join(lines)


def write_readme(text: str) -> None:
    current = README.read_text(encoding="utf-8")
    if START in current and END in current:
        head, rest = current.split(START, 1)
        _, tail = rest.split(END, 1)
        README.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")
    else:
        README.write_text(f"{current.rstrip()}\n\n{START}\n{text}\n{END}\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("names", nargs="*", help="only these benchmarks (script names)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes where a script has them")
    parser.add_argument("--no-readme", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    rows: list[Row] = []
    started = time.monotonic()
    for path in scripts(args.names):
        extra = QUICK.get(path.stem, []) if args.quick else []
        print(f"== {path.stem} {' '.join(extra)}", flush=True)
        began = time.monotonic()
        done = subprocess.run([sys.executable, str(path), *extra], capture_output=True, text=True, check=False)
        text = done.stdout + (f"\n[stderr]\n{done.stderr}" if done.returncode else "")
        (out / f"{path.stem}.txt").write_text(text, encoding="utf-8")
        found = rows_of(path.stem, done.stdout, done.returncode)
        rows += found
        for r in found:
            print(f"   {r.what}: {r.measured} ({'met' if r.met else 'NOT met' if r.met is False else '?'})")
        print(f"   {time.monotonic() - began:.0f} s", flush=True)
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    size = "quick sizes (--quick)" if args.quick else "full sizes"
    text = (f"Measured {when} by `python3 dev.py bench` ({size}; {time.monotonic() - started:.0f} s) on "
            f"{machine()}.\n\n{table(rows)}")
    print("\n" + text)
    if not args.no_readme and not args.names:
        write_readme(text)
        print(f"\n(written into {README.relative_to(HERE.parent)})")
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
