"""The reliability suite: each test gets its own state folder and no model key.

Every test here is marked ``reliability``; the heavy ones also ``reliability_full`` and stay out
of the default run (pyproject's ``addopts`` deselects them). ``pytest -m reliability`` runs both.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("PERSONAS_HOME", str(home))
    for name in ("OPENAI_API_KEY", "KLAVIYO_API_KEY", "KLAVIYO_BASE_URL", "PERSONAS_CONNECTION"):
        monkeypatch.delenv(name, raising=False)
    return home
