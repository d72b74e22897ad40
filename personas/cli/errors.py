"""One line per error: what went wrong and what to do, with the exit code (shared by every command and the REPL)."""

from __future__ import annotations

import sys

from personas.kernel.errors import UsageProblem

from .common import config

__all__ = ["UsageProblem", "error_line"]


def _base_url(exc: BaseException) -> str:
    """The Klaviyo base URL a failed call went to (its request's, else the configured one)."""
    import httpx

    cause = exc.__cause__
    try:
        request = cause.request if isinstance(cause, httpx.HTTPError) else None
    except RuntimeError:  # an httpx error raised without a request
        request = None
    if request is not None:
        return f"{request.url.scheme}://{request.url.netloc.decode()}"
    return config().klaviyo_base_url


def error_line(exc: BaseException) -> tuple[str, int] | None:
    """What went wrong and what to do, in one line, with the exit code; None for an unexpected error.

    Shared by the commands and the REPL, so an error reads the same everywhere.
    """
    from klaviyo_toolkit.errors import (
        AuthenticationError,
        ConnectionUnusableError,
        InvalidArgumentError,
        KlaviyoAPIError,
        PermissionDeniedError,
        RateLimitError,
        RateLimitWaitError,
        ScopeDeniedError,
        ServerError,
        ToolkitUsageError,
        TransportError,
    )
    # A CassetteError exists only once its module is loaded; importing it here would load LangChain
    # for every error a light command reports (a wrong --persona of `personas runs`, say).
    cassette = sys.modules.get("personas.kernel.cassette")
    cassette_errors: tuple[type[BaseException], ...] = (cassette.CassetteError,) if cassette is not None else ()

    if isinstance(exc, (UsageProblem, ToolkitUsageError, InvalidArgumentError, ConnectionUnusableError)):
        return str(exc), int(getattr(exc, "exit_code", 2))
    operation = getattr(exc, "operation_id", None)
    op = f" ({operation})" if operation else ""
    if isinstance(exc, TransportError):
        cause = exc.__cause__
        why = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
        return f"cannot reach {_base_url(exc)}{op}: {why}; check KLAVIYO_BASE_URL and your network", 1
    if isinstance(exc, AuthenticationError) and str(operation or "").startswith("oauth."):
        return (
            f"Klaviyo's OAuth token endpoint refused this app's client credentials (401){op}: "
            f"{exc.detail or exc.code or exc.title or 'invalid_client'}; check KLAVIYO_CLIENT_ID and "
            "KLAVIYO_CLIENT_SECRET (the stored connection was left as it is)"
        ), 1
    if isinstance(exc, AuthenticationError):
        base = config().klaviyo_base_url
        where = f" (sent to KLAVIYO_BASE_URL={base})"
        return (
            f"Klaviyo rejected the API key (401){op}; check KLAVIYO_API_KEY{where}, or, on a stored connection, "
            "`personas auth status` (it now needs `personas auth login NAME`)"
        ), 1
    if isinstance(exc, PermissionDeniedError):
        return (
            f"Klaviyo refused the call (403){op}: {exc.detail or exc.title or 'missing scope'}; "
            "use a key with the scopes the persona lists (`personas list`)"
        ), 1
    if isinstance(exc, RateLimitError):
        wait = f"wait {exc.retry_after:.0f} s and " if exc.retry_after else ""
        return f"Klaviyo rate-limited the call (429){op}; {wait}try again", 1
    if isinstance(exc, ServerError):
        rid = f", request {exc.request_id}" if exc.request_id else ""
        return f"Klaviyo failed with HTTP {exc.status}{op}{rid}; try again later", 1
    if isinstance(exc, (KlaviyoAPIError, *cassette_errors, ScopeDeniedError, RateLimitWaitError)):
        return str(exc), 1  # these messages say what happened and what to do already
    return _model_error(exc)


def _model_error(exc: BaseException) -> tuple[str, int] | None:
    """The model endpoint failing (the openai client's errors, told apart by name: no import here)."""
    if type(exc).__module__.split(".")[0] != "openai":
        return None
    from klaviyo_toolkit.redact import redact_text

    name = type(exc).__name__
    where = f"the model at {config().openai_base}"
    status = getattr(exc, "status_code", None)
    detail = redact_text((str(exc).strip().splitlines() or [""])[0])[:200]
    if name in ("APIConnectionError", "APITimeoutError"):
        return f"cannot reach {where} ({detail}); check OPENAI_BASE_URL and that the server is up", 1
    if status == 401:
        return f"{where} rejected OPENAI_API_KEY (401: {detail}); check the key", 1
    if status == 404:
        return f"{where} has no such model or path (404: {detail}); check PERSONAS_MODEL and OPENAI_BASE_URL", 1
    if status == 429:
        return f"{where} is rate-limiting or out of quota (429: {detail}); wait, or check the account", 1
    return f"{where} failed ({name}{f' {status}' if status else ''}: {detail}); try again, or check its logs", 1
