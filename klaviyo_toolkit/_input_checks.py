"""Checks on argument values that no type expresses: characters, JSON values, ids and URL length.

Each check answers with a fix for a person or a model ("contains the control character U+0000 at
position 3; remove it"), or None when the value is fine; ``_arguments`` names the field. Values are
walked with an explicit stack, never by recursion, so a value nested 100,000 levels deep is refused
rather than overflowing Python's stack.

The limits, and why:

- **Text**: no C0 control character other than tab, line feed and carriage return (a NUL is cut or
  refused by the servers behind Klaviyo, the rest are invisible), and no lone surrogate (half of a
  UTF-16 pair, e.g. ``"\\ud800"``: it cannot be encoded as UTF-8, so no request could carry it).
- **JSON values** (free-form ``properties`` and other JSON-text arguments): numbers are finite (JSON
  has no NaN or Infinity), keys are unique (``{"a": 1, "a": 2}`` would silently keep only the last)
  and nesting is at most :data:`MAX_JSON_DEPTH` levels: about three times the deepest structure in
  Klaviyo's spec (a whole ``create_flow`` body is 23 levels). On the event endpoints Klaviyo's
  documented ingestion limits apply instead (:data:`EVENT_LIMITS`).
- **Path ids**: not empty, not ``.`` or ``..`` (a URL resolver turns ``/api/lists/../profiles``
  into ``/api/profiles``: another endpoint), no surrounding spaces, no control or invisible characters.
- **URL length**: path and query together at most :data:`MAX_URL_BYTES`. httpx itself refuses a
  component over 64 KiB, and servers and proxies commonly refuse request lines over 8 KiB.
- **Types and text the spec leaves open**: true/false is not a number; required names and ids are
  not blank; the spec's minLength, maxLength and pattern, when it gives them, are checked.
- **Dates** (the spec's ``format: date-time`` and ``format: date``): an ISO 8601 date and time
  (``2026-07-15T10:00:00+00:00`` or ``...Z``; seconds, fractions and the offset optional: Klaviyo
  reads a time without one as UTC) or a ``YYYY-MM-DD`` day, a real one: "tomorrow", a date alone
  where a time is due, or month 13 was Klaviyo's 400 after the request had gone out.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from pydantic import AfterValidator

from .json_text import JsonTextError, loads
from .validation import describe_hidden

if TYPE_CHECKING:
    from .catalog import Operation

Json = dict[str, Any]

__all__ = [
    "EVENT_LIMITS",
    "JSON_LIMITS",
    "MAX_EVENT_STRING",
    "MAX_JSON_DEPTH",
    "MAX_URL_BYTES",
    "JsonLimits",
    "id_problem",
    "id_problems",
    "json_problem",
    "names_something",
    "not_blank",
    "not_bool",
    "parse_json_text",
    "path_value",
    "root_field",
    "text_limits",
    "text_problem",
    "url_problems",
    "value_problems",
]

#: Nesting allowed in a JSON-text argument (see the module docstring for why this number).
MAX_JSON_DEPTH = 64
#: Path and query of one request, encoded; with a base URL such as https://a.klaviyo.com the whole
#: URL stays under 8 KiB, what common servers and proxies accept in a request line.
MAX_URL_BYTES = 8000

_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL_NAMES = {0: "NUL", 0x1B: "ESCAPE", 0x7F: "DELETE"}


@dataclass(frozen=True)
class JsonLimits:
    """How large a free-form JSON value may be; ``source`` is said in the error."""

    depth: int = MAX_JSON_DEPTH
    string_bytes: int | None = None
    array_items: int | None = None
    source: str = "the toolkit's limit; no Klaviyo structure comes close"


JSON_LIMITS = JsonLimits()
#: Klaviyo's ingestion limit for any string of an event payload (keys and the profile's too).
MAX_EVENT_STRING = 100 * 1024
#: Klaviyo's ingestion limits for /api/events and /client/events (developers.klaviyo.com, "Rate
#: limits and error handling", Ingestion limits): 100 kB for any field, 4,000 items in an array,
#: 10 levels of nested objects.
EVENT_LIMITS = JsonLimits(
    depth=10, string_bytes=MAX_EVENT_STRING, array_items=4000, source="Klaviyo's ingestion limit for events"
)


def _describe(char: str) -> str:
    code = ord(char)
    return f"U+{code:04X}" + (f" {_CONTROL_NAMES[code]}" if code in _CONTROL_NAMES else "")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent as it is (a control character or a lone surrogate), or None."""
    found = _BAD_TEXT.search(text)
    if found is None:
        return None
    char, at = found.group(), found.start()
    if "\ud800" <= char <= "\udfff":
        return (
            f"contains a lone surrogate ({_describe(char)}) at position {at}, which cannot be encoded as "
            "UTF-8 (the text was probably cut inside an emoji or decoded wrongly); give the whole character "
            "or remove it"
        )
    return (
        f"contains the control character {_describe(char)} at position {at}, which cannot be seen; remove it "
        "(tab, line feed and carriage return are the only control characters allowed in text)"
    )


def _where(path: str) -> str:
    return f"at {path}: " if path else ""


def json_problem(
    value: Any, limits: JsonLimits = JSON_LIMITS, *, want: str | None = None, check_text: bool = True
) -> str | None:
    """Why ``value`` (already parsed) is not a JSON value Klaviyo accepts, or None.

    ``want`` is ``"object"`` or ``"array"`` when the spec asks for one. Levels are counted as Klaviyo
    counts them for event properties: the members of the value are level 1. ``check_text=False``
    allows control characters (a lone surrogate, which no UTF-8 text holds, is still refused): for
    data read *from* Klaviyo, which may hold what a person typed into a form, shown escaped rather
    than refused.
    """
    if want == "object" and not isinstance(value, Mapping):
        return f'must be a JSON object such as {{"plan": "pro"}}, not {_kind(value)}'
    if want == "array" and not isinstance(value, (list, tuple)):
        return f"must be a JSON array such as [1, 2], not {_kind(value)}"
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        node, level, path = stack.pop()
        if level > limits.depth:
            return (
                f"{_where(path)}nested deeper than {limits.depth} levels ({limits.source}); "
                "flatten it or give the inner part as a string"
            )
        if isinstance(node, str):
            problem = text_problem(node) if check_text or _SURROGATE.search(node) else None
            if problem:
                return _where(path) + problem
            if limits.string_bytes is not None and len(node) * 4 > limits.string_bytes:
                size = len(node.encode("utf-8"))
                if size > limits.string_bytes:
                    return (
                        f"{_where(path)}a string of {size:,} bytes; at most {limits.string_bytes:,} are allowed "
                        f"({limits.source}); shorten it"
                    )
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if abs(node) > MAX_JSON_INT:
                return f"{_where(path)}{_too_large(node)}"
        elif isinstance(node, float):
            if not math.isfinite(node):
                return f"{_where(path)}{node!r} is not a JSON number (JSON has no NaN or Infinity); give a number"
        elif isinstance(node, Mapping):
            for key, item in node.items():
                if not isinstance(key, str):
                    return f"{_where(path)}the key {key!r} is not text; JSON object keys are strings"
                problem = text_problem(key)
                if problem:
                    return f"{_where(path)}the key {key!r} " + problem
                stack.append((item, level + 1, f"{path}.{key}" if path else key))
        elif isinstance(node, (list, tuple)):
            if limits.array_items is not None and len(node) > limits.array_items:
                return (
                    f"{_where(path)}an array of {len(node):,} items; at most {limits.array_items:,} are allowed "
                    f"({limits.source}); split it"
                )
            stack.extend((item, level + 1, f"{path}[{i}]") for i, item in enumerate(node))
        else:
            kind = type(node).__name__
            return f"{_where(path)}a {kind} is not a JSON value; give text, a number, true/false, a list or an object"
    return None


#: The largest integer a double holds (beyond it, a JSON number is Infinity to Klaviyo).
MAX_JSON_INT = int(sys.float_info.max)


def _too_large(value: int) -> str:
    """What is wrong with an integer past a double's range, showing it shortly (``100000… (401 digits)``)."""
    if value.bit_length() > 14_000:  # str() refuses integers of more than 4,300 digits
        shown = f"an integer of {value.bit_length():,} bits"
    else:
        digits = str(abs(value))
        shown = f"{'-' if value < 0 else ''}{digits[:6]}… ({len(digits)} digits)"
    return f"{shown} is too large; numbers must fit a double (at most about 1.8e308)"


def _kind(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    return "a number" if isinstance(value, (int, float)) else f"a {type(value).__name__}"


def value_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems in arguments as given, before any parsing: text that cannot be sent, numbers JSON
    cannot carry, nesting past :data:`MAX_JSON_DEPTH`. One problem per argument, named by its path
    as pydantic names fields (``profiles[1].email``, ``properties.a``)."""
    problems: list[tuple[str, str]] = []
    for name, value in values.items():
        stack: list[tuple[Any, int, str]] = [(value, 0, name)]
        while stack:
            node, level, path = stack.pop()
            problem: str | None = None
            if level > MAX_JSON_DEPTH:
                problem = f"is nested deeper than {MAX_JSON_DEPTH} levels; flatten it"
                path = name
            elif isinstance(node, str):
                problem = text_problem(node)
            elif isinstance(node, float) and not math.isfinite(node):
                problem = f"{node!r} is not a number Klaviyo accepts (JSON has no NaN or Infinity); give a number"
            elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > MAX_JSON_INT:
                problem = _too_large(node)
            elif isinstance(node, Mapping):
                for key, item in node.items():
                    if isinstance(key, str) and (bad := text_problem(key)):
                        problem = f"the key {key!r} " + bad
                        break
                    stack.append((item, level + 1, f"{path}.{key}"))
            elif isinstance(node, (list, tuple)):
                stack.extend((item, level + 1, f"{path}[{i}]") for i, item in enumerate(node))
            if problem:
                problems.append((path if len(path) <= 100 else name, problem))
                break
    return problems


def id_problem(value: Any, what: str = "resource") -> str | None:
    """Why ``value`` cannot be an id in a URL path (it would address another endpoint), or None."""
    if not isinstance(value, str):
        return None
    example = f"give the {what}'s id (list or search for it first)"
    if value == "":
        return f"is empty; {example}"
    if value.strip() in (".", ".."):
        return f"{value!r} is a path segment, not an id: the URL would address another endpoint; {example}"
    if value != value.strip():
        return f"{value!r} has spaces at its start or end; remove them"
    if hidden := describe_hidden(value):
        return f"{value!r} contains characters that cannot be seen ({hidden}); remove them"
    return None


def url_problems(
    path_values: Sequence[tuple[str, str]],
    params: Sequence[tuple[str, str]],
    wire_names: Mapping[str, str],
    path_length: int,
) -> list[tuple[str, str]]:
    """A problem naming the longest argument when the request's path and query pass
    :data:`MAX_URL_BYTES` (httpx would raise InvalidURL past 64 KiB; servers refuse far less).

    ``path_values`` are (argument, encoded value) pairs; ``wire_names`` maps a query parameter to
    its argument; ``path_length`` is the length of the filled path.
    """
    rough = path_length + sum(len(k) + 3 * len(v.encode("utf-8", "surrogatepass")) + 2 for k, v in params)
    if rough <= MAX_URL_BYTES:
        return []
    sizes: dict[str, int] = {name: len(v) for name, v in path_values}
    for key, value in params:
        sizes[wire_names.get(key, key)] = len(urlencode([(key, value)]))
    total = path_length + sum(len(urlencode([(k, v)])) + 1 for k, v in params)
    if total <= MAX_URL_BYTES:
        return []
    name, size = max(sizes.items(), key=lambda kv: kv[1])
    fix = "split it into several calls"
    if name == "filter":
        fix = _filter_fix(
            dict(params).get(next((k for k, n in wire_names.items() if n == name), name), ""),
            size,
            MAX_URL_BYTES - (total - size),
        )
    elif any(name == n for n, _ in path_values):
        fix = "no Klaviyo id is this long; check the value"
    return [
        (
            name,
            f"makes the request URL {total:,} bytes long ({size:,} of them this argument, encoded); "
            f"at most {MAX_URL_BYTES:,} are accepted; {fix}",
        )
    ]


def _filter_fix(text: str, size: int, room: int) -> str:
    """How to split a filter that is too long: batches of N values when it has a list."""
    lists = re.findall(r"\[([^\]]*)\]", text)
    if not lists:
        return "split the filter into several calls, each with a shorter condition, and combine the results"
    items = max(v.count(",") + 1 for v in lists)
    per_call = max(1, int(items * max(room, 0) / max(size, 1) * 0.9))
    return (
        f"split the filter into batches: the list has {items:,} values, give at most {per_call:,} per call "
        "(e.g. any(email,[...]) once per batch) and combine the results"
    )


def path_value(value: Any) -> str:
    """A path parameter's value as it goes in the URL (every reserved character escaped)."""
    return quote(str(value), safe="")


def not_bool(value: Any) -> Any:
    """True and False are not numbers here (pydantic would read True as 1)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {str(value).lower()}")
    return value


def text_limits(schema: Json) -> Any:
    """The spec's minLength/maxLength/pattern, checked but not shown (strict mode cannot say them all)."""
    low, high, pattern = schema.get("minLength"), schema.get("maxLength"), schema.get("pattern")
    compiled = re.compile(pattern) if pattern else None

    def check(value: str) -> str:
        if low is not None and len(value) < low:
            raise ValueError("must not be empty" if low == 1 else f"must be at least {low} characters long")
        if high is not None and len(value) > high:
            raise ValueError(f"is {len(value):,} characters long; at most {high:,} are allowed")
        if compiled is not None and not compiled.search(value):
            raise ValueError(f"must match the pattern {pattern}")
        return value

    return AfterValidator(check)


def parse_json_text(value: Any, limits: JsonLimits = JSON_LIMITS, want: str | None = None) -> Any:
    """JSON text (or an already-parsed value) checked against ``limits``; ``want`` is the spec's type."""
    if value is None:  # "not given" (strict function calling sends null for every unused field)
        return None
    if isinstance(value, str):
        try:
            value = loads(value)
        except JsonTextError as exc:
            if exc.kind == "syntax":
                raise ValueError(
                    f'is not valid JSON ({exc.reason}); give JSON text such as {{"plan": "pro"}}'
                ) from None
            if exc.kind == "nesting":
                raise ValueError(f"is nested deeper than {limits.depth} levels ({limits.source}); flatten it") from None
            raise ValueError(exc.reason) from None
    problem = json_problem(value, limits, want=want)
    if problem:
        raise ValueError(problem)
    return value


#: Required text that names or identifies something: the spec gives no minLength, but an empty one
#: is no name at all (Klaviyo answers "A list needs a name"), so "" and "   " are refused here.
_NAMING_FIELDS = frozenset({"name", "title", "token", "sku", "unique_code", "url", "endpoint_url", "id"})


def names_something(f: Json) -> bool:
    schema = f["shape"].get("schema") or {}
    return (
        f["shape"]["kind"] == "scalar"
        and schema.get("type") == "string"
        and "enum" not in schema
        and (f["name"] in _NAMING_FIELDS or f["name"].endswith("_id"))
    )


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty" if not value else "must not be only spaces")
    return value


def root_field(field: str) -> str:
    return re.split(r"[.\[]", field, maxsplit=1)[0]


def id_problems(op: Operation, values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Ids that would address another endpoint or resource: every path parameter, and the ids of
    relationships (``list_id``, ``profile_ids``), checked in this one place."""
    problems: list[tuple[str, str]] = []
    for arg in op.args:
        value = values.get(arg["name"])
        if value is None:
            continue
        shape = arg["shape"]
        if shape["kind"] == "data":
            shape = shape["item"]
        if arg["in"] == "path":
            segment = op.path.split("/{", 1)[0].rsplit("/", 1)[-1]
            what = (segment[:-1] if segment.endswith("s") else segment).replace("-", " ") or "resource"
            candidates = [(arg["name"], value)]
        elif shape["kind"] == "rel":
            what = (shape["types"] or ["resource"])[0].replace("-", " ")
            many = shape["many"] and isinstance(value, (list, tuple))
            candidates = [(f"{arg['name']}[{i}]", v) for i, v in enumerate(value)] if many else [(arg["name"], value)]
        else:
            continue
        for where, v in candidates:
            problem = id_problem(v, what)
            if problem:
                problems.append((where, problem))
                break
    return problems


_DATE_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:[Zz]|[+-](\d{2})(?::?(\d{2}))?)?", re.ASCII
)
_DATE_TIME_EXAMPLE = "an ISO 8601 date and time with an offset, e.g. 2026-07-15T10:00:00+00:00 (or ...Z for UTC)"


def date_time_problem(value: str) -> str | None:
    """Why ``value`` is not a date and time Klaviyo reads (``format: date-time``), with the fix; None if it is."""
    match = _DATE_TIME.fullmatch(value)
    shown = value if len(value) <= 40 else value[:40] + "..."
    if match is None:
        hint = ""
        if _DATE.fullmatch(value):
            hint = f"; {_day_problem(value) or 'a date alone has no time of day'}"
        return f"{shown!r} is not a date and time{hint}: give {_DATE_TIME_EXAMPLE}"
    day, hour, minute, second, off_h, off_m = match.groups()
    problem = _day_problem(day)
    if problem is None and (int(hour) > 23 or int(minute) > 59 or int(second or 0) > 59):
        problem = "the time of day is not real: hours 00-23, minutes and seconds 00-59"
    if problem is None and off_h is not None and (int(off_h) > 23 or int(off_m or 0) > 59):
        problem = "the offset from UTC is past 23:59"
    return None if problem is None else f"{shown!r} is not a real date and time ({problem}): give {_DATE_TIME_EXAMPLE}"


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def date_problem(value: str) -> str | None:
    """Why ``value`` is not a calendar day (``format: date``, ``YYYY-MM-DD``), with the fix; None if it is."""
    shown = value if len(value) <= 40 else value[:40] + "..."
    if _DATE.fullmatch(value) is None:
        return f"{shown!r} is not a date: give one as YYYY-MM-DD, e.g. 2026-07-15"
    problem = _day_problem(value)
    return (
        None
        if problem is None
        else f"{shown!r} is not a real date ({problem}): give one as YYYY-MM-DD, e.g. 2026-07-15"
    )


def _day_problem(day: str) -> str | None:
    try:
        _dt.date.fromisoformat(day)
    except ValueError as exc:  # month 13, February 30
        return str(exc)
    return None


def format_check(fmt: object) -> Any | None:
    """The validator of the spec's string ``format`` (``date-time``, ``date``); None for any other."""
    check = {"date-time": date_time_problem, "date": date_problem}.get(str(fmt))
    if check is None:
        return None

    def validate(value: str) -> str:
        problem = check(value)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(validate)
