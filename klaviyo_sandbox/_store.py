"""The sandbox's state: JSON:API resources by type, plus small named values, in memory or SQLite.

Every resource is stored the same way (type, id, attributes, relationships, private data), which
lets one generic engine serve all 345 operations; domain handlers add meaning on top. With a
``path`` the state is loaded from and written through to a SQLite file (changed rows are flushed
at the end of each request), so ``personas sandbox serve --sandbox-state FILE`` survives a restart.
A file is held by one process at a time (:class:`StateInUse` for another): each keeps the whole state
in memory and writes back what it changed, so two at once would each miss the other's writes.
"""

from __future__ import annotations

import copy
import json
import os
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

Json = dict[str, Any]
Linkage = tuple[str, str]
RelValue = list[Linkage] | Linkage | None

_ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_SHORT_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
#: Types whose Klaviyo ids are 26-character ULIDs; others get 6-character ids like "Y6nRLr".
ULID_TYPES = {
    "profile",
    "event",
    "campaign",
    "campaign-message",
    "push-token",
    "conversation",
    "review",
    "data-privacy-deletion-job",
}
#: Indexed attributes matched without regard to case: only email addresses, as Klaviyo matches them.
CASE_INSENSITIVE_ATTRIBUTES = frozenset({"email"})


@dataclass
class Resource:
    """One stored JSON:API resource. ``private`` holds sandbox-only data never rendered."""

    type: str
    id: str
    attributes: Json = field(default_factory=dict)
    relationships: dict[str, RelValue] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0
    private: Json = field(default_factory=dict)

    def to_json(self) -> Json:
        rels: Json = {}
        for name, value in self.relationships.items():
            rels[name] = [list(v) for v in value] if isinstance(value, list) else (list(value) if value else None)
        return {
            "type": self.type,
            "id": self.id,
            "attributes": self.attributes,
            "relationships": rels,
            "created": self.created,
            "updated": self.updated,
            "private": self.private,
        }

    @classmethod
    def from_json(cls, data: Json) -> Resource:
        rels: dict[str, RelValue] = {}
        for name, value in (data.get("relationships") or {}).items():
            if isinstance(value, list) and value and isinstance(value[0], list):
                rels[name] = [(str(t), str(i)) for t, i in value]
            elif isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                rels[name] = (value[0], value[1])
            elif isinstance(value, list):
                rels[name] = []
            else:
                rels[name] = None
        return cls(
            data["type"],
            data["id"],
            data.get("attributes") or {},
            rels,
            float(data.get("created", 0)),
            float(data.get("updated", 0)),
            data.get("private") or {},
        )

    def linked(self, name: str) -> list[Linkage]:
        value = self.relationships.get(name)
        if value is None:
            return []
        return list(value) if isinstance(value, list) else [value]


_ODD = object()  # a resource a filter may match on <rel>_id whatever it links to (see ``_LinkIndex.key``)


class _LinkIndex:
    """Resource ids by the id their to-one relationship ``rel`` names; each id's key is kept, so a
    resource changed in place before ``put`` is taken out from under the target it had."""

    def __init__(self, rel: str) -> None:
        self.rel = rel
        self.by_target: dict[str, dict[str, None]] = {}
        self.keys: dict[str, Any] = {}
        self.odd: dict[str, None] = {}

    def key(self, res: Resource) -> Any:
        """The id ``<rel>_id`` reads as for ``res`` (``Fields.value``); ``_ODD`` where it reads
        something else (an attribute of that name, a list); None where it links nothing."""
        if f"{self.rel}_id" in res.attributes:
            return _ODD
        value = res.relationships.get(self.rel)
        if value is None:
            return None
        return value[1] if isinstance(value, tuple) and len(value) == 2 else _ODD

    def add(self, res: Resource) -> None:
        self.discard(res.id)
        key = self.key(res)
        self.keys[res.id] = key
        if key is _ODD:
            self.odd[res.id] = None
        elif key is not None:
            self.by_target.setdefault(key, {})[res.id] = None

    def discard(self, rid: str) -> None:
        key = self.keys.pop(rid, None)
        if key is _ODD:
            self.odd.pop(rid, None)
        elif key is not None:
            self.by_target.get(key, {}).pop(rid, None)


class StateInUse(RuntimeError):
    """The state file is held by another process (see the module docstring); nothing was opened."""


def _hold(path: str) -> Any:
    """An exclusive ``flock`` on ``<path>.lock`` for this process, kept until :meth:`Store.close` (or
    the process ends, killed too), with who holds it written inside; :class:`StateInUse` if another
    process holds it. None where there is no ``flock`` (Windows): not guarded there."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    lock = Path(f"{path}.lock")
    handle = open(lock, "a+", encoding="utf-8")  # noqa: SIM115 - kept open while the state is held
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StateInUse(
            f"the sandbox state {path} is in use by {holder}; one process at a time keeps it whole (each holds "
            f"the state in memory and writes back its changes): wait for it to end, or serve it "
            f"(personas sandbox serve --sandbox-state {path}) and point every run at that server "
            f"(KLAVIYO_BASE_URL, KLAVIYO_API_KEY)"
        ) from None
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:3]]) if sys.argv and sys.argv[0] else "python"
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} ({command})")
    handle.flush()
    return handle


class Store:
    """Resources and named values; thread-safe through ``lock`` (held per request by the app)."""

    def __init__(self, path: str | None = None, seed: int = 0) -> None:
        self.path = path
        self.lock = threading.RLock()
        self._by_type: dict[str, dict[str, Resource]] = {}
        #: (type, id) -> when it was stored, counted from 0: the order ``all`` lists resources in.
        self._ordinals: dict[tuple[str, str], int] = {}
        self._stored_count = 0  # resources ever stored: the next ordinal (never reused)
        self._values: Json = {}
        self._rng = random.Random(seed)
        self._indexes: dict[tuple[str, str], dict[Any, str]] = {}
        self._links: dict[tuple[str, str], _LinkIndex] = {}  # built on first use (``linking``), never saved
        self._dirty: set[tuple[str, str]] = set()
        self._deleted: set[tuple[str, str]] = set()
        self._dirty_values: set[str] = set()
        self._db: sqlite3.Connection | None = None
        self._held: Any = None
        if path:
            self._held = _hold(path)
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS resources (type TEXT, id TEXT, body TEXT, PRIMARY KEY (type, id))"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, body TEXT)")
            self._db.commit()
            self._load()

    # -- persistence -----------------------------------------------------------------------
    def _load(self) -> None:
        assert self._db is not None
        for (body,) in self._db.execute("SELECT body FROM resources ORDER BY rowid"):
            res = Resource.from_json(json.loads(body))
            self._by_type.setdefault(res.type, {})[res.id] = res
            self._ordinals[(res.type, res.id)] = self._next_ordinal()
        for key, body in self._db.execute("SELECT key, body FROM kv"):
            self._values[key] = json.loads(body)
        state = self._values.get("_rng")
        if state:
            self._rng.setstate((state[0], tuple(state[1]), state[2]))

    @property
    def persistent(self) -> bool:
        return self._db is not None

    def is_empty(self) -> bool:
        return not any(self._by_type.values())

    def flush(self) -> None:
        """Write changed rows to SQLite (no-op in memory)."""
        if self._db is None or not (self._dirty or self._deleted or self._dirty_values):
            return
        with self.lock:
            rng_state = self._rng.getstate()
            self._values["_rng"] = [rng_state[0], list(rng_state[1]), rng_state[2]]
            self._dirty_values.add("_rng")
            cur = self._db.cursor()
            for rtype, rid in self._deleted:
                cur.execute("DELETE FROM resources WHERE type=? AND id=?", (rtype, rid))
            for rtype, rid in self._dirty:
                res = self._by_type.get(rtype, {}).get(rid)
                if res is not None:
                    cur.execute(
                        "INSERT OR REPLACE INTO resources (type, id, body) VALUES (?, ?, ?)",
                        (rtype, rid, json.dumps(res.to_json())),
                    )
            for key in self._dirty_values:
                cur.execute(
                    "INSERT OR REPLACE INTO kv (key, body) VALUES (?, ?)", (key, json.dumps(self._values.get(key)))
                )
            self._db.commit()
            self._dirty.clear()
            self._deleted.clear()
            self._dirty_values.clear()

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._held is not None:
            self._held.close()  # the flock goes with it
            self._held = None

    def clear(self) -> None:
        """Forget everything (``/sandbox/reset``)."""
        with self.lock:
            for rtype, items in self._by_type.items():
                self._deleted.update((rtype, rid) for rid in items)
            self._by_type.clear()
            self._ordinals.clear()
            self._dirty.clear()
            self._dirty_values.update(self._values)
            self._values = {}
            self._indexes.clear()
            self._links.clear()
            if self._db is not None:
                self._db.execute("DELETE FROM resources")
                self._db.execute("DELETE FROM kv")
                self._db.commit()
                self._deleted.clear()
                self._dirty_values.clear()

    # -- ids -------------------------------------------------------------------------------
    def reseed(self, seed: int) -> None:
        self._rng.seed(seed)

    @property
    def rng(self) -> random.Random:
        return self._rng

    def new_id(self, rtype: str, now: float | None = None) -> str:
        if rtype in ULID_TYPES or rtype.endswith("-job"):
            ms = int((now if now is not None else time.time()) * 1000)
            head = ""
            for _ in range(10):
                head = _ULID_ALPHABET[ms % 32] + head
                ms //= 32
            tail = "".join(self._rng.choice(_ULID_ALPHABET) for _ in range(16))
            return head + tail
        while True:
            candidate = "".join(self._rng.choice(_SHORT_ALPHABET) for _ in range(6))
            if candidate not in self._by_type.get(rtype, {}):
                return candidate

    # -- resources -------------------------------------------------------------------------
    def get(self, rtype: str, rid: str) -> Resource | None:
        return self._by_type.get(rtype, {}).get(rid)

    def all(self, rtype: str) -> list[Resource]:
        return list(self._by_type.get(rtype, {}).values())

    def iter(self, rtype: str) -> Iterator[Resource]:
        return iter(list(self._by_type.get(rtype, {}).values()))

    def count(self, rtype: str) -> int:
        return len(self._by_type.get(rtype, {}))

    def _next_ordinal(self) -> int:
        self._stored_count += 1
        return self._stored_count - 1

    def ordinals(self, keys: Iterable[tuple[str, str]]) -> list[int | None]:
        """Where each ``(type, id)`` stands in the order resources were first stored (the order of
        ``all``), as a number that never changes while it is stored; None for one not stored. Cursor
        pages in that order continue after a number, which deletions and later writes do not move."""
        return [self._ordinals.get(key) for key in keys]

    def types(self) -> list[str]:
        return [t for t, items in self._by_type.items() if items]

    def put(self, res: Resource) -> Resource:
        with self.lock:
            old = self._by_type.get(res.type, {}).get(res.id)
            if old is None:
                self._ordinals[(res.type, res.id)] = self._next_ordinal()
            self._unindex(old)
            self._by_type.setdefault(res.type, {})[res.id] = res
            self._index(res)
            self._dirty.add((res.type, res.id))
            self._deleted.discard((res.type, res.id))
        return res

    def touch(self, res: Resource) -> None:
        """Mark a resource changed in place (re-indexes it)."""
        self.put(res)

    def delete(self, rtype: str, rid: str) -> Resource | None:
        with self.lock:
            res = self._by_type.get(rtype, {}).pop(rid, None)
            if res is not None:
                self._ordinals.pop((rtype, rid), None)
                self._unindex(res)
                self._deleted.add((rtype, rid))
                self._dirty.discard((rtype, rid))
            return res

    # -- secondary indexes (exact match on an attribute) -----------------------------------
    def add_index(self, rtype: str, attr: str) -> None:
        key = (rtype, attr)
        if key in self._indexes:
            return
        index: dict[Any, str] = {}
        for res in self._by_type.get(rtype, {}).values():
            value = res.attributes.get(attr)
            if value is not None:
                index[self._norm(attr, value)] = res.id
        self._indexes[key] = index

    @staticmethod
    def _norm(attr: str, value: Any) -> Any:
        """The index key of ``value``: emails match without regard to case (Klaviyo's only
        case-insensitive identifier); every other string (external_id, metric names, push tokens,
        ...) is matched exactly."""
        return value.lower() if isinstance(value, str) and attr in CASE_INSENSITIVE_ATTRIBUTES else value

    def find(self, rtype: str, attr: str, value: Any) -> Resource | None:
        if value is None:
            return None
        self.add_index(rtype, attr)
        index = self._indexes[(rtype, attr)]
        rid = index.get(self._norm(attr, value))
        res = self.get(rtype, rid) if rid else None
        if res is not None and self._norm(attr, res.attributes.get(attr)) != self._norm(attr, value):
            # Stale entry: the resource was changed in place before ``put`` (its old value was
            # never unindexed). Drop it so the old value no longer finds the resource.
            del index[self._norm(attr, value)]
            return None
        return res

    # -- who links to whom (the events of a profile or of a metric) ----------------------------
    def linking(self, rtype: str, rel: str, target: str) -> list[Resource]:
        """The resources of ``rtype`` whose to-one ``rel`` relationship names ``target``, and any whose
        ``<rel>_id`` a filter reads elsewhere (an attribute of that name, a to-many ``rel``): every one
        ``equals(<rel>_id,"target")`` can match, a few of them, for a filter to run over instead of all
        (``get_events`` by profile scanned 30,000 events of the demo account, 0.14 s a call)."""
        with self.lock:
            index = self._links.get((rtype, rel))
            if index is None:
                index = self._links[(rtype, rel)] = _LinkIndex(rel)
                for res in self._by_type.get(rtype, {}).values():
                    index.add(res)
            stored = self._by_type.get(rtype, {})
            ids = [*index.by_target.get(target, ()), *index.odd]
            return [stored[rid] for rid in ids if rid in stored]

    def _index(self, res: Resource | None) -> None:
        if res is None:
            return
        for (rtype, _), links in self._links.items():
            if rtype == res.type:
                links.add(res)
        for (rtype, attr), index in self._indexes.items():
            if rtype == res.type:
                value = res.attributes.get(attr)
                if value is not None:
                    index[self._norm(attr, value)] = res.id

    def _unindex(self, res: Resource | None) -> None:
        if res is None:
            return
        for (rtype, _), links in self._links.items():
            if rtype == res.type:
                links.discard(res.id)
        for (rtype, attr), index in self._indexes.items():
            if rtype == res.type:
                value = res.attributes.get(attr)
                if value is not None and index.get(self._norm(attr, value)) == res.id:
                    del index[self._norm(attr, value)]

    # -- named values (keys, oauth grants, counters, deferred work) ------------------------
    def value(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def set_value(self, key: str, value: Any) -> None:
        with self.lock:
            self._values[key] = value
            self._dirty_values.add(key)

    def mutable(self, key: str, factory: Any) -> Any:
        """A stored value to change in place (marked dirty); created from ``factory()`` if absent."""
        with self.lock:
            if key not in self._values:
                self._values[key] = factory()
            self._dirty_values.add(key)
            return self._values[key]

    def snapshot(self) -> Json:
        """Everything, as JSON-able data (for tests and ``/sandbox/state``)."""
        return {
            "resources": {t: [r.to_json() for r in items.values()] for t, items in self._by_type.items()},
            "values": copy.deepcopy({k: v for k, v in self._values.items() if not k.startswith("_")}),
        }

    def is_fresh(self) -> bool:
        """Nothing was ever stored in it (no resource, no value): what a seeder starts from."""
        return self._stored_count == 0 and not self._values

    def state(self) -> tuple[Any, ...]:
        """Everything, as plain data that ``marshal`` writes (``domains.demo.snapshot``): resources by
        type with their fields in order, ordinals, named values, the id generator's state and the
        indexes; :meth:`restore` takes it back."""
        names = [f.name for f in fields(Resource)][2:]
        resources = {t: [(r.id, *(getattr(r, n) for n in names)) for r in items.values()]
                     for t, items in self._by_type.items()}  # fmt: skip
        return (resources, list(self._ordinals.items()), self._stored_count, self._values, self._rng.getstate(),
                list(self._indexes.items()))  # fmt: skip

    def restore(self, state: tuple[Any, ...]) -> None:
        """Become what :meth:`state` was taken from (a fresh store only); all of it is written at the
        next :meth:`flush` of a store kept in a file."""
        resources, ordinals, count, values, rng, indexes = state
        with self.lock:
            if not self.is_fresh():
                raise ValueError("only a fresh store is restored from a state")
            # all of it read first: a state that is not one leaves the store as it was, still fresh
            by_type = {t: {row[0]: Resource(t, *row) for row in rows} for t, rows in resources.items()}
            ordinal = {tuple(k): int(v) for k, v in ordinals}
            index = {tuple(k): dict(v) for k, v in indexes}
            if not isinstance(values, dict):
                raise ValueError("a state's values are a mapping")
            self._rng.setstate(rng)
            self._by_type, self._ordinals, self._stored_count = by_type, ordinal, int(count)
            self._values, self._indexes = values, index
            self._links = {}
            self._dirty, self._dirty_values = set(ordinal), set(values)

    def load_resources(self, items: Iterable[Resource]) -> None:
        for res in items:
            self.put(res)
