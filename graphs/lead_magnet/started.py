"""The lead's sequence start as Klaviyo holds it: the first ``Lead Sequence Started`` event.

Every start of a lead carries the same ``unique_id`` (``lead-sequence:<profile id>``), so Klaviyo
keeps the first it accepts and drops the rest, answering each with the same 202. A run therefore
learns which sequence the lead is in only by reading the start back: its own, or another run's that
came first (a retried run after the lead's next submission started, two runs of one lead at once).

Klaviyo ingests events asynchronously: a start it accepted may not be readable for a few seconds.
:func:`read_back` reads at once and again (0.5, 1, 2, ... seconds later, on the run's clock) until
``confirm_within`` runs out; a start still not shown is *unconfirmed*, never guessed.
"""

from __future__ import annotations

from typing import Any

from langgraph.config import get_config

from klaviyo_toolkit.clock import Clock
from klaviyo_toolkit.filters import quoted
from personas.kernel.graphspec import CONTINUING

__all__ = ["EARLIER_ATTEMPT", "continuing", "earlier_attempt", "first_start", "read_back", "recorded_start",
           "start_properties", "trigger_metric_id"]

#: The decision's ``policy_note`` when it is the one an earlier attempt of the run sent.
EARLIER_ATTEMPT = "earlier attempt"

#: The first wait between two reads of an unconfirmed start (then doubled each time).
FIRST_WAIT = 0.5


def trigger_metric_id(kit: Any, name: str) -> str | None:
    """The id of the metric called ``name`` (every page of Get Metrics), or None if there is none yet."""
    for page in kit.pages("get_metrics"):
        for metric in page.data or []:
            if (metric.get("attributes") or {}).get("name") == name:
                return str(metric["id"])
    return None


def first_start(kit: Any, metric_id: str, profile_id: str) -> dict[str, Any] | None:
    """The lead's first start as Klaviyo shows it now (one Get Events call), or None.

    The sequence, when, and what the event says of the decision that started it (``submission_event_id``,
    ``lead_score``, ``lead_band``, ``decided_by``: the run that sent it put them there).
    """
    found = kit.fetch(
        "get_events",
        filter=f"and(equals(metric_id,{quoted(metric_id)}),equals(profile_id,{quoted(profile_id)}))",
        page_size=1,
        sort="datetime",
    )
    if not found.data:
        return None
    attrs = found.data[0].get("attributes") or {}
    props = attrs.get("event_properties") if isinstance(attrs.get("event_properties"), dict) else {}
    return {
        "sequence": props.get("sequence"),
        "at": attrs.get("datetime"),
        "source": "event",
        **{key: props[key] for key in ("submission_event_id", "lead_score", "lead_band", "decided_by", "send_at")
           if props.get(key) is not None},
    }


def read_back(kit: Any, clock: Clock, wait: float, metric_id: str | None, name: str, profile_id: str
              ) -> tuple[dict[str, Any] | None, str | None]:
    """The lead's first start after a send, read until it shows or ``wait`` seconds have passed:
    ``(start or None, the trigger metric's id)``. The metric is looked up when the run did not know
    it (the account's first start made it)."""
    deadline = clock.monotonic() + wait
    pause = FIRST_WAIT
    while True:
        metric_id = metric_id or trigger_metric_id(kit, name)
        start = first_start(kit, metric_id, profile_id) if metric_id else None
        left = deadline - clock.monotonic()
        if start is not None or left <= 0:
            return start, metric_id
        clock.sleep(min(pause, left))
        pause *= 2


def recorded_start(profile: dict[str, Any]) -> dict[str, Any] | None:
    """The start a run recorded on the profile (``lead_sequence``), or None."""
    props = profile.get("properties") if isinstance(profile.get("properties"), dict) else {}
    if not props.get("lead_sequence"):
        return None
    return {"sequence": props["lead_sequence"], "at": props.get("lead_scored_at"), "source": "profile"}


def start_properties(start: dict[str, Any]) -> dict[str, Any]:
    """The profile properties that record ``start`` (a start event read back): its sequence and,
    where the event carries them, the score, band and decider of the decision that started it;
    ``lead_scored_at`` is when it started."""
    props: dict[str, Any] = {"lead_sequence": start.get("sequence")}
    for key, prop in (("lead_score", "lead_score"), ("lead_band", "lead_band"), ("decided_by", "lead_decided_by")):
        if start.get(key) is not None:
            props[prop] = start[key]
    props["lead_scored_at"] = start.get("at")
    return props


def continuing() -> bool:
    """Whether this run continues what an earlier attempt of it left (``RunDriver.retry``): only then
    is a start of this submission the run's own; a new run of the same event is a repeat."""
    try:
        return bool(get_config().get("configurable", {}).get(CONTINUING))
    except RuntimeError:  # a node called outside a run
        return False


def earlier_attempt(already: dict[str, Any] | None, submission: dict[str, Any], unique_id: str
                    ) -> dict[str, Any] | None:
    """The decision and send of this submission's own start, when Klaviyo shows one (``already``
    names this submission's event), for a run that continues an earlier attempt of its own: that
    attempt sent it and was killed before its end (the run checkpoints its input and its end, not
    each step, so it starts again from its input). The run goes on from that send: its decision is
    the one the start carries (the model is not asked again, nothing is sent again), and the record
    step reads the start back and reports it as the run's own. None for any other start (another
    submission's, or a new run of the same event: a repeat, reported as such).
    """
    if not already or already.get("source") != "event" or not submission.get("event_id"):
        return None
    if already.get("submission_event_id") != submission["event_id"] or not already.get("sequence"):
        return None
    decision = {
        "sequence": already["sequence"],
        "decided_by": already.get("decided_by") or "policy",
        "reason": ("decided by this run's earlier attempt, which sent the lead's start and was stopped before its "
                   "end; Klaviyo shows that start, so its decision stands and nothing is sent again"),
        "model_choice": None,
        "policy_note": EARLIER_ATTEMPT,
    }
    send = {"status": "sent", "unique_id": unique_id, "earlier_attempt": True,
            "detail": f"sent by this run's earlier attempt (Klaviyo shows the start, at {already.get('at')})"}
    return {"already": None, "decision": decision, "send": send}
