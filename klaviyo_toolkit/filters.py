"""Klaviyo's ``filter=`` expressions: parse, check against an operation's allowed fields, render.

Syntax (Klaviyo's API overview, "Filtering")::

    equals(email,'a@b.com')            comparison: operator(field, value)
    any(id,["X1","X2"])                list values
    greater-than(datetime,2024-01-01T00:00:00Z)   unquoted datetimes, numbers, true/false/null
    and(equals(a,1),or(...))           and/or/not combine expressions

The client checks a filter before sending it (a clear error instead of a 400), and the sandbox
evaluates the same parsed form, so both agree on what an expression means.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

__all__ = ["Comparison", "Expr", "FilterSyntaxError", "Logical", "check_filter", "parse_filter", "quoted"]

LOGICAL = ("and", "or", "not")
COMPARISONS = (
    "equals",
    "less-than",
    "less-or-equal",
    "greater-than",
    "greater-or-equal",
    "contains",
    "contains-any",
    "contains-all",
    "ends-with",
    "starts-with",
    "any",
    "has",
)
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


class FilterSyntaxError(ValueError):
    """The filter text is not a valid Klaviyo filter expression."""


@dataclass(frozen=True)
class Comparison:
    """``operator(field, value)``."""

    operator: str
    field: str
    value: Any


@dataclass(frozen=True)
class Logical:
    """``and(...)``, ``or(...)``, ``not(...)``."""

    operator: str
    items: tuple[Expr, ...]


Expr = Union[Comparison, Logical]


#: How deep expressions and lists may nest: Klaviyo's filters are a few levels deep; a deeper one is
#: refused as a syntax error rather than parsed (and matched, and checked) by recursion without end.
MAX_FILTER_DEPTH = 32


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_FILTER_DEPTH:
            raise self.error(f"nested deeper than {MAX_FILTER_DEPTH} levels; write a flatter filter")

    def error(self, msg: str) -> FilterSyntaxError:
        shown = self.text if len(self.text) <= 160 else f"{self.text[:160]}… ({len(self.text):,} characters)"
        return FilterSyntaxError(f"{msg} at position {self.pos} of {shown!r}")

    def ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            raise self.error(f"expected {ch!r}")
        self.pos += 1

    def word(self) -> str:
        self.ws()
        m = re.compile(r"[A-Za-z0-9_$.:+\-]+").match(self.text, self.pos)
        if not m:
            raise self.error("expected a name or value")
        self.pos = m.end()
        return m.group(0)

    def expr(self) -> Expr:
        self.nest()
        try:
            return self._expr()
        finally:
            self.depth -= 1

    def _expr(self) -> Expr:
        name = self.word()
        if name not in LOGICAL and name not in COMPARISONS:
            raise self.error(f"unknown operator {name!r}")
        self.expect("(")
        if name in LOGICAL:
            items = [self.expr()]
            while self.peek() == ",":
                self.pos += 1
                items.append(self.expr())
            self.expect(")")
            if name == "not" and len(items) != 1:
                raise self.error("not() takes one expression")
            return Logical(name, tuple(items))
        field = self.word()
        if name == "has":
            self.expect(")")
            return Comparison(name, field, None)
        self.expect(",")
        value = self.value()
        self.expect(")")
        return Comparison(name, field, value)

    def value(self) -> Any:
        ch = self.peek()
        if ch in ("'", '"'):
            self.pos += 1
            out = []
            while self.pos < len(self.text) and self.text[self.pos] != ch:
                if self.text[self.pos] == "\\" and self.pos + 1 < len(self.text):
                    self.pos += 1
                out.append(self.text[self.pos])
                self.pos += 1
            if self.pos >= len(self.text):
                raise self.error("unterminated string")
            self.pos += 1
            return "".join(out)
        if ch == "[":
            self.nest()
            self.pos += 1
            items: list[Any] = []
            if self.peek() == "]":
                self.pos += 1
                self.depth -= 1
                return items
            items.append(self.value())
            while self.peek() == ",":
                self.pos += 1
                items.append(self.value())
            self.expect("]")
            self.depth -= 1
            return items
        token = self.word()
        if token in ("true", "false"):
            return token == "true"
        if token == "null":
            return None
        if _NUMBER.match(token):
            return float(token) if "." in token else int(token)
        if _DATETIME.match(token):
            try:
                return _parse_datetime(token)
            except ValueError as exc:  # the shape of a datetime, not a real one (month 13, 25:00, Feb 30)
                raise self.error(
                    f"{token!r} is not a real date and time ({exc}); write one like 2024-01-31T09:30:00Z"
                ) from None
        raise self.error(f"{token!r} is not a value (quote strings: '{token}')")


def _parse_datetime(token: str) -> _dt.datetime:
    text = token.replace("Z", "+00:00")
    when = _dt.datetime.fromisoformat(text) if "T" in text else _dt.datetime.fromisoformat(text + "T00:00:00")
    return when if when.tzinfo else when.replace(tzinfo=_dt.UTC)


def parse_filter(text: str) -> Expr:
    """Parse a filter expression; several top-level expressions separated by commas mean and()."""
    parser = _Parser(text.strip())
    items = [parser.expr()]
    while parser.peek() == ",":
        parser.pos += 1
        items.append(parser.expr())
    if parser.peek():
        raise parser.error("unexpected text")
    return items[0] if len(items) == 1 else Logical("and", tuple(items))


def comparisons(expr: Expr) -> list[Comparison]:
    """Every comparison in the expression, depth first."""
    if isinstance(expr, Comparison):
        return [expr]
    out: list[Comparison] = []
    for item in expr.items:
        out += comparisons(item)
    return out


def check_filter(text: str, allowed: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Problems with ``text`` given an operation's ``filters`` record; empty when it is fine."""
    try:
        expr = parse_filter(text)
    except FilterSyntaxError as exc:
        return [str(exc) + "; write it like equals(field,'value')"]
    problems = []
    for comp in comparisons(expr):
        spec = allowed.get(comp.field)
        if spec is None:
            problems.append(f"{comp.field!r} cannot be filtered on; allowed fields: {', '.join(allowed) or 'none'}")
            continue
        ops: Sequence[str] = spec.get("operators", [])
        if comp.operator not in ops:
            problems.append(f"{comp.operator}() is not allowed on {comp.field!r}; use one of: {', '.join(ops)}")
            continue
        problem = _value_problem(comp, spec)
        if problem:
            problems.append(problem)
    return problems


_LIST_OPERATORS = ("any", "contains-any", "contains-all")


def _written(value: Any) -> str:
    """A parsed value as it was written in the filter (``true``, not Python's ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _value_problem(comp: Comparison, spec: Mapping[str, Any]) -> str | None:
    """Whether ``comp``'s value is written as Klaviyo's filter syntax wants for the field's type.

    Strings are quoted; numbers, booleans and datetimes are not ("greater-than(datetime,
    2024-01-01T00:00:00Z)": a quoted datetime is a string, which Klaviyo refuses for a date field).
    """
    if comp.operator == "has" or comp.value is None:
        return None
    values = comp.value if isinstance(comp.value, list) else [comp.value]
    if isinstance(comp.value, list) and not (
        comp.operator in _LIST_OPERATORS or comp.operator in (spec.get("list_operators") or ())
    ):
        return f"{comp.operator}({comp.field},...) takes one value, not a list"
    kind, fmt = spec.get("type", "string"), spec.get("format")
    for value in values:
        if fmt == "date-time":
            if isinstance(value, str):
                quoted = _DATETIME.match(value) is not None
                return (
                    f"{comp.field!r} is a datetime: write it without quotes, e.g. "
                    f"{comp.operator}({comp.field},{value if quoted else '2024-01-01T00:00:00Z'})"
                )
            if not isinstance(value, _dt.datetime):
                return f"{comp.field!r} is a datetime, e.g. {comp.operator}({comp.field},2024-01-01T00:00:00Z)"
        elif kind in ("integer", "number"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"{comp.field!r} is a number: write it without quotes, e.g. {comp.operator}({comp.field},10)"
        elif kind == "boolean":
            if not isinstance(value, bool):
                return f"{comp.field!r} is true or false (no quotes), e.g. {comp.operator}({comp.field},true)"
        elif not isinstance(value, str):
            shown = _written(value)
            return f"{comp.field!r} is a string: quote the value, e.g. {comp.operator}({comp.field},'{shown}')"
    return None


def quoted(value: str | Iterable[str], sep: str = ", ") -> str:
    """``value`` as a filter literal: a double-quoted string, or a list of them (``any(email,[...])``)
    joined by ``sep`` (``","`` keeps a filter of 100 emails short).

    Text goes as it is, with only ``\\`` and ``"`` escaped: ``json.dumps`` writes ``josé`` as
    ``"jos\\u00e9"``, which Klaviyo's filters do not decode, so the filter matched no profile and a
    suppressed profile with an accented email looked unknown.

    Example: ``f"equals(email,{quoted('josé@example.com')})"`` -> ``equals(email,"josé@example.com")``
    """
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "[" + sep.join(quoted(v) for v in value) + "]"
