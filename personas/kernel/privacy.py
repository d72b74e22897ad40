"""Secrets and personal data stay in: redaction at every exit, owner-only files.

Every secret the configuration holds is registered with the toolkit's one redaction function
(``klaviyo_toolkit.redact``), so it is masked wherever it could leave: checkpoints (a serializer
that masks them without changing a byte's position), errors kept in state, reports, cassettes,
the audit log and the terminal. Files that hold state or personal data are created owner-only
(0600) in an owner-only (0700) state folder.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from klaviyo_toolkit.redact import (
    SAID_PASSWORD,
    SECRET_PAIR,
    URL_PASSWORD,
    has_key_shape,
    is_secret_key,
    mask_registered,
    redact,
    redact_bytes,
    redact_text,
    register_secret,
)

from .config import Config

__all__ = ["RedactingSerde", "describe_error", "private_file", "register_secrets", "write_private_text"]


def register_secrets(config: Config) -> None:
    """Register every secret ``config`` holds (keys, client secret, vault key, webhook secret, and
    credentials written into a base URL) with the one redaction function."""
    for value in config.secrets():
        register_secret(value)


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` of an error, redacted and capped, for keeping in state or showing."""
    text = redact_text(f"{type(exc).__name__}: {exc}")
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: Every secret :func:`redact_text` masks by its shape or its key contains one of these, lower-cased.
_HINTS = (b"bearer", b"basic", b"passw", b"secret", b"api_key", b"api-key", b"apikey", b"api key", b"token",
          b"code_verifier", b"code-verifier", b"authorization", b"private_key", b"private-key", b"private key",
          b"cookie", b"pw", b"pass", b"credential")
#: What the hints must lead to for the state to need redacting: a ``Bearer``/``Basic`` credential, a
#: ``key=value`` pair, a password said in a sentence ("my password is ..."), or a msgpack string key
#: (fixstr or str8 header) whose name could name a secret (checked with :func:`is_secret_key`:
#: ``push-tokens``, a Klaviyo relationship, is not one).
_CONFIRM = re.compile(
    rb"(?i)(?<![A-Za-z0-9_])(?:bearer\s+[A-Za-z0-9\-._~+/]{8}|basic\s+[A-Za-z0-9+/]{16}"
    rb"|" + SECRET_PAIR.encode() + rb"[^\s\"'&,;}]{4}"
    rb"|" + SAID_PASSWORD.encode() + rb"\S{4})"
)
#: A password written into a URL (``scheme://user:password@host``), searched only where both parts occur.
_URL_PASSWORD = re.compile(URL_PASSWORD.encode())
_KEYS = re.compile(
    rb"(?:[\xa0-\xbf]|\xd9[\x00-\xff])([A-Za-z0-9_\-\[\]]*(?i:passw|secret|api[_\-]?key|authorization|token"
    rb"|code[_\-]verifier|private[_\-]key|cookie|pw|pass|credential)[A-Za-z0-9_\-\[\]]*)"
)


def _needs_redaction(data: bytes) -> bool:
    """Whether serialized state may hold a secret that only an object-level pass can mask: a cheap
    substring test first (most checkpoints hold none of the hints), then the precise shapes."""
    if b"://" in data and b"@" in data and _URL_PASSWORD.search(data):
        return True
    lowered = data.lower()
    for hint in _HINTS:
        at = lowered.find(hint)
        while at != -1:  # the expressions run on a window around each hint, never on the whole state
            if hint == b"token" and lowered[at + 5 : at + 6] == b"s":  # "push-tokens" (a relationship):
                at = lowered.find(hint, at + 1)  # neither a secret's key nor a token=... pair
                continue
            window = data[max(0, at - 48) : at + 160]
            if _CONFIRM.search(window) or any(
                is_secret_key(m.group(1).decode("ascii", "replace")) for m in _KEYS.finditer(window)
            ):
                return True
            at = lowered.find(hint, at + 1)
    return False


def redact_state(value: Any) -> Any:
    """A copy of checkpoint state with secrets masked, keeping every container's type: strings as
    :func:`redact_text` masks them (``Bearer ...``, ``password=...``, key shapes), values of keys
    named like secrets as :func:`redact` does, inside dicts, lists, tuples and pydantic models (a
    LangChain message's content and tool-call arguments). Other objects are kept as they are."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: redact({k: v})[k] if isinstance(k, str) and is_secret_key(k) and isinstance(v, str) and v
            else redact_state(v)
            for k, v in value.items()
        }
    if type(value) in (list, tuple):
        return type(value)(redact_state(v) for v in value)
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_copy(update={name: redact_state(getattr(value, name)) for name in type(value).model_fields})
    return value


class RedactingSerde:
    """A checkpoint serializer that keeps secrets out of what it writes.

    Registered secrets and key shapes are masked in the bytes, keeping every byte's position (``*``
    for each masked character) so the serialized form stays valid. When the bytes hint at other
    secrets (``Bearer``, ``password=``, a key named like a secret), the state is redacted as an
    object (:func:`redact_state`) and serialized again: a checkpoint never holds a credential,
    whatever a node put in its state (a form answer, a profile property).

    Scanning for hints and key shapes costs about 30 us per kB, and a run writes its whole state
    at every step although most of it has not changed since the last. So a checkpoint is checked
    channel value by channel value, and a value whose serialized form was already found clean
    (remembered by a digest of its bytes, never by object identity, so a value changed in place is
    checked again) is not scanned again; registered secrets are masked in the whole of every write,
    since they can be registered at any time.
    """

    #: Digests remembered at most (16 bytes each); the memory is emptied when it is full.
    MEMORY = 4096

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._clean: set[bytes] = set()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        kind, data = self.inner.dumps_typed(obj)
        if self._known_clean(obj, data):
            return kind, mask_registered(data)
        if _needs_redaction(data):
            kind, data = self.inner.dumps_typed(redact_state(obj))
        return kind, redact_bytes(data)

    def _known_clean(self, obj: Any, data: bytes) -> bool:
        """Whether ``data`` (``obj`` serialized) holds no hint of a secret and no key shape: checked
        per channel value for a checkpoint (its other fields, channel names included, as one part)."""
        values = obj.get("channel_values") if isinstance(obj, dict) else None
        if not isinstance(values, dict) or not values:
            return self._part_clean(data)
        # The rest with what LangGraph generates blanked (ids, times, version numbers): what is left
        # (channel and node names, fields a later LangGraph adds) is the same from step to step.
        versions, seen = obj.get("channel_versions"), obj.get("versions_seen")
        rest = {**obj, "id": None, "ts": None, "channel_values": dict.fromkeys(values)}
        if isinstance(versions, dict):
            rest["channel_versions"] = dict.fromkeys(versions)
        if isinstance(seen, dict):
            rest["versions_seen"] = {k: dict.fromkeys(v) if isinstance(v, dict) else v for k, v in seen.items()}
        parts = [rest, *values.values()]
        return all(self._part_clean(self.inner.dumps_typed(part)[1]) for part in parts)

    def _part_clean(self, data: bytes) -> bool:
        digest = hashlib.blake2b(data, digest_size=16).digest()
        if digest in self._clean:
            return True
        if has_key_shape(data) or _needs_redaction(data):
            return False
        if len(self._clean) >= self.MEMORY:
            self._clean.clear()
        self._clean.add(digest)
        return True

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        return self.inner.loads_typed(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def private_file(path: Path) -> Path:
    """``path`` created owner-only if missing (its folder too), tightened if it is looser."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path


def write_private_text(path: Path, text: str) -> Path:
    """Write ``text`` (redacted) to an owner-only file."""
    private_file(path)
    path.write_text(redact_text(text), encoding="utf-8")
    return path
