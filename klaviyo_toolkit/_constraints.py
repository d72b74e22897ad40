"""Cross-field rules the spec states only in prose, checked before a request is sent.

The OpenAPI schemas cannot say "exactly one of email, phone_number or id"; Klaviyo's descriptions
do. Each rule here quotes the operation's description it comes from, so it can be checked against
the spec when the revision changes. Per-field rules (types, enums, emails, E.164 phones, item
limits) come from the generated catalog, not from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Rule", "RULES", "check_constraints"]


@dataclass(frozen=True)
class Rule:
    """``kind`` of ``names`` must hold in the object at ``at`` (``""`` = top level, ``x[]`` = each item)."""

    kind: str  # "exactly_one" | "at_least_one" | "required_filter"
    names: tuple[str, ...]
    at: str = ""
    source: str = ""


RULES: Mapping[str, Sequence[Rule]] = {
    "create_profile": (
        Rule(
            "at_least_one",
            ("email", "phone_number", "external_id"),
            source="Klaviyo refuses a profile without an identifier (email, phone_number or external_id); "
            "the schema cannot say so",
        ),
    ),
    "create_or_update_profile": (
        Rule(
            "at_least_one",
            ("id", "email", "phone_number", "external_id"),
            source="Given a set of profile attributes and optionally an ID, create or update a profile "
            "(matched by id, email, phone_number or external_id)",
        ),
    ),
    "request_profile_deletion": (
        Rule(
            "exactly_one",
            ("id", "email", "phone_number"),
            at="profile",
            source="one of the following identifiers: email, phone_number, or id",
        ),
    ),
    "bulk_suppress_profiles": (
        Rule(
            "exactly_one",
            ("profiles", "list_id", "segment_id"),
            source="suppress profiles given by email, or all profiles in a list or segment",
        ),
    ),
    "bulk_unsuppress_profiles": (
        Rule(
            "exactly_one",
            ("profiles", "list_id", "segment_id"),
            source="unsuppress profiles given by email, or all profiles in a list or segment",
        ),
    ),
    "bulk_subscribe_profiles": (
        Rule(
            "at_least_one",
            ("email", "phone_number", "id"),
            at="profiles[]",
            source="Either email or phone number is required",
        ),
    ),
    "create_client_subscription": (
        Rule(
            "at_least_one",
            ("email", "phone_number"),
            at="profile",
            source="One of either email or phone_number must be provided",
        ),
    ),
    "get_campaigns": (
        Rule(
            "required_filter",
            ("messages.channel",),
            source="Please provide either: equals(messages.channel,'email') ... or 'sms' / 'mobile_push'",
        ),
    ),
}


def _objects_at(data: Mapping[str, Any], at: str) -> list[tuple[str, Mapping[str, Any]]]:
    if not at:
        return [("", data)]
    name, many = (at[:-2], True) if at.endswith("[]") else (at, False)
    value = data.get(name)
    if many and isinstance(value, list):
        return [(f"{name}[{i}].", v) for i, v in enumerate(value) if isinstance(v, Mapping)]
    if isinstance(value, Mapping):
        return [(name + ".", value)]
    return []


def _given(value: Any) -> bool:
    """Given and not blank: ``""``, ``"  "`` and ``[]`` identify nothing."""
    return value is not None and value != [] and not (isinstance(value, str) and not value.strip())


def _filter_fix(rule: Rule) -> str:
    return f"must include a condition on {' and '.join(rule.names)}, e.g. equals({rule.names[0]},'email')"


def missing_fix(operation_id: str, field: str) -> str | None:
    """What to give for a required ``field`` that is missing, when a rule knows more than "a value"."""
    for rule in RULES.get(operation_id, ()):
        if rule.kind == "required_filter" and field == "filter":
            return "is required and " + _filter_fix(rule)
    return None


def check_constraints(operation_id: str, data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems (field, fix) with ``data`` (arguments with None values dropped)."""
    problems: list[tuple[str, str]] = []
    for rule in RULES.get(operation_id, ()):
        if rule.kind == "required_filter":
            text = str(data.get("filter") or "")
            if not all(name in text for name in rule.names):
                problems.append(("filter", _filter_fix(rule)))
            continue
        for prefix, obj in _objects_at(data, rule.at):
            given = [n for n in rule.names if _given(obj.get(n))]
            names = ", ".join(prefix + n for n in rule.names)
            if rule.kind == "exactly_one" and len(given) != 1:
                if given:
                    problems.append((prefix + given[0], f"give exactly one of {names}, not {' and '.join(given)}"))
                else:
                    problems.append((prefix.rstrip(".") or rule.names[0], f"give exactly one of {names}"))
            elif rule.kind == "at_least_one" and not given:
                problems.append((prefix.rstrip(".") or rule.names[0], f"give at least one of {names}"))
    return problems
