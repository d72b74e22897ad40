"""What every command shares: the Config the root command resolved, once per invocation.

The root callback reads the environment into a :class:`Config` and sets it here; commands read it
with :func:`config`. A context variable (not a module global) so that commands run in-process by
tests or in threads each see their own.
"""

from __future__ import annotations

import contextlib
import math
import re
import unicodedata
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import typer

from personas.kernel.config import Config

__all__ = [
    "HELP", "command_group", "config", "config_scope", "file_target", "indented", "readable_metavars", "refuse_blank",
    "set_config", "shown", "visible", "visible_data",
]

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


@contextlib.contextmanager
def config_scope() -> Iterator[None]:
    """The Config the root command resolves lives for that command only: a caller that runs ``main``
    in its own process (a script, a test) and then a command's code directly sees the environment's
    Config again, not the last command's (a later ``runs resume`` looked runs up in another home)."""
    token = _CONFIG.set(None)
    try:
        yield
    finally:
        _CONFIG.reset(token)


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


#: Options that refuse an empty value themselves, with words of their own (``auth login --scopes ''``).
_OWN_BLANK_CHECK = frozenset({"scopes"})


def refuse_blank(command: Any) -> None:
    """Make every option and argument that takes text, the whole tree down, refuse an empty or blank
    value (``--replay ""``, ``--thread "$UNSET"``) with a usage error naming it and what to give.

    Left to the commands, ``""`` is falsy and read as "not given": ``chat --replay ""`` went to Klaviyo
    with the live model, ``run --thread "" --retry`` said --thread was missing, ``auth login ""`` stored
    the default connection. No text option means anything when empty, so this is done once, here,
    before any command body runs (so nothing has started when it is refused)."""
    for param in getattr(command, "params", []):
        descriptor = getattr(param, "type_descriptor", None)
        if getattr(param, "is_flag", False) or param.name in _OWN_BLANK_CHECK or descriptor is None:
            continue
        if _text_param(descriptor) and not getattr(param.callback, "refuses_blank", False):
            param.callback = _blank_refused(param.callback)
    for sub in (getattr(command, "commands", None) or {}).values():
        refuse_blank(sub)


def _text_param(descriptor: Any) -> bool:
    """Whether a parameter takes text: ``str``, or a list or tuple of ``str``."""
    from typing import get_args

    annotation = descriptor.annotation
    if annotation is str:
        return True
    return bool(getattr(descriptor, "is_list", False) or getattr(descriptor, "is_tuple", False)) and str in get_args(
        annotation
    )


def _blank_refused(callback: Any) -> Any:
    def check(ctx: Any, param: Any, value: Any) -> Any:
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, str) and not v.strip() for v in values):
            _refuse(param, next(v for v in values if isinstance(v, str) and not v.strip()))
        return callback(ctx, param, value) if callback is not None else value

    check.refuses_blank = True  # type: ignore[attr-defined]
    return check


def _refuse(param: Any, value: str) -> None:
    from personas.kernel.errors import UsageProblem

    option = param.param_type_name == "option"
    placeholder = param.metavar or param.name.upper()
    name = max(param.opts, key=len) if option else placeholder
    what = re.split(r"\.\s+(?=[A-Z])", (param.help or "").strip())[0].rstrip(".")  # its help's first sentence
    leave = "" if param.required else ", or leave it out"
    said = f" ({name}: {what})" if what else ""
    raise UsageProblem(f"{name} is empty ({value!r}): give {placeholder}{said}{leave}; nothing was run")


def indented(console: Any, text: str, style: str = "", by: int = 4) -> None:
    """Print ``text`` (plain, not markup; controls made :func:`visible`) indented, its wrapped lines
    too, breaking only at spaces."""
    import textwrap

    text = visible(text)
    width = max(40, console.size.width - 1)
    pad = " " * by
    wrapped = textwrap.fill(text, width, initial_indent=pad, subsequent_indent=pad, break_long_words=False,
                            break_on_hyphens=False)
    console.print(wrapped, style=style or None, markup=False, highlight=False, soft_wrap=True)


#: What a terminal obeys or hides instead of showing, in ASCII: C0 controls but tab and newline (ESC
#: starts sequences that move the cursor and erase lines; CR and backspace overwrite) and DEL.
_HIDDEN_ASCII = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
#: Beyond ASCII, a whole class, not a list of known tricks: every control (C1), format character
#: (zero-width, bidi marks and overrides, soft hyphen, tag letters, interlinear annotations), line
#: or paragraph separator, lone surrogate and unassigned code point, plus the letters and marks a
#: font draws as nothing (Hangul fillers, the combining grapheme joiner). The zero-width joiner is
#: kept: it joins emoji, and on its own hides nothing.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
_DRAWN_BLANK = frozenset("\u034f\u115f\u1160\u3164\uffa0")
_KEPT = frozenset("\t\n\u200d")
_BREAKS = re.compile("[\t\n]")


def _escape_one(match: re.Match[str]) -> str:
    return _escaped(match.group())


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _hidden(char: str) -> bool:
    """Whether a terminal would obey ``char`` or draw it as nothing (see :data:`_HIDDEN_CATEGORIES`)."""
    if char in _KEPT:
        return False
    return char in _DRAWN_BLANK or unicodedata.category(char) in _HIDDEN_CATEGORIES


def visible(text: str, *, lines: bool = True) -> str:
    """``text`` with every character a terminal would obey or hide written as its escape (``\\x1b``,
    ``\\u202e``), for anything a model, Klaviyo data or a stored row can put on the screen: printed
    raw, a tool name like ``x\\x1b[2A\\x1b[2K`` erased the lines above it. ``lines=False`` escapes
    tabs and newlines too, for one-line fields (a tool name, a status)."""
    if text.isascii():  # the common case, kept cheap
        text = _HIDDEN_ASCII.sub(_escape_one, text)
    else:
        text = "".join(_escaped(c) if _hidden(c) else c for c in text)
    if not lines:
        text = _BREAKS.sub(lambda m: "\\t" if m.group() == "\t" else "\\n", text)
    return text


def visible_data(value: Any) -> Any:
    """``value`` with every string in it (in dicts, lists and plain tuples, keys too) made :func:`visible`:
    a run's state, for a view that lays out Klaviyo data and form answers itself (a table), where
    text cannot be escaped after it is drawn. Anything else is passed through as it is."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, dict):
        return {visible_data(k): visible_data(v) for k, v in value.items()}
    if isinstance(value, list) or type(value) is tuple:
        return type(value)(visible_data(v) for v in value)
    return value


def shown(text: str, *, lines: bool = True) -> str:
    """:func:`visible` text, escaped for Rich markup: untrusted text in a ``console.print`` string."""
    from rich.markup import escape

    return escape(visible(text, lines=lines))


def file_target(path: str, label: str, example: str, *, read: bool = False) -> Path:
    """The file ``path`` names, checked before anything is read or started: not a folder, in a folder
    that exists, and one this user may write (and read, with ``read``), or may create there. Else a
    UsageProblem starting with ``label`` that names what is wrong and the fix; the errors of the
    open itself (SQLite's "unable to open database file", FileNotFoundError) name neither."""
    import os

    from personas.kernel.errors import UsageProblem

    target = Path(path).expanduser()
    folder = target.parent
    if target.is_dir():
        raise UsageProblem(f"{label}: it is a folder; give a file name, e.g. {target / example}")
    if not folder.exists():
        raise UsageProblem(
            f"{label}: the folder {folder} does not exist; create it (mkdir -p {folder}) "
            "or give a path in a folder that exists"
        )
    if not folder.is_dir():
        raise UsageProblem(f"{label}: {folder} is not a folder; give a path in a folder")
    wanted = os.R_OK | os.W_OK if read else os.W_OK
    if target.exists() and not os.access(target, wanted):
        what = "read and write" if read else "write"
        raise UsageProblem(f"{label}: this user may not {what} {target}; check its permissions or give another path")
    if not target.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise UsageProblem(f"{label}: this user may not create files in {folder}; give a path you can write")
    return target


def at_least(option: str, value: float, low: float, what: str, *, above: bool = False) -> None:
    """Refuse ``value`` below ``low`` (or equal to it, if ``above``; or not a finite number), naming the
    option and its range, as ``personas runs --limit`` does; nothing has started yet."""
    from personas.kernel.errors import UsageProblem

    if not math.isfinite(value) or value < low or (above and value == low):
        bound = f"more than {low:g}" if above else f"{low:g} or more"
        raise UsageProblem(f"{option} {value:g}: give {what}, {bound}")
