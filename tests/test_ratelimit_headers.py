"""``RateLimit-Remaining: 0`` holds the operation's bucket until ``RateLimit-Reset``: the next call is a certain 429.

Klaviyo (and the sandbox) send ``RateLimit-Limit``/``-Remaining``/``-Reset`` on every answer that is
not a 429. Another process of the account (a limiter of its own) spends most of the minute first, so
our limiter, right by its own count, would send into a spent window; the headers say so first.
"""

from __future__ import annotations

import pytest

from klaviyo_sandbox import DEMO_KEY, Sandbox
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.client import NO_RETRIES, KlaviyoClient
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import NotFoundError, RateLimitError, RateLimitWaitError
from klaviyo_toolkit.ratelimit import RateLimiter

from .scripted import Scripted, reply

pytestmark = pytest.mark.usefixtures("clean_env")

FACTOR = 0.04  # get_lists: 3/s, 30/min
STEADY = load_catalog().get("get_lists").rate_limit.scaled(FACTOR).steady
MINUTE = 1_699_999_980.0  # a whole minute: the sandbox's windows start on whole minutes of its clock


def _spent_by_another_process(calls_left: int) -> tuple[Sandbox, ManualClock]:
    """A sandbox whose minute window of get_lists has ``calls_left`` calls left, spent by a client with
    a limiter of its own (another process of the account)."""
    clock = ManualClock(start=MINUTE)
    sb = Sandbox(demo_data=False, rate_limit_factor=FACTOR, clock=clock, request_log_size=None)
    with sb.client(rate_limiter=RateLimiter(clock, factor=FACTOR)) as other:
        for _ in range(STEADY - calls_left):
            other.call("get_lists")
    assert clock.monotonic() - MINUTE < 20, "the other process's calls fit in the first third of the minute"
    sb.requests.clear()
    return sb, clock


def _ours(sb: Sandbox, clock: ManualClock, limiter: RateLimiter | None = None) -> KlaviyoClient:
    return KlaviyoClient(
        api_key=DEMO_KEY,
        base_url=sb.BASE_URL,
        transport=sb.transport(),
        rate_limiter=limiter or RateLimiter(clock, factor=FACTOR),
        clock=clock,
    )


def _statuses(sb: Sandbox) -> list[int]:
    return [r["status"] for r in sb.requests if r["operation_id"] == "get_lists"]


def test_the_call_after_remaining_0_waits_for_the_reset_instead_of_collecting_a_429() -> None:
    sb, clock = _spent_by_another_process(calls_left=2)
    with _ours(sb, clock) as ours:
        first, second = ours.call("get_lists"), ours.call("get_lists")
        assert second.headers["ratelimit-remaining"] == "0"
        before = clock.monotonic()
        ours.call("get_lists")
    assert _statuses(sb) == [200, 200, 200], "no 429: the third call waited for the window to reset"
    assert clock.monotonic() >= MINUTE + 60 > before, "it went in the next minute"
    assert first.headers["ratelimit-remaining"] == "1"


def test_a_reset_past_max_wait_refuses_the_call_saying_why_and_what_to_do() -> None:
    sb, clock = _spent_by_another_process(calls_left=1)
    with _ours(sb, clock) as ours:
        ours.call("get_lists")
        quick = ours.with_options(max_wait=5.0)
        with pytest.raises(RateLimitWaitError) as err:
            quick.call("get_lists")
    text = str(err.value)
    assert "RateLimit-Remaining: 0" in text and "over max_wait=5.0s" in text and "max_wait=" in text
    assert "Try again after that" in text
    assert _statuses(sb) == [200], "the refused call sent nothing"


def test_remaining_0_holds_nothing_when_limiting_is_off() -> None:
    sb, clock = _spent_by_another_process(calls_left=1)
    slept = len(clock.slept)
    with _ours(sb, clock, RateLimiter(clock, factor=None)) as ours:
        ours.call("get_lists")
        with pytest.raises(RateLimitError):  # the 429 itself: no retries asked for
            ours.with_options(retry=NO_RETRIES).call("get_lists")
    assert _statuses(sb) == [200, 429], "factor=None: the client sends as asked and meets Klaviyo's 429"
    assert clock.slept[slept:] == [], "and waited for no slot"


@pytest.mark.parametrize(
    ("remaining", "reset"),
    [
        ("1", "30"),  # calls are left
        ("0", None),  # no reset given
        (None, "30"),  # no remaining given
        ("0", "soon"),
        ("zero", "30"),
        ("-1", "30"),  # a negative count
        ("0", "-5"),
        ("0", "0"),
        ("0", "nan"),
        ("0", "inf"),
        ("0", "1e300"),  # absurd
        ("0", "86400"),  # a day: past the retry budget, not waited for (as a Retry-After past it)
        ("0.0", "30"),
        ("0, 0;w=1", "30"),
    ],
)
def test_missing_malformed_or_absurd_headers_hold_nothing(remaining: str | None, reset: str | None) -> None:
    headers = {k: v for k, v in (("RateLimit-Remaining", remaining), ("RateLimit-Reset", reset)) if v is not None}
    clock = ManualClock()
    server = Scripted(reply(200, {"data": []}, {"RateLimit-Limit": "750", **headers}))
    with KlaviyoClient(api_key="pk_test_0123456789abcdef", transport=server.transport(), clock=clock) as kl:
        kl.call("get_lists")
        kl.call("get_lists")
    assert clock.slept == []


def test_a_valid_remaining_0_from_any_answer_but_a_429_holds_the_bucket() -> None:
    """The same script with sane values does wait (so the cases above are not vacuous), on an error too."""
    clock = ManualClock()
    headers = {"RateLimit-Limit": "750", "RateLimit-Remaining": "0", "RateLimit-Reset": "30"}
    server = Scripted(reply(404, {"errors": []}, headers), reply(200, {"data": []}))
    with KlaviyoClient(api_key="pk_test_0123456789abcdef", transport=server.transport(), clock=clock) as kl:
        with pytest.raises(NotFoundError):
            kl.call("get_lists")
        kl.call("get_lists")
        kl.call("get_profiles")  # another operation's bucket is not held
    assert clock.slept == [pytest.approx(30.0)]
