"""What the demo, chat and a few commands say is true: who answered, what a reused state means, a
mistyped head, a missing key, an unknown tag, and leaving a chat whose model call hangs.

The demo runs in-process (a console writing to a string) on the embedded sandbox; the chat runs in a
real pseudo-terminal against a model endpoint that accepts connections and never answers.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from personas.kernel.config import Config
from tests.warm_cli import run_personas

from .conftest import PERSONAS, Terminal, child_env, free_port


def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str, **env: str) -> tuple[int, str]:
    """``personas demo`` in-process: (exit code, the text it printed, on one line)."""
    from rich.console import Console

    from personas.cli.demo import run_demo

    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PERSONAS_MODEL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path / "home"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out = io.StringIO()
    options = dict(zip(args[::2], args[1::2], strict=True))
    code = run_demo(int(options.get("seed", 42)), console=Console(file=out, width=200, highlight=False),
                    state_file=options.get("state"), config=Config.from_env())
    return code, " ".join(out.getvalue().split())


# -- the demo says what answered -----------------------------------------------------------------
def test_replayed_hand_written_answers_are_never_called_the_model(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = demo(tmp_path, monkeypatch)
    assert code == 0
    assert "(decided by model)" not in out and "written by the model" not in out and "(model decided)" not in out
    assert "Sequence: fast-track (decided by an answer authored by hand, replayed in place of the model)" in out
    assert "Summary, written by hand (an authored answer, replayed in place of the model):" in out
    assert "answers authored by hand (personas/cli/demo_cassettes/) were replayed for 4 of 4 calls" in out
    assert "recorded" not in out
    assert "(responses written by hand" not in out  # said once, not twice
    report = next((tmp_path / "home" / "reports").glob("*/campaign-report-*.md")).read_text(encoding="utf-8")
    assert "_Written by hand (an authored answer, replayed in place of the model)._" in report


def test_a_live_model_that_never_answers_is_not_named_as_the_one_that_did(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    code, out = demo(tmp_path, monkeypatch, OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1",
                     PERSONAS_MODEL_TIMEOUT="5")
    assert code == 0
    done = out.split("Done in", 1)[1]
    assert re.search(rf"Model: none answered: 4 failed \(ConnectError at http://127\.0\.0\.1:{port}/v1\)", done), done
    assert "live model gpt-4.1-mini at" not in done
    assert "decided by the model" not in out and "written by the model" not in out


def test_a_reused_sandbox_state_finishes_and_says_why_nothing_new_starts(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    state = str(tmp_path / "demo.sqlite")
    assert demo(tmp_path, monkeypatch, "state", state)[0] == 0
    code, out = demo(tmp_path, monkeypatch, "state", state)
    assert code == 0, out
    assert "is reused: these leads signed up in an earlier run" in out
    assert "Sequence: None" not in out and "played only in part" not in out
    assert out.count("Sequence: none (decided by policy)") == 3
    assert out.count("Outcome: no new sequence: this lead already started") == 3
    assert "Campaign reporter: yesterday" in out


def test_another_seed_without_a_live_model_runs_with_the_policy_and_says_so(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = demo(tmp_path, monkeypatch, "seed", "7")
    assert code == 0, out
    assert "fit the seed-42 sandbox, not seed 7" in out
    assert "CassetteError" not in out and "--- cassette" not in out and "Sequence: None" not in out
    assert out.count("(decided by policy)") == 3


# -- renderers -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "words"), [
    ("live", "the model"), ("recorded", "the model's recorded answer, replayed"),
    ("authored", "an answer authored by hand, replayed in place of the model"),
    ("scripted", "a scripted answer standing in for the model")])
def test_the_lead_view_says_whose_answer_a_model_decision_was(kind: str, words: str) -> None:
    from graphs.lead_magnet.render import render_lead, sequence_line

    decision = {"sequence": "fast-track", "decided_by": "model", "reason": "r"}
    assert f"Sequence: fast-track (decided by {words})" in render_lead({"decision": decision}, kind)
    # `personas run` renders the state alone: the run wrote who answered into it
    assert f"Sequence: fast-track (decided by {words})" in render_lead({"decision": decision, "model_kind": kind})
    assert sequence_line({"sequence": None, "decided_by": "policy"}) == "Sequence: none (decided by policy)"


def test_a_template_summary_is_not_introduced_twice() -> None:
    from graphs.campaign_report.outputs import markdown_report, summary_label

    summary = {"written_by": "template", "text": "No model wrote this summary (no model is configured); ..."}
    assert summary_label(summary) == "Summary:"
    text = markdown_report({"date": "2026-03-09", "timezone": "UTC", "summary": summary})
    assert text.count("template") == 0 and "No model wrote this summary" in text
    assert summary_label({"written_by": "model", "answered_by": "live"}) == "Summary, written by the model:"


# -- small commands --------------------------------------------------------------------------------
def run(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_personas([str(PERSONAS), *args], env=child_env(home), input=stdin, capture_output=True, text=True,
                          timeout=120)


def test_a_mistyped_expected_head_is_normalised_or_refused_never_called_tampering(tmp_path: Path) -> None:
    from klaviyo_toolkit.audit import AuditLog
    from personas.runtime.context import audit_anchor

    with AuditLog(tmp_path / "audit.sqlite", anchor=audit_anchor(Config(home=tmp_path))) as log:
        log.record("get_lists", "ok")
        head = log.head()
    for typed in (head.upper(), f" {head}\n"):
        proc = run(tmp_path, "audit", "verify", "--expected-head", typed)
        assert proc.returncode == 0 and f"head {head}" in proc.stdout, proc.stderr
    for typed in ("abc", head[:-1], head + "0", "z" * 64):
        proc = run(tmp_path, "audit", "verify", "--expected-head", typed)
        assert proc.returncode == 2, (typed, proc.stdout, proc.stderr)
        assert "is not an audit head: a head is 64 hex digits" in proc.stderr and "TAMPERED" not in proc.stderr
    assert run(tmp_path, "audit", "verify", "--expected-head", "f" * 64).returncode == 1  # a head that is gone


def test_login_without_a_key_or_a_terminal_says_how_to_give_one(tmp_path: Path) -> None:
    proc = run(tmp_path, "auth", "login", "acme")
    assert proc.returncode == 2
    assert "Set KLAVIYO_API_KEY" in proc.stderr and "in a terminal" in proc.stderr
    assert "with a private key" not in proc.stderr


def test_an_unknown_tag_is_refused_with_the_tags_there_are(tmp_path: Path) -> None:
    proc = run(tmp_path, "tools", "list", "--tag", "Nope")
    assert proc.returncode == 2 and "0 Klaviyo tools" not in proc.stdout
    assert "no operation has the tag 'Nope'; the tags are: Accounts, Campaigns" in proc.stderr
    assert run(tmp_path, "tools", "list", "--tag", "lists").returncode == 0


# -- chat: leaving while a model call hangs --------------------------------------------------------
@contextlib.contextmanager
def silent_model() -> Iterator[str]:
    """An OpenAI base URL whose server accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


@pytest.mark.parametrize("second", ["ctrl-d", "ctrl-d then ctrl-c"])
def test_leaving_after_cancelling_a_hung_model_call_is_prompt(second: str, terminals: list[Terminal],
                                                             tmp_path: Path) -> None:
    with silent_model() as url:
        term = Terminal(["chat", "klaviyo-assistant", "--sandbox"],
                        child_env(tmp_path, OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=url,
                                  PERSONAS_MODEL_TIMEOUT="60"))
        terminals.append(term)
        term.prompt()
        term.say("how many lists are there?")
        time.sleep(2)
        term.ctrl_c()
        term.expect("turn cancelled")
        term.prompt()
        started = time.monotonic()
        term.child.sendcontrol("d")
        term.expect("Ctrl-C leaves now")
        if second.endswith("ctrl-c"):
            term.ctrl_c()
        term.expect("bye")
        code = term.wait(timeout=15)
        took = time.monotonic() - started
    assert code == 0
    assert took < 10, f"leaving took {took:.1f} s"
    assert "the model call was abandoned (recorded in the conversation as cancelled)" in term.transcript
    # the conversation records the turn as cancelled, as after any Ctrl-C
    import sqlite3

    with contextlib.closing(sqlite3.connect(tmp_path / "checkpoints.sqlite")) as db:
        blobs = b"".join(bytes(row[0]) for table, column in (("checkpoints", "checkpoint"), ("writes", "value"))
                         for row in db.execute(f"SELECT {column} FROM {table}") if row[0])
    assert b"which was abandoned" in blobs
