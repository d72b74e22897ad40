"""The README's code examples marked ``<!-- readme-test: run -->`` run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
RUNNABLE = re.findall(r"<!-- readme-test: run -->\s*```python\n(.*?)```", README, re.S)


def test_there_are_runnable_examples() -> None:
    assert RUNNABLE, "mark examples with <!-- readme-test: run -->"


@pytest.mark.parametrize("code", RUNNABLE, ids=[f"example{i}" for i in range(len(RUNNABLE))])
def test_the_example_runs_as_written(code: str, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PERSONAS_HOME": str(tmp_path), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), "it prints its result"


def test_the_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    section = re.search(r"(?ims)^#+\s*quick\s*start(.*?)(?=^#\s|\Z)", README)
    assert section
    commands = [line.strip() for block in re.findall(r"```bash\n(.*?)```", section.group(1), re.S)
                for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert commands == ["python3 dev.py demo", "python3 dev.py test"]
    assert "python3 dev.py test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
