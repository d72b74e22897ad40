#!/usr/bin/env python3
"""Write the chat REPL's cassettes: model responses authored by hand, requests captured by running.

No live model was used: for each conversation below, what the user types and what the model answers
(its tool calls and final texts) were written by hand. The script runs each conversation through the
real REPL in-process (its prompt answered from the inputs) against the embedded sandbox (seed 42),
with a ScriptedChatModel wrapped in ``CassetteChatModel(live=...)``, so the requests are captured
exactly as the REPL makes them. It runs each conversation on three dates and checks that the
requests do not depend on the day (the pty tests replay on any day), then saves
``tests/cli/cassettes/<name>.json`` with provenance "authored", which the REPL shows as "responses
authored by hand".

Re-author after a change to the chat graph, the assistant's prompt or tools, or the sandbox's demo
data (the pty tests in ``test_chat_pty.py`` say so when a cassette stops matching)::

    .venv/bin/python tests/cli/author_chat_cassette.py [--show] [NAME ...]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from klaviyo_sandbox import Faults, Sandbox  # noqa: E402
from klaviyo_toolkit.clock import Clock, ManualClock  # noqa: E402
from personas.kernel.cassette import Cassette  # noqa: E402
from personas.kernel.models import CassetteChatModel, ModelChoice, ScriptedChatModel  # noqa: E402

CASSETTES = Path(__file__).parent / "cassettes"
PERSONA = "klaviyo-assistant"
SEED = 42
WEBINAR_LIST = "RLfaTs"  # "Webinar Attendees" in the seed-42 sandbox
REAUTHOR = "re-author it with `.venv/bin/python tests/cli/author_chat_cassette.py`"
#: Besides today, the dates each conversation is also run on (seeded data moves with the day).
OTHER_DATES = ["2027-03-01T10:00:00+00:00", "2026-06-15T03:00:00+00:00"]
#: The slow call of the "chat_cancel" conversation: Ctrl-C lands while it is under way (long enough that
#: a loaded machine still presses it before the call returns; the next turn waits for the call to end).
SLOW = {"slow_rate": 1.0, "delay": 6.0, "operations": ["get_segments"], "count": 1}


@dataclass(frozen=True)
class CtrlC:
    """Ctrl-C at a prompt (``during`` is None), or while the turn started by typing ``during`` runs."""

    during: str | None = None


@dataclass
class Conversation:
    """What the user types (in order; Ctrl-D ends it) and the model's hand-written responses."""

    name: str
    inputs: list[str | CtrlC]
    responses: list[AIMessage]
    faults: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return CASSETTES / f"{self.name}.json"


def _call(name: str, args: dict[str, Any], call_id: str, text: str = "") -> AIMessage:
    return AIMessage(text, tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}])


ASK_LISTS = "how many lists do we have?"
DELETE_WEBINAR = "delete the Webinar Attendees list"
REJECT_REASON = "keep it for the next webinar"
DELETE_AGAIN = "delete it anyway"
STILL_THERE = "is the Webinar Attendees list still there?"
ASK_SEGMENTS = "which segments do we have?"

CONVERSATIONS = {c.name: c for c in [
    Conversation(
        "chat_delete_list",
        [ASK_LISTS, DELETE_WEBINAR, "a", "/tools", "/scopes", "/audit", "/history"],
        [
            _call("get_lists", {}, "call_lists_1"),
            AIMessage("You have 4 lists: Newsletter, Lead Magnet — Trail Guide, VIP Customers and Webinar "
                      f"Attendees ({WEBINAR_LIST})."),
            _call("delete_list", {"id": WEBINAR_LIST}, "call_delete_1",
                  f"Deleting Webinar Attendees ({WEBINAR_LIST}) needs your approval."),
            AIMessage(f"Done: Webinar Attendees ({WEBINAR_LIST}) is deleted. You now have 3 lists."),
        ],
    ),
    Conversation(
        "chat_reject",
        [DELETE_WEBINAR, "r", REJECT_REASON, DELETE_AGAIN, CtrlC(), STILL_THERE, "/audit"],
        [
            _call("get_lists", {"filter": 'equals(name,"Webinar Attendees")'}, "call_find_1",
                  "First I'll find the list's id."),
            _call("delete_list", {"id": WEBINAR_LIST}, "call_delete_1",
                  f"It is {WEBINAR_LIST}. Deleting it needs your approval."),
            AIMessage(f"Understood: I did not delete Webinar Attendees ({WEBINAR_LIST}); it stays as it is."),
            _call("delete_list", {"id": WEBINAR_LIST}, "call_delete_2",
                  "As you ask: deleting it needs your approval again."),
            _call("get_list", {"id": WEBINAR_LIST}, "call_check_1"),
            AIMessage(f"Yes: Webinar Attendees ({WEBINAR_LIST}) is still there."),
        ],
    ),
    Conversation(
        "chat_cancel",
        [CtrlC(during=ASK_SEGMENTS), ASK_LISTS, "/history", "/audit"],
        [
            _call("get_segments", {}, "call_segments_1"),
            _call("get_lists", {}, "call_lists_1"),
            AIMessage("You have 4 lists: Newsletter, Lead Magnet — Trail Guide, VIP Customers and Webinar "
                      f"Attendees ({WEBINAR_LIST})."),
        ],
        faults=SLOW,
    ),
]}


def provenance() -> dict[str, Any]:
    return {"kind": "authored", "by": "klaviyo-personas maintainers",
            "method": "responses written by hand in tests/cli/author_chat_cassette.py; requests captured by "
                      "running the conversation through the REPL",
            "date": dt.date.today().isoformat()}


@dataclass
class _SlowCallFaults(Faults):
    """The conversation's faults, telling when a slowed call has reached the sandbox."""

    started: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def draw(self, operation_id: str) -> dict[str, Any]:
        outcome = super().draw(operation_id)
        if outcome["delay"]:
            self.started.set()
        return outcome


def _ctrl_c_when(started: threading.Event) -> None:
    """Ctrl-C once the slow call is under way: a real SIGINT, as a terminal sends, so it lands even while
    the main thread is blocked waiting for the call (a simulated interrupt would wait for the call to end)."""

    def press() -> None:
        if started.wait(timeout=60):
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press, daemon=True).start()


def _answers(inputs: Sequence[str | CtrlC], faults: _SlowCallFaults) -> Callable[[str], str]:
    """The REPL's prompt, answered from ``inputs``: Ctrl-C as KeyboardInterrupt, Ctrl-D at the end."""
    pending: Iterator[str | CtrlC] = iter(inputs)

    def ask(prompt: str) -> str:
        print(prompt, end="")
        item = next(pending, None)
        if item is None:
            raise EOFError
        if isinstance(item, CtrlC):
            if item.during is None:
                print("^C")
                raise KeyboardInterrupt
            _ctrl_c_when(faults.started)
            print(item.during)
            return item.during
        print(item)
        return item

    return ask


def run_conversation(conversation: Conversation, model: ModelChoice, clock: Clock | None = None) -> tuple[int, str]:
    """Run one conversation through the REPL in-process; returns its exit code and transcript."""
    from personas.cli.repl import Repl
    from personas.runtime.loader import load_persona

    faults = _SlowCallFaults.from_json(conversation.faults)
    sandbox = Sandbox(seed=SEED, faults=faults, clock=clock)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        repl = Repl(load_persona(PERSONA), sandbox=sandbox, input_fn=_answers(conversation.inputs, faults),
                    model=model)
        code = repl.run()
    return code, out.getvalue()


def author(conversation: Conversation, *, show: bool = False, clock: Clock | None = None) -> Cassette:
    cassette = Cassette.new(conversation.path, provenance())
    from personas.runtime.loader import load_persona

    spec = load_persona(PERSONA)  # the REPL asks for the persona's model and temperature: part of each request's key
    model = ModelChoice(CassetteChatModel(cassette=cassette, live=ScriptedChatModel(conversation.responses),
                                          model_name=spec.model, generation={"temperature": float(spec.temperature)}),
                        "authored responses", "authored", cassette)
    code, transcript = run_conversation(conversation, model, clock)
    if show:
        print(transcript)
    if code != 0 or len(cassette.interactions) != len(conversation.responses) or "error:" in transcript:
        raise SystemExit(f"{conversation.name}: the REPL exited {code} after {len(cassette.interactions)} of "
                         f"{len(conversation.responses)} responses:\n{transcript}")
    return cassette


def main(argv: list[str]) -> int:
    os.environ.setdefault("PERSONAS_HOME", tempfile.mkdtemp(prefix="chat-author-"))
    os.environ.pop("OPENAI_API_KEY", None)
    show = "--show" in argv  # print each conversation as the REPL showed it
    names = [a for a in argv if a != "--show"] or list(CONVERSATIONS)
    unknown = [n for n in names if n not in CONVERSATIONS]
    if unknown:
        print(f"unknown conversation(s) {', '.join(unknown)}; known: {', '.join(CONVERSATIONS)}", file=sys.stderr)
        return 2
    for name in names:
        cassette = author(CONVERSATIONS[name], show=show)
        for when in OTHER_DATES:
            other = author(CONVERSATIONS[name], clock=ManualClock(dt.datetime.fromisoformat(when).timestamp()))
            if other.interactions != cassette.interactions:
                print(f"{name}: the REPL's requests differ on {when}; the cassette would not replay on every day",
                      file=sys.stderr)
                return 1
        cassette.save()
        print(f"wrote {cassette.path.relative_to(ROOT)} ({len(cassette.interactions)} interactions; "
              f"requests identical on {1 + len(OTHER_DATES)} dates)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
