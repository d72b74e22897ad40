"""Peak memory of a segment sync as its source grows: 10k, 100k and 1M rows (target: bounded).

Each size is synced in a fresh interpreter (so one size's peak cannot hide in another's) into an
empty list of a sandbox served from another process (so the sandbox's own store, which holds every
imported profile, is not counted). The sync is a whole ``run_persona("segment-syncer", ...)`` with
the defaults a user gets: SQLite checkpoints after every batch, the audit log, a CSV source read
row by row into the plan's SQLite file, 1,000 profiles per import call, and the import jobs
verified at the end. The sandbox's rate limits are off: memory, not throughput, is measured here.

Reported per size: seconds, rows per second, the interpreter's resident memory before the sync
(imports done) and at its peak (``ru_maxrss``), and the growth between them. Bounded means the peak
at 1M rows is within 1.25x the peak at 10k rows (100x the rows). ``--tracemalloc`` adds the peak
of Python's own allocations (slower: about 2x).

Run::

    python benchmarks/sync_memory.py                    # 10k, 100k, 1M rows: ~10 minutes
    python benchmarks/sync_memory.py --rows 10000 100000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import bench_line  # noqa: E402 - after the path it lives on

TARGET = 1.25  # peak at the largest size / peak at the smallest


def child(args: argparse.Namespace) -> int:
    """One sync in this interpreter; prints a JSON line with what it measured."""
    import tracemalloc

    from klaviyo_sandbox import DEMO_KEY
    from klaviyo_toolkit.client import KlaviyoClient
    from klaviyo_toolkit.ratelimit import RateLimiter
    from personas.runtime import load_persona, run_persona
    from personas.runtime.driver import RunDriver  # noqa: F401 - imports done before the baseline

    client = KlaviyoClient(api_key=DEMO_KEY, base_url=args.url, rate_limiter=RateLimiter(factor=None))
    spec = load_persona("segment-syncer")
    spec = spec.model_copy(update={"settings": {**spec.settings, "job_poll_seconds": 0.2}})
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.tracemalloc:
        tracemalloc.start()
    started = time.perf_counter()
    result = run_persona(spec, {"input": {"source": {"kind": "csv", "path": args.csv},
                                          "target_list_id": args.list}}, client=client)
    seconds = time.perf_counter() - started
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if args.tracemalloc else None
    adds = (result.state.get("result") or {}).get("adds") or {}
    print(json.dumps({"rows": args.rows, "seconds": seconds, "baseline_mb": baseline,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "traced_mb": traced, "applied": adds.get("applied"), "status": result.status}))
    return 0


def _serve(port: int) -> subprocess.Popen[bytes]:
    code = ("import uvicorn\nfrom klaviyo_sandbox import Sandbox\n"
            "sb = Sandbox(demo_data=False, rate_limit_factor=None)\n"
            f"uvicorn.run(sb.app, host='127.0.0.1', port={port}, log_level='warning')\n")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--tracemalloc", action="store_true", help="also report Python's peak allocations")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--list", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.rows = args.rows[0]
        return child(args)
    import httpx

    from klaviyo_sandbox import DEMO_KEY

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp, socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        server = _serve(port)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    httpx.get(f"{url}/sandbox", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            headers = {"Authorization": f"Klaviyo-API-Key {DEMO_KEY}", "revision": "2026-07-15",
                       "content-type": "application/vnd.api+json"}
            results: list[dict[str, Any]] = []
            for rows in args.rows:
                path = Path(tmp) / f"source-{rows}.csv"
                with path.open("w", newline="", encoding="utf-8") as out:
                    writer = csv.writer(out)
                    writer.writerow(["email", "first_name", "consent"])
                    writer.writerows([f"p{rows}-{i}@bench.example.com", "Pat", ""] for i in range(rows))
                made = httpx.post(f"{url}/api/lists", headers=headers, timeout=30,
                                  json={"data": {"type": "list", "attributes": {"name": f"sync {rows}"}}})
                made.raise_for_status()
                env = {**os.environ, "PERSONAS_HOME": str(Path(tmp) / f"home-{rows}")}
                env.pop("OPENAI_API_KEY", None)
                done = subprocess.run(
                    [sys.executable, __file__, "--child", "--rows", str(rows), "--url", url,
                     "--list", made.json()["data"]["id"], "--csv", str(path),
                     *(["--tracemalloc"] if args.tracemalloc else [])],
                    capture_output=True, text=True, env=env, check=False)
                if done.returncode != 0:
                    raise SystemExit(f"the {rows:,}-row sync failed:\n{done.stderr[-3000:]}")
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
                path.unlink()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(render(results))
    return 0


def render(results: list[dict[str, Any]]) -> str:
    lines = ["Segment sync, peak memory by source size (a fresh interpreter per size; sandbox in another process)",
             "",
             f"{'rows':>10} {'seconds':>8} {'rows/s':>8} {'before MB':>10} {'peak MB':>8} {'growth MB':>10} "
             f"{'traced MB':>10} {'applied':>10} {'vs smallest':>12}",
             f"{'-' * 10} {'-' * 8} {'-' * 8} {'-' * 10} {'-' * 8} {'-' * 10} {'-' * 10} {'-' * 10} {'-' * 12}"]
    first = results[0]["peak_mb"]
    for r in results:
        traced = f"{r['traced_mb']:.1f}" if r.get("traced_mb") is not None else "-"
        lines.append(f"{r['rows']:>10,} {r['seconds']:>8.1f} {r['rows'] / r['seconds']:>8,.0f} "
                     f"{r['baseline_mb']:>10.1f} {r['peak_mb']:>8.1f} {r['peak_mb'] - r['baseline_mb']:>10.1f} "
                     f"{traced:>10} "
                     f"{r['applied'] or 0:>10,} {r['peak_mb'] / first:>11.2f}x")
    ratio = results[-1]["peak_mb"] / first
    complete = all(r["applied"] == r["rows"] for r in results)
    ok = ratio <= TARGET and complete
    lines += ["", f"Target: peak at {results[-1]['rows']:,} rows within {TARGET}x the peak at {results[0]['rows']:,} "
              f"(every row applied): {'MET' if ok else 'NOT MET'} ({ratio:.2f}x)"]
    sizes = ", ".join(f"{r['rows'] // 1000:,}k {r['peak_mb']:.0f} MB" for r in results)
    bench_line("segment sync peak memory", measured=sizes, baseline=f"{results[0]['rows'] // 1000:,}k rows",
               ratio=ratio, target=f"≤ {TARGET}x", met=ok)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
