"""One sandbox's registries, built from the tuple of domains it was given.

``Registry.build(domains)`` merges what the domains declare into fresh, read-only mappings owned by
one sandbox: two domains declaring the same handler, resolver or job runner is an error (name the
domain to drop); hooks and seeders run in the order of the tuple.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ._jsonapi import FieldResolver
from ._services import Hook
from .domain import Domain, Handler, JobRunner, RelatedResolver, Seeder


@dataclass(frozen=True)
class Registry:
    """Everything a sandbox's domains declare, merged (see module docstring)."""

    domains: tuple[Domain, ...]
    handlers: Mapping[str, Handler]
    related: Mapping[tuple[str, str], RelatedResolver]
    fields: Mapping[tuple[str, str], FieldResolver]
    jobs: Mapping[str, JobRunner]
    hooks: Mapping[str, tuple[Hook, ...]]
    seeders: tuple[Seeder, ...]

    @classmethod
    def build(cls, domains: Iterable[Domain]) -> Registry:
        domains = tuple(domains)
        names = [d.name for d in domains]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"domains given twice: {', '.join(repeated)}")
        hooks: dict[str, list[Hook]] = {}
        for domain in domains:
            for event, fns in domain.hooks.items():
                hooks.setdefault(event, []).extend(fns)
        return cls(
            domains=domains,
            handlers=_merge(domains, "handlers"),
            related=_merge(domains, "related"),
            fields=_merge(domains, "fields"),
            jobs=_merge(domains, "jobs"),
            hooks=MappingProxyType({event: tuple(fns) for event, fns in hooks.items()}),
            seeders=tuple(s for d in domains for s in d.seeders),
        )


def _merge(domains: tuple[Domain, ...], part: str) -> Mapping[Any, Any]:
    merged: dict[Any, Any] = {}
    owner: dict[Any, str] = {}
    for domain in domains:
        for key, value in getattr(domain, part).items():
            if key in merged:
                raise ValueError(f"{part} {key!r} is declared by both the {owner[key]!r} and {domain.name!r} domains")
            merged[key] = value
            owner[key] = domain.name
    return MappingProxyType(merged)
