"""What every command shares: the Config the root command resolved, once per invocation.

The root callback reads the environment into a :class:`Config` and sets it here; commands read it
with :func:`config`. A context variable (not a module global) so that commands run in-process by
tests or in threads each see their own.
"""

from __future__ import annotations

from contextvars import ContextVar

from personas.kernel.config import Config

__all__ = ["config", "set_config"]

_CONFIG: ContextVar[Config | None] = ContextVar("personas_cli_config", default=None)


def set_config(value: Config) -> None:
    _CONFIG.set(value)


def config() -> Config:
    """The Config the root command resolved (or, outside a command, one read now)."""
    value = _CONFIG.get()
    return value if value is not None else Config.from_env()
