"""No part of a secret survives being cut before it is redacted: a model's answer arrives in pieces
(a key split across two streamed chunks), and an error page is shortened before it is shown. Each
piece alone is too short to look like a key, so only redacting the whole, before any cut, masks it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..fake_openai import FakeOpenAI
from .conftest import Terminal, child_env

KLAVIYO_KEY = "pk_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8dKLzd"  # pk_ + 40: shaped like a real key
OPENAI_KEY = "zz-openai-CUT-4f1c9e7a2b5d"  # not key-shaped: only the registry of known secrets knows it


def pieces(secret: str, size: int = 8) -> list[str]:
    """Every run of ``size`` characters of ``secret`` (what a leak check looks for)."""
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def test_a_key_split_across_streamed_chunks_is_masked_in_the_chat(tmp_path: Path) -> None:
    # The fake streams an answer as text[:20] and text[20:]: both keys straddle the cut.
    answer = {"content": f"Yours: {KLAVIYO_KEY} then {OPENAI_KEY} and the password is hunter2x, done."}

    def script(body: dict[str, Any], n: int) -> dict[str, Any]:
        return answer

    with FakeOpenAI(mode="script", script=script) as model:
        env = child_env(tmp_path / "home", OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=model.base_url,
                        KLAVIYO_API_KEY=KLAVIYO_KEY)
        term = Terminal(["chat", "klaviyo-assistant", "--sandbox"], env)
        term.prompt()
        term.say("What is my key?")
        term.expect("done.")
        term.prompt()
        assert term.leave() == 0
    shown = term.transcript
    assert "Yours: pk_u8j" in shown and "and the password is" in shown, shown
    for secret in (KLAVIYO_KEY, OPENAI_KEY, "hunter2x"):
        assert not [p for p in pieces(secret) if p in shown], (secret, shown)
