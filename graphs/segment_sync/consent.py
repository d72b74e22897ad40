"""How the syncer reads consent from a file: the values a consent cell may hold, and column names.

The consent column is consent to **email** marketing. A value is compared without case and
separators ("Opted In" is "opted-in"), never by guessing at its words: anything that is neither a
value meaning consent nor one meaning none is reported on its row. A column whose name looks like
consent ("Email Consent", "Accepts Email Marketing") but is not the one read is refused before any
call (``sources.misnamed_column``), unless it is another channel's (SMS, push): consent to texts is
not consent to email, so such a column is never offered as the consent column, only said to be unread.
"""

from __future__ import annotations

import functools
import re

__all__ = ["NO_CONSENT", "NO_CONSENT_KEYS", "consent_key", "consent_like", "other_channel", "other_channel_consent"]

#: Consent-column values that say "no consent" (the persona's ``consent_values`` say yes); any other
#: value is reported on its row rather than read as either.
NO_CONSENT = ("", "no", "n", "false", "f", "0", "none", "unsubscribed", "never_subscribed", "not subscribed",
              "opt-out", "opted-out")
#: What a consent value may be spelt with that changes nothing ("Opted In", "opt_in", "opt-in"):
#: spaces, underscores and hyphens are dropped on both sides of the comparison.
CONSENT_SEPARATORS = re.compile(r"[\s_-]+")


@functools.lru_cache(maxsize=4096)  # a file holds a few spellings, read on each of its rows
def consent_key(value: str) -> str:
    """A consent value as compared: lower case, without separators (``consent_key("Opted In") ==
    consent_key("opted-in")``); the words are never changed, so no value is guessed."""
    return CONSENT_SEPARATORS.sub("", value.strip().lower())


NO_CONSENT_KEYS = frozenset(consent_key(v) for v in NO_CONSENT)

#: Words that make a consent column another channel's (SMS, push, WhatsApp): never email marketing consent.
OTHER_CHANNELS = re.compile(r"sms|(?:^|_)(?:text|texts|texting|phone|mobile|cell|whatsapp|push|mms)(?:_|$)")
#: What a consent column's name says (normalized): "Email Consent", "Subscribed", "Opt In", "Accepts
#: Email Marketing" (Shopify's customer export).
CONSENT_LIKE = re.compile(r"consent|subscri|(?:^|_)opt_?(?:ed_?)?in$|accepts_(?:\w+_)?marketing")


def consent_like(name: str) -> bool:
    """Whether a column (name normalized) looks like it holds marketing consent, for some channel."""
    return bool(CONSENT_LIKE.search(name))


def other_channel(name: str) -> bool:
    """Whether a column (name normalized) is about a channel other than email ("sms_consent",
    "Text Opt In"): consent to texts is not consent to email, so such a column is never offered
    as the consent column (renaming it would email everyone who agreed to texts)."""
    return bool(OTHER_CHANNELS.search(name))


def other_channel_consent(header: list[str]) -> list[str]:
    """The columns (as given) that hold consent for a channel other than email (:func:`other_channel`):
    not read, and said so when the file has no consent column."""
    return [c.strip() for c in header if other_channel(n := c.strip().lower().replace(" ", "_").replace("-", "_"))
            and consent_like(n)]
