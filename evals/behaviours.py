"""Scripted model behaviours for policy cases: what the policy decides must not depend on them.

A policy case (``policy: true``) runs once per behaviour, and its expectations must hold each time:

- the scripted ones, from the suite's and the case's ``behaviours`` (every policy case has at least
  ``compliant``, ``out_of_policy`` and ``injected``): the model answers with those responses, in
  order, whatever it is asked, and fails once they run out;
- ``failing``: every model call fails, as an endpoint answering 500 would;
- ``absent``: no model at all (the policy decides alone).

Scripted answers are deliberately not checked against the bound schema: a model that obeys an
injection or answers out of policy is exactly what the graph must withstand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from personas.kernel.cassette import response_to_message
from personas.kernel.models import ModelChoice, ToolAwareChatModel

from .case import AUTOMATIC_BEHAVIOURS, Case, Suite

__all__ = ["ScriptedFailure", "behaviour_choice", "behaviour_names"]


class ScriptedFailure(RuntimeError):
    """The model failed on purpose (the ``failing`` behaviour, or a script that ran out)."""


class BehaviourModel(ToolAwareChatModel):
    """Answers with a behaviour's scripted responses, then fails; ``failing`` fails at once."""

    behaviour: str
    responses: list[Any] = []
    position: int = 0

    @property
    def _llm_type(self) -> str:
        return f"behaviour:{self.behaviour}"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.position >= len(self.responses):
            why = ("the endpoint answered 500 (scripted failure)" if not self.responses
                   else f"the {self.behaviour} script has {len(self.responses)} answer(s) and the run asked for more")
            raise ScriptedFailure(f"the model failed: {why}")
        message: AIMessage = response_to_message(self.responses[self.position], self.position)
        self.position += 1
        return ChatResult(generations=[ChatGeneration(message=message)])


def behaviour_names(suite: Suite, case: Case) -> list[str]:
    """The behaviours a policy case runs with, scripted ones first."""
    return [*suite.behaviours_for(case), *AUTOMATIC_BEHAVIOURS]


def behaviour_choice(suite: Suite, case: Case, name: str) -> ModelChoice:
    """The model for one behaviour of a policy case."""
    if name == "absent":
        return ModelChoice(None, "no model (behaviour: absent; the policy decides)", "none")
    scripted: Sequence[Any] = suite.behaviours_for(case).get(name, []) if name != "failing" else []
    responses = [r.to_response(i) for i, r in enumerate(scripted)]
    model = BehaviourModel(behaviour=name, responses=responses)
    what = "every call fails" if name == "failing" else f"{len(responses)} scripted answer(s)"
    return ModelChoice(model, f"scripted model (behaviour: {name}; {what})", "scripted")
