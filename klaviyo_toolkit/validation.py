"""Checks for text that looks like one thing and is another.

An email address or phone number with a control, zero-width or direction-changing character
(``ada@example.com\\u200b``, ``\\u202eoc.elpmaxe@ada``) reads the same to a person as a real one but is a
different identity to Klaviyo: it is refused everywhere an identifier is accepted, naming the
character so the user can fix the source.
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = [
    "canonical_email",
    "canonical_phone",
    "describe_hidden",
    "email_key",
    "email_problem",
    "hidden_characters",
    "phone_problem",
]


def hidden_characters(text: str) -> list[str]:
    """Characters in ``text`` a reader cannot see: controls (Cc), formats such as zero-width and
    bidi marks (Cf), and separators other than the plain space (Zl, Zp, Zs)."""
    return [
        c
        for c in text
        if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") or (unicodedata.category(c) == "Zs" and c != " ")
    ]


def describe_hidden(text: str) -> str:
    """``U+200B ZERO WIDTH SPACE, ...`` for the hidden characters of ``text`` ("" when there are none)."""
    seen = dict.fromkeys(hidden_characters(text))
    return ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'control character')}" for c in seen)


#: RFC 5321's limits: 64 characters before the @, 254 in all; a domain label is 1-63 characters.
_LOCAL_MAX, _EMAIL_MAX, _LABEL_MAX = 64, 254, 63
#: What an unquoted local part may hold (RFC 5322 atext, plus dots between atoms), and what a
#: domain label may (letters of any script, digits, inner hyphens: internationalised domains pass).
#: (Non-ASCII letters pass; surrogates, which no UTF-8 text can hold, do not.)
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\ud7ff\ue000-\uffff-]+"


@functools.cache
def _local_re() -> re.Pattern[str]:
    """The local part's expression, compiled on first use: its wide character ranges take about 7 ms
    to compile, a third of the toolkit's own import time."""
    return re.compile(rf"^{_ATEXT}(\.{_ATEXT})*$")


_LABEL_RE = re.compile(r"^[^\W_](?:(?:[^\W_]|-)*[^\W_])?$")
_E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$", re.ASCII)


def email_problem(value: str) -> str | None:
    """Why ``value`` is not an address Klaviyo accepts, as a fix a person can act on; None when it is.

    Stricter than "something@something.something": Klaviyo refuses ``ada@example.com.``,
    ``ada@example..com``, ``<ada@example.com>`` and ``a,b@example.com``, and one such row in a
    batch sinks the whole batch, so they are refused here, before any request. The address is read in
    its NFC form (``jose\u0301@`` is ``jos\u00e9@``); beyond ASCII its local part holds only letters
    and digits (not ``ada\u00a9@`` or a combining mark no letter absorbs), as Klaviyo's checks allow.
    """
    if hidden := describe_hidden(value):
        return f"the email address contains characters that cannot be seen ({hidden}); remove them"
    value = canonical_email(value)  # an accent written as e + U+0301 is the letter it makes
    if value.count("@") != 1:
        return f"{value!r} is not an email address (it needs exactly one @); give it as name@example.com"
    local, domain = value.split("@")
    if len(value) > _EMAIL_MAX or len(local) > _LOCAL_MAX:
        return (
            f"the email address is too long ({len(local)} characters before the @, {len(value)} in all; "
            f"the limits are {_LOCAL_MAX} and {_EMAIL_MAX})"
        )
    if not local or not _local_re().match(local):
        return (
            f"{value!r} is not a valid email address: the part before the @ is empty, has a space, a "
            'character such as <>(),;:"[] or \\, or a dot at its start, its end or twice in a row; '
            "give it as name@example.com"
        )
    if odd := [c for c in dict.fromkeys(local) if not c.isascii() and not c.isalnum()]:
        named = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed character')}" for c in odd)
        return (
            f"{value!r} is not a valid email address: beyond ASCII, the part before the @ may hold only letters "
            f"and digits, not {named}; remove or replace it"
        )
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels) or not all(len(x) <= _LABEL_MAX and _LABEL_RE.match(x) for x in labels):
        return (
            f"{value!r} is not a valid email address: the domain after the @ needs dot-separated names of "
            "letters, digits and inner hyphens, with no empty part and no dot at its end, e.g. example.com"
        )
    if labels[-1].isdigit():
        return f"{value!r} is not a valid email address: the domain ends in a number, not a name such as .com"
    return None


def canonical_email(value: str) -> str:
    """The one Unicode spelling of an address (NFC), its case kept as given: ``jos\u00e9@example.com``.

    ``e`` followed by a combining accent (NFD, as some macOS tools and exports write it) and the
    precomposed ``\u00e9`` look the same to a person and are one address, but differ as text: a
    member Klaviyo holds in one form was not matched by a file giving the other, so a mirror sync
    removed that member and sent the same person again. Compare (:func:`email_key`) and send this form.
    """
    return unicodedata.normalize("NFC", value)


def email_key(value: str) -> str:
    """What two addresses are compared by: their NFC form (:func:`canonical_email`), trimmed, in lower case.

    Klaviyo matches a profile's email without regard to case, so ``Ann@Example.com`` and
    ``ann@example.com`` are one profile; the address is still sent with its case as given.
    """
    return canonical_email(value.strip()).lower()


def phone_problem(value: str) -> str | None:
    """Why ``value`` is not a phone number Klaviyo accepts, as a fix a person can act on; None when it is.

    Two checks: the E.164 form (``+``, country code, ASCII digits, 8 to 16 characters in all), then
    whether such a number can exist. Klaviyo validates the number itself, so ``+15555555`` (too
    short for +1) or ``+447700900123`` (a UK range set aside for drama) are refused there; one such
    row sinks a batch, so they are refused here, before any request. Validity is libphonenumber's
    table of ranges per country (the ``phonenumbers`` package, imported on the first number).
    """
    if hidden := describe_hidden(value):
        return f"the phone number contains characters that cannot be seen ({hidden}); remove them"
    if not _E164_RE.match(value):
        return (
            f"{value!r} is not an E.164 phone number; give it as + country code and number, digits 0-9 "
            "only, e.g. +15005550006"
        )
    why = _number_problem(value)
    if why is None:
        return None
    return f"{value!r} is not a phone number that exists: {why}; check the number and its country code"


@functools.lru_cache(maxsize=4096)
def canonical_phone(value: str) -> str:
    """The one E.164 spelling of a number :func:`phone_problem` accepts: ``+4402079460958`` (a UK
    number written with its trunk 0, "+44 (0)20 7946 0958") is ``+442079460958``.

    libphonenumber accepts both as the same valid number, but they are different text: a member
    Klaviyo holds as ``+442079460958`` would not be matched by the other, so a sync removed that
    member and imported the same person again as a new profile. Comparing and sending the one
    canonical form keeps a number one person.
    """
    import phonenumbers

    number = phonenumbers.parse(value, None)
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


@functools.lru_cache(maxsize=4096)
def _number_problem(value: str) -> str | None:
    """Why an E.164-shaped ``value`` is not a valid number (libphonenumber), or None."""
    import phonenumbers

    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return "no country has the calling code it starts with"
    if phonenumbers.is_valid_number(number):
        return None
    code = number.country_code or 0
    country = f"+{code} ({phonenumbers.region_code_for_country_code(code)})"
    result = phonenumbers.ValidationResult
    return {
        result.INVALID_COUNTRY_CODE: "no country has the calling code it starts with",
        result.TOO_SHORT: f"too few digits for a {country} number",
        result.IS_POSSIBLE_LOCAL_ONLY: f"too few digits for a {country} number (an area code missing?)",
        result.TOO_LONG: f"too many digits for a {country} number",
        result.INVALID_LENGTH: f"no {country} number has that many digits",
    }.get(phonenumbers.is_possible_number_with_reason(number), f"no {country} number is in that range")
