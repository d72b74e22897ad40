"""Webhook -> scheduled touchpoint throughput with 1, 2 and 4 workers on PostgreSQL (targets: 4 workers
≥ 3.2x the throughput of 1, 0 duplicates; the webhook endpoint's p99 < 100 ms to enqueue).

The whole path, in real processes over loopback: the sandbox (served on a port, in this process)
records each form submission and delivers Klaviyo's signed system webhook to ``personas serve``
(PostgreSQL mode: verify, record, defer a procrastinate job); ``personas worker`` processes
(``--concurrency 1`` each, so "N workers" is N runs at a time) run the lead-magnet sequencer
against the sandbox, which schedules the first touchpoint. Every Klaviyo call made by a worker is
answered after ``--latency`` seconds (default 0.1 s, a realistic API round trip), as the sandbox's
fault injection does it; the submissions themselves are written straight into the sandbox's store
(``sandbox.seeding``), all at once, so the measured window holds only the service's work.

The demo account's 90 days of event history (28,000 events) are dropped first: the sandbox answers
one request at a time and scans every stored event for a filtered ``get_events`` (about 240 ms each),
which would make the emulated Klaviyo, not the service, the bottleneck. Its flows, lists and
account stay, so every lead's first touchpoint is scheduled as in the demo.

Measured per configuration (a fresh database each):

- throughput: submissions / (last touchpoint - first submission), and its ratio to 1 worker;
- endpoint latency: from the sandbox's POST to the 202 (verify + record + defer), p50 / p99, during
  the run (sharing the cores with the workers and the sandbox), and alone first: 200 deliveries posted
  one after another to the app on PostgreSQL with nothing else of ours running (the target's figure);
- to queue: submission -> run recorded (webhook tick, delivery, endpoint), p50 / p99;
- to touchpoint: submission -> first touchpoint in the outbox, p50 / p99;
- duplicates: runs for one event, sequence starts or first touchpoints beyond one per lead, runs
  attempted more than once (all must be 0).

Run (on the PostgreSQL named by ``PERSONAS_BENCH_DATABASE_URL`` or ``PERSONAS_TEST_DATABASE_URL``, else
on a throwaway local one it starts, as ``graph_overhead.py`` does)::

    python benchmarks/webhook_throughput.py [--leads 40] [--workers 1 2 4] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from klaviyo_sandbox import DEFAULT_DOMAINS, Domain, Faults, Sandbox  # noqa: E402
from klaviyo_sandbox import with_webhook_sender as with_sender  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _postgres import throwaway_postgres  # noqa: E402

TARGET_SPEEDUP = 3.2
TARGET_ENDPOINT_P99 = 0.100
SECRET = "bench-webhook-secret-0123456789"
FORM = "Form submitted by profile"
ANSWERS = {"company_size": "201-1000", "role": "Trip leader", "interest": "guided trips",
           "timeline": "this quarter", "budget": "$5k-$25k"}
#: What the sequencer calls; the latency applies to these (the service's work), not to the set-up.
SEQUENCER_CALLS = ["get_profiles", "get_profile", "get_metrics", "get_events", "create_event", "update_profile"]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_sandbox(sb: Sandbox) -> tuple[str, Any]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(sb.app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}", server


def new_database(base: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + "/" + name


def drop_database(base: str, url: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


class Timings:
    """What the sandbox side sees: endpoint answers and touchpoints, with their times."""

    def __init__(self) -> None:
        self.endpoint: list[float] = []
        self.statuses: list[int] = []
        self.touchpoints: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.client = httpx.Client(timeout=10)

    def send(self, url: str, headers: dict[str, str], body: bytes) -> int:
        started = time.perf_counter()
        status = self.client.post(url, content=body, headers=headers).status_code
        with self.lock:
            self.endpoint.append(time.perf_counter() - started)
            self.statuses.append(status)
        return status

    def on_message(self, svc: Any, entry: Any) -> None:
        event = svc.store.get("event", str(entry.attributes.get("trigger_event_id") or ""))
        metric = svc.store.get("metric", event.linked("metric")[0][1]) if event is not None else None
        first = entry.attributes.get("position") == 1  # the sequence's first message (later ones follow it)
        if first and metric is not None and metric.attributes.get("name") == "Lead Sequence Started":
            with self.lock:
                self.touchpoints.setdefault(str(entry.attributes["profile_id"]), []).append(time.time())


def prepare_leads(sb: Sandbox, n: int, tag: str) -> list[str]:
    """Subscribed leads with a time zone, made through the API before the window (no latency yet)."""
    client = sb.client()
    emails = [f"bench-{tag}-{i}@example.com" for i in range(n)]
    for start in range(0, n, 100):
        chunk = emails[start:start + 100]
        client.call("bulk_subscribe_profiles", custom_source="Trail Guide form", profiles=[
            {"email": e, "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}} for e in chunk])
    sb.settle()
    ids = []
    for email in emails:
        pid = client.call("get_profiles", filter=f"equals(email,'{email}')").data[0]["id"]
        client.call("update_profile", id=pid, location={"timezone": "America/Chicago"})
        ids.append(pid)
    return ids


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "personas.cli", *args], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def measure(base_db: str, workers: int, leads: int, latency: float) -> dict[str, Any]:
    import psycopg

    timings = Timings()
    recorder = Domain("bench-recorder", hooks={"message_scheduled": (timings.on_message,)})
    sb = Sandbox(seed=3, rate_limit_factor=None,
                 domains=(*with_sender(DEFAULT_DOMAINS, timings.send, background=4), recorder))
    with sb.store.lock:  # the demo's 90 days of history: see the module docstring
        for event in sb.store.all("event"):
            sb.store.delete("event", event.id)
    url, server = serve_sandbox(sb)
    db = new_database(base_db)
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"personas-bench-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "KLAVIYO_", "PERSONAS_"))}
    env.update(PERSONAS_HOME=str(home), PERSONAS_DATABASE_URL=db, KLAVIYO_BASE_URL=url,
               KLAVIYO_API_KEY="pk_sandbox_demo", KLAVIYO_WEBHOOK_SECRET=SECRET,
               PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    port = free_port()
    procs: list[subprocess.Popen[str]] = []
    try:
        ids = prepare_leads(sb, leads, f"w{workers}")
        procs.append(start(["serve", "--port", str(port)], env))
        hook = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{hook}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise SystemExit("personas serve did not start: " + (procs[0].stderr.read() if procs[0].stderr else ""))
            time.sleep(0.2)
        sb.client().call("create_webhook", name="bench", endpoint_url=f"{hook}/webhooks/klaviyo", secret_key=SECRET,
                         webhook_topic_ids=["event:klaviyo.form_submitted_by_profile"])
        procs += [start(["worker", "--concurrency", "1"], env) for _ in range(workers)]
        with psycopg.connect(db, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while True:  # every worker up (procrastinate registers each)
                try:
                    up = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()[0]
                except psycopg.Error:
                    up = 0
                if up >= workers:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {up} of {workers} workers started")
                time.sleep(0.2)
        sb.faults = Faults(slow_rate=1.0, delay=latency, operations=SEQUENCER_CALLS)
        submitted: dict[str, float] = {}
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        own0 = time.process_time()  # this process: the sandbox (API and deliveries) and the driver
        t0 = time.time()
        for pid in ids:
            submitted[pid] = time.time()
            sb.seeding.event(pid, FORM, {"form_id": "TRAILG", "form_name": "Trail Guide", **ANSWERS},
                             unique_id=f"form:{pid}")
        deadline = time.monotonic() + max(120, leads * 8 * latency * 2)
        while len(timings.touchpoints) < leads and time.monotonic() < deadline:
            time.sleep(0.05)
        t_end = max((t[0] for t in timings.touchpoints.values()), default=time.time())
        cpu = [cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True)]
        cpu_sandbox = time.process_time() - own0
        time.sleep(1.0)  # anything that would come twice
        with psycopg.connect(db, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT key, created, attempts, status FROM personas_runs WHERE persona = 'lead-magnet-sequencer'"
            ).fetchall()
        event_of = {e.id: e.linked("profile")[0][1] for e in sb.store.all("event")
                    if e.linked("profile") and e.linked("profile")[0][1] in submitted}
        queued = [float(created) - submitted[event_of[key.split(":", 1)[1]]] for key, created, _, _ in rows
                  if key.split(":", 1)[1] in event_of]
        starts = [e for e in sb.store.all("event") if e.linked("profile") and e.linked("profile")[0][1] in submitted
                  and (sb.store.get("metric", e.linked("metric")[0][1]).attributes.get("name")  # type: ignore[union-attr]
                       == "Lead Sequence Started")]
        parts = {
            "runs per event": len(rows) - len({k for k, *_ in rows}),
            "sequence starts": max(0, len(starts) - len({e.linked("profile")[0][1] for e in starts})),
            "touchpoints": sum(len(t) - 1 for t in timings.touchpoints.values()),
            "retried runs": sum(1 for *_, attempts, _ in rows if attempts > 1),
        }
        duplicates = sum(parts.values())
        if duplicates:
            print(f"  duplicates: {parts}", file=sys.stderr)
        done = sum(1 for *_, status in rows if status == "done")
        if len(timings.touchpoints) < leads:  # say why, so a shortfall can be told from a slow run
            with psycopg.connect(db, autocommit=True) as conn:
                why = conn.execute(
                    "SELECT status, coalesce(left(error, 300), outcome, ''), count(*) FROM personas_runs "
                    "WHERE persona = 'lead-magnet-sequencer' GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5"
                ).fetchall()
            print(f"  {leads - len(timings.touchpoints)} of {leads} leads without a touchpoint; "
                  f"{len(rows)} runs recorded, by status and error:", file=sys.stderr)
            for status, error, count in why:
                print(f"    {count} {status}: {error}", file=sys.stderr)
        return {
            "workers": workers, "leads": leads, "done": done, "touchpoints": len(timings.touchpoints),
            "seconds": t_end - t0, "throughput": len(timings.touchpoints) / max(1e-9, t_end - t0),
            "endpoint": timings.endpoint, "statuses": timings.statuses, "queued": queued,
            "touch": [ts[0] - submitted[pid] for pid, ts in timings.touchpoints.items()],
            "duplicates": duplicates,
            "cpu": {"workers": sum(cpu[1:]), "serve": cpu[0], "sandbox": cpu_sandbox},
        }
    finally:
        for proc in reversed(procs):
            stop(proc)
        server.should_exit = True
        drop_database(base_db, db)
        sb.close()


def endpoint_alone(base_db: str, deliveries: int) -> list[float]:
    """The endpoint by itself (no workers, nothing else running here): ``deliveries`` signed deliveries
    posted one after another to ``personas serve``'s app on PostgreSQL; seconds each, to the 202."""
    from starlette.testclient import TestClient

    from klaviyo_toolkit.webhooks import format_timestamp, sign
    from personas.kernel.config import Config
    from personas.service.serving import build_serve_app

    db = new_database(base_db)
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"personas-bench-{uuid.uuid4().hex[:8]}"
    try:
        app = build_serve_app(Config(home=home, database_url=db, webhook_secret=SECRET))
        out = []
        with TestClient(app) as client:
            for n in range(deliveries):
                body = (b'{"data": [{"topic": "event:klaviyo.form_submitted_by_profile", "external_id": "E%d", '
                        b'"payload": {"data": {"type": "event", "id": "E%d", "attributes": {"event_properties": {}}, '
                        b'"relationships": {"profile": {"data": {"type": "profile", "id": "P%d"}}, '
                        b'"metric": {"data": {"type": "metric", "id": "M"}}}}}}], '
                        b'"meta": {"klaviyo_webhook_id": "W"}}' % (n, n, n))
                stamp = format_timestamp(time.time())
                headers = {"Klaviyo-Timestamp": stamp, "Klaviyo-Signature": sign(SECRET, body, stamp),
                           "Klaviyo-Webhook-Id": "W"}
                started = time.perf_counter()
                answer = client.post("/webhooks/klaviyo", content=body, headers=headers)
                out.append(time.perf_counter() - started)
                assert answer.status_code == 202, answer.text
        return out
    finally:
        drop_database(base_db, db)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=40, help="form submissions per configuration")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--latency", type=float, default=0.1, help="seconds before each Klaviyo answer")
    args = parser.parse_args(argv)
    # The server named by PERSONAS_BENCH_DATABASE_URL / PERSONAS_TEST_DATABASE_URL, else a throwaway one
    # on loopback (started here, deleted after), so `python3 dev.py bench` runs this too.
    with throwaway_postgres() as base:
        if not base:
            print('needs a PostgreSQL: install it (apt-get install postgresql), or eval "$(scripts/postgres.sh '
                  'start)" to set PERSONAS_TEST_DATABASE_URL', file=sys.stderr)
            return 2
        return run(args, base)


def run(args: argparse.Namespace, base: str) -> int:
    """Measure against the PostgreSQL at ``base`` and print the table and verdicts."""
    load = os.getloadavg()[0]
    alone = endpoint_alone(base, 200)
    results = []
    for n in args.workers:
        print(f"measuring {n} worker(s), {args.leads} submissions, {args.latency * 1000:.0f} ms per Klaviyo call ...",
              file=sys.stderr, flush=True)
        results.append(measure(base, n, args.leads, args.latency))
    one = results[0]["throughput"]
    print(f"\nWebhook -> scheduled touchpoint on PostgreSQL ({args.leads} submissions each; "
          f"{args.latency * 1000:.0f} ms per Klaviyo call; workers run one lead at a time)\n")
    print("| workers | touchpoints | leads/s | speed-up vs 1 | endpoint p50 / p99 ms | to queue p50 / p99 ms "
          "| to touchpoint p50 / p99 s | duplicates |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['workers']} | {r['touchpoints']}/{r['leads']} | {r['throughput']:.2f} | "
              f"{r['throughput'] / one:.2f}x | "
              f"{pct(r['endpoint'], .5) * 1000:.1f} / {pct(r['endpoint'], .99) * 1000:.1f} | "
              f"{pct(r['queued'], .5) * 1000:.0f} / {pct(r['queued'], .99) * 1000:.0f} | "
              f"{pct(r['touch'], .5):.2f} / {pct(r['touch'], .99):.2f} | {r['duplicates']} |")
    print("\nCPU seconds per lead in the measured window (workers / personas serve / the sandbox and this "
          "driver), and the cores that rate kept busy:")
    for r in results:
        c, n = r["cpu"], max(1, r["touchpoints"])
        busy_cores = sum(c.values()) / max(1e-9, r["seconds"])
        print(f"  {r['workers']} worker(s): {c['workers'] / n:.3f} / {c['serve'] / n:.3f} / {c['sandbox'] / n:.3f} s; "
              f"{busy_cores:.2f} of {os.cpu_count()} cores")
    ok = True
    if 4 in args.workers and 1 in args.workers:
        four = next(r for r in results if r["workers"] == 4)["throughput"] / one
        met = four >= TARGET_SPEEDUP
        ok &= met
        print(f"\n4 workers vs 1: {four:.2f}x (target ≥ {TARGET_SPEEDUP}x, ratio {four / TARGET_SPEEDUP:.2f}): "
              f"{'MET' if met else 'NOT MET'}")
    p99 = pct(alone, .99)
    ok &= p99 < TARGET_ENDPOINT_P99
    print(f"webhook endpoint alone ({len(alone)} deliveries one after another, PostgreSQL): p50 "
          f"{pct(alone, .5) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms (target < {TARGET_ENDPOINT_P99 * 1000:.0f} ms, "
          f"ratio {p99 / TARGET_ENDPOINT_P99:.2f}): {'MET' if p99 < TARGET_ENDPOINT_P99 else 'NOT MET'}")
    busy = max(pct(r["endpoint"], .99) for r in results)
    print(f"webhook endpoint p99 while the workers run (the same cores): {busy * 1000:.1f} ms "
          f"(ratio to the target {busy / TARGET_ENDPOINT_P99:.2f})")
    print(f"machine: {os.cpu_count()} cores; load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    dupes = sum(r["duplicates"] for r in results)
    lost = sum(r["leads"] - r["touchpoints"] for r in results)
    print(f"duplicates: {dupes} (target 0): {'MET' if dupes == 0 else 'NOT MET'}; leads without a touchpoint: {lost}")
    bad = [s for r in results for s in r["statuses"] if s != 202]
    if bad:
        print(f"endpoint answers other than 202: {bad[:10]}")
    return 0 if ok and dupes == 0 and lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
