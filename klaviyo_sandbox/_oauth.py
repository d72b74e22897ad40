"""OAuth endpoints, as Klaviyo serves them, for testing the auth flow end to end.

``GET /oauth/authorize`` checks the request and shows a consent page (an HTML form naming the app,
the account and the scopes asked for); the form's ``POST /oauth/authorize`` approves (redirect to
``redirect_uri`` with ``code`` and ``state``) or denies (``error=access_denied``). A test, or a
person, drives it as a browser does: GET the page, POST the form, follow the redirect. Unknown
scopes are refused with ``error=invalid_scope`` at the redirect, as Klaviyo does.
``POST /oauth/token`` exchanges a code (PKCE S256 checked, client by HTTP Basic) or a refresh token,
which is rotated: the old refresh token stops working, and reusing it revokes the whole grant;
``POST /oauth/revoke`` revokes an access or refresh token and the grant it belongs to; a refresh token
that was already rotated away is no longer valid, and revoking it does nothing (RFC 7009 §2.2: an
invalid token is answered 200 and changes nothing), so a client must revoke the latest one.
Faults named ``oauth.token`` or ``oauth.revoke`` fail these endpoints (``_server.py``). The registered client is
``sbx-client`` / ``sbx-secret`` (more via ``register_client(store, ...)`` here). Grants live in the
store, so they go with ``reset()`` and survive a restart with ``state=``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import re
import secrets
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from klaviyo_toolkit.clock import Clock

from ._context import Auth
from ._jsonapi import SandboxError
from ._store import Store

DEFAULT_CLIENT = ("sbx-client", "sbx-secret")
ACCESS_TTL = 3600


def _clients(store: Store) -> dict[str, Any]:
    clients: dict[str, Any] = store.mutable("oauth_clients", dict)
    clients.setdefault(DEFAULT_CLIENT[0], {"secret": DEFAULT_CLIENT[1], "redirect_uris": []})
    return clients


def register_client(store: Store, client_id: str, secret: str, redirect_uris: list[str] | None = None) -> None:
    _clients(store)[client_id] = {"secret": secret, "redirect_uris": list(redirect_uris or [])}


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _client_auth(store: Store, request: Request, form: dict[str, str]) -> str | None:
    header = request.headers.get("authorization", "")
    client_id = secret = None
    if header.startswith("Basic "):
        try:
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
    else:
        client_id, secret = form.get("client_id"), form.get("client_secret")
    info = _clients(store).get(client_id or "")
    if info is None or not secrets.compare_digest(str(info["secret"]), str(secret or "")):
        return None
    return client_id


def _issue(store: Store, now: float, client_id: str, scopes: list[str], grant: str) -> dict[str, Any]:
    access = "sbx_at_" + secrets.token_urlsafe(24)
    refresh = "sbx_rt_" + secrets.token_urlsafe(24)
    store.mutable("oauth_access", dict)[access] = {
        "client_id": client_id,
        "scopes": scopes,
        "expires": now + ACCESS_TTL,
        "grant": grant,
        "revoked": False,
    }
    store.mutable("oauth_refresh", dict)[refresh] = {
        "client_id": client_id,
        "scopes": scopes,
        "grant": grant,
        "active": True,
    }
    store.flush()
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL,
        "refresh_token": refresh,
        "scope": " ".join(scopes),
    }


def _revoke_grant(store: Store, grant: str) -> None:
    for info in store.mutable("oauth_access", dict).values():
        if info["grant"] == grant:
            info["revoked"] = True
    for info in store.mutable("oauth_refresh", dict).values():
        if info["grant"] == grant:
            info["active"] = False


@functools.lru_cache(maxsize=1)
def _known_scopes() -> frozenset[str]:
    from klaviyo_toolkit.catalog import load_catalog

    return frozenset(s for op in load_catalog(True) for s in op.scopes)


def _redirect(redirect_uri: str, params: dict[str, str]) -> Response:
    sep = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + sep + urlencode(params), status_code=302)


def _consent_page(consent_id: str, client_id: str, scopes: list[str], account: str) -> Response:
    items = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in scopes)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Authorize {html.escape(client_id)}</title></head>
<body>
<h1>Authorize {html.escape(client_id)}</h1>
<p>The app <b>{html.escape(client_id)}</b> asks to access the Klaviyo account {html.escape(account)} with:</p>
<ul>{items}</ul>
<form method="post" action="/oauth/authorize">
<input type="hidden" name="consent_id" value="{html.escape(consent_id)}">
<button type="submit" name="decision" value="approve">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
</body></html>"""
    return HTMLResponse(page)


def _authorize_request(store: Store, clock: Clock, request: Request) -> Response:
    """``GET /oauth/authorize``: check the request, remember it, show the consent form."""
    q = request.query_params
    client_id = q.get("client_id", "")
    if client_id not in _clients(store):
        return _oauth_error("invalid_client", f"unknown client_id {client_id!r}")
    if q.get("response_type") != "code" or not q.get("redirect_uri"):
        return _oauth_error("invalid_request", "response_type=code and redirect_uri are required")
    registered = _clients(store)[client_id]["redirect_uris"]
    if registered and q["redirect_uri"] not in registered:
        return _oauth_error("invalid_request", "redirect_uri is not registered for this app")
    state = {"state": q["state"]} if q.get("state") else {}
    if q.get("code_challenge_method", "S256") != "S256" or not q.get("code_challenge"):
        return _redirect(
            q["redirect_uri"],
            {
                "error": "invalid_request",
                **state,
                "error_description": "PKCE with code_challenge_method=S256 is required",
            },
        )
    scopes = (q.get("scope") or "").split()
    unknown = [s for s in scopes if s not in _known_scopes()]
    if not scopes or unknown:
        what = f"unknown scope(s): {', '.join(unknown)}" if unknown else "no scope asked for"
        return _redirect(q["redirect_uri"], {"error": "invalid_scope", "error_description": what, **state})
    consent_id = "sbx_consent_" + secrets.token_urlsafe(16)
    store.mutable("oauth_consents", dict)[consent_id] = {
        "client_id": client_id,
        "redirect_uri": q["redirect_uri"],
        "scopes": scopes,
        "challenge": q["code_challenge"],
        "state": q.get("state"),
        "expires": clock.time() + 600,
    }
    store.flush()
    return _consent_page(consent_id, client_id, scopes, "of this sandbox")


async def _authorize_decision(store: Store, clock: Clock, request: Request) -> Response:
    """``POST /oauth/authorize``: the consent form's answer; redirect with a code, or with access_denied."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    info = store.mutable("oauth_consents", dict).pop(form.get("consent_id", ""), None)
    store.flush()
    if info is None or info["expires"] < clock.time():
        return _oauth_error("invalid_request", "this consent page is unknown, used or expired; start again")
    state = {"state": info["state"]} if info.get("state") else {}
    if form.get("decision") != "approve":
        return _redirect(
            info["redirect_uri"],
            {"error": "access_denied", **state, "error_description": "the user denied the request"},
        )
    code = "sbx_code_" + secrets.token_urlsafe(16)
    store.mutable("oauth_codes", dict)[code] = {
        "client_id": info["client_id"],
        "redirect_uri": info["redirect_uri"],
        "scopes": info["scopes"],
        "challenge": info["challenge"],
        "expires": clock.time() + 600,
    }
    store.flush()
    return _redirect(info["redirect_uri"], {"code": code, **state})


async def oauth_endpoint(store: Store, clock: Clock, request: Request) -> Response:
    """Serve ``/oauth/authorize``, ``/oauth/token`` and ``/oauth/revoke`` (see module docstring)."""
    path = request.url.path.rstrip("/")
    with store.lock:
        if path == "/oauth/authorize" and request.method == "GET":
            return _authorize_request(store, clock, request)
        if path == "/oauth/authorize" and request.method == "POST":
            return await _authorize_decision(store, clock, request)
        if path == "/oauth/token" and request.method == "POST":
            form = {k: str(v) for k, v in (await request.form()).items()}
            authed = _client_auth(store, request, form)
            if authed is None:
                return _oauth_error("invalid_client", "client authentication failed", 401)
            client_id = authed
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                info = store.mutable("oauth_codes", dict).pop(form.get("code", ""), None)
                if info is None or info["client_id"] != client_id or info["expires"] < clock.time():
                    return _oauth_error("invalid_grant", "the code is unknown, used or expired")
                if info["redirect_uri"] != form.get("redirect_uri"):
                    return _oauth_error("invalid_grant", "redirect_uri does not match the authorization request")
                verifier = form.get("code_verifier", "")
                if not re.fullmatch(r"[a-zA-Z0-9\-._~]{43,128}", verifier):  # as Klaviyo's OAuth guide documents
                    return _oauth_error("invalid_request", 'Invalid "code_verifier"')
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                if digest != info["challenge"]:
                    return _oauth_error("invalid_grant", "Code challenge failed.")
                return JSONResponse(
                    _issue(store, clock.time(), client_id, info["scopes"], grant="g_" + secrets.token_hex(6))
                )
            if grant_type == "refresh_token":
                refresh = form.get("refresh_token", "")
                info = store.mutable("oauth_refresh", dict).get(refresh)
                if info is None or info["client_id"] != client_id:
                    return _oauth_error("invalid_grant", "unknown refresh token")
                if not info["active"]:
                    _revoke_grant(store, info["grant"])  # reuse of a rotated token: revoke everything
                    store.flush()
                    return _oauth_error("invalid_grant", "refresh token was already used or revoked")
                info["active"] = False
                return JSONResponse(_issue(store, clock.time(), client_id, info["scopes"], grant=info["grant"]))
            return _oauth_error("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        if path == "/oauth/revoke" and request.method == "POST":
            form = {k: str(v) for k, v in (await request.form()).items()}
            if _client_auth(store, request, form) is None:
                return _oauth_error("invalid_client", "client authentication failed", 401)
            token = form.get("token", "")
            access = store.mutable("oauth_access", dict).get(token)
            refresh = store.mutable("oauth_refresh", dict).get(token)
            # A refresh token rotated away (or revoked) is no longer valid: revoking it does nothing.
            for found in (access, refresh if refresh is not None and refresh["active"] else None):
                if found is not None:
                    _revoke_grant(store, found["grant"])
            store.flush()
            return Response(status_code=200)
    return _oauth_error("not_found", f"no OAuth endpoint {request.method} {path}", 404)


def token_auth(store: Store, clock: Clock, token: str) -> Auth:
    """Who an access token speaks for (401 when unknown, revoked or expired)."""
    info = store.value("oauth_access", {}).get(token)
    if info is None or info.get("revoked"):
        raise SandboxError(
            401,
            "not_authenticated",
            "Incorrect authentication credentials.",
            "The access token is not valid or was revoked.",
        )
    if info["expires"] < clock.time():
        raise SandboxError(
            401, "not_authenticated", "Incorrect authentication credentials.", "The access token expired; refresh it."
        )
    return Auth("oauth", str(info["client_id"]), frozenset(info["scopes"]))
