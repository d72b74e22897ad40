"""A parsed Klaviyo response (JSON:API document) and the record of a finished call."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["CallRecord", "KlaviyoResponse", "flatten_resource"]


def flatten_resource(resource: Mapping[str, Any]) -> dict[str, Any]:
    """``{id, type, attributes: {...}}`` -> ``{id, type, ...attributes}`` (relationships kept as ids)."""
    out: dict[str, Any] = {"id": resource.get("id"), "type": resource.get("type")}
    attrs = resource.get("attributes")
    if isinstance(attrs, Mapping):
        for key, value in attrs.items():
            out[key if key not in ("id", "type") else f"attr_{key}"] = value
    return out


@dataclass
class KlaviyoResponse:
    """What a call returned: status, headers, parsed body; helpers for JSON:API documents."""

    operation_id: str
    status: int
    headers: Mapping[str, str]
    body: Any
    url: str = ""

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-klaviyo-req-id") or self.headers.get("x-request-id")

    @property
    def partial_failure(self) -> tuple[str, ...]:
        """The fields Klaviyo ignored while it processed the rest (``X-Klaviyo-Partial-Failure``: an
        invalid phone number beside a valid email, say); empty when it took everything."""
        value = self.headers.get("x-klaviyo-partial-failure") or ""
        return tuple(part.strip() for part in value.split(",") if part.strip())

    @property
    def data(self) -> Any:
        return self.body.get("data") if isinstance(self.body, dict) else None

    @property
    def included(self) -> list[dict[str, Any]]:
        inc = self.body.get("included") if isinstance(self.body, dict) else None
        return list(inc) if isinstance(inc, list) else []

    @property
    def links(self) -> dict[str, Any]:
        links = self.body.get("links") if isinstance(self.body, dict) else None
        return dict(links) if isinstance(links, dict) else {}

    @property
    def next_url(self) -> str | None:
        nxt = self.links.get("next")
        return str(nxt) if nxt else None

    @property
    def next_cursor(self) -> str | None:
        """The ``page[cursor]`` of the next page, if there is one."""
        url = self.next_url
        if not url:
            return None
        query = parse_qs(urlsplit(url).query)
        for key in ("page[cursor]", "page_cursor"):
            if key in query:
                return query[key][0]
        return None

    def resources(self) -> Iterator[dict[str, Any]]:
        """The primary data as a sequence of resource objects (one or many)."""
        data = self.data
        if isinstance(data, list):
            yield from data
        elif isinstance(data, dict):
            yield data


@dataclass
class CallRecord:
    """One attempt of a call, handed to hooks (audit log, metrics). Holds no credentials.

    ``attempts`` is this attempt's number; ``final`` is False for an attempt that was retried.
    """

    operation_id: str
    method: str
    path: str
    params: dict[str, str]
    body: Any
    status: int | None
    request_id: str | None
    attempts: int
    latency: float
    waited: float
    error: BaseException | None = None
    response_body: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    final: bool = True
