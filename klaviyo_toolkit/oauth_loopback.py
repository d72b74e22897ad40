"""The OAuth redirect for a command-line app: a one-shot HTTP listener on the loopback interface.

A native app cannot receive a redirect on a public URL, so (RFC 8252, section 7.3) it listens on
``http://127.0.0.1:<port>/callback`` while the person approves in a browser; the browser is sent
there with ``code`` and ``state``. :class:`LoopbackRedirect` binds the port first (so the redirect
URI is known before the authorization URL is made), then waits for that one request, checks its
``state`` and answers the browser with a short page.

Example::

    with LoopbackRedirect() as listener:
        config = OAuthConfig.for_base_url(api, client_id=..., client_secret=..., scopes=...,
                                          redirect_uri=listener.redirect_uri)
        verifier, challenge = pkce_pair()
        state = new_state()
        print(authorization_url(config, state, challenge))   # the person opens it and approves
        code = listener.wait(state, timeout=300)               # raises on a wrong state or a denial
"""

from __future__ import annotations

import html
import math
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .errors import ToolkitUsageError

__all__ = ["LoopbackRedirect", "RedirectError", "RedirectTimeout", "check_redirect"]


class RedirectError(ToolkitUsageError):
    """The redirect came back wrong.

    Attributes:
        code: ``state_mismatch`` (a stale or forged redirect), ``no_code``, or the server's OAuth error
            (``access_denied`` when the person said no, ``invalid_scope``, ...).
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def check_redirect(target: str, state: str) -> str:
    """The code in a redirect's query, after checking its ``state``; else :class:`RedirectError`."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
    if "error" in query:
        detail = query.get("error_description", "").strip()
        raise RedirectError(
            query["error"], f"Klaviyo did not authorize: {query['error']}" + (f" ({detail})" if detail else "")
        )
    if not secrets.compare_digest(query.get("state", ""), state):
        raise RedirectError(
            "state_mismatch", "the redirect's state does not match this login (a stale or forged redirect)"
        )
    code = query.get("code")
    if not code:
        raise RedirectError("no_code", "the redirect carried no authorization code")
    return code


class RedirectTimeout(ToolkitUsageError):
    """No redirect came back in time."""


class _Server(HTTPServer):
    path: str
    state: str
    outcome: str | RedirectError | None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    #: Seconds a connection may take to send its request: one that opens and sends nothing (a
    #: browser's speculative pre-connection) must not hold the login past its --timeout.
    timeout = 2.0

    def do_GET(self) -> None:
        if urlsplit(self.path).path != self.server.path:
            self._answer(404, "Not here", "This address only receives the Klaviyo authorization.")
            return
        try:
            code = check_redirect(self.path, self.server.state)
        except RedirectError as exc:
            self.server.outcome = exc
            self._answer(400, "Not connected", f"Not connected: {exc}. You can close this tab.")
            return
        self.server.outcome = code
        self._answer(200, "Connected", "The connection is made. You can close this tab and return to the terminal.")

    def _answer(self, status: int, title: str, text: str) -> None:
        body = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the query holds the code: never log it
        return


class LoopbackRedirect:
    """Listens on ``127.0.0.1:port`` (0: a free port) for one OAuth redirect to ``path``.

    Attributes:
        redirect_uri: ``http://127.0.0.1:<port><path>``, to register with the app and send in the request.
    """

    def __init__(self, port: int = 0, *, path: str = "/callback", host: str = "127.0.0.1") -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ToolkitUsageError(
                f"{port!r} is not a port to listen on for the redirect: give 1 to 65535, or 0 for a free one"
            )
        try:
            self._server = _Server((host, port), _Handler)
        except OSError as exc:
            raise ToolkitUsageError(f"cannot listen on {host}:{port} for the redirect ({exc.strerror})") from None
        self._server.path = path
        self._server.outcome = None
        self._server.timeout = 0.2
        bound = self._server.server_address
        self.redirect_uri = f"http://{host}:{bound[1]}{path}"
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LoopbackRedirect({self.redirect_uri!r})"

    def wait(self, state: str, timeout: float = 300.0) -> str:
        """The authorization code of the first redirect to arrive, after checking its ``state``.

        Raises:
            RedirectError: the redirect carried an error, no code, or another state.
            RedirectTimeout: nothing came within ``timeout`` seconds.
        """
        if not math.isfinite(timeout) or timeout <= 0:
            raise ToolkitUsageError(f"a redirect's wait must be a positive number of seconds, not {timeout!r}")
        with self._lock:
            self._server.state = state
            deadline = time.monotonic() + timeout
            while self._server.outcome is None:
                if time.monotonic() >= deadline:
                    raise RedirectTimeout(f"no authorization came back within {timeout:.0f} s")
                try:
                    self._server.handle_request()
                except OSError:  # a browser that hung up: keep listening
                    continue
            outcome = self._server.outcome
            if isinstance(outcome, RedirectError):
                raise outcome
            return outcome

    def close(self) -> None:
        self._server.server_close()

    def __enter__(self) -> LoopbackRedirect:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
