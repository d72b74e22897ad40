"""The one-line response summary an audit row keeps (JSON:API aware, redacted, capped)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .redact import redact, redact_text

__all__ = ["summarize_response"]

_MAX_SUMMARY_CHARS = 300


def summarize_response(body: Any, *, limit: int = _MAX_SUMMARY_CHARS) -> str:
    """A one-line description of a response body (JSON:API aware), redacted and capped at ``limit``.

    Example: ``"3 profiles: 01H1, 01H2, 01H3 (more pages)"``, ``"campaign 01HX"`` or
    ``"campaign-values-report: 2 results"`` (a report, which has no id).
    """
    if body is None or body == "":
        return "no content"
    text: str
    if isinstance(body, Mapping) and "data" in body:
        data = body["data"]
        more = " (more pages)" if isinstance(body.get("links"), Mapping) and body["links"].get("next") else ""
        if isinstance(data, list):
            kinds = sorted({str(item["type"]) for item in data if isinstance(item, Mapping) and item.get("type")})
            ids = [str(item.get("id")) for item in data[:5] if isinstance(item, Mapping)]
            tail = ", …" if len(data) > 5 else ""
            named = "/".join(_counted(kind, len(data)) for kind in kinds or ["item"])
            text = f"{len(data)} {named}: {', '.join(ids)}{tail}{more}" if ids else f"{len(data)} {named}{more}"
        elif isinstance(data, Mapping):
            kind, ident = data.get("type") or "item", data.get("id")
            text = str(kind) if ident is None else f"{kind} {ident}"
            attributes = data.get("attributes")
            results = attributes.get("results") if isinstance(attributes, Mapping) else None
            if isinstance(results, list):
                text += f": {len(results)} {_counted('result', len(results))}"
        else:
            text = "data: null"
    else:
        text = body if isinstance(body, str) else json.dumps(redact(body), ensure_ascii=False, default=str)
    text = redact_text(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _counted(kind: str, count: int) -> str:
    """A JSON:API type named for ``count`` of it: ``profile``, ``profiles``, ``catalog-categories``."""
    if count == 1:
        return kind
    if re.search(r"[^aeiou]y$", kind):
        return kind[:-1] + "ies"
    return kind + ("es" if kind.endswith(("s", "x", "ch", "sh")) else "s")
