"""Relationships between stored resources: read them, link, unlink, and forget a deleted resource.

A relationship is stored on one side (``Resource.relationships``). ``related(context, res, rel)``
reads it from there; failing that, from a resolver a domain declares for ``(type, rel)`` (for
relationships that are computed, like a segment's profiles); failing that, by finding the resources
of the spec's target types that link back to ``res`` (``profile.lists`` from the lists' side).

Resolvers are called with the ``context`` given to ``related`` (the sandbox's ``Services``), so
this module knows nothing of what a context holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

from klaviyo_toolkit.clock import Clock

from ._store import Linkage, Resource, Store

C = TypeVar("C")
#: ``(context, resource) -> linkages`` of a computed relationship.
RelatedResolver = Callable[[C, Resource], list[Linkage]]


class Relations(Generic[C]):
    """Reads and edits relationships in one store (see module docstring)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        target_types: Callable[[str, str], list[str]],
        resolvers: Mapping[tuple[str, str], RelatedResolver[C]] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._target_types = target_types
        self._resolvers: Mapping[tuple[str, str], RelatedResolver[C]] = dict(resolvers or {})

    @property
    def resolvers(self) -> Mapping[tuple[str, str], RelatedResolver[C]]:
        """The computed relationships this instance knows (to build another over a scratch store)."""
        return self._resolvers

    def related(self, context: C, res: Resource, rel: str) -> list[Linkage]:
        """Linkages of ``res.rel``: stored on it, computed by a resolver, or found on the other side."""
        for name in {rel, rel.replace("_", "-"), rel.replace("-", "_")}:
            if name in res.relationships:
                return res.linked(name)
        resolver = self._resolvers.get((res.type, rel))
        if resolver is not None:
            return resolver(context, res)
        targets = self._target_types(res.type, rel) or [rel.rstrip("s").replace("_", "-")]
        found: list[Linkage] = []
        for ttype in targets:
            for other in self._store.iter(ttype):
                for value in other.relationships.values():
                    items = value if isinstance(value, list) else ([value] if value else [])
                    if (res.type, res.id) in items:
                        found.append((other.type, other.id))
                        break
        return found

    def link(self, parent: Resource, rel: str, links: Iterable[Linkage]) -> None:
        """Add ``links`` to ``parent.rel`` (those already there are kept once)."""
        current = parent.linked(rel)
        have = set(current)
        for link in links:
            if link not in have:
                current.append(link)
                have.add(link)
        parent.relationships[rel] = current
        parent.updated = self._clock.time()
        self._store.put(parent)

    def unlink(self, parent: Resource, rel: str, links: Iterable[Linkage]) -> None:
        drop = set(links)
        parent.relationships[rel] = [link for link in parent.linked(rel) if link not in drop]
        self._store.put(parent)

    def set_links(self, parent: Resource, rel: str, links: list[Linkage], *, many: bool = True) -> None:
        """Make ``links`` the whole of ``parent.rel`` (a to-one relationship takes the first or None)."""
        parent.relationships[rel] = list(links) if many else (links[0] if links else None)
        self._store.put(parent)

    def forget(self, res: Resource) -> None:
        """Delete a resource and every linkage to it."""
        store = self._store
        store.delete(res.type, res.id)
        target = (res.type, res.id)
        for rtype in store.types():
            for other in store.iter(rtype):
                changed = False
                for name, value in list(other.relationships.items()):
                    if isinstance(value, list) and target in value:
                        other.relationships[name] = [v for v in value if v != target]
                        changed = True
                    elif value == target:
                        other.relationships[name] = None
                        changed = True
                if changed:
                    store.put(other)
