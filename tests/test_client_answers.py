"""How the client reads what comes back when it is not what Klaviyo documents: bodies that are not
JSON:API, error pages that echo the request, several errors at once, a paging loop, a bad
Retry-After; and which calls may be sent twice, which limits a call counts against.

Answers are scripted (``tests/scripted.py``) on a ManualClock, so no test sleeps; the tier test uses
the sandbox, which enforces Klaviyo's documented tiers itself.
"""

from __future__ import annotations

import itertools
import json
from email.utils import formatdate
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit import KlaviyoToolkit
from klaviyo_toolkit.client import KlaviyoClient, RetryPolicy
from klaviyo_toolkit.clock import ManualClock, SystemClock
from klaviyo_toolkit.errors import (
    BadRequestError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
    TransportError,
    UnknownOperationError,
)
from klaviyo_toolkit.ratelimit import shared_limiter

from .scripted import Scripted, error_body, fail, reply

pytestmark = pytest.mark.usefixtures("clean_env")

KEY = "pk_test_0123456789abcdef0123"


def client_for(server: Scripted, clock: ManualClock | None = None, **options: Any) -> KlaviyoClient:
    return KlaviyoClient(api_key=KEY, transport=server.transport(), clock=clock or ManualClock(), **options)


# -- bodies that are not JSON:API ------------------------------------------------------------------
@pytest.mark.parametrize(
    "answer",
    [
        reply(200, "<html><body>Down for maintenance</body></html>"),
        lambda request: httpx.Response(200, headers={"content-type": "application/vnd.api+json"},
                                       content=b'{"data": [{"id": "L1", "type": "list"'),
        reply(200),  # nothing at all where a document is due
        lambda request: httpx.Response(200, headers={"content-type": "application/json"}, content=b'"ok"'),
    ],
    ids=["html page", "cut-off json", "empty 200", "json string"],
)
def test_a_success_status_with_an_unreadable_body_is_an_error_and_a_read_is_retried(answer: Any) -> None:
    server = Scripted(answer)
    with pytest.raises(InvalidResponseError) as caught:
        client_for(server, retry=RetryPolicy(max_retries=2, seed=1)).call("get_lists")
    assert caught.value.received_status == 200 and caught.value.status == 502
    assert "KLAVIYO_BASE_URL" in str(caught.value)
    assert len(server.requests) == 3, "a read answered with garbage is tried again"


def test_iterating_never_ends_quietly_on_an_unreadable_page() -> None:
    first = {"data": [{"id": "L1", "type": "list", "attributes": {}}],
             "links": {"next": "https://a.klaviyo.com/api/lists?page%5Bcursor%5D=two"}}
    server = Scripted(reply(200, first), reply(200, "<html>proxy error</html>"))
    with pytest.raises(InvalidResponseError):
        list(client_for(server, retry=RetryPolicy(max_retries=0)).iterate("get_lists"))


def test_a_write_answered_with_an_unreadable_body_is_not_sent_again() -> None:
    server = Scripted(reply(201, "<html>ok?</html>"))
    with pytest.raises(InvalidResponseError) as caught:
        client_for(server).call("create_list", name="Newsletter")
    assert len(server.requests) == 1 and caught.value.maybe_applied


def test_no_content_is_fine_where_klaviyo_documents_none() -> None:
    server = Scripted(reply(204))
    assert client_for(server).call("delete_list", id="L1").status == 204


# -- error answers ---------------------------------------------------------------------------------
def test_an_error_page_that_echoes_the_key_never_carries_it_into_the_message_or_to_the_model() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, headers={"content-type": "text/plain"},
                              text=f"Bad request. Headers received: authorization={request.headers['authorization']}")

    client = client_for(Scripted(echo, echo))
    with pytest.raises(BadRequestError) as caught:
        client.call("get_lists")
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    assert "Headers received" in str(caught.value), "the rest of the page is kept"
    tool = KlaviyoToolkit(client, scopes="*").get_tools(include=["get_lists"])[0]
    message = tool.invoke({"type": "tool_call", "id": "c1", "name": "get_lists", "args": {}})
    assert KEY not in str(message.content) and "HTTP 400" in str(message.content)


@pytest.mark.parametrize("lead", [250, 262, 270, 285])
def test_an_error_page_cut_short_keeps_no_part_of_the_key(lead: int) -> None:
    # The page is shortened for the message; cut inside the key, its first part (pk_ and a dozen
    # characters) looks like no key and is no registered secret, unless the page is redacted first.
    long_key = "pk_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8dKLzd"

    def echo(request: httpx.Request) -> httpx.Response:
        page = "x" * lead + " " + request.headers["authorization"].split()[-1] + " end of page"
        return httpx.Response(400, headers={"content-type": "text/plain"}, text=page)

    client = KlaviyoClient(api_key=long_key, transport=Scripted(echo).transport(), clock=ManualClock())
    with pytest.raises(BadRequestError) as caught:
        client.call("get_lists")
    text = str(caught.value) + repr(caught.value)
    assert not [long_key[i : i + 8] for i in range(len(long_key) - 7) if long_key[i : i + 8] in text], text


def test_a_key_of_any_shape_is_masked_in_errors_once_a_client_holds_it() -> None:
    odd = "hello-there-this-is-my-key"

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"errors": [{"status": 400, "code": "invalid", "detail": f"bad key {odd}"}]})

    client = KlaviyoClient(api_key=odd, transport=Scripted(echo).transport(), clock=ManualClock())
    with pytest.raises(BadRequestError) as caught:
        client.call("get_lists")
    assert odd not in str(caught.value) and odd not in json.dumps(caught.value.errors)


def test_every_error_of_an_answer_is_in_the_message() -> None:
    body = {"errors": [
        {"status": 400, "code": "invalid", "detail": "bad email", "source": {"pointer": "/data/attributes/email"}},
        {"status": 400, "code": "invalid", "detail": "bad phone",
         "source": {"pointer": "/data/attributes/phone_number"}},
    ]}
    with pytest.raises(BadRequestError) as caught:
        client_for(Scripted(reply(400, body))).call("get_lists")
    text = str(caught.value)
    assert "bad email (at /data/attributes/email)" in text and "bad phone (at /data/attributes/phone_number)" in text


@pytest.mark.parametrize("body", [None, {"errors": "nope"}, {"errors": []}])
def test_an_error_with_no_detail_says_so(body: Any) -> None:
    with pytest.raises(BadRequestError) as caught:
        client_for(Scripted(reply(400, body))).call("get_lists")
    assert str(caught.value).endswith("HTTP 400: Klaviyo's answer gave no error detail [request req-scripted]")


def test_an_error_in_json_that_is_not_klaviyos_document_keeps_its_text() -> None:
    """A gateway's 502 answers {"message": ...}: that text is the only detail there is."""
    with pytest.raises(ServerError) as caught:
        client_for(Scripted(*[reply(502, {"message": "Internal server error from gateway"})] * 6)).call("get_lists")
    assert "Internal server error from gateway" in str(caught.value)


# -- Retry-After -----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["-5", "nan", "inf", "soon"])
def test_a_retry_after_that_is_no_wait_falls_back_to_backoff(value: str) -> None:
    server = Scripted(reply(429, error_body(429), {"retry-after": value}), reply(200, {"data": []}))
    clock = ManualClock()
    client_for(server, clock, retry=RetryPolicy(seed=3)).call("get_lists")
    assert len(clock.slept) == 1 and clock.slept[0] > 0, "never a hot loop"


def test_a_retry_after_date_is_read_on_the_clients_clock() -> None:
    clock = ManualClock()
    when = formatdate(clock.time() + 10, usegmt=True)
    server = Scripted(reply(429, error_body(429), {"retry-after": when}), reply(200, {"data": []}))
    client_for(server, clock).call("get_lists")
    assert clock.slept == [pytest.approx(10.0, abs=1.0)]


def test_giving_up_says_why() -> None:
    server = Scripted(reply(429, error_body(429), {"retry-after": "1000000000"}))
    with pytest.raises(RateLimitError) as caught:
        client_for(server).call("get_lists")
    assert len(server.requests) == 1
    assert "past the retry budget of 60 s" in str(caught.value)

    server = Scripted(reply(503, error_body(503)))
    with pytest.raises(ServerError) as failed:
        client_for(server, retry=RetryPolicy(max_retries=2, seed=1)).call("get_lists")
    assert "gave up after 3 attempts" in str(failed.value)


# -- which writes may go twice ---------------------------------------------------------------------
def test_a_body_that_merely_holds_an_event_shaped_object_is_not_safe_to_repeat() -> None:
    record = json.dumps({"order": {"type": "event", "attributes": {"unique_id": "o-1"}}, "total": 5})
    for answer in (reply(503, error_body(503)), fail(httpx.ReadTimeout)):
        server = Scripted(answer, reply(202))
        with pytest.raises((ServerError, TransportError)) as caught:
            client_for(server).call("create_data_source_record", data_source_id="DS1",
                                    data_source_record={"record": record})
        assert len(server.requests) == 1, "a free-form record decides nothing"
        assert caught.value.maybe_applied


def test_event_properties_shaped_like_an_event_do_not_make_an_event_without_unique_id_repeatable() -> None:
    props = {"last": {"type": "event", "attributes": {"unique_id": "o-1"}}}
    server = Scripted(reply(503, error_body(503)), reply(202))
    with pytest.raises(ServerError):
        client_for(server).call("create_event", metric={"name": "Placed Order"}, profile={"email": "a@example.com"},
                                properties=props)
    assert len(server.requests) == 1

    server = Scripted(reply(503, error_body(503)), reply(202))
    client_for(server).call("create_event", metric={"name": "Placed Order"}, profile={"email": "a@example.com"},
                            properties=props, unique_id="order-1")
    assert len(server.requests) == 2, "an event with its own unique_id is deduplicated by Klaviyo"


# -- paging ----------------------------------------------------------------------------------------
def test_a_links_next_that_loops_stops_the_iteration_after_each_page_was_read_once() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"id": "L1", "type": "list", "attributes": {}}],
                                         "links": {"next": "https://a.klaviyo.com/api/lists?page%5Bcursor%5D=SAME"}})

    server = Scripted(*[page] * 50)
    seen: list[dict[str, Any]] = []
    with pytest.raises(InvalidResponseError) as caught:
        seen.extend(itertools.islice(client_for(server).iterate("get_lists"), 100))
    assert len(server.requests) == 2 and len(seen) == 2
    assert "repeats a page already read" in str(caught.value)


class _LinksBackToTheFirstPage(httpx.BaseTransport):
    """The sandbox behind a gateway that rewrites the second page's ``links.next`` to the first page,
    spelled as another server would: a trailing slash, brackets not encoded, parameters reordered."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.urls: list[httpx.URL] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(request.url)
        response = self.inner.handle_request(request)
        if len(self.urls) != 2:
            return response
        response.read()
        body = response.json()
        first = self.urls[0]
        query = "&".join(f"{k}={v}" for k, v in reversed(first.params.multi_items()))
        body["links"]["next"] = f"https://a.klaviyo.com{first.path}/?{query}"
        return httpx.Response(200, headers={"content-type": "application/vnd.api+json"}, json=body)


def test_a_links_next_back_to_the_first_page_is_caught_however_it_is_spelled() -> None:
    """Each record once: the first page's URL as sent and as linked back to are the same page."""
    sandbox = Sandbox(seed=3, rate_limit_factor=None)
    gateway = _LinksBackToTheFirstPage(sandbox.transport())
    client = KlaviyoClient(api_key="pk_sandbox_demo", transport=gateway, base_url=sandbox.BASE_URL,
                           clock=ManualClock())
    ids: list[str] = []
    with pytest.raises(InvalidResponseError, match="repeats a page already read"):
        ids.extend(str(p["id"]) for p in client.iterate("get_profiles", page_size=2, sort="email"))
    assert len(gateway.urls) == 2 and len(ids) == 4 and len(set(ids)) == 4, ids


# -- limits ----------------------------------------------------------------------------------------
def test_a_call_in_a_documented_tier_waits_for_the_tiers_lower_limits() -> None:
    sandbox = Sandbox(demo_data=False, rate_limit_factor=None)  # the client's own limits are under test
    clock = ManualClock()
    client = KlaviyoClient(api_key="pk_sandbox_demo", transport=sandbox.transport(), base_url=sandbox.BASE_URL,
                           clock=clock)
    made = client.call("create_list", name="Tiered").data["id"]
    before = len(clock.slept)
    for _ in range(4):
        assert client.call("get_list", id=made, additional_fields_list=["profile_count"]).status == 200
    tier_waits = clock.slept[before:]
    assert len(tier_waits) >= 2 and min(tier_waits) > 0.5, "the profile_count tier admits 1 call per second"
    before = len(clock.slept)
    for _ in range(4):
        client.call("get_list", id=made)
    assert len(clock.slept) == before, "a plain get_list counts against the operation's own, higher limits"


def test_clients_on_real_time_share_the_process_buckets() -> None:
    explicit = KlaviyoClient(api_key=KEY, clock=SystemClock())
    default = KlaviyoClient(api_key=KEY)
    assert explicit.limiter is shared_limiter() is default.limiter


def test_a_beta_operation_asked_for_without_opting_in_says_how() -> None:
    with pytest.raises(UnknownOperationError) as caught:
        KlaviyoClient(api_key=KEY).prepare("clone_campaign_audience_beta", {})
    assert "include_beta=True" in str(caught.value)


def test_a_tool_error_has_one_full_stop_before_its_hint() -> None:
    tool = KlaviyoToolkit(client_for(Scripted(*[fail(httpx.ConnectError)] * 5)), scopes="*").get_tools(
        include=["get_lists"])[0]
    message = str(tool.invoke({"type": "tool_call", "id": "c1", "name": "get_lists", "args": {}}).content)
    assert "the network (gave up after 4 attempts" in message and "). This is temporary" in message
    assert ".." not in message
