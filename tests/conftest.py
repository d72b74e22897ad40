"""Shared fixtures: a process environment without Klaviyo settings, and a count of checkpoint reads;
and the order modules run in (the longest first, ``tests/weights.json``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

KLAVIYO_ENV = ("KLAVIYO_API_KEY", "KLAVIYO_BASE_URL", "KLAVIYO_PUBLIC_API_KEY")

# No test touches the OS keyring of the machine it runs on (a developer's Keychain): keyring's own
# switch, read by this process and inherited by every child. Tests of the keyring path register
# their own in-memory backend (tests/keyrings.py).
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"


WEIGHTS = Path(__file__).with_name("weights.json")


def pytest_configure(config: pytest.Config) -> None:
    """The garbage collector tuned as the ``personas`` command tunes it (``personas.cli.fewer_collections``):
    tests that run a command in-process would otherwise change it part-way through a worker's run."""
    from personas.cli import fewer_collections

    fewer_collections()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest modules first (seconds each took, ``tests/weights.json``), the rest after them in
    their own order; tests within a module keep theirs. Workers take whole modules in this order
    (``python3 dev.py test``: ``--dist loadscope --no-loadscope-reorder``), so a long module never
    starts last and runs on alone while the other workers wait. A missing or unreadable file leaves
    the order as collected."""
    try:
        weights: dict[str, float] = json.loads(WEIGHTS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(weights, dict):
        return
    root = config.rootpath

    def weight(item: pytest.Item) -> float:
        try:
            module = item.path.relative_to(root).as_posix()
        except ValueError:
            return 0.0
        value = weights.get(module, 0.0)
        return float(value) if isinstance(value, (int, float)) else 0.0

    items.sort(key=lambda item: -weight(item))  # stable: the same weight keeps the collected order


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


@pytest.fixture
def reads_of(monkeypatch: pytest.MonkeyPatch) -> Callable[[type], list[Any]]:
    """``reads_of(SaverClass)``: the configs of every ``get_tuple`` of that LangGraph saver class,
    called through (a count of the reads that reach its database, not a stand-in for it)."""

    def counting(cls: type) -> list[Any]:
        reads: list[Any] = []
        below = cls.get_tuple  # type: ignore[attr-defined]

        def reading(self: Any, config: Any) -> Any:
            reads.append(config)
            return below(self, config)

        monkeypatch.setattr(cls, "get_tuple", reading)
        return reads

    return counting
