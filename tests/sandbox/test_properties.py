"""Property-based checks of the sandbox against Klaviyo's spec: every operation, positive and negative.

Seeded hypothesis cases per operation (``tests/sandbox/properties.py`` says what they are), on the
seeded demo account: GETs first, then writes, deletes last. A finding is a 5xx, an answer that
breaks the spec's schema for its status (or its content type, or the rate-limit headers), or a
negative case answered 2xx. The slow set runs ``EXAMPLES`` of each kind per operation;
``benchmarks/sandbox_conformance.py`` runs more and prints the figures.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import PUBLIC_KEY, Sandbox
from klaviyo_toolkit.catalog import Operation, load_catalog
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.ratelimit import RateLimiter

from .properties import Cases, Request, check, problem, send
from .test_conformance import Fixtures

#: The module's tests share one account and run in order (reads, writes, deletes last): a write may
#: need what an earlier one made (create_coupon_code, the coupon create_coupon made). Split across
#: pytest-xdist workers, each worker's account sees only some of them, so ``python3 dev.py test``
#: keeps a module on one worker (``--dist loadscope``).
EXAMPLES = 15
SEED = 20260715
NOW = _dt.datetime(2026, 11, 25, 15, 0, tzinfo=_dt.UTC).timestamp()


def ordered() -> list[Operation]:
    """Reads first, then writes, deletes last (so what a read names still exists)."""
    return sorted(load_catalog(), key=lambda op: (op.method == "DELETE", op.method != "GET", op.operation_id))


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Sandbox, httpx.Client, Cases]]:
    sb = Sandbox(seed=42, rate_limit_factor=None, clock=ManualClock(NOW))
    client = sb.client(rate_limiter=RateLimiter(factor=None), clock=ManualClock())
    with httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL) as http:
        yield sb, http, Cases(sb, Fixtures(sb, client))
    sb.close()


@pytest.mark.slow
@pytest.mark.parametrize("op", ordered(), ids=lambda op: op.operation_id)
def test_the_operation_holds_to_the_spec(world: tuple[Sandbox, httpx.Client, Cases], op: Operation) -> None:
    sb, http, cases = world
    tally = check(sb, http, op, cases, examples=EXAMPLES, seed_value=SEED)
    assert tally.positive >= 1 and tally.negative >= 3  # hypothesis stops early when there is little to vary
    assert tally.clean, "\n".join(tally.problems()[:5])
    assert tally.accepted_positives > 0, f"no positive case of {op.operation_id} was answered 2xx: {tally.statuses}"


def _hostile(value: Any) -> Any:
    """``value`` with a number no double holds: in place of a number, or added to a free-form object."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 10**400
    return {**value, "zz": 10**400} if isinstance(value, dict) else None


def _params(op: Operation, base: Request, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    client_side = [("company_id", PUBLIC_KEY)] if op.client_side else []
    return [*base.params, *client_side, *extra]


def test_a_number_no_double_holds_is_400_wherever_it_goes(world: tuple[Sandbox, httpx.Client, Cases]) -> None:
    """Every write, every numeric or free-form attribute of its valid request: never taken (a report
    adding such numbers up answered 500), never a 500 itself; NaN, which JSON does not have, and a
    lone surrogate in its first text attribute (stored, it broke every later listing), too."""
    _, http, cases = world
    wrong: list[str] = []
    tried = writes = 0
    for op in (op for op in ordered() if op.method != "GET"):
        started = cases.base(op)
        body = started[1].body if started else None
        data = body.get("data") if isinstance(body, dict) else None
        attrs = data.get("attributes") if isinstance(data, dict) else None
        if started is None or not isinstance(attrs, dict):
            continue  # a file upload, or relationships only: no attributes to break
        base, writes = started[1], writes + 1
        for key, value in attrs.items():
            broken = _hostile(value)
            if broken is None:
                continue
            tried += 1
            changed = {**body, "data": {**data, "attributes": {**attrs, key: broken}}}
            answer = send(http, Request(base.method, base.path, _params(op, base), changed))
            if answer.status_code != 400:
                wrong.append(f"{op.operation_id}.{key}: {answer.status_code} {answer.text[:200]}")
        nan = json.dumps({**body, "data": {**data, "attributes": {**attrs, "zz": float("nan")}}}).encode()
        answer = send(http, Request(base.method, base.path, _params(op, base), None, raw=nan))
        if answer.status_code != 400:
            wrong.append(f"{op.operation_id} NaN: {answer.status_code} {answer.text[:200]}")
        text = next((k for k, v in attrs.items() if isinstance(v, str)), None)
        if text is not None:  # json.dumps writes a lone surrogate as the escape \udc80: JSON, but no text
            lone = json.dumps({**body, "data": {**data, "attributes": {**attrs, text: "x\udc80"}}}).encode()
            answer = send(http, Request(base.method, base.path, _params(op, base), None, raw=lone))
            if answer.status_code != 400:
                wrong.append(f"{op.operation_id}.{text} lone surrogate: {answer.status_code} {answer.text[:200]}")
    assert writes >= 85 and tried >= 50, (writes, tried)  # 90 writes take attributes, 51 of them numbers or objects
    assert not wrong, "\n".join(wrong[:10])


def test_a_filter_datetime_that_is_no_real_moment_is_400(world: tuple[Sandbox, httpx.Client, Cases]) -> None:
    """Every GET with a datetime filter field: a month 13, a 30 February, an hour 24 are 400s (a 500 before)."""
    _, http, cases = world
    wrong: list[str] = []
    dated = [op for op in ordered() if op.method == "GET"
             and any(spec.get("format") == "date-time" for spec in (op.filters or {}).values())]
    for op in dated:
        started = cases.base(op)
        assert started is not None, op.operation_id
        base = started[1]
        field, spec = next((n, s) for n, s in op.filters.items() if s.get("format") == "date-time")
        for when in ("2024-13-01T00:00:00Z", "2024-02-30", "2024-01-01T24:00:00Z"):
            given = [(w, v) for w, v in _params(op, base) if w != "filter"]
            query = [*given, ("filter", f"{spec['operators'][0]}({field},{when})")]
            answer = send(http, Request("GET", base.path, query, None))
            if answer.status_code != 400:
                wrong.append(f"{op.operation_id} {when}: {answer.status_code} {answer.text[:200]}")
    assert len(dated) >= 10, len(dated)
    assert not wrong, "\n".join(wrong[:10])


def _answer(status: int, body: Any, **headers: str) -> httpx.Response:
    base = {"content-type": "application/vnd.api+json", "ratelimit-limit": "10", "ratelimit-remaining": "9",
            "ratelimit-reset": "30"}
    return httpx.Response(status, json=body, headers={**base, **headers})


def test_the_checks_are_not_a_rubber_stamp() -> None:
    op = load_catalog().get("get_campaign")
    doc = {"data": {"type": "campaign", "id": "C1", "attributes": {"archived": False},
                    "links": {"self": "http://x/"}, "relationships": {}}, "links": {"self": "http://x/"}}
    sparse = Request("GET", "/api/campaigns/C1", [("fields[campaign]", "archived")], sparse={"campaign": {"archived"}})
    plain = Request("GET", "/api/campaigns/C1")
    assert problem(op, sparse, _answer(200, doc)) is None  # name, status... left out as asked
    assert "required" in (problem(op, plain, _answer(200, doc)) or "")  # not asked: they must be there
    asked_name = Request("GET", "/api/campaigns/C1", sparse={"campaign": {"archived", "name"}})
    assert "name" in (problem(op, asked_name, _answer(200, doc)) or "")
    assert "text/html" in (problem(op, plain, httpx.Response(200, text="<p>", headers={
        "content-type": "text/html", "ratelimit-reset": "1"})) or "")
    assert "RateLimit" in (problem(op, plain, httpx.Response(404, json={})) or "")
    error = {"errors": [{"id": "1", "code": "not_found", "title": "Not found.", "detail": "No list."}]}
    assert problem(op, plain, _answer(404, error)) is None
    assert problem(op, plain, _answer(404, {"errors": [{"detail": "no code"}]})) is not None
    assert "documents" in (problem(op, plain, _answer(201, doc)) or "")
