"""A throwaway view of a store, for checking a request without changing anything.

Writes Klaviyo applies asynchronously (an event, a merge, a client subscription) are answered at
once with 202 and applied later (see ``_pipeline.py``). Whether such a request is valid can depend
on state (an unknown profile id is a 400), so the sandbox first runs it against a ``ScratchStore``:
reads see the real store (as copies, so handlers may change them freely), writes stay in the
scratch view, and the view is then dropped. Its random generator starts from the store's state
without advancing it, so the replay later makes the very ids the check made.

Example::

    scratch = ScratchStore(store)
    profile = scratch.get("profile", pid)      # a copy
    profile.attributes["first_name"] = "Ada"
    scratch.put(profile)                       # only the scratch view changes
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any

from ._store import Resource, Store

_DELETED = None


class ScratchStore(Store):
    """Reads through to ``base`` (copies), keeps writes to itself; never persisted (see module docstring)."""

    def __init__(self, base: Store) -> None:
        super().__init__(None)
        self._base = base
        self.lock = base.lock
        self._scratch: dict[tuple[str, str], Resource | None] = {}
        self._scratch_values: dict[str, Any] = {}
        self._rng.setstate(base.rng.getstate())  # the same ids as the real store would make next

    # -- resources -------------------------------------------------------------------------
    def get(self, rtype: str, rid: str) -> Resource | None:
        key = (rtype, rid)
        if key in self._scratch:
            return self._scratch[key]
        res = self._base.get(rtype, rid)
        if res is None:
            return None
        mine = copy.deepcopy(res)
        self._scratch[key] = mine
        return mine

    def _ids(self, rtype: str) -> list[str]:
        ids = dict.fromkeys(r.id for r in self._base.iter(rtype))
        for (t, rid), res in self._scratch.items():
            if t == rtype:
                if res is _DELETED:
                    ids.pop(rid, None)
                else:
                    ids.setdefault(rid, None)
        return list(ids)

    def all(self, rtype: str) -> list[Resource]:
        return [r for r in (self.get(rtype, rid) for rid in self._ids(rtype)) if r is not None]

    def iter(self, rtype: str) -> Iterator[Resource]:
        return iter(self.all(rtype))

    def count(self, rtype: str) -> int:
        return len(self._ids(rtype))

    def types(self) -> list[str]:
        found = dict.fromkeys(self._base.types())
        found.update(dict.fromkeys(t for (t, _), res in self._scratch.items() if res is not None))
        return [t for t in found if self._ids(t)]

    def put(self, res: Resource) -> Resource:
        self._scratch[(res.type, res.id)] = res
        return res

    def delete(self, rtype: str, rid: str) -> Resource | None:
        res = self.get(rtype, rid)
        self._scratch[(rtype, rid)] = _DELETED
        return res

    def ordinals(self, keys: Iterable[tuple[str, str]]) -> list[int | None]:
        """The real store's (a resource only this view holds, or deleted in it, has none)."""
        keys = list(keys)
        stored = self._base.ordinals(keys)
        return [None if self._scratch.get(k) is _DELETED else n for k, n in zip(keys, stored, strict=True)]

    def find(self, rtype: str, attr: str, value: Any) -> Resource | None:
        if value is None:
            return None
        wanted = self._norm(attr, value)
        for (t, _), res in self._scratch.items():
            if t == rtype and res is not None and self._norm(attr, res.attributes.get(attr)) == wanted:
                return res
        found = self._base.find(rtype, attr, value)
        if found is None or (rtype, found.id) in self._scratch:
            return None
        return self.get(rtype, found.id)

    def add_index(self, rtype: str, attr: str) -> None:
        return None

    def is_empty(self) -> bool:
        return self._base.is_empty() and not any(r is not None for r in self._scratch.values())

    # -- ids -------------------------------------------------------------------------------
    def new_id(self, rtype: str, now: float | None = None) -> str:
        while True:
            rid = super().new_id(rtype, now)
            if self.get(rtype, rid) is None:
                return rid

    # -- named values ----------------------------------------------------------------------
    def value(self, key: str, default: Any = None) -> Any:
        if key in self._scratch_values:
            return self._scratch_values[key]
        return copy.deepcopy(self._base.value(key, default))

    def set_value(self, key: str, value: Any) -> None:
        self._scratch_values[key] = value

    def mutable(self, key: str, factory: Any) -> Any:
        if key not in self._scratch_values:
            current = self._base.value(key)
            self._scratch_values[key] = factory() if current is None else copy.deepcopy(current)
        return self._scratch_values[key]

    # -- persistence: none -----------------------------------------------------------------
    @property
    def persistent(self) -> bool:
        return False

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def clear(self) -> None:
        self._scratch.clear()
        self._scratch_values.clear()
