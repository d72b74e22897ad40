"""The client against fake servers: auth, revision, base URL, JSON:API parsing, pagination, typed errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from klaviyo_toolkit.auth import ApiKey, BearerToken
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.client import NO_RETRIES, AsyncKlaviyoClient, KlaviyoClient
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import (
    AuthenticationError,
    BadRequestError,
    ClientError,
    ConflictError,
    KlaviyoAPIError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ToolkitUsageError,
    TransportError,
)

from .contract.fake_klaviyo import FakeKlaviyo
from .scripted import Scripted, error_body, fail, nothing_sent, reply

pytestmark = pytest.mark.usefixtures("clean_env")

KEY = "pk_test_0123456789abcdef"
STABLE = load_catalog()


def client_for(server: Any, **options: Any) -> KlaviyoClient:
    options.setdefault("api_key", KEY)
    options.setdefault("clock", ManualClock())
    return KlaviyoClient(transport=httpx.MockTransport(server), **options)


# -- auth and headers --------------------------------------------------------------------------
def test_an_api_key_is_sent_as_klaviyo_api_key() -> None:
    server = Scripted()
    client_for(server).call("get_lists")
    assert server.requests[0].headers["authorization"] == f"Klaviyo-API-Key {KEY}"
    assert server.requests[0].headers["accept"] == "application/vnd.api+json"


@pytest.mark.parametrize(
    "options",
    [{"access_token": "tok-abc"}, {"credentials": BearerToken("tok-abc")}],
    ids=["access_token", "BearerToken"],
)
def test_an_oauth_token_is_sent_as_bearer(options: dict[str, Any]) -> None:
    server = Scripted()
    client = KlaviyoClient(transport=server.transport(), clock=ManualClock(), **options)
    client.call("get_lists")
    assert server.requests[0].headers["authorization"] == "Bearer tok-abc"


class RefreshingTokens:
    """A TokenSource fake: hands out numbered tokens, a new one after each invalidate()."""

    def __init__(self) -> None:
        self.generation = 1
        self.invalidated = 0

    def access_token(self) -> str:
        return f"token-{self.generation}"

    def invalidate(self) -> None:
        self.invalidated += 1
        self.generation += 1


def test_a_rejected_token_is_refreshed_and_the_call_retried_once() -> None:
    tokens = RefreshingTokens()
    server = Scripted(reply(401, error_body(401, "not_authenticated")), reply(200, {"data": []}))
    client = KlaviyoClient(credentials=BearerToken(tokens), transport=server.transport(), clock=ManualClock())
    client.call("get_lists")
    assert tokens.invalidated == 1
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer token-1", "Bearer token-2"]


def test_a_second_401_after_refreshing_raises() -> None:
    tokens = RefreshingTokens()
    server = Scripted(
        reply(401, error_body(401, "not_authenticated")), reply(401, error_body(401, "not_authenticated"))
    )
    client = KlaviyoClient(credentials=BearerToken(tokens), transport=server.transport(), clock=ManualClock())
    with pytest.raises(AuthenticationError):
        client.call("create_list", name="x")
    assert len(server.requests) == 2, "one refresh-and-retry, then the error"


@pytest.mark.parametrize("first", [429, 503])
def test_a_token_that_expires_while_a_call_waits_is_refreshed_too(first: int) -> None:
    """The token can expire during a 429's Retry-After or a 5xx backoff: a 401 on a later attempt is
    refreshed as one on the first is (once per call)."""
    tokens = RefreshingTokens()
    server = Scripted(
        reply(first, error_body(first, "throttled" if first == 429 else "error"), headers={"Retry-After": "1"}),
        reply(401, error_body(401, "not_authenticated")),
        reply(200, {"data": []}),
    )
    client = KlaviyoClient(credentials=BearerToken(tokens), transport=server.transport(), clock=ManualClock())
    client.call("get_lists")
    assert tokens.invalidated == 1
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer token-1", "Bearer token-1",
                                                                    "Bearer token-2"]


def test_a_401_with_a_fixed_token_is_not_retried() -> None:
    server = Scripted(reply(401, error_body(401, "not_authenticated")))
    client = KlaviyoClient(access_token="fixed-token-123456", transport=server.transport(), clock=ManualClock())
    with pytest.raises(AuthenticationError):
        client.call("get_lists")
    assert len(server.requests) == 1


def test_missing_credentials_fail_before_spending_a_rate_limit_slot() -> None:
    from klaviyo_toolkit.ratelimit import RateLimiter

    limiter = RateLimiter(ManualClock())
    client = KlaviyoClient(transport=Scripted().transport(), rate_limiter=limiter)
    client.credentials = None
    with pytest.raises(ToolkitUsageError):
        client.call(
            "query_campaign_values", statistics=["opens"], timeframe={"key": "yesterday"}, conversion_metric_id="M"
        )
    bucket = client._bucket(client.catalog.get("query_campaign_values"))
    assert limiter.usage(bucket)["day"] == 0


def test_the_revision_header_is_the_catalogs() -> None:
    server = Scripted()
    client_for(server).call("get_lists")
    assert STABLE.revision == "2026-07-15"
    assert server.requests[0].headers["revision"] == "2026-07-15"


def test_beta_operations_send_the_pre_release_revision() -> None:
    beta = next(
        op
        for op in load_catalog(include_beta=True)
        if op.beta and op.method == "GET" and not op.client_side and not any(a["required"] for a in op.args)
    )
    server = Scripted()
    client_for(server, include_beta=True).call(beta.operation_id)
    assert server.requests[0].headers["revision"] == "2026-07-15.pre"
    assert server.requests[0].url.path == beta.path


def test_beta_operations_are_unknown_without_include_beta() -> None:
    beta = next(op for op in load_catalog(include_beta=True) if op.beta)
    server = Scripted()
    with pytest.raises(ToolkitUsageError):
        client_for(server).call(beta.operation_id)
    assert server.requests == []


def test_a_revision_can_be_pinned() -> None:
    server = Scripted()
    client_for(server, revision="2025-10-15").call("get_lists")
    assert server.requests[0].headers["revision"] == "2025-10-15"


def test_the_base_url_is_configurable() -> None:
    server = Scripted()
    client_for(server, base_url="http://localhost:8787/").call("get_profile", id="P 1/2")
    url = server.requests[0].url
    assert (url.scheme, url.host, url.port) == ("http", "localhost", 8787)
    assert url.raw_path == b"/api/profiles/P%201%2F2"


def test_the_base_url_comes_from_klaviyo_base_url(clean_env: pytest.MonkeyPatch) -> None:
    server = Scripted()
    client_for(server).call("get_lists")
    assert server.requests[0].url.host == "a.klaviyo.com"
    clean_env.setenv("KLAVIYO_BASE_URL", "http://sandbox.test:9000")
    client_for(server).call("get_lists")
    assert str(server.requests[1].url).startswith("http://sandbox.test:9000/api/lists")
    client_for(server, base_url="https://other.test").call("get_lists")
    assert server.requests[2].url.host == "other.test", "an explicit base_url wins over the environment"


def test_the_api_key_comes_from_klaviyo_api_key(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KLAVIYO_API_KEY", "pk_from_env_0000000000")
    server = Scripted()
    KlaviyoClient(transport=server.transport(), clock=ManualClock()).call("get_lists")
    assert server.requests[0].headers["authorization"] == "Klaviyo-API-Key pk_from_env_0000000000"


def test_client_api_operations_send_no_authorization_and_get_the_public_key() -> None:
    server = Scripted()
    client = client_for(server, public_api_key="PubK3y")
    client.call("get_client_geofences")
    client.call("create_client_event", properties={}, metric={"name": "Viewed"}, profile={"email": "a@example.com"})
    get, post = server.requests
    for request in (get, post):
        assert "authorization" not in request.headers
        assert request.headers["revision"] == "2026-07-15"
    assert get.url.path == "/client/geofences" and get.url.params["company_id"] == "PubK3y"
    assert post.url.path == "/client/events" and post.url.params["company_id"] == "PubK3y"


def test_client_api_operations_work_without_any_private_key() -> None:
    server = Scripted()
    KlaviyoClient(public_api_key="PubK3y", transport=server.transport(), clock=ManualClock()).call(
        "get_client_geofences"
    )
    assert "authorization" not in server.requests[0].headers


def test_missing_credentials_raise_a_usage_error_naming_klaviyo_api_key() -> None:
    server = Scripted()
    client = KlaviyoClient(transport=server.transport(), clock=ManualClock(), public_api_key="PubSecret42")
    with pytest.raises(ToolkitUsageError) as err:
        client.call("get_lists")
    message = str(err.value)
    assert "KLAVIYO_API_KEY" in message
    assert "PubSecret42" not in message
    assert server.requests == []


def test_an_empty_key_is_a_usage_error() -> None:
    with pytest.raises(ToolkitUsageError) as err:
        KlaviyoClient(api_key="   ", transport=httpx.MockTransport(nothing_sent))
    assert "KLAVIYO_API_KEY" in str(err.value)


def test_credentials_never_print_their_secret() -> None:
    key = ApiKey(KEY)
    assert KEY not in repr(key) and KEY not in str(key)
    assert "tok-secret" not in repr(BearerToken("tok-secret"))
    assert KEY not in str(client_for(Scripted()).credentials)


def test_errors_do_not_carry_the_key() -> None:
    server = Scripted(reply(401, error_body(401, "not_authenticated", "Incorrect authentication credentials.")))
    with pytest.raises(AuthenticationError) as err:
        client_for(server).call("get_lists")
    assert KEY not in str(err.value) and KEY not in repr(err.value.__dict__)


# -- responses ---------------------------------------------------------------------------------
DOCUMENT = {
    "data": [
        {
            "type": "profile",
            "id": "P1",
            "attributes": {"email": "a@example.com", "first_name": "Ada"},
            "relationships": {"lists": {"data": [{"type": "list", "id": "L1"}]}},
            "links": {"self": "https://a.klaviyo.com/api/profiles/P1/"},
        }
    ],
    "included": [{"type": "list", "id": "L1", "attributes": {"name": "VIP"}}],
    "links": {
        "self": "https://a.klaviyo.com/api/profiles/",
        "next": "https://a.klaviyo.com/api/profiles/?page%5Bcursor%5D=bmV4dA",
    },
}


def test_a_json_api_document_is_parsed() -> None:
    server = Scripted(reply(200, DOCUMENT, {"x-klaviyo-req-id": "req-42"}))
    page = client_for(server).call("get_profiles", include=["push-tokens"])
    assert page.status == 200 and page.operation_id == "get_profiles"
    assert page.request_id == "req-42"
    assert page.data[0]["id"] == "P1"
    assert page.included == DOCUMENT["included"]
    assert page.next_cursor == "bmV4dA"
    assert list(page.resources()) == DOCUMENT["data"]
    assert server.requests[0].url.params["include"] == "push-tokens"


def test_an_empty_response_has_no_body() -> None:
    server = Scripted(reply(204))
    result = client_for(server).call("add_profiles_to_list", id="L1", profile_ids=["P1"])
    assert result.status == 204 and result.body is None and result.data is None


# -- pagination --------------------------------------------------------------------------------
def paged_fake(count: int) -> tuple[FakeKlaviyo, str]:
    fake = FakeKlaviyo(api_key=KEY)
    ids = fake.seed_profiles(count)
    fake.lists["L1"] = {"name": "All"}
    fake.members["L1"] = ids
    return fake, "L1"


def test_pages_follow_links_next_to_the_end() -> None:
    fake, list_id = paged_fake(23)
    client = client_for(fake.handle)
    pages = list(client.pages("get_list_profiles", id=list_id, page_size=10))
    assert [len(p.data) for p in pages] == [10, 10, 3]
    ids = [r["id"] for r in client.iterate("get_list_profiles", id=list_id, page_size=10)]
    assert ids == fake.members[list_id]
    # The next link is followed as given: the page size is not sent twice, the cursor moves.
    second = fake.requests[1].url
    assert second.params.get_list("page[size]") == ["10"]
    assert second.params["page[cursor]"]


def test_iterate_flattens_resources() -> None:
    fake, list_id = paged_fake(2)
    rows = list(client_for(fake.handle).iterate("get_list_profiles", id=list_id))
    assert rows[0]["id"] == fake.members[list_id][0]
    assert rows[0]["type"] == "profile" and rows[0]["email"] == "person0@example.com"
    assert "attributes" not in rows[0]


async def test_async_pages_follow_links_next_to_the_end() -> None:
    fake, list_id = paged_fake(23)
    async with AsyncKlaviyoClient(api_key=KEY, transport=fake.transport(), clock=ManualClock()) as client:
        sizes = [len(p.data) async for p in client.pages("get_list_profiles", id=list_id, page_size=10)]
        ids = [r["id"] async for r in client.iterate("get_list_profiles", id=list_id, page_size=10)]
    assert sizes == [10, 10, 3]
    assert ids == fake.members[list_id]


def two_pages(next_link: str) -> Scripted:
    first = {"data": [{"type": "list", "id": "L1", "attributes": {}}], "links": {"next": next_link}}
    second = {"data": [{"type": "list", "id": "L2", "attributes": {}}], "links": {"next": None}}
    return Scripted(reply(200, first), reply(200, second))


def test_a_foreign_next_link_is_rerooted_onto_the_base_url() -> None:
    server = two_pages("https://evil.example/api/lists/?page%5Bcursor%5D=abc")
    ids = [r["id"] for r in client_for(server).iterate("get_lists")]
    assert ids == ["L1", "L2"]
    follow = server.requests[1]
    assert follow.url.host == "a.klaviyo.com"
    assert follow.url.path == "/api/lists/" and follow.url.params["page[cursor]"] == "abc"
    assert all(r.url.host == "a.klaviyo.com" for r in server.requests), "the key went to a foreign host"


def test_klaviyos_own_next_link_is_rerooted_onto_a_local_base_url() -> None:
    server = two_pages("https://a.klaviyo.com/api/lists/?page%5Bcursor%5D=abc")
    list(client_for(server, base_url="http://localhost:8787").iterate("get_lists"))
    assert [(r.url.host, r.url.port) for r in server.requests] == [("localhost", 8787), ("localhost", 8787)]


async def test_a_foreign_next_link_is_rerooted_async() -> None:
    server = two_pages("http://evil.example:8080/api/lists/?page%5Bcursor%5D=abc")
    async with AsyncKlaviyoClient(api_key=KEY, transport=server.transport(), clock=ManualClock()) as client:
        ids = [r["id"] async for r in client.iterate("get_lists")]
    assert ids == ["L1", "L2"]
    assert [r.url.host for r in server.requests] == ["a.klaviyo.com", "a.klaviyo.com"]


# -- typed errors ------------------------------------------------------------------------------
def raised(server: Scripted, operation: str = "get_lists", **args: Any) -> KlaviyoAPIError:
    with pytest.raises(KlaviyoAPIError) as err:
        client_for(server, retry=NO_RETRIES).call(operation, **args)
    return err.value


def test_400_names_the_pointer_code_title_detail_and_request_id() -> None:
    body = {
        "errors": [
            {
                "id": "err-1",
                "status": 400,
                "code": "invalid",
                "title": "Invalid input.",
                "detail": "'x' is not a valid email.",
                "source": {"pointer": "/data/attributes/email"},
            }
        ]
    }
    err = raised(Scripted(reply(400, body, {"x-klaviyo-req-id": "req-777"})), "create_profile", email="a@example.com")
    assert type(err) is BadRequestError
    assert (err.status, err.code, err.title) == (400, "invalid", "Invalid input.")
    assert err.detail == "'x' is not a valid email."
    assert err.pointer == "/data/attributes/email"
    assert err.request_id == "req-777"
    assert err.operation_id == "create_profile"
    assert "/data/attributes/email" in str(err) and "req-777" in str(err)


def test_a_parameter_source_is_the_pointer_too() -> None:
    err = raised(Scripted(reply(400, error_body(400, source={"parameter": "page[size]"}))))
    assert err.pointer == "page[size]"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (429, RateLimitError),
        (405, ClientError),
        (415, ClientError),
        (422, ClientError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
    ],
)
def test_each_status_maps_to_its_error(status: int, cls: type[KlaviyoAPIError]) -> None:
    err = raised(Scripted(reply(status, error_body(status))))
    assert type(err) is cls
    assert err.status == status
    assert isinstance(err, ClientError) == (status < 500)


def test_409_gives_the_duplicate_profile_id() -> None:
    body = error_body(409, "duplicate_profile", meta={"duplicate_profile_id": "01DUPLICATE"})
    err = raised(Scripted(reply(409, body)), "create_profile", email="a@example.com")
    assert isinstance(err, ConflictError) and err.duplicate_id == "01DUPLICATE"


def test_429_gives_retry_after() -> None:
    err = raised(Scripted(reply(429, error_body(429, "throttled"), {"retry-after": "12"})))
    assert isinstance(err, RateLimitError) and err.retry_after == 12.0


def test_a_non_json_error_body_is_kept_as_detail() -> None:
    err = raised(Scripted(reply(502, "<html>Bad gateway</html>")))
    assert isinstance(err, ServerError) and err.detail == "<html>Bad gateway</html>"


@pytest.mark.parametrize(
    ("exc_type", "words"),
    [
        (httpx.ConnectError, "failed"),
        (httpx.RemoteProtocolError, "failed"),
        (httpx.ReadTimeout, "timed out"),
        (httpx.ConnectTimeout, "timed out"),
    ],
)
def test_transport_failures_become_transport_errors(exc_type: type[httpx.TransportError], words: str) -> None:
    server = Scripted(fail(exc_type))
    with pytest.raises(TransportError) as err:
        client_for(server, retry=NO_RETRIES).call("get_lists")
    assert err.value.operation_id == "get_lists"
    assert words in str(err.value) and "KLAVIYO_BASE_URL" in str(err.value)
    assert isinstance(err.value.__cause__, exc_type)


async def test_async_errors_are_typed_the_same() -> None:
    server = Scripted(reply(404, error_body(404, "not_found")))
    async with AsyncKlaviyoClient(api_key=KEY, transport=server.transport(), clock=ManualClock()) as client:
        with pytest.raises(NotFoundError):
            await client.call("get_profile", id="nope")


# -- hooks -------------------------------------------------------------------------------------
def test_hooks_get_a_record_of_each_call_without_credentials() -> None:
    records: list[Any] = []
    server = Scripted(reply(503), reply(200, {"data": []}, {"x-klaviyo-req-id": "req-9"}))
    client_for(server, hooks=[records.append]).call("get_lists", page_size=5)
    (rec,) = records
    assert (rec.operation_id, rec.method, rec.path, rec.status, rec.attempts) == (
        "get_lists",
        "GET",
        "/api/lists",
        200,
        2,
    )
    assert rec.params == {"page[size]": "5"} and rec.request_id == "req-9"
    assert KEY not in repr(rec)


def test_a_broken_hook_does_not_break_the_call() -> None:
    def broken(record: Any) -> None:
        raise RuntimeError("hook bug")

    assert client_for(Scripted(), hooks=[broken]).call("get_lists").status == 200
