"""The service commands as a person runs them (subprocesses of ``personas``): without the ``[server]``
extra, a busy port, a missing secret, a ``--sandbox-state`` in a folder that does not exist, and the
``--debug`` hint. An extra is made missing for one process by a folder on PYTHONPATH whose package of
that name fails to import, as an absent one does."""

from __future__ import annotations

import contextlib
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.ports import free_port  # one picker for every server a test starts
from tests.warm_cli import run_personas

from .conftest import PERSONAS, ROOT, child_env


def without(tmp_path: Path, *modules: str, error: str = "ModuleNotFoundError") -> str:
    """A PYTHONPATH folder on which ``modules`` cannot be imported (``error`` raised, as if absent)."""
    folder = tmp_path / "hide"
    for name in modules:
        package = folder / name
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(f'raise {error}("No module named {name!r}", name={name!r})\n'
                                             if error == "ModuleNotFoundError" else f"raise {error}('broken')\n")
    return str(folder)


def personas(tmp_path: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return run_personas([str(PERSONAS), *args], env=child_env(tmp_path / "home", HOME=str(tmp_path), **env),
                          cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_runs_and_watch_work_without_the_server_extra(tmp_path: Path) -> None:
    hide = without(tmp_path, "prometheus_client", "croniter", "procrastinate", "psycopg", "psycopg_pool")
    runs = personas(tmp_path, "runs", "--status", "failed", PYTHONPATH=hide)
    assert runs.returncode == 0 and runs.stdout.strip() == "no runs yet", runs.stderr
    watch = personas(tmp_path, "watch", "lead-magnet-sequencer", "--once", "--sandbox", PYTHONPATH=hide)
    assert watch.returncode == 0 and watch.stdout.strip().endswith("new event(s)"), watch.stderr


def test_what_needs_the_extra_says_so_in_one_line(tmp_path: Path) -> None:
    hide = without(tmp_path, "procrastinate", "psycopg", "psycopg_pool", "croniter")
    url = "postgresql://user:pw@127.0.0.1:9/db"
    for args in (["worker"], ["runs"], ["watch", "lead-magnet-sequencer", "--once"]):
        proc = personas(tmp_path, *args, PYTHONPATH=hide, PERSONAS_DATABASE_URL=url)
        line = one_error_line(proc)
        assert proc.returncode == 2 and "[server] extra" in line and "procrastinate" in line, line
        assert f"pip install -e '{ROOT}[server]'" in line or "pip install 'klaviyo-personas[server]'" in line
        assert "pw" not in line


def test_serve_without_metrics_and_croniter_serves_and_says_what_is_off(tmp_path: Path) -> None:
    port = free_port()
    hide = without(tmp_path, "prometheus_client", "croniter")
    env = child_env(tmp_path / "home", HOME=str(tmp_path), PYTHONPATH=hide, KLAVIYO_WEBHOOK_SECRET="s")
    proc = subprocess.Popen([str(PERSONAS), "serve", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.3)
        assert health.status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert metrics.status_code == 503 and "[server] extra" in metrics.text
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert f"personas serve on http://127.0.0.1:{port}" in err
    assert "prometheus-client is not installed" in err and "croniter is not installed" in err


def test_serve_checks_before_it_says_it_is_serving(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = str(busy.getsockname()[1])
        taken = personas(tmp_path, "serve", "--port", port, KLAVIYO_WEBHOOK_SECRET="s")
    line = one_error_line(taken)
    assert taken.returncode == 2 and f"port {port}" in line and "already in use" in line
    no_secret = personas(tmp_path, "serve", "--port", str(free_port()))
    assert no_secret.returncode == 2 and "KLAVIYO_WEBHOOK_SECRET" in one_error_line(no_secret)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "segment-syncer", "--input", "{{}}", "--sandbox-state", "{missing}"],
        ["demo", "--sandbox-state", "{missing}"],
        ["sandbox", "serve", "--port", "{port}", "--sandbox-state", "{missing}"],
        ["watch", "lead-magnet-sequencer", "--once", "--sandbox-state", "{missing}"],
    ],
)
def test_a_sandbox_state_in_a_missing_folder_is_one_line(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "no" / "such" / "state.sqlite"
    filled = [a.format(missing=missing, port=free_port()) for a in args]
    proc = personas(tmp_path, *filled)
    line = one_error_line(proc)  # and no banner before it
    assert proc.returncode == 2 and str(missing) in line and f"folder {missing.parent} does not exist" in line


@pytest.mark.parametrize("kind", ["text", "audit-log", "audit-log#named?oddly"])
def test_a_sandbox_state_that_is_another_file_is_one_line_and_left_as_it_was(tmp_path: Path, kind: str) -> None:
    """A text file, or another SQLite database (the audit log), whatever its name holds ('#' and '?'
    end a URI's path): refused, and not filled with sandbox tables."""
    if kind == "text":
        other = tmp_path / "notes.sqlite"
        other.write_text("not a database\n")
    else:
        other = tmp_path / f"{kind}.sqlite"
        with contextlib.closing(sqlite3.connect(other)) as db:
            db.execute("CREATE TABLE audit_log (id INTEGER PRIMARY KEY)")
            db.commit()
    before = other.read_bytes()
    proc = personas(tmp_path, "run", "campaign-reporter", "--input", "{}", "--sandbox-state", str(other))
    line = one_error_line(proc)
    assert proc.returncode == 2 and f"--sandbox-state {other}" in line and "give a new file name" in line
    assert other.read_bytes() == before
    made = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("audit-log"))
    assert made == ([] if kind == "text" else [other.name]), "no stray file was made from a cut name"


def test_the_debug_hint_is_a_command_that_works(tmp_path: Path) -> None:
    from personas.kernel.config import Config
    from personas.service.store import RunStore

    store = RunStore.open(Config(home=tmp_path / "home"))  # a run to retry: an unknown id is refused before
    run, _ = store.create_run("lead-magnet-sequencer", "k-1", "webhook", {}, status="failed", error="boom")
    store.close()
    hide = without(tmp_path, "prometheus_client", error="RuntimeError")  # an unexpected error
    proc = personas(tmp_path, "runs", "retry", run.id, PYTHONPATH=hide)  # the service imports its metrics
    line = one_error_line(proc)
    assert proc.returncode == 1 and "personas --debug runs ..." in line, line
    hinted = personas(tmp_path, "--debug", "runs", "retry", run.id, PYTHONPATH=hide)
    assert "Traceback" in hinted.stderr and "RuntimeError: broken" in hinted.stderr
    assert "No such option" not in hinted.stderr
