"""KlaviyoToolkit: select tools by scope, tag, name and read-only-ness; deny by default.

A toolkit is granted scopes (Klaviyo's, e.g. ``profiles:read``); only operations whose every scope
is granted become tools, and a call is re-checked before any request is sent. Unknown names are
errors, never silently dropped. Operations of the client API (``/client/``) need no private-key
scope; they are granted with the pseudo-scope ``client``.

Example::

    kit = KlaviyoToolkit(api_key="pk_...", scopes=["profiles:read", "lists:read", "lists:write"])
    tools = kit.get_tools(tags=["Lists"], exclude=["delete_list"])
    model.bind_tools(tools, strict=True)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .._arguments import PreparedRequest
from ..catalog import Catalog, Operation, load_catalog
from ..errors import ToolkitUsageError
from ._tool import KlaviyoTool, PendingCall, ToolGuard

if TYPE_CHECKING:  # the client (and httpx) load only when a call is made
    from ..client import AsyncKlaviyoClient, KlaviyoClient, KlaviyoResponse

__all__ = ["CLIENT_SCOPE", "KlaviyoToolkit", "MAX_TOOLS_PER_REQUEST"]

CLIENT_SCOPE = "client"
#: OpenAI accepts at most 128 tools in one request.
MAX_TOOLS_PER_REQUEST = 128


def _required_scopes(op: Operation) -> tuple[str, ...]:
    return op.scopes or (CLIENT_SCOPE,)


class KlaviyoToolkit:
    """Klaviyo operations as LangChain tools over one client (see module docstring).

    Args:
        client / async_client: clients to run calls with; made from ``client_options`` (or the
            environment) on first use when not given.
        scopes: granted scopes, or ``"*"`` for all. Nothing is granted by default.
        include_beta: also offer beta operations.
        guards: callables run before each call (approval, dry run, audit) - see PendingCall.
    """

    def __init__(
        self,
        client: KlaviyoClient | None = None,
        async_client: AsyncKlaviyoClient | None = None,
        *,
        scopes: Iterable[str] | Literal["*"] = (),
        include_beta: bool = False,
        guards: Sequence[ToolGuard] = (),
        max_output_chars: int = 6000,
        **client_options: Any,
    ) -> None:
        self._client = client
        self._async_client = async_client
        self._client_options = client_options
        self.include_beta = include_beta
        self.catalog: Catalog = load_catalog(include_beta)
        self.all_scopes = scopes == "*"
        self.scopes: frozenset[str] = frozenset() if scopes == "*" else frozenset(scopes)
        self.guards = tuple(guards)
        self.max_output_chars = max_output_chars
        self._tools: dict[str, KlaviyoTool] = {}

    # -- clients ---------------------------------------------------------------------------
    @property
    def client(self) -> KlaviyoClient:
        if self._client is None:
            from ..client import KlaviyoClient

            self._client = KlaviyoClient(include_beta=self.include_beta, **self._client_options)
        return self._client

    @property
    def async_client(self) -> AsyncKlaviyoClient | None:
        return self._async_client

    # -- scopes ----------------------------------------------------------------------------
    def missing_scopes(self, op: Operation) -> list[str]:
        """Scopes ``op`` needs that this toolkit was not granted (empty: allowed)."""
        if self.all_scopes:
            return []
        return [s for s in _required_scopes(op) if s not in self.scopes]

    def allows(self, op: Operation | str) -> bool:
        return not self.missing_scopes(self.catalog.get(op) if isinstance(op, str) else op)

    # -- execution (used by the tools) -----------------------------------------------------
    def prepare(self, op: Operation, args: dict[str, Any]) -> PreparedRequest:
        """Validate and build a call; a client (when there is one) fills the public key of /client/ calls."""
        core = self._async_client or self._client
        if core is not None:
            return core.prepare(op, args)
        from .._arguments import prepare

        return prepare(op, dict(args))

    def send(self, call: PendingCall) -> KlaviyoResponse:
        return self.client.send(call.request, idempotency_key=call.metadata.get("idempotency_key"))

    async def asend(self, call: PendingCall) -> KlaviyoResponse:
        if self._async_client is not None:
            return await self._async_client.send(call.request, idempotency_key=call.metadata.get("idempotency_key"))
        return await asyncio.to_thread(self.send, call)

    # -- tools -----------------------------------------------------------------------------
    def tool(self, name: str) -> KlaviyoTool:
        """One tool by operation id or alias; raises if unknown or outside the granted scopes."""
        op = self.catalog.get(name)
        missing = self.missing_scopes(op)
        if missing:
            raise ToolkitUsageError(
                f"{op.operation_id} needs scope(s) {', '.join(missing)} that this toolkit was not "
                "granted; add them to scopes= (or the persona's scopes) to use it."
            )
        tool = self._tools.get(op.operation_id)
        if tool is None:
            tool = KlaviyoTool(operation=op, executor=self, guards=self.guards)
            tool.max_output_chars = self.max_output_chars
            self._tools[op.operation_id] = tool
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
