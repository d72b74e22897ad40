"""The sequencer's terminal view of a run (``personas run lead-magnet-sequencer`` without ``--json``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def render_lead(state: Mapping[str, Any]) -> str:
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
        lines.append(f"Sequence: {decision.get('sequence') or 'none'} (decided by {decision.get('decided_by')})")
        lines.append(f"  why: {decision.get('reason')}")
    sched = state.get("schedule")
    if sched:
        lines.append(
            f"First touchpoint: {sched['local']} {sched['timezone']} = {sched['send_at']} UTC ({sched['reason']})"
        )
    send = state.get("send")
    if send:
        lines.append(f"Send: {send.get('status')} (unique_id {send.get('unique_id')})")
    if state.get("outcome"):
        lines.append(f"Outcome: {state['outcome']}")
    return "\n".join(lines)
