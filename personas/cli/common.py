"""What every command shares: the Config the root command resolved, once per invocation.

The root callback reads the environment into a :class:`Config` and sets it here; commands read it
with :func:`config`. A context variable (not a module global) so that commands run in-process by
tests or in threads each see their own.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import typer

from personas.kernel.config import Config

__all__ = ["HELP", "command_group", "config", "indented", "readable_metavars", "set_config"]

#: Every command takes -h as well as --help.
HELP = {"help_option_names": ["-h", "--help"]}


def command_group(help: str, **options: Any) -> typer.Typer:
    """A command group with the house conventions: plain help (flags show no type, values show what
    they take), -h and --help, no shell-completion options."""
    options.setdefault("context_settings", HELP)
    return typer.Typer(help=help, rich_markup_mode=None, add_completion=False, **options)


_CONFIG: ContextVar[Config | None] = ContextVar("personas_cli_config", default=None)


def set_config(value: Config) -> None:
    _CONFIG.set(value)


def config() -> Config:
    """The Config the root command resolved (or, outside a command, one read now)."""
    value = _CONFIG.get()
    return value if value is not None else Config.from_env()


#: What an option's value is, in the help (``--input FILE|JSON``); others show their name in capitals.
METAVARS = {
    "input": "FILE|JSON",
    "thread": "THREAD",
    "resume": "ANSWER",
    "replay": "CASSETTE",
    "sandbox_state": "FILE",
    "state": "FILE",
    "connection": "NAME",
    "port": "PORT",
    "host": "HOST",
    "seed": "N",
    "limit": "N",
    "since": "WHEN",
    "until": "WHEN",
    "persona": "PERSONA",
    "tool": "TOOL",
    "status": "STATUS",
    "user": "USER",
    "report": "DIR",
    "case": "CASE",
    "label": "LABEL",
    "epochs": "N",
    "scopes": "SCOPES",
    "tag": "TAG",
    "graph": "PERSONA",
    "names": "TOOL...",
    "suites": "SUITE...",
    "expected_head": "HASH",
}


def readable_metavars(command: Any) -> None:
    """Give every option and argument that takes a value a readable placeholder, the whole tree down."""
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            continue
        if param.metavar is None and param.name:
            param.metavar = METAVARS.get(param.name, param.name.upper())
    for sub in (getattr(command, "commands", None) or {}).values():
        readable_metavars(sub)


def indented(console: Any, text: str, style: str = "", by: int = 4) -> None:
    """Print ``text`` (plain, not markup) indented, its wrapped lines too, breaking only at spaces."""
    import textwrap

    width = max(40, console.size.width - 1)
    pad = " " * by
    wrapped = textwrap.fill(text, width, initial_indent=pad, subsequent_indent=pad, break_long_words=False,
                            break_on_hyphens=False)
    console.print(wrapped, style=style or None, markup=False, highlight=False, soft_wrap=True)
