"""A damaged vault key (empty, cut short, overwritten with other bytes, not a file) beside a vault
that holds entries: one line that says to restore the key those entries were made with, never
"generate one" (a new key opens none of them, the audit log's key among them), and never a
UnicodeDecodeError. With no entries to strand, making a key is still the advice.

Real files: the vault's SQLite file, its key file, and ``personas auth status`` in a subprocess.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from klaviyo_toolkit.errors import ToolkitUsageError
from klaviyo_toolkit.vault import EnvKeyProvider, FileKeyProvider, Vault
from tests.warm_cli import run_personas

ROOT = Path(__file__).resolve().parents[1]
PK = "pk_" + "0f1e2d3c4b5a" * 3


def _cut(key: Path) -> None:
    key.write_bytes(key.read_bytes()[:20])


def _empty(key: Path) -> None:
    key.write_bytes(b"")


def _binary(key: Path) -> None:
    key.write_bytes(b"\x80\xffSQLite?" + os.urandom(40))


def _folder(key: Path) -> None:
    key.unlink()
    key.mkdir(mode=0o700)


DAMAGE = [_cut, _empty, _binary, _folder]


def _vault_with_entries(home: Path) -> Path:
    with Vault(home / "vault.sqlite", FileKeyProvider.in_home(home)) as vault:
        vault.put_api_key("acme", PK)
        vault.put_secret("audit:key", b"k" * 32)
    return home / "vault.key"


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_key_file_beside_entries_says_restore_it_not_generate_one(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    key = _vault_with_entries(tmp_path)
    good = key.read_bytes()
    damage(key)
    with pytest.raises(ToolkitUsageError) as caught:
        Vault(tmp_path / "vault.sqlite", FileKeyProvider.in_home(tmp_path))
    said = str(caught.value)
    assert str(key) in said and "holds 2 encrypted entries" in said and "restore that key" in said
    assert "Generate one" not in said and "generate_key" not in said
    if key.is_dir():
        key.rmdir()
    key.write_bytes(good)
    key.chmod(0o600)
    with Vault(tmp_path / "vault.sqlite", FileKeyProvider.in_home(tmp_path)) as vault:
        assert vault.get_api_key("acme").reveal() == PK, "the restored key opens everything"


def test_a_cut_environment_key_beside_entries_says_restore_it(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    with Vault(tmp_path / "vault.sqlite", EnvKeyProvider("K", {"K": key})) as vault:
        vault.put_api_key("acme", PK)
    with pytest.raises(ToolkitUsageError, match=r"Key 1 in K is not a Fernet key.*holds 1 encrypted entry.*restore"):
        Vault(tmp_path / "vault.sqlite", EnvKeyProvider("K", {"K": key[:20]}))


def test_a_damaged_key_file_of_an_empty_vault_still_says_how_to_make_one(tmp_path: Path) -> None:
    (tmp_path / "vault.key").write_bytes(b"\x80\x81")
    (tmp_path / "vault.key").chmod(0o600)
    with pytest.raises(ToolkitUsageError, match=r"is not a vault key file \(byte 0 is not ASCII\)\. Generate one"):
        Vault(tmp_path / "vault.sqlite", FileKeyProvider.in_home(tmp_path))


def test_the_cli_says_it_in_one_line_with_a_usage_exit_code(tmp_path: Path) -> None:
    _binary(_vault_with_entries(tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLAVIYO_", "PERSONAS_", "OPENAI_"))}
    env.update(PERSONAS_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"  # no OS keyring
    done = run_personas([sys.executable, "-m", "personas.cli", "auth", "status"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "restore that key" in lines[0] and "UnicodeDecodeError" not in lines[0], lines
