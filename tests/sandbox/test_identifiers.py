"""The sandbox's own rules for email addresses and phone numbers (``domains/_identifiers.py``).

They are written from Klaviyo's documentation, apart from the client's checks, so a bug in one cannot
hide behind the same bug in the other; profiles, consent and events answer 400 for what they refuse
(``test_profiles.py``).
"""

from __future__ import annotations

import pytest

from klaviyo_sandbox._formats import phone_message, phone_region
from klaviyo_sandbox.domains._identifiers import is_e164, is_email


@pytest.mark.parametrize(("value", "ok"), [
    ("+15005550006", True), ("+16045550142", True), ("+447400900123", True), ("+4915112000101", True),
    ("+33612000101", True), ("+61491570101", True), ("+64211000101", True), ("+18765551234", True),
    ("+6837012", True),  # Niue: a 3-digit country code and a 4-digit national number
    ("+1234567890123456", False),  # 16 digits: longer than E.164 allows
    ("+683123", False), ("+05005550006", False), ("15005550006", False), ("+1 500 555 0006", False),
    ("+1-500-555-0006", False), ("+١٥٠٠٥٥٥٠٠٠٦", False), ("+", False), ("", False),
    # E.164 in form, but no such number: Klaviyo checks the number itself
    ("+15555555", False),  # seven digits after +1: a local number without its area code
    ("+10005550006", False),  # no North American area code starts with 0
    ("+12125551234567", False),  # 14 digits after +1
    ("+999123456789", False),  # no country has the calling code 999
    ("+447700900123", False),  # Ofcom's range set aside for drama, not a number
    ("+123456789012345", False), ("+6831234", False),
])
def test_phone_numbers_must_be_e164_and_exist(value: str, ok: bool) -> None:
    assert is_e164(value) is ok


@pytest.mark.parametrize(("value", "region"), [
    ("+12125550142", "US"), ("+16045550142", "CA"), ("+18765551234", "JM"), ("+12423221234", "BS"),
    ("+447400900123", "GB"), ("+15555555", None), ("+999123456789", None),
])
def test_a_number_has_a_country_not_just_a_calling_code(value: str, region: str | None) -> None:
    assert phone_region(value) == region


def test_the_error_says_why_a_well_formed_number_is_refused() -> None:
    assert "area code missing" in phone_message("+15555555")
    assert "calling code" in phone_message("+999123456789")
    assert "too many digits for a +1 (US) number" in phone_message("+12125551234567")
    assert "E.164 format" in phone_message("+1 500 555 0006")


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
