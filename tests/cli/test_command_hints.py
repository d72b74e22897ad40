"""Every command the project tells a user to run exists as written.

Errors, notes and the README say what to run next (`personas auth login NAME --oauth`, `personas
runs --status failed`); a hint naming a command or an option that is not there sends a newcomer to a
second error. Each backticked ``personas ...`` in the source and the README is resolved against the
CLI itself: its subcommands in order, then each ``--option`` against that command's options.
Placeholders (``{name}``, ``NAME``, ``...``) stand for values and are not checked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main

from personas.cli import app

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*(p for d in ("personas", "graphs", "evals", "klaviyo_toolkit", "klaviyo_sandbox")
             for p in sorted((ROOT / d).rglob("*.py"))), ROOT / "README.md"]
HINT = re.compile(r"`(personas(?: [^`\n]+)?)`")


def _hints() -> list[tuple[str, str]]:
    found: dict[str, str] = {}
    for path in SOURCES:
        for match in HINT.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(match.group(1), str(path.relative_to(ROOT)))
    return sorted(found.items())


HINTS = _hints()


def _options(command: Any) -> set[str]:
    """Every option name of ``command``, its help option included."""
    names = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    return names | set(command.get_help_option_names(typer.Context(command)))


def _is_group(command: Any) -> bool:
    return hasattr(command, "get_command")


def test_the_sources_give_command_hints() -> None:
    """The scan finds the hints it is meant to check (a broken pattern would pass every case)."""
    commands = {hint.split()[1] for hint, _ in HINTS if len(hint.split()) > 1}
    assert {"auth", "runs", "eval", "chat", "sandbox", "audit"} <= commands, commands
    assert len(HINTS) >= 40, len(HINTS)


@pytest.mark.parametrize(("hint", "where"), HINTS, ids=[hint for hint, _ in HINTS])
def test_a_command_hint_names_a_command_and_options_that_exist(hint: str, where: str) -> None:
    command: Any = typer.main.get_command(app)
    words = hint.split()[1:]
    root_options = _options(command)
    while words and words[0] in root_options:  # `personas --debug chat ...`
        words.pop(0)
    while words and _is_group(command) and not words[0].startswith("-"):
        word = words[0]
        if "{" in word or word.isupper() or word == "...":
            break
        sub = command.get_command(typer.Context(command), word)
        if sub is None:
            break
        command, words = sub, words[1:]
    assert not _is_group(command) or not words or words[0].startswith("-") \
        or "{" in words[0] or words[0].isupper() or words[0] == "...", \
        f"{where}: `{hint}`: {words[0]!r} is not a command of `{command.name}`"
    known = _options(command) | root_options
    for word in words:
        option = word.split("=", 1)[0]
        if option.startswith("--") and "{" not in option:
            assert option in known, f"{where}: `{hint}`: {option} is not an option of `{command.name}`"
