"""Vault keys rotated by several processes at once (``personas auth rotate-key --retire-old`` run twice,
a cron job and a person): every rotation succeeds and every secret stays readable.

Unserialized, one process could store its key list over another's between reading and writing it,
or retire the key the other had just re-encrypted every row under: the vault then held no key for
its rows (all 20 credentials and the audit key lost in a probe); and two writers of the key file
shared one temporary name, so one renamed the other's half-written (empty) file into place. Real
processes, a real vault file and key file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from klaviyo_toolkit.vault import FileKeyProvider, Vault

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 4
ROTATIONS = 6
PK = "pk_" + "a1b2c3" * 5

ROTATOR = """
import sys, time
from pathlib import Path
from klaviyo_toolkit.vault import FileKeyProvider, Vault
home, me = Path(sys.argv[1]), sys.argv[2]
vault = Vault(home / "vault.sqlite", FileKeyProvider.in_home(home))
(home / f"ready-{me}").touch()
while not (home / "go").exists():
    time.sleep(0.0005)
for turn in range(int(sys.argv[3])):
    vault.rotate_key(drop_old_keys=turn % 2 == 1)
vault.close()
"""


def test_processes_rotating_at_once_leave_every_secret_readable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Vault(home / "vault.sqlite", FileKeyProvider.in_home(home)) as vault:
        for i in range(10):
            vault.put_api_key(f"c{i}", PK)
        vault.put_secret("audit:key", b"k" * 32)
    script = tmp_path / "rotate.py"
    script.write_text(ROTATOR)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    argv = [sys.executable, str(script), str(home)]
    procs = [subprocess.Popen([*argv, str(i), str(ROTATIONS)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(PROCESSES)]  # fmt: skip
    deadline = time.monotonic() + 60
    while len(list(home.glob("ready-*"))) < PROCESSES and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), "a rotator stopped before the start"
        time.sleep(0.01)
    (home / "go").touch()
    failures = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            failures.append(err.strip().splitlines()[-1])
    assert not failures, failures
    with Vault(home / "vault.sqlite", FileKeyProvider.in_home(home)) as vault:
        assert vault.unreadable() == [], "rows re-encrypted under a key that was then dropped"
        assert [vault.get_api_key(f"c{i}").reveal() for i in range(10)] == [PK] * 10
        assert vault.get_secret("audit:key") == b"k" * 32
    assert not list(home.glob("*.tmp")), "no half-written key file left behind"
