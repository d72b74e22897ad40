"""What every command shares: the Config resolved once by the root command."""

from __future__ import annotations

import click

from personas.kernel.config import Config

__all__ = ["config", "set_config"]


def set_config(ctx: click.Context, value: Config) -> None:
    ctx.obj = value


def config() -> Config:
    """The Config the root command resolved (or, outside a command, one read now)."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    if root is not None and isinstance(root.obj, Config):
        return root.obj
    return Config.from_env()
