"""The operation catalog: one record per Klaviyo operation, generated from the OpenAPI spec.

The records live in ``catalog/data/*.json`` (written by :mod:`klaviyo_toolkit.catalog.generate`) and
are read on first use, so importing the package stays cheap; each operation's arguments (four fifths
of the bytes) are in a file of their own, read when an argument is first needed. Everything that
needs to know about an operation (client, tools, sandbox) reads it here; there is no second registry.

Example::

    from klaviyo_toolkit.catalog import load_catalog
    op = load_catalog().get("create_campaign_send_job")   # an alias
    op.operation_id, op.method, op.path, op.scopes         # ('send_campaign', 'POST', ...)
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..errors import UnknownOperationError

__all__ = ["Catalog", "Operation", "RateLimitSpec", "RateLimitTier", "load_catalog", "load_schemas"]

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RateLimitSpec:
    """Klaviyo's published limits for one operation: per second, per minute, per day."""

    burst: int
    steady: int
    daily: int | None = None

    def scaled(self, factor: float) -> RateLimitSpec:
        """The same limits multiplied by ``factor`` (never below one call)."""
        return RateLimitSpec(
            max(1, round(self.burst * factor)),
            max(1, round(self.steady * factor)),
            None if self.daily is None else max(1, round(self.daily * factor)),
        )

    def __str__(self) -> str:
        text = f"{self.burst}/s burst, {self.steady}/min steady"
        return text + (f", {self.daily}/day" if self.daily else "")


@dataclass(frozen=True, slots=True)
class RateLimitTier:
    """Lower limits for calls that use a parameter value (``additional-fields[profile]=predictive_analytics``).

    Klaviyo documents these per operation ("Rate limits when using the ... parameter"); such a call
    counts against the tier's limits instead of the operation's.
    """

    param: str
    value: str
    limits: RateLimitSpec

    def applies(self, query: Mapping[str, str]) -> bool:
        """Whether a request with this query uses the tier (``include=list`` also matches ``lists``)."""
        given = query.get(self.param)
        if given is None:
            return False
        items = {item.strip() for item in str(given).split(",")}
        return self.value in items or f"{self.value}s" in items

    @property
    def name(self) -> str:
        return f"{self.param}={self.value}"


class Operation:
    """A read-only view of one catalog record."""

    __slots__ = ("_r",)

    def __init__(self, record: Mapping[str, Any]) -> None:
        self._r = record

    @property
    def record(self) -> Mapping[str, Any]:
        """The raw generated record."""
        return self._r

    @property
    def operation_id(self) -> str:
        return str(self._r["operation_id"])

    @property
    def name(self) -> str:
        """The tool name: the operation id, shortened only when over 64 characters."""
        return str(self._r.get("name") or self._r["operation_id"])

    @property
    def method(self) -> str:
        return str(self._r["method"])

    @property
    def path(self) -> str:
        return str(self._r["path"])

    @property
    def tag(self) -> str:
        return str(self._r["tag"])

    @property
    def summary(self) -> str:
        return str(self._r["summary"])

    @property
    def description(self) -> str:
        return str(self._r["description"])

    @property
    def stage(self) -> str:
        return str(self._r["stage"])

    @property
    def revision(self) -> str:
        return str(self._r["revision"])

    @property
    def read_only(self) -> bool:
        return bool(self._r["read_only"])

    @property
    def destructive(self) -> bool:
        return bool(self._r["destructive"])

    @property
    def max_items(self) -> int | None:
        """The most items one call accepts in ``max_items_arg`` (None: no limit stated)."""
        value = self._r.get("max_items")
        return None if value is None else int(value)

    @property
    def max_items_arg(self) -> str | None:
        """The argument that ``max_items`` applies to."""
        value = self._r.get("max_items_arg")
        return None if value is None else str(value)

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self._r["scopes"])

    @property
    def aliases(self) -> tuple[str, ...]:
        return tuple(self._r["aliases"])

    @property
    def beta(self) -> bool:
        return self.stage == "beta"

    @property
    def rate_limit(self) -> RateLimitSpec:
        rl = self._r["rate_limit"]
        return RateLimitSpec(int(rl.get("burst", 1)), int(rl.get("steady", 60)), rl.get("daily"))

    @property
    def rate_limit_tiers(self) -> tuple[RateLimitTier, ...]:
        """Special, lower limits for calls with a particular parameter value (see ``RateLimitTier``)."""
        return tuple(
            RateLimitTier(str(t["param"]), str(t["value"]), RateLimitSpec(int(t["burst"]), int(t["steady"])))
            for t in self._r.get("rate_limit_tiers") or ()
        )

    @property
    def revision_required(self) -> bool:
        """Whether the spec makes the ``revision`` header required (it defaults to ``revision`` otherwise)."""
        return bool(self._r.get("revision_required", True))

    @property
    def max_payload_bytes(self) -> int | None:
        """The largest request body Klaviyo documents for this operation (None: none stated)."""
        value = self._r.get("max_payload_bytes")
        return None if value is None else int(value)

    @property
    def max_item_payload_bytes(self) -> int | None:
        """The largest single item (profile, record) of a bulk body Klaviyo documents (None: none stated)."""
        value = self._r.get("max_item_payload_bytes")
        return None if value is None else int(value)

    @property
    def max_page_size(self) -> int | None:
        """The most items a page of this listing holds, as its description states ("Returns a maximum
        of 200 events per page"), whatever a larger ``page[size]`` asks (None: none stated)."""
        value = self._r.get("max_page_size")
        return None if value is None else int(value)

    @property
    def max_pending_jobs(self) -> int | None:
        """The most jobs of this operation that may be pending (queued or processing) at once, as its
        description states ("Max number of jobs queued at once we allow for is 100"; None: none stated)."""
        value = self._r.get("max_pending_jobs")
        return None if value is None else int(value)

    @property
    def filters(self) -> Mapping[str, Json]:
        return self._r.get("filters") or {}

    @property
    def args(self) -> list[Json]:
        """The argument shapes (from the stage's arguments file, read on first use; a record that
        carries its own ``args`` keeps them)."""
        own = self._r.get("args")
        if own is not None:
            return list(own)
        return list(_arguments(self.stage)[self.operation_id])

    @property
    def body(self) -> Json | None:
        return self._r.get("body")

    @property
    def client_side(self) -> bool:
        """Client API (``/client/``): authenticated by public key (``company_id``), not a private key."""
        return self.path.startswith("/client/")

    def __repr__(self) -> str:
        return f"<Operation {self.operation_id} {self.method} {self.path}>"


class Catalog:
    """Every operation of one or more stages, addressable by operation id or alias."""

    def __init__(self, records: list[Mapping[str, Any]], revision: str) -> None:
        self.revision = revision
        self._ops: dict[str, Operation] = {}
        self._aliases: dict[str, str] = {}
        for rec in records:
            op = Operation(rec)
            self._ops[op.operation_id] = op
        for op in self._ops.values():
            if op.name != op.operation_id:
                self._aliases[op.name] = op.operation_id
            for alias in op.aliases:
                if alias not in self._ops:
                    self._aliases.setdefault(alias, op.operation_id)

    def __len__(self) -> int:
        return len(self._ops)

    def __iter__(self) -> Iterator[Operation]:
        return iter(self._ops.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._ops or name in self._aliases)

    def resolve(self, name: str) -> str:
        """The operation id for an id or alias; raises UnknownOperationError with suggestions."""
        if name in self._ops:
            return name
        if name in self._aliases:
            return self._aliases[name]
        if _is_beta(name):
            raise UnknownOperationError(
                name,
                hint="It is a beta operation, off unless asked for: pass include_beta=True "
                "(KlaviyoToolkit, KlaviyoClient or load_catalog).",
            )
        pool = list(self._ops) + list(self._aliases)
        raise UnknownOperationError(name, difflib.get_close_matches(name, pool, n=3, cutoff=0.6))

    def get(self, name: str) -> Operation:
        return self._ops[self.resolve(name)]

    def aliases(self) -> Mapping[str, str]:
        return dict(self._aliases)

    def search(self, query: str, limit: int = 10) -> list[Operation]:
        """Operations whose id, summary, tag or description best match the words of ``query``."""
        words = [w for w in query.lower().replace("_", " ").split() if w]
        scored: list[tuple[int, str, Operation]] = []
        for op in self._ops.values():
            hay_id = op.operation_id.replace("_", " ")
            hay = f"{hay_id} {op.summary} {op.tag} {op.description} {' '.join(op.aliases)}".lower()
            score = sum(3 if w in hay_id else 1 for w in words if w in hay)
            if score:
                scored.append((-score, op.operation_id, op))
        scored.sort(key=lambda t: (t[0], len(t[1])))
        return [op for _, _, op in scored[:limit]]


def _read(name: str) -> Json:
    text = resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8")
    data: Json = json.loads(text)
    return data


@functools.cache
def _stage(stage: str) -> Json:
    return _read(f"{stage}.operations.json")


def _is_beta(name: str) -> bool:
    """Whether ``name`` is a beta operation's id or alias (so a stable-only catalog can say so)."""
    return name in _beta_names()


@functools.cache
def _beta_names() -> frozenset[str]:
    names: set[str] = set()
    for rec in _stage("beta")["operations"]:
        names.update((str(rec["operation_id"]), str(rec.get("name") or rec["operation_id"])))
        names.update(str(a) for a in rec.get("aliases") or ())
    return frozenset(names)


@functools.cache
def _arguments(stage: str) -> Mapping[str, list[Json]]:
    """Each operation's arguments, by operation id (a file of its own: most of the catalog's bytes)."""
    arguments: Mapping[str, list[Json]] = _read(f"{stage}.arguments.json")["arguments"]
    return arguments


@functools.cache
def load_catalog(include_beta: bool = False) -> Catalog:
    """The catalog of stable operations, plus beta ones when ``include_beta`` (cached)."""
    stable = _stage("stable")
    records = list(stable["operations"])
    if include_beta:
        records += _stage("beta")["operations"]
    return Catalog(records, stable["revision"])


@functools.cache
def load_schemas(stage: str = "stable") -> Json:
    """JSON Schema ``$defs`` for request/response validation (used by the sandbox and tests)."""
    return _read(f"{stage}.schemas.json")
