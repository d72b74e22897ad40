"""`personas auth login --oauth` with a --port or --timeout no login can use: one line naming the flag
and its range, exit 2, before anything listens or is asked of Klaviyo (a port past 65535 was an
OverflowError from bind(), exit 1; a negative wait timed out at once, a NaN one never did).

Real processes: the CLI as a subprocess, and the loopback listener itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from klaviyo_toolkit.errors import ToolkitUsageError
from klaviyo_toolkit.oauth_loopback import LoopbackRedirect

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--port", "99999"], "--port 99999 is not a port; give one from 1 to 65535"),
        (["--port", "-1"], "--port -1 is not a port"),
        (["--timeout", "-5"], "--timeout -5.0 is not a wait"),
        (["--timeout", "nan"], "--timeout nan is not a wait"),
    ],
)
def test_a_port_or_wait_no_login_can_use_is_one_line_naming_the_flag(
    tmp_path: Path, flags: list[str], says: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLAVIYO_", "PERSONAS_", "OPENAI_"))}
    env.update(PERSONAS_HOME=str(tmp_path), PYTHONPATH=str(ROOT), KLAVIYO_CLIENT_ID="sbx-client",
               KLAVIYO_CLIENT_SECRET="sbx-secret", KLAVIYO_BASE_URL="http://127.0.0.1:9")  # fmt: skip
    argv = [sys.executable, "-m", "personas.cli", "auth", "login", "shop", "--oauth", "--no-browser"]
    done = subprocess.run([*argv, "--scopes", "lists:read", *flags], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "nothing was stored" in lines[0], lines
    assert "authorize" not in done.stdout, "nothing was listened for"


@pytest.mark.parametrize("port", [65536, -1, 10**6])
def test_the_listener_refuses_a_port_out_of_range_as_a_usage_error(port: int) -> None:
    with pytest.raises(ToolkitUsageError, match="is not a port to listen on"):
        LoopbackRedirect(port)


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan"), float("inf")])
def test_the_listener_refuses_a_wait_that_is_not_a_positive_number(timeout: float) -> None:
    with LoopbackRedirect() as listener, pytest.raises(ToolkitUsageError, match="positive number of seconds"):
        listener.wait("state", timeout)
