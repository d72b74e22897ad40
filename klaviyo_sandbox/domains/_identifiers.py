"""The sandbox's own rules for profile identifiers, written from Klaviyo's documentation.

Kept apart from the client's argument checks on purpose: if the two were one, a bug in it would let
the client send what Klaviyo refuses while the sandbox, sharing the bug, accepts it.

- **phone_number** must be E.164 (Klaviyo: "Phone numbers must be in E.164 format", e.g.
  ``+15005550006``): a ``+``, then digits only (no spaces, dashes or brackets); a country code, which
  never starts with 0; at most 15 digits in all (ITU-T E.164) and at least 7 (a 3-digit country code
  and the shortest national numbers, 4 digits, as in Niue's +683).
- **email** must be an address a message can be sent to: one ``@``; a local part of 1 to 64
  characters; a domain of at most 255 characters made of two or more dot-separated labels, none
  empty; no whitespace anywhere (RFC 5321 sizes; Klaviyo refuses addresses without a domain dot,
  such as ``ada@example``).
"""

from __future__ import annotations

E164_MIN_DIGITS = 7
E164_MAX_DIGITS = 15


def is_e164(value: str) -> bool:
    """Whether ``value`` is a phone number in E.164 form (see module docstring)."""
    if not value.startswith("+"):
        return False
    digits = value[1:]
    if not (digits.isascii() and digits.isdigit()):
        return False
    return digits[0] != "0" and E164_MIN_DIGITS <= len(digits) <= E164_MAX_DIGITS


def is_email(value: str) -> bool:
    """Whether ``value`` is a deliverable-looking email address (see module docstring)."""
    if any(ch.isspace() for ch in value) or value.count("@") != 1:
        return False
    local, domain = value.split("@")
    if not 1 <= len(local) <= 64 or not 1 <= len(domain) <= 255:
        return False
    labels = domain.split(".")
    return len(labels) >= 2 and all(labels)
