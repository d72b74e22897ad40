"""What every graph test starts from: its own state folder and no OpenAI key, so a run writes its
audit log, checkpoints and caches under the test's ``tmp_path`` and its model is the scripted one
the test gives, never a real one found in the environment."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
