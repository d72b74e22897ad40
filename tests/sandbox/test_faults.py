"""Fault injection, seen through the toolkit's client: 5xx, 429 storms, slow and dropped answers.

What the sandbox promises: a seeded share of faults, targeted per operation, the same for the same
seed, on Klaviyo's timing (``realistic``: events show only after a delay, or ``settle()``); failures
that look like the real thing on the wire, in-process and over a port alike. What the client must
then do: retry what is safe (reads, writes with an idempotency key or event
``unique_id``), honour ``Retry-After``, surface the rest as typed errors. Waits run on a ManualClock
on the client side; real delays stay tiny (0.2 s answers against a 0.05 s timeout).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import DEMO_KEY, PUBLIC_KEY, Faults, Sandbox
from klaviyo_toolkit.client import AsyncKlaviyoClient, KlaviyoClient, RetryPolicy
from klaviyo_toolkit.client._config import NO_RETRIES
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import RateLimitError, ServerError, TransportError
from klaviyo_toolkit.ratelimit import RateLimiter

from .conftest import on_port

SLOW, TIMEOUT = 0.2, 0.05


def sandbox(faults: Faults | None = None) -> Sandbox:
    """The reliability suite runs on Klaviyo's timing too: asynchronous writes show after a delay."""
    return Sandbox(demo_data=False, rate_limit_factor=None, faults=faults, realistic=True)


def raw(sb: Sandbox) -> httpx.Client:
    return httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL, headers={
        "Authorization": f"Klaviyo-API-Key {DEMO_KEY}", "revision": "2026-07-15"})


def client(sb: Sandbox, clock: ManualClock | None = None, **options: Any) -> KlaviyoClient:
    """An in-process client that does not pace itself; its retry waits run on ``clock``."""
    return sb.client(rate_limiter=RateLimiter(factor=None), clock=clock or ManualClock(), **options)


@contextmanager
def in_process_client(sb: Sandbox, clock: ManualClock | None = None, **options: Any) -> Iterator[KlaviyoClient]:
    with client(sb, clock, **options) as kl:
        yield kl


@contextmanager
def port_client(sb: Sandbox, clock: ManualClock | None = None, **options: Any) -> Iterator[KlaviyoClient]:
    with on_port(sb.app) as base_url, KlaviyoClient(
        api_key=DEMO_KEY, base_url=base_url, public_api_key=PUBLIC_KEY, rate_limiter=RateLimiter(factor=None),
        clock=clock or ManualClock(), **options,
    ) as kl:
        yield kl


#: How a test reaches the sandbox: ``httpx`` transport in-process, or uvicorn on a local port.
MAKERS = {"in-process": in_process_client, "port": port_client}
WHERE = pytest.mark.parametrize("where", list(MAKERS))


def statuses(sb: Sandbox, operation: str) -> list[int]:
    return [r["status"] for r in sb.requests if r["operation_id"] == operation]


def outcome(http: httpx.Client, path: str) -> str:
    try:
        return str(http.get(path).status_code)
    except httpx.TransportError:
        return "drop"


# -- 5xx -------------------------------------------------------------------------------------------------
def test_a_seeded_share_of_5xx_and_retries_turn_most_reads_into_successes() -> None:
    sb = sandbox(Faults(error_rate=0.3, status=503, seed=11))
    http = raw(sb)
    answers = [http.get("/api/lists") for _ in range(200)]
    failed = [a for a in answers if a.status_code == 503]
    assert 0.2 <= len(failed) / len(answers) <= 0.4
    assert {a.status_code for a in answers} == {200, 503}
    err = failed[0].json()["errors"][0]
    assert (err["status"], err["code"]) == (503, "server_error")

    clock = ManualClock()
    with client(sb, clock, retry=RetryPolicy(seed=1)) as kl:
        outcomes = []
        for _ in range(50):
            try:
                outcomes.append(kl.call("get_lists").status)
            except ServerError as exc:
                outcomes.append(exc.status)
    assert outcomes.count(200) >= 48  # up to three retries each: a read fails only after four 503s in a row
    assert statuses(sb, "get_lists")[200:].count(503) >= 10  # ...and there were plenty to retry
    assert clock.slept and max(clock.slept) <= 20  # jittered backoff, on the client's clock


def test_a_create_is_not_repeated_after_a_5xx_and_the_caller_hears_it_may_have_been_applied() -> None:
    sb = sandbox(Faults(error_rate=1.0, status=503, operations=["create_list"]))
    with client(sb) as kl, pytest.raises(ServerError) as err:
        kl.call("create_list", name="Once")
    assert err.value.status == 503 and err.value.operation_id == "create_list"
    assert statuses(sb, "create_list") == [503] and sb.store.count("list") == 0  # tried once, not retried
    assert err.value.maybe_applied, "Klaviyo has no idempotency key: the caller must check before sending again"
    assert "may have been applied" in str(err.value) and "not sent again" in str(err.value), "...and it says so"

    sb.faults = Faults(error_rate=1.0, status=503, operations=["add_profiles_to_list"], count=1)  # the next call
    with client(sb) as kl:
        list_id = kl.call("create_list", name="Members").data["id"]
        pid = kl.call("create_profile", email="m@example.com").data["id"]
        assert kl.call("add_profiles_to_list", id=list_id, profile_ids=[pid]).status == 204  # a set: safe again
    assert statuses(sb, "add_profiles_to_list") == [503, 204]


# -- 429 storms ------------------------------------------------------------------------------------------
def test_429_storms_are_waited_out_for_exactly_retry_after() -> None:
    sb = sandbox(Faults(storm_rate=0.4, storm_retry_after=2, seed=5))
    stormy = raw(sb).get("/api/lists")
    while stormy.status_code != 429:
        stormy = raw(sb).get("/api/lists")
    assert stormy.headers["Retry-After"] == "2" and stormy.json()["errors"][0]["code"] == "throttled"

    clock = ManualClock()
    with client(sb, clock, retry=RetryPolicy(max_retries=8)) as kl:  # storms come in runs
        assert all(kl.call("get_lists").status == 200 for _ in range(20))
    assert clock.slept and set(clock.slept) == {2.0}  # Retry-After, not a backoff of its own
    with client(sb, retry=NO_RETRIES) as kl, pytest.raises(RateLimitError) as err:
        while True:
            kl.call("get_lists")
    assert err.value.retry_after == 2


# -- slow answers ----------------------------------------------------------------------------------------
@WHERE
def test_an_answer_slower_than_the_client_timeout_is_a_transport_error(where: str) -> None:
    sb = sandbox(Faults(slow_rate=1.0, delay=SLOW, operations=["get_lists"]))
    with MAKERS[where](sb, timeout=TIMEOUT, retry=NO_RETRIES) as kl:
        assert kl.call("get_segments").status == 200  # other operations answer at once
        with pytest.raises(TransportError) as err:
            kl.call("get_lists")
    assert "timed out" in str(err.value) and err.value.operation_id == "get_lists"


async def test_an_async_client_times_out_too() -> None:
    sb = sandbox(Faults(slow_rate=1.0, delay=SLOW, operations=["get_lists"]))
    async with sb.async_client(rate_limiter=RateLimiter(factor=None), clock=ManualClock(), timeout=TIMEOUT,
                               retry=NO_RETRIES) as kl:
        with pytest.raises(TransportError, match="timed out"):
            await kl.call("get_lists")
        sb.faults = Faults()
        assert (await kl.call("get_lists")).status == 200


def _wait_for(predicate: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "the sandbox did not finish the abandoned request"
        time.sleep(0.01)


def test_new_settings_over_http_answer_the_calls_the_old_ones_hold() -> None:
    """A client that gave up on a held call leaves it to the server; settings put or deleted over HTTP
    answer it, so the server is not kept from stopping until its delay ends."""
    sb = sandbox(Faults(slow_rate=1.0, delay=600.0, operations=["get_lists"]))
    held = sb.faults
    with on_port(sb.app) as base_url:
        answers: list[int] = []

        def call() -> None:
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Klaviyo-API-Key {DEMO_KEY}",
                                                          "revision": "2026-07-15"}, timeout=120) as http:
                answers.append(http.get("/api/lists").status_code)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        _wait_for(lambda: held._faulted == 1, seconds=30)
        assert httpx.put(f"{base_url}/sandbox/faults", json={"error_rate": 1.0, "operations": ["get_segments"]},
                         timeout=30).status_code == 200
        caller.join(60)
        assert answers == [200] and sb.faults.error_rate == 1.0


@WHERE
def test_a_held_answer_comes_when_released_not_after_its_delay(where: str) -> None:
    """A test holds a call in flight for as long as it looks (``Faults.release``) rather than for a
    delay long enough for the slowest machine; released settings answer what they draw after at once."""
    faults = Faults(slow_rate=1.0, delay=600.0, operations=["get_lists"])
    sb = sandbox(faults)
    with MAKERS[where](sb, timeout=120.0, retry=NO_RETRIES) as kl:
        answers: list[int] = []
        caller = threading.Thread(target=lambda: answers.append(kl.call("get_lists").status), daemon=True)
        caller.start()
        _wait_for(lambda: faults._faulted == 1, seconds=30)
        caller.join(0.3)
        assert caller.is_alive() and answers == [], "held while not released"
        faults.release()
        caller.join(60)
        assert answers == [200], "answered once released, long before its 600 s"
        assert kl.call("get_lists").status == 200 and faults._faulted == 2


@WHERE
def test_an_event_retried_after_a_timeout_is_recorded_once(where: str) -> None:
    """The first create_event is answered after the client gave up, but the sandbox still records it;
    the client retries (its body has a ``unique_id``) and the sandbox deduplicates: one event."""
    sb = sandbox(Faults(slow_rate=1.0, delay=SLOW, operations=["create_event"], count=1))
    event = {"metric": {"name": "Ordered"}, "profile": {"email": "once@example.com"}, "properties": {"sku": "A"}}
    with MAKERS[where](sb, timeout=TIMEOUT) as kl:
        assert kl.call("create_event", unique_id="order-1", **event).status == 202
        _wait_for(lambda: len(statuses(sb, "create_event")) == 2)
        assert statuses(sb, "create_event") == [202, 202]  # both were accepted...
        assert sb.store.all("event") == []  # ...and are not visible yet (Klaviyo applies events later)
        sb.settle()
        assert len(sb.store.all("event")) == 1  # ...into one event

        # Without a unique_id the client may not retry a write, and the error surfaces; the
        # lost answer's event exists all the same (which is why touchpoints carry a unique_id).
        sb.faults = Faults(slow_rate=1.0, delay=SLOW, operations=["create_event"], count=1)
        with pytest.raises(TransportError, match="timed out"):
            kl.call("create_event", **event)
        _wait_for(lambda: len(statuses(sb, "create_event")) == 3)
    sb.settle()
    assert len(sb.store.all("event")) == 2


# -- dropped connections -----------------------------------------------------------------------------------
@WHERE
def test_a_dropped_connection_is_a_transport_error(where: str) -> None:
    sb = sandbox(Faults(drop_rate=1.0, operations=["get_lists"]))
    make = MAKERS[where]
    with make(sb, retry=NO_RETRIES) as kl:
        with pytest.raises(TransportError, match="get_lists: the request failed"):
            kl.call("get_lists")
        assert kl.call("get_segments").status == 200
        sb.faults = Faults(drop_rate=1.0, operations=["get_lists"], count=1)
    with make(sb) as kl:  # with retries, a read survives one dropped connection
        assert kl.call("get_lists").status == 200


@WHERE
async def test_an_async_client_sees_a_dropped_connection_as_a_transport_error(where: str) -> None:
    sb = sandbox(Faults(drop_rate=1.0, operations=["get_lists"]))
    options: dict[str, Any] = {"rate_limiter": RateLimiter(factor=None), "clock": ManualClock(), "retry": NO_RETRIES}
    if where == "in-process":
        async with sb.async_client(**options) as kl:
            with pytest.raises(TransportError):
                await kl.call("get_lists")
        return
    with on_port(sb.app) as base_url:
        async with AsyncKlaviyoClient(api_key=DEMO_KEY, base_url=base_url, **options) as kl:
            with pytest.raises(TransportError):
                await kl.call("get_lists")
            assert (await kl.call("get_segments")).status == 200


# -- targeting and determinism ----------------------------------------------------------------------------
def test_faults_hit_only_the_operations_named() -> None:
    sb = sandbox()
    http = raw(sb)
    put = http.put("/sandbox/faults", json={"error_rate": 1.0, "status": 500, "operations": ["get_lists", "get_tags"]})
    assert put.status_code == 200 and put.json()["operations"] == ["get_lists", "get_tags"]
    assert [http.get(p).status_code for p in ("/api/lists", "/api/tags", "/api/segments", "/api/profiles")] == \
        [500, 500, 200, 200]
    assert http.delete("/sandbox/faults").status_code == 200
    assert http.get("/api/lists").status_code == 200


def test_the_same_seed_gives_the_same_faults() -> None:
    def run(seed: int) -> list[str]:
        sb = sandbox(Faults(error_rate=0.3, storm_rate=0.2, drop_rate=0.1, seed=seed))
        http = raw(sb)
        return [outcome(http, "/api/lists") for _ in range(60)]

    first, again, other = run(42), run(42), run(43)
    assert first == again
    assert first != other
    assert {"200", "503", "429", "drop"} <= set(first)

    # Setting the faults again (here over HTTP) starts the same sequence over.
    sb = sandbox()
    http = raw(sb)
    settings = {"error_rate": 0.3, "storm_rate": 0.2, "drop_rate": 0.1, "seed": 42}
    http.put("/sandbox/faults", json=settings)
    head = [outcome(http, "/api/lists") for _ in range(20)]
    http.put("/sandbox/faults", json=settings)
    assert [outcome(http, "/api/lists") for _ in range(20)] == head == first[:20]


def test_faults_are_deterministic_under_concurrency_of_async_tasks() -> None:
    """The draw happens per request in arrival order: the same sequence of requests, the same faults."""
    async def run() -> list[int]:
        sb = sandbox(Faults(error_rate=0.5, seed=9))
        transport = sb.async_transport()
        headers = {"Authorization": f"Klaviyo-API-Key {DEMO_KEY}", "revision": "2026-07-15"}
        async with httpx.AsyncClient(transport=transport, base_url=Sandbox.BASE_URL, headers=headers) as http:
            return [(await http.get("/api/lists")).status_code for _ in range(30)]

    assert asyncio.run(run()) == asyncio.run(run())


# -- lost responses: applied, then the answer is lost --------------------------------------------------------
@WHERE
def test_a_lost_response_is_a_write_that_happened_and_a_caller_that_cannot_know(where: str) -> None:
    """The handler runs and commits, then the connection drops: the list exists, the client saw only a
    broken connection, did not send a create again (no idempotency key), and says it may have been applied."""
    sb = sandbox(Faults(lost_response_rate=1.0, operations=["create_list"]))
    with MAKERS[where](sb) as kl, pytest.raises(TransportError) as err:
        kl.call("create_list", name="Applied anyway")
    assert err.value.maybe_applied and err.value.operation_id == "create_list"
    said = str(err.value)  # what a developer, a log line or a run record reads, not only an attribute
    assert "may have been applied" in said and "not sent again" in said and "read back" in said, said
    assert [lst.attributes["name"] for lst in sb.store.all("list")] == ["Applied anyway"]
    assert [(r["status"], r.get("fault")) for r in sb.requests if r["operation_id"] == "create_list"] == \
        [(201, "lost_response")]


@WHERE
def test_an_event_whose_response_was_lost_is_sent_again_and_kept_once(where: str) -> None:
    sb = sandbox(Faults(lost_response_rate=1.0, operations=["create_event"], count=1))
    event = {"metric": {"name": "Ordered"}, "profile": {"email": "lost@example.com"}, "properties": {"sku": "A"}}
    with MAKERS[where](sb) as kl:
        assert kl.call("create_event", unique_id="order-7", **event).status == 202
    assert [(r["status"], r.get("fault")) for r in sb.requests if r["operation_id"] == "create_event"] == \
        [(202, "lost_response"), (202, None)]
    sb.settle()
    assert len(sb.store.all("event")) == 1


def test_a_read_whose_response_was_lost_is_read_again() -> None:
    sb = sandbox(Faults(lost_response_rate=1.0, operations=["get_lists"], count=2))
    with client(sb) as kl:
        assert kl.call("get_lists").status == 200
    assert [r.get("fault") for r in sb.requests] == ["lost_response", "lost_response", None]


def test_the_request_log_names_every_fault_and_keeps_what_it_is_told_to() -> None:
    sb = Sandbox(demo_data=False, rate_limit_factor=None, request_log_size=None,
                 faults=Faults(error_rate=0.2, storm_rate=0.2, drop_rate=0.2, lost_response_rate=0.2, seed=3))
    http = raw(sb)
    outcomes = [outcome(http, "/api/lists") for _ in range(80)]
    log = list(sb.requests)
    assert len(log) == 80, "every request that reached the door is logged, dropped ones too"
    faults = [r.get("fault") for r in log]
    assert {"dropped", "storm", "error", "lost_response", None} == set(faults)
    for seen, entry in zip(outcomes, log, strict=True):
        if entry.get("fault") in ("dropped", "lost_response"):
            assert seen == "drop"  # the client cannot tell them apart
        else:
            assert seen == str(entry["status"])
    assert all(r["status"] is None for r in log if r.get("fault") == "dropped")
    assert all(r["status"] == 200 for r in log if r.get("fault") == "lost_response")

    small = Sandbox(demo_data=False, rate_limit_factor=None, request_log_size=2)
    small_http = raw(small)
    for _ in range(5):
        small_http.get("/api/lists")
    assert len(small.requests) == 2 and small.call_counts["get_lists"] == 5


def test_lost_responses_are_set_over_http_and_leave_other_seeds_unchanged() -> None:
    sb = sandbox()
    http = raw(sb)
    put = http.put("/sandbox/faults", json={"lost_response_rate": 1.0, "operations": ["get_tags"]})
    assert put.status_code == 200 and put.json()["lost_response_rate"] == 1.0
    assert outcome(http, "/api/tags") == "drop" and outcome(http, "/api/lists") == "200"
    # Settings without a lost-response rate draw exactly what they drew before it existed.
    plain = Faults(error_rate=0.3, storm_rate=0.2, drop_rate=0.1, seed=42)
    zero = Faults(error_rate=0.3, storm_rate=0.2, drop_rate=0.1, seed=42, lost_response_rate=0.0)
    assert [plain.draw("get_lists") for _ in range(50)] == [zero.draw("get_lists") for _ in range(50)]
