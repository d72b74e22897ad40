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


# -- every command in the README, as a newcomer types it, twice ------------------------------------------
NOT_RUN = re.compile(r"#\s*not run here:\s*(\S.*)$")
UNTIL_STOPPED = re.compile(r"#\s*runs until stopped")
PREFIXES = ("personas ", "python3 dev.py ", ".venv/bin/")


def readme_commands() -> list[tuple[str, str]]:
    """(command, how) for every command line in the README's bash blocks; how is run, until-stopped or a
    reason it is not run here."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for raw in block.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            assert line.startswith(PREFIXES), f"README command {line!r}: start it with personas, python3 dev.py " \
                                              "or .venv/bin/ (or say why it is not a command)"
            reason = NOT_RUN.search(line)
            command = re.split(r"\s+#", line)[0].strip()
            if reason:
                out.append((command, f"skip: {reason.group(1)}"))
            elif command == "python3 dev.py test":
                out.append((command, "skip: the test run itself"))
            else:
                out.append((command, "until-stopped" if UNTIL_STOPPED.search(line) else "run"))
    return out


COMMANDS = readme_commands()


def test_every_readme_command_is_run_or_says_why_not() -> None:
    ran = [c for c, how in COMMANDS if not how.startswith("skip")]
    skipped = [(c, how) for c, how in COMMANDS if how.startswith("skip")]
    assert len(ran) >= 15, ran
    assert all(len(how) > len("skip: ") + 10 for _, how in skipped), skipped
    assert len(skipped) <= len(ran), "most of the README runs as written"


def _shell(command: str) -> str:
    """The command with ``personas`` meaning the installed console script (the venv is not on PATH here)."""
    exe = Path(sys.executable).parent
    if command.startswith("personas "):
        return f"{exe / 'personas'} {command[len('personas '):]}"
    if command.startswith(".venv/bin/"):
        return str(exe / command[len(".venv/bin/"):])
    return command.replace("python3 dev.py", f"{sys.executable} {ROOT / 'dev.py'}", 1)


@pytest.mark.slow
def test_the_readme_commands_work_twice_in_a_fresh_home(tmp_path: Path) -> None:
    """In order, in a fresh HOME and working folder (with the README's examples), then all again."""
    import shutil

    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
    env = {k: v for k, v in __import__("os").environ.items() if k in keep}
    env.update(HOME=str(tmp_path / "home"), COLUMNS="100", NO_COLOR="1")
    for attempt in (1, 2):
        for command, how in COMMANDS:
            if how.startswith("skip"):
                continue
            cwd = ROOT if command.startswith(("python3 dev.py", ".venv/bin/")) else work
            if how == "until-stopped":
                proc = subprocess.Popen(_shell(command), shell=True, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
                try:
                    first = proc.stdout.readline() if proc.stdout else ""
                    assert proc.poll() is None and first.strip(), f"run {attempt}: {command}: {first}"
                finally:
                    __import__("os").killpg(proc.pid, 15)
                    proc.wait(timeout=30)
                continue
            done = subprocess.run(_shell(command), shell=True, cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=300)
            assert done.returncode == 0, f"run {attempt}: {command}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
            assert "Traceback" not in done.stdout + done.stderr, f"run {attempt}: {command}"
