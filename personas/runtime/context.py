"""Assemble a persona's run context: client, scoped toolkit with its guards, model, audit log.

``build_context`` is where the runtime meets the environment: it takes a resolved
:class:`~personas.kernel.config.Config` (or resolves one, once) and builds everything a run needs.
The toolkit is built once, already inside its guards (audit outermost, then approval, then dry
run), so no tool of a persona can run without them.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel

from graphs import graph_spec
from klaviyo_toolkit.approval_view import VIEW_MAX_WAIT, VIEW_READ_TIMEOUT
from klaviyo_toolkit.audit import AuditLog
from klaviyo_toolkit.client import NO_RETRIES, KlaviyoClient
from klaviyo_toolkit.clock import Clock, SystemClock
from klaviyo_toolkit.tools import Guard, KlaviyoToolkit, Toolset
from personas.kernel.config import Config
from personas.kernel.context import PersonaContext, prompt_version
from personas.kernel.governance import ApprovalGuard, AuditGuard, DryRunGuard, SelectionGuard
from personas.kernel.models import ModelChoice, resolve_model
from personas.kernel.privacy import register_secrets
from personas.kernel.spec import ApprovalPolicy, PersonaSpec

from .audit import audit_anchor, audit_log
from .connections import resolve_klaviyo
from .loader import load_persona

__all__ = ["audit_anchor", "audit_log", "build_context"]

def build_context(
    persona: str | PersonaSpec,
    *,
    config: Config | None = None,
    client: Any = None,
    async_client: Any = None,
    sandbox: Any = None,
    model: ModelChoice | Any = None,
    replay: str | None = None,
    user: str | None = None,
    thread_id: str | None = None,
    audit: AuditLog | bool = True,
    dry_run: bool | None = None,
    clock: Clock | None = None,
    connection: str | None = None,
    guards: tuple[Guard, ...] = (),
) -> PersonaContext:
    """A persona's context: scoped toolkit inside its guards, the Klaviyo client, the model.

    Klaviyo is ``client`` if given, else the ``sandbox`` in-process, else the stored ``connection``
    (or the persona's, or the config's), else ``KLAVIYO_API_KEY``/``KLAVIYO_BASE_URL`` from the config,
    else the stored connection ``default`` (see ``runtime/connections.py``: the toolkit gets the
    persona's scopes that the connection was granted). The model is
    ``model`` if given, else live when the config has an OpenAI key, else the ``replay`` cassette,
    else none (the policy decides). ``guards`` go outside the standard ones (e.g. the service's metrics).
    """
    config = config or Config.from_env()
    register_secrets(config)
    spec = load_persona(persona, home=config.home) if isinstance(persona, str) else persona
    graph = graph_spec(spec.graph)
    thread = thread_id or f"{spec.name}-{uuid.uuid4().hex[:12]}"
    log = audit_log(config) if audit is True else (audit or None)
    klaviyo = resolve_klaviyo(spec, config, connection=connection, client=client, sandbox=sandbox, clock=clock)
    spec, client = klaviyo.spec, klaviyo.client
    if isinstance(model, ModelChoice):
        choice = model
    elif model is not None:
        choice = ModelChoice(model, f"the model passed in code ({type(model).__name__})", "scripted")
    else:
        choice = resolve_model(spec.model, config, temperature=spec.temperature, replay=replay)
    base = KlaviyoToolkit(client, async_client, scopes=klaviyo.scopes, scope_fix=klaviyo.scope_fix)
    ctx = PersonaContext(
        spec=spec,
        toolkit=base,
        settings=_settings(graph.settings, spec),
        model=choice,
        config=config,
        client=client,
        user=user or config.user,
        thread_id=thread,
        audit=log,
        clock=clock or SystemClock(),
        prompt_version=prompt_version(spec),
        sandbox=sandbox,
        connection=klaviyo.connection,
        account=klaviyo.account,
    )
    stack: list[Guard] = []
    if log is not None:
        stack.append(AuditGuard(log, ctx.audit_context))
    stack.append(SelectionGuard(ctx.refusal))
    # the reads some approvals need (is this template live?) go out with the persona's scopes, audited
    reader = base.guarded(AuditGuard(log, ctx.audit_context)) if log is not None else base
    policy = own_code_relax(spec.approval, graph.operations, base)
    stack.append(ApprovalGuard(policy, base.prepare, reader, _viewer(client, klaviyo.scopes, log, ctx)))
    if dry_run if dry_run is not None else spec.approval.dry_run:
        stack.append(DryRunGuard())
    ctx.toolkit = base.guarded(*stack, *guards)
    return ctx


#: Validated settings by persona spec (a spec is immutable, and the loader hands out the same one
#: until its file changes): (spec, its graph's settings model, the settings), newest last.
_SETTINGS: dict[int, tuple[PersonaSpec, type[BaseModel], BaseModel]] = {}
_SETTINGS_KEPT = 32


def _settings(model: type[BaseModel], spec: PersonaSpec) -> BaseModel:
    """``spec.settings`` validated by its graph's ``model``, once per spec: validating them (with
    their cross-checks) cost about a tenth of a run's context. Keyed by the spec object itself (held,
    so that its id is never reused while cached): a persona file edited loads as a new spec, and a
    spec changed in code (``model_copy``) is a new object too. Only a frozen settings model's value
    is shared by runs."""
    kept = _SETTINGS.get(id(spec))
    if kept is not None and kept[0] is spec and kept[1] is model:
        return kept[2]
    settings = model.model_validate(spec.settings)
    if not model.model_config.get("frozen"):  # a value a run could change is never shared
        return settings
    _SETTINGS[id(spec)] = (spec, model, settings)
    while len(_SETTINGS) > _SETTINGS_KEPT:
        _SETTINGS.pop(next(iter(_SETTINGS)))
    return settings


def _viewer(client: Any, scopes: Any, log: AuditLog | None, ctx: PersonaContext) -> Toolset | None:
    """The reader an approval shows the resource as it is now with: the persona's own client and
    scopes, audited, that gives up at once (no retries, :data:`VIEW_READ_TIMEOUT`, a rate-limit slot
    at most :data:`VIEW_MAX_WAIT` away), since a slow or throttled read would otherwise hold the
    approval up for a minute or more. None (the approval
    guard's own reader is used) when the client is not one this can copy."""
    if not isinstance(client, KlaviyoClient):
        return None
    quick = client.with_options(retry=NO_RETRIES, timeout=VIEW_READ_TIMEOUT, max_wait=VIEW_MAX_WAIT)
    kit = KlaviyoToolkit(quick, scopes=scopes)
    return kit.guarded(AuditGuard(log, ctx.audit_context)) if log is not None else kit


def own_code_relax(policy: ApprovalPolicy, operations: tuple[str, ...], kit: KlaviyoToolkit) -> ApprovalPolicy:
    """``policy`` with ``relax`` kept only for operations the graph's own code calls (``operations``).

    A relax stands for what that code does around the call; any other call is the model's (in a chat,
    every call), and a model's calls always stop. The loader refuses such an entry in a persona file;
    this holds the same for a spec built in code."""
    kept = {name: effects for name, effects in policy.relax.items()
            if kit.catalog.get(name).operation_id in operations}  # fmt: skip
    return policy if kept == policy.relax else policy.model_copy(update={"relax": kept})
