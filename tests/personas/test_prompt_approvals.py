"""The approval rule a persona's prompt states is built from the effects table, so it cannot go stale.

The assistant's prompt once listed "deleting, sending, suppressing, unsubscribing, merging and
data-privacy requests" while calls also stopped for identity, account-wide settings and volume. The
prompt file now holds ``{{approval_rule}}`` and the rule is rendered from ``APPROVAL_EFFECTS`` when
the prompt is built: every kind of call that stops must be named in what the model reads.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.effects import APPROVAL_EFFECTS, describe_effects
from personas.kernel.context import PersonaContext, prompts_dir
from personas.kernel.governance import APPROVAL_RULE
from personas.kernel.models import ScriptedChatModel
from personas.kernel.spec import ApprovalPolicy
from personas.runtime import build_context
from personas.runtime.loader import load_persona

SHIPPED = ["klaviyo-assistant", "lead-magnet-sequencer", "segment-syncer", "campaign-reporter"]


@pytest.fixture()
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox(demo_data=False, rate_limit_factor=None)
    yield sandbox
    sandbox.close()


def context(sb: Sandbox, name: str, policy: ApprovalPolicy | None = None) -> PersonaContext:
    spec = load_persona(name)
    if policy is not None:
        spec = spec.model_copy(update={"approval": policy})
    return build_context(spec, sandbox=sb, model=ScriptedChatModel([]), audit=False)


@pytest.mark.parametrize("effect", sorted(APPROVAL_EFFECTS), ids=str)
def test_the_assistant_prompt_names_every_kind_of_call_that_stops(sb: Sandbox, effect: str) -> None:
    prompt = context(sb, "klaviyo-assistant").prompt()
    words = describe_effects({effect})  # type: ignore[arg-type]
    assert words in prompt, f"the assistant's prompt does not say that a call that {words} waits for approval"
    assert "waits for the user's approval" in prompt


def test_the_assistant_prompt_file_holds_the_rule_as_a_placeholder_not_a_hand_written_list() -> None:
    text = (prompts_dir() / "klaviyo_assistant.v1.md").read_text(encoding="utf-8")
    assert APPROVAL_RULE in text
    assert "suppressing, unsubscribing, merging" not in text


@pytest.mark.parametrize("name", SHIPPED)
def test_no_shipped_prompt_reaches_a_model_with_a_placeholder_left(sb: Sandbox, name: str) -> None:
    assert "{{" not in context(sb, name).prompt()


def test_the_rule_follows_the_persona_policy(sb: Sandbox) -> None:
    writes = context(sb, "klaviyo-assistant", ApprovalPolicy(mode="writes")).prompt()
    assert "Every call that writes waits for the user's approval." in writes
    limited = context(sb, "klaviyo-assistant", ApprovalPolicy(max_profiles_per_call=50)).prompt()
    assert "more than 50 profiles" in limited


def test_the_audited_prompt_version_names_the_text_the_model_reads(sb: Sandbox) -> None:
    """The audit log records a run's prompt version; with the rule rendered from the policy, two texts
    under one ``id@version`` would be told apart by nothing."""
    default, again = context(sb, "klaviyo-assistant"), context(sb, "klaviyo-assistant")
    limited = context(sb, "klaviyo-assistant", ApprovalPolicy(max_profiles_per_call=50))
    assert default.prompt_version == again.prompt_version
    assert default.prompt_version != limited.prompt_version
    assert default.prompt_version.startswith("klaviyo_assistant@1+")
    assert context(sb, "lead-magnet-sequencer").prompt_version == "lead_magnet_sequencer@1"  # nothing rendered
