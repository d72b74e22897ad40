"""The ``backend`` fixture: every Klaviyo-like backend the client contract runs against.

Each backend gives fresh clients pointed at it (``backend.client()``, ``backend.async_client()``) and
a ``name`` for test ids. Add a backend by writing a factory (a generator yielding a ``Backend`` and
cleaning up after) and listing it in ``BACKENDS``; the tests in this folder then run against it too.
Tests own the clients they make (``with backend.client() as kl: ...``).

Backends now:
    mock    FakeKlaviyo (profiles and lists in memory) behind ``httpx.MockTransport``.
Planned: ``sandbox-asgi`` (the sandbox in-process) and ``sandbox-port`` (``personas sandbox serve``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from klaviyo_toolkit.client import AsyncKlaviyoClient, KlaviyoClient
from klaviyo_toolkit.clock import ManualClock

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


#: name -> factory; the fixture below is parametrized over these, in this order.
BACKENDS: dict[str, Callable[[], Iterator[Backend]]] = {
    "mock": _mock_backend,
}


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """One Klaviyo-like backend per parameter (see ``BACKENDS``)."""
    yield from BACKENDS[request.param]()
