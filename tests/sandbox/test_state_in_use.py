"""A sandbox state file is held by one process at a time. Each process keeps the whole state in memory
and writes back what it changed, so two at once each missed the other's writes: three runs started
together on one file sent one lead's sequence twice (found from outside). A second process is now
refused, naming who holds the file, before it reads anything; a holder that ends, or is killed,
lets the file go."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_sandbox._store import StateInUse
from tests.warm_cli import run_personas

OPEN = textwrap.dedent("""
    import sys
    from klaviyo_sandbox import Sandbox
    from klaviyo_sandbox._store import StateInUse
    try:
        sb = Sandbox(state=sys.argv[1], demo_data=False)
    except StateInUse as exc:
        print(f"in use: {exc}")
        raise SystemExit(3)
    sb.client().call("create_list", name=sys.argv[2])
    if sys.argv[3] == "hold":
        print("holding", flush=True)
        sys.stdin.read()  # until the test kills it
    sb.close()
    print("opened")
""")


def open_in_child(tmp_path: Path, state: Path, list_name: str, hold: bool = False) -> subprocess.Popen[str]:
    script = tmp_path / "open_state.py"
    script.write_text(OPEN, encoding="utf-8")
    return subprocess.Popen([sys.executable, str(script), str(state), list_name, "hold" if hold else "close"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])


def list_names(state: Path) -> list[str]:
    sb = Sandbox(state=state, demo_data=False)
    try:
        return sorted(item["name"] for item in sb.client().iterate("get_lists"))
    finally:
        sb.close()


def test_a_second_process_is_refused_and_the_first_ones_writes_stay(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.sqlite"
    sb = Sandbox(state=state, demo_data=False)
    sb.client().call("create_list", name="first")
    child = open_in_child(tmp_path, state, "second")
    out, err = child.communicate(timeout=120)
    assert child.returncode == 3, out + err
    assert out.startswith(f"in use: the sandbox state {state} is in use by process ")
    assert "serve it (personas sandbox serve --sandbox-state" in out
    sb.close()
    assert list_names(state) == ["first"], "the refused process wrote nothing"

    child = open_in_child(tmp_path, state, "second")
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0 and out.strip() == "opened", out + err
    assert list_names(state) == ["first", "second"]


def test_a_killed_holder_lets_the_file_go(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.sqlite"
    holder = open_in_child(tmp_path, state, "held", hold=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    with pytest.raises(StateInUse, match=rf"in use by process {holder.pid} "):
        Sandbox(state=state, demo_data=False)
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=60)
    assert list_names(state) == ["held"], "the kernel dropped the lock with the process; its flushed write stayed"


def test_the_command_line_refuses_with_one_line_and_exit_2(tmp_path: Path) -> None:
    from tests.cli.conftest import PERSONAS, child_env

    state = tmp_path / "sandbox.sqlite"
    sb = Sandbox(state=state, demo_data=False)
    try:
        proc = run_personas([str(PERSONAS), "run", "campaign-reporter", "--input", "{}", "--sandbox-state",
                               str(state)], env=child_env(tmp_path), cwd=tmp_path, capture_output=True, text=True,
                              timeout=180)
    finally:
        sb.close()
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and errors[0].endswith("; nothing was started"), proc.stderr
    assert f"the sandbox state {state} is in use by process" in errors[0]
