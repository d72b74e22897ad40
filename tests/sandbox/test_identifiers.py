"""The sandbox's own rules for email addresses and phone numbers (``domains/_identifiers.py``).

They are written from Klaviyo's documentation, apart from the client's checks, so a bug in one cannot
hide behind the same bug in the other; profiles, consent and events answer 400 for what they refuse
(``test_profiles.py``).
"""

from __future__ import annotations

import pytest

from klaviyo_sandbox.domains._identifiers import is_e164, is_email


@pytest.mark.parametrize(("value", "ok"), [
    ("+15005550006", True), ("+6831234", True), ("+123456789012345", True),
    ("+1234567890123456", False),  # 16 digits: longer than E.164 allows
    ("+683123", False), ("+05005550006", False), ("15005550006", False), ("+1 500 555 0006", False),
    ("+1-500-555-0006", False), ("+١٥٠٠٥٥٥٠٠٠٦", False), ("+", False), ("", False),
])
def test_phone_numbers_must_be_e164(value: str, ok: bool) -> None:
    assert is_e164(value) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("ada@example.com", True), ("first.last+tag@mail.example.co.uk", True), ("recipient-1-1@campaigns.example", True),
    ("ada@example", False), ("ada@example.", False), ("ada@.example.com", False), ("@example.com", False),
    ("ada@@example.com", False), ("a@b@example.com", False), ("ada @example.com", False), ("ada@exa mple.com", False),
    ("x" * 65 + "@example.com", False), ("x" * 64 + "@example.com", True), ("ada@" + "a" * 252 + ".com", False),
    # the local part is dot-separated atoms, the domain letters, digits and inner hyphens
    ("o'brien@example.ie", True), ("user!#$%&*/=?^_`{|}~-x@example.com", True), ("josé@correo.es", True),
    ("ada@bücher.de", True), ("ada..b@example.com", False), (".ada@example.com", False), ("ada.@example.com", False),
    ("<ada@example.com>", False), ("a,b@example.com", False), ('"ada"@example.com', False), ("a\\b@example.com", False),
    ("ada@-example.com", False), ("ada@example-.com", False), ("ada@exa_mple.com", False), ("ada@example.123", False),
    ("ada@[192.0.2.1]", False), ("ada@" + "a" * 64 + ".com", False),
    # nothing a reader cannot see
    ("ada@example.com\u200b", False), ("\u202eada@example.com", False), ("ada\u00a0@example.com", False),
    ("ada@example.com\n", False), ("ada\u0301@example.com", False), ("\U0001f600@example.com", False),
])
def test_email_addresses(value: str, ok: bool) -> None:
    assert is_email(value) is ok
