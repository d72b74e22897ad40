"""The ``backend`` fixture: every Klaviyo-like backend the client contract runs against.

Each backend gives fresh clients pointed at it (``backend.client()``, ``backend.async_client()``) and
a ``name`` for test ids. Add a backend by writing a factory (a generator yielding a ``Backend`` and
cleaning up after) and listing it in ``BACKENDS``; the tests in this folder then run against it too.
Tests own the clients they make (``with backend.client() as kl: ...``).

Backends now:
    mock          FakeKlaviyo (profiles and lists in memory) behind ``httpx.MockTransport``.
    sandbox-asgi  the sandbox in-process (``Sandbox(demo_data=False).client()``, no socket).
    sandbox-port  the same app served by uvicorn on 127.0.0.1 (a free port), reached over TCP.
    live          real Klaviyo; only when ``KLAVIYO_API_KEY`` is set (``KLAVIYO_BASE_URL`` optional),
                  skipped with the reason otherwise. It writes uniquely named profiles and lists.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from klaviyo_sandbox import DEMO_KEY, PUBLIC_KEY, Sandbox
from klaviyo_toolkit.client import AsyncKlaviyoClient, KlaviyoClient
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.ratelimit import RateLimiter

from .fake_klaviyo import FakeKlaviyo


@dataclass
class Backend:
    """A Klaviyo-like backend and how to make clients for it.

    Attributes:
        name: short id shown in test names.
        options: client options every client gets (api_key, base_url, transport, clock, ...);
            ``client(**overrides)`` replaces any of them, e.g. ``api_key=`` to try a wrong key.
        make_sync / make_async: build the transport-bearing clients (transports differ per backend).
    """

    name: str
    options: dict[str, Any]
    make_sync: Callable[..., KlaviyoClient]
    make_async: Callable[..., AsyncKlaviyoClient]

    def client(self, **overrides: Any) -> KlaviyoClient:
        return self.make_sync(**{**self.options, **overrides})

    def async_client(self, **overrides: Any) -> AsyncKlaviyoClient:
        return self.make_async(**{**self.options, **overrides})


def _mock_backend() -> Iterator[Backend]:
    fake = FakeKlaviyo()
    transport = fake.transport()  # MockTransport serves sync and async clients alike
    yield Backend(
        name="mock",
        # A ManualClock per backend: rate-limit waits and retry backoffs take no real time.
        options={"api_key": fake.api_key, "clock": ManualClock()},
        make_sync=lambda **kw: KlaviyoClient(transport=transport, **kw),
        make_async=lambda **kw: AsyncKlaviyoClient(transport=transport, **kw),
    )


def _sandbox_asgi_backend() -> Iterator[Backend]:
    # Klaviyo's real rate limits (factor 1.0); the sandbox's own limiter keeps its clients inside them.
    sb = Sandbox(demo_data=False)
    yield Backend(
        name="sandbox-asgi",
        options={"api_key": DEMO_KEY, "clock": ManualClock()},
        make_sync=lambda **kw: sb.client(**kw),
        make_async=lambda **kw: sb.async_client(**kw),
    )
    sb.close()


def _sandbox_port_backend() -> Iterator[Backend]:
    from tests.sandbox.conftest import on_port

    sb = Sandbox(demo_data=False)
    with on_port(sb.app) as base_url:
        # A limiter of our own on real time: clients wait like any client of Klaviyo would.
        limiter = RateLimiter()
        yield Backend(
            name="sandbox-port",
            options={"api_key": DEMO_KEY, "base_url": base_url, "public_api_key": PUBLIC_KEY,
                     "rate_limiter": limiter, "clock": ManualClock()},
            make_sync=lambda **kw: KlaviyoClient(**kw),
            make_async=lambda **kw: AsyncKlaviyoClient(**kw),
        )
    sb.close()


def _live_backend() -> Iterator[Backend]:
    key = os.environ.get("KLAVIYO_API_KEY", "").strip()
    if not key:
        pytest.skip("live backend: set KLAVIYO_API_KEY (and optionally KLAVIYO_BASE_URL) to run the contract "
                    "against real Klaviyo; it creates uniquely named test profiles and lists")
    base_url = os.environ.get("KLAVIYO_BASE_URL") or "https://a.klaviyo.com"
    yield Backend(
        name="live",
        options={"api_key": key, "base_url": base_url},  # the process-wide limiter, real time
        make_sync=lambda **kw: KlaviyoClient(**kw),
        make_async=lambda **kw: AsyncKlaviyoClient(**kw),
    )


#: name -> factory; the fixture below is parametrized over these, in this order.
BACKENDS: dict[str, Callable[[], Iterator[Backend]]] = {
    "mock": _mock_backend,
    "sandbox-asgi": _sandbox_asgi_backend,
    "sandbox-port": _sandbox_port_backend,
    "live": _live_backend,
}


@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.live) if name == "live" else name for name in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """One Klaviyo-like backend per parameter (see ``BACKENDS``)."""
    yield from BACKENDS[request.param]()
