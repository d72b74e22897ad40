"""Governance for every call a persona makes: scopes, approvals, dry runs, audit, untrusted data.

Each rule is a guard of the toolkit's one call pipeline (``klaviyo_toolkit.tools``), stacked by
the runtime as ``toolkit.guarded(AuditGuard(...), ApprovalGuard(...), DryRunGuard())``:

- **Scopes** are the toolkit's own (deny by default): a tool outside them is never offered, and a
  call to it ends as ``Stopped("denied")`` before any request.
- **Approvals**: calls the persona's policy marks stop with LangGraph's ``interrupt()`` showing the
  exact request and the effects that stop it (:func:`stopping_effects`: the call's effects that the
  policy stops for, less those its ``relax`` waives for that operation). A few effects need a read
  first (``klaviyo_toolkit.effects_lookup``: is this template what a scheduled campaign or a live
  flow sends?); the guard makes it with the persona's own scopes, and a read it cannot make stops
  the call. Resume with
  ``{"action": "approve"}``, ``{"action": "edit", "args": {...}}`` or ``{"action": "reject",
  "reason": "..."}`` (see :func:`parse_answer`).
- **Dry run** answers each write with its exact request instead of sending it.
- **Audit**: :class:`AuditGuard` makes the log an observer of every call, so each HTTP call,
  refusal, rejection, dry run and approval is written under the run that made it.
- **Untrusted content** from Klaviyo (profile and event properties, form answers) reaches the model
  fenced by :func:`fence`, and the prompts say that fenced text is data, never instructions.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from klaviyo_toolkit.approval_view import current_view
from klaviyo_toolkit.audit import AuditContext, AuditLog
from klaviyo_toolkit.catalog import Operation
from klaviyo_toolkit.effects import (
    APPROVAL_EFFECTS,
    READ_BEFORE_WRITE,
    Effect,
    call_effects,
    describe_effects,
    operation_effects,
    possible_effects,
)
from klaviyo_toolkit.effects_lookup import FoundEffects, lookup_effects
from klaviyo_toolkit.errors import InvalidArgumentError
from klaviyo_toolkit.redact import redact, redact_text
from klaviyo_toolkit.tools import Call, CallEvent, Guarded, Note, Stopped, Toolset

from .errors import UsageProblem
from .spec import ApprovalPolicy

__all__ = [
    "APPROVAL_RULE",
    "ApprovalGuard",
    "AuditGuard",
    "DryRunGuard",
    "SelectionGuard",
    "approval_need",
    "approval_policy",
    "approval_request",
    "approval_rule",
    "fence",
    "needs_approval",
    "parse_answer",
    "stopping_effects",
]

FENCE = "untrusted-data"
log = logging.getLogger(__name__)


#: Any spelling of the fence's tags inside the data: case, spaces, slashes, zero-width characters.
#: It is matched on :func:`_fold`'s copy of the text, so look-alike characters count too.
_FENCE_TAG = re.compile(r"<[\s\u200b-\u200f\u2060\ufeff/\\]*untrusted[\s\u200b-\u200f\u2060\ufeff]*[-_]?"
                        r"[\s\u200b-\u200f\u2060\ufeff]*data", re.IGNORECASE)

#: Look-alikes NFKC keeps apart from the ASCII the tag pattern knows: dashes and minus signs,
#: slashes (fraction, division, big solidus), backslashes, angle brackets (‹ 〈 ⟨ 《 and kin).
_LOOKALIKES = {
    **{c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u2e3a\u2e3b\ufe58\ufe63\uff0d"},
    **{c: "/" for c in "\u2044\u2215\u2571\u27cb\u29f8\u3033\uff0f"},
    **{c: "\\" for c in "\u2216\u2572\u27cd\u29f5\u29f9\ufe68\uff3c"},
    **{c: "<" for c in "\u2039\u2329\u27e8\u27ea\u3008\u300a\u276e\u29fc\ufe64\uff1c"},
    **{c: ">" for c in "\u203a\u232a\u27e9\u27eb\u3009\u300b\u276f\u29fd\ufe65\uff1e"},
}


#: Characters the fold drops: combining marks (``<\u0338`` renders as ``≮``) and invisible formatting.
_DROPPED = {"Mn", "Me", "Cf"}


def _fold(char: str) -> str:
    """``char`` as the tag pattern compares it: NFKC (fullwidth forms), then any dash as '-', any
    slash as '/', any angle bracket as '<' or '>', marks and invisible characters dropped."""
    out = []
    for c in unicodedata.normalize("NFKC", char):
        category = unicodedata.category(c)
        if category not in _DROPPED:
            out.append(_LOOKALIKES.get(c, "-" if category == "Pd" else c))
    return "".join(out)


def _defuse_tags(text: str) -> str:
    """``text`` with the opening bracket of every fence-tag look-alike written as ``&lt;``.

    The pattern runs on a folded copy; each folded character remembers the original one it came
    from, so only a matched tag's first character changes and the rest of the text stays as it is.
    """
    if text.isascii():  # nothing to fold: the common case, kept cheap
        return _FENCE_TAG.sub(lambda m: "&lt;" + m.group(0)[1:], text)
    folded: list[str] = []
    origin: list[int] = []
    for i, char in enumerate(text):
        piece = _fold(char)
        folded.append(piece)
        origin.extend([i] * len(piece))
    starts = {origin[m.start()] for m in _FENCE_TAG.finditer("".join(folded))}
    return "".join("&lt;" if i in starts else char for i, char in enumerate(text))


def fence(source: str, data: Any) -> str:
    """Wrap Klaviyo-sourced data so the model treats it as data, with secrets masked.

    Anything inside that could pass for the fence's own tags, in any case or spacing
    (``</UNTRUSTED-DATA >``, ``< / untrusted_data``) or with look-alike characters
    (``‹/untrusted‑data>``, ``<／untrusted-data>``), loses its ``<``, so the data cannot close the
    fence. A key, token or password that sits in the data (a profile property, a form answer, this
    process's own API key echoed back) is masked first: secrets never reach a prompt.
    """
    if isinstance(data, str):
        text = redact_text(data)
    else:
        text = json.dumps(redact(data), ensure_ascii=False, default=str, indent=1)
    text = _defuse_tags(text)
    return f'<{FENCE} source="{source}">\n{text}\n</{FENCE}>'


def _names(call: Call) -> set[str]:
    """Every name ``call``'s operation goes by in a policy: its tool name, operation id and aliases."""
    op = call.operation
    return {call.tool_name, op.operation_id, *op.aliases}


def stopping_effects(policy: ApprovalPolicy, call: Call, found: FoundEffects | None = None) -> frozenset[Effect]:
    """The effects of ``call`` (and those a read ``found``) that stop it under ``policy``: those the
    mode stops for (consent, identity, account, destructive, sending, volume; in ``mode: writes``
    any write), less the ones ``relax`` waives for this operation. Empty: it goes through (unless
    ``also`` names it)."""
    effects = call_effects(call.operation, call.args, max_profiles=policy.max_profiles_per_call)
    effects |= found.effects if found else frozenset()
    return (effects & _stops(policy)) - _waived(policy, _names(call))


def _stops(policy: ApprovalPolicy) -> frozenset[Effect]:
    """The effects ``policy``'s mode stops for (in ``mode: writes``, any write too)."""
    return APPROVAL_EFFECTS | ({Effect.WRITE} if policy.mode == "writes" else frozenset())


def _waived(policy: ApprovalPolicy, names: set[str]) -> frozenset[Effect]:
    """The effects ``policy``'s ``relax`` waives for an operation going by ``names``."""
    return frozenset(Effect(e) for name, listed in policy.relax.items() if name in names for e in listed)


def approval_need(policy: ApprovalPolicy, op: Operation) -> str:
    """Whether calls of ``op`` stop for approval under ``policy``, for a person choosing what to ask:
    ``"always"`` (every call: ``also`` names it, or an effect it always has stops), ``"sometimes"``
    (some arguments, or what a read finds, make it stop: a list made with double opt-in, a profile
    given a new email) or ``""`` (never). Said from the same effects the guard stops by."""
    names = {op.name, op.operation_id, *op.aliases}
    stops, waived = _stops(policy), _waived(policy, names)
    if names & set(policy.also) or (operation_effects(op) & stops) - waived:
        return "always"
    return "sometimes" if (possible_effects(op) & stops) - waived else ""


def approval_policy(toolset: Toolset) -> ApprovalPolicy | None:
    """The policy of the approval guard stacked in ``toolset`` (what its calls stop by: a chat
    persona's ``relax`` already dropped), or None when none is stacked."""
    while isinstance(toolset, Guarded):
        if isinstance(toolset.guard, ApprovalGuard):
            return toolset.guard.policy
        toolset = toolset.inner
    return None


def needs_approval(policy: ApprovalPolicy, call: Call, found: FoundEffects | None = None) -> bool:
    """Whether ``call`` stops: ``also`` names it, or it has an effect that stops it (:func:`stopping_effects`)."""
    return bool(_names(call) & set(policy.also)) or bool(stopping_effects(policy, call, found))


_APPROVE = {"approve", "approved", "yes", "y", "a"}
_REJECT = {"reject", "rejected", "no", "n", "r"}


def parse_answer(answer: Any) -> dict[str, Any]:
    """An approval answer as ``{"action": "approve" | "reject" | "edit", ...}``, or UsageProblem.

    Accepted: ``"approve"``/``"reject"`` (and y/n, a/r), or a mapping with ``action`` and, for an
    edit, a non-empty ``args`` object (a rejection may give a ``reason``, any answer its request's
    ``fingerprint``). Anything else is refused, keys an action does not use included (an approval
    with ``args`` is not an edit), so a typo never counts as an answer.
    """
    decision: Mapping[str, Any] = {"action": answer} if isinstance(answer, str) else answer
    if not isinstance(decision, Mapping):
        raise UsageProblem(
            f"an approval answer is 'approve', 'reject' or an object with 'action'; got {type(answer).__name__}"
        )
    action = str(decision.get("action", "")).strip().lower()
    _only_used_keys(decision, action)
    bound = {"fingerprint": str(decision["fingerprint"]).strip().lower()} if decision.get("fingerprint") else {}
    if action in _APPROVE:
        return {"action": "approve", **bound}
    if action in _REJECT:
        return {"action": "reject", "reason": str(decision.get("reason") or "no reason given"), **bound}
    if action in ("edit", "e"):
        args = decision.get("args")
        if not isinstance(args, Mapping) or not args:
            raise UsageProblem('an edit needs the changed arguments: {"action": "edit", "args": {...}}')
        return {"action": "edit", "args": dict(args), **bound}
    raise UsageProblem(
        f"unknown approval answer {action or answer!r}; answer approve, reject, or "
        '{"action": "edit", "args": {...}}'
    )


#: The keys each answer uses; an answer with others (``approve`` with ``args``) says more than it does.
_KEYS = {"approve": {"action", "fingerprint"}, "reject": {"action", "fingerprint", "reason"},
         "edit": {"action", "fingerprint", "args"}}


def _only_used_keys(decision: Mapping[str, Any], action: str) -> None:
    """UsageProblem when ``decision`` has keys its action does not use: an approval that also gives
    ``args`` (meant as an edit, or a widening) must not be taken as approving the request shown."""
    kinds = {**dict.fromkeys(_APPROVE, "approve"), **dict.fromkeys(_REJECT, "reject"), "edit": "edit", "e": "edit"}
    kind = kinds.get(action, "")
    extra = sorted(str(k) for k in decision if k not in _KEYS.get(kind, set(decision)))
    if extra:
        listed = ", ".join(repr(k) for k in extra)
        hint = '; to change the request answer {"action": "edit", "args": {...}}' if kind != "edit" else ""
        raise UsageProblem(f"an approval answer {kind!r} takes {', '.join(sorted(_KEYS[kind]))}, not {listed}; "
                           f"nothing was answered{hint}")


#: Paused requests whose view of the resource an approval guard keeps for their resume.
KEEP_SHOWN = 64

#: Where a prompt file says which calls wait for approval; :func:`approval_rule` fills it in.
APPROVAL_RULE = "{{approval_rule}}"


def approval_rule(policy: ApprovalPolicy) -> str:
    """The sentence a prompt gives the model about approvals, made from the effects table when the
    prompt is built (a kind of call added to ``APPROVAL_EFFECTS`` reaches the prompt with no edit)."""
    if policy.mode == "writes":
        return "Every call that writes waits for the user's approval."
    return _effects_rule(APPROVAL_EFFECTS, policy.max_profiles_per_call)


@functools.lru_cache(maxsize=32)
def _effects_rule(effects: frozenset[Effect], max_profiles: int) -> str:
    """The rule's sentence for these effects (a model's prompt is built on every run: made once)."""
    words = describe_effects(effects, max_profiles=max_profiles).split(", ")
    listed = ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]
    return f"A call that {listed} waits for the user's approval."


def approval_request(
    call: Call,
    policy: ApprovalPolicy | None = None,
    found: FoundEffects | None = None,
    current: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a person is asked to approve: the exact request, why it stops (the effects that stop it
    under ``policy``, the default one if none, and what a read ``found``), its fingerprint, and, when
    a read could tell, the resource as it is now and what the request changes in it (``current``,
    :func:`klaviyo_toolkit.approval_view.current_view`)."""
    policy = policy or ApprovalPolicy()
    effects = stopping_effects(policy, call, found) & APPROVAL_EFFECTS
    if effects:
        why = describe_effects(effects, max_profiles=policy.max_profiles_per_call)
        if found and found.reason and found.effects & effects:
            why += f": {found.reason}"
    elif _names(call) & set(policy.also):
        why = "this persona's policy names it"
    else:
        why = "writes, and this persona's policy stops every write (mode: writes)"
    return {
        "type": "approval",
        "tool": call.tool_name,
        "summary": call.operation.summary,
        "why": why,
        "effects": sorted(e.value for e in effects),
        "destructive": call.operation.destructive,
        "args": dict(call.args),
        "request": call.request.describe(),
        "details": dict(call.summary) if call.summary else None,
        "current": dict(current) if current else None,
        "fingerprint": call.fingerprint,
        "options": ["approve", "edit", "reject"],
    }


@dataclass(frozen=True)
class ApprovalGuard:
    """Stops a call the policy marks and asks a human (LangGraph ``interrupt()``).

    An answer is bound to the request shown: an approval or edit must carry the request's
    ``fingerprint`` (the interrupt's value has it; ``RunDriver`` adds it to the answers it checks),
    one without is not taken and the request is asked about again, one carrying another request's
    is refused; an edit is a new request, shown again and approved on its own. A rejection needs
    no fingerprint. ``prepare`` re-validates edited arguments (the toolkit's own ``prepare``).
    ``reader`` makes the reads some effects need (``klaviyo_toolkit.effects_lookup``), again for an
    edited request; without one, such an operation stops as if the read had found its effect. The
    same reader shows what the request changes (the resource as it is now), read once per request
    shown, or ``viewer`` when given: a reader that gives up at once (no retries, a short timeout),
    since that read only shows and must never hold the approval up; without either the request is
    shown alone.
    """

    policy: ApprovalPolicy
    prepare: Callable[[Any, Mapping[str, Any]], Call]
    reader: Toolset | None = None
    viewer: Toolset | None = None
    #: What each paused request showed of the resource now, by fingerprint, until it is answered.
    _shown: dict[str, dict[str, Any] | None] = field(default_factory=dict, compare=False, repr=False)

    def _found(self, call: Call) -> FoundEffects:
        """What a read tells of ``call``'s effects (nothing to read for most operations)."""
        effects = READ_BEFORE_WRITE.get(call.operation.operation_id)
        if effects is None:
            return FoundEffects()
        if self.reader is None:
            return FoundEffects(effects, "this persona's approval guard was given no way to read the account")
        return lookup_effects(self.reader, call.operation, call.args)

    def _current(self, call: Call) -> dict[str, Any] | None:
        """The resource ``call`` changes, as it is now, and what changes (None: nothing to read). Read
        when the request is first shown; a resume in the same process uses what was shown (one read
        per showing), a resume in another process reads again. What was shown is kept until the
        request is settled, not taken at the first resume: a resume replays every request of an
        edit chain (the original, each edit) before it reaches the one it answers."""
        reader = self.viewer or self.reader
        if reader is None:
            return None
        if call.fingerprint in self._shown:
            return self._shown[call.fingerprint]
        body = call.request.describe().get("body")
        # a graph's own summary of the call (the syncer's batch: its sample, its file) names the profiles already
        return current_view(reader, call.operation, call.args, body, name_profiles=not call.summary)

    def _keep_shown(self, call: Call, current: dict[str, Any] | None) -> None:
        """Remember what a paused request showed, for its resume (the newest :data:`KEEP_SHOWN` only)."""
        if self.reader is None and self.viewer is None:
            return
        self._shown.pop(call.fingerprint, None)  # the newest last
        self._shown[call.fingerprint] = current
        while len(self._shown) > KEEP_SHOWN:
            self._shown.pop(next(iter(self._shown)))

    def _settled(self, asked: list[str]) -> None:
        """Forget what the requests of a settled edit chain showed: asked again later, they are read again."""
        for fingerprint in asked:
            self._shown.pop(fingerprint, None)

    def before(self, call: Call) -> Call | Stopped:
        """``call`` once approved (as asked, or as edited), or Stopped; a pause raises GraphInterrupt.

        The fingerprints of the requests shown are taken only once one is shown (``_ask``): most
        calls need no approval, and hashing each call's arguments cost more than the rest of the check.
        """
        asked: list[str] = []  # the requests shown for this call: the original and each edit
        try:
            return self._ask(call, asked)
        except BaseException as exc:
            from langgraph.errors import GraphInterrupt

            if not isinstance(exc, GraphInterrupt) and (asked or self._shown):
                self._settled(asked or [call.fingerprint])
            raise

    def _note_waived(self, call: Call, found: FoundEffects) -> None:
        """Tell the observers (the audit log) when ``relax`` is why ``call`` goes without approval: a
        sending or consent call that runs on a waiver is recorded as such, not as an unremarkable write."""
        names = _names(call)
        relaxed = _waived(self.policy, names)
        if not relaxed:  # most calls: nothing relaxed for this operation, so nothing to tell
            return
        effects = call_effects(call.operation, call.args, max_profiles=self.policy.max_profiles_per_call)
        waived = (effects | found.effects) & _stops(self.policy) & relaxed
        if waived:
            rules = sorted(f"approval.relax.{name}" for name in names & set(self.policy.relax))
            call.notify(Note("waived", f"{', '.join(sorted(waived))} waived by {', '.join(rules)}"))

    def _ask(self, call: Call, asked: list[str]) -> Call | Stopped:
        from langgraph.types import interrupt

        found = self._found(call)
        if not needs_approval(self.policy, call, found):
            self._note_waived(call, found)
            return call
        asked.append(call.fingerprint)
        from langgraph.errors import GraphInterrupt

        edits: list[tuple[Call, Note]] = []  # told when the edited request is shown (a resume replays old answers)
        refused: str | None = None  # why the last answer was not taken: shown with the request asked again
        current = self._current(call)
        while True:
            try:
                shown = approval_request(call, self.policy, found, current)
                answer = interrupt({**shown, **({"refused_answer": refused} if refused else {})})
            except GraphInterrupt:  # paused now (a resumed run replays this line with the answer instead)
                for edited_call, note in edits:
                    edited_call.notify(note)
                call.notify(Note("pending_approval", call.fingerprint))
                self._keep_shown(call, current)
                raise
            edits.clear()
            try:
                decision = parse_answer(answer)
            except UsageProblem as exc:
                # A typo, an empty edit, a list where one answer goes: not an answer, so the request is
                # asked about again and the run stays paused (a LangGraph Server client resumes the
                # graph directly, without RunDriver's checks). Never an end to the approval.
                refused = str(exc)
                continue
            refused = None
            given = decision.get("fingerprint")
            if not given and decision["action"] != "reject":
                # An approval or edit that names no request could be meant for another one (a stale
                # UI, a command typed before the run paused again): the request is asked about again.
                # RunDriver binds the answers it is given to the requests it shows.
                continue
            if given and given != call.fingerprint:
                self._settled(asked)
                return Stopped(
                    call,
                    "rejected",
                    f"Not sent: the approval given was for another request ({given}), not this {call.tool_name} "
                    f"call ({call.fingerprint}).",
                    call.request.describe(),
                )
            if decision["action"] == "approve":
                call.notify(Note("approved", call.fingerprint))
                self._settled(asked)
                return call
            if decision["action"] == "reject":
                self._settled(asked)
                return Stopped(
                    call,
                    "rejected",
                    f"The user rejected this {call.tool_name} call ({decision['reason']}). Nothing was sent; "
                    "do not retry it.",
                    call.request.describe(),
                )
            try:  # an edit: a new request, asked about again
                edited = self.prepare(call.operation, {**call.args, **decision["args"]})
            except InvalidArgumentError as exc:
                self._settled(asked)
                return Stopped(call, "rejected", f"Error: the edited arguments are invalid: {exc}. Nothing was sent.")
            # masked before it is text: a secret's key name (a webhook's secret_key) is seen only in the data
            edits.append((call, Note("edited", json.dumps(redact(decision["args"]), default=str))))
            call = call.with_args(edited.args, edited.request)
            asked.append(call.fingerprint)
            found = self._found(call)  # an edit may name another template: read again
            current = self._current(call)


@dataclass(frozen=True)
class SelectionGuard:
    """Refuses, before any request, a call the persona's tool selection excludes (``exclude``,
    ``read_only: true``, or a tool it was not given when it has no ``search``): the selection is a
    boundary for every path a call can come by, as the scopes are."""

    refusal: Callable[[Any], str | None]

    def before(self, call: Call) -> Call | Stopped:
        why = self.refusal(call.operation)
        if why is None:
            return call
        return Stopped(call, "denied", why, call.request.describe())


@dataclass(frozen=True)
class DryRunGuard:
    """Answers every write with its exact request instead of sending it."""

    def before(self, call: Call) -> Call | Stopped:
        if call.operation.read_only:
            return call
        request = call.request.describe()
        text = json.dumps(request, ensure_ascii=False, default=str)
        return Stopped(call, "dry_run", f"DRY RUN: not sent. The exact request would be: {text}", request)


@dataclass(frozen=True)
class AuditGuard:
    """Makes the audit log an observer of every call under ``context`` (refused ones included), and
    never lets a call act unrecorded: a write is refused before any request when the log would refuse
    its row (its newest rows cut or an older copy put back, :meth:`AuditLog.check_appendable`; the
    file closed or unreadable), and once a row of this guard's calls could not be written (a full
    disk, a log locked too long), every later call is refused: a long conversation is checked at
    each write, not only when it began. A read changes nothing, so it is not checked first."""

    log: AuditLog
    context: Callable[[], AuditContext]
    sees_denied: bool = True
    #: Why a row of this guard's calls could not be written (empty: none failed).
    _lost: list[str] = field(default_factory=list, compare=False, repr=False)

    def before(self, call: Call) -> Call | Stopped:
        why = self._lost[0] if self._lost else None
        if why is None and not call.operation.read_only:
            why = self._refusal()
        if why is not None:
            return Stopped(
                call,
                "denied",
                f"Not sent: the audit log cannot record this call ({why}). Nothing was sent; tell the user "
                "that no call runs unrecorded: `personas audit verify` says what is wrong with the log.",
                call.request.describe(),
            )
        return call.observed_by(self._observe)

    def _refusal(self) -> str | None:
        """Why the log would refuse a row now, or None."""
        try:
            self.log.check_appendable()
        except Exception as exc:  # a cut log (AuditHeadError), a closed or unreadable file, a lost connection
            return str(exc) or type(exc).__name__
        return None

    def _observe(self, call: Call, event: CallEvent) -> None:
        """Write the event's row; one that cannot be written is said in a line (not a traceback on the
        person's terminal) and refuses every later call of this guard (:meth:`before`)."""
        try:
            self._write(call, event)
        except Exception as exc:
            if not self._lost:
                self._lost.append(f"a row of {call.operation.operation_id} could not be written: {exc}")
            log.error("error: the audit log could not record %s (%s); no further call runs unrecorded: fix the "
                      "log (`personas audit verify` says what is wrong) and start again", call.tool_name, exc)

    def _write(self, call: Call, event: CallEvent) -> None:
        from klaviyo_toolkit.client import CallRecord  # httpx loads with the first call, not with governance

        ctx = self.context()
        if isinstance(event, CallRecord):
            self.log.hook(ctx)(event)
            return
        status = event.status
        note = event.reason if isinstance(event, Stopped) else event.detail
        self.log.record(
            call.operation.operation_id,
            status,  # type: ignore[arg-type]
            context=ctx,
            method=call.request.method,
            path=call.request.path,
            arguments=dict(call.args),
            extra={"note": note} if note and status != "denied" else None,
            error=note if status == "denied" else None,
        )
