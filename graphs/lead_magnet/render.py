"""The sequencer's terminal view of a run (``personas run lead-magnet-sequencer`` without ``--json``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["ANSWERED_BY", "decided_by", "one_line", "outcome_line", "render_lead", "sequence_line", "started_line"]

#: Who gave the answer a decision "by the model" rests on, by the run's ``ModelChoice.kind``: a
#: replayed answer written by hand is never passed off as the model's.
#: What a dry-run call's detail says before the request it did not send (``personas.kernel.governance``).
_WOULD = "The exact request would be: "

ANSWERED_BY = {
    "live": "the model",
    "recorded": "the model's recorded answer, replayed",
    "authored": "an answer authored by hand, replayed in place of the model",
    "scripted": "a scripted answer standing in for the model",
}


#: A line break inside a value (a form's multi-line answer, a model's reason, a sequence name read back
#: from Klaviyo): shown as its escape, so a value cannot start a line of its own in the view and pass
#: for the run's (an answer ending "\nOutcome: sent: ..." printed a second, false outcome).
_BREAK = re.compile("\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with every line break in it written as its escape (``\\n``, ``\\u2028``)."""
    return _BREAK.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def decided_by(decision: Mapping[str, Any], answered_by: str | None = None) -> str:
    """Who decided, in words: the policy, or whoever answered for the model.

    ``answered_by`` is the run's ``ModelChoice.kind`` (the decision's own ``answered_by`` when not
    given); unknown, it says "the model".
    """
    who = decision.get("decided_by")
    if who != "model":
        return str(who or "policy")
    kind = answered_by or decision.get("answered_by")
    return ANSWERED_BY.get(str(kind), "the model")


def sequence_line(decision: Mapping[str, Any], answered_by: str | None = None) -> str:
    """``Sequence: fast-track (decided by ...)``; ``none`` when no sequence starts (never Python's None)."""
    return one_line(f"Sequence: {decision.get('sequence') or 'none'} (decided by {decided_by(decision, answered_by)})")


def outcome_line(state: Mapping[str, Any]) -> str:
    """``Outcome: ...``: for a sequence sent, what was sent and when (who decided is on the
    ``Sequence:`` line, in words that tell a replayed answer from the model's); else the run's outcome
    (a send rejected at approval or a dry run: no touchpoint goes, and the line says so)."""
    decision, send, sched = state.get("decision") or {}, state.get("send") or {}, state.get("schedule") or {}
    started = state.get("started")
    theirs = started is not None and not (started.get("confirmed") and started.get("own"))
    if send.get("status") == "sent" and decision.get("sequence") and sched and not theirs:
        return one_line(f"Outcome: {send.get('status')}: sequence {decision['sequence']!r}, first touchpoint at "
                        f"{sched.get('local')} ({sched.get('timezone')})")
    return one_line(f"Outcome: {state.get('outcome')}")


def started_line(started: Mapping[str, Any]) -> str:
    """What Klaviyo shows the lead started, read back after the send."""
    if not started.get("confirmed"):
        return one_line(f"Started: not shown by Klaviyo yet (waited {started.get('waited', 0):g} s); "
                        f"requested {started.get('requested')}")
    # "own": the start names this submission and this run's sequence. Two runs of one submission that
    # decide alike send identical starts, and Klaviyo's 202 does not say whose it kept: claim no more.
    whose = "this submission's start" if started.get("own") else "another run's start, which came first"
    return one_line(f"Started: {started.get('sequence')} on {started.get('at')} ({whose})")


def render_lead(state: Mapping[str, Any], answered_by: str | None = None) -> str:
    """The run as text, one line per item (a value's line breaks escaped: :func:`one_line`);
    ``answered_by`` is the run's ``ModelChoice.kind`` (see :func:`decided_by`)."""
    lines = []
    sub = state.get("submission") or {}
    profile = state.get("profile") or {}
    who = profile.get("email") or sub.get("email") or sub.get("profile_id")
    lines.append(f"Lead: {who} (form {sub.get('form_name') or sub.get('form_id')})")
    score = state.get("score")
    if score:
        lines.append(f"Score: {score['total']} ({score['band']})")
        for f in score["factors"]:
            lines.append(f"  {f['points']:+4d}  {f['factor']}  - {f['why']}")
    decision = state.get("decision") or {}
    if decision:
        lines.append(sequence_line(decision, answered_by or state.get("model_kind")))
        lines.append(f"  why: {decision.get('reason')}")
    sched = state.get("schedule")
    if sched:
        lines.append(
            f"First touchpoint: {sched['local']} {sched['timezone']} = {sched['send_at']} UTC ({sched['reason']})"
        )
    send = state.get("send")
    if send:
        lines.append(f"Send: {send.get('status')} (unique_id {send.get('unique_id')})")
        would = str(send.get("detail") or "").partition(_WOULD)[2]
        if send.get("status") == "dry_run" and would:
            lines.append(f"  would send: {would}")
    if (state.get("record") or {}).get("profile_properties") == "dry_run":
        lines.append("Profile: dry run, not updated (the lead's score and sequence would be written on it)")
    started = state.get("started")
    if started:
        lines.append(started_line(started))
    if state.get("outcome"):
        lines.append(outcome_line(state))
    return "\n".join(one_line(line) for line in lines)
