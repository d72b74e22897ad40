"""The value formats the sandbox checks in request bodies, written from Klaviyo's documentation.

Kept apart from the client's argument checks on purpose: if the two were one, a bug in it would let
the client send what Klaviyo refuses while the sandbox, sharing the bug, accepts it.

- **date-time** (the spec's ``format: date-time``): an ISO 8601 / RFC 3339 date and time,
  ``2026-07-15T10:00:00+00:00`` or ``...Z``; seconds and fractions optional. Every example in
  Klaviyo's spec carries an offset, but Klaviyo also reads a time without one (as UTC), so a naive
  time is accepted; a date alone, or anything that is not a date and time, is not.
- **date** (``format: date``): ``YYYY-MM-DD``, a real calendar day.
- **email** (fields that hold an address: ``email``, ``from_email``, ``reply_to_email``, ...): an
  address a message can be sent to: one ``@``; a local part of 1 to 64 characters, dot-separated
  atoms of letters, digits and ``!#$%&'*+/=?^_`{|}~-`` (RFC 5322's dot-atom: no dot at either end or
  twice in a row; no quotes, brackets, commas or backslashes); a domain of at most 255 characters
  made of two or more dot-separated labels of letters, digits and inner hyphens, none empty, the
  last not all digits; at most 254 characters in all; nothing invisible (whitespace, controls,
  zero-width or direction marks). Letters of other scripts pass (internationalised addresses).
  Klaviyo refuses addresses without a domain dot, such as ``ada@example``.
- **phone_number** must be E.164 (Klaviyo: "Phone numbers must be in E.164 format", e.g.
  ``+15005550006``): a ``+``, then digits only (no spaces, dashes or brackets); a country code, which
  never starts with 0; at most 15 digits in all (ITU-T E.164) and at least 7. And it must be a number
  that can exist: Klaviyo validates the number itself (an invalid one is a 400 on ``phone_number``
  when it is the only identifier, a partial failure beside a valid email), so ``+15555555`` (too
  short for +1), ``+999123456789`` (no such country code) or ``+447700900123`` (a UK range set
  aside for drama) are refused. Validity is a table of ranges per country, not a shape: the sandbox
  asks libphonenumber's metadata (the ``phonenumbers`` package). :func:`phone_region` gives the
  number's country, which decides whether the account can send it SMS (``+1`` is also Jamaica's).
"""

from __future__ import annotations

import datetime as _dt
import functools
import re

E164_MIN_DIGITS = 7
E164_MAX_DIGITS = 15
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}(:?\d{2})?)?", re.ASCII
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def is_e164(value: str) -> bool:
    """Whether ``value`` is a phone number Klaviyo takes: E.164 form, and a number that can exist
    (see module docstring)."""
    if not value.startswith("+"):
        return False
    digits = value[1:]
    if not (digits.isascii() and digits.isdigit()):
        return False
    if digits[0] == "0" or not E164_MIN_DIGITS <= len(digits) <= E164_MAX_DIGITS:
        return False
    return phone_region(value) is not None


@functools.lru_cache(maxsize=4096)
def phone_region(value: str) -> str | None:
    """The ISO country code of a valid number in E.164 form (``US``, ``CA``, ``JM``, ``GB``...); None
    when libphonenumber finds no such number. Imported on first use: its metadata loads per country."""
    import phonenumbers

    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    region = phonenumbers.region_code_for_number(number)
    return region if isinstance(region, str) and region != "ZZ" else None


def phone_message(value: str) -> str:
    """The detail of Klaviyo's 400 for a phone number :func:`is_e164` refuses: why, and the fix."""
    fix = "use E.164 format: + country code then digits, e.g. +15005550006"
    digits = value[1:] if value.startswith("+") else ""
    if not (digits.isascii() and digits.isdigit()) or digits[0] == "0":
        return f"Invalid phone number {value!r}; {fix}."
    import phonenumbers

    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return f"Invalid phone number {value!r}: no country has the calling code it starts with; {fix}."
    reason = phonenumbers.is_possible_number_with_reason(number)
    region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    why = {
        phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "no country has the calling code it starts with",
        phonenumbers.ValidationResult.TOO_SHORT: f"too few digits for a +{number.country_code} ({region}) number",
        phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: (
            f"too few digits for a +{number.country_code} ({region}) number (an area code missing?)"
        ),
        phonenumbers.ValidationResult.TOO_LONG: f"too many digits for a +{number.country_code} ({region}) number",
        phonenumbers.ValidationResult.INVALID_LENGTH: f"no +{number.country_code} ({region}) number has that length",
    }.get(reason, f"no +{number.country_code} ({region}) number is in that range")
    return f"Invalid phone number {value!r}: {why}; give a real number in E.164 format, e.g. +15005550006."


#: What an atom of the local part may hold besides letters and digits (RFC 5322 atext).
_ATEXT_MARKS = frozenset("!#$%&'*+/=?^_`{|}~-")


def _visible_letter_or_digit(ch: str) -> bool:
    """A letter or digit of any script in the Basic Multilingual Plane (no marks, no invisibles)."""
    return ch.isalnum() and ord(ch) <= 0xFFFF


def is_email(value: str) -> bool:
    """Whether ``value`` is a deliverable-looking email address (see module docstring)."""
    if len(value) > 254 or value.count("@") != 1:
        return False
    local, domain = value.split("@")
    if not 1 <= len(local) <= 64 or not 1 <= len(domain) <= 255:
        return False
    for atom in local.split("."):
        if not atom or not all(_visible_letter_or_digit(ch) or ch in _ATEXT_MARKS for ch in atom):
            return False
    labels = domain.split(".")
    if len(labels) < 2 or labels[-1].isdigit():
        return False
    for label in labels:
        if not 1 <= len(label) <= 63 or label[0] == "-" or label[-1] == "-":
            return False
        if not all(_visible_letter_or_digit(ch) or ch == "-" for ch in label):
            return False
    return True


def parse_date_time(value: str) -> _dt.datetime | None:
    """The aware datetime ``value`` names (a naive one read as UTC), or None if it is not one."""
    if not _DATE_TIME.fullmatch(value):
        return None
    text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    fraction = re.search(r"\.(\d+)", text)
    if fraction and len(fraction.group(1)) > 6:  # Python reads at most microseconds
        text = text.replace(fraction.group(0), "." + fraction.group(1)[:6], 1)
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=_dt.UTC)


def is_date_time(value: str) -> bool:
    """Whether ``value`` is an ISO 8601 date and time (see module docstring)."""
    return parse_date_time(value) is not None


def parse_date(value: str) -> _dt.date | None:
    """The calendar day ``value`` names (``YYYY-MM-DD``), or None."""
    if not _DATE.fullmatch(value):
        return None
    try:
        return _dt.date.fromisoformat(value)
    except ValueError:
        return None


def is_date(value: str) -> bool:
    return parse_date(value) is not None


__all__ = [
    "is_date",
    "is_date_time",
    "is_e164",
    "is_email",
    "parse_date",
    "parse_date_time",
    "phone_message",
    "phone_region",
]
