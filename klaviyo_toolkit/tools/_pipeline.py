"""The one call pipeline: prepare -> scope check -> guards -> send, ending in ``Sent`` or ``Stopped``.

Every call, whether a model picked it (a :class:`KlaviyoTool`) or graph code made it
(``toolkit.run("get_profiles", ...)``), goes through the same steps::

    toolset.prepare(name, args)   validate and build the request (InvalidArgumentError: no HTTP)
    toolset.run_call(call)        outermost guard first ... the toolkit last:
        Guarded.run_call            guard.before(call) -> the call (maybe edited) or Stopped
        KlaviyoToolkit.run_call     scopes granted? else Stopped("denied"); then HTTP -> Sent

Guards are immutable wrappers (:class:`Guarded`), stacked with ``toolset.guarded(...)``; tools
are built by the toolset they belong to, so a tool always runs through every guard of its toolset.
What happens to a call (each HTTP call, each stop, each approval) is told to the observers the
call carries (``Call.observed_by``), which is how the audit log sees everything under the right run.

Example::

    kit = KlaviyoToolkit(client, scopes=["lists:read", "lists:write"]).guarded(my_guard)
    outcome = kit.run("delete_list", id="L1")
    if isinstance(outcome, Stopped):
        print(outcome.status, outcome.reason)     # e.g. "rejected", "the user said no"
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Union

from .._arguments import PreparedRequest
from .._stack import heavy_import
from ..catalog import Catalog, Operation
from ..effects import Effect, call_effects
from ..errors import KlaviyoError, ToolkitUsageError

if TYPE_CHECKING:
    from ..client import CallRecord, KlaviyoResponse
    from ._tool import KlaviyoTool

__all__ = [
    "Call",
    "CallEvent",
    "CallStopped",
    "Guard",
    "Guarded",
    "Note",
    "Observer",
    "Outcome",
    "Sent",
    "StopStatus",
    "Stopped",
    "Toolset",
    "fingerprint",
]

log = logging.getLogger("klaviyo_toolkit.tools")


def tool_module() -> ModuleType:
    """``klaviyo_toolkit.tools._tool``, imported on first use: it imports LangChain, which costs more
    than the rest of the toolkit together, so it is imported with room on the frame stack (its time
    otherwise depends on the caller's call depth) and the garbage collector paused
    (:func:`klaviyo_toolkit._stack.heavy_import`)."""
    module = sys.modules.get(f"{__package__}._tool")
    if module is None:
        module = heavy_import(f"{__package__}._tool")
    return module


StopStatus = Literal["denied", "dry_run", "rejected"]


def fingerprint(tool: str, args: Mapping[str, Any]) -> str:
    """A short hash of a call's exact arguments: what an approval is bound to."""
    text = json.dumps({"tool": tool, "args": args}, sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Note:
    """Something a guard decided about a call that goes on (``approved``, ``edited``, ``pending_approval``)."""

    status: str
    detail: str = ""


@dataclass(frozen=True)
class Call:
    """A validated call on its way through the pipeline; guards may stop it or return an edited copy."""

    tool_name: str
    operation: Operation
    args: Mapping[str, Any]
    request: PreparedRequest
    observers: tuple[Observer, ...] = ()
    summary: Mapping[str, Any] | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.tool_name, self.args)

    @property
    def effects(self) -> frozenset[Effect]:
        """What this call does to the account (``klaviyo_toolkit.effects``)."""
        return call_effects(self.operation, self.args)

    def with_args(self, args: Mapping[str, Any], request: PreparedRequest) -> Call:
        """This call with other arguments (an approver's edit). The caller's ``summary`` described the
        arguments it was given (the syncer's batch: its count, its sample, its file), so a change of
        arguments drops it: an edited request is shown as what it is, never under the old one's summary."""
        same = dict(args) == dict(self.args)
        return replace(self, args=dict(args), request=request, summary=self.summary if same else None)

    def observed_by(self, *observers: Observer) -> Call:
        return replace(self, observers=(*self.observers, *observers))

    def notify(self, event: CallEvent) -> None:
        """Tell every observer; a broken observer never breaks the call."""
        for observer in self.observers:
            try:
                observer(self, event)
            except Exception:
                log.exception("call observer failed")


@dataclass(frozen=True)
class Sent:
    """The call reached Klaviyo and succeeded; ``response`` is what came back."""

    call: Call
    response: KlaviyoResponse

    @property
    def data(self) -> Any:
        return self.response.data

    @property
    def body(self) -> Any:
        return self.response.body

    @property
    def request_id(self) -> str | None:
        return self.response.request_id


@dataclass(frozen=True)
class Stopped:
    """The call was not sent: ``denied`` (scope), ``dry_run`` (shown, not sent) or ``rejected`` (approval).

    ``reason`` is written for the model and the user; ``request`` is the exact request that was not sent.
    """

    call: Call
    status: StopStatus
    reason: str
    request: dict[str, Any] = field(default_factory=dict)


Outcome = Union[Sent, Stopped]
CallEvent = Union["CallRecord", Stopped, Note]
Observer = Callable[[Call, CallEvent], None]


class CallStopped(KlaviyoError):
    """Raised by :meth:`Toolset.fetch` when a call it needed was stopped (it carries the Stopped)."""

    def __init__(self, stopped: Stopped) -> None:
        self.stopped = stopped
        super().__init__(f"{stopped.call.tool_name} was not sent ({stopped.status}): {stopped.reason}")


class Guard(Protocol):
    """One step of the pipeline: return the call (or an edited copy) to go on, or a Stopped.

    A guard is asked only about calls its toolset can make; one that only observes (an audit
    log) sets ``sees_denied = True`` to see refused calls too.
    """

    def before(self, call: Call) -> Call | Stopped: ...


class Toolset(ABC):
    """Klaviyo operations as tools, run through one pipeline (see the module docstring).

    Subclasses: :class:`~klaviyo_toolkit.tools.KlaviyoToolkit` (grants scopes and sends) and
    :class:`Guarded` (one guard around another toolset).
    """

    catalog: Catalog
    max_output_chars: int = 6000
    #: Whether its update tools offer models the ``clear`` argument (``KlaviyoToolkit(clear_argument=...)``).
    clear_argument: bool = True

    # -- what subclasses provide -------------------------------------------------------------
    @abstractmethod
    def missing_scopes(self, op: Operation) -> list[str]:
        """Scopes ``op`` needs that were not granted (empty: allowed)."""

    def scope_fix(self, missing: Sequence[str]) -> str:
        """How to be granted ``missing`` scopes, as a refusal of a tool for them says it (a caller that
        knows better, such as a persona on a connection granted fewer scopes, says it instead)."""
        return "add them to scopes= (or the persona's scopes) to use it"

    @abstractmethod
    def prepare(self, operation: Operation | str, args: Mapping[str, Any]) -> Call:
        """Validate ``args`` and build the call; raises InvalidArgumentError before any HTTP."""

    @abstractmethod
    def run_call(self, call: Call) -> Outcome:
        """Take a prepared call through the rest of the pipeline."""

    @abstractmethod
    async def arun_call(self, call: Call) -> Outcome:
        """Async twin of :meth:`run_call`."""

    # -- running -------------------------------------------------------------------------------
    def allows(self, op: Operation | str) -> bool:
        return not self.missing_scopes(self.catalog.get(op) if isinstance(op, str) else op)

    def run(self, name: str | Operation, /, **args: Any) -> Outcome:
        """Prepare and run one call: ``Sent`` or ``Stopped``; Klaviyo's errors raise (typed)."""
        return self.run_call(self.prepare(name, args))

    async def arun(self, name: str | Operation, /, **args: Any) -> Outcome:
        return await self.arun_call(self.prepare(name, args))

    def fetch(self, name: str | Operation, /, **args: Any) -> KlaviyoResponse:
        """Run a call whose result the caller needs (a read): the response, or CallStopped."""
        outcome = self.run(name, **args)
        if isinstance(outcome, Stopped):
            raise CallStopped(outcome)
        return outcome.response

    def pages(self, name: str | Operation, /, **args: Any) -> Iterator[KlaviyoResponse]:
        """Every page of a list call, each page a call through the pipeline (``page_cursor`` follows
        ``links.next``): for checks that must see everything, not the first page."""
        cursor = None
        while True:
            page = self.fetch(name, **args, **({"page_cursor": cursor} if cursor else {}))
            yield page
            cursor = page.next_cursor
            if not cursor:
                return

    def guarded(self, *guards: Guard) -> Toolset:
        """This toolset inside ``guards``, the first one outermost; a new value, nothing changed."""
        toolset: Toolset = self
        for guard in reversed(guards):
            toolset = Guarded(toolset, guard)
        return toolset

    # -- selecting tools -----------------------------------------------------------------------
    def tool(self, name: str) -> KlaviyoTool:
        """One tool by operation id or alias; raises if unknown or outside the granted scopes."""
        tool_class: type[KlaviyoTool] = tool_module().KlaviyoTool

        op = self.catalog.get(name)
        missing = self.missing_scopes(op)
        if missing:
            raise ToolkitUsageError(
                f"{op.operation_id} needs scope(s) {', '.join(missing)} that this toolkit was not "
                f"granted; {self.scope_fix(missing)}."
            )
        cache: dict[str, KlaviyoTool] = self.__dict__.setdefault("_tools", {})
        tool = cache.get(op.operation_id)
        if tool is None:
            tool = cache[op.operation_id] = tool_class(operation=op, executor=self)
            tool.max_output_chars = self.max_output_chars
        return tool

    def operations(
        self,
        *,
        tags: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        read_only: bool | None = None,
    ) -> list[Operation]:
        """The granted operations matching every given filter (``include`` names must be granted)."""
        exclude_ids = {self.catalog.resolve(n) for n in exclude or ()}
        if include is not None:
            wanted = [self.catalog.get(n) for n in include]
            denied = {op.operation_id: self.missing_scopes(op) for op in wanted if self.missing_scopes(op)}
            if denied:
                detail = "; ".join(f"{k} needs {', '.join(v)}" for k, v in denied.items())
                raise ToolkitUsageError(f"Requested tools are outside the granted scopes: {detail}.")
            ops = wanted
        else:
            ops = [op for op in self.catalog if not self.missing_scopes(op)]
        if tags is not None:
            tag_set = {t.lower() for t in tags}
            known = {op.tag.lower() for op in self.catalog}
            unknown = tag_set - known
            if unknown:
                all_tags = ", ".join(sorted({op.tag for op in self.catalog}))
                raise ToolkitUsageError(f"Unknown tag(s) {sorted(unknown)}; known tags: {all_tags}.")
            ops = [op for op in ops if op.tag.lower() in tag_set]
        if read_only is not None:
            ops = [op for op in ops if op.read_only == read_only]
        seen: set[str] = set()
        out = []
        for op in ops:
            if op.operation_id not in exclude_ids and op.operation_id not in seen:
                seen.add(op.operation_id)
                out.append(op)
        return out

    def get_tools(
        self,
        *,
        tags: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        read_only: bool | None = None,
        max_tools: int | None = None,
    ) -> list[KlaviyoTool]:
        """Tools for the granted operations that match every filter.

        Raises ToolkitUsageError for unknown names or tags, names outside the granted scopes, and
        selections larger than ``max_tools``.
        """
        ops = self.operations(tags=tags, include=include, exclude=exclude, read_only=read_only)
        if max_tools is not None and len(ops) > max_tools:
            raise ToolkitUsageError(
                f"{len(ops)} tools selected, over the limit of {max_tools}; narrow the selection "
                "(tags=, include=, read_only=) or use the search tool to load more on demand."
            )
        return [self.tool(op.operation_id) for op in ops]


class Guarded(Toolset):
    """``inner`` with ``guard`` in front of it. Calls ``inner`` would deny pass straight through
    (no approval is asked for a call that cannot be made), unless the guard ``sees_denied``."""

    def __init__(self, inner: Toolset, guard: Guard) -> None:
        self.inner = inner
        self.guard = guard
        self.catalog = inner.catalog
        self.max_output_chars = inner.max_output_chars
        self.clear_argument = inner.clear_argument
        # The innermost toolset's scope check, asked directly: a persona's toolkit is three or four
        # guards deep, and every call (and every tool listing, once per catalog operation) asks it.
        self._missing: Callable[[Operation], list[str]] = (
            inner._missing if type(inner) is Guarded else inner.missing_scopes
        )

    def __repr__(self) -> str:
        return f"Guarded({self.guard!r}, {self.inner!r})"

    def missing_scopes(self, op: Operation) -> list[str]:
        return self._missing(op)

    def scope_fix(self, missing: Sequence[str]) -> str:
        return self.inner.scope_fix(missing)

    def prepare(self, operation: Operation | str, args: Mapping[str, Any]) -> Call:
        return self.inner.prepare(operation, args)

    def _step(self, call: Call) -> Call | Stopped:
        if self._missing(call.operation) and not getattr(self.guard, "sees_denied", False):
            return call
        step = self.guard.before(call)
        if isinstance(step, Stopped):
            step.call.notify(step)
        return step

    def run_call(self, call: Call) -> Outcome:
        step = self._step(call)
        return step if isinstance(step, Stopped) else self.inner.run_call(step)

    async def arun_call(self, call: Call) -> Outcome:
        step = self._step(call)
        return step if isinstance(step, Stopped) else await self.inner.arun_call(step)


def require_toolset(value: Any) -> Toolset:
    """``value`` if it is a Toolset, else a clear developer error."""
    if not isinstance(value, Toolset):
        raise ToolkitUsageError(f"expected a Toolset (e.g. KlaviyoToolkit), got {type(value).__name__}")
    return value
