"""Run several ``personas`` command lines in one process, the way the console script runs each one.

``python -m tests.reliability.cli_battery CASES.json`` reads ``[{"argv": [...], "env": {...}}, ...]``
and prints one JSON object per case: the exit code and what the command wrote to stdout and stderr.
Each case goes through ``personas.cli.main`` (the console entry point) with its own environment;
a test then checks the messages. One process for all of them keeps the suite fast.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from typing import Any


def run(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    from personas.cli import main

    saved = dict(os.environ)
    os.environ.update(env)
    for name in [k for k, v in env.items() if v == ""]:
        del os.environ[name]
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv)
            except SystemExit as exc:
                code = exc.code
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {"argv": argv, "code": code if isinstance(code, int) else (0 if code is None else 1),
            "stdout": out.getvalue(), "stderr": err.getvalue()}


def main_battery(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        cases = json.load(handle)
    for case in cases:
        print(json.dumps(run(case["argv"], case.get("env") or {})), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main_battery(sys.argv[1]))
