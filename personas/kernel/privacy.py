"""Secrets and personal data stay in: redaction at every exit, owner-only files.

Every secret the configuration holds is registered with the toolkit's one redaction function
(``klaviyo_toolkit.redact``), so it is masked wherever it could leave: checkpoints (a serializer
that masks them without changing a byte's position), errors kept in state, reports, cassettes,
the audit log and the terminal. Files that hold state or personal data are created owner-only
(0600) in an owner-only (0700) state folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from klaviyo_toolkit.redact import redact_bytes, redact_text, register_secret

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


class RedactingSerde:
    """A checkpoint serializer that masks registered secrets (and key shapes) in what it writes.

    Masking keeps every byte's position (``*`` for each masked character), so the serialized form
    stays valid; a checkpoint therefore never holds a raw key, whatever a node put in its state.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        kind, data = self.inner.dumps_typed(obj)
        return kind, redact_bytes(data)

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
