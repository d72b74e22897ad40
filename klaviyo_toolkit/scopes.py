"""Klaviyo's OAuth and API-key scopes: which exist, and which a grant covers.

The known scopes are the ones the catalog's operations need (``x-klaviyo-scopes``). A grant of
``<resource>:write`` covers ``<resource>:read`` too (as Klaviyo's "full access" does), and ``*`` stands
for a key with every scope. That is the rule for a *grant* (a key's or an OAuth connection's scopes);
a toolkit's or persona's own scopes are a deny-by-default list read exactly
(``KlaviyoToolkit.missing_scopes``): one listing only ``profiles:write`` may not call ``get_profiles``.

Example::

    parse_scopes("lists:read, profiles:write")          # ('lists:read', 'profiles:write')
    parse_scopes("campaign:read")                       # UnknownScopeError: ... did you mean 'campaigns:read'?
    narrow(granted=["lists:write"], wanted=["lists:read", "profiles:read"])
    # (('lists:read',), ('profiles:read',))
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Collection, Iterable

from .errors import UnknownScopeError

__all__ = ["ALL_SCOPES", "covers", "known_scopes", "narrow", "parse_scopes"]

#: The scopes value of a grant with every scope (a full-access private key).
ALL_SCOPES = "*"


@functools.lru_cache(maxsize=2)
def known_scopes(include_beta: bool = True) -> frozenset[str]:
    """Every scope some catalog operation needs (beta operations included unless asked not to)."""
    from .catalog import load_catalog

    return frozenset(s for op in load_catalog(include_beta) for s in op.scopes)


def parse_scopes(value: str | Iterable[str]) -> tuple[str, ...]:
    """Scopes from text (comma- or space-separated) or a list: checked, de-duplicated, in order.

    Raises:
        UnknownScopeError: one is not a Klaviyo scope (the closest known one is suggested).
    """
    items = re.split(r"[\s,]+", value) if isinstance(value, str) else list(value)
    known = known_scopes()
    out: list[str] = []
    for raw in items:
        scope = raw.strip()
        if not scope or scope in out:
            continue
        if scope not in known:
            close = difflib.get_close_matches(scope, sorted(known), n=1, cutoff=0.6)
            raise UnknownScopeError(scope, close[0] if close else None)
        out.append(scope)
    return tuple(out)


def covers(granted: Collection[str], scope: str) -> bool:
    """True when a grant of ``granted`` allows what ``scope`` allows."""
    if ALL_SCOPES in granted or scope in granted:
        return True
    resource, _, level = scope.partition(":")
    return level == "read" and f"{resource}:write" in granted


def narrow(granted: Collection[str], wanted: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(effective, missing)``: the wanted scopes the grant covers, and the ones it does not."""
    effective: list[str] = []
    missing: list[str] = []
    for scope in wanted:
        (effective if covers(granted, scope) else missing).append(scope)
    return tuple(effective), tuple(missing)
