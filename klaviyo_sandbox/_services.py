"""What domain code works with: the store, the clock, relations, jobs, the outbox and the event bus.

Handlers reach it as ``ctx.svc``; hooks, job runners, relationship resolvers and seeders are called
with it. It is one sandbox's, built from the domains that sandbox was given, and it is all a domain
sees of the sandbox (no routing, keys, limits or HTTP).

Example::

    def on_event_created(svc: Services, event: Resource) -> None:
        profile = svc.store.get("profile", event.linked("profile")[0][1])
        svc.outbox.add(to=profile.attributes["email"], channel="email", source="flow", ...)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from klaviyo_toolkit.clock import Clock

from ._jobs import Jobs
from ._outbox import Outbox
from ._relations import Relations
from ._store import Linkage, Resource, Store

#: ``(services, payload) -> None``: reacts to an event announced with ``Services.emit``.
Hook = Callable[["Services", Any], None]


@dataclass(frozen=True)
class Services:
    """One sandbox's state and the operations domain code performs on it (see module docstring)."""

    store: Store
    clock: Clock
    outbox: Outbox
    jobs: Jobs[Services]
    relations: Relations[Services]
    hooks: Mapping[str, tuple[Hook, ...]]

    # -- relationships ---------------------------------------------------------------------------
    def related(self, res: Resource, rel: str) -> list[Linkage]:
        """Linkages of ``res.rel``: stored, computed by a domain, or found on the other side."""
        return self.relations.related(self, res, rel)

    def link(self, parent: Resource, rel: str, links: Iterable[Linkage]) -> None:
        self.relations.link(parent, rel, links)

    def unlink(self, parent: Resource, rel: str, links: Iterable[Linkage]) -> None:
        self.relations.unlink(parent, rel, links)

    def set_links(self, parent: Resource, rel: str, links: list[Linkage], *, many: bool = True) -> None:
        self.relations.set_links(parent, rel, links, many=many)

    def forget(self, res: Resource) -> None:
        """Delete a resource and every linkage to it."""
        self.relations.forget(res)

    # -- events and jobs ---------------------------------------------------------------------------
    def emit(self, event: str, payload: Any) -> None:
        """Announce ``event`` ("event_created", "profile_added_to_list", ...) to the domains' hooks."""
        for hook in self.hooks.get(event, ()):
            hook(self, payload)

    def run_due_jobs(self) -> None:
        """Apply every bulk job and piece of deferred work that is due, each as of its due time."""
        self.jobs.tick(self.at)

    def settle(self) -> None:
        """Apply every pending job and deferred write now, as if time had passed (not future deliveries)."""
        self.jobs.settle(self.at)

    def at(self, when: float) -> Services:
        """These services as of ``when`` (their clock tells that time): for work done later than it
        happened, such as a job that came due between two requests, or a write applied asynchronously."""
        if when >= self.clock.time():
            return self
        clock = AsOf(self.clock, when)
        return Services(store=self.store, clock=clock, outbox=Outbox(self.store, clock), jobs=self.jobs,
                        relations=self.relations, hooks=self.hooks)


class AsOf:
    """A clock that tells the time something happened (to apply it later); waits are real."""

    def __init__(self, clock: Clock, at: float) -> None:
        self._clock = clock
        self._at = at
        #: The clock underneath, for what happens now (a webhook's send time), not as of ``at``.
        self.underlying = clock

    def time(self) -> float:
        return self._at

    def monotonic(self) -> float:
        return self._clock.monotonic()

    def sleep(self, seconds: float) -> None:
        self._clock.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await self._clock.asleep(seconds)
