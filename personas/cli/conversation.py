"""A chat session's edges (``repl.py``): going on with an earlier conversation (``personas chat
PERSONA --thread ID``), the terminal going away at an approval prompt, Ctrl-C held off a moment.

A conversation is a checkpointed thread; a session on it keeps its messages and, when it was left
waiting for an approval (the terminal closed at the prompt), asks that approval again first.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
from collections.abc import Mapping
from typing import Any

from personas.kernel.errors import UsageProblem

#: What a conversation's state holds (``graphs.chat.graph.ChatState``): a thread with other values
#: holds another graph's run (``personas run``), which the chat cannot go on with.
CHAT_VALUES = frozenset({"messages", "loaded_tools"})

#: The exit code when the terminal went away (128 + SIGHUP, as a shell reports a hung-up job).
HANGUP = 129


class InputGone(BaseException):
    """The terminal closed (a hangup: the window or the SSH session) while an approval was asked.

    Not an answer: the request stays pending in its paused thread (and its audit row says so), to be
    answered later with ``personas chat PERSONA --thread ID``. A BaseException, so that the REPL's
    handling of a failed turn (which mends the conversation, dropping the pending request) lets it by.
    """


def input_gone(session: Any) -> bool:
    """Whether an EOF at a prompt came from input that ended (a hung-up terminal, a pipe run dry),
    not from a person pressing Ctrl-D: prompt_toolkit raises EOFError for both, and marks only the
    first closed. A test's scripted session (a function) has no such input: its EOF is Ctrl-D."""
    return bool(getattr(getattr(session, "input", None), "closed", False))


def klaviyo_of(ctx: Any, sandbox: Any) -> dict[str, str]:
    """The Klaviyo a conversation talks to, kept in its checkpoints (as ``personas run`` keeps a run's):
    a key, and words for a person. The embedded sandbox is named by its seed (its demo data and ids)."""
    if sandbox is not None:
        seed = getattr(sandbox, "seed", "?")
        return {"klaviyo": f"chat-sandbox:{seed}", "where": f"the embedded sandbox (--sandbox --seed {seed})"}
    who = ctx.account or ctx.connection or "the key in the environment"
    return {"klaviyo": f"klaviyo:{ctx.client.base_url}:{who}", "where": f"Klaviyo at {ctx.client.base_url} ({who})"}


def holds_conversation(checkpoint: Mapping[str, Any]) -> bool:
    """Whether a stored checkpoint is a conversation's (``personas chat``), not a graph run's: its
    values are the chat graph's only (messages, and the tools it loaded)."""
    stored = {k for k in checkpoint.get("channel_values", {}) if not k.startswith(("__", "branch:"))}
    return "messages" in stored and stored <= CHAT_VALUES


def go_on_with_chat(metadata: Mapping[str, Any], thread: str) -> str:
    """How to go on with a conversation, on the Klaviyo it talked to: the embedded sandbox by its
    seed, or an account (its connection)."""
    persona = metadata.get("persona") or "PERSONA"
    was = str(metadata.get("klaviyo") or "")
    where = (f" --sandbox --seed {was.removeprefix('chat-sandbox:')}" if was.startswith("chat-sandbox:")
             else " --connection NAME (the connection it talked to)" if was else "")
    return f"personas chat {persona}{where} --thread {shlex.quote(thread)}"


def check_thread(driver: Any, persona: str, thread: str, home: Any) -> None:
    """UsageProblem, before the session starts, unless ``thread`` is a conversation of ``persona`` held on
    the Klaviyo this session talks to: an unknown id, another persona's conversation, a run of another
    graph, or a conversation on another account (an approval answered there would act on the wrong one)."""
    quoted = shlex.quote(thread)
    if not driver.exists():
        raise UsageProblem(f"--thread {thread!r}: no conversation with this id in {home}; give the id a chat "
                           "printed when it ended, or leave --thread out to start a new one; nothing was run")
    found = driver.saver.get_tuple(driver.config)  # as stored: the chat graph's own view keeps only its values
    meta = found.metadata or {}
    ran = meta.get("persona")
    if not holds_conversation(found.checkpoint):
        whose = f" of {ran}" if ran else ""
        raise UsageProblem(f"--thread {thread!r} holds a run{whose} (`personas runs`), not a conversation; leave "
                           "--thread out to start a conversation; nothing was run")
    if ran and ran != persona:
        raise UsageProblem(f"--thread {thread!r} is a conversation with {ran}, not {persona}; go on with it as "
                           f"personas chat {ran} --thread {quoted}; nothing was run")
    was, now = meta.get("klaviyo"), driver.config["metadata"].get("klaviyo")
    if was and now and was != now:
        raise UsageProblem(f"--thread {thread!r} talked to {meta.get('where') or 'another Klaviyo'}, not to "
                           f"{driver.config['metadata'].get('where')}; go on with it there (the same --sandbox "
                           "--seed or --connection): its ids and any approval it waits for are that account's; "
                           "nothing was run")


def take_up(repl: Any) -> None:
    """At the start of a session on an earlier conversation: say so, then ask the approval it was
    left waiting for, if any, and go on with that turn as if it had never stopped."""
    if not repl.driver.exists():
        return
    snap = repl.graph.get_state(repl.config)
    messages = snap.values.get("messages", [])
    repl.console.print(f"going on with conversation {repl.ctx.thread_id} ({len(messages)} messages; /history "
                       "shows them)", markup=False)
    pending = repl.driver.pending(snap)
    if pending:
        repl.console.print("It was left waiting for an approval:", markup=False)
        repl.guarded(lambda: repl.turn(None, [repl._approve(item.value) for item in pending]))
    elif snap.next:  # left part-way (an error, the process killed): closed, as after Ctrl-C, before it goes on
        repl._unfinished = "(turn left unfinished when the chat ended)"


def go_on_line(persona: str, thread: str) -> str:
    """How to go on with a conversation later, printed when a session ends."""
    return f"to go on with this conversation: personas chat {persona} --thread {shlex.quote(thread)}"


@contextlib.contextmanager
def sigint_ignored() -> Any:
    """Ctrl-C ignored for a moment (in the main thread; elsewhere signals do not arrive anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
