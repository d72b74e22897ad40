"""``personas run`` as scripts use it: the thread id is shown before the run does anything (so a
killed run can be continued), ``--retry`` of a finished thread is success, and a lead Klaviyo has
no profile for is a failure, not a quiet "done"."""

from __future__ import annotations

import json
import re
import selectors
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.warm_cli import run_personas

from .conftest import PERSONAS, child_env, free_port
from .make_form_submission import capture

THREAD_LINE = re.compile(r"^thread (\S+): ")


def personas(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_personas([str(PERSONAS), *args], env=child_env(home, **env), cwd=home, capture_output=True,
                          text=True, timeout=180)


@pytest.fixture(scope="module")
def submission(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded Trail Guide submission of the seed-42 sandbox, as a file."""
    path = tmp_path_factory.mktemp("input") / "submission.json"
    path.write_text(json.dumps(capture()), encoding="utf-8")
    return path


def test_retry_of_a_finished_thread_succeeds_and_says_so(tmp_path: Path, submission: Path) -> None:
    """A script that retries until the command succeeds must stop once the run finished (as
    --resume of a finished thread does): exit 0, nothing run again."""
    state = tmp_path / "sandbox.sqlite"
    common = ["--sandbox-state", str(state), "--thread", "finished-once"]
    first = personas(tmp_path, "run", "lead-magnet-sequencer", "--input", str(submission), *common)
    assert first.returncode == 0 and "Outcome: sent" in first.stdout, first.stdout + first.stderr
    for _ in range(2):
        again = personas(tmp_path, "run", "lead-magnet-sequencer", "--retry", *common)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "thread 'finished-once' has nothing left to run; it finished" in again.stderr
        assert "Traceback" not in again.stderr and "error" not in again.stderr


def test_a_lead_klaviyo_has_no_profile_for_fails_the_command(tmp_path: Path) -> None:
    ghost = {"data": {"type": "event", "id": "EVTGHOST01", "attributes": {
        "datetime": "2026-03-10T14:59:00+00:00",
        "event_properties": {"email": "ghost.lead@example.com", "form_id": "TRAILG", "form_name": "Trail Guide"}}}}
    proc = personas(tmp_path, "run", "lead-magnet-sequencer", "--input", json.dumps(ghost), "--sandbox")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: no Klaviyo profile has the email ghost.lead@example.com")


@pytest.fixture
def silent_port() -> Iterator[tuple[int, socket.socket]]:
    """A port that accepts connections and never answers: a Klaviyo that hangs."""
    port = free_port()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    yield port, listener
    listener.close()


def first_stderr_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stderr is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        if not sel.select(timeout):
            pytest.fail(f"nothing on stderr in {timeout} s")
        return proc.stderr.readline()


def serve_sandbox(port: int, home: Path, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([str(PERSONAS), "sandbox", "serve", "--port", str(port)], env=child_env(home),
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/sandbox", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the sandbox server did not start:\n{log.read_text()}")
        time.sleep(0.2)


def test_a_run_killed_before_it_ends_has_shown_its_thread_and_can_be_retried(
    tmp_path: Path, submission: Path, silent_port: tuple[int, socket.socket]
) -> None:
    """Output to a pipe, no --thread: the made-up thread id is on stderr before the first call to
    Klaviyo, so a run killed while it waits can be continued with --retry."""
    port, listener = silent_port
    env = child_env(tmp_path, KLAVIYO_BASE_URL=f"http://127.0.0.1:{port}", KLAVIYO_API_KEY="pk_sandbox_demo")
    run = subprocess.Popen([str(PERSONAS), "run", "lead-magnet-sequencer", "--input", str(submission)], env=env,
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = first_stderr_line(run, timeout=60)
        found = THREAD_LINE.match(line)
        assert found, line
        thread = found.group(1)
        assert thread.startswith("lead-magnet-sequencer-") and f"--thread {thread} --retry" in line, line
        listener.settimeout(60)
        conn, _ = listener.accept()  # the run's first call reached "Klaviyo" (and waits for an answer)
    finally:
        run.kill()
        run.wait()
    conn.close()
    listener.close()

    server = serve_sandbox(port, tmp_path / "server-home", tmp_path / "server.log")
    try:
        again = run_personas([str(PERSONAS), "run", "lead-magnet-sequencer", "--thread", thread, "--retry"],
                               env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"(thread {thread})" in again.stdout and "Outcome: sent" in again.stdout
    assert not THREAD_LINE.match(again.stderr), "a thread given is not announced again"
