"""Routing a request to its operation (``_routes.Routes.route``): matched among the routes of the
path's shape, it must answer exactly as matching every route in turn would, for every operation of the
catalog and for paths no operation serves (404, or 405 with the methods allowed)."""

from __future__ import annotations

import itertools
import re
from typing import Any
from urllib.parse import unquote

import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_sandbox._jsonapi import SandboxError
from klaviyo_sandbox._routes import Routes

METHODS = ("GET", "POST", "PATCH", "DELETE", "PUT")


def every_route(routes: Routes, method: str, path: str) -> tuple[str, Any]:
    """The reference: every route tried in routing order, as the sandbox did before it indexed them."""
    allowed = []
    for m, pattern, op in routes._routes:
        match = pattern.match(path)
        if match:
            if m == method:
                return "op", (op.operation_id, {k: unquote(v) for k, v in match.groupdict().items()})
            allowed.append(m)
    return ("405", sorted(set(allowed))) if allowed else ("404", None)


def indexed(routes: Routes, method: str, path: str) -> tuple[str, Any]:
    try:
        op, params = routes.route(method, path)
    except SandboxError as e:
        return (str(e.status), sorted(e.headers["Allow"].split(", ")) if e.status == 405 else None)
    return "op", (op.operation_id, params)


@pytest.fixture(scope="module")
def routes() -> Routes:
    return Sandbox(demo_data=False).routes


def paths(routes: Routes) -> list[str]:
    """Each operation's path with its ids filled in plainly and with characters that are encoded, with
    a trailing slash, a doubled or missing segment, and paths that are no route at all."""
    out: set[str] = {"/", "", "/api", "/api/", "//api/profiles", "/api/nope", "/api/nope/1", "/client/x/y/z/w/v",
                     "api/profiles", "/API/profiles", "/api/profiles//", "/api/profiles/a/b/c/d/e"}
    for op in routes.catalog:
        for value in ("01ABC", "abc%2Fdef", "a%3Fb", "$custom:::$default:::SKU-1", "relationships"):
            path = re.sub(r"\{\w+\}", value, op.path)
            out.update({path, path + "/", path + "//", path + "/extra", path.rsplit("/", 1)[0] + "//x"})
    return sorted(out)


def test_every_path_and_method_routes_as_trying_every_route_would(routes: Routes) -> None:
    checked = 0
    for path, method in itertools.product(paths(routes), METHODS):
        assert indexed(routes, method, path) == every_route(routes, method, path), (method, path)
        checked += 1
    served = {indexed(routes, op.method, re.sub(r"\{\w+\}", "01ABC", op.path))[1][0] for op in routes.catalog}
    assert served == {op.operation_id for op in routes.catalog}  # each operation is reached by its own path
    assert checked > 10_000


def test_an_encoded_slash_stays_inside_its_id(routes: Routes) -> None:
    op, params = routes.route("GET", "/api/profiles/abc%2Fdef")
    assert (op.operation_id, params) == ("get_profile", {"id": "abc/def"})
    with pytest.raises(SandboxError) as refused:
        routes.route("PUT", "/api/profiles/")
    assert refused.value.status == 405 and refused.value.headers["Allow"] == "GET, POST"
