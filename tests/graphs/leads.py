"""Signing leads up through the sandbox's real API, the way the lead-magnet form would."""

from __future__ import annotations

from typing import Any

from klaviyo_toolkit.sandbox import Sandbox

HOT = {"company_size": "201-1000", "role": "Outdoor program director", "interest": "team outfitting",
       "timeline": "this month", "budget": "$5k-$25k"}                          # 5+15+10+15+20+12 = 77
WARM = {"company_size": "11-50", "role": "Trip leader", "interest": "guided trips", "timeline": "this quarter",
        "budget": "$1k-$5k"}                                                     # 5+5+5+10+12+5 = 42
COLD = {"company_size": "1-10", "role": "Enthusiast", "interest": "just the guide", "timeline": "just browsing",
        "budget": "<$1k"}                                                        # 5+0+0-5-10+0 = -10


def finish_jobs(sb: Sandbox) -> None:
    """Let queued bulk jobs complete now."""
    with sb.store.lock:
        for rtype in sb.store.types():
            if rtype.endswith("-job"):
                for job in sb.store.iter(rtype):
                    job.private["due"] = 0
        sb.tick()
        sb.store.flush()


def sign_up(
    sb: Sandbox,
    email: str,
    answers: dict[str, Any],
    *,
    consent: str = "subscribed",
    timezone: str | None = "America/New_York",
    client: Any = None,
    submission_id: str | None = None,
) -> dict[str, Any]:
    """Create the lead (with the given consent) and its form submission; return the Get Event document."""
    kl = client or sb.client()
    if consent in ("subscribed", "suppressed", "unsubscribed"):
        kl.call("bulk_subscribe_profiles", profiles=[{"email": email, "subscriptions": {
            "email": {"marketing": {"consent": "SUBSCRIBED"}}}}])
        finish_jobs(sb)
    else:
        kl.call("create_profile", email=email)
    if consent == "suppressed":
        kl.call("bulk_suppress_profiles", profiles=[{"email": email}])
        finish_jobs(sb)
    if consent == "unsubscribed":
        kl.call("bulk_unsubscribe_profiles", profiles=[{"email": email, "subscriptions": {
            "email": {"marketing": {"consent": "UNSUBSCRIBED"}}}}])
        finish_jobs(sb)
    profile = kl.call("get_profiles", filter=f"equals(email,'{email}')").data[0]
    if timezone:
        kl.call("update_profile", id=profile["id"], location={"timezone": timezone})
    kl.call("create_event", metric={"name": "Form submitted by profile"}, profile={"id": profile["id"]},
            properties={"form_id": "TRAILG", "form_name": "Trail Guide", **answers},
            unique_id=submission_id or f"form:{email}")
    events = kl.call("get_events", filter=f'equals(profile_id,"{profile["id"]}")', include=["metric"], sort="-datetime")
    names = {m["id"]: m["attributes"]["name"] for m in events.included}
    event = next(e for e in events.data if names[e["relationships"]["metric"]["data"]["id"]] == "Form submitted by profile")
    return dict(kl.call("get_event", id=event["id"], include=["profile", "metric"]).body)


def sequence_starts(sb: Sandbox, profile_id: str) -> list[Any]:
    """The lead's 'Lead Sequence Started' events, straight from the sandbox's store."""
    metric = sb.store.find("metric", "name", "Lead Sequence Started")
    if metric is None:
        return []
    return [e for e in sb.store.all("event")
            if e.linked("profile") == [("profile", profile_id)] and e.linked("metric") == [("metric", metric.id)]]


def first_touchpoints(sb: Sandbox, profile_id: str) -> list[dict[str, Any]]:
    return [m for m in sb.outbox(profile_id=profile_id) if m.get("position") == 1 and m.get("source") == "flow"]
