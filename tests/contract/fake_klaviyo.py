"""FakeKlaviyo: a tiny in-memory stand-in for Klaviyo's profiles and lists endpoints, for client tests.

It is a *fake*, not an emulator: it knows seven routes, checks the private key and the ``revision``
header, pages with opaque cursors, answers in Klaviyo's JSON:API shapes (``links``, empty
``relationships``, ``errors`` with ``source.pointer``, ``x-klaviyo-req-id``), and refuses what it does
not implement (``filter``, ``sort``, other routes) instead of pretending. The sandbox
(``klaviyo_sandbox``) is the faithful emulator; this fake exists so the client's contract can
be tested without it.

Example::

    fake = FakeKlaviyo()
    client = KlaviyoClient(api_key=fake.api_key, transport=fake.transport(), clock=ManualClock())
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx

__all__ = ["FakeKlaviyo"]

Json = dict[str, Any]
Handler = Callable[[httpx.Request, "re.Match[str]"], httpx.Response]

MAX_PAGE_SIZE = 100


def _error(status: int, code: str, title: str, detail: str, source: Json | None = None, **extra: Any) -> Json:
    err: Json = {"id": f"err-{status}", "status": status, "code": code, "title": title, "detail": detail}
    if source:
        err["source"] = source
    err.update(extra)
    return {"errors": [err]}


class FakeKlaviyo:
    """An in-memory Klaviyo with profiles, lists and list membership (see module docstring).

    Args:
        api_key: the one private key it accepts.
        base_url: the origin it writes into ``links`` (Klaviyo's own by default).
        default_page_size: page size when the request gives none (Klaviyo's is 20).
    """

    def __init__(
        self,
        api_key: str = "pk_fake_0123456789abcdef",
        *,
        base_url: str = "https://a.klaviyo.com",
        default_page_size: int = 20,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.default_page_size = default_page_size
        self.profiles: dict[str, Json] = {}
        self.lists: dict[str, Json] = {}
        self.members: dict[str, list[str]] = {}
        self.requests: list[httpx.Request] = []
        self._ids = itertools.count(1)
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"/api/profiles/?"), self._list_profiles),
            ("POST", re.compile(r"/api/profiles/?"), self._create_profile),
            ("GET", re.compile(r"/api/profiles/(?P<id>[^/]+)/?"), self._get_profile),
            ("GET", re.compile(r"/api/lists/?"), self._list_lists),
            ("POST", re.compile(r"/api/lists/?"), self._create_list),
            ("GET", re.compile(r"/api/lists/(?P<id>[^/]+)/?"), self._get_list),
            ("GET", re.compile(r"/api/lists/(?P<id>[^/]+)/profiles/?"), self._list_members),
            ("POST", re.compile(r"/api/lists/(?P<id>[^/]+)/relationships/profiles/?"), self._add_members),
        ]

    # -- wiring ----------------------------------------------------------------------------
    def transport(self) -> httpx.MockTransport:
        """A transport that answers every request from this fake (sync and async clients)."""
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as Klaviyo would (for the routes it knows)."""
        self.requests.append(request)
        if request.headers.get("authorization") != f"Klaviyo-API-Key {self.api_key}":
            return self._respond(
                401,
                _error(
                    401,
                    "not_authenticated",
                    "Authentication credentials were not provided.",
                    "Missing or invalid private key.",
                ),
            )
        if not request.headers.get("revision"):
            return self._respond(
                400,
                _error(400, "invalid", "Invalid input.", "A revision header is required.", {"header": "revision"}),
            )
        for param in ("filter", "sort"):
            if param in request.url.params:
                detail = f"FakeKlaviyo does not implement {param}=; use the sandbox for that."
                return self._respond(400, _error(400, "invalid", "Invalid input.", detail, {"parameter": param}))
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.url.path)
            if match and method == request.method:
                return handler(request, match)
        return self._respond(
            404,
            _error(404, "not_found", "Not found.", f"FakeKlaviyo has no route {request.method} {request.url.path}."),
        )

    def seed_profiles(self, count: int, *, domain: str = "example.com") -> list[str]:
        """Add ``count`` profiles directly (no HTTP); returns their ids in creation order."""
        return [self._store_profile({"email": f"person{i}@{domain}"}) for i in range(count)]

    # -- helpers ---------------------------------------------------------------------------
    def _respond(self, status: int, body: Json | None = None) -> httpx.Response:
        headers = {"x-klaviyo-req-id": f"req-{len(self.requests)}"}
        if body is None:
            return httpx.Response(status, headers=headers)
        headers["content-type"] = "application/vnd.api+json"
        return httpx.Response(status, headers=headers, content=json.dumps(body).encode())

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def _resource(self, rtype: str, rid: str, attributes: Json, relationships: tuple[str, ...]) -> Json:
        collection = "profiles" if rtype == "profile" else "lists"
        rels = {
            name: {"links": {"self": f"{self.base_url}/api/{collection}/{rid}/relationships/{name}/"}}
            for name in relationships
        }
        return {
            "type": rtype,
            "id": rid,
            "attributes": attributes,
            "relationships": rels,
            "links": {"self": f"{self.base_url}/api/{collection}/{rid}/"},
        }

    def _profile(self, pid: str) -> Json:
        return self._resource("profile", pid, self.profiles[pid], ("lists", "segments"))

    def _list(self, lid: str) -> Json:
        return self._resource("list", lid, self.lists[lid], ("profiles", "tags"))

    def _page(self, request: httpx.Request, ids: list[str], render: Callable[[str], Json]) -> httpx.Response:
        params = request.url.params
        try:
            size = int(params.get("page[size]", self.default_page_size))
        except ValueError:
            size = 0
        if not 1 <= size <= MAX_PAGE_SIZE:
            detail = f"page[size] must be between 1 and {MAX_PAGE_SIZE}."
            return self._respond(400, _error(400, "invalid", "Invalid input.", detail, {"parameter": "page[size]"}))
        start = 0
        cursor = params.get("page[cursor]")
        if cursor:
            try:
                start = int(base64.urlsafe_b64decode(cursor.encode()).decode())
            except ValueError:
                detail = "The page cursor is not valid."
                return self._respond(
                    400, _error(400, "invalid", "Invalid input.", detail, {"parameter": "page[cursor]"})
                )
        chunk = ids[start : start + size]
        links: Json = {"self": str(request.url), "next": None, "prev": None}
        if start + size < len(ids):
            nxt = base64.urlsafe_b64encode(str(start + size).encode()).decode()
            query = urlencode({"page[size]": size, "page[cursor]": nxt})
            links["next"] = f"{self.base_url}{request.url.path}?{query}"
        return self._respond(200, {"data": [render(i) for i in chunk], "links": links})

    def _body(self, request: httpx.Request) -> Json | httpx.Response:
        try:
            body = json.loads(request.content or b"null")
        except ValueError:
            return self._respond(
                400, _error(400, "parse_error", "Malformed JSON.", "The body is not JSON.", {"pointer": "/"})
            )
        if not isinstance(body, dict) or "data" not in body:
            return self._respond(
                400, _error(400, "invalid", "Invalid input.", "The body needs a data member.", {"pointer": "/data"})
            )
        return body

    def _store_profile(self, attributes: Json) -> str:
        pid = self._new_id("01PROF")
        self.profiles[pid] = {
            "email": None,
            "phone_number": None,
            "external_id": None,
            "first_name": None,
            "last_name": None,
            "properties": {},
            **attributes,
        }
        return pid

    # -- profiles --------------------------------------------------------------------------
    def _list_profiles(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        return self._page(request, list(self.profiles), self._profile)

    def _get_profile(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        pid = match["id"]
        if pid not in self.profiles:
            return self._respond(
                404, _error(404, "not_found", "Not found.", f"A profile with id {pid} does not exist.")
            )
        return self._respond(200, {"data": self._profile(pid), "links": {"self": str(request.url)}})

    def _create_profile(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        body = self._body(request)
        if isinstance(body, httpx.Response):
            return body
        data = body["data"]
        if not isinstance(data, dict) or data.get("type") != "profile":
            detail = "The resource type must be 'profile'."
            return self._respond(400, _error(400, "invalid", "Invalid input.", detail, {"pointer": "/data/type"}))
        attributes = data.get("attributes")
        if not isinstance(attributes, dict):
            return self._respond(
                400,
                _error(400, "invalid", "Invalid input.", "attributes is required.", {"pointer": "/data/attributes"}),
            )
        for key in ("email", "phone_number", "external_id", "first_name", "last_name"):
            if key in attributes and not isinstance(attributes[key], str | None):
                detail = f"'{attributes[key]}' is not of type 'string'."
                pointer = f"/data/attributes/{key}"
                return self._respond(400, _error(400, "invalid", "Invalid input.", detail, {"pointer": pointer}))
        if not any(attributes.get(k) for k in ("email", "phone_number", "external_id")):
            detail = "One of email, phone_number or external_id is required."
            return self._respond(400, _error(400, "invalid", "Invalid input.", detail, {"pointer": "/data/attributes"}))
        email = attributes.get("email")
        existing = next((pid for pid, p in self.profiles.items() if email and p.get("email") == email), None)
        if existing is not None:
            return self._respond(
                409,
                _error(
                    409,
                    "duplicate_profile",
                    "Conflict.",
                    "A profile already exists with one of these identifiers.",
                    meta={"duplicate_profile_id": existing},
                ),
            )
        pid = self._store_profile(attributes)
        return self._respond(
            201, {"data": self._profile(pid), "links": {"self": f"{self.base_url}/api/profiles/{pid}/"}}
        )

    # -- lists -----------------------------------------------------------------------------
    def _list_lists(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        return self._page(request, list(self.lists), self._list)

    def _get_list(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        lid = match["id"]
        if lid not in self.lists:
            return self._respond(404, _error(404, "not_found", "Not found.", f"A list with id {lid} does not exist."))
        return self._respond(200, {"data": self._list(lid), "links": {"self": str(request.url)}})

    def _create_list(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        body = self._body(request)
        if isinstance(body, httpx.Response):
            return body
        data = body["data"]
        name = (data.get("attributes") or {}).get("name") if isinstance(data, dict) else None
        if not isinstance(name, str) or not name:
            detail = "A list needs a name."
            return self._respond(
                400, _error(400, "invalid", "Invalid input.", detail, {"pointer": "/data/attributes/name"})
            )
        lid = self._new_id("L")
        self.lists[lid] = {"name": name, "opt_in_process": "single_opt_in"}
        self.members[lid] = []
        return self._respond(201, {"data": self._list(lid), "links": {"self": f"{self.base_url}/api/lists/{lid}/"}})

    def _list_members(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        lid = match["id"]
        if lid not in self.lists:
            return self._respond(404, _error(404, "not_found", "Not found.", f"A list with id {lid} does not exist."))
        return self._page(request, self.members[lid], self._profile)

    def _add_members(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        lid = match["id"]
        if lid not in self.lists:
            return self._respond(404, _error(404, "not_found", "Not found.", f"A list with id {lid} does not exist."))
        body = self._body(request)
        if isinstance(body, httpx.Response):
            return body
        linkage = body["data"]
        if not isinstance(linkage, list):
            detail = "data must be a list of profile identifiers."
            return self._respond(400, _error(400, "invalid", "Invalid input.", detail, {"pointer": "/data"}))
        for i, item in enumerate(linkage):
            pid = item.get("id") if isinstance(item, dict) else None
            if not isinstance(item, dict) or item.get("type") != "profile" or pid not in self.profiles:
                detail = f"Profile {pid!r} does not exist."
                return self._respond(400, _error(400, "invalid", "Invalid input.", detail, {"pointer": f"/data/{i}"}))
            if pid not in self.members[lid]:
                self.members[lid].append(pid)
        return self._respond(204)
