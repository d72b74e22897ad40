"""Plain-text views of graph results for the terminal (``personas run`` without ``--json``)."""

from __future__ import annotations

from typing import Any


def render_lead(state: dict[str, Any]) -> str:
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


def render_result(spec: Any, result: Any) -> str:
    head = f"{spec.name} (thread {result.thread_id}); model: {result.model}"
    state = result.state
    from graphs import load

    module = load(spec.graph)
    render = getattr(module, "render", None)
    if spec.graph == "lead_magnet":
        body = render_lead(state)
    elif render is not None:
        body = render(state)
    else:
        import json

        body = json.dumps({k: v for k, v in state.items() if k != "messages"}, indent=1, default=str)[:4000]
    if result.interrupts:
        import json

        body += "\n\nWaiting for approval:\n" + "\n".join(
            json.dumps(i, indent=1, default=str) for i in result.interrupts
        )
    return head + "\n" + body
