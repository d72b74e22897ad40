"""Keys made on first use are made once, however many processes start together on a fresh folder.

``personas worker`` started four times on a fresh machine: each process reads (or makes) the vault
key and the audit key. Made without a lock, each could keep its own, and a worker's audit rows then
failed with "the PostgreSQL audit log was made with another audit key" (found by
``benchmarks/webhook_throughput.py``: 38 of 40 runs failed in one run of four workers). Each test
starts real processes that wait on one signal, then asks each which key it ended with.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 6

HARNESS = """
import os, sys, time
from pathlib import Path
folder, me = Path(sys.argv[1]), sys.argv[2]
{setup}
(folder / f"ready-{{me}}").touch()
while not (folder / "go").exists():
    time.sleep(0.0005)
{take}
print(key.hex())
"""


def race(tmp_path: Path, setup: str, take: str, **extra_env: str) -> list[str]:
    """The key each of ``PROCESSES`` processes ends with, all let go at the same moment."""
    script = tmp_path / "race.py"
    script.write_text(HARNESS.format(setup=textwrap.dedent(setup), take=textwrap.dedent(take)))
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "PERSONAS_HOME": str(home), "PYTHONPATH": str(ROOT),
           "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring", **extra_env}
    env.pop("PERSONAS_VAULT_KEY", None)
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), str(i)], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(PROCESSES)]
    deadline = time.monotonic() + 60
    while sum(1 for p in tmp_path.glob("ready-*")) < PROCESSES:
        gone = [p for p in procs if p.poll() is not None]  # a child that failed in its set-up never gets ready
        if gone or time.monotonic() > deadline:
            (tmp_path / "go").touch()
            raise AssertionError(f"{len(gone)} of {PROCESSES} racers stopped before the start: "
                                 + " | ".join(p.communicate()[1][-2000:] for p in gone))
        time.sleep(0.01)
    (tmp_path / "go").touch()
    keys = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        keys.append(out.strip())
    return keys


def test_workers_started_together_keep_one_audit_key(tmp_path: Path) -> None:
    """The runtime's own anchor (the audit key in the vault, the vault key in a file)."""
    keys = race(tmp_path, """
        from personas.kernel.config import Config
        from personas.runtime.context import audit_anchor
        anchor = audit_anchor(Config.from_env())
    """, "key = anchor.key()")
    assert len(set(keys)) == 1, keys


def test_processes_started_together_keep_one_vault_key(tmp_path: Path) -> None:
    keys = race(tmp_path, """
        from klaviyo_toolkit.vault_keys import FileKeyProvider
        provider = FileKeyProvider(folder / "home" / "vault.key")
    """, "key = b''.join(provider.load())")
    assert len(set(keys)) == 1, keys
    assert len(keys[0]) > 0


def test_processes_started_together_keep_one_keyring_key(tmp_path: Path) -> None:
    """The OS keyring (here one shared by processes through a file) has no "set unless set"."""
    keys = race(tmp_path, """
        from klaviyo_toolkit.vault_keys import KeyringKeyProvider, default_key_provider
        provider = default_key_provider(folder / "home")
        assert isinstance(provider, KeyringKeyProvider), provider
    """, "key = b''.join(provider.load())",
        PYTHON_KEYRING_BACKEND="tests.keyrings.FileKeyring", TEST_KEYRING_FILE=str(tmp_path / "keyring.json"))
    assert len(set(keys)) == 1, keys


def test_processes_started_together_keep_one_file_anchor_key(tmp_path: Path) -> None:
    keys = race(tmp_path, """
        from klaviyo_toolkit.audit_anchor import FileAnchor
        anchor = FileAnchor(folder / "home" / "keys")
    """, "key = anchor.key()")
    assert len(set(keys)) == 1, keys


@pytest.mark.parametrize("adopting", [False, True])
def test_the_vault_keeps_the_first_secret_given_under_a_name(tmp_path: Path, adopting: bool) -> None:
    """``put_secret_once`` and the anchor's adoption of an older file key, in one process."""
    from klaviyo_toolkit.audit_anchor import FileAnchor, VaultAnchor
    from klaviyo_toolkit.vault import Vault
    from klaviyo_toolkit.vault_keys import FileKeyProvider

    vault = Vault(tmp_path / "vault.sqlite", key_provider=FileKeyProvider(tmp_path / "vault.key"))
    assert vault.put_secret_once("x", b"first") == b"first"
    assert vault.put_secret_once("x", b"second") == b"first"
    assert vault.get_secret("x") == b"first"
    old = FileAnchor(tmp_path / "keys")
    if adopting:
        old.key()
    anchor = VaultAnchor(vault, adopt=old)
    key = anchor.key()
    assert VaultAnchor(vault, adopt=FileAnchor(tmp_path / "keys")).key() == key
    if adopting:
        assert key == old.key() and not old.key_path.exists(), "the file key moved into the vault"


def test_a_key_is_still_read_where_no_lock_file_can_be_made(tmp_path: Path) -> None:
    """A key in a folder where the lock file cannot be made (mounted read-only; here the lock's
    name is taken by a folder, which root cannot open for writing either) is read as before."""
    from klaviyo_toolkit.vault_keys import FileKeyProvider

    made = FileKeyProvider(tmp_path / "vault.key").load()
    (tmp_path / ".vault.key.lock").unlink()
    (tmp_path / ".vault.key.lock").mkdir()
    assert FileKeyProvider(tmp_path / "vault.key").load() == made
