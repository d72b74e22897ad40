"""``personas chat`` as a person uses it: a real pseudo-terminal, whole conversations, approvals, Ctrl-C, Ctrl-D.

The model's side of each conversation is a cassette authored by hand (``author_chat_cassette.py``:
responses written by hand, requests captured by running the same conversation through the REPL);
the REPL replays it with ``--replay`` and says the responses are authored by hand. Klaviyo is the
embedded sandbox (``--sandbox``), or a sandbox server when the test needs to slow a call down or to
look at the server's state afterwards. What the tests check is what the terminal shows, the audit
log in ``PERSONAS_HOME``, and (for the server) the sandbox's state.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from klaviyo_sandbox import DEMO_KEY
from klaviyo_toolkit.audit import AuditLog
from personas.kernel.config import Config
from personas.runtime.context import audit_anchor

from . import author_chat_cassette as authored
from .conftest import REAUTHOR, Terminal, child_env

PERSONA = authored.PERSONA
LIST_ID = authored.WEBINAR_LIST


def chat(terminals: list[Terminal], home: Path, name: str, *extra: str, **env: str) -> Terminal:
    cassette = authored.CONVERSATIONS[name].path
    term = Terminal(["chat", PERSONA, *extra, "--replay", str(cassette)], child_env(home, **env))
    terminals.append(term)
    term.expect("Model: responses authored by hand")
    return term


def audit_rows(home: Path, persona: str = PERSONA) -> list[tuple[str, str, str | None, int | None]]:
    """(tool, status, method, http status) of every audit row, oldest first."""
    log = AuditLog(home / "audit.sqlite", anchor=audit_anchor(Config(home=home)))
    try:
        return [(r.tool, r.status, r.method, r.http_status) for r in reversed(log.query(persona=persona, limit=None))]
    finally:
        log.close()


# -- the cassettes still answer the REPL's requests (fast, in-process) ---------------------------
@pytest.mark.parametrize("name", list(authored.CONVERSATIONS))
def test_the_authored_cassettes_still_match_the_repl(name: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from personas.kernel.cassette import CassetteError
    from personas.kernel.config import Config
    from personas.kernel.models import resolve_model

    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    conversation = authored.CONVERSATIONS[name]
    model = resolve_model("gpt-4.1-mini", Config.from_env(), replay=str(conversation.path), prefer_replay=True,
                          rerecord_hint=REAUTHOR)
    assert model.kind == "authored" and "authored by hand" in model.description
    code, transcript = authored.run_conversation(conversation, model)
    if "error:" in transcript:  # the REPL reports a mismatch (with its diff) and goes on
        pytest.fail(f"the chat cassette no longer matches what the REPL asks the model; {REAUTHOR}\n"
                    f"--- transcript ---\n{transcript}")
    assert model.cassette is not None
    try:
        model.cassette.check_finished()
    except CassetteError as exc:
        pytest.fail(f"{exc}\n--- transcript ---\n{transcript}")
    assert code == 0


# -- a whole conversation with an approved delete ------------------------------------------------
def test_a_conversation_reads_deletes_with_approval_and_leaves_with_ctrl_d(
        terminals: list[Terminal], tmp_path: Path) -> None:
    # an explicit --replay wins over a live key (nothing is sent to OpenAI)
    term = chat(terminals, tmp_path, "chat_delete_list", "--sandbox", OPENAI_API_KEY="sk-test-never-used")
    term.prompt()
    banner = " ".join(term.transcript.split())
    assert "Klaviyo: the embedded sandbox." in banner
    assert "responses written by hand in tests/cli/author_chat_cassette.py" in banner

    term.say(authored.ASK_LISTS)
    term.expect("→ get_lists {}")  # the read call with its arguments ...
    result = term.expect("\n")
    term.expect(re.compile(r"← get_lists .*\"count\": 4"))  # ... and its compact result
    answer = term.expect(f"klaviyo-assistant> You have 4 lists: Newsletter, Lead Magnet — Trail Guide, VIP "
                         f"Customers and Webinar Attendees ({LIST_ID}).")
    assert "Traceback" not in result + answer

    term.prompt()
    term.say(authored.DELETE_WEBINAR)
    term.expect("needs your approval.")
    term.expect(f'→ delete_list {{"id": "{LIST_ID}"}}')
    term.expect("Approval needed: delete_list - Delete List")
    term.expect(f"DELETE /api/lists/{LIST_ID}")  # the exact request that would be sent
    # ... and what it deletes, read before the pause: the list's name and how many profiles it holds
    term.expect(f"as it is now: list {LIST_ID} 'Webinar Attendees' (read with get_list)")
    term.expect(re.compile(r'name: "Webinar Attendees", profile_count: \d+'))
    term.prompt("approve / edit / reject? [a/e/r]")
    term.say("a")
    term.expect('← delete_list {"ok": true}')
    term.expect(f"Done: Webinar Attendees ({LIST_ID}) is deleted. You now have 3 lists.")
    term.prompt()

    tools = term.command("/tools")
    assert "delete_list (approval) - Delete List" in tools
    assert "get_lists - Get Lists" in tools
    assert "find_tools - " in tools
    assert re.search(r"\b\d+ tools bound", tools)

    scopes = term.command("/scopes")
    assert "scopes: accounts:read, profiles:read, profiles:write, lists:read, lists:write" in scopes

    audit = term.command("/audit")  # this thread's calls, oldest first
    lines = [line.split(maxsplit=1)[1] for line in audit.strip().splitlines()]
    assert lines == ["get_lists ok GET /api/lists 200",
                     f"get_list ok GET /api/lists/{LIST_ID} 200",  # the read shown with the request, once
                     f"delete_list pending_approval DELETE /api/lists/{LIST_ID}",
                     f"delete_list approved DELETE /api/lists/{LIST_ID}",
                     f"delete_list ok DELETE /api/lists/{LIST_ID} 204"], audit

    history = term.command("/history")
    for line in (f"you: {authored.ASK_LISTS}", "klaviyo-assistant: [calls: get_lists]", "tool get_lists: ",
                 f"you: {authored.DELETE_WEBINAR}", "[calls: delete_list]", 'tool delete_list: {"ok": true}',
                 f"klaviyo-assistant: Done: Webinar Attendees ({LIST_ID}) is deleted."):
        assert line in history, history

    assert term.leave() == 0
    assert "bye" in term.transcript
    assert audit_rows(tmp_path) == [("get_lists", "ok", "GET", 200),
                                    ("get_list", "ok", "GET", 200),
                                    ("delete_list", "pending_approval", "DELETE", None),
                                    ("delete_list", "approved", "DELETE", None),
                                    ("delete_list", "ok", "DELETE", 204)]
    assert (tmp_path / "chat_history").read_text().count(authored.DELETE_WEBINAR) == 1  # history persists


# -- a rejected delete, and Ctrl-C at the approval prompt -----------------------------------------
def test_a_rejected_delete_keeps_the_list_and_ctrl_c_cancels_the_turn(
        terminals: list[Terminal], tmp_path: Path) -> None:
    term = chat(terminals, tmp_path, "chat_reject", "--sandbox")
    term.prompt()
    term.say(authored.DELETE_WEBINAR)
    term.expect('→ get_lists {"filter": "equals(name,\\"Webinar Attendees\\")"}')
    term.expect(f"DELETE /api/lists/{LIST_ID}")
    term.prompt("[a/e/r]")
    term.say("r")
    term.prompt("reason (optional):")
    term.say(authored.REJECT_REASON)
    term.expect(f"← delete_list The user rejected this delete_list call ({authored.REJECT_REASON}). Nothing was sent")
    term.expect(f"Understood: I did not delete Webinar Attendees ({LIST_ID})")

    term.prompt()
    term.say(authored.DELETE_AGAIN)  # asks again, and the user presses Ctrl-C at the approval
    term.expect(f"DELETE /api/lists/{LIST_ID}")
    term.prompt("[a/e/r]")
    term.ctrl_c()
    term.expect("turn cancelled")
    term.prompt()  # the REPL is still there

    term.say(authored.STILL_THERE)  # the sandbox answers: the list exists
    term.expect(f'→ get_list {{"id": "{LIST_ID}"}}')
    term.expect(re.compile(r'← get_list .*"name": "Webinar Attendees"'))
    term.expect(f"Yes: Webinar Attendees ({LIST_ID}) is still there.")
    term.prompt()

    audit = term.command("/audit")
    assert f"delete_list rejected DELETE /api/lists/{LIST_ID}" in audit
    assert f"get_list ok GET /api/lists/{LIST_ID} 200" in audit
    assert "delete_list ok" not in audit and "delete_list approved" not in audit
    assert term.leave() == 0

    rows = audit_rows(tmp_path)
    statuses = [r[1] for r in rows if r[0] == "delete_list"]  # asked, rejected; asked again, dropped by Ctrl-C
    assert statuses == ["pending_approval", "rejected", "pending_approval", "rejected"], statuses
    assert not [r for r in rows if r[2] == "DELETE" and r[3] is not None], "a DELETE reached Klaviyo"


# -- Ctrl-C while a call is under way, against a sandbox server ---------------------------------
def test_ctrl_c_during_a_slow_call_gives_the_prompt_back_at_once(
        terminals: list[Terminal], tmp_path: Path, sandbox_server: str) -> None:
    delay = 10.0
    faults = {**authored.SLOW, "delay": delay}
    assert httpx.put(f"{sandbox_server}/sandbox/faults", json=faults).status_code == 200
    term = chat(terminals, tmp_path, "chat_cancel", KLAVIYO_BASE_URL=sandbox_server, KLAVIYO_API_KEY=DEMO_KEY)
    term.prompt()
    assert f"Klaviyo: {sandbox_server}." in term.transcript

    term.say(authored.ASK_SEGMENTS)
    term.expect("→ get_segments {}")
    time.sleep(1.0)  # the request is at the server, which holds it for `delay` seconds
    started = time.monotonic()
    term.ctrl_c()
    term.expect("turn cancelled")
    term.prompt()
    took = time.monotonic() - started
    print(f"Ctrl-C gave the prompt back in {took:.2f} s (the call takes {delay:.0f} s)")
    assert took < delay / 2

    term.say(authored.ASK_LISTS)  # the next turn waits for the call already sent, then goes on
    term.expect("(waiting for the step already under way to finish)")
    term.expect("→ get_lists {}")
    term.expect("You have 4 lists")
    term.prompt()
    history = term.command("/history")
    assert "tool get_segments: " in history  # the call that was under way finished, and is kept
    assert "klaviyo-assistant: (turn cancelled by the user)" in history
    assert term.leave() == 0

    counts = httpx.get(f"{sandbox_server}/sandbox/requests").json()["counts"]
    assert counts.get("get_segments") == 1 and counts.get("get_lists") == 1, counts


# -- no model ------------------------------------------------------------------------------------
def test_without_a_model_the_repl_says_in_one_paragraph_how_to_set_one(
        terminals: list[Terminal], tmp_path: Path, sandbox_server: str) -> None:
    env = child_env(tmp_path, KLAVIYO_BASE_URL=sandbox_server, KLAVIYO_API_KEY=DEMO_KEY)
    term = Terminal(["chat", PERSONA], env)  # a Klaviyo account but no model: not the tour
    terminals.append(term)
    banner = term.prompt()
    assert "Model: none." in banner
    paragraph = banner.split("Model: none.", 1)[1].split("Type /help", 1)[0].strip()
    assert "\n\n" not in paragraph  # one paragraph
    for needed in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PERSONAS_MODEL", f"personas chat {PERSONA}",
                   "--replay CASSETTE", "/tools", f"personas chat {PERSONA} --sandbox"):
        assert needed in paragraph.replace("\n", " "), (needed, paragraph)

    term.say("how many lists do we have?")  # asking anyway repeats the explanation
    term.expect("No model is configured")
    term.prompt()
    assert "get_lists" in term.command("/tools")  # the tools work without a model
    term.say("/exit")
    term.expect("bye")
    assert term.wait() == 0


# -- the slash commands that need no model -----------------------------------------------------
def test_slash_commands_help_new_dry_run_and_exit(terminals: list[Terminal], tmp_path: Path) -> None:
    term = Terminal(["chat", PERSONA, "--sandbox"], child_env(tmp_path))
    terminals.append(term)
    term.prompt()
    helped = term.command("/help")
    assert "this help" in helped  # (the echoed "/help" itself is cut off by command())
    for name in ("/tools", "/scopes", "/new", "/history", "/audit", "/dry-run", "/exit"):
        assert name in helped
    assert "/dry-run   [on|off] dry run" in helped, "the help is plain text, not Rich markup that eats [on|off]"
    assert "dry run on: writes are shown, not sent" in term.command("/dry-run")
    assert "dry run off" in term.command("/dry-run")
    assert "dry run on" in term.command("/dry-run on")
    assert "dry run on" in term.command("/dry-run on"), "on stays on: it never switches writes back on"
    assert "dry run off: writes are sent" in term.command("/dry-run off")
    assert "dry run stays off" in term.command("/dry-run maybe")
    assert re.search(r"new conversation klaviyo-assistant-[0-9a-f]{12}", term.command("/new"))
    assert "/help lists them" in term.command("/nope")  # "unknown command /nope; /help lists them"
    term.say("/exit")
    term.expect("bye")
    assert term.wait() == 0


# -- no key at all: the guided tour on the demo sandbox ---------------------------------------------
def test_without_a_model_the_sandbox_chat_is_a_guided_tour_with_real_calls(
        terminals: list[Terminal], tmp_path: Path) -> None:
    term = Terminal(["chat", PERSONA, "--sandbox"], child_env(tmp_path))
    terminals.append(term)
    term.expect("Model: guided tour: hand-written answers, replayed")
    term.expect("next: Which lists do we have?")
    term.prompt()
    term.say("")  # Enter sends the suggestion
    term.expect("→ get_lists {}")
    term.expect("You have 4 lists: Newsletter")
    term.prompt()
    term.say("")
    term.expect(f'→ delete_list {{"id": "{LIST_ID}"}}')
    term.expect("why: it destroys data")
    term.prompt("[a/e/r]")
    term.say("a")
    term.expect("Done: Webinar Attendees is deleted")
    term.prompt()
    term.say("")
    term.expect("← delete_campaign Error: refused before any request")
    term.expect("refused before any request reached Klaviyo, so Weekend trail picks was not deleted")
    term.expect("needs scope(s) campaigns:write")
    term.prompt()
    term.say("Tell me a joke")
    term.expect("This is the guided tour")
    term.prompt()
    assert term.leave() == 0
    rows = audit_rows(tmp_path)
    assert ("delete_list", "ok", "DELETE", 204) in rows and ("delete_campaign", "denied", None, None) in rows


# -- typed secrets, and personas that are not conversations ---------------------------------------
def test_a_key_typed_into_the_chat_is_masked_in_the_history_file(terminals: list[Terminal], tmp_path: Path) -> None:
    key = "pk_" + "9f8e7d6c5b4a" * 2
    term = Terminal(["chat", PERSONA, "--sandbox"], child_env(tmp_path))
    terminals.append(term)
    term.prompt()
    term.say(f"use the key {key} please")
    term.expect("This is the guided tour")
    term.prompt()
    assert term.leave() == 0
    history = (tmp_path / "chat_history").read_text()
    assert "use the key pk_" in history and key not in history


def test_any_persona_chats_with_its_own_scopes_and_tools(terminals: list[Terminal], tmp_path: Path) -> None:
    """`personas chat campaign-reporter`: a conversation with the reporter's scopes and tools, not a
    run of its report graph that drops what was typed."""
    term = Terminal(["chat", "campaign-reporter", "--sandbox"], child_env(tmp_path))
    terminals.append(term)
    banner = term.prompt()
    assert "runs the campaign_report graph" in banner and "guided tour" not in banner
    tools = term.command("/tools")
    assert "get_campaigns" in tools and "query_campaign_values" in tools and "delete_list" not in tools
    assert "campaigns:read" in term.command("/scopes")
    term.say("delete all lists")
    term.expect("No model is configured")
    term.prompt()
    assert term.leave() == 0
    assert not (tmp_path / "audit.sqlite").exists() or not [
        r for r in audit_rows(tmp_path, "campaign-reporter") if r[0] != "get_accounts"
    ], "nothing ran on the report graph"


def test_text_typed_ahead_of_an_approval_request_never_answers_it(terminals: list[Terminal], tmp_path: Path) -> None:
    """Lines pasted in one go reach the terminal before the request they would approve exists: the
    'a' at their end must not approve a delete no one has seen."""
    term = Terminal(["chat", PERSONA, "--sandbox"], child_env(tmp_path))
    terminals.append(term)
    term.prompt()
    term.child.send("\n\na\n")  # the tour's two suggestions (list the lists; delete one), then "a"
    term.expect(f'→ delete_list {{"id": "{LIST_ID}"}}')
    term.expect("is not taken as the answer")
    term.prompt("[a/e/r]")
    time.sleep(1.0)
    assert "Done: Webinar Attendees is deleted" not in term.transcript
    term.say("r")
    term.expect("reason (optional)")
    term.say("not asked for")
    term.prompt()
    assert term.leave() == 0
    rows = audit_rows(tmp_path)
    assert ("delete_list", "rejected", "DELETE", None) in rows and ("delete_list", "ok", "DELETE", 204) not in rows


# -- Klaviyo data in an approval that would hide or fake text on the screen -----------------------
#: Characters a terminal draws as nothing or as a line break: a line separator, invisible tag
#: letters, a Hangul filler (drawn blank), a soft hyphen, a Mongolian vowel separator, a combining
#: grapheme joiner, an interlinear annotation mark; each would make two names look alike or start a
#: line that passes for the REPL's own.
INVISIBLE = ["\u2028", "\U000e0041", "\u3164", "\u00ad", "\u180e", "\u034f", "\ufff9"]


def test_an_approval_shows_invisible_characters_in_klaviyo_data_as_escapes(
        terminals: list[Terminal], tmp_path: Path, sandbox_server: str) -> None:
    term = chat(terminals, tmp_path, "chat_delete_list", KLAVIYO_BASE_URL=sandbox_server, KLAVIYO_API_KEY=DEMO_KEY)
    term.prompt()
    term.say(authored.ASK_LISTS)
    term.expect("You have 4 lists")
    term.prompt()
    # renamed between the two turns, over HTTP, as a colleague (or a compromised integration) could
    name = "Webinar Attendees" + "".join(INVISIBLE) + "  why: it reads only"
    body = {"data": {"type": "list", "id": LIST_ID, "attributes": {"name": name}}}
    renamed = httpx.patch(f"{sandbox_server}/api/lists/{LIST_ID}", json=body,
                          headers={"Authorization": f"Klaviyo-API-Key {DEMO_KEY}", "revision": "2026-07-15"})
    assert renamed.status_code == 200, renamed.text
    term.say(authored.DELETE_WEBINAR)
    term.expect("as it is now:")
    shown = term.prompt("approve / edit / reject? [a/e/r]")
    raw = term.log.getvalue()
    assert [c for c in INVISIBLE if c in raw] == [], [f"U+{ord(c):04X}" for c in INVISIBLE if c in raw]
    assert "\\u2028\\U000e0041\\u3164\\xad\\u180e\\u034f\\ufff9" in shown.replace("\r\n", "\n").replace("\n", ""), shown
    term.say("r")
    term.prompt("reason (optional):")
    term.say("")
