"""KlaviyoClient and AsyncKlaviyoClient: one generic executor for every catalog operation.

A call goes: resolve the operation (id or alias) -> validate arguments (clear errors, no HTTP) ->
build the JSON:API request -> wait for the operation's rate-limit slot -> send with auth and the
``revision`` header -> map errors to typed exceptions -> retry when safe -> hand a CallRecord to
hooks (audit). The transport is injected (``transport=`` or ``http_client=``), never patched.

Example::

    with KlaviyoClient(api_key="pk_...") as kl:
        page = kl.call("get_profiles", filter="equals(email,'a@b.com')")
        for profile in kl.iterate("get_lists"):
            ...
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from .._arguments import PreparedRequest, prepare, unsendable
from ..auth import ApiKey, BearerToken, Credentials, credentials_from_env
from ..catalog import Catalog, Operation, RateLimitSpec, load_catalog
from ..clock import Clock, SystemClock
from ..effects import safe_to_repeat
from ..errors import (
    AuthenticationError,
    InvalidArgumentError,
    InvalidResponseError,
    KlaviyoAPIError,
    RateLimitError,
    ToolkitUsageError,
    TransportError,
    api_error_from_response,
)
from ..ratelimit import RateLimiter, shared_limiter, window_reset
from ._config import RetryPolicy, Timeout, checked_base_url, checked_revision, unsendable_header
from ._response import CallRecord, KlaviyoResponse, flatten_resource

__all__ = ["AsyncKlaviyoClient", "KlaviyoClient", "DEFAULT_BASE_URL"]

DEFAULT_BASE_URL = "https://a.klaviyo.com"
USER_AGENT = "klaviyo-personas/0.1 (+https://github.com/klaviyo-personas)"
log = logging.getLogger("klaviyo_toolkit.client")
Hook = Callable[[CallRecord], None]


class _Core:
    """What the sync and async clients share: configuration, request building, decisions."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        credentials: Credentials | None = None,
        access_token: str | None = None,
        base_url: str | None = None,
        public_api_key: str | None = None,
        revision: str | None = None,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        clock: Clock | None = None,
        include_beta: bool = False,
        hooks: Sequence[Hook] = (),
        user_agent: str | None = None,
    ) -> None:
        if credentials is None:
            if api_key:
                credentials = ApiKey(api_key)
            elif access_token:
                credentials = BearerToken(access_token)
            else:
                credentials = credentials_from_env()
        self.credentials = credentials
        env_url = os.environ.get("KLAVIYO_BASE_URL", "").strip()
        source = "base_url=" if base_url else "KLAVIYO_BASE_URL"
        self.base_url = checked_base_url(base_url or env_url or DEFAULT_BASE_URL, source)
        self.public_api_key = public_api_key or os.environ.get("KLAVIYO_PUBLIC_API_KEY") or None
        self.catalog: Catalog = load_catalog(include_beta)
        self.revision_override = checked_revision(revision)
        if isinstance(timeout, (int, float)):
            timeout = Timeout(connect=float(timeout), read=float(timeout), write=float(timeout), pool=float(timeout))
        t = timeout or Timeout()
        self.timeout = httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)
        self.retry = retry or RetryPolicy()
        self._request_timeout: httpx.Timeout | None = None  # set on a with_options() copy: per request
        #: The longest this client waits for a rate-limit slot before refusing (RateLimitWaitError);
        #: None waits as long as the limiter says (set on a with_options() copy).
        self.max_wait: float | None = None
        self.clock: Clock = clock or (rate_limiter.clock if rate_limiter else SystemClock())
        # Real time shares the process's buckets (two clients on one account must not exceed its
        # limits together); only an injected test clock gets buckets of its own.
        shares = clock is None or isinstance(clock, SystemClock)
        self.limiter = rate_limiter or (shared_limiter() if shares else RateLimiter(self.clock))
        self.hooks: list[Hook] = list(hooks)
        self.user_agent = user_agent or USER_AGENT

    # -- building --------------------------------------------------------------------------
    def operation(self, name: str | Operation) -> Operation:
        return name if isinstance(name, Operation) else self.catalog.get(name)

    def prepare(self, operation: str | Operation, args: Mapping[str, Any]) -> PreparedRequest:
        """Validate ``args`` and build the request; raises InvalidArgumentError before any HTTP."""
        op = self.operation(operation)
        values = dict(args)
        if op.client_side and not values.get("company_id") and self.public_api_key:
            values["company_id"] = self.public_api_key
        return prepare(op, values)

    def _headers(self, prep: PreparedRequest) -> dict[str, str]:
        op = prep.operation
        revision = self.revision_override or op.revision
        if op.beta and not revision.endswith(".pre"):  # Klaviyo serves beta endpoints to a .pre revision only
            revision += ".pre"
        headers = {"revision": revision, "accept": "application/vnd.api+json", "user-agent": self.user_agent}
        if prep.json_body is not None:
            headers["content-type"] = "application/vnd.api+json"
        headers.update(self._headers_auth(op))
        problem = unsendable_header(headers)  # the configuration's values, before the call's own
        if problem is not None:
            raise problem
        headers.update(prep.headers)
        return headers

    def _url(self, path_or_url: str) -> str:
        """Absolute URL on our base; a foreign origin in ``links.next`` is re-rooted, never followed."""
        if path_or_url.startswith(("http://", "https://")):
            parts = urlsplit(path_or_url)
            base = urlsplit(self.base_url)
            if (parts.scheme, parts.netloc) == (base.scheme, base.netloc):
                return path_or_url
            path_or_url = parts.path + ("?" + parts.query if parts.query else "")
        return self.base_url + path_or_url

    def _bucket(self, op: Operation) -> tuple[str, str]:
        account = self.credentials.account_key if self.credentials else "anonymous"
        return (f"{self.base_url}|{account}", op.operation_id)

    def _learn_account(self, op: Operation, result: KlaviyoResponse) -> None:
        """A get_accounts or get_account answer names the one account a private key belongs to: its
        calls count in that account's rate-limit buckets from now on, with those of every other key
        of it (``RateLimiter.same_account``; the scope is a connection's, ``account:<id>``). A bearer
        token keeps its own: an OAuth app has a quota of its own in each account."""
        if self.credentials is None or isinstance(self.credentials, BearerToken) or op.client_side:
            return
        accounts = list(result.resources())
        account_id = accounts[0].get("id") if len(accounts) == 1 else None
        if isinstance(account_id, str) and account_id:
            self.limiter.same_account(self._bucket(op)[0], f"{self.base_url}|account:{account_id}")

    def _limits(self, prep: PreparedRequest, url: str | None) -> tuple[tuple[str, str], RateLimitSpec]:
        """The bucket and limits a request counts against: the operation's, or the lower tier Klaviyo
        documents for a parameter value (``additional-fields[list]=profile_count``: 1/s, 15/min)."""
        op = prep.operation
        account, name = self._bucket(op)
        if op.rate_limit_tiers:
            query = dict(parse_qsl(urlsplit(url).query)) if url else dict(prep.params)
            for tier in op.rate_limit_tiers:
                if tier.applies(query):
                    return (account, f"{name}|{tier.name}"), tier.limits
        return (account, name), op.rate_limit

    def _parse(self, prep: PreparedRequest, response: httpx.Response, url: str | None = None) -> KlaviyoResponse:
        """The answer or its typed error; ``RateLimit-Remaining: 0`` holds the bucket (``RateLimiter.heed``)."""
        body: Any = None
        parsed = True
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body, parsed = response.text, False
        headers = {k.lower(): v for k, v in response.headers.items()}
        op_id = prep.operation.operation_id
        if response.status_code != 429 and window_reset(headers) is not None:  # a 429: Retry-After (_on_error)
            self.limiter.heed(self._limits(prep, url)[0], headers, within=self.retry.max_elapsed)
        if response.status_code >= 400:
            raise api_error_from_response(
                response.status_code, body, headers, operation_id=op_id, now=self.clock.time()
            )
        # Every 2xx Klaviyo documents with a body is a JSON:API document: anything else (a proxy's
        # HTML page, a cut-off body, nothing at all on a 200) must not pass for an empty result.
        problem = None
        if not parsed:
            kind = headers.get("content-type", "no content type").split(";")[0]
            problem = f"a body that is not JSON ({kind}, {len(response.content):,} bytes)"
        elif body is None and response.status_code in (200, 201):
            problem = "an empty body"
        elif body is not None and not isinstance(body, dict):
            problem = f"a JSON {type(body).__name__} where a JSON:API document (an object) is due"
        if problem is not None:
            rid = headers.get("x-klaviyo-req-id") or headers.get("x-request-id")
            raise InvalidResponseError(response.status_code, problem, operation_id=op_id, request_id=rid)
        result = KlaviyoResponse(op_id, response.status_code, headers, body, str(response.url))
        if result.partial_failure:  # processed, but not all of it: never silent
            log.warning(
                "%s: Klaviyo ignored %s (not valid) and processed the rest of the request (request %s)",
                op_id,
                ", ".join(result.partial_failure),
                result.request_id or "without an id",
            )
        return result

    def _check_credentials(self, op: Operation) -> None:
        """Fail before a rate-limit slot is spent when a private-key call has no credentials."""
        if not op.client_side and self.credentials is None:
            self._headers_auth(op)

    def _headers_auth(self, op: Operation) -> dict[str, str]:
        if op.client_side:
            return {}
        if self.credentials is None:
            raise ToolkitUsageError(
                "No Klaviyo credentials: set KLAVIYO_API_KEY (a private key, pk_...) or pass "
                "api_key= or credentials= to the client. For a local sandbox use pk_sandbox_demo."
            )
        return self.credentials.headers()

    def _build(self, prep: PreparedRequest, url: str | None) -> httpx.Request:
        """The httpx request; a value httpx cannot encode (``prepare`` refuses every one we know)
        becomes an InvalidArgumentError naming the argument, never a raw ValueError or InvalidURL."""
        http: Any = self.http  # type: ignore[attr-defined]
        headers = self._headers(prep)
        try:
            request: httpx.Request = http.build_request(
                prep.method,
                self._url(url or prep.path),
                params=None if url else tuple(prep.params),
                json=prep.json_body,
                data=prep.form or None,
                files=prep.files or None,
                headers=headers,
                **({"timeout": self._request_timeout} if self._request_timeout is not None else {}),
            )
        except (httpx.InvalidURL, ValueError, TypeError, UnicodeError, RecursionError, OverflowError) as exc:
            raise InvalidArgumentError(prep.operation.operation_id, [unsendable(prep.arguments, exc)]) from exc
        return request

    def _on_error(
        self, prep: PreparedRequest, attempt: int, error: BaseException, waited: float, refreshed: bool, url: str | None
    ) -> float | None:
        """Seconds to wait before trying again, or None to raise. A 401 with a refreshable OAuth
        token is retried once at once with a fresh token (the request was not processed), on any
        attempt: a token can expire while a call waits out a 429's Retry-After or a 5xx backoff. A 429's
        Retry-After within the retry budget holds the bucket for every caller sharing the limiter (a
        longer one, a spent day, fails each call at once, as it always did, rather than stall them)."""
        wait = error.retry_after if isinstance(error, RateLimitError) else None
        if wait is not None and wait <= self.retry.max_elapsed:
            self.limiter.hold(self._limits(prep, url)[0], wait)
        if isinstance(error, AuthenticationError) and isinstance(self.credentials, BearerToken):
            if not refreshed and self.credentials.refreshable:
                self.credentials.invalidate()
                return 0.0
            return None
        return self._next_delay(prep, attempt, error, waited)

    def _next_delay(self, prep: PreparedRequest, attempt: int, error: BaseException, waited: float) -> float | None:
        """Seconds to wait before another try, or None to give up.

        Only Klaviyo's real guarantees count (it has no Idempotency-Key header): a 429 was not
        processed and a connection that never opened sent nothing, so any call may go again; after
        a 5xx or a lost response only a call that is safe to repeat goes again
        (``klaviyo_toolkit.effects.safe_to_repeat``); any other write is marked ``maybe_applied``.
        """
        retry_after = None
        if isinstance(error, KlaviyoAPIError):
            if error.status not in self.retry.retry_statuses:
                return None
            not_processed = isinstance(error, RateLimitError)
            retry_after = error.retry_after
        elif isinstance(error, TransportError):
            not_processed = not error.sent
        else:
            return None
        if not not_processed and not safe_to_repeat(prep.operation, prep.json_body):
            error.maybe_applied = True
            _gave_up(error, _MAYBE_APPLIED)
            return None
        if attempt > self.retry.max_retries:
            _gave_up(
                error,
                f"gave up after {attempt} attempts, {waited:.1f} s of waiting between them, RetryPolicy.max_retries",
            )
            return None
        delay = self.retry.backoff(attempt, retry_after)
        if waited + delay > self.retry.max_elapsed:
            asked = "Klaviyo asked to wait" if retry_after is not None else "the next wait would be"
            _gave_up(
                error,
                f"gave up after {attempt} attempt(s): {asked} {delay:,.1f} s, past the retry "
                f"budget of {self.retry.max_elapsed:g} s per call, RetryPolicy.max_elapsed",
            )
            return None
        return delay

    def _record(
        self,
        prep: PreparedRequest,
        call_hooks: Sequence[Hook],
        *,
        result: KlaviyoResponse | None,
        error: BaseException | None,
        attempts: int,
        started: float,
        waited: float,
        final: bool = True,
    ) -> None:
        """Tell the hooks: every attempt to the call's own ``call_hooks`` (the audit log keeps one row
        per attempt), the finished call only to the client's ``hooks``."""
        targets = (*self.hooks, *call_hooks) if final else tuple(call_hooks)
        if not targets:
            return
        rec = CallRecord(
            operation_id=prep.operation.operation_id,
            method=prep.method,
            path=prep.path,
            params=dict(prep.params),
            body=prep.json_body if prep.json_body is not None else prep.form,
            status=result.status if result else getattr(error, "status", None),
            request_id=result.request_id if result else getattr(error, "request_id", None),
            attempts=attempts,
            latency=time.perf_counter() - started,
            waited=waited,
            error=error,
            response_body=result.body if result else None,
            extra={"partial_failure": list(result.partial_failure)} if result and result.partial_failure else {},
            final=final,
        )
        for hook in targets:
            try:
                hook(rec)
            except Exception:  # a broken hook must not break the call
                log.exception("call hook failed")

    def _httpx_kwargs(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "follow_redirects": False}


def _gave_up(error: BaseException, note: str) -> None:
    """Say in the error's own message why no more attempts were made."""
    if error.args and isinstance(error.args[0], str):
        text = error.args[0].rstrip()
        stop = "." if text.endswith(".") else ""
        error.args = (f"{text.removesuffix('.')} ({note}){stop}", *error.args[1:])


def _page_key(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What names a page, however its URL is spelled: the path and the decoded query, in any order
    (``page%5Bcursor%5D`` is ``page[cursor]``; a link's origin may be re-rooted onto the base URL)."""
    parts = urlsplit(url)
    return parts.path.rstrip("/"), tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))


def _next_page(seen: set[tuple[str, tuple[tuple[str, str], ...]]], url: str, operation_id: str) -> str:
    """``url`` once it is known to be new: a ``links.next`` that points at a page already read (the
    first one included) would make the iteration endless and yield the same records again."""
    if _page_key(url) in seen:
        raise InvalidResponseError(
            200,
            f"a links.next that repeats a page already read ({url})",
            operation_id=operation_id,
            fix="its paging loops; every page before it was read once, and iteration stops here",
        )
    seen.add(_page_key(url))
    return url


#: Why a write that reached Klaviyo without a clear answer was not sent again (in its error's message).
_MAYBE_APPLIED = (
    "not sent again: it reached Klaviyo and may have been applied, and Klaviyo has no idempotency key; "
    "read back whether it took effect before repeating it"
)

#: Operations whose answer names the account the credentials belong to (``_learn_account``).
_NAMES_THE_ACCOUNT = frozenset({"get_accounts", "get_account"})

#: httpx errors raised before a request left: nothing reached Klaviyo.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _transport_error(exc: httpx.HTTPError, op: Operation) -> TransportError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    return TransportError(
        f"{op.operation_id}: the request {kind} ({type(exc).__name__}: {exc}). Check KLAVIYO_BASE_URL and the network.",
        operation_id=op.operation_id,
        sent=not isinstance(exc, _NOT_SENT),
    )


class KlaviyoClient(_Core):
    """Synchronous client. Pass ``transport=`` (e.g. the sandbox's) or a configured ``http_client=``."""

    def __init__(
        self,
        *,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._owns_http = http_client is None
        self.http = http_client or httpx.Client(transport=transport, **self._httpx_kwargs())

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def with_options(
        self,
        *,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
        max_wait: float | None = None,
    ) -> KlaviyoClient:
        """A copy of this client with another retry policy, timeout or longest wait for a rate-limit
        slot, sharing its connection pool, credentials, rate limiter and hooks (closing the copy leaves
        the pool open). A call whose slot is further than ``max_wait`` away is refused at once
        (RateLimitWaitError), and takes no slot from other callers.

        For a call whose answer is only nice to have, which must not hold anything up::

            quick = client.with_options(retry=NO_RETRIES, timeout=5.0, max_wait=2.0)
        """
        clone = copy.copy(self)
        clone._owns_http = False
        if retry is not None:
            clone.retry = retry
        if timeout is not None:
            t = timeout if isinstance(timeout, Timeout) else Timeout(*(float(timeout),) * 4)
            clone.timeout = clone._request_timeout = httpx.Timeout(
                connect=t.connect, read=t.read, write=t.write, pool=t.pool
            )
        if max_wait is not None:
            clone.max_wait = max_wait
        return clone

    def __enter__(self) -> KlaviyoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, operation: str | Operation, /, **args: Any) -> KlaviyoResponse:
        """Validate, send and parse one call; raises a typed error on failure."""
        return self.send(self.prepare(operation, args))

    def send(
        self,
        prep: PreparedRequest,
        *,
        url: str | None = None,
        hooks: Sequence[Hook] = (),
    ) -> KlaviyoResponse:
        """Send a prepared request (rate limit, auth, retries, hooks). ``hooks`` see this call only."""
        op = prep.operation
        self._check_credentials(op)
        started = time.perf_counter()
        waited = retry_waited = 0.0
        refreshed = False  # a 401 refreshes an OAuth token once per call
        attempt = 0
        while True:
            attempt += 1
            waited += self.limiter.acquire(*self._limits(prep, url), op.operation_id, max_wait=self.max_wait)
            try:
                request = self._build(prep, url)
                try:
                    response = self.http.send(request)
                except httpx.HTTPError as exc:
                    raise _transport_error(exc, op) from exc
                result = self._parse(prep, response, url)
            except (KlaviyoAPIError, TransportError) as error:
                delay = self._on_error(prep, attempt, error, retry_waited, refreshed, url)
                refreshed = refreshed or isinstance(error, AuthenticationError)
                if delay is None:
                    self._record(
                        prep, hooks, result=None, error=error, attempts=attempt, started=started, waited=waited
                    )
                    raise
                self._record(
                    prep, hooks, result=None, error=error, attempts=attempt, started=started, waited=waited, final=False
                )
                log.info("retrying %s in %.2fs after %s", op.operation_id, delay, error)
                self.clock.sleep(delay)
                waited += delay
                retry_waited += delay
                continue
            if op.operation_id in _NAMES_THE_ACCOUNT:
                self._learn_account(op, result)
            self._record(prep, hooks, result=result, error=None, attempts=attempt, started=started, waited=waited)
            return result

    def pages(self, operation: str | Operation, /, **args: Any) -> Iterator[KlaviyoResponse]:
        """Every page of a list operation, following ``links.next``."""
        prep = self.prepare(operation, args)
        page = self.send(prep)
        yield page
        seen = {_page_key(page.url)}
        while page.next_url:
            page = self.send(prep, url=_next_page(seen, page.next_url, prep.operation.operation_id))
            yield page

    def iterate(self, operation: str | Operation, /, **args: Any) -> Iterator[dict[str, Any]]:
        """Every resource across pages, flattened (``id``, ``type`` and attributes)."""
        for page in self.pages(operation, **args):
            for resource in page.resources():
                yield flatten_resource(resource)


class AsyncKlaviyoClient(_Core):
    """Asynchronous client; same behaviour as KlaviyoClient (``httpx.ASGITransport`` works here)."""

    def __init__(
        self,
        *,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._owns_http = http_client is None
        self.http = http_client or httpx.AsyncClient(transport=transport, **self._httpx_kwargs())

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncKlaviyoClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(self, operation: str | Operation, /, **args: Any) -> KlaviyoResponse:
        return await self.send(self.prepare(operation, args))

    async def send(
        self,
        prep: PreparedRequest,
        *,
        url: str | None = None,
        hooks: Sequence[Hook] = (),
    ) -> KlaviyoResponse:
        op = prep.operation
        self._check_credentials(op)
        started = time.perf_counter()
        waited = retry_waited = 0.0
        refreshed = False  # a 401 refreshes an OAuth token once per call
        attempt = 0
        while True:
            attempt += 1
            waited += await self.limiter.aacquire(*self._limits(prep, url), op.operation_id, max_wait=self.max_wait)
            try:
                request = self._build(prep, url)
                try:
                    response = await self.http.send(request)
                except httpx.HTTPError as exc:
                    raise _transport_error(exc, op) from exc
                result = self._parse(prep, response, url)
            except (KlaviyoAPIError, TransportError) as error:
                delay = self._on_error(prep, attempt, error, retry_waited, refreshed, url)
                refreshed = refreshed or isinstance(error, AuthenticationError)
                if delay is None:
                    self._record(
                        prep, hooks, result=None, error=error, attempts=attempt, started=started, waited=waited
                    )
                    raise
                self._record(
                    prep, hooks, result=None, error=error, attempts=attempt, started=started, waited=waited, final=False
                )
                log.info("retrying %s in %.2fs after %s", op.operation_id, delay, error)
                await self.clock.asleep(delay)
                waited += delay
                retry_waited += delay
                continue
            if op.operation_id in _NAMES_THE_ACCOUNT:
                self._learn_account(op, result)
            self._record(prep, hooks, result=result, error=None, attempts=attempt, started=started, waited=waited)
            return result

    async def pages(self, operation: str | Operation, /, **args: Any) -> AsyncIterator[KlaviyoResponse]:
        prep = self.prepare(operation, args)
        page = await self.send(prep)
        yield page
        seen = {_page_key(page.url)}
        while page.next_url:
            page = await self.send(prep, url=_next_page(seen, page.next_url, prep.operation.operation_id))
            yield page

    async def iterate(self, operation: str | Operation, /, **args: Any) -> AsyncIterator[dict[str, Any]]:
        async for page in self.pages(operation, **args):
            for resource in page.resources():
                yield flatten_resource(resource)
