"""Compact a JSON:API document for a model: fewer tokens, same facts.

- ``links`` dropped (``next_cursor`` given instead, or ``next_page_link`` when the next link has no
  ``page[cursor]``), ``attributes`` flattened into each record;
- ``relationships`` that are empty dropped, others reduced to ids, with ``included`` records folded
  in where the relationship points at one;
- a shared ``type`` said once; the whole capped at ``max_chars`` (as serialised for the model) with a
  note of what was cut;
- odd shapes (records or attributes that are not objects, ids that are not identifier objects)
  kept as they came, never an exception.

The raw document is untouched (tools return it as the message *artifact* for code to use).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..redact import redact_text

__all__ = ["compact_document"]

Json = dict[str, Any]
#: Included records by (type, id); only records whose type and id are both strings or ints.
Index = Mapping[tuple[str | int, str | int], Json]


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == []


def _key(resource: Any) -> tuple[str | int, str | int] | None:
    """A resource's (type, id) to look it up by, or None when either is missing or odd (a list...)."""
    if not isinstance(resource, Mapping):
        return None
    kind, rid = resource.get("type"), resource.get("id")
    if isinstance(kind, (str, int)) and isinstance(rid, (str, int)):
        return kind, rid
    return None


def _linkage(item: Any, index: Index, fold: bool) -> Any:
    """A relationship's target: the included record folded in, else its id; odd values as they are."""
    key = _key(item)
    if key is None:
        return item  # not an identifier object ("p1", {"id": None}...): the model sees what came
    folded = index.get(key) if fold else None
    return folded if folded is not None else key[1]


def _flatten(resource: Mapping[str, Any], index: Index, fold: bool) -> Json:
    out: Json = {"id": resource.get("id"), "type": resource.get("type")}
    attributes = resource.get("attributes")
    if isinstance(attributes, Mapping):
        for key, value in attributes.items():
            if not _empty(value):
                out[key if key not in ("id", "type") else f"attr_{key}"] = value
    elif not _empty(attributes):
        out["attributes"] = attributes  # not an object: kept as it came
    relationships = resource.get("relationships")
    if not isinstance(relationships, Mapping):
        if not _empty(relationships):
            out["relationships"] = relationships
        return out
    for name, rel in relationships.items():
        if not isinstance(rel, Mapping):
            if not _empty(rel):
                out[name] = rel
            continue
        data = rel.get("data")
        if _empty(data):
            continue
        out[name] = [_linkage(d, index, fold) for d in data] if isinstance(data, list) else _linkage(data, index, fold)
    return out


def _next_page(links: Any) -> tuple[str | None, str | None]:
    """(cursor, link) of the next page: the ``page[cursor]`` value when the link has one, else the link."""
    from urllib.parse import parse_qs, urlsplit

    if not isinstance(links, Mapping) or not links.get("next"):
        return None, None
    nxt = links["next"]
    if isinstance(nxt, Mapping):  # a JSON:API link object
        nxt = nxt.get("href")
        if not nxt:
            return None, None
    link = str(nxt)
    try:
        query = parse_qs(urlsplit(link).query)
    except ValueError:  # not a URL (e.g. an unclosed IPv6 bracket)
        return None, link
    for key in ("page[cursor]", "page_cursor"):
        if key in query:
            return query[key][0], None
    return None, link


def _size(value: Any) -> int:
    """Length of ``value`` as the tool sends it to the model (see ``KlaviyoTool._finish``)."""
    return len(_dumps(value))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _trim_strings(value: Any, limit: int) -> tuple[Any, int]:
    """Cut long strings (HTML bodies, templates) to ``limit`` chars; returns (value, chars cut)."""
    if isinstance(value, str) and len(value) > limit:
        return redact_text(value)[:limit] + "…", len(value) - limit  # redacted before the cut: no part of a key
    if isinstance(value, dict):
        cut = 0
        out = {}
        for k, v in value.items():
            out[k], c = _trim_strings(v, limit)
            cut += c
        return out, cut
    if isinstance(value, list):
        cut = 0
        items = []
        for v in value:
            item, c = _trim_strings(v, limit)
            items.append(item)
            cut += c
        return items, cut
    return value, 0


def _fit(head: Json, field: str, text: str, note: str, max_chars: int) -> Json:
    """``head`` plus the longest start of ``text`` under ``field`` and a note, within ``max_chars`` once
    serialised: escaping (quotes, backslashes, control characters) counts against the cap too."""
    out = {**head, field: "", "note": note}
    excess = _size(out) - max_chars
    if excess > 0:  # a cap too small even for the note: shorten the note instead
        out["note"] = note[: max(0, len(note) - excess)]
        return out
    low, high = 0, min(len(text), max_chars)  # the longest start that fits lies in [low, high]
    while low < high:
        mid = (low + high + 1) // 2
        if _size({**out, field: text[:mid]}) <= max_chars:
            low = mid
        else:
            high = mid - 1
    out[field] = text[:low]
    return out


def compact_document(body: Any, *, max_chars: int = 6000) -> Json:
    """The model's view of a response body (see module docstring); never raises on odd JSON shapes."""
    try:
        return _compact(body, max_chars)
    except RecursionError:  # nesting near the interpreter's limit: nothing readable to show anyway
        return {"result": None, "note": "the response is nested too deeply to show"}


def _compact(body: Any, max_chars: int) -> Json:
    if body is None:
        return {"ok": True}
    if not isinstance(body, Mapping) or "data" not in body:
        out: Json = {"result": body}
        if _size(out) > max_chars:
            text = _dumps(body)
            out = _fit({}, "result", text, f"cut to fit: showing the start of {len(text)} characters", max_chars)
        return out
    raw_included = body.get("included")
    odd_included: list[Any] = []
    bare_index: dict[tuple[str | int, str | int], Json] = {}
    for r in raw_included if isinstance(raw_included, list) else []:
        key = _key(r)
        if key is None:
            odd_included.append(r)  # nothing can point at it: shown as it came, not dropped
            continue
        rec = _flatten(r, {}, False)
        rec.pop("type", None)
        bare_index[key] = rec
    if not _empty(raw_included) and not isinstance(raw_included, list):
        odd_included.append(raw_included)
    data = body.get("data")
    many = isinstance(data, list)
    primary: list[Any] = data if isinstance(data, list) else [data]
    # Records that are not objects are kept as they are.
    records = [_flatten(r, bare_index, True) if isinstance(r, Mapping) else r for r in primary]
    out = {}
    if records and all(isinstance(r, dict) for r in records):
        kind = records[0].get("type")
        if all(r.get("type") == kind for r in records):
            out["type"] = kind
            for r in records:
                r.pop("type", None)
    cursor, next_link = _next_page(body.get("links"))
    if many:
        out["count"] = len(records)
        out["data"] = records
    else:
        out["data"] = records[0]
    if odd_included:
        out["included"] = odd_included
    if cursor:
        out["next_cursor"] = cursor
    elif next_link:
        # No page[cursor] in the link: the link itself, so the cursor argument never gets a whole URL.
        out["next_page_link"] = next_link
    if _size(out) <= max_chars:
        return out
    # Over the cap: first shorten long strings, then drop records from the end.
    out, cut_chars = _trim_strings(out, 500)
    notes = []
    if cut_chars:
        notes.append(f"long text values shortened ({cut_chars} characters cut)")
    dropped = False
    if many:
        kept = list(out["data"])
        total = len(kept)
        while len(kept) > 1 and _size({**out, "data": kept}) > max_chars - 300:
            kept.pop()
        if len(kept) < total:
            # The next page starts after the whole page: its cursor would skip the records cut here.
            dropped = True
            out["data"] = kept
            for nav_key in ("next_cursor", "next_page_link"):
                out.pop(nav_key, None)
            notes.append(
                f"showing {len(kept)} of {total} records; call again with page_size={len(kept)} (the same "
                "cursor, if any) or fewer fields (fields_*) to see the rest: no next_cursor is given, as "
                "it would skip the records not shown"
            )
    out["note"] = "; ".join(notes) if notes else "output shortened"
    if _size(out) <= max_chars:
        return out
    # Still over: the start of the whole view as text, the next-page pointer kept whole.
    del out["note"]
    nav: Json = {k: out[k] for k in ("next_cursor", "next_page_link") if k in out and not dropped}
    if _size(nav) > max_chars // 4:
        nav = {}  # a link too long to keep whole; it is in the view's text
    notes.append("record too large; showing its start (partial is the view's JSON, cut)")
    return _fit(nav, "partial", _dumps(out), "; ".join(notes), max_chars)
