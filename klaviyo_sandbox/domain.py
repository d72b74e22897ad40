"""A sandbox domain: one area of Klaviyo behaviour, declared as a value.

A ``Domain`` declares what the sandbox does beyond the generic engine for one area: handlers per
operation id, relationships and filter fields it computes, job runners, hooks on sandbox events,
and seeders of demo data. A ``Sandbox`` is built from a tuple of them
(``Sandbox(domains=DEFAULT_DOMAINS)``) and gives each of its own registries; importing a domain
module changes nothing.

Each module of ``klaviyo_sandbox.domains`` builds its ``DOMAIN`` with a module-local
``DomainBuilder``::

    _d = DomainBuilder("lists")

    @_d.handles("create_list")
    def create_list(ctx: Ctx) -> Reply:
        ...

    @_d.related("profile", "lists")
    def profile_lists(svc: Services, profile: Resource) -> list[Linkage]:
        ...

    DOMAIN = _d.build()

A test or an app adds behaviour by passing one more domain::

    recorder = Domain("recorder", hooks={"profile_added_to_list": (lambda svc, payload: seen.append(payload),)})
    Sandbox(domains=(*DEFAULT_DOMAINS, recorder))

What each part is called with:

- handler ``(ctx: Ctx) -> Reply``, for the operation ids it is declared for;
- related resolver ``(svc: Services, res) -> [(type, id), ...]`` for ``(resource type, relationship)``;
- field resolver ``(store, res) -> value`` for ``(resource type, filter/sort field)``;
- job runner ``(svc, job) -> None`` for the operation id that made the job (or the job's type), or
  for deferred work the domain queues with ``svc.jobs.defer("<domain>:<name>", payload, due)``;
- hook ``(svc, payload) -> None`` for an event name (``"event_created"``, ``"profile_added_to_list"``);
- seeder ``(svc, seed) -> None``, when the sandbox loads demo data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._context import Ctx, Reply
from ._jsonapi import FieldResolver
from ._services import Hook, Services
from ._store import Linkage, Resource

Handler = Callable[[Ctx], Reply]
RelatedResolver = Callable[[Services, Resource], list[Linkage]]
JobRunner = Callable[[Services, Resource], None]
Seeder = Callable[[Services, int], None]


@dataclass(frozen=True)
class Domain:
    """What one area of Klaviyo behaviour adds to a sandbox (see module docstring); immutable."""

    name: str
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    related: Mapping[tuple[str, str], RelatedResolver] = field(default_factory=dict)
    fields: Mapping[tuple[str, str], FieldResolver] = field(default_factory=dict)
    jobs: Mapping[str, JobRunner] = field(default_factory=dict)
    hooks: Mapping[str, tuple[Hook, ...]] = field(default_factory=dict)
    seeders: tuple[Seeder, ...] = ()

    def __post_init__(self) -> None:
        freeze = object.__setattr__
        freeze(self, "handlers", MappingProxyType(dict(self.handlers)))
        freeze(self, "related", MappingProxyType(dict(self.related)))
        freeze(self, "fields", MappingProxyType(dict(self.fields)))
        freeze(self, "jobs", MappingProxyType(dict(self.jobs)))
        freeze(self, "hooks", MappingProxyType({k: tuple(v) for k, v in self.hooks.items()}))
        freeze(self, "seeders", tuple(self.seeders))


class DomainBuilder:
    """Collects one module's declarations with decorators; ``build()`` makes its ``Domain``.

    The builder is module-local: decorating a function records it here and nowhere else.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._handlers: dict[str, Handler] = {}
        self._related: dict[tuple[str, str], RelatedResolver] = {}
        self._fields: dict[tuple[str, str], FieldResolver] = {}
        self._jobs: dict[str, JobRunner] = {}
        self._hooks: dict[str, list[Hook]] = {}
        self._seeders: list[Seeder] = []

    def handles(self, *operation_ids: str) -> Callable[[Handler], Handler]:
        """Declare ``fn`` the handler of these operation ids."""

        def declare(fn: Handler) -> Handler:
            for oid in operation_ids:
                _add(self._handlers, oid, fn, f"{self.name}: two handlers for {oid}")
            return fn

        return declare

    def related(self, rtype: str, rel: str) -> Callable[[RelatedResolver], RelatedResolver]:
        """Declare ``fn`` the resolver of the computed relationship ``rtype.rel``."""

        def declare(fn: RelatedResolver) -> RelatedResolver:
            _add(self._related, (rtype, rel), fn, f"{self.name}: two resolvers for {rtype}.{rel}")
            return fn

        return declare

    def field(self, rtype: str, name: str) -> Callable[[FieldResolver], FieldResolver]:
        """Declare ``fn`` the resolver of the filter/sort field ``name`` of ``rtype`` resources."""

        def declare(fn: FieldResolver) -> FieldResolver:
            self.add_field(rtype, name, fn)
            return fn

        return declare

    def add_field(self, rtype: str, name: str, fn: FieldResolver) -> None:
        """``field`` without a decorator (for resolvers made by a function)."""
        _add(self._fields, (rtype, name), fn, f"{self.name}: two resolvers for field {rtype}.{name}")

    def add_related(self, rtype: str, rel: str, fn: RelatedResolver) -> None:
        """``related`` without a decorator."""
        self.related(rtype, rel)(fn)

    def job(self, *operation_ids: str) -> Callable[[JobRunner], JobRunner]:
        """Declare ``fn`` the runner of the jobs these operations make."""

        def declare(fn: JobRunner) -> JobRunner:
            for oid in operation_ids:
                _add(self._jobs, oid, fn, f"{self.name}: two job runners for {oid}")
            return fn

        return declare

    def on(self, event: str) -> Callable[[Hook], Hook]:
        """Declare ``fn`` a hook on ``event``."""

        def declare(fn: Hook) -> Hook:
            self._hooks.setdefault(event, []).append(fn)
            return fn

        return declare

    def seeder(self, fn: Seeder) -> Seeder:
        """Declare ``fn`` a seeder of demo data."""
        self._seeders.append(fn)
        return fn

    def build(self) -> Domain:
        return Domain(
            self.name,
            handlers=self._handlers,
            related=self._related,
            fields=self._fields,
            jobs=self._jobs,
            hooks={k: tuple(v) for k, v in self._hooks.items()},
            seeders=tuple(self._seeders),
        )


def _add(table: dict[Any, Any], key: Any, value: Any, clash: str) -> None:
    if key in table and table[key] is not value:
        raise ValueError(clash)
    table[key] = value


__all__ = [
    "Ctx",
    "Domain",
    "DomainBuilder",
    "FieldResolver",
    "Handler",
    "Hook",
    "JobRunner",
    "Linkage",
    "RelatedResolver",
    "Reply",
    "Resource",
    "Seeder",
    "Services",
]
