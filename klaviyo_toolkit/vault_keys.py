"""Where the vault's encryption keys live: the OS keyring, an environment variable, or a 0600 file.

The vault encrypts with Fernet keys, newest first (the first encrypts, every one decrypts, so a
key can be rotated). :func:`default_key_provider` picks, in this order:

1. the **OS keyring** (the ``keyring`` library: macOS Keychain, Windows Credential Locker, Secret
   Service...) when a usable backend is configured; on first use it adopts the keys of the
   fallbacks below (so a vault made before a keyring existed stays readable) or makes a new key;
2. ``PERSONAS_VAULT_KEY=<newest>,<older>`` (Fernet keys, comma-separated, newest first);
3. ``<folder>/vault.key``, created with mode 0600; a file others can read is refused.

"Usable" means keyring's configured backend is a real one: not its ``fail`` backend (what it
falls back to with no OS keyring, as in containers and CI), not its ``null`` backend, and with a
positive priority. To keep a desktop's keyring out of it, set keyring's own switch
``PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring``.

Example::

    provider = default_key_provider(home)      # keyring, else the environment, else home/vault.key
    provider.load()                            # [newest, ...older]
"""

from __future__ import annotations

import functools
import os
import sqlite3
import stat
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ._files import exclusive_lock
from .errors import ToolkitUsageError

__all__ = [
    "refuse_a_new_key_for_old_entries",
    "DamagedKeyError",
    "ENV_VAULT_KEY",
    "KEYRING_SERVICE",
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyProvider",
    "KeyringKeyProvider",
    "default_key_provider",
    "key_source",
    "none_possible",
    "usable_keyring",
    "where_the_key_is",
]

ENV_VAULT_KEY = "PERSONAS_VAULT_KEY"
KEYRING_SERVICE = "klaviyo-personas vault"
GENERATE_HINT = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


@runtime_checkable
class KeyProvider(Protocol):
    """Where the vault's Fernet keys live (newest first)."""

    def load(self) -> list[bytes]:
        """The keys, newest first; the first encrypts, all of them decrypt."""

    def store(self, keys: Sequence[bytes]) -> None:
        """Persist a new key list (newest first); called when the vault key is rotated."""


class DamagedKeyError(ToolkitUsageError):
    """A key source holds no key or a malformed one. ``problem`` says which (never the key); the message
    adds how to make a key, which :meth:`for_vault` replaces when a vault's entries need the lost one."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"{problem}. Generate one with: {GENERATE_HINT}")

    def for_vault(self, path: Path) -> ToolkitUsageError:
        """This error as the vault at ``path`` should say it: a new key would open none of its entries."""
        entries = _stored_entries(path)
        if not entries:
            return self
        return ToolkitUsageError(
            f"{self.problem}, and the vault {path} holds {entries} encrypted entr{'y' if entries == 1 else 'ies'} "
            "made with the key that belongs there: restore that key (from a backup, or from where the vault was "
            "copied from); a new key would open none of them. If that key is lost, no one can read the vault's "
            "secrets: move the vault aside and log in again"
        )


def check_keys(keys: Sequence[bytes], where: str) -> list[bytes]:
    """``keys`` if every one is a Fernet key, else a :class:`DamagedKeyError` naming ``where`` (never the key)."""
    if not keys:
        raise DamagedKeyError(f"{where} holds no vault key")
    for number, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise DamagedKeyError(
                f"Key {number} in {where} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return list(keys)


def _split(raw: str) -> list[bytes]:
    return [part.strip().encode() for part in raw.replace("\n", ",").split(",") if part.strip()]


class EnvKeyProvider:
    """Keys from an environment variable (``PERSONAS_VAULT_KEY``): comma-separated, newest first.

    The vault cannot write the environment, so rotating means: put a new key first in the variable,
    re-encrypt (:meth:`Vault.reencrypt`), then drop the old key from the variable.
    """

    def __init__(self, var: str = ENV_VAULT_KEY, environ: Mapping[str, str] | None = None) -> None:
        self.var = var
        self._environ = os.environ if environ is None else environ

    def load(self) -> list[bytes]:
        return check_keys(_split(self._environ.get(self.var, "")), self.var)

    def store(self, keys: Sequence[bytes]) -> None:
        if list(keys) == self.load():
            return
        raise ToolkitUsageError(
            f"The vault key comes from {self.var}, which cannot be changed from here. To rotate: generate a key "
            f"({GENERATE_HINT}), put it first in {self.var} (comma-separated, newest first), re-encrypt the vault, "
            f"then remove the old key from {self.var}."
        )

    def __repr__(self) -> str:
        return f"EnvKeyProvider({self.var!r})"


class FileKeyProvider:
    """Keys in a file only its owner can read (mode 0600), one per line, newest first; made on first use."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()

    @classmethod
    def in_home(cls, home: str | Path) -> FileKeyProvider:
        """``<home>/vault.key``."""
        return cls(Path(home).expanduser() / "vault.key")

    def exists(self) -> bool:
        return self.path.exists()

    def would_create(self) -> bool:
        """Whether :meth:`load` would make a new key (there is no key file yet)."""
        return not self.path.exists()

    def load(self) -> list[bytes]:
        """The keys, a new one made on first use (processes sharing the file all read the one made
        first, whole: it is made and read under a lock)."""
        with self._lock, exclusive_lock(self.path.with_name(f".{self.path.name}.lock")):
            if not self.path.exists():
                self._create()
            self._check_mode()
            try:
                lines = self.path.read_text(encoding="ascii").split()
            except UnicodeDecodeError as exc:  # a damaged or overwritten file: no key has such bytes
                raise DamagedKeyError(f"{self.path} is not a vault key file (byte {exc.start} is not ASCII)") from None
            return check_keys([line.encode() for line in lines], str(self.path))

    def store(self, keys: Sequence[bytes]) -> None:
        keys = check_keys(keys, "the new key list")
        with self._lock, exclusive_lock(self.path.with_name(f".{self.path.name}.lock")):
            self._write(keys)

    def remove(self) -> None:
        """Delete the file (after its keys moved to the keyring)."""
        with self._lock:
            self.path.unlink(missing_ok=True)

    def _check_mode(self) -> None:
        if not self.path.is_file():
            raise DamagedKeyError(f"{self.path} is not a file (a vault key file holds one key a line)")
        if os.name != "posix":
            return
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            raise ToolkitUsageError(
                f"The vault key file {self.path} can be read by others (mode {mode:o}); run `chmod 600 {self.path}`."
            )

    def _create(self) -> None:
        """A new key file, written beside and renamed into place (callers hold the file lock)."""
        self._write([Fernet.generate_key()])

    def _write(self, keys: Sequence[bytes]) -> None:
        """The file replaced whole: written beside (owner-only, fsynced), then renamed into place."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # a name of this writer's own: a shared one lets two processes rename each other's half-written file
        target = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write("".join(key.decode() + "\n" for key in keys))
            out.flush()
            os.fsync(out.fileno())
        os.replace(target, self.path)

    def __repr__(self) -> str:
        return f"FileKeyProvider({str(self.path)!r})"


def usable_keyring(backend: Any = None) -> Any:
    """The keyring backend to use (``backend``, else keyring's configured one), or None when none is usable.

    Not usable: keyring's ``fail`` backend (no OS keyring found), its ``null`` backend (turned off
    with ``PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring``), or a priority of 0 or less.
    """
    if backend is None and none_possible():
        return None
    try:
        import keyring
        from keyring.backends import fail, null
    except ImportError:  # pragma: no cover - keyring is a dependency
        return None
    kr = backend if backend is not None else keyring.get_keyring()
    if isinstance(kr, (fail.Keyring, null.Keyring)):
        return None
    try:
        priority = float(kr.priority)
    except Exception:  # a backend that cannot tell is not one to trust with the key
        return None
    return kr if priority > 0 else None


#: keyring's own backends that are never usable (what ``PYTHON_KEYRING_BACKEND`` may name to turn it off).
_OFF_BACKENDS = frozenset({"keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"})


def none_possible(environ: Mapping[str, str] | None = None) -> bool:
    """True when keyring is certain to find no usable backend, told without importing it.

    Importing keyring and letting it probe its backends costs 60 to 150 ms a process (its macOS
    backend runs ``find_library`` even on Linux), paid by every command that opens the vault. The
    answer is known beforehand when ``PYTHON_KEYRING_BACKEND`` names its ``fail`` or ``null``
    backend, and on Linux with no D-Bus session (no bus address, no display, no bus socket), no
    ``keyringrc.cfg`` and no backend but keyring's own installed: every one of those needs D-Bus.
    Anything else (macOS, Windows, a desktop session, a plugin such as keyrings.alt, or keyring
    already imported, since the program may have chosen a backend with ``keyring.set_keyring``) asks
    keyring.
    """
    if "keyring.core" in sys.modules:
        return False
    env = os.environ if environ is None else environ
    named = env.get("PYTHON_KEYRING_BACKEND", "").strip()
    if named:
        return named in _OFF_BACKENDS
    if not sys.platform.startswith("linux"):
        return False
    if any(env.get(name) for name in ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY")):
        return False
    try:
        runtime = [Path(env["XDG_RUNTIME_DIR"])] if env.get("XDG_RUNTIME_DIR") else []
        config = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        if any((folder / "bus").exists() for folder in [*runtime, Path(f"/run/user/{os.getuid()}")]):
            return False
        if (config / "python_keyring" / "keyringrc.cfg").exists():
            return False
    except (OSError, RuntimeError, KeyError):  # no home to look in: let keyring decide
        return False
    return _only_keyrings_own_backends()


@functools.cache
def _only_keyrings_own_backends() -> bool:
    """No keyring backend plugin is installed besides keyring's own: read once a process (the
    installed packages' entry points, 3 to 30 ms), as keyring itself loads its plugins once."""
    from importlib.metadata import entry_points

    return all(ep.value.startswith("keyring.backends.") for ep in entry_points(group="keyring.backends"))


class KeyringKeyProvider:
    """Keys in the OS keyring, under ``service`` / ``username`` (one entry: keys comma-separated, newest first).

    Args:
        username: tells vaults apart: the caller passes the vault's folder, so every state
            folder has its own key.
        backend: a keyring backend (default: keyring's configured one; tests pass their own).
        adopt: providers whose keys are taken over when the keyring holds none yet (the
            environment's, or an existing key file, which is then deleted); without any, a new
            key is made.
    """

    def __init__(
        self,
        username: str,
        *,
        service: str = KEYRING_SERVICE,
        backend: Any = None,
        adopt: Sequence[EnvKeyProvider | FileKeyProvider] = (),
    ) -> None:
        self.service = service
        self.username = username
        self._backend = backend
        self._adopt = tuple(adopt)
        self._lock = threading.Lock()

    @property
    def backend(self) -> Any:
        import keyring

        return self._backend if self._backend is not None else keyring.get_keyring()

    def would_create(self) -> bool:
        """Whether :meth:`load` would make a new key: the keyring holds none and nothing can be adopted."""
        with self._lock:
            if self._get():
                return False
        return all(
            (isinstance(s, FileKeyProvider) and not s.exists())
            or (isinstance(s, EnvKeyProvider) and not _split(s._environ.get(s.var, "")))
            for s in self._adopt
        )

    def load(self) -> list[bytes]:
        """The keys, made (or adopted) on first use. The keyring cannot "set unless set", so when
        ``username`` is a folder's full path (the vault's) the check and the first set happen under a lock there:
        processes started together all get the key the first one kept."""
        folder = Path(self.username)
        guard = exclusive_lock(folder / ".vault-keyring.lock") if folder.is_absolute() else nullcontext()
        with self._lock, guard:
            raw = self._get()
            if raw:
                return check_keys(_split(raw), self._where)
            keys, source = self._initial()
            self._set(keys)
            if isinstance(source, FileKeyProvider) and _split(self._get() or "") == keys:
                source.remove()  # the keyring holds them now (read back to be sure): no key left in a file
            return keys

    def store(self, keys: Sequence[bytes]) -> None:
        keys = check_keys(keys, "the new key list")
        with self._lock:
            self._set(keys)

    def _initial(self) -> tuple[list[bytes], EnvKeyProvider | FileKeyProvider | None]:
        for source in self._adopt:
            if isinstance(source, FileKeyProvider) and not source.exists():
                continue
            if isinstance(source, EnvKeyProvider) and not _split(source._environ.get(source.var, "")):
                continue
            return source.load(), source
        return [Fernet.generate_key()], None

    @property
    def _where(self) -> str:
        return f"the OS keyring ({self.service!r}, {self.username!r})"

    def _get(self) -> str | None:
        from keyring.errors import KeyringError

        try:
            value: str | None = self.backend.get_password(self.service, self.username)
        except KeyringError as exc:
            raise self._unreadable(exc) from None
        return value

    def _set(self, keys: Sequence[bytes]) -> None:
        from keyring.errors import KeyringError

        try:
            self.backend.set_password(self.service, self.username, ",".join(k.decode() for k in keys))
        except KeyringError as exc:
            raise self._unreadable(exc) from None

    def _unreadable(self, exc: Exception) -> ToolkitUsageError:
        return ToolkitUsageError(
            f"{self._where} cannot be used ({type(exc).__name__}); unlock it, or turn it off with "
            f"PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring and set {ENV_VAULT_KEY}."
        )

    def __repr__(self) -> str:
        return f"KeyringKeyProvider({self.service!r}, {self.username!r})"


def default_key_provider(
    home: str | Path, environ: Mapping[str, str] | None = None, *, keyring_backend: Any = None
) -> KeyProvider:
    """The OS keyring when usable, else ``PERSONAS_VAULT_KEY`` when set, else ``vault.key`` in ``home``.

    Args:
        home: the folder of the vault (the caller's state folder); names the keyring entry and holds
            the key file.
        environ: where to read ``PERSONAS_VAULT_KEY`` (default ``os.environ``).
        keyring_backend: a keyring backend to use instead of keyring's configured one.
    """
    env = os.environ if environ is None else environ
    folder = Path(home).expanduser()
    from_env = EnvKeyProvider(ENV_VAULT_KEY, env)
    from_file = FileKeyProvider.in_home(folder)
    backend = usable_keyring(keyring_backend)
    if backend is not None:
        return KeyringKeyProvider(str(folder.resolve()), backend=backend, adopt=(from_env, from_file))
    if env.get(ENV_VAULT_KEY, "").strip():
        return from_env
    return from_file


def _stored_entries(path: Path) -> int:
    """How many encrypted rows the vault file at ``path`` holds (0 when there is none to read)."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error:
        return 0
    total = 0
    try:
        for table in ("credentials", "secrets"):
            try:
                total += int(db.execute(f"SELECT count(*) FROM {table} WHERE length(secret) > 0").fetchone()[0])
            except sqlite3.DatabaseError:  # no such table yet, or a damaged file: reported when it is opened
                continue
    finally:
        db.close()
    return total


def refuse_a_new_key_for_old_entries(path: Path, provider: KeyProvider) -> None:
    """Refuse to make a new key file beside a vault that already holds entries.

    The entries were encrypted with a key that is not here (``PERSONAS_VAULT_KEY`` unset in this
    shell, the keyring unavailable, the file deleted): a new key would read none of them and would
    encrypt what is stored next under it, leaving the vault readable by neither key."""
    would_create = getattr(provider, "would_create", None)
    if not callable(would_create) or not would_create():
        return
    entries = _stored_entries(path)
    if entries:
        where = (
            f"{provider.path} does not exist" if isinstance(provider, FileKeyProvider) else f"{provider!r} holds no key"
        )
        raise ToolkitUsageError(
            f"The vault {path} holds {entries} encrypted entr{'y' if entries == 1 else 'ies'}, but its key is not "
            f"here: {ENV_VAULT_KEY} is not set and {where}. Set {ENV_VAULT_KEY} to the key the vault was made "
            f"with (or restore the key file){_moved_hint(provider)}; no new key was made. If that key is lost, "
            "no one can read the vault's secrets: move the vault aside and log in again."
        )


def _moved_hint(provider: KeyProvider) -> str:
    """Where the key of a vault moved or copied here most likely still is (a clause, never a key).

    A keyring entry is named after the full path of the vault's folder, so a folder that was moved,
    restored to another path or copied from another machine finds no key under its new path, though
    the key is still in the keyring under the old one: the person never saw the key, so "set
    PERSONAS_VAULT_KEY to it" alone leaves them no way to find it."""
    if isinstance(provider, KeyringKeyProvider):
        return (
            f": the OS keyring keeps a vault's key under the full path of its folder, so if this folder was moved "
            f"or copied from another path or machine, read the key there with `keyring get '{provider.service}' "
            f"OLD_FOLDER` and set {ENV_VAULT_KEY} to it, or store it under this folder with "
            f"`keyring set '{provider.service}' '{provider.username}'`"
        )
    if isinstance(provider, FileKeyProvider):
        return f": if this folder was copied from another, copy its {provider.path.name} here too (mode 0600)"
    return ""


def key_source(provider: KeyProvider) -> str:
    """Where ``provider``'s keys come from, for a message: the variable, the file, the keyring."""
    if isinstance(provider, EnvKeyProvider):
        return provider.var
    if isinstance(provider, FileKeyProvider):
        return str(provider.path)
    return "the OS keyring" if isinstance(provider, KeyringKeyProvider) else repr(provider)


def where_the_key_is(provider: KeyProvider, folder: Path, tokens: Sequence[bytes]) -> str:
    """How to reach the key that opens ``tokens`` (a vault's ciphertexts ``provider``'s keys cannot
    open): one clause, never a key.

    The other places a key may be are tried: the vault's ``vault.key`` when the key came from
    elsewhere, ``PERSONAS_VAULT_KEY`` when the keyring's key came first. When one of them opens every
    token, the clause says how to use it; else, to use the key the vault was written with.
    """
    opens = functools.partial(_all_open, tokens=tokens)
    file = FileKeyProvider.in_home(folder)
    env = next((s for s in getattr(provider, "_adopt", ()) if isinstance(s, EnvKeyProvider)), None)
    first = "the OS keyring's key is used first" if isinstance(provider, KeyringKeyProvider) else ""
    if not isinstance(provider, FileKeyProvider) and file.exists() and _opened_by(file, opens):
        if isinstance(provider, EnvKeyProvider):
            return f"the key in {file.path} opens it: unset {ENV_VAULT_KEY} to use that file"
        return f"the key in {file.path} opens it, but {first}: set the keyring entry to that key"
    if env is not None and _split(env._environ.get(env.var, "")) and _opened_by(env, opens):
        return (
            f"the key in {ENV_VAULT_KEY} opens it, but {first}: set the keyring entry to that key, or turn the "
            "keyring off with PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring"
        )
    if isinstance(provider, KeyringKeyProvider):
        return f"set the OS keyring's entry ({provider.service!r}) to the key the vault was written with"
    if isinstance(provider, FileKeyProvider):
        return f"{provider.path} does not open it: set {ENV_VAULT_KEY} to the key the vault was written with"
    return f"set {ENV_VAULT_KEY} to the key the vault was written with"


def _opened_by(provider: EnvKeyProvider | FileKeyProvider, opens: Callable[[Sequence[bytes]], bool]) -> bool:
    try:
        return opens(provider.load())
    except ToolkitUsageError:  # not a key, or a key file others can read: not one to point at
        return False


def _all_open(keys: Sequence[bytes], tokens: Sequence[bytes]) -> bool:
    fernet = MultiFernet([Fernet(key) for key in keys])
    try:
        for token in tokens:
            fernet.decrypt(token)
    except InvalidToken:
        return False
    return True
