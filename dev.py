#!/usr/bin/env python3
"""Bootstrap the project and run it, needing nothing but Python 3.11+.

    python3 dev.py demo            the main job: `personas demo` on the embedded sandbox
    python3 dev.py test            the test suite (pytest, a worker per core and one more), as CI runs it
    python3 dev.py lint            ruff, and mypy --strict on the toolkit, sandbox, kernel and runtime
    python3 dev.py personas ...    any `personas` command
    python3 dev.py bench [--quick] every benchmark; one combined table, also written into benchmarks/README.md
    python3 dev.py local-model setup|start|stop|status|env|check
                                   a small open model served on 127.0.0.1 (scripts/local_model.py)

The first run makes `.venv/` and installs what the task needs: the demo only the project and its
sandbox, the tests and lint also the dev tools. Later runs reuse it (installing again only when
pyproject.toml changes or a task needs more).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-pyproject"


#: What each task installs: the demo needs the project and its sandbox; tests and lint the dev tools too.
EXTRAS = {"demo": "sandbox", "personas": "sandbox", "bench": "bench"}


def _installed() -> dict[str, str]:
    """extra -> pyproject digest it was installed for."""
    if not STAMP.exists():
        return {}
    lines = [line.split(" ", 1) for line in STAMP.read_text().splitlines() if " " in line]
    return {k: v for k, v in lines}


def _pip(args: list[str], what: str) -> None:
    """Run pip, showing one line per package it fetches (not three minutes of silence)."""
    started = time.monotonic()
    cmd = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = 0
    tail: list[str] = []
    for line in proc.stdout:
        tail = [*tail[-30:], line]
        if line.startswith(("Collecting ", "Downloading ")) and line.split()[1:2]:
            seen += 1 if line.startswith("Collecting ") else 0
            name = line.split()[1]
            if sys.stdout.isatty():
                print(f"\r  {what}: {seen} packages so far ({time.monotonic() - started:.0f} s) {name[:40]:<40}",
                      end="", flush=True)
    if proc.wait() != 0:
        print("\n" + "".join(tail), file=sys.stderr)
        sys.exit(f"installing {what} failed (see above); run the same command again once the cause is fixed")
    done = f"  {what}: {seen} packages, done in {time.monotonic() - started:.0f} s"
    print(f"\r{done}{' ' * 60}" if sys.stdout.isatty() else done, flush=True)


def ensure_env(extra: str = "dev") -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs under any python3, before the venv exists
        sys.exit(f"Python 3.11+ is needed; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    installed = _installed()
    covering = {extra, "bench"} if extra == "bench" else {extra, "dev", "bench"}  # bench > dev > sandbox
    if any(installed.get(name) == digest for name in covering):
        return
    print(f"installing klaviyo-personas[{extra}] into .venv (once; later runs start at once) ...", flush=True)
    _pip(["-e", f"{ROOT}[{extra}]"], f"klaviyo-personas[{extra}]")
    STAMP.write_text("".join(f"{k} {v}\n" for k, v in {**installed, extra: digest}.items()))


def run(*cmd: str) -> int:
    return subprocess.call(list(cmd), cwd=ROOT)


def main(argv: list[str]) -> int:
    task = argv[0] if argv else "help"
    if task in ("help", "-h", "--help"):
        print(__doc__)
        return 0
    if task == "local-model":  # stdlib only: needs no .venv, and `env` prints nothing but the exports
        return run(sys.executable, str(ROOT / "scripts" / "local_model.py"), *argv[1:])
    ensure_env(EXTRAS.get(task, "dev"))
    py = str(BIN / "python")
    if task == "demo":
        return run(str(BIN / "personas"), "demo", *argv[1:])
    if task == "test":
        # One worker more than the cores (pytest-xdist): most tests wait on subprocesses, sockets and
        # SQLite, so a third worker on two cores fills that waiting; `-n 0` runs in one process. Each
        # module runs whole on one worker, in its own order (``--dist loadscope``):
        # tests/sandbox/test_properties.py reads one account in a set order (writes after reads,
        # deletes last), which split across workers it is not.
        args = argv[1:]
        chosen = any(a.startswith(("-n", "--numprocesses")) for a in args)
        workers = str((os.cpu_count() or 1) + 1)
        # The longest modules first (tests/conftest.py orders them by tests/weights.json; xdist's own
        # reorder, by number of tests, would undo that).
        spread = [] if chosen else ["-n", workers, "--dist", "loadscope", "--no-loadscope-reorder"]
        return run(py, "-m", "pytest", *spread, *args)
    if task == "lint":
        code = run(py, "-m", "ruff", "check", ".")
        code |= run(py, "-m", "ruff", "format", "--check", "klaviyo_toolkit")
        code |= run(py, "-m", "mypy")
        return code
    if task == "personas":
        return run(str(BIN / "personas"), *argv[1:])
    if task == "bench":
        return run(py, str(ROOT / "benchmarks" / "run_all.py"), *argv[1:])
    print(f"unknown task {task!r}\n{__doc__}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
