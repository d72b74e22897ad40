"""The sequencer's last step: what happened to the lead, said in the outcome and recorded on its profile.

After a send Klaviyo accepted, the lead's start is read back (:mod:`.started`): the run reports and
records the sequence Klaviyo *started*, which is the run's own only when its start was the first.

What the profile gets (``record_on_profile``):

- a start of the run's own, confirmed: the run's decision (score, band, sequence, decider, time);
- another run's start (read back after this run's send, or found before it): that start's decision,
  as its event carries it, and only when the profile does not already name that sequence. A later
  submission never rewrites the decision that started the lead's sequence; it is itself a Klaviyo
  event, and the run's own state and outcome keep its score;
- a start not shown yet (Klaviyo still ingesting it): the profile is read again, and only when it
  names no sequence does it get this run's decision (what is known: Klaviyo took this run's start
  and no other is recorded); a sequence it names is never overwritten by a start not confirmed. The
  outcome says the start is unconfirmed; a run that later reads the start back (this one retried,
  the lead's next submission) records the start Klaviyo shows, replacing a record that differs;
- no start (not eligible, consent withdrawn, a rejected or dry-run send): the score, with no sequence;
- a profile gone before the send: nothing, there is nothing to write to.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from langgraph.runtime import Runtime

from klaviyo_toolkit.errors import (
    KlaviyoError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TransportError,
    stops_the_run,
)
from klaviyo_toolkit.tools import Stopped
from personas.kernel.context import PersonaContext
from personas.kernel.privacy import describe_error

from .schedule import as_scheduled
from .settings import Settings
from .started import continuing, earlier_attempt, read_back, recorded_start, start_properties

__all__ = ["record"]


def record(state: dict[str, Any], runtime: Runtime[PersonaContext]) -> dict[str, Any]:
    ctx = runtime.context
    settings = ctx.settings
    assert isinstance(settings, Settings)
    if state.get("ignored"):
        return {"outcome": state["ignored"], "record": {"profile_properties": None}}
    profile = state.get("profile") or {}
    sent = state.get("send") or {}
    out: dict[str, Any] = {}
    start = None
    if sent.get("status") == "sent":
        # the pauses between reads are the client's, as its retry waits are (a test's manual clock: instant)
        clock = getattr(ctx.client, "clock", None) or ctx.clock
        start, metric_id = read_back(ctx.toolkit, clock, settings.confirm_within,
                                     state.get("trigger_metric_id"), settings.trigger_metric, profile["id"])
        out["trigger_metric_id"] = metric_id
        earlier = _earlier_start(start, state)
        if earlier is not None:  # the attempt killed after its send decided otherwise: its start stands
            tz = (profile.get("location") or {}).get("timezone")
            sent_with = as_scheduled(str(start.get("send_at") if start else ""), tz, settings.default_timezone)
            state = {**state, "decision": earlier["decision"], "schedule": sent_with or state.get("schedule")}
            out.update(decision=earlier["decision"], schedule=state["schedule"])
        out["started"] = _started(start, state, settings)
        kept = _kept_schedule(start, out["started"], state, settings)
        if kept is not None:  # Klaviyo kept an earlier attempt's start of this decision: its time stands
            state = {**state, "schedule": kept}
            out["schedule"] = kept
        if start is None:  # not shown yet: what the profile names now decides whether anything is written
            profile = {**profile, "properties": _properties_now(ctx, profile["id"])}
    decision, outcome, props = _decide_record({**state, "profile": profile}, out.get("started"), start,
                                              ctx.clock.time())
    saved = None
    if settings.record_on_profile and profile.get("id") and props is not None:
        saved = _write(ctx, profile["id"], props)
    return {**out, "decision": decision, "outcome": outcome, "record": {"profile_properties": saved}}


def _earlier_start(start: dict[str, Any] | None, state: dict[str, Any]) -> dict[str, Any] | None:
    """For a run continuing its own killed attempt: the start read back is this submission's but of
    another sequence, so the attempt sent it (its start not shown yet when this one decided again,
    Klaviyo keeping the first); its decision, else None."""
    if start is None or start.get("sequence") == (state.get("decision") or {}).get("sequence") or not continuing():
        return None
    return earlier_attempt(start, state["submission"], (state.get("send") or {}).get("unique_id") or "")


def _kept_schedule(start: dict[str, Any] | None, started: dict[str, Any], state: dict[str, Any],
                   settings: Settings) -> dict[str, Any] | None:
    """The schedule of this run's own start as Klaviyo kept it, when its time differs from the one this
    attempt sent (an earlier attempt's send was applied, its answer lost, and a retry scheduled the send
    again: Klaviyo dropped the second as the same unique_id); else None."""
    sent_at = (start or {}).get("send_at")
    if not started.get("own") or not sent_at or sent_at == (state.get("schedule") or {}).get("send_at"):
        return None
    tz = ((state.get("profile") or {}).get("location") or {}).get("timezone")
    return as_scheduled(str(sent_at), tz, settings.default_timezone)


def _started(start: dict[str, Any] | None, state: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``state["started"]``: the start read back, and whether it is this run's own (its submission's,
    with its sequence); or, not shown yet, ``confirmed: False`` with what was requested."""
    decision = state["decision"]
    if start is None:
        return {"confirmed": False, "requested": decision["sequence"], "waited": float(settings.confirm_within)}
    own = (start.get("sequence") == decision["sequence"]
           and start.get("submission_event_id") == state["submission"]["event_id"])
    return {**start, "confirmed": True, "own": own}


def _decide_record(state: dict[str, Any], started: dict[str, Any] | None, start: dict[str, Any] | None,
                   now: float) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
    """(the decision to keep, the outcome, the profile properties to write or None)."""
    profile = state.get("profile") or {}
    sc = state.get("score")
    sent = state.get("send") or {}
    already = state.get("already")
    decision = state.get("decision") or {}
    if already:
        how = ("read again before this run's send" if sent.get("already_started")
               else "a second submission does not start a second sequence")
        outcome = (f"no new sequence: this lead already started {already.get('sequence')!r} on "
                   f"{already.get('at')}; {how}")
        note = "already started" if sent.get("already_started") else "repeat submission"
        repeat = {"sequence": None, "decided_by": "policy", "reason": outcome, "policy_note": note}
        return repeat, outcome, _repair(already, profile)
    if not (state.get("eligible") or {}).get("ok"):
        outcome = f"no marketing send: {(state.get('eligible') or {}).get('reason')}"
        skipped = {"sequence": None, "decided_by": "policy", "reason": outcome + "; the model was not asked",
                   "policy_note": "not eligible"}
        return skipped, outcome, _decided(sc, None, "policy", now)
    if sent.get("profile_gone"):
        return decision, (f"no marketing send: no Klaviyo profile has the id {profile.get('id')} any more "
                          "(deleted or merged after the decision, before the send); nothing was started or recorded"
                          ), None
    if sent.get("consent_changed"):
        return decision, f"no marketing send: {sent['detail']}", _decided(sc, None, decision.get("decided_by"), now)
    if started is not None and not started["confirmed"]:
        outcome = (
            f"sent, unconfirmed: Klaviyo accepted the start of {decision['sequence']!r} but had not shown the lead's "
            f"start {started['waited']:g} s later (it ingests events asynchronously), so whether it is this start "
            "or another run's that came first is not known yet"
        )
        named = recorded_start(profile)
        if profile.get("properties") is None:
            return decision, f"{outcome}; the profile is gone, nothing was recorded", None
        if named is not None:
            return decision, (f"{outcome}; the profile already names {named['sequence']!r} (another run's record), "
                              "so it was left as it is"), None
        in_doubt = f"{outcome}; the profile, which named no sequence, records this run's {decision['sequence']!r}"
        return decision, in_doubt, _decided(sc, decision["sequence"], decision.get("decided_by"), now)
    if started is not None and not started["own"]:
        assert start is not None
        outcome = (
            f"already started {started['sequence']!r} on {started.get('at')}: another run's start of this lead came "
            f"first, so Klaviyo dropped this run's start of {decision['sequence']!r} (the same unique_id, "
            f"{sent.get('unique_id')}); the profile records {started['sequence']!r}"
        )
        return decision, outcome, _repair(start, profile)
    schedule = state.get("schedule") or {}
    if sent.get("status") != "sent":  # stopped before Klaviyo (rejected, denied, dry run): no touchpoint goes
        return decision, _not_sent(decision, sent, schedule), _decided(sc, None, decision.get("decided_by"), now)
    outcome = (
        f"{sent.get('status')}: sequence {decision['sequence']!r} ({decision['decided_by']} decided), "
        f"first touchpoint at {schedule.get('local')} ({schedule.get('timezone')})"
    )
    in_sequence = decision.get("sequence") if started is not None else None  # confirmed as this run's own
    return decision, outcome, _decided(sc, in_sequence, decision.get("decided_by"), now)


def _not_sent(decision: dict[str, Any], sent: dict[str, Any], schedule: dict[str, Any]) -> str:
    """The outcome of a send stopped before Klaviyo: what happened, never a touchpoint as if it will go
    ("rejected: sequence 'fast-track', first touchpoint at ..." read as a start on its way)."""
    status, seq = sent.get("status"), decision.get("sequence")
    if status == "dry_run":
        return (f"dry run, nothing sent: the run would start {seq!r}, first touchpoint at {schedule.get('local')} "
                f"({schedule.get('timezone')})")
    why = {"rejected": "was rejected at approval", "denied": "was denied (the persona may not make that call)"}
    return (f"not sent: the start of {seq!r} {why.get(str(status), f'was stopped ({status})')}; no sequence started "
            "and no touchpoint will go")


def _properties_now(ctx: PersonaContext, profile_id: str) -> dict[str, Any] | None:
    """The profile's properties as Klaviyo has them now (one Get Profile call); None if it is gone."""
    try:
        resp = ctx.toolkit.fetch("get_profile", id=profile_id)
    except NotFoundError:
        return None
    props = (resp.data.get("attributes") or {}).get("properties")
    return props if isinstance(props, dict) else {}


def _decided(sc: dict[str, Any] | None, sequence: str | None, decided_by: Any, now: float) -> dict[str, Any] | None:
    """This run's decision as profile properties (None without a score: nothing was decided)."""
    if sc is None:
        return None
    return {
        "lead_score": sc["total"],
        "lead_band": sc["band"],
        "lead_sequence": sequence,
        "lead_decided_by": decided_by,
        "lead_scored_at": _dt.datetime.fromtimestamp(now, _dt.UTC).isoformat(timespec="seconds"),
    }


def _repair(start: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any] | None:
    """The start's own record, for a profile that does not name its sequence yet (the run that
    started it could not record it, or recorded another); None when it does, or the start is only
    known from the profile."""
    if start.get("source") != "event" or (recorded_start(profile) or {}).get("sequence") == start.get("sequence"):
        return None
    return start_properties(start)


def _write(ctx: PersonaContext, profile_id: str, props: dict[str, Any]) -> str:
    try:
        result = ctx.toolkit.run("update_profile", id=profile_id, properties=props)
    except (ServerError, RateLimitError, TransportError):
        # Klaviyo is failing for now (after the client's own retries): stop here, resumable, so a
        # retry records the sequence; swallowing it would leave a started lead unrecorded for good.
        raise
    except KlaviyoError as exc:
        if stops_the_run(exc):
            raise
        return f"not saved: {describe_error(exc)}"
    return result.status if isinstance(result, Stopped) else "saved"
