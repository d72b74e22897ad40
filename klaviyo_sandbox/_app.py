"""The Sandbox: a stateful Klaviyo emulator as an ASGI app, usable in-process or as a server.

``Sandbox`` is a facade over small parts, each built here from explicit values:

- ``Routes`` (``_routes.py``): the catalog's paths and what the spec says about them;
- ``Services`` (``_services.py``): the store, the clock, relations, jobs, the outbox and the event
  bus — all that domain code sees;
- ``Registry`` (``_registry.py``): what the sandbox's ``domains`` declare, merged for this instance;
- ``Pipeline`` (``_pipeline.py``): auth, revision, checks, limits and dispatch of each request (writes
  Klaviyo applies asynchronously go through a scratch check and are applied later);
- ``Keys`` (``_keys.py``), ``ServerLimits`` (``_limits.py``), ``Faults`` (``_faults.py``);
- the ASGI app (``_server.py``), with ``/sandbox/...`` inspection (``_inspect.py``) and
  ``/oauth/...`` (``_oauth.py``) beside Klaviyo's paths.

Example::

    sandbox = Sandbox(seed=7)
    client = sandbox.client()                 # a KlaviyoClient wired in-process, key pk_sandbox_demo
    client.call("get_lists")
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from klaviyo_toolkit.catalog import Catalog, Operation, load_catalog
from klaviyo_toolkit.client import AsyncKlaviyoClient, KlaviyoClient
from klaviyo_toolkit.clock import Clock, SystemClock
from klaviyo_toolkit.ratelimit import RateLimiter

from ._context import Reply
from ._faults import Faults
from ._jobs import Jobs
from ._jsonapi import Fields
from ._keys import DEMO_KEY, PUBLIC_KEY, Keys
from ._limits import AccountLimiter, ServerLimits
from ._oauth import token_auth
from ._outbox import Outbox
from ._pipeline import Pipeline, RequestLog
from ._registry import Registry
from ._relations import Relations
from ._routes import Routes
from ._schemas import SchemaIndex, schema_index
from ._server import build_app
from ._services import Services
from ._store import Store
from ._transport import AsyncSandboxTransport, SyncASGITransport
from .domain import Domain
from .domains import DEFAULT_DOMAINS
from .seeding import Seeding

__all__ = ["DEMO_KEY", "PUBLIC_KEY", "REALISTIC_CONSISTENCY_DELAY", "REALISTIC_JOB_SECONDS", "Sandbox"]

Json = dict[str, Any]
#: With ``realistic=True``: seconds before an event, merge or client subscription is visible.
REALISTIC_CONSISTENCY_DELAY = 5.0
#: With ``realistic=True``: seconds a bulk job takes before it completes (plus 1 ms per item).
REALISTIC_JOB_SECONDS = 10.0


class Sandbox:
    """A stateful, spec-faithful Klaviyo emulator (see module docstring).

    Args:
        domains: the Klaviyo behaviour to emulate beyond the generic engine (``DEFAULT_DOMAINS``:
            all of it); each sandbox builds its own registries from the tuple it is given.
        seed: seeds demo data and ids, so runs are reproducible.
        state: SQLite file to keep state in (survives restarts); memory when None.
        demo_data: load the seeded demo account when the state is empty.
        rate_limit_factor: scales every rate limit; None turns limits off.
        clock: time source (a ManualClock lets tests move time; jobs and limits follow it).
        faults: fault injection settings.
        validate_responses: check every response against the spec (tests turn this on).
        job_seconds: base time a bulk job takes to complete (plus 1 ms per item); 0.5 s, or
            ``REALISTIC_JOB_SECONDS`` when ``realistic``.
        consistency_delay: seconds before a write Klaviyo documents as asynchronous (events, client
            subscriptions, push tokens, profile merges) becomes visible; the request is checked and
            answered at once. 0 (visible inside the request), or ``REALISTIC_CONSISTENCY_DELAY``
            when ``realistic``.
        realistic: Klaviyo's timing as well as its answers: asynchronous writes and bulk jobs take
            time to show (``personas sandbox serve --realistic``), so read-after-write code is tested.
            ``settle()`` makes everything pending visible at once.
        request_log_size: how many recent requests ``requests`` keeps (None: every one, for suites
            that account for each request; ``call_counts`` always counts them all).
    """

    BASE_URL = "http://sandbox.klaviyo.test"

    def __init__(
        self,
        *,
        domains: Iterable[Domain] = DEFAULT_DOMAINS,
        seed: int = 42,
        state: str | Path | None = None,
        demo_data: bool = True,
        rate_limit_factor: float | None = 1.0,
        clock: Clock | None = None,
        faults: Faults | None = None,
        validate_responses: bool = False,
        job_seconds: float | None = None,
        consistency_delay: float | None = None,
        realistic: bool = False,
        request_log_size: int | None = 5000,
    ) -> None:
        self.seed = seed
        self.realistic = realistic
        if job_seconds is None:
            job_seconds = REALISTIC_JOB_SECONDS if realistic else 0.5
        if consistency_delay is None:
            consistency_delay = REALISTIC_CONSISTENCY_DELAY if realistic else 0.0
        self.registry = Registry.build(domains)
        self.clock: Clock = clock or SystemClock()
        self.catalog: Catalog = load_catalog()
        self.schemas: SchemaIndex = schema_index()
        self.routes = Routes(self.catalog, self.schemas)
        self.store = Store(str(state) if state else None, seed=seed)
        self.services = Services(
            store=self.store,
            clock=self.clock,
            outbox=Outbox(self.store, self.clock),
            jobs=Jobs(self.store, self.clock, job_seconds, self.registry.jobs),
            relations=Relations(self.store, self.clock, self.routes.rel_target_types, self.registry.related),
            hooks=self.registry.hooks,
        )
        self.keys = Keys(self.store)
        self.limits = ServerLimits(rate_limit_factor)
        #: The limiter of clients made by ``client()``: the same factor as the sandbox's limits and one
        #: bucket per account, as the sandbox counts, so they respect them exactly (and wait for
        #: nothing when limits are off).
        self.client_limiter: RateLimiter = AccountLimiter(self.clock, factor=rate_limit_factor)
        self.faults = faults or Faults()
        self.log = RequestLog(request_log_size)
        self.pipeline = Pipeline(
            routes=self.routes,
            services=self.services,
            fields=Fields(self.store, self.registry.fields),
            handlers=self.registry.handlers,
            keys=self.keys,
            token_auth=lambda token: token_auth(self.store, self.clock, token),
            limits=self.limits,
            log=self.log,
            validate_responses=validate_responses,
            consistency_delay=consistency_delay,
        )
        #: Write data straight into the store (see ``klaviyo_sandbox.seeding``).
        self.seeding = Seeding(self.services)
        if demo_data and self.store.is_empty():
            self._seed_demo()
        self.app = build_app(self)

    # -- state -------------------------------------------------------------------------------------
    @property
    def requests(self) -> collections.deque[Json]:
        """Recent requests: method, path, operation_id, status, ms, and ``fault`` when one was injected
        (also ``GET /sandbox/requests``)."""
        return self.log.requests

    @property
    def call_counts(self) -> collections.Counter[str]:
        """Calls per operation id since the start (or the last reset)."""
        return self.log.call_counts

    @property
    def job_seconds(self) -> float:
        return self.services.jobs.seconds

    def reset(self, seed: int | None = None, demo_data: bool = True) -> None:
        """Start over: empty state, limits and request log; demo data again unless told not to."""
        with self.pipeline.lock, self.store.lock:
            self.seed = self.seed if seed is None else int(seed)
            self.store.clear()
            self.services.jobs.forget()
            self.store.reseed(self.seed)
            self.limits.reset()
            self.log.clear()
            if demo_data:
                self._seed_demo()
            self.store.flush()

    def _seed_demo(self) -> None:
        for seeder in self.registry.seeders:
            seeder(self.services, self.seed)
        self.store.flush()

    def outbox(self, **filters: Any) -> list[Json]:
        """Messages flows and campaigns put in the outbox, filtered by attribute (``to=``, ``source=``, ...)."""
        return self.services.outbox.messages(**filters)

    @property
    def consistency_delay(self) -> float:
        """Seconds before an asynchronous write becomes visible (see the class docstring)."""
        return self.pipeline.consistency_delay

    def tick(self) -> None:
        """Apply the bulk jobs, writes and deliveries that are due (before each request; ``/sandbox/tick``)."""
        with self.pipeline.lock, self.store.lock:
            self.services.run_due_jobs()
            self.store.flush()

    def settle(self) -> None:
        """Let everything pending finish now, as if time had passed: bulk jobs complete, asynchronous
        writes become visible, sent messages' engagement is recorded (``/sandbox/settle``).

        Messages scheduled for later (a campaign's future send time, a flow's delay) stay scheduled;
        move the clock to reach them. Use it where code against real Klaviyo would wait and poll.
        """
        with self.pipeline.lock, self.store.lock:
            self.services.settle()
            self.store.flush()

    def emit(self, event: str, payload: Any) -> None:
        """Announce a sandbox event to the domains' hooks, as domain code does."""
        self.services.emit(event, payload)

    def collection_type(self, segment: str) -> str | None:
        return self.routes.collection_type(segment)

    def primary_type(self, op: Operation) -> str | None:
        return self.routes.primary_type(op)

    # -- keys ----------------------------------------------------------------------------------
    def create_key(self, scopes: Iterable[str] | str, name: str | None = None) -> str:
        """A new private key with exactly ``scopes`` (or ``"*"``)."""
        return self.keys.create(scopes, name)

    def revoke_key(self, key: str) -> None:
        self.keys.revoke(key)

    # -- serving -------------------------------------------------------------------------------
    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        raw_body: bytes,
        base_url: str,
        form: dict[str, Any] | None = None,
        *,
        fault: str | None = None,
    ) -> Reply:
        """Serve one Klaviyo API request (the pipeline; faults are applied by the ASGI app around it)."""
        return self.pipeline.handle(method, path, query, headers, raw_body, base_url, form, fault=fault)

    def transport(self) -> SyncASGITransport:
        return SyncASGITransport(self.app)

    def async_transport(self) -> AsyncSandboxTransport:
        return AsyncSandboxTransport(self.app)

    def client(self, api_key: str = DEMO_KEY, **options: Any) -> KlaviyoClient:
        """A KlaviyoClient talking to this sandbox in-process (real HTTP semantics, no socket)."""
        options.setdefault("base_url", self.BASE_URL)
        options.setdefault("public_api_key", PUBLIC_KEY)
        options.setdefault("rate_limiter", self.client_limiter)
        return KlaviyoClient(api_key=api_key, transport=self.transport(), **options)

    def async_client(self, api_key: str = DEMO_KEY, **options: Any) -> AsyncKlaviyoClient:
        options.setdefault("base_url", self.BASE_URL)
        options.setdefault("public_api_key", PUBLIC_KEY)
        options.setdefault("rate_limiter", self.client_limiter)
        return AsyncKlaviyoClient(api_key=api_key, transport=self.async_transport(), **options)

    def close(self) -> None:
        self.store.close()
