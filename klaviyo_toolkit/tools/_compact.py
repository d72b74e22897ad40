"""Compact a JSON:API document for a model: fewer tokens, same facts.

- ``links`` dropped (``next_cursor`` given instead), ``attributes`` flattened into each record;
- ``relationships`` that are empty dropped, others reduced to ids, with ``included`` records folded
  in where the relationship points at one;
- a shared ``type`` said once; the whole capped at ``max_chars`` with a note of what was cut.

The raw document is untouched (tools return it as the message *artifact* for code to use).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["compact_document"]

Json = dict[str, Any]
#: Included records by (type, id), as the raw document gives them (either may be missing).
Index = Mapping[tuple[Any, Any], Json]


def _flatten(resource: Mapping[str, Any], index: Index, fold: bool) -> Json:
    out: Json = {"id": resource.get("id"), "type": resource.get("type")}
    for key, value in (resource.get("attributes") or {}).items():
        if value is None or value == {} or value == []:
            continue
        out[key if key not in ("id", "type") else f"attr_{key}"] = value
    for name, rel in (resource.get("relationships") or {}).items():
        data = rel.get("data") if isinstance(rel, Mapping) else None
        if data in (None, [], {}):
            continue
        if isinstance(data, list):
            items = [index.get((d.get("type"), d.get("id"))) if fold else None for d in data]
            out[name] = [it if it is not None else d.get("id") for it, d in zip(items, data, strict=True)]
        elif isinstance(data, Mapping):
            folded = index.get((data.get("type"), data.get("id"))) if fold else None
            out[name] = folded if folded is not None else data.get("id")
    return out


def _next_cursor(links: Any) -> str | None:
    from urllib.parse import parse_qs, urlsplit

    if not isinstance(links, Mapping) or not links.get("next"):
        return None
    query = parse_qs(urlsplit(str(links["next"])).query)
    for key in ("page[cursor]", "page_cursor"):
        if key in query:
            return query[key][0]
    return str(links["next"])


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str))


def _trim_strings(value: Any, limit: int) -> tuple[Any, int]:
    """Cut long strings (HTML bodies, templates) to ``limit`` chars; returns (value, chars cut)."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…", len(value) - limit
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


def compact_document(body: Any, *, max_chars: int = 6000) -> Json:
    """The model's view of a response body (see module docstring)."""
    if body is None:
        return {"ok": True}
    if not isinstance(body, Mapping) or "data" not in body:
        out: Json = {"result": body}
        if _size(out) > max_chars:
            text = json.dumps(body, default=str)
            out = {"result": text[: max_chars - 200], "note": f"cut {len(text) - max_chars + 200} characters"}
        return out
    included = [r for r in body.get("included") or [] if isinstance(r, Mapping)]
    bare_index: Index = {(r.get("type"), r.get("id")): _flatten(r, {}, False) for r in included}
    for rec in bare_index.values():
        rec.pop("type", None)
    data = body.get("data")
    many = isinstance(data, list)
    primary: list[Any] = data if isinstance(data, list) else [data]
    records = [_flatten(r, bare_index, True) for r in primary if isinstance(r, Mapping)]
    out = {}
    types = {r.get("type") for r in records}
    if len(types) == 1:
        out["type"] = types.pop()
        for r in records:
            r.pop("type", None)
    cursor = _next_cursor(body.get("links"))
    if many:
        out["count"] = len(records)
        out["data"] = records
    else:
        out["data"] = records[0] if records else None
    if cursor:
        out["next_cursor"] = cursor
    if _size(out) <= max_chars:
        return out
    # Over the cap: first shorten long strings, then drop records from the end.
    out, cut_chars = _trim_strings(out, 500)
    notes = []
    if cut_chars:
        notes.append(f"long text values shortened ({cut_chars} characters cut)")
    if many:
        kept = list(out["data"])
        total = len(kept)
        while kept and _size({**out, "data": kept}) > max_chars - 300:
            kept.pop()
        if len(kept) < total:
            out["data"] = kept
            notes.append(
                f"showing {len(kept)} of {total} records; ask for fewer fields (fields_*) or a smaller "
                "page_size to see the rest"
            )
    if _size(out) > max_chars:
        text = json.dumps(out, default=str)
        out = {"partial": text[: max_chars - 300]}
        notes.append("record too large; showing its start")
    out["note"] = "; ".join(notes) if notes else "output shortened"
    return out
