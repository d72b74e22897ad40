"""The guided chat tour: the product on the demo sandbox with no model and no key.

``personas chat klaviyo-assistant --sandbox`` without a model offers three suggested messages. The
answers are written by hand and replayed (the REPL says so); everything else is real: the tool
calls go through the persona's pipeline to the sandbox, a call outside its scopes is refused
before any request, and a delete stops for the user's approval — the answer that follows depends
on what the user decided, read from the conversation like a model would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from personas.kernel.models import ModelChoice, ToolAwareChatModel

__all__ = ["STEPS", "TOUR_DESCRIPTION", "TourModel", "tour_choice"]

TOUR_DESCRIPTION = "guided tour: hand-written answers, replayed (no model configured)"


@dataclass(frozen=True)
class Step:
    """One suggested message and what the tour does with it."""

    message: str
    shows: str


STEPS = (
    Step("Which lists do we have?", "a tool call and its result"),
    Step("Delete the Webinar Attendees list.", "a destructive call stopping for your approval (try r to reject)"),
    Step("Delete the Weekend trail picks campaign.", "a call outside the persona's scopes, refused before any request"),
)


def _records(tool: ToolMessage) -> list[dict[str, Any]]:
    """The records of a tool result (compact JSON inside the untrusted-data fence)."""
    text = tool.content if isinstance(tool.content, str) else str(tool.content)
    body = re.sub(r"^<untrusted-data[^>]*>\n?|\n?</untrusted-data>$", "", text.strip())
    try:
        view = json.loads(body)
    except ValueError:
        return []
    data = view.get("data") if isinstance(view, dict) else None
    return [
        d for d in (data if isinstance(data, list) else [data] if isinstance(data, dict) else []) if isinstance(d, dict)
    ]


def _call(name: str, args: dict[str, Any], n: int) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"tour_{name}_{n}", "type": "tool_call"}])


def _said(tool: ToolMessage) -> str:
    """What a tool result said, cut to one short paragraph for a hand-written answer."""
    text = " ".join(str(tool.content).split())
    return text if len(text) <= 300 else text[:299] + "…"


def _outcome(last: ToolMessage, name: str) -> AIMessage:
    """The answer after a delete: read from its result, as a model would, never assumed (a persona with
    the scope deletes after approval; one without is refused before any request)."""
    text = str(last.content)
    if "DRY RUN" in text:
        return AIMessage(f"Dry run: that is the request I would send; {name} was not deleted.")
    if "refused before any request" in text:
        return AIMessage(f"I can't: the call was refused before any request reached Klaviyo, so {name} was not "
                         f"deleted ({_said(last)})")
    if "rejected" in text or "nothing was sent" in text.lower():  # by you, or an edit that did not validate
        return AIMessage(f"Understood: I did not delete {name}; nothing was sent to Klaviyo.")
    if last.status == "error":  # sent, and Klaviyo refused it (an edited id that does not exist, say)
        return AIMessage(f"Klaviyo refused the delete, so {name} was not deleted: {_said(last)}")
    return AIMessage(f"Done: {name} is deleted (you approved the exact request).")


class TourModel(ToolAwareChatModel):
    """Hand-written answers for the tour's three messages; anything else gets a note on how to chat for real."""

    @property
    def _llm_type(self) -> str:
        return "tour"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.reply(messages))])

    def reply(self, messages: Sequence[BaseMessage]) -> AIMessage:
        start = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
        asked = str(messages[start].content).strip().rstrip(".?!").lower()
        results = [m for m in messages[start + 1 :] if isinstance(m, ToolMessage)]
        last = results[-1] if results else None
        if last is not None and last.status == "error" and last.name in ("get_lists", "get_campaigns"):
            # the look-up itself failed (a persona without the scope, a fault): never read as "none found"
            return AIMessage(f"I could not read them, so I cannot answer: {_said(last)}")
        if asked == STEPS[0].message.rstrip("?").lower():
            if last is None:
                return _call("get_lists", {}, 0)
            names = [str(r.get("name")) for r in _records(last)]
            return AIMessage(f"You have {len(names)} lists: {', '.join(names)}.")
        if asked == STEPS[1].message.rstrip(".").lower():
            if last is None:
                return _call("get_lists", {"filter": "equals(name,'Webinar Attendees')"}, 1)
            if last.name == "get_lists":
                found = _records(last)
                if not found:
                    return AIMessage("There is no list called Webinar Attendees (any more).")
                return _call("delete_list", {"id": found[0]["id"]}, 2)
            return _outcome(last, "Webinar Attendees")
        if asked == STEPS[2].message.rstrip(".").lower():
            if last is None:
                return _call("get_campaigns", {"filter": "equals(messages.channel,'email')"}, 3)
            if last.name == "get_campaigns":
                found = [r for r in _records(last) if r.get("name") == "Weekend trail picks"]
                if not found:
                    return AIMessage("There is no email campaign called Weekend trail picks.")
                return _call("delete_campaign", {"id": found[0]["id"]}, 4)
            return _outcome(last, "Weekend trail picks")
        return AIMessage(
            "This is the guided tour: its answers are written by hand, so it only knows its three suggested "
            "messages (press Enter to send the next one). To talk to a real model, set OPENAI_API_KEY (for a local "
            "OpenAI-compatible server also OPENAI_BASE_URL; any key it accepts, e.g. local: see the README's \"Chat "
            "with a local model\")."
        )


def tour_choice() -> ModelChoice:
    return ModelChoice(TourModel(), TOUR_DESCRIPTION, "authored")
