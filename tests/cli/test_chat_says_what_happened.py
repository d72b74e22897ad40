"""Every chat turn ends with something true on the screen, in a real pseudo-terminal.

A turn the tool-call limit stops, or a model reply with no text, used to end with nothing from the
persona at all; the guided tour, taken with a chat persona of the user's own whose scopes refuse its
look-ups, answered "You have 0 lists" or "there is no such list" from a call that was refused, and
claimed a delete "needs campaigns:write, which this persona does not have" for a persona that had it.
The model is a local OpenAI-compatible fake (a third-party service, like the sandbox) or the tour;
Klaviyo is the embedded sandbox; the audit log is read back from ``PERSONAS_HOME``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from klaviyo_toolkit.audit import AuditLog
from personas.kernel.config import Config
from personas.runtime.context import audit_anchor

from ..fake_openai import FakeOpenAI
from .conftest import Terminal, child_env

PERSONA_YAML = """name: {name}
description: a chat persona of the user's own
graph: chat
prompt: klaviyo_assistant.v1.md
model: gpt-4.1-mini
scopes: {scopes}
tools:
  search: true
approval:
  mode: effects
settings: {{}}
"""


def persona_file(folder: Path, name: str, scopes: list[str]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(PERSONA_YAML.format(name=name, scopes="[" + ", ".join(scopes) + "]"), encoding="utf-8")
    return path


def audit_rows(home: Path, persona: str) -> list[tuple[str, str, str | None]]:
    log = AuditLog(home / "audit.sqlite", anchor=audit_anchor(Config(home=home)))
    try:
        return [(r.tool, r.status, r.error) for r in reversed(log.query(persona=persona, limit=None))]
    finally:
        log.close()


def test_a_turn_stopped_by_the_tool_call_limit_or_an_empty_reply_still_answers(tmp_path: Path) -> None:
    answers: list[dict[str, Any]] = [
        {"tool_calls": [{"name": "get_lists", "args": {}} for _ in range(13)]},  # over the limit of 12
        {"content": ""},  # a reply with no text and no call
    ]

    def script(body: dict[str, Any], n: int) -> dict[str, Any]:
        return answers[n] if n < len(answers) else {"content": "more than was scripted"}

    persona = persona_file(tmp_path, "no-scopes", [])
    home = tmp_path / "home"
    with FakeOpenAI(mode="script", script=script) as model:
        env = child_env(home, OPENAI_API_KEY="sk-local-fake", OPENAI_BASE_URL=model.base_url)
        term = Terminal(["chat", str(persona), "--sandbox"], env)
        try:
            term.prompt()
            assert "scopes: none (every Klaviyo call is refused)" in term.command("/scopes")
            term.say("read every list thirteen times")
            term.expect("Not run: this turn reached the limit of 12 tool calls.")
            term.expect("no-scopes> I stopped after 12 tool calls in this turn.")
            term.prompt()
            term.say("and now?")
            term.expect("no-scopes> (no answer: the model's reply was empty; ask again)")
            term.prompt()
            assert term.leave() == 0
        finally:
            term.close()
    assert len(model.requests) == 2, "the limit stops the turn without asking the model again"
    rows = audit_rows(home, "no-scopes")
    assert rows == [("get_lists", "denied", "Not run: this turn reached the limit of 12 tool calls.")] * 13, rows


def test_the_guided_tour_reads_its_answers_from_what_the_calls_did(tmp_path: Path) -> None:
    """A persona of the user's own, no key, the demo sandbox: the tour's calls are real, so are their refusals."""
    persona = persona_file(tmp_path, "campaigns-only", ["campaigns:read", "campaigns:write"])
    home = tmp_path / "home"
    term = Terminal(["chat", str(persona), "--sandbox"], child_env(home))
    try:
        term.expect("Model: guided tour")
        term.prompt()
        term.say("")  # "Which lists do we have?": get_lists is outside this persona's scopes
        term.expect("you> Which lists do we have?")
        term.expect("← get_lists Error: refused before any request")
        listed = term.prompt()
        assert "I could not read them, so I cannot answer" in listed and "You have 0 lists" not in listed, listed
        term.say("")  # "Delete the Webinar Attendees list.": its look-up is refused too
        term.expect("you> Delete the Webinar Attendees list.")
        deleted = term.prompt()
        assert "I could not read them" in deleted and "There is no list called" not in deleted, deleted
        assert "→ delete_list" not in deleted
        term.say("")  # "Delete the Weekend trail picks campaign.": in scope, so it stops for approval
        term.expect("you> Delete the Weekend trail picks campaign.")
        term.expect("Approval needed: delete_campaign")
        term.prompt("[a/e/r]")
        term.say("r")
        term.prompt("reason (optional):")
        term.say("")
        term.expect("← delete_campaign")
        answered = term.prompt()
        assert "Understood: I did not delete Weekend trail picks" in answered, answered
        assert "does not have" not in answered
        assert term.leave() == 0
    finally:
        term.close()
    statuses = [(tool, status) for tool, status, _ in audit_rows(home, "campaigns-only")]
    assert ("get_lists", "denied") in statuses and ("delete_campaign", "rejected") in statuses, statuses
    assert ("delete_campaign", "ok") not in statuses
