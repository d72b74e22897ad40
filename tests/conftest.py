"""Shared fixtures: a process environment without Klaviyo settings, for tests that need it."""

from __future__ import annotations

import os
from collections.abc import Iterator

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


@pytest.fixture(autouse=True, scope="module")
def _close_state_files() -> Iterator[None]:
    """After each test module, close the audit logs, checkpointers and vaults the process keeps open
    per state folder: tests make a folder each, and over a worker's share of the suite the open files
    passed 1,024, which select() (pexpect's terminal tests) cannot take."""
    yield
    from personas.runtime.audit import forget_audit_logs
    from personas.runtime.checkpoints import forget_checkpointers
    from personas.runtime.connections import forget_stores

    forget_audit_logs()
    forget_checkpointers()
    forget_stores()
