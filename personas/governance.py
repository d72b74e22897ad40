"""Governance for every call a persona makes: scopes, approvals, dry runs, audit, untrusted data.

- **Scopes** are enforced by the persona's KlaviyoToolkit (deny by default): a tool outside them is
  never offered, and a call to it is refused before any request (and audited as ``denied``).
- **Approvals**: calls the persona's policy marks (destructive by default) stop with LangGraph's
  ``interrupt()`` showing the exact request; resume with ``Command(resume={"action": "approve"})``,
  ``{"action": "edit", "args": {...}}`` or ``{"action": "reject", "reason": "..."}``.
- **Dry run** shows each write's exact request instead of sending it.
- **Audit**: every call that reaches HTTP is logged by a client hook; refusals, rejections and dry
  runs are logged by the guards.
- **Untrusted content** from Klaviyo (profile and event properties, form answers) reaches the model
  fenced by :func:`fence`, and the prompts say that fenced text is data, never instructions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from klaviyo_toolkit.errors import InvalidArgumentError, ScopeDeniedError
from klaviyo_toolkit.tools import PendingCall

from .spec import ApprovalPolicy

__all__ = ["GuardStopped", "approval_guard", "dry_run_guard", "execute", "fence", "needs_approval"]

FENCE = "untrusted-data"


def fence(source: str, data: Any) -> str:
    """Wrap Klaviyo-sourced data so the model treats it as data; closing tags inside are escaped."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, default=str, indent=1)
    text = text.replace(f"</{FENCE}", f"<\\/{FENCE}").replace(f"<{FENCE}", f"<\\{FENCE}")
    return f'<{FENCE} source="{source}">\n{text}\n</{FENCE}>'


def needs_approval(policy: ApprovalPolicy, call: PendingCall) -> bool:
    op = call.operation
    if call.tool_name in policy.also or op.operation_id in policy.also:
        return True
    if policy.mode == "never":
        return False
    if policy.mode == "writes":
        return not op.read_only
    return op.destructive


@dataclass
class GuardStopped:
    """A guard answered instead of Klaviyo (dry run, rejection); ``text`` goes to the model."""

    text: str
    status: str  # "dry_run" | "rejected"


Recorder = Callable[[PendingCall, str, str], None]


def approval_guard(
    policy: ApprovalPolicy,
    prepare: Callable[[Any, dict[str, Any]], Any],
    record: Recorder | None = None,
) -> Callable[[PendingCall], PendingCall | str | None]:
    """A ToolGuard that interrupts for approval when the policy says so."""
    from langgraph.types import interrupt

    def guard(call: PendingCall) -> PendingCall | str | None:
        if not needs_approval(policy, call):
            return None
        answer = interrupt(
            {
                "type": "approval",
                "tool": call.tool_name,
                "destructive": call.operation.destructive,
                "summary": call.operation.summary,
                "args": call.args,
                "request": call.request.describe(),
                "options": ["approve", "edit", "reject"],
            }
        )
        decision: Mapping[str, Any] = {"action": answer} if isinstance(answer, str) else (answer or {})
        action = str(decision.get("action", "reject")).lower()
        if action in ("approve", "approved", "yes", "y"):
            if record:
                record(call, "approved", "")
            return None
        if action == "edit":
            args = {**call.args, **dict(decision.get("args") or {})}
            try:
                request = prepare(call.operation, args)
            except InvalidArgumentError as exc:
                return f"Error: the edited arguments are invalid: {exc}. Nothing was sent."
            if record:
                record(call, "edited", json.dumps(decision.get("args"), default=str))
            return call.with_args(args, request)
        reason = str(decision.get("reason") or "no reason given")
        if record:
            record(call, "rejected", reason)
        return f"The user rejected this {call.tool_name} call ({reason}). Nothing was sent; do not retry it."

    return guard


def dry_run_guard(record: Recorder | None = None) -> Callable[[PendingCall], PendingCall | str | None]:
    """A ToolGuard that answers every write with its exact request instead of sending it."""

    def guard(call: PendingCall) -> PendingCall | str | None:
        if call.operation.read_only:
            return None
        if record:
            record(call, "dry_run", "")
        request = json.dumps(call.request.describe(), ensure_ascii=False, default=str)
        return f"DRY RUN: not sent. The exact request would be: {request}"

    return guard


def execute(kit: Any, name: str, **args: Any) -> Any:
    """Run one tool from graph code (not the model): scopes and guards apply, the raw response returns.

    Returns the KlaviyoResponse, or a GuardStopped when a guard answered instead (dry run,
    rejection). Raises ScopeDeniedError / InvalidArgumentError / KlaviyoAPIError for code to handle.
    """
    op = kit.catalog.get(name)
    missing = kit.missing_scopes(op)
    if missing:
        raise ScopeDeniedError(op.operation_id, missing)
    idempotency_key = args.pop("_idempotency_key", None)
    request = kit.prepare(op, args)
    call = PendingCall(op.name, op, dict(args), request, {"idempotency_key": idempotency_key})
    for guard in kit.guards:
        outcome = guard(call)
        if isinstance(outcome, str):
            return GuardStopped(outcome, "dry_run" if outcome.startswith("DRY RUN") else "rejected")
        if outcome is not None:
            call = outcome
    return kit.send(call)
