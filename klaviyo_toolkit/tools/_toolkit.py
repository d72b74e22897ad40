"""KlaviyoToolkit: select tools by scope, tag, name and read-only-ness; deny by default.

A toolkit is granted scopes (Klaviyo's, e.g. ``profiles:read``); only operations whose every scope
is granted become tools, and a call is re-checked before any request is sent. Unknown names and
unknown scopes are errors, never silently dropped. Operations of the client API (``/client/``) need no private-key
scope; they are granted with the pseudo-scope ``client``.

Example::

    kit = KlaviyoToolkit(api_key="pk_...", scopes=["profiles:read", "lists:read", "lists:write"])
    tools = kit.get_tools(tags=["Lists"], exclude=["delete_list"])
    model.bind_tools(tools, strict=True)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ..catalog import Catalog, Operation, load_catalog
from ..errors import ScopeDeniedError
from ..scopes import ALL_SCOPES, parse_scopes
from ._pipeline import Call, Outcome, Sent, Stopped, Toolset

if TYPE_CHECKING:  # the client (and httpx) load only when a call is made
    from ..client import AsyncKlaviyoClient, CallRecord, KlaviyoClient

__all__ = ["CLIENT_SCOPE", "KlaviyoToolkit", "MAX_TOOLS_PER_REQUEST"]

CLIENT_SCOPE = "client"
#: OpenAI accepts at most 128 tools in one request.
MAX_TOOLS_PER_REQUEST = 128


def _required_scopes(op: Operation) -> tuple[str, ...]:
    return op.scopes or (CLIENT_SCOPE,)


def _granted(scopes: Iterable[str] | str) -> frozenset[str] | None:
    """The scopes a toolkit is granted, checked (None: every scope, given as ``"*"``).

    Text is split as ``parse_scopes`` splits it (``"lists:read profiles:read"``), so a string is never
    read as a set of characters; a scope no operation uses (``"list:read"``) raises
    UnknownScopeError naming the closest one, where it would otherwise grant nothing, silently.
    """
    given = [part for item in ([scopes] if isinstance(scopes, str) else scopes) for part in re.split(r"[\s,]+", item)]
    if ALL_SCOPES in given:
        return None
    named = [s for s in given if s and s != CLIENT_SCOPE]
    return frozenset(parse_scopes(named)) | ({CLIENT_SCOPE} & set(given))


class KlaviyoToolkit(Toolset):
    """Klaviyo operations as LangChain tools over one client (see module docstring).

    The innermost toolset of the pipeline: it checks the granted scopes and sends. Guards wrap it
    (``toolkit.guarded(...)``) without changing it.

    Args:
        client / async_client: clients to run calls with; made from ``client_options`` (or the
            environment) on first use when not given.
        scopes: granted scopes (a list, or text such as ``"lists:read profiles:read"``), or ``"*"``
            for all. Nothing is granted by default; an unknown scope raises UnknownScopeError.
        include_beta: also offer beta operations.
        scope_fix: how to be granted the scopes a refused tool needs (given them, a phrase), for its
            message; by default, add them to ``scopes=``.
        clear_argument: give update tools whose fields can be emptied one more argument, ``clear``
            (a list of those field names), so a model can clear a field (on by default; False keeps
            the schemas sent with every model request without it). Code can always clear
            (``CLEAR``, ``clear=[...]``; see ``klaviyo_toolkit._clear``).
    """

    def __init__(
        self,
        client: KlaviyoClient | None = None,
        async_client: AsyncKlaviyoClient | None = None,
        *,
        scopes: Iterable[str] | Literal["*"] = (),
        include_beta: bool = False,
        max_output_chars: int = 6000,
        scope_fix: Callable[[Sequence[str]], str] | None = None,
        clear_argument: bool = True,
        **client_options: Any,
    ) -> None:
        self._client = client
        self._async_client = async_client
        self._client_options = client_options
        self.include_beta = include_beta
        self.catalog: Catalog = load_catalog(include_beta)
        granted = _granted(scopes)
        self.all_scopes = granted is None
        self.scopes: frozenset[str] = granted or frozenset()
        self.max_output_chars = max_output_chars
        self._scope_fix = scope_fix
        self.clear_argument = clear_argument

    def __repr__(self) -> str:
        granted = "*" if self.all_scopes else ",".join(sorted(self.scopes))
        return f"KlaviyoToolkit(scopes={granted!r})"

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

    def scope_fix(self, missing: Sequence[str]) -> str:
        return self._scope_fix(missing) if self._scope_fix is not None else super().scope_fix(missing)

    # -- the pipeline's last steps -----------------------------------------------------------
    def prepare(self, operation: Operation | str, args: Mapping[str, Any]) -> Call:
        """Validate and build a call; a client (when there is one) fills the public key of /client/ calls."""
        from .._arguments import plain_args, prepare
        from .._clear import CLEAR_ARG, without_clears

        op = self.catalog.get(operation) if isinstance(operation, str) else operation
        values = dict(args)
        summary = values.pop("_summary", None)
        core = self._async_client or self._client
        request = core.prepare(op, values) if core is not None else prepare(op, dict(values))
        # Plain data (not pydantic objects): approvals show it and checkpoints store it. The fields an
        # update clears are one sorted list (CLEAR is no JSON), which prepares the same request again.
        if request.cleared or CLEAR_ARG in values:
            values = without_clears(values)
        plain = plain_args(values)
        if request.cleared:
            plain[CLEAR_ARG] = list(request.cleared)
        return Call(op.name, op, plain, request, summary=summary)

    def _denied(self, call: Call) -> Stopped | None:
        missing = self.missing_scopes(call.operation)
        if not missing:
            return None
        stopped = Stopped(call, "denied", str(ScopeDeniedError(call.tool_name, missing)), call.request.describe())
        call.notify(stopped)
        return stopped

    def _hooks(self, call: Call) -> list[Any]:
        if not call.observers:
            return []

        def tell(record: CallRecord) -> None:
            call.notify(record)

        return [tell]

    def run_call(self, call: Call) -> Outcome:
        denied = self._denied(call)
        if denied is not None:
            return denied
        response = self.client.send(call.request, hooks=self._hooks(call))
        return Sent(call, response)

    async def arun_call(self, call: Call) -> Outcome:
        denied = self._denied(call)
        if denied is not None:
            return denied
        if self._async_client is not None:
            response = await self._async_client.send(call.request, hooks=self._hooks(call))
            return Sent(call, response)
        return await asyncio.to_thread(self.run_call, call)
