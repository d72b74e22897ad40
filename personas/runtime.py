"""Run a persona's graph from code (sync or async), with its context injected, never global.

Everything a node needs (the persona, its scoped toolkit and client, the model, the user, the audit
log, the clock) travels in a :class:`PersonaContext` passed as LangGraph's run context; checkpoints
hold only state, so no key or token is ever written to them. Checkpoints are written synchronously
after every step (``durability="sync"``), so a killed run resumes exactly where it stopped.

Example::

    from personas import run_persona
    result = run_persona("lead-magnet-sequencer", event, sandbox=Sandbox())
    result.state["decision"]["sequence"], result.state["send"]["status"]
"""

from __future__ import annotations

import functools
import os
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from klaviyo_toolkit.audit import AuditContext, AuditLog
from klaviyo_toolkit.clock import Clock, SystemClock
from klaviyo_toolkit.errors import ToolkitUsageError
from klaviyo_toolkit.tools import PendingCall

from .governance import approval_guard, dry_run_guard
from .loader import PersonaToolkit, load_persona, persona_toolkit, prompts_dir
from .models import ModelChoice, resolve_model
from .spec import PersonaSpec

__all__ = ["PersonaContext", "RunResult", "arun_persona", "build_context", "checkpointer", "home", "run_persona"]


def home() -> Path:
    """``$PERSONAS_HOME`` (default ``~/.personas``): checkpoints, audit log, vault, caches."""
    path = Path(os.environ.get("PERSONAS_HOME") or Path.home() / ".personas")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class PersonaContext:
    """The run context every node of a persona's graph receives (``runtime.context``)."""

    spec: PersonaSpec
    kit: PersonaToolkit
    model: ModelChoice
    client: Any
    user: str = "local"
    thread_id: str = ""
    audit: AuditLog | None = None
    clock: Clock = field(default_factory=SystemClock)
    prompt_version: str = ""
    home: Path = field(default_factory=home)
    sandbox: Any = None

    @property
    def toolkit(self) -> Any:
        return self.kit.toolkit

    @property
    def settings(self) -> Any:
        """The persona's settings, validated by its graph's Settings model (once per context)."""
        cached = self.__dict__.get("_settings")
        if cached is None:
            from graphs import settings_model

            cached = self.__dict__["_settings"] = settings_model(self.spec.graph).model_validate(self.spec.settings)
        return cached

    def prompt(self) -> str:
        """The persona's prompt text, without its front matter."""
        return _prompt_text(self.spec.prompt)

    def audit_record(self, tool: str, status: Any, **fields: Any) -> None:
        if self.audit is not None:
            self.audit.record(tool, status, context=self.audit_context(), **fields)

    def audit_context(self) -> AuditContext:
        return AuditContext(
            user=self.user, persona=self.spec.name, thread_id=self.thread_id, prompt_version=self.prompt_version
        )


def _prompt_file(name: str) -> tuple[str, dict[str, Any]]:
    """(body, front matter) of a prompt file, cached until the file changes."""
    path = prompts_dir() / name
    return _read_prompt(str(path), path.stat().st_mtime)


@functools.lru_cache(maxsize=32)
def _read_prompt(path: str, mtime: float) -> tuple[str, dict[str, Any]]:
    text = Path(path).read_text(encoding="utf-8")
    if text.startswith("---"):
        import yaml

        _, front, body = text.split("---", 2)
        return body.strip(), dict(yaml.safe_load(front) or {})
    return text.strip(), {}


def _prompt_text(name: str) -> str:
    return _prompt_file(name)[0]


def prompt_version(spec: PersonaSpec) -> str:
    """``id@version`` from the prompt's front matter (what the audit log records)."""
    meta = _prompt_file(spec.prompt)[1]
    return f"{meta.get('id', spec.prompt)}@{meta.get('version', '?')}" if meta else spec.prompt


_AUDIT_LOGS: dict[str, AuditLog] = {}


def audit_log(path: Path) -> AuditLog:
    """One AuditLog (one SQLite connection) per file per process."""
    key = str(path)
    if key not in _AUDIT_LOGS:
        _AUDIT_LOGS[key] = AuditLog(path)
    return _AUDIT_LOGS[key]


def build_context(
    persona: str | PersonaSpec,
    *,
    client: Any = None,
    sandbox: Any = None,
    model: ModelChoice | Any = None,
    replay: str | None = None,
    user: str | None = None,
    thread_id: str | None = None,
    audit: AuditLog | bool = True,
    dry_run: bool | None = None,
    clock: Clock | None = None,
    credential: str | None = None,
) -> PersonaContext:
    """Assemble a persona's context: scoped toolkit with approval/dry-run guards, audited client, model.

    Klaviyo is ``client`` if given, else the ``sandbox`` in-process, else a client with the vault's
    ``credential`` (or ``PERSONAS_CREDENTIAL``), else one from ``KLAVIYO_API_KEY``/``KLAVIYO_BASE_URL``.
    The model is ``model`` if given, else live when ``OPENAI_API_KEY`` is set, else the ``replay``
    cassette, else none (the policy decides).
    """
    spec = load_persona(persona) if isinstance(persona, str) else persona
    thread = thread_id or f"{spec.name}-{uuid.uuid4().hex[:12]}"
    who = user or os.environ.get("PERSONAS_USER") or os.environ.get("USER") or "local"
    log = audit_log(home() / "audit.sqlite") if audit is True else (audit or None)
    credential = credential or os.environ.get("PERSONAS_CREDENTIAL") or None
    if client is None:
        if sandbox is not None:
            client = sandbox.client()
        else:
            from klaviyo_toolkit.client import KlaviyoClient

            client = KlaviyoClient(credentials=vault_credentials(credential) if credential else None)
            if client.credentials is None:
                raise ToolkitUsageError(
                    "No Klaviyo credentials: set KLAVIYO_API_KEY (and KLAVIYO_BASE_URL for a sandbox server), "
                    "or use the embedded sandbox (--sandbox)."
                )
    choice = (
        model
        if isinstance(model, ModelChoice)
        else (
            ModelChoice(model, f"the model passed in code ({type(model).__name__})", "scripted")
            if model is not None
            else resolve_model(spec.model, temperature=spec.temperature, replay=replay)
        )
    )
    ctx = PersonaContext(
        spec=spec,
        kit=None,
        model=choice,
        client=client,
        user=who,  # type: ignore[arg-type]
        thread_id=thread,
        audit=log,
        clock=clock or SystemClock(),
        prompt_version=prompt_version(spec),
        sandbox=sandbox,
    )
    if log is not None:
        client.hooks.append(log.hook(ctx.audit_context))

    def record(call: PendingCall, status: str, note: str) -> None:
        ctx.audit_record(
            call.operation.operation_id,
            status,
            method=call.request.method,
            path=call.request.path,
            arguments=call.args,
            extra={"note": note} if note else None,
        )

    guards = []
    if dry_run if dry_run is not None else spec.approval.dry_run:
        guards.append(dry_run_guard(record))
    kit = persona_toolkit(spec, client, guards=guards)
    guards.insert(0, approval_guard(spec.approval, kit.toolkit.prepare, record))
    kit.toolkit.guards = tuple(guards)
    ctx.kit = kit
    return ctx


def vault_credentials(name: str) -> Any:
    """Credentials stored in the vault under ``name``: an API key, or OAuth tokens that refresh
    themselves (OAuth needs ``KLAVIYO_CLIENT_ID`` and ``KLAVIYO_CLIENT_SECRET``)."""
    from klaviyo_toolkit.auth import BearerToken
    from klaviyo_toolkit.vault import Vault

    vault = Vault(home() / "vault.sqlite")
    info = vault.info(name)
    if info.kind == "api_key":
        return vault.get_api_key(name)
    from klaviyo_toolkit.oauth import OAuthClient, OAuthConfig, VaultTokenSource

    client_id, secret = os.environ.get("KLAVIYO_CLIENT_ID"), os.environ.get("KLAVIYO_CLIENT_SECRET")
    if not client_id or not secret:
        raise ToolkitUsageError(
            f"{name!r} holds OAuth tokens; set KLAVIYO_CLIENT_ID and KLAVIYO_CLIENT_SECRET so they can be refreshed."
        )
    base = os.environ.get("KLAVIYO_BASE_URL") or "https://a.klaviyo.com"
    config = OAuthConfig.for_base_url(base, client_id=client_id, client_secret=secret, redirect_uri="http://localhost")
    return BearerToken(VaultTokenSource(vault, name, OAuthClient(config)))


def checkpointer(path: Path | str | None = None) -> Any:
    """A SQLite checkpointer (the default) at ``path`` or ``$PERSONAS_HOME/checkpoints.sqlite``."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    target = Path(path) if path else home() / "checkpoints.sqlite"
    conn = sqlite3.connect(str(target), check_same_thread=False)
    # WAL with synchronous=NORMAL: a commit survives the process being killed (what resuming needs)
    # without an fsync per step.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return SqliteSaver(conn)


@dataclass
class RunResult:
    """A finished or paused run: its thread, final state, and pending approvals (if paused)."""

    thread_id: str
    state: dict[str, Any]
    interrupts: list[Any]
    model: str

    @property
    def paused(self) -> bool:
        return bool(self.interrupts)


def _resume(graph: Any, config: dict[str, Any], answer: Any) -> Any:
    """A resume Command: one answer for one pending approval; for several, ``answer`` is either a
    mapping of interrupt id to answer, or one answer given to all of them."""
    from langgraph.types import Command

    pending = [i.id for task in graph.get_state(config).tasks for i in task.interrupts]
    if len(pending) <= 1:
        return Command(resume=answer)
    if isinstance(answer, Mapping) and set(answer) <= set(pending):
        return Command(resume=dict(answer))
    return Command(resume={interrupt_id: answer for interrupt_id in pending})


def _graph(spec: PersonaSpec, saver: Any) -> Any:
    from graphs import build

    return build(spec.graph, checkpointer=saver)


def _recursion_limit(spec: PersonaSpec) -> int:
    """Steps one run may take: the graph's ``RECURSION_LIMIT`` if it sets one (a sync takes a step per batch)."""
    from graphs import load

    return int(getattr(load(spec.graph), "RECURSION_LIMIT", 200))


def _start(
    persona: str | PersonaSpec,
    input: Mapping[str, Any] | None,
    context: PersonaContext | None,
    saver: Any,
    resume: Any,
    options: dict[str, Any],
) -> tuple[PersonaContext, Any, dict[str, Any], Any]:
    """(context, graph bound to the checkpointer, config, what to invoke with) for one run."""
    ctx = context or build_context(persona, **options)
    graph = _graph(ctx.spec, saver)
    config = {"configurable": {"thread_id": ctx.thread_id}, "recursion_limit": _recursion_limit(ctx.spec)}
    payload: Any = _resume(graph, config, resume) if resume is not None else (None if input is None else dict(input))
    return ctx, graph, config, payload


def _result(ctx: PersonaContext, snap: Any) -> RunResult:
    interrupts = [i.value for task in snap.tasks for i in task.interrupts]
    return RunResult(ctx.thread_id, dict(snap.values), interrupts, ctx.model.description)


def run_persona(
    persona: str | PersonaSpec,
    input: Mapping[str, Any] | None,
    *,
    context: PersonaContext | None = None,
    saver: Any = None,
    resume: Any = None,
    **context_options: Any,
) -> RunResult:
    """Run (or, with ``resume=``, continue) a persona's graph once and return its result.

    ``saver`` defaults to the SQLite checkpointer in ``$PERSONAS_HOME``.
    """
    ctx, graph, config, payload = _start(
        persona, input, context, saver if saver is not None else checkpointer(), resume, context_options
    )
    graph.invoke(payload, config, context=ctx, durability="sync")
    return _result(ctx, graph.get_state(config))


async def arun_persona(
    persona: str | PersonaSpec,
    input: Mapping[str, Any] | None,
    *,
    context: PersonaContext | None = None,
    saver: Any = None,
    resume: Any = None,
    **context_options: Any,
) -> RunResult:
    """Async twin of :func:`run_persona` (``ainvoke``). ``saver`` defaults to an in-memory
    checkpointer; pass an async one (e.g. ``AsyncSqliteSaver``) to keep runs across processes.
    """
    if saver is None:
        from langgraph.checkpoint.memory import InMemorySaver

        saver = InMemorySaver()
    ctx, graph, config, payload = _start(persona, input, context, saver, resume, context_options)
    await graph.ainvoke(payload, config, context=ctx, durability="sync")
    return _result(ctx, await graph.aget_state(config))
