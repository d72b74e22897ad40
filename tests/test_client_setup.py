"""What a client is made with, checked when it is made: the base URL, a pinned revision, the values
it puts in headers. A value that cannot work is the developer's error (ToolkitUsageError) naming
where it came from and the fix, never a failure of each call blamed on its arguments, retried, or
said to be a write that "may have been applied".

The base URL tests talk to the sandbox served on a local port; the revision test reads the headers
a scripted server received (the sandbox serves no beta operation).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from klaviyo_sandbox import DEMO_KEY, Sandbox, serve_app
from klaviyo_toolkit import KlaviyoToolkit
from klaviyo_toolkit.client import NO_RETRIES, KlaviyoClient
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import ToolkitUsageError
from klaviyo_toolkit.ratelimit import RateLimiter

from .scripted import Scripted

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Sandbox, str]]:
    sb = Sandbox(demo_data=False, rate_limit_factor=None)
    with serve_app(sb.app) as url:
        yield sb, url
    sb.close()


def port_client(base_url: str | None, **options: object) -> KlaviyoClient:
    return KlaviyoClient(api_key=DEMO_KEY, base_url=base_url, rate_limiter=RateLimiter(factor=None),
                         clock=ManualClock(), retry=NO_RETRIES, **options)  # type: ignore[arg-type]


BAD_BASE_URLS = {
    "no scheme": ("{host}", "needs http:// or https://"),
    "scheme typo": ("http:/{host}", "has no host"),
    "ends in /api": ("http://{host}/api", "ends in /api"),
    "ends in /api/": ("http://{host}/api/", "ends in /api"),
    "a query": ("http://{host}/?token=s3cret-token", "has a query"),
    "a line break inside": ("http://{host}\n/x", "a line break"),
    "password and /api": ("http://user:s3cret-pw@{host}/api", "ends in /api"),
}


@pytest.mark.parametrize("how", ["base_url=", "KLAVIYO_BASE_URL"])
@pytest.mark.parametrize("case", list(BAD_BASE_URLS), ids=list(BAD_BASE_URLS))
def test_a_base_url_that_cannot_work_is_refused_when_the_client_is_made(
    served: tuple[Sandbox, str], clean_env: pytest.MonkeyPatch, how: str, case: str
) -> None:
    sb, url = served
    template, said = BAD_BASE_URLS[case]
    bad = template.format(host=url.removeprefix("http://"))
    if how == "KLAVIYO_BASE_URL":
        clean_env.setenv("KLAVIYO_BASE_URL", bad)
    before = len(sb.requests)
    with pytest.raises(ToolkitUsageError) as err:
        port_client(bad if how == "base_url=" else None).call("create_list", name="never sent")
    message = str(err.value)
    assert said in message and how in message and "https://a.klaviyo.com" in message, message
    assert "s3cret" not in message, "the URL may hold a password: it is never echoed"
    assert len(sb.requests) == before, "nothing reached the sandbox"


def test_a_good_base_url_with_whitespace_around_it_works(served: tuple[Sandbox, str],
                                                         clean_env: pytest.MonkeyPatch) -> None:
    """A trailing newline (a value read from a file) is not the URL: it is dropped, not refused."""
    _, url = served
    assert port_client(f"  {url}/\n").call("get_lists").status == 200
    clean_env.setenv("KLAVIYO_BASE_URL", f"{url}\n")
    assert port_client(None).call("get_lists").status == 200


def test_a_key_that_http_cannot_carry_is_the_developers_error_not_the_arguments(
    served: tuple[Sandbox, str],
) -> None:
    """A key pasted with a smart quote or a non-ASCII letter: no request goes out, the error names
    where the key came from (not the call's arguments), and a tool raises it to the developer
    instead of telling the model to fix its arguments."""
    sb, url = served
    key = "pk_sandbox_d\u00e9mo_0123456789"
    client = KlaviyoClient(api_key=key, base_url=url, rate_limiter=RateLimiter(factor=None), clock=ManualClock())
    before = len(sb.requests)
    with pytest.raises(ToolkitUsageError) as err:
        client.call("get_lists")
    assert "KLAVIYO_API_KEY" in str(err.value) and "Authorization" in str(err.value)
    assert key not in str(err.value) and "d\u00e9mo" not in str(err.value)
    tool = KlaviyoToolkit(client, scopes="*").get_tools(include=["get_lists"])[0]
    with pytest.raises(ToolkitUsageError):
        tool.invoke({"type": "tool_call", "id": "c1", "name": "get_lists", "args": {}})
    assert len(sb.requests) == before


@pytest.mark.parametrize("revision", ["latest", "2026-13-01", "2026-07-15.beta", "v2026-07-15"])
def test_a_pinned_revision_that_is_not_one_is_refused_when_the_client_is_made(revision: str) -> None:
    with pytest.raises(ToolkitUsageError, match="YYYY-MM-DD"):
        KlaviyoClient(api_key="pk_test_0123456789", revision=revision)


def test_a_pinned_revision_reaches_beta_operations_as_its_pre_release() -> None:
    """Klaviyo serves a beta endpoint only to a ``.pre`` revision: a client pinned to a revision sends
    its ``.pre`` twin for beta operations, the revision itself for stable ones."""
    server = Scripted()
    client = KlaviyoClient(api_key="pk_test_0123456789", transport=server.transport(), clock=ManualClock(),
                           revision=" 2025-10-15 ", include_beta=True)
    client.call("get_api_keys_beta")
    client.call("get_lists")
    assert [r.headers["revision"] for r in server.requests] == ["2025-10-15.pre", "2025-10-15"]
    pre = KlaviyoClient(api_key="pk_test_0123456789", transport=server.transport(), clock=ManualClock(),
                        revision="2025-10-15.pre", include_beta=True)
    pre.call("get_api_keys_beta")
    assert server.requests[-1].headers["revision"] == "2025-10-15.pre"
