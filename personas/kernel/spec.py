"""What a persona is: the validated contents of one YAML file in ``personas/definitions/``.

A persona names its graph, prompt and model, the Klaviyo scopes it may use (nothing else is
granted), which tools it binds at the start of a conversation, when it must stop for approval,
an optional schedule, and settings that its graph validates with its own model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from klaviyo_toolkit.effects import PROFILES_PER_CALL

__all__ = ["ApprovalPolicy", "PersonaSpec", "ToolSelection"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolSelection(_Strict):
    """Which tools the persona binds first; all must lie within its scopes.

    ``include`` names tools (operation ids or aliases); ``tags`` adds every granted tool with those
    tags; ``read_only`` keeps only reads; ``exclude`` removes names. ``search`` adds the
    find/describe tools that load more tools, within scope, when the conversation needs them.
    """

    include: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    read_only: bool | None = None
    search: bool = False


class ApprovalPolicy(_Strict):
    """When a call stops for a human, by what it does (``klaviyo_toolkit.effects``).

    ``mode: effects`` (the default) stops every call that changes consent, identity or an account-wide
    setting, destroys data, sends, or writes more than ``max_profiles_per_call`` profiles at once
    (``volume``: Klaviyo bills by profile count); ``mode: writes`` stops every write. A persona
    relaxes the policy only by naming operations in ``relax`` (each one a deliberate, reviewable
    exception); ``also`` names operations that always stop. ``dry_run`` shows each write's exact
    request instead of sending it.
    """

    mode: Literal["effects", "writes"] = "effects"
    dry_run: bool = False
    also: list[str] = Field(default_factory=list, description="Operations that always need approval.")
    relax: list[str] = Field(default_factory=list, description="Operations that never need approval.")
    max_profiles_per_call: int = Field(
        PROFILES_PER_CALL, ge=1, description="A call writing more profiles than this is 'volume' and stops."
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        if value in ("destructive", "never"):
            raise ValueError(
                f"mode {value!r} is gone: approval is by effect now; use mode: effects (consent, identity, "
                "destructive and sending calls stop) and name any exception in approval.relax"
            )
        return value


class PersonaSpec(_Strict):
    """One persona, as loaded from YAML (see ``personas/definitions/*.yaml``)."""

    name: str
    description: str
    graph: str = Field(description="The graph it runs (graphs/<name>/); the loader checks it exists.")
    prompt: str
    model: str = "gpt-4.1-mini"
    temperature: float = 0.0
    scopes: list[str]
    tools: ToolSelection = Field(default_factory=ToolSelection)
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    schedule: str | None = None
    connection: str | None = Field(default=None, description="The stored connection (account) it uses.")
    settings: dict[str, Any] = Field(default_factory=dict)
    source: str = Field(default="", exclude=True, description="The file it came from.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"[a-z][a-z0-9-]{1,62}", value):
            raise ValueError("use lowercase letters, digits and dashes, e.g. lead-magnet-sequencer")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value in ("on_event", "manual"):
            return value
        if len(value.split()) != 5:
            raise ValueError("use a 5-field cron expression (e.g. '0 7 * * *'), 'on_event' or 'manual'")
        problem = _cron_problem(value)
        if problem:
            raise ValueError(f"{value!r} is not a valid cron expression ({problem}); e.g. '0 7 * * *' (07:00 daily)")
        return value


#: Each cron field: its name, its allowed numbers and names (day of week 7 is Sunday too).
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)


def _cron_problem(value: str) -> str | None:
    """What is wrong with a 5-field cron expression, or None: each field is ``*``, numbers, names,
    ranges, lists and steps within its range (checked here so a persona fails to load, not the
    scheduler at its first tick, which would stop every persona's schedule)."""
    import re

    for (label, low, high, names), field in zip(_CRON_FIELDS, value.lower().split(), strict=True):
        for part in field.split(","):
            base, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                return f"the {label} step {step!r} must be a whole number above 0"
            if base == "*":
                continue
            for end in base.split("-", 1):
                if end in names or (label == "day of month" and end == "l"):  # l: the month's last day
                    continue
                if label == "day of week" and re.fullmatch(r"[0-7]#[1-5]", end):  # 1#2: the second Monday
                    continue
                if not re.fullmatch(r"\d{1,2}", end) or not low <= int(end) <= high:
                    return f"the {label} {end!r} is outside {low}-{high}"
    return None
