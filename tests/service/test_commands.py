"""The commands as a user runs them, in real processes over real ports: ``personas serve`` receiving
the sandbox's webhooks over loopback, ``personas watch --once``, ``personas runs`` and ``runs retry``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from klaviyo_sandbox import Faults, Sandbox
from tests.graphs.leads import HOT, first_touchpoints, sign_up
from tests.warm_cli import run_personas

from .conftest import SECRET, free_port, register_webhook, serve_app


def env_for(home: Path, klaviyo_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "KLAVIYO_", "PERSONAS_"))}
    env.update(PERSONAS_HOME=str(home), KLAVIYO_BASE_URL=klaviyo_url, KLAVIYO_API_KEY="pk_sandbox_demo",
               KLAVIYO_WEBHOOK_SECRET=SECRET, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", **extra)
    return env


def personas(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_personas([sys.executable, "-m", "personas.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def served() -> Iterator[tuple[Sandbox, str]]:
    sb = Sandbox(seed=13, rate_limit_factor=None)  # the default sender: real HTTP to the webhook's URL
    with serve_app(sb.app) as url:
        yield sb, url
    sb.close()


def wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_personas_serve_turns_a_form_submission_into_a_touchpoint(tmp_path: Path, served: tuple[Sandbox, str]) -> None:
    sb, url = served
    port = free_port()
    env = env_for(tmp_path / "home", url)
    server = subprocess.Popen([sys.executable, "-m", "personas.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(base), 60, "personas serve to listen")
        register_webhook(sb, url=f"{base}/webhooks/klaviyo")
        event = sign_up(sb, "served@example.com", HOT)
        pid = event["data"]["relationships"]["profile"]["data"]["id"]
        # the served sandbox delivers on its own clock tick; the service runs the sequencer
        wait_until(lambda: len(first_touchpoints(sb, pid)) == 1, 60, "the touchpoint")
        # the run goes on after the send (it reads the start back, then records it): wait for its end
        wait_until(lambda: 'personas_runs_finished_total{status="done"} 1.0' in httpx.get(f"{base}/metrics").text,
                   60, "the run to finish")
        refused = httpx.post(f"{base}/webhooks/klaviyo", content=b"{}", headers={"Klaviyo-Signature": "0" * 64})
        assert refused.status_code == 401
        metrics = httpx.get(f"{base}/metrics").text
        assert 'personas_runs_finished_total{status="done"} 1.0' in metrics
        assert 'personas_klaviyo_call_seconds_count{operation="create_event"} 1.0' in metrics
    finally:
        server.terminate()
        log = server.communicate(timeout=20)[1]
    assert SECRET not in log
    listed = personas(env, "runs", "--json")
    runs = json.loads(listed.stdout)
    assert [(r["persona"], r["trigger"], r["status"], r["key"]) for r in runs] == [
        ("lead-magnet-sequencer", "webhook", "done", f"event:{event['data']['id']}")
    ]


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_watch_once_then_runs_and_retry(tmp_path: Path, served: tuple[Sandbox, str]) -> None:
    sb, url = served
    env = env_for(tmp_path / "home", url)
    event = sign_up(sb, "polled@example.com", HOT)
    sb.faults = Faults(error_rate=1.0, status=400, operations=["create_event"])  # the send is refused
    watched = personas(env, "watch", "lead-magnet-sequencer", "--once")
    assert watched.returncode == 0, watched.stderr
    assert "1 new event(s)" in watched.stdout
    failed = json.loads(personas(env, "runs", "--status", "failed", "--json").stdout)
    assert len(failed) == 1 and "400" in failed[0]["error"]
    text = personas(env, "runs", "--persona", "lead-magnet-sequencer")
    assert "failed" in text.stdout and failed[0]["id"] in text.stdout
    sb.faults = Faults()
    retried = personas(env, "runs", "retry", failed[0]["id"])
    assert retried.returncode == 0 and "done" in retried.stdout, retried.stderr
    again = personas(env, "watch", "lead-magnet-sequencer", "--once")
    assert "0 new event(s)" in again.stdout
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    assert len(first_touchpoints(sb, pid)) == 1
    bad = personas(env, "runs", "retry", failed[0]["id"])
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "only a failed run" in bad.stderr


def test_worker_without_postgres_says_what_to_do(tmp_path: Path) -> None:
    done = personas(env_for(tmp_path / "home", "http://127.0.0.1:9"), "worker")
    assert done.returncode == 2 and "PERSONAS_DATABASE_URL" in done.stderr and "personas serve" in done.stderr


def test_serve_without_a_secret_says_what_to_do(tmp_path: Path) -> None:
    env = env_for(tmp_path / "home", "http://127.0.0.1:9")
    env.pop("KLAVIYO_WEBHOOK_SECRET")
    done = personas(env, "serve", "--port", str(free_port()))
    assert done.returncode == 2 and "KLAVIYO_WEBHOOK_SECRET" in done.stderr


def test_runs_refuses_a_limit_below_one_and_a_persona_that_does_not_exist(tmp_path: Path) -> None:
    env = env_for(tmp_path / "home", "http://127.0.0.1:9")
    for limit in ("0", "-1"):
        done = personas(env, "runs", "--limit", limit)
        assert done.returncode == 2 and "--limit" in done.stderr and "Traceback" not in done.stderr
    done = personas(env, "runs", "--persona", "nope")
    assert done.returncode == 2 and "no such persona" in done.stderr and "lead-magnet-sequencer" in done.stderr
    assert personas(env, "runs", "--persona", "campaign-reporter").returncode == 0


def test_a_watcher_keeps_watching_while_klaviyo_is_away(tmp_path: Path) -> None:
    """A long-running `personas watch` says a poll failed and tries again; only --once fails."""
    port_env = env_for(tmp_path / "home", "http://127.0.0.1:9")  # nothing listens there
    once = personas(port_env, "watch", "lead-magnet-sequencer", "--once")
    assert once.returncode == 1 and "cannot reach" in once.stderr
    log = tmp_path / "watch.err"
    with log.open("w") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "personas.cli", "watch", "lead-magnet-sequencer", "--every", "0.5"],
            env=port_env, stdout=subprocess.DEVNULL, stderr=errors, text=True)
    try:
        # each failed poll takes the client's own retries first (about 4 s); a busy machine adds its
        # start-up: wait for two failed polls (it went on after the first), up to a minute
        deadline = time.monotonic() + 60
        while log.read_text().count("this poll failed") < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    err = log.read_text()
    assert err.count("this poll failed") >= 2 and "trying again in 0.5 s" in err, err


def test_a_second_machine_given_what_the_refusal_names_shares_the_postgres_audit_log(
    tmp_path: Path, pg_url: str
) -> None:
    """docs/deploy.md: every machine needs the first one's audit key. A fresh home is refused, naming the files
    to copy; with those copied (the vault, its head record, the vault key) its runs append to the same log."""
    import shutil

    first, second = tmp_path / "first", tmp_path / "second"
    report = ("run", "campaign-reporter", "--input", "{}", "--sandbox")
    envs = {home: env_for(home, "http://127.0.0.1:9", PERSONAS_DATABASE_URL=pg_url) for home in (first, second)}
    done = personas(envs[first], *report)
    assert done.returncode == 0, done.stderr
    refused = personas(envs[second], *report)
    assert refused.returncode != 0 and "another audit key" in refused.stderr, refused.stderr
    named = [name for name in ("vault.sqlite", "vault.audit.head", "vault key") if name in refused.stderr]
    assert named == ["vault.sqlite", "vault.audit.head", "vault key"], refused.stderr
    shutil.rmtree(second)
    second.mkdir(mode=0o700)
    for name in ("vault.sqlite", "vault.audit.head", "vault.key"):
        shutil.copy2(first / name, second / name)
    for home in (second, first):
        done = personas(envs[home], *report)
        assert done.returncode == 0, done.stderr
        verified = personas(envs[home], "audit", "verify")
        assert verified.returncode == 0 and "chain intact" in verified.stdout, verified.stdout + verified.stderr
