"""Sandbox speed: requests per second for profile reads and writes, against Klaviyo's steady limits.

The sandbox must be "fast enough that benchmarks are bound by rate limits, not by the sandbox". So
with its limits off, one KlaviyoClient (limiter off, sequential calls) sends each operation for
``--seconds`` and the rate is compared with Klaviyo's steady (per-minute) limit for it, per second:

- ``get_profiles`` (a page of 20 from the 2,000 demo profiles), ``get_profile`` (a random demo
  profile): reads, 750/min = 12.5/s each;
- ``create_profile`` (a new email each call), ``create_event`` (a new ``unique_id`` each call, for
  demo profiles): writes, 750/min and 3,500/min = 58.3/s.

Two ways in: **in-process** (``Sandbox.client()``, the ASGI transport, no socket) and **port**
(``personas sandbox serve --no-rate-limits`` as its own process, reached over 127.0.0.1). Each row
gives its ratio to the operation's own steady limit and to the fastest steady limit of these
operations (3,500/min, events); both should be far above 1. Nothing here is asserted: timings vary
by machine.

Run::

    python benchmarks/sandbox_speed.py                 # 2 s per row, about 25 s in all
    python benchmarks/sandbox_speed.py --seconds 5
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from _report import bench_line  # noqa: E402

from klaviyo_sandbox import DEMO_KEY, PUBLIC_KEY, Sandbox  # noqa: E402
from klaviyo_toolkit.catalog import load_catalog  # noqa: E402
from klaviyo_toolkit.client import KlaviyoClient  # noqa: E402
from klaviyo_toolkit.ratelimit import RateLimiter  # noqa: E402

OPERATIONS = ("get_profiles", "get_profile", "create_profile", "create_event")
SEED = 42


@dataclass
class Row:
    mode: str
    operation: str
    calls: int
    seconds: float
    steady_per_min: int

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    @property
    def ratio(self) -> float:
        return self.rate / (self.steady_per_min / 60)


def _calls(kl: KlaviyoClient, operation: str, profile_ids: list[str], run: str) -> Callable[[int], Any]:
    """One call of ``operation`` for iteration ``i`` (arguments vary, so writes create new things)."""
    pick = random.Random(SEED).choice
    if operation == "get_profiles":
        return lambda i: kl.call("get_profiles")
    if operation == "get_profile":
        return lambda i: kl.call("get_profile", id=pick(profile_ids))
    if operation == "create_profile":
        return lambda i: kl.call("create_profile", email=f"speed-{run}-{i}@example.com", first_name="Speedy")
    return lambda i: kl.call(
        "create_event", metric={"name": "Speed Test"}, profile={"id": pick(profile_ids)},
        properties={"i": i}, unique_id=f"speed-{run}-{i}",
    )


def measure(kl: KlaviyoClient, mode: str, seconds: float, profile_ids: list[str]) -> list[Row]:
    catalog = load_catalog()
    rows = []
    for operation in OPERATIONS:
        call = _calls(kl, operation, profile_ids, run=mode)
        for i in range(20):  # warm-up: caches, connections, code paths
            call(-i - 1)
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            call(calls)
            calls += 1
        rows.append(Row(mode, operation, calls, elapsed, catalog.get(operation).rate_limit.steady))
    return rows


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served() -> Iterator[str]:
    """``personas sandbox serve --no-rate-limits`` in its own process; yields its base URL."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLAVIYO_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "personas.cli", "sandbox", "serve", "--port", str(port), "--seed", str(SEED),
         "--no-rate-limits"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base_url + "/sandbox", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.1)
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def demo_profile_ids(kl: KlaviyoClient, n: int = 200) -> list[str]:
    return [p["id"] for p in itertools.islice(kl.iterate("get_profiles", page_size=100), n)]


def render(rows: list[Row], seconds: float) -> str:
    fastest = max(r.steady_per_min for r in rows)
    lines = [f"Sandbox speed, limits off, one sequential client, {seconds:g} s per row "
             f"(ratios: req/s over Klaviyo's steady limit per second)", "",
             f"{'mode':<10} {'operation':<15} {'calls':>6} {'req/s':>8} {'steady/min':>10} {'steady/s':>8} "
             f"{'ratio':>7} {f'vs {fastest}/min':>13}",
             f"{'-' * 10} {'-' * 15} {'-' * 6} {'-' * 8} {'-' * 10} {'-' * 8} {'-' * 7} {'-' * 13}"]
    for r in rows:
        lines.append(f"{r.mode:<10} {r.operation:<15} {r.calls:>6} {r.rate:>8.0f} {r.steady_per_min:>10} "
                     f"{r.steady_per_min / 60:>8.1f} {r.rate / (r.steady_per_min / 60):>6.1f}x "
                     f"{r.rate / (fastest / 60):>12.1f}x")
    worst = min(rows, key=lambda r: r.rate / (fastest / 60))
    lines += ["", f"Slowest path: {worst.mode} {worst.operation} at {worst.rate:.0f} req/s = "
              f"{worst.rate / (fastest / 60):.1f}x the fastest steady limit here "
              f"({fastest}/min = {fastest / 60:.1f}/s): "
              + ("rate limits, not the sandbox, bound a benchmark." if worst.rate > fastest / 60 else
                 "the sandbox is SLOWER than Klaviyo's limits here.")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="how long each operation runs, per mode")
    args = parser.parse_args(argv)
    rows: list[Row] = []

    sandbox = Sandbox(seed=SEED, rate_limit_factor=None)
    with sandbox.client() as kl:
        rows += measure(kl, "in-process", args.seconds, demo_profile_ids(kl))
    sandbox.close()

    with served() as base_url, KlaviyoClient(api_key=DEMO_KEY, base_url=base_url, public_api_key=PUBLIC_KEY,
                                             rate_limiter=RateLimiter(factor=None)) as kl:
        rows += measure(kl, "port", args.seconds, demo_profile_ids(kl))

    print(render(rows, args.seconds))
    fastest = max(r.steady_per_min for r in rows) / 60
    worst = min(rows, key=lambda r: r.rate)
    bench_line("sandbox speed: slowest path vs the fastest steady limit", measured=f"{worst.rate:.0f} req/s "
               f"({worst.mode} {worst.operation})", baseline=f"{fastest:.1f} req/s", ratio=worst.rate / fastest,
               target="> 1", met=worst.rate > fastest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
