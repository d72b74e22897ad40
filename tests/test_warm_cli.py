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

CASES = {
    "help": (["--help"], {}, None),
    "a usage error": (["audit", "--since", "garbage"], {}, None),
    "a persona's tools": (["tools", "list", "--persona", "lead-magnet-sequencer"], {}, None),
    "stdin": (["chat", "klaviyo-assistant", "--sandbox"], {}, "/exit\n"),
    "python -m": ([], {}, None),
}


def both(monkeypatch: pytest.MonkeyPatch, cmd: list[str], env: dict[str, str], stdin: str | None
         ) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:  # fmt: skip
    done = []
    for cold in ("1", ""):
        monkeypatch.setenv("PERSONAS_TESTS_COLD", cold)
        done.append(run_personas(cmd, env=env, input=stdin, capture_output=True, text=True, timeout=120))
    return done[0], done[1]


@pytest.mark.parametrize("case", list(CASES))
def test_a_command_ends_the_same_warm_and_cold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    args, extra, stdin = CASES[case]
    cmd = [sys.executable, "-m", "personas.cli", "list"] if case == "python -m" else [str(PERSONAS), *args]
    cold, warm = both(monkeypatch, cmd, child_env(tmp_path, **extra), stdin)
    assert (warm.returncode, warm.stdout, warm.stderr) == (cold.returncode, cold.stdout, cold.stderr)
    assert warm.returncode == (2 if case == "a usage error" else 0), warm.stderr


def test_a_command_past_its_timeout_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERSONAS_TESTS_COLD", raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
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
    assert (again.returncode, again.stderr) == (first.returncode, first.stderr) == (2, first.stderr)
    run_personas(cmd, env=child_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert warm_cli._warm is not None and warm_cli._warm.proc.poll() is None  # a new one serves
