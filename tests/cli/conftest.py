"""Helpers for the CLI tests: the command as a person runs it, in a real pseudo-terminal or a pipe.

``Terminal`` drives ``personas`` in a pty (pexpect) on a dumb terminal of fixed size, so the text is
plain and lines do not wrap; every wait fails with the transcript, and a chat cassette that no
longer matches fails with the command that re-authors it. ``child_env`` is the environment of a
person with no keys at all, whose state lives in the test's own ``PERSONAS_HOME``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pexpect
import pytest

from tests.ports import free_port  # one picker for every server a test starts

ROOT = Path(__file__).resolve().parents[2]
PERSONAS = Path(sys.executable).with_name("personas")
KEYS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PERSONAS_MODEL", "KLAVIYO_API_KEY", "KLAVIYO_BASE_URL",
        "KLAVIYO_PUBLIC_API_KEY", "PERSONAS_DEBUG", "PERSONAS_USER", "KLAVIYO_CLIENT_ID", "KLAVIYO_CLIENT_SECRET",
        "PERSONAS_VAULT_KEY", "PERSONAS_CONNECTION", "PERSONAS_CREDENTIAL")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\r")
CASSETTE_TROUBLE = re.compile(r"does not match cassette|the run asked for more|played only in part|"
                              r"cassette \S+ does not exist")
REAUTHOR = "re-author it: .venv/bin/python tests/cli/author_chat_cassette.py"
COLUMNS, LINES = 200, 50


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """No OpenAI or Klaviyo settings, state in ``home``, a dumb 200-column terminal."""
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    env.update(PERSONAS_HOME=str(home), TERM="dumb", COLUMNS=str(COLUMNS), LINES=str(LINES), NO_COLOR="1",
               PYTHONUNBUFFERED="1", PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")  # no OS keyring
    env.update(extra)
    return env


def scripted_inputs(*lines: str) -> Callable[[str], str]:
    """An ``input`` for the REPL that types ``lines`` in turn, echoing prompt and line as a terminal
    shows them, then ends the session (EOFError, Ctrl-D)."""
    pending = iter(lines)

    def ask(prompt: str) -> str:
        print(prompt, end="")
        line = next(pending, None)
        if line is None:
            raise EOFError
        print(line)
        return line

    return ask


def plain(text: str) -> str:
    """Terminal output without escape sequences and carriage returns."""
    return ANSI.sub("", text)


class Terminal:
    """``personas ARGS`` in a pseudo-terminal; ``expect`` fails with the transcript instead of hanging."""

    def __init__(self, args: list[str], env: dict[str, str], *, timeout: float = 60) -> None:
        self.log = io.StringIO()
        self.child = pexpect.spawn(str(PERSONAS), args, env=env, cwd=str(ROOT), encoding="utf-8",
                                   codec_errors="replace", timeout=timeout, dimensions=(LINES, COLUMNS))
        self.child.logfile_read = self.log

    @property
    def transcript(self) -> str:
        return plain(self.log.getvalue())

    def expect(self, text: str | re.Pattern[str], timeout: float | None = None) -> str:
        """Wait for ``text`` (a literal, or a compiled regex); returns the output up to and including it."""
        pattern = text if isinstance(text, re.Pattern) else re.compile(re.escape(text))
        index = self.child.expect([pattern, CASSETTE_TROUBLE, pexpect.EOF, pexpect.TIMEOUT], timeout=timeout)
        if index == 1:
            with contextlib.suppress(pexpect.ExceptionPexpect):
                self.child.expect(pexpect.TIMEOUT, timeout=1)  # the rest of the message
            pytest.fail(f"the chat cassette no longer matches what the REPL asks the model; {REAUTHOR}\n"
                        f"--- transcript ---\n{self.transcript}")
        if index == 2:
            self.child.close()
            pytest.fail(f"the command ended (exit {self.child.exitstatus}) before {text!r} appeared\n"
                        f"--- transcript ---\n{self.transcript}")
        if index == 3:
            pytest.fail(f"timed out waiting for {text!r}\n--- transcript ---\n{self.transcript}")
        return plain(str(self.child.before) + str(self.child.after))

    def prompt(self, text: str = "you> ") -> str:
        """Wait for a prompt, then give prompt_toolkit a moment to take the terminal (raw mode)."""
        out = self.expect(text)
        time.sleep(0.3)
        return out

    def say(self, line: str) -> None:
        self.child.sendline(line)

    def command(self, line: str) -> str:
        """Type a slash command at the prompt; returns what it printed (up to the next prompt)."""
        self.say(line)
        out = self.prompt()
        return out.rsplit(line, 1)[-1].rsplit("you> ", 1)[0]

    def ctrl_c(self) -> None:
        self.child.sendcontrol("c")

    def leave(self, timeout: float = 30) -> int:
        """Ctrl-D at the prompt; returns the exit code (Ctrl-D is sent again if the first was too early)."""
        for _ in range(3):
            self.child.sendcontrol("d")
            if self.child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=timeout / 3) == 0:
                break
        else:
            pytest.fail(f"Ctrl-D did not end the REPL\n--- transcript ---\n{self.transcript}")
        self.child.close()
        assert self.child.exitstatus is not None, f"killed by signal {self.child.signalstatus}"
        return int(self.child.exitstatus)

    def wait(self, timeout: float = 120) -> int:
        """Wait for the command to finish; returns its exit code."""
        self.expect_end(timeout)
        return int(self.child.exitstatus or 0)

    def expect_end(self, timeout: float = 120) -> None:
        if self.child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=timeout) == 1:
            pytest.fail(f"the command did not finish in {timeout} s\n--- transcript ---\n{self.transcript}")
        self.child.close()

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    """Terminals opened by a test are closed (killed if still running) when it ends."""
    opened: list[Terminal] = []
    yield opened
    for term in opened:
        term.close()


@pytest.fixture
def sandbox_server(tmp_path: Path) -> Iterator[str]:
    """``personas sandbox serve`` on a free port (seed 42, in memory); yields its base URL."""
    port = free_port()
    home = tmp_path / "server-home"
    home.mkdir()
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(PERSONAS), "sandbox", "serve", "--port", str(port)], env=child_env(home),
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            # only once it has said it serves on its port (printed after it binds it): until then,
            # another test's server may hold the port, picked free a moment before, and answer the probe
            said = (tmp_path / "server.log").read_text(encoding="utf-8", errors="replace")
            try:
                if f"on {url}\n" in said and httpx.get(f"{url}/sandbox", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"the sandbox server did not start:\n{(tmp_path / 'server.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
