"""The run context every node of a persona's graph receives (``runtime.context``), and prompts.

Everything a node needs (the persona, its guarded toolset, the model, the user, the audit log,
the clock, its validated settings) travels in a :class:`PersonaContext` passed as LangGraph's run
context; checkpoints hold only state, so no key or token is ever written to them. The runtime
(``personas.runtime.build_context``) assembles one; graphs only read it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel

from klaviyo_toolkit.audit import AuditContext, AuditLog
from klaviyo_toolkit.clock import Clock, SystemClock
from klaviyo_toolkit.tools import Toolset

from .config import Config
from .governance import APPROVAL_RULE, approval_rule
from .spec import PersonaSpec, ToolSelection

if TYPE_CHECKING:  # LangChain loads when tools are built or a model answers, not with the context
    from klaviyo_toolkit.catalog import Operation
    from klaviyo_toolkit.tools import KlaviyoTool

    from .models import ModelChoice

__all__ = [
    "PersonaContext",
    "prompt_text",
    "prompt_version",
    "prompts_dir",
    "select_operations",
    "select_tools",
    "selection_refusal",
    "thread_key",
]


def thread_key(thread_id: str) -> str:
    """A file name for per-thread state that no other thread id shares (percent-encoding is one to
    one: ``a/b`` and ``a_b`` stay apart); very long ids keep a readable head and a hash."""
    encoded = quote(thread_id, safe="-_") or "%00"
    if len(encoded) <= 150:
        return encoded
    return encoded[:100] + "~" + hashlib.sha256(thread_id.encode()).hexdigest()


def prompts_dir() -> Path:
    """The shipped prompt templates (``prompts/``)."""
    import prompts

    return Path(prompts.__file__).parent


@functools.lru_cache(maxsize=32)
def _read_prompt(path: str, mtime: float) -> tuple[str, dict[str, Any]]:
    text = Path(path).read_text(encoding="utf-8")
    if text.startswith("---"):
        import yaml

        _, front, body = text.split("---", 2)
        return body.strip(), dict(yaml.safe_load(front) or {})
    return text.strip(), {}


def _prompt_file(name: str) -> tuple[str, dict[str, Any]]:
    """(body, front matter) of a prompt file, cached until the file changes."""
    path = prompts_dir() / name
    return _read_prompt(str(path), path.stat().st_mtime)


def prompt_text(name: str) -> str:
    """A prompt's text without its front matter."""
    return _prompt_file(name)[0]


def prompt_version(spec: PersonaSpec) -> str:
    """``id@version`` from the prompt's front matter (what the audit log records). A prompt with a part
    filled in at run time (the approval rule, from the effects table and the persona's policy) adds
    ``+`` and a digest of the text the model reads: the same version never names two texts."""
    body, meta = _prompt_file(spec.prompt)
    named = f"{meta.get('id', spec.prompt)}@{meta.get('version', '?')}" if meta else spec.prompt
    if APPROVAL_RULE not in body:
        return named
    rendered = body.replace(APPROVAL_RULE, approval_rule(spec.approval))
    return f"{named}+{hashlib.sha256(rendered.encode()).hexdigest()[:8]}"


def select_operations(toolset: Toolset, selection: ToolSelection) -> list[Operation]:
    """The operations a persona binds at the start: ``include`` by name, plus ``tags``/``read_only``
    picks. Names only: no tool is built (listing and validating personas need no LangChain)."""
    ops: dict[str, Operation] = {}
    if selection.tags or (selection.read_only is not None and not selection.include):
        for op in toolset.operations(tags=selection.tags or None, read_only=selection.read_only,
                                     exclude=selection.exclude):
            ops[op.name] = op
    if selection.include:
        for op in toolset.operations(include=selection.include, exclude=selection.exclude,
                                     read_only=True if selection.read_only else None):
            ops[op.name] = op
    return list(ops.values())


def selection_refusal(selection: ToolSelection, op: Operation, first: frozenset[str]) -> str | None:
    """Why a persona may not call ``op`` although its scopes allow it (None: it may).

    The selection is a boundary, not only what is bound first: ``exclude`` and ``read_only: true``
    hold for every call, whatever path it comes by (a model naming a tool it was not shown,
    ``find_tools``, graph code); without ``search`` only the first tools (``first``) may be called.
    """
    names = {op.operation_id, op.name, *op.aliases}
    if names & set(selection.exclude):
        return f"{op.name} is excluded by this persona (tools.exclude in its YAML)"
    if selection.read_only and not op.read_only:
        return f"{op.name} writes, and this persona may only read (tools.read_only: true in its YAML)"
    if not selection.search and op.name not in first:
        return (f"{op.name} is not one of this persona's tools; add it to tools.include in its YAML "
                "(or turn on tools.search) to allow it")
    return None


def select_tools(toolset: Toolset, selection: ToolSelection) -> list[KlaviyoTool]:
    """The tools a persona binds at the start (:func:`select_operations`, built as tools of ``toolset``)."""
    return [toolset.tool(op.operation_id) for op in select_operations(toolset, selection)]


@dataclass
class PersonaContext:
    """What a run of a persona's graph may use (``runtime.context`` in every node).

    Attributes:
        spec: the persona.
        toolkit: the persona's toolset: its scopes, then its guards (audit, approval, dry run);
            graph code calls ``toolkit.run(...)`` / ``toolkit.fetch(...)``, the model gets its tools.
        settings: the persona's ``settings:``, validated by its graph's settings model.
        model: the model that answers (or none: the policy decides) and a sentence saying which.
        config: the resolved environment (state folder, endpoints).
        client: the Klaviyo client under the toolkit (for code that needs the raw client).
    """

    spec: PersonaSpec
    toolkit: Toolset
    settings: BaseModel
    model: ModelChoice
    config: Config
    client: Any = None
    user: str = "local"
    thread_id: str = ""
    audit: AuditLog | None = None
    clock: Clock = field(default_factory=SystemClock)
    prompt_version: str = ""
    sandbox: Any = None
    connection: str | None = None
    account: str | None = None

    @property
    def home(self) -> Path:
        """The state folder (created 0700)."""
        return self.config.ensure_home()

    def initial_tools(self) -> list[KlaviyoTool]:
        """The tools the persona binds at the start of a conversation."""
        return select_tools(self.toolkit, self.spec.tools)

    def refusal(self, op: Operation) -> str | None:
        """Why the persona's tool selection refuses ``op`` (None: allowed; scopes are checked apart)."""
        first = self.__dict__.get("_first_tools")
        if first is None:
            first = frozenset(o.name for o in select_operations(self.toolkit, self.spec.tools))
            self.__dict__["_first_tools"] = first
        return selection_refusal(self.spec.tools, op, first)

    def prompt(self) -> str:
        """The persona's prompt text, without its front matter, with its approval rule filled in from
        the effects table and the persona's policy (``governance.approval_rule``)."""
        return prompt_text(self.spec.prompt).replace(APPROVAL_RULE, approval_rule(self.spec.approval))

    def audit_context(self) -> AuditContext:
        return AuditContext(
            user=self.user,
            persona=self.spec.name,
            thread_id=self.thread_id,
            prompt_version=self.prompt_version,
            connection=self.connection,
            account=self.account,
        )

    def audit_record(self, tool: str, status: Any, **fields: Any) -> None:
        if self.audit is not None:
            self.audit.record(tool, status, context=self.audit_context(), **fields)
