"""Fixtures the eval tests share: an environment with no model, and a model endpoint that never answers."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def no_model_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh state folder and no model configured (no key, endpoint or model name from the caller's shell)."""
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path / "home"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PERSONAS_MODEL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def dead_model(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the live model at a loopback port nothing listens on (3 s timeout); returns its base URL."""
    from tests.ports import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"  # never one another worker's server takes meanwhile
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-endpoint-1")
    monkeypatch.setenv("PERSONAS_MODEL_TIMEOUT", "3")
    return url
