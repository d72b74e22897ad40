"""What a persona is: the validated contents of one YAML file in ``personas/definitions/``.

A persona names its graph, prompt and model, the Klaviyo scopes it may use (nothing else is
granted), which tools it binds at the start of a conversation, when it must stop for approval,
an optional schedule, and settings that its graph validates with its own model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.effects import PROFILES_PER_CALL, Effect, operation_effects, possible_effects
from klaviyo_toolkit.errors import UnknownOperationError

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


#: The effects an approval policy can waive, in the order they are listed: every one a write can have
#: (``write`` itself stops a call only in ``mode: writes``).
_WAIVABLE = [e.value for e in Effect if e is not Effect.READ]
#: What a call does beyond writing: the effects a ``relax`` entry names (``write`` aside).
_BEYOND_WRITE = frozenset(Effect) - {Effect.READ, Effect.WRITE}


def _effect_names(value: list[str]) -> list[str]:
    """One operation's waived effects: at least one, each an effect that can stop a call."""
    if not value:
        raise ValueError("name at least one effect to waive, e.g. [sending]; to waive none, drop the operation")
    for name in value:
        if name not in _WAIVABLE:
            raise ValueError(f"{name!r} is not an effect; the effects a policy can waive: {', '.join(_WAIVABLE)}")
    return value


def _relax_fix(names: list[Any]) -> str:
    """The refusal of ``relax`` given as bare operation names, with the mapping to write instead."""
    lines = []
    for name in names:
        try:
            op = load_catalog(include_beta=True).get(str(name))
        except UnknownOperationError:
            lines.append(f"    {name}: [...]")
            continue
        always = [e.value for e in Effect if e in operation_effects(op) & _BEYOND_WRITE]
        others = [e.value for e in Effect if e in possible_effects(op) & _BEYOND_WRITE and e.value not in always]
        if always:
            lines.append(f"    {name}: [{', '.join(always)}]" + (f"   # it can also have: {', '.join(others)}"
                                                                  if others else ""))
        else:
            lines.append(f"    {name}: [...]   # it can have: {', '.join(others)}")
    return (
        "must say which effects it waives for each operation (a name alone waived every effect the call had, "
        "whatever it did); write a mapping of operation to effects, naming only what this persona's job needs:\n"
        "  relax:\n" + "\n".join(lines)
    )


class ApprovalPolicy(_Strict):
    """When a call stops for a human, by what it does (``klaviyo_toolkit.effects``).

    ``mode: effects`` (the default) stops every call that changes consent, identity or an account-wide
    setting, destroys data, sends, or writes more than ``max_profiles_per_call`` profiles at once;
    ``mode: writes`` stops every write. ``relax`` waives effects, per operation, each a deliberate and
    reviewable exception for what the persona's graph does around that call::

        relax:
          create_event: [sending]      # the one event that starts the lead's sequence

    A call of a relaxed operation still stops for any effect not named (an event that also
    re-addresses its profile). ``also`` names operations that always stop. ``dry_run`` shows each
    write's exact request instead of sending it.
    """

    mode: Literal["effects", "writes"] = "effects"
    dry_run: bool = False
    also: list[str] = Field(default_factory=list, description="Operations that always need approval.")
    relax: dict[str, Annotated[list[str], AfterValidator(_effect_names)]] = Field(
        default_factory=dict, description="Per operation, the effects that do not need approval."
    )
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

    @field_validator("relax", mode="before")
    @classmethod
    def _relax(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            raise ValueError(_relax_fix(list(value)))
        return value

    @model_validator(mode="after")
    def _write_is_waived_only_where_it_stops(self) -> ApprovalPolicy:
        if self.mode == "effects":
            for name, effects in self.relax.items():
                if "write" in effects:
                    raise ValueError(
                        f"relax.{name}: 'write' stops a call only in mode: writes; in mode: effects a plain "
                        "write never stops, so there is nothing to waive"
                    )
        return self


class PersonaSpec(_Strict):
    """One persona, as loaded from YAML (see ``personas/definitions/*.yaml``)."""

    name: str
    description: str
    graph: str = Field(description="The graph it runs (graphs/<name>/); the loader checks it exists.")
    prompt: str
    model: str = "gpt-4.1-mini"
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature, 0 to 2 (the OpenAI range).")
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
