"""Property-based checks of the served sandbox against Klaviyo's spec, one operation at a time.

For each operation, hypothesis draws requests (seeded, so a run is reproducible):

- **positive** cases: valid requests with randomly chosen optional parts — sparse fieldsets,
  ``include``, ``additional-fields``, ``sort``, page sizes, filters built from the operation's
  allowed fields, operators and value types (values from the account's own data when there is
  some), and for writes the conformance sweep's valid arguments plus optional attributes drawn from
  their schemas. The answer must be 2xx, or a 4xx that is Klaviyo's error document.
- **negative** cases: requests the spec or Klaviyo's rules refuse — an unknown query parameter, a
  value outside an enum, a page size out of range, an unparsable or disallowed filter, a quoted
  datetime, a bad revision, no or a wrong key; for writes a body that is not JSON, lacks ``data`` or a
  required attribute, has a value of the wrong type, an unknown attribute or the wrong ``type``. The
  answer must be a 4xx with Klaviyo's error document.

Every answer is checked against the spec's schema for its status (``catalog.load_schemas()``, the
generated copy of Klaviyo's OpenAPI schemas, ``oneOf`` read as ``anyOf`` as the generator does,
because the spec's ``oneOf`` alternatives overlap), with formats; a sparse fieldset may leave out
attributes the spec marks required (JSON:API: "MUST NOT include additional fields"). A 5xx, a
document that breaks its schema, a wrong content type, missing ``RateLimit-*`` headers or an
accepted negative case is a failure. ``check()`` returns a ``Tally``; the slow test set asserts it
is clean, ``benchmarks/sandbox_conformance.py`` runs more cases and prints the figures.
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from klaviyo_sandbox import DEMO_KEY, PUBLIC_KEY, Sandbox
from klaviyo_toolkit.catalog import Operation
from klaviyo_toolkit.errors import KlaviyoError
from tests.sandbox.sweep import minimal_args
from tests.sandbox.test_conformance import ARGS, Fixtures, spec_validator

Json = dict[str, Any]
REVISION = "2026-07-15"
_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -_.@", min_size=1, max_size=12)


@dataclass
class Tally:
    """What the cases of one operation found."""

    operation: str
    method: str
    positive: int = 0
    negative: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    accepted_negatives: list[str] = field(default_factory=list)
    accepted_positives: int = 0

    @property
    def cases(self) -> int:
        return self.positive + self.negative

    @property
    def clean(self) -> bool:
        return not (self.server_errors or self.mismatches or self.accepted_negatives)

    def problems(self) -> list[str]:
        return [*self.server_errors, *self.mismatches, *self.accepted_negatives]


@dataclass
class Request:
    method: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sparse: dict[str, set[str]] = field(default_factory=dict)
    form: dict[str, Any] | None = None
    files: dict[str, tuple[str, bytes]] | None = None
    why: str = ""


# -- the answer checks ---------------------------------------------------------------------------------
def problem(op: Operation, request: Request, response: httpx.Response) -> str | None:
    """Why an answer breaks the spec (None when it conforms): schema, content type, headers."""
    status = response.status_code
    if status != 429 and "ratelimit-reset" not in response.headers:
        return f"{status} without RateLimit-* headers"
    if status == 429 and "retry-after" not in response.headers:
        return "429 without Retry-After"
    if not response.content:
        name = op.record["responses"].get(str(status))
        return None if status < 400 and name is None else f"{status} with an empty body"
    if response.headers.get("content-type") != "application/vnd.api+json":
        return f"{status} answered as {response.headers.get('content-type')}"
    body = response.json()
    if status >= 400:
        name = "ResponseClientError" if status < 500 else "ResponseServerError"
    else:
        responses: dict[str, str | None] = op.record["responses"]
        if str(status) not in responses:
            return f"status {status} is not one the spec documents ({', '.join(sorted(responses))})"
        name = responses[str(status)] or ""
        if not name:
            return f"status {status} has no body in the spec, got {response.text[:80]}"
    errors = [e for e in spec_validator(name).iter_errors(body) if not _sparse(e, body, request.sparse)]
    if errors:
        first = sorted(errors, key=lambda e: list(e.absolute_path))[0]
        where = "/" + "/".join(str(p) for p in first.absolute_path)
        return f"{status}: {len(errors)} schema error(s) against {name}, first at {where}: {first.message[:160]}"
    return None


def _sparse(error: Any, body: Any, sparse: dict[str, set[str]]) -> bool:
    """Whether a sparse fieldset explains ``error``: a required attribute of a type asked for with
    ``fields[type]`` and not among the fields asked for (checked in every branch of an anyOf)."""
    if not sparse:
        return False
    if error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[Any, list[Any]] = collections.defaultdict(list)
        for sub in error.context:
            branches[sub.schema_path[0] if sub.schema_path else None].append(sub)
        return any(all(_sparse(s, body, sparse) for s in subs) for subs in branches.values())
    if error.validator != "required":
        return False
    path = list(error.absolute_path)
    if "attributes" not in path:
        return False
    at = len(path) - 1 - path[::-1].index("attributes")
    node: Any = body
    for key in path[:at]:
        node = node[key]
    asked = sparse.get(str(node.get("type"))) if isinstance(node, dict) else None
    if asked is None:
        return False
    prefix = ".".join(str(p) for p in path[at + 1 :])
    missing = [f"{prefix}.{m}" if prefix else m for m in error.validator_value if m not in error.instance]
    return all(not any(m == a or m.startswith(a + ".") for a in asked) for m in missing)


# -- drawing requests -------------------------------------------------------------------------------------
class Cases:
    """Strategies for the requests of one sandbox's operations (values from its data)."""

    def __init__(self, sb: Sandbox, fixtures: Fixtures) -> None:
        self.sb = sb
        self.fixtures = fixtures
        self.client = fixtures.client

    # -- the valid request of the conformance sweep, as a starting point ---------------------------------
    def base(self, op: Operation) -> tuple[Json, Request] | None:
        try:
            args = minimal_args(op, self.sb)
            if op.operation_id in ARGS:
                args.update(ARGS[op.operation_id](self.fixtures))
            prepared = self.client.prepare(op, args)
        except KlaviyoError:
            return None
        return args, Request(op.method, prepared.path, list(prepared.params), prepared.json_body,
                             form=prepared.form, files=prepared.files)

    # -- query parts ----------------------------------------------------------------------------------
    def query(self, op: Operation) -> st.SearchStrategy[list[tuple[str, str, set[str] | None]]]:
        """Optional query parameters: (wire, value, sparse fields asked for)."""
        parts: list[st.SearchStrategy[tuple[str, str, set[str] | None] | None]] = []
        for arg in op.args:
            if arg["in"] != "query" or arg.get("required"):
                continue
            wire, schema = arg["wire"], arg["shape"]["schema"]
            enum = (schema.get("items") or {}).get("enum") or schema.get("enum")
            if wire.startswith(("fields[", "additional-fields[")) or wire == "include":
                if enum:
                    parts.append(st.one_of(st.none(), st.lists(st.sampled_from(enum), min_size=1, max_size=4,
                                                               unique=True).map(
                        lambda items, w=wire: (w, ",".join(items), set(items) if w.startswith("fields[") else None))))
            elif wire == "sort" and enum:
                parts.append(st.one_of(st.none(), st.sampled_from(enum).map(lambda v, w=wire: (w, v, None))))
            elif wire == "page[size]":
                low, high = int(schema.get("minimum", 1)), int(schema.get("maximum", 100))
                parts.append(st.one_of(st.none(), st.integers(low, high).map(lambda v, w=wire: (w, str(v), None))))
            elif wire == "filter" and op.filters:
                parts.append(st.one_of(st.none(), self.filter(op).map(lambda v, w=wire: (w, v, None))))
        return st.tuples(*parts).map(lambda got: [p for p in got if p is not None]) if parts else st.just([])

    def filter(self, op: Operation) -> st.SearchStrategy[str]:
        comparisons = []
        for name, spec in op.filters.items():
            for operator in spec.get("operators", []):
                if operator == "has":
                    comparisons.append(st.just(f"has({name})"))
                    continue
                listed = operator in ("any", "contains-any", "contains-all") or operator in spec.get(
                    "list_operators", [])
                value = self.value(spec, listed and operator != "equals")
                comparisons.append(value.map(lambda v, o=operator, n=name: f"{o}({n},{v})"))
        one = st.one_of(*comparisons)
        return st.one_of(one, st.lists(one, min_size=2, max_size=3).map(lambda xs: f"and({','.join(xs)})"))

    def value(self, spec: Json, listed: bool) -> st.SearchStrategy[str]:
        if spec.get("format") == "date-time":
            single = st.datetimes(min_value=_dt.datetime(2020, 1, 1), max_value=_dt.datetime(2027, 1, 1)).map(
                lambda d: d.replace(microsecond=0).isoformat() + "Z")
        elif spec.get("type") in ("integer", "number"):
            single = st.integers(0, 10**9).map(str)
        elif spec.get("type") == "boolean":
            single = st.sampled_from(["true", "false"])
        else:
            single = _TEXT.map(lambda t: "'" + t.replace("'", "") + "'")
        if listed:
            return st.lists(single, min_size=1, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]")
        return single

    # -- negative query parts ------------------------------------------------------------------------------
    def bad_query(self, op: Operation) -> st.SearchStrategy[tuple[str, str, str]]:
        """(wire, value, why) that Klaviyo refuses with a 400."""
        bad: list[st.SearchStrategy[tuple[str, str, str]]] = [
            _TEXT.map(lambda t: (f"zz_{t.strip() or 'x'}", "1", "unknown query parameter")),
        ]
        for arg in op.args:
            if arg["in"] != "query":
                continue
            wire, schema = arg["wire"], arg["shape"]["schema"]
            enum = (schema.get("items") or {}).get("enum") or schema.get("enum")
            if enum and wire != "filter":
                bad.append(_TEXT.filter(lambda t, e=enum: t not in e).map(
                    lambda t, w=wire: (w, t, "a value outside the enum")))
            if wire == "page[size]":
                high = int(schema.get("maximum", 100))
                bad.append(st.sampled_from([0, high + 1, -3]).map(lambda v, w=wire: (w, str(v), "page size range")))
            if wire == "filter" and op.filters:
                name, spec = next(iter(op.filters.items()))
                bad.append(st.sampled_from([
                    (wire, "equals(", "unparsable filter"),
                    (wire, "equals(zz_not_a_field,'x')", "a field that cannot be filtered"),
                    (wire, f"ends-with({name},'x')" if "ends-with" not in spec.get("operators", [])
                     else "equals(zz,'x')", "an operator the field does not allow"),
                ]))
                dated = [n for n, s in op.filters.items() if s.get("format") == "date-time"]
                if dated:
                    operator = op.filters[dated[0]]["operators"][0]
                    bad.append(st.just((wire, f"{operator}({dated[0]},'2024-01-01T00:00:00Z')",
                                        "a quoted datetime")))
                    bad.append(st.sampled_from(["2024-13-01T00:00:00Z", "2024-02-30", "2024-01-01T24:00:00Z"]).map(
                        lambda when, w=wire, o=operator, f=dated[0]: (w, f"{o}({f},{when})",
                                                                       "a datetime that is no real moment")))
        return st.one_of(*bad)

    # -- bodies ------------------------------------------------------------------------------------------
    def optional_attributes(self, op: Operation) -> st.SearchStrategy[Json]:
        """Optional scalar body arguments, drawn from their schemas (the client builds the envelope)."""
        parts = {}
        for arg in op.args:
            shape = arg["shape"]
            if arg["in"] != "body" or arg.get("required") or shape.get("kind") != "scalar":
                continue
            schema = dict(shape["schema"])
            if schema.get("type") == "string" and "enum" not in schema and "format" not in schema:
                parts[arg["name"]] = st.one_of(st.none(), _TEXT)
            else:
                parts[arg["name"]] = st.one_of(st.none(), from_schema(schema))
        if not parts:
            return st.just({})
        return st.fixed_dictionaries(parts).map(lambda d: {k: v for k, v in d.items() if v is not None})


def mutations(op: Operation, body: Any) -> list[tuple[str, Any]]:
    """Ways to break a valid write body: (why, body or raw bytes)."""
    out: list[tuple[str, Any]] = [("a body that is not JSON", b"{not json"), ("no data", {"meta": {}})]
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict):
        out.append(("the wrong type", {**body, "data": {**data, "type": "zz-not-a-type"}}))
        attrs = data.get("attributes")
        if isinstance(attrs, dict):
            def with_attributes(changed: Json) -> Json:
                return {**body, "data": {**data, "attributes": changed}}

            out.append(("an unknown attribute", with_attributes({**attrs, "zz_not_a_field": 1})))
            if attrs:  # numbers JSON has no room for: a 400, never a 500 later (a report adding them up)
                first = next(iter(attrs))
                out.append((f"{first} a number no double holds", with_attributes({**attrs, first: 10**400})))
                out.append((f"{first} NaN", json.dumps(with_attributes({**attrs, first: float("nan")})).encode()))
            for key, value in attrs.items():
                if isinstance(value, str):
                    out.append((f"{key} of the wrong type", with_attributes({**attrs, key: 12345})))
                    break
            required = _required_attributes(op)
            for key in required:
                if key in attrs:
                    rest = {k: v for k, v in attrs.items() if k != key}
                    out.append((f"no {key}", with_attributes(rest)))
                    break
    return out


def _required_attributes(op: Operation) -> list[str]:
    return [a["wire"] for a in op.args if a["in"] == "body" and a.get("required") and a.get("section") == "attributes"]


# -- running them ----------------------------------------------------------------------------------------
def send(http: httpx.Client, request: Request) -> httpx.Response:
    headers = {"revision": REVISION, "Authorization": f"Klaviyo-API-Key {DEMO_KEY}",
               "Content-Type": "application/vnd.api+json", **request.headers}
    url = request.path + ("?" + "&".join(f"{quote(k)}={quote(v, safe=',')}" for k, v in request.params)
                          if request.params else "")
    if request.form is not None or request.files is not None:  # a file upload: multipart, as the client sends it
        headers.pop("Content-Type")
        return http.request(request.method, url, data=request.form or {}, files=request.files or {},
                            headers=headers)
    content = request.raw if request.raw is not None else (
        json.dumps(request.body).encode() if request.body is not None else None)
    return http.request(request.method, url, content=content, headers=headers)


def check(sb: Sandbox, http: httpx.Client, op: Operation, cases: Cases, *, examples: int, seed_value: int) -> Tally:
    """Run ``examples`` positive and about as many negative cases of ``op``; never raises for a finding."""
    tally = Tally(op.operation_id, op.method)
    started = cases.base(op)
    if started is None:
        tally.mismatches.append("no valid base request could be made for this operation")
        return tally
    args, base = started
    client_side = op.client_side

    def record(request: Request, response: httpx.Response, negative: bool) -> None:
        status = response.status_code
        tally.statuses[status] += 1
        label = f"{request.method} {request.path} {request.params} ({request.why or 'positive'})"
        if status >= 500:
            tally.server_errors.append(f"{status} for {label}: {response.text[:200]}")
            return
        found = problem(op, request, response)
        if found:
            tally.mismatches.append(f"{found} for {label}")
        if negative and status < 400:
            tally.accepted_negatives.append(f"{status} for {label}")
        elif not negative and status < 400:
            tally.accepted_positives += 1

    def positive(data: st.DataObject) -> None:
        request = Request(base.method, base.path, list(base.params), base.body, form=base.form, files=base.files)
        if op.method == "GET":
            chosen = data.draw(cases.query(op), label="query")
            taken = {w for w, _ in request.params}
            for wire, value, sparse in chosen:
                if wire == "filter" and "filter" in taken:
                    continue  # the operation needs its own filter (a required one stays as it is)
                request.params.append((wire, value))
                if sparse is not None:
                    request.sparse[wire[7:-1]] = sparse
        elif op.body is not None and op.body.get("root") == "resource":
            extra = data.draw(cases.optional_attributes(op), label="attributes")
            try:
                request.body = cases.client.prepare(op, {**args, **extra}).json_body
            except KlaviyoError:
                request.body = base.body  # a drawn value the client itself refuses: keep the base body
        if client_side:
            request.params.append(("company_id", PUBLIC_KEY))
        tally.positive += 1
        record(request, send(http, request), negative=False)

    kinds = ["query", "body", "revision", "auth"] if op.body is not None else ["query", "revision", "auth"]

    def negative(data: st.DataObject, kind: str) -> None:
        request = Request(base.method, base.path, list(base.params), base.body, form=base.form, files=base.files)
        if client_side and kind != "auth":
            request.params.append(("company_id", PUBLIC_KEY))
        if kind == "query":
            wire, value, why = data.draw(cases.bad_query(op), label="bad query")
            request.params = [(w, v) for w, v in request.params if w != wire] + [(wire, value)]
            request.why = why
        elif kind == "revision":
            request.headers["revision"] = data.draw(st.sampled_from(["2031-01-15", "2019-01-01", "2026-07-16",
                                                                     "latest"]), label="revision")
            request.why = f"revision {request.headers['revision']}"
        elif kind == "auth":
            if client_side:
                request.params.append(("company_id", "NotAPublicKey"))
                request.why = "a wrong public key"
            else:
                request.headers["Authorization"] = data.draw(st.sampled_from(["", "Klaviyo-API-Key pk_wrong",
                                                                              "Bearer nope"]), label="auth")
                request.why = f"authorization {request.headers['Authorization']!r}"
        elif request.files is not None:
            request.files, request.why = {}, "no file"
        else:
            why, broken = data.draw(st.sampled_from(mutations(op, base.body)), label="mutation")
            if isinstance(broken, bytes):
                request.raw = broken
            else:
                request.body = broken
            request.why = why
        tally.negative += 1
        record(request, send(http, request), negative=True)

    _run(positive, examples, seed_value)
    per_kind = -(-examples // len(kinds))  # every kind of breakage, about ``examples`` in all
    for n, kind in enumerate(kinds):
        _run(_bound(negative, kind), per_kind, seed_value + 1 + n)
    return tally


def _bound(body: Callable[[st.DataObject, str], None], kind: str) -> Callable[[st.DataObject], None]:
    def run(data: st.DataObject) -> None:
        body(data, kind)

    return run


def _run(body: Callable[[st.DataObject], None], examples: int, seed_value: int) -> None:
    """``body`` on ``examples`` seeded draws (generation only: findings are recorded, not shrunk)."""
    test = settings(max_examples=examples, database=None, deadline=None, derandomize=False,
                    phases=[Phase.generate], suppress_health_check=list(HealthCheck))(
        seed(seed_value)(given(st.data())(body)))
    test()
