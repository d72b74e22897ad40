"""The sandbox's own rules for profile identifiers (email, E.164 phone number).

The rules live in the core (``klaviyo_sandbox._formats``), where request bodies are checked against
them everywhere the spec has such a field; the domains use the same functions, so a profile write,
an event, a subscription and a push token all refuse the same values.
"""

from __future__ import annotations

from .._formats import E164_MAX_DIGITS, E164_MIN_DIGITS, is_e164, is_email, phone_message

__all__ = ["E164_MAX_DIGITS", "E164_MIN_DIGITS", "is_e164", "is_email", "phone_message"]
