#!/usr/bin/env python3
"""Bootstrap the project and run it, needing nothing but Python 3.11+.

    python3 dev.py demo            the main job: `personas demo` on the embedded sandbox
    python3 dev.py test            the test suite (pytest), as CI runs it
    python3 dev.py lint            ruff and mypy --strict on klaviyo_toolkit/
    python3 dev.py personas ...    any `personas` command

The first run makes `.venv/` and installs the project with its dev extras; later runs reuse it
(reinstalling when pyproject.toml changes).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-pyproject"


def ensure_env() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs under any python3, before the venv exists
        sys.exit(f"Python 3.11+ is needed; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != digest:
        print("installing klaviyo-personas and its dependencies into .venv ...", flush=True)
        pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
        STAMP.write_text(digest)


def run(*cmd: str) -> int:
    return subprocess.call(list(cmd), cwd=ROOT)


def main(argv: list[str]) -> int:
    task = argv[0] if argv else "help"
    if task in ("help", "-h", "--help"):
        print(__doc__)
        return 0
    ensure_env()
    py = str(BIN / "python")
    if task == "demo":
        return run(str(BIN / "personas"), "demo", *argv[1:])
    if task == "test":
        return run(py, "-m", "pytest", *argv[1:])
    if task == "lint":
        code = run(py, "-m", "ruff", "check", ".")
        code |= run(py, "-m", "ruff", "format", "--check", "klaviyo_toolkit")
        code |= run(py, "-m", "mypy")
        return code
    if task == "personas":
        return run(str(BIN / "personas"), *argv[1:])
    print(f"unknown task {task!r}\n{__doc__}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
