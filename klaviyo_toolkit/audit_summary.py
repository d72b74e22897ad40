"""The one-line response summary an audit row keeps (JSON:API aware, redacted, capped)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .redact import redact, redact_text

__all__ = ["summarize_response"]

_MAX_SUMMARY_CHARS = 300


def summarize_response(body: Any, *, limit: int = _MAX_SUMMARY_CHARS) -> str:
    """A one-line description of a response body (JSON:API aware), redacted and capped at ``limit``.

    Example: ``"3 profile: 01H1, 01H2, 01H3 (more pages)"`` or ``"campaign 01HX"``.
    """
    if body is None or body == "":
        return "no content"
    text: str
    if isinstance(body, Mapping) and "data" in body:
        data = body["data"]
        more = " (more pages)" if isinstance(body.get("links"), Mapping) and body["links"].get("next") else ""
        if isinstance(data, list):
            kinds = sorted({str(item.get("type")) for item in data if isinstance(item, Mapping)})
            ids = [str(item.get("id")) for item in data[:5] if isinstance(item, Mapping)]
            tail = ", …" if len(data) > 5 else ""
            text = f"{len(data)} {'/'.join(kinds) or 'items'}: {', '.join(ids)}{tail}{more}"
        elif isinstance(data, Mapping):
            text = f"{data.get('type')} {data.get('id')}"
        else:
            text = "data: null"
    else:
        text = body if isinstance(body, str) else json.dumps(redact(body), ensure_ascii=False, default=str)
    text = redact_text(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
