"""Retries: only safe calls, only retryable failures, Retry-After honoured, jittered and bounded waits.

Every client here runs on a ManualClock: waits are recorded in ``clock.slept`` and take no real time.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from klaviyo_toolkit.client import AsyncKlaviyoClient, KlaviyoClient, RetryPolicy
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import ClientError, KlaviyoAPIError, RateLimitError, ServerError, TransportError

from .scripted import Scripted, error_body, fail, reply

pytestmark = pytest.mark.usefixtures("clean_env")

KEY = "pk_test_0123456789abcdef"
OK = reply(200, {"data": []})
EVENT = {"properties": {"plan": "pro"}, "metric": {"name": "Upgraded"}, "profile": {"email": "a@example.com"}}


def client_for(server: Scripted, clock: ManualClock | None = None, **options: Any) -> KlaviyoClient:
    return KlaviyoClient(api_key=KEY, transport=server.transport(), clock=clock or ManualClock(), **options)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_reads_are_retried_on_retryable_statuses(status: int) -> None:
    server = Scripted(reply(status, error_body(status)), OK)
    clock = ManualClock()
    result = client_for(server, clock, retry=RetryPolicy(seed=1)).call("get_lists")
    assert result.status == 200
    assert len(server.requests) == 2
    assert len(clock.slept) == 1


@pytest.mark.parametrize("exc_type", [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError])
def test_reads_are_retried_on_connection_failures(exc_type: type[httpx.TransportError]) -> None:
    server = Scripted(fail(exc_type), fail(exc_type), OK)
    assert client_for(server).call("get_profiles").status == 200
    assert len(server.requests) == 3


def test_retries_stop_at_max_retries() -> None:
    server = Scripted(reply(503, error_body(503)))
    clock = ManualClock()
    with pytest.raises(ServerError):
        client_for(server, clock, retry=RetryPolicy(max_retries=2)).call("get_lists")
    assert len(server.requests) == 3
    assert len(clock.slept) == 2


def test_connection_failures_stop_at_max_retries_with_a_transport_error() -> None:
    server = Scripted(fail(httpx.ConnectError))
    with pytest.raises(TransportError):
        client_for(server, retry=RetryPolicy(max_retries=4)).call("get_lists")
    assert len(server.requests) == 5


def test_read_only_queries_and_idempotent_writes_are_retried_but_not_deletes() -> None:
    server = Scripted(reply(503), OK)
    query = {
        "statistics": ["opens"],
        "conversion_metric_id": "M1",
        "timeframe": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
    }
    client_for(server).call("query_campaign_values", **query)
    assert len(server.requests) == 2, "a read-only POST (a report query) is safe to repeat"
    server = Scripted(reply(503), reply(204))
    client_for(server).call("add_profiles_to_list", id="L1", profile_ids=["P1"])
    assert len(server.requests) == 2, "membership is a set: adding twice is adding once"
    server = Scripted(reply(503, error_body(503)), reply(204))
    with pytest.raises(ServerError) as err:
        client_for(server).call("delete_list", id="L1")
    assert len(server.requests) == 1 and err.value.maybe_applied, "a delete is not repeated blindly"


def test_a_create_is_not_retried_after_a_5xx_and_says_it_may_have_been_applied() -> None:
    server = Scripted(reply(503, error_body(503)), OK)
    clock = ManualClock()
    with pytest.raises(ServerError) as err:
        client_for(server, clock).call("create_profile", email="a@example.com")
    assert len(server.requests) == 1 and err.value.maybe_applied
    assert clock.slept == []


def test_a_create_is_not_retried_after_a_lost_response_either() -> None:
    server = Scripted(fail(httpx.RemoteProtocolError), OK)
    with pytest.raises(TransportError) as err:
        client_for(server).call("create_profile", email="a@example.com")
    assert len(server.requests) == 1 and err.value.sent and err.value.maybe_applied


def test_any_call_is_retried_after_a_429_or_a_connection_that_never_opened() -> None:
    created = reply(201, {"data": {"type": "profile", "id": "P1"}})
    server = Scripted(reply(429, error_body(429), {"Retry-After": "1"}), created)
    assert client_for(server).call("create_profile", email="a@example.com").status == 201
    assert len(server.requests) == 2, "Klaviyo did not process a 429"
    server = Scripted(fail(httpx.ConnectError), created)
    assert client_for(server).call("create_profile", email="a@example.com").status == 201
    assert len(server.requests) == 2, "nothing left before the connection opened"


def test_no_idempotency_header_is_ever_sent() -> None:
    server = Scripted(OK)
    client_for(server).call("create_profile", email="a@example.com")
    assert "idempotency-key" not in {k.lower() for k in server.requests[0].headers}, "Klaviyo has no such header"


def test_an_event_with_a_unique_id_is_retried() -> None:
    server = Scripted(reply(502), reply(202))
    client_for(server).call("create_event", unique_id="order-1001", **EVENT)
    assert len(server.requests) == 2


def test_an_event_without_a_unique_id_is_not_retried() -> None:
    server = Scripted(reply(502), reply(202))
    with pytest.raises(ServerError):
        client_for(server).call("create_event", **EVENT)
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_other_than_429_are_never_retried(status: int) -> None:
    server = Scripted(reply(status, error_body(status)))
    clock = ManualClock()
    with pytest.raises(ClientError):
        client_for(server, clock, retry=RetryPolicy(max_retries=5)).call("get_lists")
    with pytest.raises(ClientError):
        client_for(server, clock).call("create_profile", email="a@example.com")
    assert len(server.requests) == 2
    assert clock.slept == []


@pytest.mark.parametrize(("status", "header", "wait"), [(429, "7", 7.0), (503, "2.5", 2.5), (429, "0", 0.0)])
def test_retry_after_is_honoured_exactly(status: int, header: str, wait: float) -> None:
    server = Scripted(reply(status, error_body(status), {"retry-after": header}), OK)
    clock = ManualClock()
    client_for(server, clock).call("get_lists")
    assert clock.slept == [wait]


async def test_retry_after_is_honoured_by_the_async_client() -> None:
    server = Scripted(reply(429, error_body(429), {"retry-after": "3"}), reply(503), OK)
    clock = ManualClock()
    async with AsyncKlaviyoClient(
        api_key=KEY, transport=server.transport(), clock=clock, retry=RetryPolicy(seed=3)
    ) as client:
        assert (await client.call("get_lists")).status == 200
    assert len(server.requests) == 3
    assert clock.slept[0] == 3.0 and 0.5 <= clock.slept[1] <= 1.0


def test_backoff_is_jittered_within_exponential_bounds() -> None:
    policy = RetryPolicy(max_retries=8, base_delay=0.5, max_delay=4.0, max_elapsed=1000, seed=7)
    server = Scripted(reply(503))
    clock = ManualClock()
    with pytest.raises(ServerError):
        client_for(server, clock, retry=policy).call("get_lists")
    assert len(clock.slept) == 8
    for attempt, waited in enumerate(clock.slept, start=1):
        cap = min(4.0, 0.5 * 2 ** (attempt - 1))
        assert cap / 2 <= waited <= cap, (attempt, waited)
    assert len(set(clock.slept)) == len(clock.slept), "jittered, not fixed steps"


def backoffs(policy: RetryPolicy) -> list[float]:
    clock = ManualClock()
    with pytest.raises(ServerError):
        client_for(Scripted(reply(500)), clock, retry=policy).call("get_lists")
    return clock.slept


def test_backoff_is_reproducible_with_a_seed() -> None:
    first = backoffs(RetryPolicy(max_retries=5, seed=42))
    assert first == backoffs(RetryPolicy(max_retries=5, seed=42))
    assert first != backoffs(RetryPolicy(max_retries=5, seed=43))
    fresh = RetryPolicy(seed=42)
    assert first == [fresh.backoff(attempt, None) for attempt in range(1, 6)]


def test_the_max_elapsed_budget_stops_retrying() -> None:
    server = Scripted(reply(503, error_body(503), {"retry-after": "10"}))
    clock = ManualClock()
    policy = RetryPolicy(max_retries=10, max_elapsed=25.0)
    with pytest.raises(ServerError):
        client_for(server, clock, retry=policy).call("get_lists")
    assert clock.slept == [10.0, 10.0], "a third wait would pass the 25 s budget"
    assert len(server.requests) == 3


def test_a_retry_after_longer_than_the_budget_is_not_waited_for() -> None:
    server = Scripted(reply(429, error_body(429), {"retry-after": "3600"}), OK)
    clock = ManualClock()
    with pytest.raises(RateLimitError) as err:
        client_for(server, clock).call("get_lists")
    assert err.value.retry_after == 3600.0
    assert clock.slept == [] and len(server.requests) == 1


def test_hooks_see_the_failed_attempts_count() -> None:
    records: list[Any] = []
    server = Scripted(reply(503, error_body(503)))
    with pytest.raises(KlaviyoAPIError):
        client_for(server, retry=RetryPolicy(max_retries=2), hooks=[records.append]).call("get_lists")
    assert records[0].attempts == 3 and isinstance(records[0].error, ServerError)


def test_a_profile_write_that_appends_to_a_property_array_is_not_sent_again_after_a_lost_response() -> None:
    """PATCH sets attributes, so a profile update is the same done twice; an append is not (twice gave
    ["A", "B", "B"]). Lost on the way back, it is marked maybe_applied instead of repeated."""
    import json

    from klaviyo_sandbox import Faults, Sandbox
    from klaviyo_toolkit.errors import KlaviyoError

    sb = Sandbox(demo_data=False, rate_limit_factor=None)
    client = sb.client()
    pid = client.call("create_profile", email="skus@example.com", properties=json.dumps({"skus": ["A"]})).data["id"]
    sb.faults = Faults(lost_response_rate=1.0, count=1, operations=["update_profile"])
    with pytest.raises(KlaviyoError) as lost:
        client.call("update_profile", id=pid, patch_properties={"append": json.dumps({"skus": "B"})})
    assert getattr(lost.value, "maybe_applied", False)
    sb.faults = Faults()
    assert client.call("get_profile", id=pid).data["attributes"]["properties"]["skus"] == ["A", "B"]
    sb.faults = Faults(lost_response_rate=1.0, count=1, operations=["update_profile"])
    client.call("update_profile", id=pid, patch_properties={"unappend": json.dumps({"skus": "B"})})  # the same twice
    assert client.call("get_profile", id=pid).data["attributes"]["properties"]["skus"] == ["A"]
