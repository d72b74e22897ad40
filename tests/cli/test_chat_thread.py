"""``personas chat PERSONA --thread ID`` and the terminal closing at an approval prompt.

The terminal going away (a closed window, a dropped SSH session, with SIGHUP ignored as under
nohup) while an approval is asked is no answer: the request stays pending in its paused thread,
its audit row says so, and ``--thread`` goes on with the conversation later, asking it again. A
thread of another persona, of a run, or held on another Klaviyo is refused before anything runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import time
from pathlib import Path

import pexpect
import pytest
from langchain_core.messages import AIMessage

from klaviyo_sandbox import Sandbox
from personas.cli.repl import Repl
from personas.kernel.models import ModelChoice, ScriptedChatModel
from personas.runtime.loader import load_persona
from tests.warm_cli import run_personas

from . import author_chat_cassette as authored
from .conftest import COLUMNS, LINES, PERSONAS, ROOT, Terminal, child_env, scripted_inputs
from .test_chat_pty import audit_rows

PERSONA = authored.PERSONA
LIST_ID = authored.WEBINAR_LIST


def _hangup_ignored() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


class NohupTerminal(Terminal):
    """``personas ARGS`` in a pty, started with SIGHUP ignored (nohup, some multiplexers): when the
    terminal goes, the process is not killed but finds its input and output gone."""

    def __init__(self, args: list[str], env: dict[str, str], program: str = str(PERSONAS)) -> None:
        self.log = io.StringIO()
        self.child = pexpect.spawn(program, args, env=env, cwd=str(ROOT), encoding="utf-8",
                                   codec_errors="replace", timeout=60, dimensions=(LINES, COLUMNS),
                                   preexec_fn=_hangup_ignored)
        self.child.logfile_read = self.log

    def hang_up(self, timeout: float = 30) -> int | None:
        """Close the terminal (its master side) without a signal; the exit code (None: still running)."""
        self.child.ptyproc.fileobj.close()
        deadline = time.monotonic() + timeout
        while self.child.ptyproc.isalive() and time.monotonic() < deadline:
            time.sleep(0.1)
        return None if self.child.ptyproc.isalive() else self.child.ptyproc.exitstatus

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.child.ptyproc.isalive():
                self.child.ptyproc.kill(signal.SIGKILL)


def _thread_of(home: Path) -> str:
    from klaviyo_toolkit.audit import AuditLog
    from personas.kernel.config import Config
    from personas.runtime.context import audit_anchor

    log = AuditLog(home / "audit.sqlite", anchor=audit_anchor(Config(home=home)))
    try:
        return str(log.query(persona=PERSONA, limit=1)[0].thread_id)
    finally:
        log.close()


def test_a_terminal_closed_at_the_approval_prompt_leaves_the_request_pending_for_thread(
        terminals: list[Terminal], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cassette = authored.CONVERSATIONS["chat_delete_list"].path
    term = NohupTerminal(["chat", PERSONA, "--sandbox", "--replay", str(cassette)], child_env(tmp_path))
    terminals.append(term)
    term.prompt()
    term.say(authored.ASK_LISTS)
    term.expect("klaviyo-assistant> You have 4 lists")
    term.prompt()
    term.say(authored.DELETE_WEBINAR)
    term.prompt("approve / edit / reject? [a/e/r]")
    code = term.hang_up()
    assert code == 129, f"exit {code}\n{term.transcript}"  # 128 + SIGHUP; before: rejected as if Ctrl-D, went on
    # not answered: neither rejected nor sent; the audit log says it waits
    assert audit_rows(tmp_path) == [("get_lists", "ok", "GET", 200), ("get_list", "ok", "GET", 200),
                                    ("delete_list", "pending_approval", "DELETE", None)]
    thread = _thread_of(tmp_path)

    # later: the same conversation, its messages kept, asks the approval first; approved, it is sent
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path))
    sb = Sandbox(seed=42)
    model = ModelChoice(ScriptedChatModel([AIMessage("Deleted.")]), "scripted in the test", "scripted")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        repl = Repl(load_persona(PERSONA), sandbox=sb, model=model, input_fn=scripted_inputs("a", "/history"),
                    tour=False, thread=thread)
        code = repl.run()
    transcript = out.getvalue()
    assert code == 0, transcript
    assert f"going on with conversation {thread} (" in transcript, transcript
    assert "Approval needed: delete_list" in transcript and '← delete_list {"ok": true}' in transcript, transcript
    assert f"you: {authored.ASK_LISTS}" in transcript, transcript  # the earlier messages are there
    assert f"personas chat {PERSONA} --thread {thread}" in transcript, transcript
    assert LIST_ID not in [row["id"] for row in sb.client().call("get_lists").data]
    assert audit_rows(tmp_path)[-2:] == [("delete_list", "approved", "DELETE", None),
                                         ("delete_list", "ok", "DELETE", 204)]


def test_a_terminal_closed_at_the_approval_prompt_is_no_rejection_when_the_output_goes_to_a_file(
        terminals: list[Terminal], tmp_path: Path) -> None:
    """The same with the output in a file (``personas chat ... > log``): the terminal's input ends while
    the output can still be written, and the closed input was taken as Ctrl-D, a rejection."""
    cassette = authored.CONVERSATIONS["chat_delete_list"].path
    out = tmp_path / "chat.log"
    term = NohupTerminal(["-c", f'exec "$0" "$@" > {out} 2>&1', str(PERSONAS), "chat", PERSONA, "--sandbox",
                          "--replay", str(cassette)], child_env(tmp_path), program="/bin/sh")
    terminals.append(term)

    def shown(text: str, count: int = 1) -> None:
        deadline = time.monotonic() + 60
        while (out.read_text() if out.exists() else "").count(text) < count:
            assert time.monotonic() < deadline, f"{text!r} not shown:\n{out.read_text()}"
            time.sleep(0.1)
        time.sleep(0.3)

    shown("you> ")
    term.say(authored.ASK_LISTS)
    shown("you> ", 2)
    term.say(authored.DELETE_WEBINAR)
    shown("approve / edit / reject? [a/e/r]")
    assert term.hang_up() == 129, out.read_text()
    assert "the approval asked was not answered: it waits" in out.read_text()
    assert audit_rows(tmp_path)[-1] == ("delete_list", "pending_approval", "DELETE", None)  # not "rejected"


def _chat(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_personas([str(PERSONAS), "chat", *args], env=child_env(home), cwd=str(ROOT), capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    lines = [line for line in done.stderr.splitlines() if not line.startswith("Warning: Input is not a terminal")]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "bye" not in done.stdout
    return lines[0]


def _a_conversation(home: Path, monkeypatch: pytest.MonkeyPatch, *, seed: int) -> str:
    """A one-message conversation with PERSONA on the embedded sandbox of ``seed``, in ``home``; its thread id."""
    monkeypatch.setenv("PERSONAS_HOME", str(home))
    model = ModelChoice(ScriptedChatModel([AIMessage("Hello.")]), "scripted in the test", "scripted")
    with contextlib.redirect_stdout(io.StringIO()):
        repl = Repl(load_persona(PERSONA), sandbox=Sandbox(seed=seed), model=model, input_fn=scripted_inputs("hi"),
                    tour=False)
        assert repl.run() == 0
    return str(repl.ctx.thread_id)


def test_thread_refuses_an_unknown_id_another_persona_and_another_klaviyo(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    thread = _a_conversation(tmp_path, monkeypatch, seed=42)

    line = _one_line_error(_chat(tmp_path, PERSONA, "--sandbox", "--thread", "no-such-thread"))
    assert "--thread 'no-such-thread': no conversation with this id" in line, line
    line = _one_line_error(_chat(tmp_path, "campaign-reporter", "--sandbox", "--thread", thread))
    assert f"is a conversation with {PERSONA}, not campaign-reporter" in line, line
    assert f"personas chat {PERSONA} --thread {thread}" in line, line
    line = _one_line_error(_chat(tmp_path, PERSONA, "--sandbox", "--seed", "7", "--thread", thread))
    assert "talked to the embedded sandbox (--sandbox --seed 42), not to the embedded sandbox (--sandbox --seed 7)" \
        in line, line
    assert "--thread" in _chat(tmp_path, "-h").stdout


def test_thread_refuses_the_thread_of_a_run(tmp_path: Path) -> None:
    env = child_env(tmp_path)
    done = run_personas([str(PERSONAS), "run", "campaign-reporter", "--sandbox", "--input", "{}", "--thread", "r1"],
                          env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = _one_line_error(_chat(tmp_path, "campaign-reporter", "--sandbox", "--thread", "r1"))
    assert "--thread 'r1' holds a run of campaign-reporter" in line, line


def test_run_resume_or_retry_on_a_conversation_points_to_the_chat_that_holds_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``personas run P --thread T --resume|--retry`` with T a conversation: refused before anything
    runs, saying to go on with it in ``personas chat`` on the sandbox it talked to (not --connection)."""
    thread = _a_conversation(tmp_path, monkeypatch, seed=7)
    env = child_env(tmp_path)
    for persona, then in ((PERSONA, ["--resume", "approve"]), (PERSONA, ["--retry"]),
                          ("campaign-reporter", ["--retry"])):
        done = run_personas([str(PERSONAS), "run", persona, "--sandbox", "--thread", thread, *then], env=env,
                              cwd=str(ROOT), capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, (then, done.stdout, done.stderr)
        line = _one_line_error(done)
        assert f"thread {thread!r} is a conversation with {PERSONA} (personas chat), not a run" in line, line
        assert f"personas chat {PERSONA} --sandbox --seed 7 --thread {thread}" in line, line
        assert "--connection" not in line and "nothing was run" in line, line


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["chat", PERSONA, "--replay="], "--replay is empty (''): give CASSETTE"),
        (["chat", PERSONA, "--sandbox", "--connection", ""], "--connection is empty (''): give NAME"),
        (["chat", PERSONA, "--sandbox", "--thread", " "], "--thread is empty (' '): give THREAD"),
        (["chat", ""], "PERSONA is empty (''): give PERSONA"),
        (["run", "campaign-reporter", "--sandbox", "--thread", "", "--retry"], "--thread is empty (''): give THREAD"),
        (["run", "campaign-reporter", "--sandbox", "--input", "{}", "--replay", ""], "--replay is empty"),
        (["audit", "--since", ""], "--since is empty (''): give WHEN"),
        (["auth", "login", ""], "NAME is empty (''): give NAME"),
        (["runs", "resume", "x", "--answer", ""], "--answer is empty (''): give ANSWER"),
        (["serve", "--host", ""], "--host is empty (''): give HOST"),
    ],
)
def test_an_empty_value_is_a_usage_error_naming_the_option_and_nothing_runs(
        tmp_path: Path, args: list[str], names: str) -> None:
    env = child_env(tmp_path, KLAVIYO_API_KEY="pk_" + "0a" * 17)
    done = run_personas([str(PERSONAS), *args], env=env, cwd=str(ROOT), capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    line = _one_line_error(done)
    assert names in line and line.endswith("nothing was run"), line
    assert not [p.name for p in tmp_path.iterdir() if p.suffix == ".sqlite" or p.name.startswith("vault")], \
        os.listdir(tmp_path)


def test_seed_without_sandbox_is_refused_not_ignored(tmp_path: Path) -> None:
    done = run_personas([str(PERSONAS), "chat", PERSONA, "--seed", "7"], cwd=str(ROOT), capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env=child_env(tmp_path, KLAVIYO_API_KEY="pk_" + "0a" * 17))
    assert "--seed is the embedded sandbox's seed: add --sandbox" in _one_line_error(done)
