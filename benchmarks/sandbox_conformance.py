"""Sandbox conformance: property-based checks of every operation against Klaviyo's spec, and the SDK sweep.

Runs ``tests/sandbox/properties.py`` over all 345 stable operations (204 GETs, 141 writes) of the
seeded demo account, with more cases than the slow test set: for each operation ``--examples``
positive cases (valid requests with drawn optional parts) and about as many negative ones (requests
Klaviyo refuses). Findings: a 5xx; an answer that breaks the spec's schema for its status, its
content type or the rate-limit headers; a negative case answered 2xx. Targets: none of either.
Then Klaviyo's Python SDK for the sandbox's revision calls every method it has (target: at least
130 methods pass).

``--port`` serves the sandbox with uvicorn on a local port and sends every case over TCP (the
served sandbox); without it the cases go in-process through the same ASGI app.

Run::

    python benchmarks/sandbox_conformance.py                  # 40 + ~40 cases per operation, ~3 min
    python benchmarks/sandbox_conformance.py --examples 10 --port
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as _dt
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from klaviyo_sandbox import Sandbox  # noqa: E402
from klaviyo_toolkit.catalog import load_catalog  # noqa: E402
from klaviyo_toolkit.clock import ManualClock  # noqa: E402
from klaviyo_toolkit.ratelimit import RateLimiter  # noqa: E402
from tests.sandbox.conftest import serve  # noqa: E402
from tests.sandbox.properties import Cases, Tally, check  # noqa: E402
from tests.sandbox.test_conformance import Fixtures  # noqa: E402

NOW = _dt.datetime(2026, 11, 25, 15, 0, tzinfo=_dt.UTC).timestamp()
MIN_SDK_METHODS = 130


@contextlib.contextmanager
def http_for(sb: Sandbox, port: bool) -> Iterator[httpx.Client]:
    if not port:
        with httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL) as http:
            yield http
        return
    with serve(sb.app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        yield http


def run_properties(examples: int, seed: int, port: bool) -> tuple[list[Tally], float]:
    sb = Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock(NOW))
    client = sb.client(rate_limiter=RateLimiter(factor=None), clock=ManualClock())
    cases = Cases(sb, Fixtures(sb, client))
    ops = sorted(load_catalog(), key=lambda op: (op.method == "DELETE", op.method != "GET", op.operation_id))
    started = time.perf_counter()
    with http_for(sb, port) as http:
        tallies = [check(sb, http, op, cases, examples=examples, seed_value=seed) for op in ops]
    return tallies, time.perf_counter() - started


def run_sdk() -> tuple[int, dict[str, str]]:
    """(SDK methods that passed, failures): the sweep of tests/sandbox/test_sdk.py, counted."""
    import klaviyo_api
    from openapi_client.exceptions import ApiException

    from klaviyo_toolkit.errors import KlaviyoError
    from tests.sandbox.sweep import minimal_args
    from tests.sandbox.test_conformance import ARGS
    from tests.sandbox.test_sdk import sdk_arguments, sdk_methods

    sb = Sandbox(seed=42, rate_limit_factor=None, validate_responses=True, clock=ManualClock(NOW))
    ours = sb.client(rate_limiter=RateLimiter(factor=None), clock=ManualClock())
    fixtures = Fixtures(sb, ours)
    catalog = load_catalog()
    passed, failed = 0, {}
    with serve(sb.app) as base_url:
        sdk = klaviyo_api.KlaviyoAPI("pk_sandbox_demo", max_delay=0, max_retries=0, test_host=base_url)
        methods = sdk_methods(sdk)
        for op in catalog:
            if op.operation_id not in methods or (op.body and op.body.get("root") == "form"):
                continue
            method, function = methods[op.operation_id]
            if "/push-tokens/{id}" in op.path and not sb.store.count("push-token"):
                ours.call("create_push_token", **minimal_args(catalog.get("create_push_token"), sb))
            try:
                args = minimal_args(op, sb)
                if op.operation_id in ARGS:
                    args.update(ARGS[op.operation_id](fixtures))
                positional, keywords = sdk_arguments(function, op, ours.prepare(op, args), args)
                method(*positional, **keywords)
                passed += 1
            except (ApiException, KlaviyoError, ValueError, TypeError) as exc:
                failed[op.operation_id] = str(exc)[:200]
    return passed, failed


def render(tallies: list[Tally], seconds: float, sdk: tuple[int, dict[str, str]] | None, examples: int,
           seed: int, port: bool) -> str:
    groups: dict[str, list[Tally]] = collections.defaultdict(list)
    for t in tallies:
        groups["GET" if t.method == "GET" else "write"].append(t)
    lines = [f"Sandbox conformance: property-based cases against Klaviyo's spec (seed {seed}, up to {examples} "
             f"positive and ~{examples} negative cases per operation, {'over a port' if port else 'in-process'}; "
             f"{seconds:.0f} s)", "",
             f"{'operations':<11} {'count':>5} {'clean':>5} {'cases':>6} {'positive':>8} {'2xx':>6} {'negative':>8} "
             f"{'5xx':>4} {'mismatch':>8} {'neg.2xx':>7}",
             f"{'-' * 11} {'-' * 5} {'-' * 5} {'-' * 6} {'-' * 8} {'-' * 6} {'-' * 8} {'-' * 4} {'-' * 8} {'-' * 7}"]
    for name in ("GET", "write"):
        ts = groups[name]
        lines.append(
            f"{name:<11} {len(ts):>5} {sum(t.clean for t in ts):>5} {sum(t.cases for t in ts):>6} "
            f"{sum(t.positive for t in ts):>8} {sum(t.accepted_positives for t in ts):>6} "
            f"{sum(t.negative for t in ts):>8} {sum(len(t.server_errors) for t in ts):>4} "
            f"{sum(len(t.mismatches) for t in ts):>8} {sum(len(t.accepted_negatives) for t in ts):>7}")
    errors = sum(len(t.server_errors) for t in tallies)
    mismatches = sum(len(t.mismatches) for t in tallies)
    negatives = sum(len(t.accepted_negatives) for t in tallies)
    clean = sum(t.clean for t in tallies)
    lines += ["", f"Operations clean: {clean}/{len(tallies)} (ratio {clean / len(tallies):.3f})",
              f"Target (0 HTTP 5xx, 0 schema mismatches, 0 negative cases accepted): "
              f"{'MET' if not (errors or mismatches or negatives) else 'NOT MET'} "
              f"({errors} 5xx, {mismatches} mismatches, {negatives} negatives accepted)"]
    for t in tallies:
        for found in t.problems()[:3]:
            lines.append(f"  {t.operation}: {found[:220]}")
    if sdk is not None:
        passed, failed = sdk
        met = "MET" if passed >= MIN_SDK_METHODS and not failed else "NOT MET"
        lines += [f"Klaviyo's SDK (klaviyo-api, revision {load_catalog().revision}): {passed} methods pass, "
                  f"{len(failed)} fail; target >= {MIN_SDK_METHODS}: {met} (ratio {passed / MIN_SDK_METHODS:.2f})"]
        lines += [f"  {op}: {why}" for op, why in failed.items()]
    lines.append(f"Machine: {platform.machine()} {platform.system()}, Python {platform.python_version()}; "
                 f"{_dt.date.today().isoformat()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--examples", type=int, default=40, help="positive cases per operation (negatives alike)")
    parser.add_argument("--seed", type=int, default=20260715, help="hypothesis seed (the same seed, the same cases)")
    parser.add_argument("--port", action="store_true", help="send the cases to the sandbox served on a local port")
    parser.add_argument("--no-sdk", action="store_true", help="skip the SDK sweep")
    args = parser.parse_args(argv)
    tallies, seconds = run_properties(args.examples, args.seed, args.port)
    sdk: Any = None if args.no_sdk else run_sdk()
    print(render(tallies, seconds, sdk, args.examples, args.seed, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
