"""Sign a lead up the way the Trail Guide form does, through the Klaviyo API (sandbox or real).

Used by the demo, tests, evals and benchmarks so that every one of them feeds the sequencer the
same kind of input: a profile with the stated consent, a form-submission event, and that event as
Klaviyo's Get Event returns it (``include=profile,metric``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from klaviyo_toolkit.filters import quoted
from klaviyo_toolkit.validation import canonical_email

FORM_METRIC = "Form submitted by profile"


def sign_up(
    client: Any,
    email: str,
    answers: dict[str, Any],
    *,
    consent: str = "subscribed",
    timezone: str | None = "America/New_York",
    list_id: str | None = None,
    form: tuple[str, str] = ("TRAILG", "Trail Guide"),
    submission_id: str | None = None,
    settle: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Create the lead with ``consent`` (subscribed | never | unsubscribed | suppressed) and its
    submission; returns the Get Event document. ``settle`` runs after each bulk job (the sandbox
    completes them at once; real Klaviyo needs a short wait)."""
    if consent in ("subscribed", "suppressed", "unsubscribed"):
        client.call(
            "bulk_subscribe_profiles",
            list_id=list_id,
            custom_source=f"{form[1]} form",
            profiles=[{"email": email, "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}],
        )
        settle()
    else:
        client.call("create_profile", email=email)
    if consent == "suppressed":
        client.call("bulk_suppress_profiles", profiles=[{"email": email}])
        settle()
    if consent == "unsubscribed":
        client.call(
            "bulk_unsubscribe_profiles",
            profiles=[{"email": email, "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}}],
        )
        settle()
    # the profile holds the address as sent, in its NFC form (the toolkit sends it so): look it up so too
    profile = client.call("get_profiles", filter=f"equals(email,{quoted(canonical_email(email))})").data[0]
    if timezone:
        client.call("update_profile", id=profile["id"], location={"timezone": timezone})
    client.call(
        "create_event",
        metric={"name": FORM_METRIC},
        profile={"id": profile["id"]},
        properties={"form_id": form[0], "form_name": form[1], **answers},
        unique_id=submission_id or f"form:{email}",
    )
    events = client.call(
        "get_events", filter=f"equals(profile_id,{quoted(profile['id'])})", include=["metric"], sort="-datetime"
    )
    names = {m["id"]: m["attributes"]["name"] for m in events.included}
    event = next(e for e in events.data if names[e["relationships"]["metric"]["data"]["id"]] == FORM_METRIC)
    return dict(client.call("get_event", id=event["id"], include=["profile", "metric"]).body)


def settle_sandbox(sandbox: Any) -> Callable[[], None]:
    """A ``settle`` for the sandbox: let what it has pending (bulk jobs, asynchronous writes) finish now,
    where code against real Klaviyo would wait (``Sandbox.settle``)."""

    def settle() -> None:
        sandbox.settle()

    return settle
