"""Klaviyo's partial failure: an invalid phone number beside a valid identifier is ignored.

Klaviyo changed how Subscribe, Create Profile and Create Event treat phone numbers (developer
community, "API validation improvements for phone number handling"): a request that carries a valid
identifier, such as an email address, and an invalid phone number is processed on that identifier;
the phone number is ignored instead of the request being refused, and the answer carries
``X-Klaviyo-Partial-Failure: phone_number``. A phone number that is the only identifier is still a
400. The sandbox does the same, so a client tried against it sees what Klaviyo answers: not a 400
where Klaviyo would have created the profile, and not silence where Klaviyo warns.

:func:`ignore_invalid_phones` runs before the body is checked: it takes the phone numbers Klaviyo
would ignore out of a copy of the body and says whether it did. Everything else (a phone number
alone, an invalid email beside it, a subscription to SMS only) is left for the checks to refuse,
with the error that names the field.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from ._formats import is_e164, is_email

__all__ = ["PARTIAL_FAILURE_HEADER", "PARTIAL_FAILURE_OPERATIONS", "ignore_invalid_phones"]

PARTIAL_FAILURE_HEADER = "X-Klaviyo-Partial-Failure"
#: The operations Klaviyo named: Create Profile, Create Event, Subscribe.
PARTIAL_FAILURE_OPERATIONS = frozenset({"create_profile", "create_event", "bulk_subscribe_profiles"})


def ignore_invalid_phones(operation_id: str, body: Any) -> tuple[Any, bool]:
    """``body`` without the invalid phone numbers Klaviyo would ignore, and whether any was taken out
    (then the answer carries :data:`PARTIAL_FAILURE_HEADER`). ``body`` itself is never changed."""
    if operation_id not in PARTIAL_FAILURE_OPERATIONS or not isinstance(body, dict):
        return body, False
    subscribing = operation_id == "bulk_subscribe_profiles"
    if not any(_ignorable(item, subscribing) for item in _profiles(operation_id, body)):
        return body, False
    body = copy.deepcopy(body)
    for item in _profiles(operation_id, body):
        if _ignorable(item, subscribing):
            attrs = item["attributes"]
            del attrs["phone_number"]
            if subscribing and isinstance(attrs.get("subscriptions"), dict):
                attrs["subscriptions"].pop("sms", None)  # consent for a number that was not taken
    return body, True


def _profiles(operation_id: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The profile resources of a request (``{"id"?, "attributes": {...}}``), where each operation keeps them."""
    data = body.get("data")
    if not isinstance(data, dict):
        return
    if operation_id == "create_profile":
        items: list[Any] = [data]
    else:
        attrs = data.get("attributes")
        key = "profile" if operation_id == "create_event" else "profiles"
        holder = attrs.get(key) if isinstance(attrs, dict) else None
        inner = holder.get("data") if isinstance(holder, dict) else None
        items = [inner] if isinstance(inner, dict) else inner if isinstance(inner, list) else []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("attributes"), dict):
            yield item


def _ignorable(item: dict[str, Any], subscribing: bool) -> bool:
    """Whether the profile's phone number is invalid and the request can go on without it: another
    identifier is valid (an email address, an external id, an anonymous id, the profile's id) and no
    email given beside it is invalid; a subscription must still name a channel that needs no phone."""
    attrs = item["attributes"]
    phone = attrs.get("phone_number")
    if not isinstance(phone, str) or is_e164(phone):
        return False
    email = attrs.get("email")
    if email is not None and not (isinstance(email, str) and is_email(email)):
        return False
    if subscribing:
        subs = attrs.get("subscriptions")
        return email is not None and isinstance(subs, dict) and bool(subs.get("email"))
    others = (email, attrs.get("external_id"), attrs.get("anonymous_id"), item.get("id"))
    return any(isinstance(value, str) and value.strip() for value in others)
