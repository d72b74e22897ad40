"""A stateful emulator of Klaviyo's API for development, tests, demos and benchmarks.

Runs in-process (``Sandbox().client()`` or ``httpx.ASGITransport(app=Sandbox().app)``) or as a
server (``personas sandbox serve --port 8787``). It accepts the private key ``pk_sandbox_demo``
with every scope; keys with chosen scopes come from ``POST /sandbox/keys``.

A ``Sandbox`` is built from explicit values: ``Sandbox(domains=DEFAULT_DOMAINS, ...)``. Each
``Domain`` (``klaviyo_sandbox.domain``) declares one area of Klaviyo behaviour — handlers,
computed relationships and fields, job runners, hooks, seeders — and the sandbox builds its own
registries from the tuple it is given; operations no domain handles are served by a generic engine
from the spec. Handlers and hooks see only ``Services`` (store, clock, relations, jobs, outbox,
events). ``sandbox.seeding`` (``klaviyo_sandbox.seeding``) writes fixture data straight into the
store; ``Faults`` configures fault injection; ``Sandbox(realistic=True)`` adds Klaviyo's timing
(asynchronous writes and bulk jobs take time; ``Sandbox.settle()`` finishes them now).
``with_webhook_sender(domains, sender)`` makes it deliver signed system webhooks to the webhooks
registered in it, as Klaviyo does (``webhook_deliveries`` lists what was delivered);
``serve_app(sandbox.app)`` serves it on a loopback port. Everything else is private (``_``-prefixed
modules and ``klaviyo_sandbox.domains``).
"""

from ._app import DEMO_KEY, PUBLIC_KEY, REALISTIC_CONSISTENCY_DELAY, REALISTIC_JOB_SECONDS, Sandbox
from ._faults import Faults
from .domain import Domain, DomainBuilder, Services
from .domains import DEFAULT_DOMAINS
from .domains.webhook_delivery import deliveries as webhook_deliveries
from .domains.webhook_delivery import http_sender as webhook_http_sender
from .domains.webhook_delivery import with_sender as with_webhook_sender
from .seeding import DEMO_CAMPAIGNS, Seeding
from .serving import serve_app

__all__ = [
    "DEFAULT_DOMAINS",
    "DEMO_CAMPAIGNS",
    "DEMO_KEY",
    "PUBLIC_KEY",
    "REALISTIC_CONSISTENCY_DELAY",
    "REALISTIC_JOB_SECONDS",
    "Domain",
    "DomainBuilder",
    "Faults",
    "Sandbox",
    "Seeding",
    "Services",
    "serve_app",
    "webhook_deliveries",
    "webhook_http_sender",
    "with_webhook_sender",
]
