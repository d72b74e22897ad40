"""The sweep: every operation whose every call changes consent or identity, deletes or sends stops
for approval, for every shipped persona that can call it, by its name or any alias, beta ones
included, whether the model calls it (in its chat) or the graph's own code does (where only the
effects the persona's ``relax`` names for that operation are waived).

Each persona's context is built as a run builds it (on the in-process sandbox), and the approval
guard it actually stacks is asked, not a policy rebuilt here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graphs import graph_spec
from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.effects import READ_BEFORE_WRITE, Effect, operation_effects
from klaviyo_toolkit.effects_lookup import FoundEffects
from klaviyo_toolkit.tools import Call
from klaviyo_toolkit.tools._pipeline import Guarded
from personas.cli.chat import as_chat
from personas.kernel.config import Config
from personas.kernel.governance import ApprovalGuard, needs_approval
from personas.kernel.spec import PersonaSpec
from personas.runtime import build_context
from personas.runtime.loader import BUILTIN_DIR, list_personas

#: What the brief of approvals is: these stop, whatever the arguments.
STOPS = frozenset({Effect.CONSENT, Effect.IDENTITY, Effect.DESTRUCTIVE, Effect.SENDING, Effect.ACCOUNT})
CATALOG = load_catalog(include_beta=True)
SHIPPED = sorted(s.name for s in list_personas() if s.source and Path(s.source).parent == BUILTIN_DIR)


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox(demo_data=False, rate_limit_factor=None)
    yield sandbox
    sandbox.close()


def _guard(spec: PersonaSpec, sb: Sandbox, home: Path) -> tuple[ApprovalGuard, Any]:
    ctx = build_context(spec, sandbox=sb, config=Config(home=home), audit=False)
    toolset = ctx.toolkit
    while isinstance(toolset, Guarded):
        if isinstance(toolset.guard, ApprovalGuard):
            return toolset.guard, ctx
        toolset = toolset.inner
    raise AssertionError(f"{spec.name}: no approval guard stacked")


def _stops(guard: ApprovalGuard, name: str, op: Any) -> bool:
    call = Call(name, op, {}, None)  # type: ignore[arg-type]  # the effects a call of it always has
    found = FoundEffects(READ_BEFORE_WRITE[op.operation_id], "") if op.operation_id in READ_BEFORE_WRITE else None
    return needs_approval(guard.policy, call, found)


def test_the_sweep_covers_every_shipped_persona() -> None:
    assert set(SHIPPED) == {"klaviyo-assistant", "segment-syncer", "lead-magnet-sequencer", "campaign-reporter"}


@pytest.mark.parametrize("name", SHIPPED)
def test_every_consequential_operation_a_shipped_persona_can_call_stops(sb: Sandbox, tmp_path: Path, name: str) -> None:
    spec = next(s for s in list_personas() if s.name == name)
    own = graph_spec(spec.graph).operations
    paths = [("its chat", spec if spec.graph == "chat" else as_chat(spec), frozenset())]
    if spec.graph != "chat":
        paths.append(("its graph's code", spec, frozenset(own)))
    leaks: list[str] = []
    reachable = 0
    for where, run_spec, code_calls in paths:
        guard, ctx = _guard(run_spec, sb, tmp_path)
        for op in CATALOG:
            always = operation_effects(op) & STOPS
            if not always or ctx.toolkit.missing_scopes(op):
                continue
            if where == "its chat" and ctx.refusal(op) is not None:
                continue  # the model is never given it and a call to it is refused
            if where == "its graph's code" and op.operation_id not in code_calls:
                continue
            reachable += 1
            names = {op.operation_id, *op.aliases}
            waived = {Effect(e) for n, listed in spec.approval.relax.items() if n in names for e in listed}
            if where == "its chat" or always - waived:
                leaks += [f"{op.operation_id} as {n} ({where})" for n in sorted(names) if not _stops(guard, n, op)]
    assert not leaks, f"{name}: these calls would go out unasked: {leaks}"
    if name == "klaviyo-assistant":
        assert reachable >= 9, f"the assistant (search: true) reaches {reachable} consequential operations"
