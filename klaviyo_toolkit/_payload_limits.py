"""Sizes Klaviyo documents for one request body, checked on the built request before it is sent.

A type cannot say "at most 512 KB"; Klaviyo's descriptions and its ingestion limits do, and it
answers 400 to a body past one. Three limits, the figures the sandbox enforces too (its
``_checks``: the same catalog fields and constants, compared by a test):

- **the whole body** (``Operation.max_payload_bytes``, "The maximum allowed payload size is 5MB";
  on the event endpoints at most :data:`MAX_EVENT_PAYLOAD`): named by the largest argument;
- **one item** of a bulk body, or the one record of a single-record body
  (``Operation.max_item_payload_bytes``: "... per-record is 512KB", "... per-profile is 100KB"):
  named ``data_source_records[3]``;
- **any string of an event payload**, keys too, the profile block's included
  (:data:`MAX_EVENT_STRING`, Klaviyo's ingestion limit): named ``profile.first_name``.

Sizes are of the JSON as httpx sends it: compact (no spaces), UTF-8, non-ASCII characters as
themselves. Cost: nothing for an operation without a documented size; otherwise one ``json.dumps``
of the body (a few microseconds for a profile or an event). Items and strings are measured only
when the whole body is larger than their limit, so a body under 100 KB is never walked.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._input_checks import MAX_EVENT_STRING

if TYPE_CHECKING:
    from .catalog import Operation

__all__ = [
    "INGESTION_PATHS",
    "MAX_EVENT_PAYLOAD",
    "MAX_EVENT_STRING",
    "is_ingestion",
    "max_body_bytes",
    "size_problems",
]

#: The endpoints Klaviyo's ingestion limits apply to ("Rate limits, status codes, and errors",
#: Ingestion limits): create_event, create_client_event and their bulk forms.
INGESTION_PATHS = frozenset(
    {"/api/events", "/client/events", "/api/event-bulk-create-jobs", "/client/event-bulk-create"}
)
#: "Max payload size: 5 MB decompressed" for the event endpoints.
MAX_EVENT_PAYLOAD = 5 * 1024 * 1024


def is_ingestion(op: Operation) -> bool:
    """Whether Klaviyo's ingestion limits (100 kB strings, 5 MB bodies) apply to ``op`` (a POST: get_events
    shares a path with create_event)."""
    return op.path in INGESTION_PATHS and op.method == "POST"


def max_body_bytes(op: Operation) -> int | None:
    """The largest body ``op`` accepts: what its reference says, or the ingestion limit (None: no limit)."""
    stated = op.max_payload_bytes
    if is_ingestion(op):
        return min(stated or MAX_EVENT_PAYLOAD, MAX_EVENT_PAYLOAD)
    return stated


def size_problems(op: Operation, body: Any, arguments: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, fix) for the first size ``body`` is over, or ``[]``; ``arguments`` are the validated
    arguments as plain data (``PreparedRequest.arguments``), to name the field as the caller gave it."""
    if body is None:
        return []
    limits = _limits(op)
    if limits is None:
        return []
    most, per_item, events = limits
    size = wire_size(body)
    if most is not None and size > most:
        return [_body_problem(op, arguments, size, most)]
    if per_item is not None and size > per_item:
        found = _item_problem(op, body, arguments, per_item)
        if found:
            return [found]
    if events and size > MAX_EVENT_STRING:
        found = _string_problem(arguments)
        if found:
            return [found]
    return []


@functools.cache
def _limits(op: Operation) -> tuple[int | None, int | None, bool] | None:
    """(whole body, per item, event strings) for ``op``; None when Klaviyo documents no size for it."""
    most, per_item, events = max_body_bytes(op), op.max_item_payload_bytes, is_ingestion(op)
    return None if most is None and per_item is None and not events else (most, per_item, events)


#: httpx's encoding of a JSON body (``json.dumps`` with these options), made once: building an encoder
#: per call is a third of the cost of measuring a small body.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def wire_size(value: Any) -> int:
    """Bytes of ``value`` as httpx encodes it (``json.dumps`` compact, ``ensure_ascii=False``, UTF-8)."""
    text = _ENCODER.encode(value)
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _shown(limit: int) -> str:
    """``5 MB``, ``512 KB`` (as Klaviyo writes its limits), or ``1,000 bytes``."""
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MB"
    return f"{limit // 1024} KB" if limit % 1024 == 0 else f"{limit:,} bytes"


def _body_problem(op: Operation, arguments: Mapping[str, Any], size: int, most: int) -> tuple[str, str]:
    sizes = {name: wire_size(value) for name, value in arguments.items()}
    name, own = max(sizes.items(), key=lambda kv: kv[1]) if sizes else ("(arguments)", size)
    value = arguments.get(name)
    if isinstance(value, list) and len(value) > 1:
        per_call = max(1, int(len(value) * most * 0.9 / size))
        fix = f"split it into calls of at most {per_call:,} items"
    else:
        fix = "shorten it or leave out its largest values" + _largest(value, name)
    return (
        name,
        f"makes the request body {size:,} bytes ({own:,} of them this argument); {op.operation_id} accepts at "
        f"most {_shown(most)} ({most:,} bytes); {fix}",
    )


def _item_problem(op: Operation, body: Any, arguments: Mapping[str, Any], limit: int) -> tuple[str, str] | None:
    """The first item over ``limit``, measured on the wire as the sandbox and Klaviyo measure it."""
    found = limited_items(op, body)
    if found is None:
        return None
    name, node = found
    items = list(enumerate(node)) if isinstance(node, list) else [(None, node)]
    for i, item in items:
        size = wire_size(item)
        if size > limit:
            field = name if i is None else f"{name}[{i}]"
            given = arguments.get(name)
            if i is not None:
                given = given[i] if isinstance(given, list) and i < len(given) else None
            return (
                field,
                f"is {size:,} bytes as sent; {op.operation_id} accepts at most {_shown(limit)} ({limit:,} bytes) "
                f"per item; make it smaller: shorten or leave out its largest values{_largest(given, field)}",
            )
    return None


def limited_items(op: Operation, body: Any) -> tuple[str, Any] | None:
    """(argument name, wire value) of the body argument ``op``'s item limits apply to: its
    ``max_items_arg``, or else its one nested resource; None when the body does not hold it."""
    name = op.max_items_arg
    arg = next(
        (a for a in op.args if a["in"] == "body" and (a["name"] == name if name else a["shape"].get("kind") == "data")),
        None,
    )
    if arg is None or not isinstance(body, Mapping):
        return None
    if (op.body or {}).get("root") in ("linkage", "resources") or arg["shape"].get("bare"):
        path = ["data"]
    else:
        nested = arg["shape"].get("kind") in ("data", "rel")
        path = ["data", str(arg.get("section", "attributes")), arg["wire"], *(["data"] if nested else [])]
    node: Any = body
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return str(arg["name"]), node


def _utf8(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _string_problem(arguments: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first string (or object key) of an event's arguments over :data:`MAX_EVENT_STRING` bytes."""
    limit = MAX_EVENT_STRING
    rule = f"at most {_shown(limit)} ({limit:,} bytes) are allowed in any string of an event, its profile's included"
    stack: list[tuple[Any, str]] = [(v, k) for k, v in reversed(list(arguments.items()))]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if len(node) * 4 > limit and (size := _utf8(node)) > limit:
                return path, f"is a string of {size:,} bytes; {rule} (Klaviyo's ingestion limit); shorten it"
        elif isinstance(node, Mapping):
            for key in node:
                if isinstance(key, str) and len(key) * 4 > limit and (size := _utf8(key)) > limit:
                    return path, f"has a key of {size:,} bytes; {rule} (Klaviyo's ingestion limit); shorten the key"
            stack.extend((v, f"{path}.{k}") for k, v in reversed(list(node.items())))
        elif isinstance(node, (list, tuple)):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(node))))
    return None


def _largest(value: Any, path: str) -> str:
    """`` (the largest is <path>, N bytes)`` for the longest text inside ``value``, or ``""``."""
    best: tuple[int, str] | None = None
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if best is None or len(node) > best[0]:
                best = (len(node), where)
        elif isinstance(node, Mapping):
            stack.extend((v, f"{where}.{k}") for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node))
    if best is None or best[1] == path or best[0] < 1024:
        return ""
    return f" (the largest is {best[1]}, {best[0]:,} characters)"
