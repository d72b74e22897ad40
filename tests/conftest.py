"""Shared fixtures: a process environment without Klaviyo settings, for tests that need it."""

from __future__ import annotations

import pytest

KLAVIYO_ENV = ("KLAVIYO_API_KEY", "KLAVIYO_BASE_URL", "KLAVIYO_PUBLIC_API_KEY")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No KLAVIYO_* variables, so a developer's shell cannot change what a test sees."""
    for name in KLAVIYO_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch
