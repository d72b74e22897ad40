"""Checks for text that looks like one thing and is another.

An email address or phone number with a control, zero-width or direction-changing character
(``ada@example.com\\u200b``, ``\\u202eoc.elpmaxe@ada``) reads the same to a person as a real one but is a
different identity to Klaviyo: it is refused everywhere an identifier is accepted, naming the
character so the user can fix the source.
"""

from __future__ import annotations

import unicodedata

__all__ = ["hidden_characters", "describe_hidden"]


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
