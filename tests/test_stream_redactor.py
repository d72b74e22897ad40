"""``StreamRedactor``: a streamed answer is shown once, in order, with secrets masked.

A word that may name a secret ("basic", "token", "password", "api key") arriving after part of its
line was shown holds the rest of the line back; it used to also forget what had been shown, so
the line's start was printed a second time ("Here is a Here is a basic summary...").
"""

from __future__ import annotations

import pytest

from klaviyo_toolkit.redact import StreamRedactor

KEY = "pk_abcdefghijklmnopqrstuvwx123456"


def _streamed(text: str, pieces: list[str]) -> str:
    assert "".join(pieces) == text
    stream = StreamRedactor()
    return "".join(stream.feed(piece) for piece in pieces) + stream.end()


def _words(text: str) -> list[str]:
    """``text`` as a model streams it: a word at a time, each with the space before the next."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


@pytest.mark.parametrize("text", [
    "Here is a basic summary of your lists: Newsletter has 1320 profiles.",
    "Your API key is stored in the vault, never shown.",
    "Two lines.\nThe second names a token in the middle.",
])
def test_a_hint_word_mid_line_does_not_repeat_what_was_shown(text: str) -> None:
    assert _streamed(text, _words(text)) == text


def test_a_key_streamed_after_a_hint_is_still_masked_and_nothing_repeats() -> None:
    text = f"Done. The api key is {KEY} for now"
    shown = _streamed(text, _words(text))
    assert KEY not in shown and shown.startswith("Done. The api key is pk_abc") and shown.endswith(" for now")
    assert shown.count("Done.") == 1, shown
