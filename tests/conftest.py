"""Shared fixtures: a process environment without Klaviyo settings, for tests that need it."""

from __future__ import annotations

import os

import pytest

KLAVIYO_ENV = ("KLAVIYO_API_KEY", "KLAVIYO_BASE_URL", "KLAVIYO_PUBLIC_API_KEY")

# No test touches the OS keyring of the machine it runs on (a developer's Keychain): keyring's own
# switch, read by this process and inherited by every child. Tests of the keyring path register
# their own in-memory backend (tests/keyrings.py).
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No KLAVIYO_* variables, so a developer's shell cannot change what a test sees."""
    for name in KLAVIYO_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch
