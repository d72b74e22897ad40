"""Shared fixtures: a process environment without Klaviyo settings, and a count of checkpoint reads;
and the order modules are handed to pytest-xdist's workers in (the longest first)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

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


#: The modules that take longest (``pytest --durations``, 2026-12-07: the README's commands 185 s, the
#: others 45 to 100 s), handed to the workers first. ``dev.py test`` runs each module whole on one
#: worker (``--dist loadscope``) in collection order, where ``tests/test_readme.py`` came 203rd of 215:
#: it began as the others ran out of work and ran alone for its last two minutes. Only the order
#: changes: every test still runs, and each module's own tests keep theirs.
LONGEST_FIRST = (
    "tests/test_readme.py",
    "tests/cli/test_state_files.py",
    "tests/cli/test_auth.py",
    "tests/service/test_local_processes.py",
    "tests/cli/test_commands.py",
    "tests/evals/test_recorded_sets.py",
    "tests/cli/test_secrets.py",
    "tests/cli/test_demo.py",
    "tests/cli/test_one_run_per_thread.py",
    "tests/evals/test_mutations.py",
    "tests/cli/test_errors.py",
    "tests/cli/test_chat_pty.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest modules first (``LONGEST_FIRST``); a stable sort, so all else keeps its order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    root = config.rootpath
    items.sort(key=lambda item: rank.get(item.path.relative_to(root).as_posix(), len(rank)))
