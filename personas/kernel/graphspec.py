"""The graph contract: what every graph package exports, as one typed value.

A graph package (``graphs/<name>/``) exports ``SPEC = GraphSpec(...)``. The runtime relies on
nothing else: it validates a persona's settings with ``settings``, turns ``personas run --input``
into the graph's input with ``make_input``, compiles with ``build``, bounds a run with
``recursion_limit``, shows a finished state with ``render``, and checks at load time that the
persona's scopes and tools cover ``operations``.

Example::

    SPEC = GraphSpec(
        name="lead_magnet", description="...", settings=Settings, input_model=LeadInput,
        build=build_graph, render=render_lead, operations=("get_profile", "create_event"),
    )
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from .errors import UsageProblem

__all__ = ["CONTINUING", "GraphSpec"]

#: A run's ``configurable`` key, true when the run continues a thread an earlier attempt left
#: mid-way (``RunDriver.retry``, or run again with no new input), not a new input nor a resume:
#: a graph checkpointed only at its input and end (``durability="exit"``) tells by it an effect of
#: its own earlier attempt from the same effect made by another run.
CONTINUING = "personas_continuing"


def _default_render(state: Mapping[str, Any]) -> str:
    import json

    from klaviyo_toolkit.redact import clip

    return clip(json.dumps({k: v for k, v in state.items() if k != "messages"}, indent=1, default=str), 4000)


#: pydantic's complaints about a value's type, in the words of the JSON a person typed (with the fix).
_JSON_WORDS = {
    "dict_type": "give a JSON object, {...}",
    "list_type": "give a JSON array, [...]",
    "string_type": "give a JSON string, in double quotes",
    "int_type": "give a whole number",
    "int_parsing": "give a whole number",
    "float_type": "give a number",
    "float_parsing": "give a number",
    "bool_type": "give true or false",
    "bool_parsing": "give true or false",
    "missing": "missing; give it",
}


def _in_json_words(err: Mapping[str, Any], model: type[BaseModel]) -> str:
    """One validation error as a person can act on it: what is wrong and what to give instead."""
    if err["type"] == "extra_forbidden":
        return f"unknown key; the input takes {', '.join(model.model_fields) or 'no keys'}"
    words = _JSON_WORDS.get(str(err["type"]))
    if words is None or err["type"] == "missing":
        return words or str(err["msg"])
    given = err.get("input")
    kind = ("null" if given is None else "true/false" if isinstance(given, bool) else "a number"
            if isinstance(given, (int, float)) else "a string" if isinstance(given, str) else "an array"
            if isinstance(given, list) else "an object" if isinstance(given, Mapping) else type(given).__name__)
    return f"{words} (got {kind})"


@dataclass(frozen=True)
class GraphSpec:
    """One graph, as the runtime sees it.

    Attributes:
        name: the graph's name (a persona's ``graph:``).
        description: one line for ``personas list`` and the docs.
        settings: the pydantic model of the persona ``settings:`` this graph accepts.
        input_model: validates the payload of ``personas run --input`` (None: the graph takes none).
        build: ``build(checkpointer) -> compiled graph`` (None: no checkpointer, as LangGraph Server wants).
        render: the terminal view of a finished (or paused) state.
        operations: the Klaviyo operations the graph's own code calls (the model's choices are not
            listed: they are bound by the persona's tools).
        recursion_limit: LangGraph steps one run may take.
        input_key: when set, the whole payload goes into the state under this key.
        to_state: turns the validated input model into the graph's input state (default: its fields).
        render_rich: a richer terminal view of a state (a rich renderable), used on a terminal.
        trigger_setting: the persona setting naming the metric whose events start a run (personas with
            ``schedule: on_event``, run by webhooks or polling); None when events never start it.
        exit_code: the process exit code of a run that finished (not paused), from its final state:
            0 when it did all it set out to, non-zero when it finished only in part (e.g. a sync
            whose rows were refused); None: always 0. ``personas run`` exits with it.
        durability: when a run's checkpoints are written. ``"sync"``: after every step, before the
            next starts, so a killed run resumes at the step it was in. ``"exit"``: the input before
            the first step, then only where the run stops (its end, a pause for approval, a failed
            step), so a killed run resumes from its input: for a graph whose every effect outside the
            run is idempotent (a Klaviyo event ``unique_id``, a profile set to the same values), where
            running its steps again repeats reads and never an effect. Fewer synchronous writes per
            run; see ``benchmarks/graph_overhead.py``.
        conversation: a thread is a conversation, and each new input goes on with it (the chat). Otherwise
            a thread holds one run, and the run driver refuses a new input on a thread that has one: the
            old run's state would carry into the new one (a value the new run does not set stays).
        check_input: checks the graph's input state further than ``input_model`` can (a Klaviyo event's
            fields, say), raising an error that names the field and the fix. ``make_input`` and the run
            driver call it on a new input, so one no run could use is refused before a thread is made
            or anything is written, not by the run's first step (which would leave a thread that no
            ``--retry`` can finish). Pure: no call to Klaviyo (names are resolved by the run).
    """

    name: str
    description: str
    settings: type[BaseModel]
    build: Callable[[Any], Any]
    operations: tuple[str, ...] = ()
    input_model: type[BaseModel] | None = None
    render: Callable[[Mapping[str, Any]], str] = _default_render
    recursion_limit: int = 200
    input_key: str | None = None
    to_state: Callable[[Any], dict[str, Any]] | None = None
    render_rich: Callable[[Mapping[str, Any]], Any] | None = None
    trigger_setting: str | None = None
    exit_code: Callable[[Mapping[str, Any]], int] | None = None
    durability: Literal["sync", "exit"] = "sync"
    conversation: bool = False
    check_input: Callable[[Mapping[str, Any]], None] | None = None

    def make_input(self, payload: Mapping[str, Any] | None) -> dict[str, Any]:
        """The graph's input state for a ``personas run`` payload, validated by ``input_model``."""
        data = dict(payload or {})
        if self.input_key and set(data) != {self.input_key}:
            data = {self.input_key: data}
        if self.input_model is not None:
            try:
                model = self.input_model.model_validate(data)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in err["loc"]) or "input"
                raise UsageProblem(f"--input: {where}: {_in_json_words(err, self.input_model)}") from None
            data = self.to_state(model) if self.to_state else model.model_dump(exclude_unset=True)
        if self.check_input is not None:
            self.check_input(data)
        return data
