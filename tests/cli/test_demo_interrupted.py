"""``personas demo`` stopped with Ctrl-C part-way, then run again in the same HOME.

Typer turned the Ctrl-C into a silent exit 130: the terminal showed nothing but ``^C``. Now the one
line every error gets says it was interrupted; the next demo in the same state folder runs whole.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.warm_cli import run_personas

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(HOME=str(tmp_path), PERSONAS_HOME=str(tmp_path / "state"), PYTHONPATH=str(ROOT), COLUMNS="200",
               NO_COLOR="1", PYTHONUNBUFFERED="1", PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    return env


def test_ctrl_c_in_the_demo_says_so_and_the_next_demo_runs_whole(tmp_path: Path) -> None:
    # Ctrl-C as a terminal delivers it, whatever this test was started from: a shell's background job
    # (``nohup .ci/run &`` from a script) ignores SIGINT, its children inherit that, and a Python
    # started so takes no KeyboardInterrupt at all; the demo then ran to its end and exited 0.
    demo = subprocess.Popen([sys.executable, "-m", "personas.cli", "demo"], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert demo.stdout is not None
    deadline = time.monotonic() + 120
    for line in demo.stdout:  # mid-way: the first lead has been shown, its run is under way
        if "Lead 1:" in line or time.monotonic() > deadline:
            break
    demo.send_signal(signal.SIGINT)
    _, err = demo.communicate(timeout=120)
    assert demo.returncode == 130, err
    assert err.strip().endswith("error: interrupted (Ctrl-C)"), err
    assert "Traceback" not in err

    again = run_personas([sys.executable, "-m", "personas.cli", "demo"], cwd=tmp_path, env=_env(tmp_path),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("Outcome: sent: sequence") == 3 and "Done in" in again.stdout
