"""JSON text from a person or a file, read strictly: what JSON (RFC 8259) leaves out is refused.

Python's :func:`json.loads` keeps the last of a key given twice (``{"consent": "yes", "consent":
"no"}`` reads as no), reads ``NaN`` and ``Infinity``, and fails on deep nesting or a very long
integer with a ``RecursionError`` or a ``ValueError`` that says nothing of the JSON. :func:`loads`
refuses each with one :class:`JsonTextError` (a ``ValueError``) whose message says what is wrong and,
for a syntax error, where; the caller adds which file or field it read, and nothing is guessed.

Example::

    try:
        value = loads(text)
    except JsonTextError as exc:
        raise UsageProblem(f"{path} is not valid JSON ({exc})") from None
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["JsonTextError", "json_type", "loads"]

#: Python's own limit on the digits of an integer read from text (``sys.get_int_max_str_digits``).
_MAX_DIGITS = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300


class JsonTextError(ValueError):
    """The text is not JSON a caller may use.

    ``kind`` says which way: ``syntax`` (not JSON at all; ``line`` and ``column`` say where),
    ``nesting`` (too deep to read) or ``value`` (a repeated key, NaN, a number out of range).
    """

    def __init__(
        self,
        reason: str,
        line: int | None = None,
        column: int | None = None,
        *,
        kind: Literal["syntax", "nesting", "value"] = "value",
    ) -> None:
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(f"{where}{reason}")
        self.reason, self.line, self.column, self.kind = reason, line, column, kind


def finite(text: str) -> float:
    """A JSON number as a float; one too large for a double (it would read as infinity) is refused."""
    number = float(text)
    if not math.isfinite(number):
        raise JsonTextError(f"the number {text[:40]} is too large for JSON (it reads as infinity); give a smaller one")
    return number


def whole(text: str) -> int:
    """A JSON integer; one longer than Python reads from text is refused with its length."""
    digits = len(text.lstrip("-"))
    if digits > _MAX_DIGITS:
        raise JsonTextError(f"a number has {digits:,} digits (at most {_MAX_DIGITS:,} are read); give a shorter one")
    return int(text)


def no_constant(text: str) -> Any:
    """``NaN``, ``Infinity``, ``-Infinity``: Python's json reads them, JSON (and Klaviyo) does not."""
    raise JsonTextError(f"{text} is not JSON (JSON has no NaN or Infinity); give a number or null")


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members, refusing a key given twice (json would keep only the last)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise JsonTextError(f"the key {twice!r} appears more than once in one object; give each key once")
    return out


def loads(text: str | bytes) -> Any:
    """``text`` as a JSON value, or :class:`JsonTextError` saying what is wrong (and where)."""
    try:
        return json.loads(
            text, parse_float=finite, parse_int=whole, parse_constant=no_constant, object_pairs_hook=unique_keys
        )
    except json.JSONDecodeError as exc:
        raise JsonTextError(exc.msg, exc.lineno, exc.colno, kind="syntax") from None
    except RecursionError:
        raise JsonTextError(
            "arrays or objects are nested more than about a thousand levels deep; flatten it",
            kind="nesting",
        ) from None


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type (``a string``, ``a number``...), for messages about a wrong one."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, Mapping) else type(value).__name__
