"""Every error the toolkit raises, in one tree, mapped from HTTP responses in one function.

::

    KlaviyoError
    ├── ToolkitUsageError           the developer's mistake: unknown operation, no credentials, bad config
    │   ├── UnknownOperationError
    │   ├── UnknownScopeError       a scope Klaviyo does not have (suggests the closest)
    │   └── RevokedCredentialError  a stored key or OAuth grant was revoked; says how to re-authenticate
    ├── InvalidArgumentError        bad input caught before any HTTP call (names the field and the fix)
    ├── ScopeDeniedError            the call is outside the allowed scopes; refused before any HTTP call
    ├── RateLimitWaitError          the client-side bucket cannot admit the call
    │   └── DailyLimitExhaustedError  the operation's daily allowance is spent (says when it resets)
    ├── TransportError              no HTTP response: connection failed, dropped or timed out
    └── KlaviyoAPIError             Klaviyo answered with an error (status, code, title, detail, source, request_id)
        ├── ClientError (4xx)
        │   ├── BadRequestError 400 ├── AuthenticationError 401 ├── PermissionDeniedError 403
        │   ├── NotFoundError 404   ├── ConflictError 409        ├── RateLimitError 429 (retry_after)
        │   └── (other 4xx: ClientError)
        └── ServerError (5xx)
            └── InvalidResponseError  a 2xx whose body is not a JSON:API document (an HTML page, cut off)

What the model can fix (InvalidArgumentError, ClientError, ScopeDeniedError, DailyLimitExhaustedError)
becomes a tool message; ToolkitUsageError is raised to the developer.

Outside the tree on purpose: ``ConnectionUnusableError`` (a stored connection needs re-auth, was
revoked, or was logged in again elsewhere since the client was made). It is not a ``KlaviyoError``
so that code which handles failed calls (``except KlaviyoError``: report it, tell the model, try the
next item) does not swallow it: no call can succeed on that connection, so whatever runs on it must
stop and say so.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "stops_the_run",
    "AuthenticationError",
    "BadRequestError",
    "ClientError",
    "ConflictError",
    "ConnectionUnusableError",
    "DailyLimitExhaustedError",
    "InvalidArgumentError",
    "InvalidResponseError",
    "KlaviyoAPIError",
    "KlaviyoError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitWaitError",
    "RevokedCredentialError",
    "ScopeDeniedError",
    "ServerError",
    "ToolkitUsageError",
    "TransportError",
    "UnknownOperationError",
    "UnknownScopeError",
    "api_error_from_response",
]


class KlaviyoError(Exception):
    """Base of every error this package raises."""


class ToolkitUsageError(KlaviyoError):
    """The developer used the toolkit wrongly (no credentials, unknown name, bad configuration)."""


class UnknownOperationError(ToolkitUsageError, KeyError):
    """An operation id or alias that the catalog does not have."""

    def __init__(self, name: str, suggestions: Sequence[str] = (), *, hint: str | None = None) -> None:
        self.name = name
        self.suggestions = list(suggestions)
        said = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        said += f" {hint}" if hint else ""
        super().__init__(f"Unknown Klaviyo operation {name!r}.{said} See `personas tools list` for every operation id.")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class RevokedCredentialError(ToolkitUsageError):
    """A credential in the vault was revoked (locally or by Klaviyo) and cannot be used any more.

    Raised instead of sending a request that is bound to fail; the message says how to get a new one.

    Attributes:
        name: the vault entry.
        revoked_at: when it was marked revoked, if known.
        reason: what happened (revoked in the vault, refresh token rejected by Klaviyo, ...).
    """

    DEFAULT_HINT = (
        "Re-authenticate: run the OAuth authorization again (authorization_url -> OAuthClient.exchange_code) "
        "and store the new tokens with Vault.put_oauth_tokens(name, ...), or store a new private key "
        "with Vault.put_api_key(name, ...)."
    )

    def __init__(
        self,
        name: str,
        *,
        reason: str = "it was revoked",
        revoked_at: _dt.datetime | None = None,
        hint: str | None = None,
    ) -> None:
        self.name = name
        self.reason = reason
        self.revoked_at = revoked_at
        when = f" (at {revoked_at.isoformat(timespec='seconds')})" if revoked_at else ""
        super().__init__(f"The credential {name!r} can no longer be used: {reason}{when}. {hint or self.DEFAULT_HINT}")


class ConnectionUnusableError(Exception):
    """A stored connection cannot make calls until someone logs in again; whatever runs on it stops.

    Not a :class:`KlaviyoError` (see the module docstring): handlers of failed calls let it through.

    Attributes:
        name: the connection.
        status: ``"needs_reauth"`` (Klaviyo rejected its key or refresh token), ``"revoked"`` (its owner
            revoked it) or ``"changed"`` (logged in again for another server, account, app or fewer
            scopes since the client was made); ``reason`` and ``revoked_at`` say what happened and when.
        fix: what to do, in the words of the application (e.g. the command that logs in again).
    """

    def __init__(
        self, name: str, *, status: str, reason: str, fix: str, revoked_at: _dt.datetime | None = None
    ) -> None:
        self.name = name
        self.status = status
        self.reason = reason
        self.revoked_at = revoked_at
        self.fix = fix
        state = {"needs_reauth": "needs re-auth", "changed": "changed"}.get(status, "was revoked")
        when = f" (since {revoked_at.isoformat(timespec='seconds')})" if revoked_at else ""
        super().__init__(f"connection {name!r} {state}: {reason}{when}; {fix}")


class UnknownScopeError(ToolkitUsageError):
    """A scope that no Klaviyo operation uses (``suggestion`` is the closest known one, if any)."""

    def __init__(self, scope: str, suggestion: str | None = None) -> None:
        self.scope = scope
        self.suggestion = suggestion
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(f"{scope!r} is not a Klaviyo scope{hint}")


class InvalidArgumentError(KlaviyoError, ValueError):
    """An argument fails validation before any HTTP request is made.

    Attributes:
        operation_id: the operation being called.
        problems: one (field, message) pair per problem; the message says how to fix it.
    """

    def __init__(self, operation_id: str, problems: Sequence[tuple[str, str]]) -> None:
        self.operation_id = operation_id
        self.problems = list(problems)
        lines = "; ".join(f"{field}: {msg}" for field, msg in self.problems)
        super().__init__(f"Invalid arguments for {operation_id}: {lines}")

    @property
    def fields(self) -> list[str]:
        return [field for field, _ in self.problems]


class ScopeDeniedError(KlaviyoError):
    """The operation needs scopes the caller was not granted; no request was sent."""

    def __init__(self, operation_id: str, missing: Sequence[str]) -> None:
        self.operation_id = operation_id
        self.missing = list(missing)
        super().__init__(
            f"{operation_id} needs scope(s) {', '.join(self.missing)}, which this persona or key "
            "was not granted; the call was refused before any request was sent."
        )


class RateLimitWaitError(KlaviyoError):
    """The client-side rate limiter will not admit the call (e.g. the wait exceeds max_wait)."""


class DailyLimitExhaustedError(RateLimitWaitError):
    """The operation's daily allowance is used up; fails at once instead of waiting a day."""

    def __init__(self, operation_id: str, limit: int, resets_at: _dt.datetime) -> None:
        self.operation_id = operation_id
        self.limit = limit
        self.resets_at = resets_at
        super().__init__(
            f"{operation_id}: the daily limit of {limit} calls is spent; the next call is allowed "
            f"at {resets_at.isoformat(timespec='seconds')}."
        )


class TransportError(KlaviyoError):
    """No HTTP response: the connection failed, was dropped, or timed out.

    ``sent`` is False when the request never left (no connection): nothing was applied.
    ``maybe_applied`` is True for a write whose response was lost and that was not repeated.
    """

    def __init__(self, message: str, *, operation_id: str | None = None, sent: bool = True) -> None:
        self.operation_id = operation_id
        self.sent = sent
        self.maybe_applied = False
        super().__init__(message)


class KlaviyoAPIError(KlaviyoError):
    """Klaviyo answered with an error status.

    Attributes mirror the first JSON:API error object; ``errors`` keeps them all.
    """

    def __init__(
        self,
        status: int,
        *,
        code: str | None = None,
        title: str | None = None,
        detail: str | None = None,
        source: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
        operation_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.source = dict(source or {})
        self.request_id = request_id
        self.errors = [dict(e) for e in errors]
        self.operation_id = operation_id
        self.retry_after = retry_after
        #: A write answered with a 5xx that was not repeated: Klaviyo may have applied it.
        self.maybe_applied = False
        super().__init__(self._message())

    @property
    def pointer(self) -> str | None:
        """The JSON pointer (or parameter) the error names, if any."""
        return self.source.get("pointer") or self.source.get("parameter")

    def klaviyo_text(self) -> str:
        """The part of the message that is Klaviyo's own text (detail or title, where, the other
        errors): it may echo request values that came from untrusted data, so a caller that shows it
        to a model fences it apart from the operation, status and code, which are ours."""
        text = self.detail or self.title or "Klaviyo's answer gave no error detail"
        where = f" (at {self.pointer})" if self.pointer else ""
        more = [_describe(e) for e in self.errors[1:_MAX_LISTED]]
        if len(self.errors) > _MAX_LISTED:
            more.append(f"and {len(self.errors) - _MAX_LISTED} more")
        also = f"; also: {'; '.join(more)}" if more else ""
        return f"{text}{where}{also}"

    def _message(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.code:
            parts.append(self.code)
        rid = f" [request {self.request_id}]" if self.request_id else ""
        op = f"{self.operation_id}: " if self.operation_id else ""
        return f"{op}{' '.join(parts)}: {self.klaviyo_text()}{rid}"


#: How many of a response's errors a message lists (``errors`` keeps them all).
_MAX_LISTED = 5


def _describe(error: Mapping[str, Any]) -> str:
    """One more JSON:API error object, as a message clause: its detail and where."""
    source = error.get("source") if isinstance(error.get("source"), Mapping) else {}
    where = (source or {}).get("pointer") or (source or {}).get("parameter")
    text = str(error.get("detail") or error.get("title") or error.get("code") or "no detail")
    return f"{text} (at {where})" if where else text


class ClientError(KlaviyoAPIError):
    """4xx: the request was wrong; retrying it unchanged will fail again (except 429)."""


class BadRequestError(ClientError):
    """400: the body or a parameter is invalid; `pointer` names it."""


class AuthenticationError(ClientError):
    """401: the API key or token is missing, malformed, revoked or expired."""


class PermissionDeniedError(ClientError):
    """403: the key lacks a scope the operation needs."""


class NotFoundError(ClientError):
    """404: no resource with that id."""


class ConflictError(ClientError):
    """409: the resource exists already (Klaviyo gives the duplicate's id in `meta`)."""

    @property
    def duplicate_id(self) -> str | None:
        for err in self.errors:
            meta = err.get("meta") or {}
            if isinstance(meta, dict) and meta.get("duplicate_profile_id"):
                return str(meta["duplicate_profile_id"])
        return None


class RateLimitError(ClientError):
    """429: Klaviyo's rate limit; `retry_after` is the wait it asked for, in seconds."""


class ServerError(KlaviyoAPIError):
    """5xx: Klaviyo failed; safe calls are retried."""


class InvalidResponseError(ServerError):
    """A success status with a body that is not a JSON:API document (an HTML page, a cut-off or empty
    body where one is due). Treated as a 502: a read is retried, a write may have been applied.
    ``received_status`` keeps the status that came with it."""

    def __init__(
        self,
        received_status: int,
        reason: str,
        *,
        operation_id: str | None = None,
        request_id: str | None = None,
        fix: str = "check that KLAVIYO_BASE_URL points at Klaviyo's API, not a proxy or a login page",
    ) -> None:
        self.received_status = received_status
        super().__init__(
            502,
            code="invalid_response",
            detail=f"Klaviyo answered HTTP {received_status} with {reason}; the call is treated as failed ({fix})",
            operation_id=operation_id,
            request_id=request_id,
        )


_BY_STATUS: dict[int, type[KlaviyoAPIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def api_error_from_response(
    status: int,
    body: Any,
    headers: Mapping[str, str],
    *,
    operation_id: str | None = None,
    now: float | None = None,
) -> KlaviyoAPIError:
    """The one place an HTTP error response becomes a typed error.

    Its text is redacted: an error page that echoes the request (a proxy's, a gateway's) must not
    carry the API key into a message, a log line or what the model reads. ``now`` (epoch seconds,
    the client's clock) dates a ``Retry-After`` given as an HTTP date.
    """
    from .redact import clip, redact

    errors: list[Mapping[str, Any]] = []
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        errors = [redact(e) for e in body["errors"] if isinstance(e, dict)]
    first: Mapping[str, Any] = errors[0] if errors else {}
    retry_after = _parse_retry_after(headers.get("retry-after"), now)
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ClientError)
    title = _text(first.get("title"))
    detail = _text(first.get("detail"))
    if not errors and isinstance(body, str) and body.strip():
        detail = clip(" ".join(body.split()), 300)
    elif not errors and body and (isinstance(body, list) or (isinstance(body, dict) and "errors" not in body)):
        # JSON that is not Klaviyo's error document (a gateway's {"message": ...}): its text is the detail
        import json

        detail = clip(" ".join(json.dumps(redact(body), ensure_ascii=False, default=str).split()), 300)
    return cls(
        status,
        code=_text(first.get("code")),
        title=title,
        detail=detail,
        source=first.get("source") if isinstance(first.get("source"), dict) else None,
        request_id=headers.get("x-klaviyo-req-id") or headers.get("x-request-id") or first.get("id"),
        errors=errors,
        operation_id=operation_id,
        retry_after=retry_after,
    )


def _text(value: Any) -> str | None:
    """A JSON:API error member as text (a number or an object is shown, never dropped)."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date, read against ``now``);
    None for a value that is not a finite, non-negative wait, so the client's own backoff applies."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.UTC)
        base = _dt.datetime.fromtimestamp(now, _dt.UTC) if now is not None else _dt.datetime.now(_dt.UTC)
        return max(0.0, (when - base).total_seconds())
    if seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        return None
    return seconds


def stops_the_run(exc: BaseException) -> bool:
    """Errors no report or retry can work around: the credentials were rejected (401) or revoked, or
    the toolkit was misused. Code that reports a failed call and carries on re-raises these."""
    return isinstance(exc, (AuthenticationError, ToolkitUsageError, ConnectionUnusableError))
