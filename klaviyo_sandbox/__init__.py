"""A stateful emulator of Klaviyo's API for development, tests, demos and benchmarks.

Runs in-process (``Sandbox().client()`` or ``httpx.ASGITransport(app=Sandbox().app)``) or as a
server (``personas sandbox serve --port 8787``). It accepts the private key ``pk_sandbox_demo``
with every scope; keys with chosen scopes come from ``POST /sandbox/keys``.
"""

from ._app import DEMO_KEY, PUBLIC_KEY, Sandbox
from ._faults import Faults

__all__ = ["DEMO_KEY", "PUBLIC_KEY", "Faults", "Sandbox"]
