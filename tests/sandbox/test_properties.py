"""Property-based checks of the sandbox against Klaviyo's spec: every operation, positive and negative.

Seeded hypothesis cases per operation (``tests/sandbox/properties.py`` says what they are), on the
seeded demo account: GETs first, then writes, deletes last. A finding is a 5xx, an answer that
breaks the spec's schema for its status (or its content type, or the rate-limit headers), or a
negative case answered 2xx. The slow set runs ``EXAMPLES`` of each kind per operation;
``benchmarks/sandbox_conformance.py`` runs more and prints the figures.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.catalog import Operation, load_catalog
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.ratelimit import RateLimiter

from .properties import Cases, Request, check, problem
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
