"""Play the person at an OAuth consent page, as a browser does: GET the page, submit its form.

The sandbox's ``/oauth/authorize`` answers with an HTML form (the app, the scopes, Allow / Deny);
:func:`consent` reads that form the way a browser would and submits it, returning the server's answer
(a redirect to the app's ``redirect_uri`` with ``code`` and ``state``, or ``error=access_denied``).
A server that redirects at once (no page) is answered as is.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx


class _Form(HTMLParser):
    """The first form of a page: its action, method and the fields a browser would send."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, list[str]] = {}
        self._inside = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and not self._done:
            self._inside = True
            self.action = a.get("action", "")
            self.method = a.get("method", "get").lower()
        elif self._inside and tag == "input" and a.get("type", "text") != "submit" and "name" in a:
            self.fields[a["name"]] = a.get("value", "")
        elif self._inside and tag in ("button", "input") and a.get("name"):
            self.buttons.setdefault(a["name"], []).append(a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._inside:
            self._inside, self._done = False, True


def consent(browser: httpx.Client, authorize_url: str, *, approve: bool = True) -> httpx.Response:
    """GET the consent page and press Allow (or Deny); returns the answer to the form (not followed)."""
    page = browser.get(authorize_url)
    if page.status_code != 200 or "text/html" not in page.headers.get("content-type", ""):
        return page
    form = _Form()
    form.feed(page.text)
    assert form.action is not None, f"no form on the consent page:\n{page.text}"
    data = dict(form.fields)
    for name, values in form.buttons.items():
        wanted = "approve" if approve else "deny"
        assert wanted in values, f"the consent form has no {wanted!r} button: {values}"
        data[name] = wanted
    target = urljoin(str(page.url), form.action)
    if form.method == "post":
        return browser.post(target, data=data)
    return browser.get(target, params=data)
