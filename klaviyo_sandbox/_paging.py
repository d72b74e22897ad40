"""Cursor pages as Klaviyo's are: keyset cursors, bound to the query that made them.

Every collection is served in a total order (:class:`Order`): a ``sort`` parameter's field (missing
values last, whichever the direction), then the order items were stored in (ties stay as a
stable sort leaves them), then the id; without one, the collection's natural order
(what its domain orders it by first, such as an event's timestamp, then the order items were
stored in, then the id). A next link's cursor carries the key of the last item returned (those
values, never an offset): the next page is the items ordered strictly after that key, so items
deleted or added before it meanwhile, the last item itself among them, neither skip nor repeat
one (an offset would, once per change). A prev link's cursor carries the key of the item just
before the page, and that page is the items up to and including it.

A cursor is opaque and belongs to the query that made it: it carries a digest of that query
(``cursor_scope``: the endpoint, its path ids, filter, sort, page size and every other parameter
that changes the result set) and is refused with any other query, as is anything that is not a
cursor this API issued (always Klaviyo's 400 naming ``page[cursor]``, never a 500).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard, TypeVar
from urllib.parse import parse_qs, urlsplit

from ._jsonapi import bad_request

T = TypeVar("T")
Json = dict[str, Any]
#: One position of a key: a number, a string or None (a missing value, which orders last).
Atom = float | int | str | None
Key = list[Atom]
#: Parameters that change how items look, not which items a query returns (not part of a cursor's scope).
_PRESENTATION = ("fields[", "additional-fields[", "include")
_AFTER, _UPTO = "a", "u"  # a next page: items after the key; a prev page: items up to and including it


def _is_atom(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return not math.isnan(value)
    return value is None or isinstance(value, (int, str))


def natural_ranks(keys: list[Key]) -> list[tuple[Any, ...]]:
    """``_flat`` of natural-order keys (``[first?, ordinal, id]``: an ordinal is an int or None, an
    id a string), the same ranks made without a call per atom: a page ranks every item."""
    if keys and len(keys[0]) == 3:
        num = (int, float)
        return [
            ((0, f) if f.__class__ in num else _flat((f,))) + ((2, 0, 1, r) if n is None else (0, n, 1, r))
            for f, n, r in keys
        ]
    return [(2, 0, 1, r) if n is None else (0, n, 1, r) for n, r in keys]


def _flat(key: Sequence[Atom]) -> tuple[Any, ...]:
    """``key`` as one flat tuple that any other compares with: each position a tag (numbers, then
    strings, then None) and its value, so a number never meets a string."""
    out: list[Any] = []
    for atom in key:
        if atom is None:
            out += (2, 0)
        elif atom.__class__ is str:
            out += (1, atom)
        else:
            out += (0, atom)
    return tuple(out)


@dataclass(frozen=True)
class Order:
    """A total order of a collection: ``keys`` gives each item's key (a list of atoms, the id last, so
    no two items tie; all at once, as every page ranks the whole collection), the whole key ascending
    or, with ``descending``, descending; ``width`` is its length. (The keys order missing values last
    in either direction themselves.)"""

    keys: Callable[[Sequence[Any]], list[Key]]
    width: int
    descending: bool = False
    #: the keys' ranks, where a faster way than ``_flat`` for each is known (same values)
    ranks: Callable[[list[Key]], list[tuple[Any, ...]]] | None = None

    def rank(self, key: Sequence[Atom]) -> tuple[Any, ...]:
        """What items are compared by (ascending; ``page_of`` turns it round for a descending order)."""
        return _flat(key)

    def fits(self, key: Any) -> TypeGuard[Key]:
        """Whether ``key`` (read from a cursor) has this order's shape, so ``rank`` can compare it."""
        return isinstance(key, list) and len(key) == self.width and all(_is_atom(a) for a in key)


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: after ``key`` (a next link) or, for a prev link, up to and including it."""

    key: Key
    after: bool


@dataclass(frozen=True)
class Page:
    """One page of a collection, and the cursors of the pages after and before it (None: no link).
    ``first_next`` says the next link is the first page (a prev walk that ran out of items)."""

    items: list[Any]
    next: Cursor | None
    prev: Cursor | None
    first_next: bool = False


def page_of(items: Sequence[T], order: Order, size: int, cursor: Cursor | None) -> Page:
    """The page of ``items`` (in any order) that ``cursor`` points at, in ``order``.

    One pass ranks every item and keeps those on the cursor's side; a heap picks the page from them
    (no sort of the whole collection: a page of 100 from 30,000 events costs what ranking them does)."""
    keys = order.keys(items)
    ranks = order.ranks(keys) if order.ranks else [_flat(k) for k in keys]
    count, desc, at = len(items), order.descending, ranks.__getitem__
    first, last = (heapq.nlargest, heapq.nsmallest) if desc else (heapq.nsmallest, heapq.nlargest)
    forward = cursor is None or cursor.after
    if cursor is None:
        window: Sequence[int] = range(count)
    else:
        c = _flat(cursor.key)
        if cursor.after:  # strictly after the key, in the order
            window = [i for i, r in enumerate(ranks) if (r < c if desc else r > c)]
        else:  # up to and including it
            window = [i for i, r in enumerate(ranks) if (r >= c if desc else r <= c)]
    if forward:
        chosen = first(size + 1, window, key=at)
        more_after, more_before = len(chosen) > size, len(window) < count
        chosen = chosen[:size]
    else:
        chosen = last(size + 1, window, key=at)
        more_before, more_after = len(chosen) > size, len(window) < count
        chosen = chosen[:size][::-1]
    nxt = Cursor(keys[chosen[-1]], after=True) if chosen and more_after else None
    prev = None
    if more_before:
        if chosen:  # the item just before the page: the last of those ordered before its first item
            head = ranks[chosen[0]]
            before = [i for i, r in enumerate(ranks) if (r > head if desc else r < head)]
            prev = Cursor(keys[last(1, before, key=at)[0]], after=False)
        else:  # past the end: the page before is the one that ends with the cursor's key
            assert cursor is not None
            prev = Cursor(cursor.key, after=False)
    return Page([items[i] for i in chosen], nxt, prev, first_next=not forward and not chosen and count > 0)


# -- the cursor's text ----------------------------------------------------------------------------
def cursor_scope(operation_id: str, path_params: Mapping[str, str], params: Mapping[str, Any], size: int) -> str:
    """The digest a cursor is bound to: the endpoint and every parameter that changes its result set."""
    kept = sorted(
        (str(k), json.dumps(v, sort_keys=True, default=str))
        for k, v in params.items()
        if k not in ("page[cursor]", "page_cursor", "page[size]", "page_size") and not k.startswith(_PRESENTATION)
    )
    text = json.dumps([operation_id, sorted(path_params.items()), kept, size])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _encode(payload: Json) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def encode_cursor(cursor: Cursor, scope: str) -> str:
    return _encode({"q": scope, "k": cursor.key, "d": _AFTER if cursor.after else _UPTO})


def encode_offset_cursor(offset: int, scope: str) -> str:
    """The cursor of the page of a computed result (metric aggregates) that starts at ``offset``."""
    return _encode({"q": scope, "o": offset})


def _read(cursor: str, scope: str, pointer: str | None) -> tuple[Json, str, Json]:
    """A cursor's payload, the name it was given under and where (for errors); a 400 unless it is
    one this API issued for the query ``scope``."""
    where: Json = {"pointer": pointer} if pointer else {"parameter": "page[cursor]"}
    name = "page_cursor" if pointer else "page[cursor]"
    # Klaviyo's Python SDK passes what follows "page[cursor]" in a links URL, "=" included, and over
    # plain http (a local sandbox) the whole URL: both name the cursor of a link we issued.
    if "://" in cursor:
        query = parse_qs(urlsplit(cursor).query)
        cursor = (query.get("page[cursor]") or query.get("page_cursor") or [cursor])[0]
    cursor = cursor.lstrip("=")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded))
        issued_for = payload["q"]
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
        # OverflowError: a number like Infinity or 1e400 read as an int; RecursionError: JSON nested
        # thousands deep; TypeError: JSON that is no object.
        raise bad_request(
            f"{name} {cursor!r} is not a cursor this API issued; use links.next from a previous page.", **where
        ) from None
    if issued_for != scope:
        raise bad_request(
            f"{name} was issued for a different query (another endpoint, filter, sort, page size or "
            "parameters); a cursor is only valid with the query that returned it. Restart from the first "
            f"page (without {name}) and follow links.next.",
            **where,
        )
    return payload, name, where


def decode_cursor(cursor: str, scope: str, order: Order) -> Cursor:
    """The cursor of a ``page[cursor]`` issued for the query ``scope`` (paged in ``order``); a 400 otherwise."""
    payload, name, where = _read(cursor, scope, None)
    key, direction = payload.get("k"), payload.get("d")
    if direction not in (_AFTER, _UPTO) or not order.fits(key):
        raise bad_request(f"{name} is invalid; use links.next from a previous page.", **where)
    return Cursor(key, after=direction == _AFTER)


def decode_offset_cursor(cursor: str, scope: str, *, pointer: str | None = None) -> int:
    """The offset of a cursor holding one (``{"o": offset, "q": scope}``, for computed results such as
    metric aggregates, which have no items to key) issued for the query ``scope``; a 400 naming
    ``page[cursor]`` (or ``pointer``, for a cursor in a body) otherwise."""
    payload, name, where = _read(cursor, scope, pointer)
    offset = payload.get("o")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise bad_request(f"{name} is invalid; use links.next from a previous page.", **where)
    return offset
