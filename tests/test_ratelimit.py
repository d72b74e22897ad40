"""Client-side rate limits: burst and steady windows, daily allowance, scaling, sharing.

Time is a ManualClock throughout: waits are instant, and what is checked is when each call was
allowed to go. ``slot`` times below are the moments calls were admitted.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import math
import threading

import httpx
import pytest

from klaviyo_toolkit.auth import BearerToken
from klaviyo_toolkit.catalog import RateLimitSpec, load_catalog
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import DailyLimitExhaustedError, RateLimitWaitError, ToolkitUsageError
from klaviyo_toolkit.ratelimit import RateLimiter, shared_limiter

from .scripted import Scripted, reply
from .stepped_clock import SteppedClock

SPEC = RateLimitSpec(burst=3, steady=10)
KEY = ("account", "get_widgets")


def assert_within_limits(slots: list[float], spec: RateLimitSpec, margin: float = 0.0) -> None:
    """No more than ``burst`` slots in any 1 s window, nor ``steady`` in any 60 s window."""
    slots = sorted(slots)
    for i in range(len(slots) - spec.burst):
        assert slots[i + spec.burst] - slots[i] >= 1.0 + margin - 1e-6, (
            f"burst exceeded at {slots[i : i + spec.burst + 1]}"
        )
    for i in range(len(slots) - spec.steady):
        assert slots[i + spec.steady] - slots[i] >= 60.0 + margin - 1e-6, "steady rate exceeded"


def admit(limiter: RateLimiter, clock: ManualClock, n: int, spec: RateLimitSpec = SPEC) -> list[float]:
    """Admit ``n`` calls one after another (sleeping on the clock); return when each went."""
    slots = []
    for _ in range(n):
        limiter.acquire(KEY, spec, "get_widgets")
        slots.append(clock.monotonic())
    return slots


# -- windows -----------------------------------------------------------------------------------
def test_ten_calls_fit_in_a_minute_and_the_eleventh_waits_for_the_first_to_leave() -> None:
    clock = ManualClock()
    start = clock.monotonic()
    slots = [t - start for t in admit(RateLimiter(clock, margin=0.0), clock, 11)]
    assert slots[:10] == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0]
    assert slots[10] == 60.0, "the 11th call goes when the first leaves the 60 s window"
    assert_within_limits(slots, SPEC)


def test_the_safety_margin_widens_each_window() -> None:
    clock = ManualClock()
    start = clock.monotonic()
    slots = [t - start for t in admit(RateLimiter(clock, margin=0.05), clock, 11)]
    assert slots[3] == pytest.approx(1.05) and slots[10] == pytest.approx(60.05)
    assert_within_limits(slots, SPEC, margin=0.05)


def test_a_long_run_never_exceeds_either_window() -> None:
    clock = ManualClock()
    slots = admit(RateLimiter(clock), clock, 95)
    assert_within_limits(slots, SPEC, margin=0.02)
    assert slots[-1] - slots[0] < 9 * 60 + 5, "and no slower than the limits require"


def test_idle_time_frees_the_windows() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, margin=0.0)
    admit(limiter, clock, 10)
    clock.advance(120)
    before = len(clock.slept)
    admit(limiter, clock, 3)
    assert len(clock.slept) == before, "three calls after a quiet spell go at once"


def test_buckets_are_per_key() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock)
    for i in range(3):
        assert limiter.reserve(("account", "a"), SPEC).delay == 0.0
        assert limiter.reserve(("account", "b"), SPEC).delay == 0.0, i
    assert limiter.reserve(("account", "a"), SPEC).delay > 0


def test_usage_counts_calls_in_each_window() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, margin=0.0)
    admit(limiter, clock, 4)
    assert limiter.usage(KEY) == {"second": 1, "minute": 4, "day": 0}
    assert limiter.usage(("nobody", "x")) == {"second": 0, "minute": 0, "day": 0}


def test_max_wait_refuses_instead_of_waiting() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, margin=0.0, max_wait=30.0)
    for _ in range(10):
        limiter.reserve(KEY, SPEC)
    with pytest.raises(RateLimitWaitError) as err:
        limiter.reserve(KEY, SPEC, "get_widgets")
    assert "max_wait" in str(err.value) and "get_widgets" in str(err.value)



def test_a_call_may_wait_less_than_the_limiter_and_a_refused_call_takes_no_slot() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, margin=0.0, max_wait=30.0)
    admit(limiter, clock, 3)  # the second's burst is spent: the next slot is 1 s away
    with pytest.raises(RateLimitWaitError) as err:
        limiter.acquire(KEY, SPEC, "get_widgets", max_wait=0.5)
    assert "over max_wait=0.5s" in str(err.value)
    assert limiter.usage(KEY)["second"] == 3 and clock.slept == []
    assert limiter.acquire(KEY, SPEC, "get_widgets", max_wait=60.0) == 1.0  # the smaller of the two rules


def test_a_client_copy_with_max_wait_refuses_where_the_client_waits() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, factor=0.04, margin=0.0)  # get_lists: 3/s
    server = Scripted()
    client = KlaviyoClient(api_key="pk_same_account_000", transport=server.transport(), rate_limiter=limiter)
    quick = client.with_options(max_wait=0.5)
    for _ in range(3):
        client.call("get_lists")
    with pytest.raises(RateLimitWaitError):
        quick.call("get_lists")
    assert clock.slept == [] and len(server.requests) == 3  # refused before any request, nothing slept
    client.call("get_lists")
    assert clock.slept == [1.0]


# -- daily -------------------------------------------------------------------------------------
def test_a_spent_daily_limit_fails_at_once_saying_when_it_resets() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, margin=0.0)
    spec = RateLimitSpec(burst=10, steady=100, daily=3)
    first_wall = clock.time()
    admit(limiter, clock, 3, spec)
    slept = list(clock.slept)
    with pytest.raises(DailyLimitExhaustedError) as err:
        limiter.acquire(KEY, spec, "query_campaign_values")
    assert clock.slept == slept, "no waiting for a day"
    resets = dt.datetime.fromtimestamp(first_wall + 86_400, dt.UTC)
    assert err.value.resets_at == resets and err.value.limit == 3
    assert resets.isoformat(timespec="seconds") in str(err.value)
    assert "query_campaign_values" in str(err.value)
    clock.advance(86_400)
    assert limiter.reserve(KEY, spec).delay == 0.0, "the allowance comes back a day after the first call"


def test_a_spent_daily_limit_stops_the_client_before_any_request() -> None:
    op = load_catalog().get("query_campaign_values")
    assert op.rate_limit.daily == 225
    clock = ManualClock()
    limiter = RateLimiter(clock, factor=0.01)  # 225/day -> 2/day; 2/min -> 1/min
    server = Scripted()
    client = KlaviyoClient(
        api_key="pk_test_0123456789", transport=server.transport(), clock=clock, rate_limiter=limiter
    )
    args = {
        "statistics": ["opens"],
        "conversion_metric_id": "M1",
        "timeframe": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
    }
    client.call("query_campaign_values", **args)
    client.call("query_campaign_values", **args)
    assert clock.slept == [pytest.approx(60.0 + limiter.margin)], "one call a minute at 1% of 2/min"
    with pytest.raises(DailyLimitExhaustedError) as err:
        client.call("query_campaign_values", **args)
    assert len(server.requests) == 2
    assert "daily limit of 2 calls is spent" in str(err.value)


# -- scaling -----------------------------------------------------------------------------------
def test_factor_scales_every_limit() -> None:
    clock = ManualClock()
    start = clock.monotonic()
    spec = RateLimitSpec(burst=4, steady=10, daily=100)
    limiter = RateLimiter(clock, factor=0.5, margin=0.0)
    slots = [t - start for t in admit(limiter, clock, 6, spec)]
    assert slots == [0.0, 0.0, 1.0, 1.0, 2.0, 60.0]  # burst 2/s, steady 5/min
    assert spec.scaled(0.5) == RateLimitSpec(2, 5, 50)
    assert RateLimitSpec(1, 2, 3).scaled(0.01) == RateLimitSpec(1, 1, 1), "never below one call"
    assert RateLimitSpec(3, 10).scaled(10) == RateLimitSpec(30, 100)


def test_factor_none_turns_limiting_off() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, factor=None)
    spec = RateLimitSpec(burst=1, steady=1, daily=1)
    assert all(limiter.reserve(KEY, spec).delay == 0.0 for _ in range(1000))
    assert clock.slept == []


# -- sharing -----------------------------------------------------------------------------------
def test_threads_share_one_bucket() -> None:
    """Real threads reserve at once; the slots they get, taken together, respect both windows."""
    clock = ManualClock()
    limiter = RateLimiter(clock)
    threads_n, per_thread = 8, 6
    slots: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads_n)

    def worker() -> None:
        barrier.wait()
        for _ in range(per_thread):
            # The clock stands still while threads run, so a slot is now + the delay granted.
            slot = clock.monotonic() + limiter.reserve(KEY, SPEC).delay
            with lock:
                slots.append(slot)

    for _round in range(2):
        threads = [threading.Thread(target=worker) for _ in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        clock.advance(30)  # a second round while the first still fills the windows
    assert len(slots) == 2 * threads_n * per_thread
    assert len(set(slots)) < len(slots), "calls within a burst share a slot"
    assert_within_limits(slots, SPEC, margin=0.02)


async def test_asyncio_tasks_share_one_bucket() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock)
    slots: list[float] = []

    async def task() -> None:
        for _ in range(3):
            before = clock.monotonic()  # aacquire reserves before its first await
            slots.append(before + await limiter.aacquire(KEY, SPEC))

    await asyncio.gather(*(task() for _ in range(12)))
    assert len(slots) == 36
    assert_within_limits(slots, SPEC, margin=0.02)


def test_two_clients_sharing_a_limiter_share_the_bucket() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, factor=0.04, margin=0.0)  # get_lists: 75/s -> 3/s, 750/min -> 30/min
    server = Scripted()
    one, two = (
        KlaviyoClient(api_key="pk_same_account_000", transport=server.transport(), rate_limiter=limiter)
        for _ in range(2)
    )
    for client in (one, two, one):
        client.call("get_lists")
    assert clock.slept == []
    two.call("get_lists")
    assert clock.slept == [1.0], "the fourth call in a second waits, whichever client makes it"


def test_different_accounts_do_not_share_a_bucket() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, factor=0.04)
    server = Scripted()
    clients = [
        KlaviyoClient(api_key=f"pk_account_{i}_0000", transport=server.transport(), rate_limiter=limiter)
        for i in range(2)
    ]
    for _ in range(3):
        for client in clients:
            client.call("get_lists")
    assert clock.slept == []


# -- one account, several keys ------------------------------------------------------------------------
ACCOUNT_ANSWER = {"data": [{"type": "account", "id": "AbC123", "attributes": {"timezone": "UTC"}}]}


def test_keys_proven_to_belong_to_one_account_share_its_buckets() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, margin=0.0)
    op = "get_widgets"
    for _ in range(2):  # reserved before the account is known: each key alone
        assert limiter.reserve(("base|key:one", op), SPEC).delay == 0.0
    assert limiter.reserve(("base|key:two", op), SPEC).delay == 0.0
    limiter.same_account("base|key:one", "base|account:AbC123")
    limiter.same_account("base|key:two", "base|account:AbC123")
    assert limiter.usage(("base|key:one", op))["second"] == 3, "the calls made before carry over"
    assert limiter.reserve(("base|key:two", op), SPEC).delay == 1.0, "a fourth call in the second waits"
    assert limiter.reserve(("base|account:AbC123", op), SPEC).delay == 1.0, "and so does the account's own"
    assert limiter.reserve(("base|key:three", op), SPEC).delay == 0.0, "a key not known to be of it does not"


def test_a_get_accounts_answer_puts_the_key_in_its_accounts_buckets() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, factor=0.04, margin=0.0)  # get_lists: 75/s -> 3/s
    server = Scripted(reply(200, ACCOUNT_ANSWER), reply(200, ACCOUNT_ANSWER), reply(200, {"data": []}))
    one, two = (
        KlaviyoClient(api_key=key, transport=server.transport(), rate_limiter=limiter)
        for key in ("pk_first_key_of_acct", "pk_second_key_of_acct")
    )
    one.call("get_accounts")
    clock.advance(60)  # get_accounts is 1/s, 1/min at this scale
    two.call("get_accounts")
    clock.advance(60)
    slept = len(clock.slept)
    for client in (one, two, one):
        client.call("get_lists")
    assert len(clock.slept) == slept
    two.call("get_lists")
    assert clock.slept[slept:] == [1.0], "the fourth call in a second waits, whichever key makes it"
    fresh = KlaviyoClient(api_key="pk_second_key_of_acct", transport=server.transport(), rate_limiter=limiter)
    for _ in range(3):  # two more fit in this second, with the fourth call's
        fresh.call("get_lists")
    assert clock.slept[slept:] == [1.0, 1.0], "a new client with a known key is paced with its account at once"


def test_an_oauth_token_keeps_its_own_buckets() -> None:
    """An OAuth app has a quota of its own in each account, apart from the account's keys."""
    clock = ManualClock()
    limiter = RateLimiter(clock, factor=0.04, margin=0.0)
    server = Scripted(reply(200, ACCOUNT_ANSWER), reply(200, ACCOUNT_ANSWER), reply(200, {"data": []}))
    key = KlaviyoClient(api_key="pk_key_of_the_account", transport=server.transport(), rate_limiter=limiter)
    app = KlaviyoClient(
        credentials=BearerToken("access-token-of-an-app"), transport=server.transport(), rate_limiter=limiter
    )
    key.call("get_accounts")
    clock.advance(60)
    app.call("get_accounts")
    clock.advance(60)
    slept = len(clock.slept)
    for _ in range(3):
        key.call("get_lists")
        app.call("get_lists")
    assert len(clock.slept) == slept


class Observed(httpx.BaseTransport):
    """The sandbox's transport, noting when each request arrived (on the clock) and its answer."""

    def __init__(self, inner: httpx.BaseTransport, clock: SteppedClock) -> None:
        self.inner, self.clock = inner, clock
        self.seen: list[tuple[float, str, str, int]] = []  # (when, path, credential, status)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        at = self.clock.time()
        response = self.inner.handle_request(request)
        self.seen.append((at, request.url.path, request.headers["authorization"], response.status_code))
        return response


def test_two_keys_of_one_sandbox_account_stay_within_its_limits_together() -> None:
    """Klaviyo limits an account, not a key. Two private keys of one sandbox account, each in its own
    client and thread, call get_lists at once (limits scaled to 3/s, 30/min on both sides) through one
    toolkit limiter, as every client of a process shares ``shared_limiter()``; each key's account was
    learnt from its get_accounts answer. The sandbox answers no 429, and its own count of the arrivals
    (fixed 1 s and 60 s windows) stays within the account's limits. Time is virtual (SteppedClock):
    each call leaves at the moment it was admitted for, however busy the machine is."""
    from klaviyo_sandbox import DEMO_KEY, PUBLIC_KEY, Sandbox
    from klaviyo_toolkit.connections import fetch_account

    clock = SteppedClock()
    sb = Sandbox(demo_data=False, rate_limit_factor=0.04, clock=clock, request_log_size=None)
    limiter = RateLimiter(clock, factor=0.04)  # the toolkit's own (not sb.client_limiter, which knows the account)
    transport = Observed(sb.transport(), clock)
    clients = [
        KlaviyoClient(api_key=key, base_url=sb.BASE_URL, transport=transport, rate_limiter=limiter, clock=clock)
        for key in (DEMO_KEY, sb.create_key("*"))
    ]
    for client in clients:  # as a login or a connection does
        account = fetch_account(client)
        assert account is not None and account.id == PUBLIC_KEY
        clock.advance(60)  # get_accounts is 1/s, 1/min at this scale, and a key's first call is paced alone
    calls = 30

    def work(client: KlaviyoClient) -> None:
        with clock.taking_part():
            for _ in range(calls):
                client.call("get_lists")

    threads = [threading.Thread(target=work, args=(client,)) for client in clients]
    clock.expect(len(threads))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers = [(at, key, status) for at, path, key, status in transport.seen if path == "/api/lists"]
    assert [status for _, _, status in answers].count(429) == 0, "the sandbox refused none"
    assert len(answers) == 2 * calls, "and none was retried"
    arrivals = sorted(at for at, _, _ in answers)
    per_second = collections.Counter(math.floor(at) for at in arrivals)
    per_minute = collections.Counter(math.floor(at / 60) for at in arrivals)
    assert max(per_second.values()) <= 3 and max(per_minute.values()) <= 30, (per_second, per_minute)
    assert_within_limits(arrivals, RateLimitSpec(3, 30))  # and in any 1 s or 60 s span, not only whole ones
    keys_per_second = collections.defaultdict(set)
    for at, key, _ in answers:
        keys_per_second[math.floor(at)].add(key)
    assert sum(len(keys) == 2 for keys in keys_per_second.values()) >= 10, "the two keys called side by side"
    assert arrivals[-1] - arrivals[0] < 75, "and no slower than the account's limits require (2 x 30/min)"


def test_shared_limiter_is_process_wide() -> None:
    seen: list[RateLimiter] = []
    threads = [threading.Thread(target=lambda: seen.append(shared_limiter())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(limiter is shared_limiter() for limiter in seen)
    transport = httpx.MockTransport(Scripted())
    one = KlaviyoClient(api_key="pk_test_0123456789", transport=transport)
    two = KlaviyoClient(api_key="pk_other_0123456789", transport=transport)
    assert one.limiter is two.limiter is shared_limiter()
    assert KlaviyoClient(api_key="pk_test_0123456789", clock=ManualClock()).limiter is not shared_limiter(), (
        "a client on its own clock gets its own limiter"
    )


@pytest.mark.parametrize(
    "factor",
    [0, 0.0, -1, -0.5, float("nan"), float("inf"), float("-inf"), True, pytest.param(10**400, id="int-too-big")],
)
def test_a_factor_that_is_not_a_finite_number_above_zero_is_refused_when_set(factor: float) -> None:
    with pytest.raises(ToolkitUsageError, match=r"factor .* finite number > 0.*None to turn"):
        RateLimiter(ManualClock(), factor=factor)
    limiter = RateLimiter(ManualClock(), factor=0.5)
    with pytest.raises(ToolkitUsageError, match="factor"):
        limiter.factor = factor
    assert limiter.factor == 0.5, "a refused factor leaves the old one in place"


def test_a_sandbox_with_a_bad_factor_is_refused_when_made() -> None:
    from klaviyo_sandbox import Sandbox

    with pytest.raises(ToolkitUsageError, match="factor nan"):
        Sandbox(demo_data=False, rate_limit_factor=float("nan"), clock=ManualClock())


def test_a_small_factor_still_rounds_limits_up_to_one_call() -> None:
    spec = RateLimitSpec(burst=3, steady=60, daily=10)
    limiter = RateLimiter(ManualClock(), factor=0.2, margin=0.0)
    assert limiter.reserve("k", spec).delay == 0.0
    assert limiter.reserve("k", spec).delay == 1.0, "burst 3 * 0.2 rounds to 1: one a second"
    with pytest.raises(DailyLimitExhaustedError):
        limiter.reserve("k", spec)  # daily 10 * 0.2 = two a day
    assert RateLimiter(factor=None).factor is None and RateLimiter(factor=2).factor == 2.0
