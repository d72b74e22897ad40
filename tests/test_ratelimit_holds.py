"""A 429's Retry-After holds the operation's bucket for every caller of it, not only the one that got it.

Klaviyo counts an account's calls per endpoint: once it answers 429, every other call of that endpoint
is refused too until Retry-After has passed. The sandbox's limits stand in for Klaviyo's; another
"process" (a client with a limiter of its own) spends the second's allowance first, so our client's
pace, right by its own count, meets a full window.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest

from klaviyo_sandbox import DEMO_KEY, Sandbox
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.client import NO_RETRIES, KlaviyoClient, RetryPolicy
from klaviyo_toolkit.client._response import CallRecord
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import RateLimitError, RateLimitWaitError
from klaviyo_toolkit.ratelimit import RateLimiter

pytestmark = pytest.mark.usefixtures("clean_env")

FACTOR = 0.1
BURST = load_catalog().get("get_lists").rate_limit.scaled(FACTOR).burst
PATIENT = RetryPolicy(max_retries=10, max_elapsed=60.0)


def _spend_the_second(sb: Sandbox) -> None:
    """Another process's calls fill this second's window of get_lists on the 'server', until it is
    refused (a first call elsewhere warms the caches, so the window is not spent building them).

    The spending starts as a second of the sandbox's clock begins: its windows are fixed on whole
    seconds, so a window that turned over between this and the test's first call would admit that
    call (no 429 to wait out, and the test waited 10 s for one: seen once in a loaded suite)."""
    with Sandbox(rate_limit_factor=None).client() as warm:
        warm.call("get_lists")
    now = sb.clock.time()
    time.sleep(math.floor(now) + 1.0 - now)
    with sb.client(rate_limiter=RateLimiter(factor=None), retry=NO_RETRIES) as other:
        for _ in range(BURST + 1):
            try:
                other.call("get_lists")
            except RateLimitError:
                break
    sb.requests.clear()


def _served_429s(sb: Sandbox) -> int:
    return sum(1 for r in sb.requests if r["operation_id"] == "get_lists" and r["status"] == 429)


def test_threads_wait_out_a_429_another_thread_got_instead_of_collecting_their_own() -> None:
    sb = Sandbox(rate_limit_factor=FACTOR)
    _spend_the_second(sb)
    got_429 = threading.Event()

    def hook(record: CallRecord) -> None:
        if record.status == 429:
            got_429.set()

    with sb.client(retry=PATIENT) as ours:

        def first() -> None:
            ours.send(ours.prepare("get_lists", {}), hooks=[hook])

        def later() -> None:
            assert got_429.wait(10)
            ours.call("get_lists")

        threads = [threading.Thread(target=first)] + [threading.Thread(target=later) for _ in range(BURST - 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert got_429.is_set()
    assert _served_429s(sb) == 1, "the other threads waited for Retry-After instead of being refused too"
    assert sum(1 for r in sb.requests if r["status"] == 200) == BURST


async def test_asyncio_tasks_wait_out_a_429_another_task_got() -> None:
    sb = Sandbox(rate_limit_factor=FACTOR)
    _spend_the_second(sb)
    got_429 = asyncio.Event()

    def hook(record: CallRecord) -> None:
        if record.status == 429:
            got_429.set()

    async with sb.async_client(retry=PATIENT) as ours:

        async def later() -> None:
            await asyncio.wait_for(got_429.wait(), 10)
            await ours.call("get_lists")

        await asyncio.gather(
            ours.send(ours.prepare("get_lists", {}), hooks=[hook]), *(later() for _ in range(BURST - 1))
        )
    assert _served_429s(sb) == 1


def test_a_hold_delays_every_caller_of_the_bucket_and_only_that_bucket() -> None:
    clock = ManualClock()
    spec = load_catalog().get("get_lists").rate_limit
    limiter = RateLimiter(clock)
    limiter.hold(("acct", "get_lists"), 3.0)
    limiter.hold(("acct", "get_lists"), 1.0)  # a shorter hold does not shorten the longer one
    assert limiter.reserve(("acct", "get_lists"), spec).delay == pytest.approx(3.0)
    assert limiter.reserve(("acct", "get_profiles"), spec).delay == 0.0
    with pytest.raises(RateLimitWaitError):
        limiter.reserve(("acct", "get_lists"), spec, "get_lists", max_wait=1.0)
    clock.advance(3.0)
    # The slot after the one at the hold's end goes at the steady pace (750/min), not in a burst.
    assert limiter.reserve(("acct", "get_lists"), spec).delay == pytest.approx(60 / spec.steady)
    off = RateLimiter(clock, factor=None)  # limiting off is off: each call waits out its own 429
    off.hold(("acct", "get_lists"), 3.0)
    assert off.reserve(("acct", "get_lists"), spec).delay == 0.0


def test_threads_on_a_quota_others_share_meet_one_round_of_429s_not_one_per_hold() -> None:
    """Klaviyo counts calls this limiter does not see (other keys and apps of the account): here the
    account leaves our calls 3/s and 30/min (the sandbox) while our limiter counts on 8/s and 75/min.
    Twelve threads call at once: the first burst meets 429s; after its hold the calls go at the steady
    pace instead of all waiting callers at once (which met the next 429s, hold after hold), and calls
    whose slots were given before the hold take new ones rather than go into it. Virtual time
    (SteppedClock): each call leaves at the moment it was admitted for, however busy the machine is."""
    from .stepped_clock import SteppedClock
    from .test_ratelimit import Observed

    clock = SteppedClock()
    sb = Sandbox(demo_data=False, rate_limit_factor=0.04, clock=clock, request_log_size=None)
    ours = RateLimiter(clock, factor=0.1)
    burst, server_burst = (load_catalog().get("get_lists").rate_limit.scaled(f).burst for f in (0.1, 0.04))
    transport = Observed(sb.transport(), clock)
    client = KlaviyoClient(
        api_key=DEMO_KEY, base_url=sb.BASE_URL, transport=transport, rate_limiter=ours, clock=clock, retry=PATIENT
    )
    errors: list[BaseException] = []

    def work() -> None:
        with clock.taking_part():
            try:
                client.call("get_lists")
            except BaseException as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(12)]
    clock.expect(len(threads))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    refused = [at for at, path, _, status in transport.seen if path == "/api/lists" and status == 429]
    served = [at for at, path, _, status in transport.seen if path == "/api/lists" and status == 200]
    assert len(served) == 12
    assert len(refused) <= burst - server_burst, f"{len(refused)} 429s: more than the first burst's"
    assert len(set(refused)) <= 1, f"429s at {sorted(set(refused))}: a round after a hold"


def test_a_hold_follows_a_key_into_its_accounts_buckets() -> None:
    clock = ManualClock()
    spec = load_catalog().get("get_lists").rate_limit
    limiter = RateLimiter(clock)
    limiter.hold(("base|key:1", "get_lists"), 2.0)
    limiter.same_account("base|key:1", "base|account:A")
    assert limiter.reserve(("base|key:2", "get_lists"), spec).delay == 0.0
    limiter.same_account("base|key:2", "base|account:A")
    assert limiter.reserve(("base|key:2", "get_lists"), spec).delay == pytest.approx(2.0)


def test_a_retry_after_past_the_retry_budget_fails_each_call_at_once_instead_of_stalling_the_next() -> None:
    """A spent day answers Retry-After in hours: the call fails saying so, and the next call is not
    put to sleep for those hours (it asks Klaviyo, and hears the same at once)."""
    from .scripted import Scripted, error_body, reply

    server = Scripted(reply(429, error_body(429), {"Retry-After": "3600"}), reply(200, {"data": []}))
    clock = ManualClock()
    with KlaviyoClient(api_key="pk_test_0123456789abcdef", transport=server.transport(), clock=clock) as kl:
        with pytest.raises(RateLimitError):
            kl.call("get_lists")
        assert kl.call("get_lists").status == 200
    assert clock.slept == []
