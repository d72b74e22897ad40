"""The tests' warm ``personas`` (``tests/warm_cli.py``) behaves as a ``personas`` process of its own.

Most CLI tests run their commands through it, so what it gets wrong they would not see: each
command here runs both ways, warm and cold (``PERSONAS_TESTS_COLD=1``, a fresh process), and must
end the same, with the same output: a help text, a usage error (exit 2), a command reading stdin,
``python -m personas.cli``; a command past its timeout is killed, as ``subprocess.run`` kills it.
(``tests/cli/test_audit_filters.py`` shows local times from ``TZ``, which the warm process reads again.)
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests import warm_cli
from tests.cli.conftest import PERSONAS, child_env
from tests.warm_cli import run_personas

#: case -> (the command, its stdin, the exit code it ends with)
CASES = {
    "help": ([str(PERSONAS), "--help"], None, 0),
    "a usage error": ([str(PERSONAS), "audit", "--since", "garbage"], None, 2),
    "a persona's tools": ([str(PERSONAS), "tools", "list", "--persona", "lead-magnet-sequencer"], None, 0),
    "stdin": ([str(PERSONAS), "chat", "klaviyo-assistant", "--sandbox"], "/exit\n", 0),
    "python -m": ([sys.executable, "-m", "personas.cli", "list"], None, 0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_command_ends_the_same_warm_and_cold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    cmd, stdin, code = CASES[case]
    done = []
    for cold in ("1", ""):
        monkeypatch.setenv("PERSONAS_TESTS_COLD", cold)
        before = warm_cli._warm.served if warm_cli._warm else 0
        done.append(run_personas(cmd, env=child_env(tmp_path), input=stdin, capture_output=True, text=True,
                                 timeout=120))  # fmt: skip
        forked = (warm_cli._warm.served if warm_cli._warm else 0) - before
        assert forked == (0 if cold else 1), f"cold={cold!r}: {forked} command(s) forked from the warm process"
    cold_run, warm_run = done
    assert (warm_run.returncode, warm_run.stdout, warm_run.stderr) == (
        cold_run.returncode, cold_run.stdout, cold_run.stderr)  # fmt: skip
    assert warm_run.returncode == code, warm_run.stderr


def test_a_command_past_its_timeout_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERSONAS_TESTS_COLD", raising=False)
    from tests.ports import free_port

    port = free_port()
    serve = [str(PERSONAS), "sandbox", "serve", "--port", str(port), "--empty"]
    served: list[bool] = []

    def knock() -> None:  # while the command runs: it does serve
        deadline = time.monotonic() + 10
        while not served and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                served.append(True)
            time.sleep(0.1)

    knocking = threading.Thread(target=knock)
    knocking.start()
    with pytest.raises(subprocess.TimeoutExpired):
        run_personas(serve, env=child_env(tmp_path), capture_output=True, text=True, timeout=8)
    knocking.join()
    assert served, "the sandbox never served before its timeout"
    with pytest.raises(OSError):  # killed: nothing serves on its port any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_warm_process_that_ended_is_replaced_and_the_command_still_runs(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERSONAS_TESTS_COLD", raising=False)
    cmd = [str(PERSONAS), "audit", "--since", "garbage"]
    first = run_personas(cmd, env=child_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert warm_cli._warm is not None
    warm_cli._warm.proc.kill()  # as if the machine had killed it
    warm_cli._warm.proc.wait()
    again = run_personas(cmd, env=child_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert again.returncode == first.returncode == 2 and again.stderr == first.stderr, again.stderr
    run_personas(cmd, env=child_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert warm_cli._warm is not None and warm_cli._warm.proc.poll() is None  # a new one serves
