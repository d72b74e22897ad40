"""Which branch of a ``oneOf``/``anyOf`` a request value meant, so that its 400 names the real fault.

jsonschema reports a value that fits none of a union's branches as "... is not valid under any of
the given schemas", or, descending by its own heuristic, as the deepest error of whichever branch
it meets: a segment condition ``{"type": "profile-group-membership", "is_member": true}`` missing
its ``group_ids`` came back as "True is not one of [False]" (the ``is_member: false`` branch),
sending the caller to change the one field that was right. A value says which branch it means by
its discriminators, the properties a branch fixes to one value (``type``, ``method``, ``channel``,
``is_member``), then by the properties it gives, then by the enums its values fall in (a string
filter's ``operator``); the error reported is that branch's. A discriminator or enum value no branch
takes is itself the error, with the values it may have; so is a value of a type no branch has.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from typing import Any

import jsonschema

from ._schemas import SchemaIndex

_UNIONS = ("anyOf", "oneOf")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
#: The longest quote of a wrong value in an error's detail.
_SHOWN = 80
#: The ``validator`` of the errors made here (a discriminator or enum value no branch takes, one left
#: out, a value of the wrong type): their message is the detail, as written.
UNKNOWN_DISCRIMINATOR = "discriminator"


def narrow(schemas: SchemaIndex, errors: Iterable[jsonschema.ValidationError]) -> list[jsonschema.ValidationError]:
    """``errors`` with each union error replaced by the error of the branch its value meant (when
    the value says which), or by an error naming a discriminator no branch takes."""
    return [_narrow(schemas, error) for error in errors]


def _narrow(schemas: SchemaIndex, error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """One error narrowed (see the module docstring); itself when the value does not say which branch."""
    if error.validator not in _UNIONS or not error.context or not isinstance(error.validator_value, list):
        return error
    branches = [schemas.resolve(b) if isinstance(b, dict) else {} for b in error.validator_value]
    value = error.instance
    live: list[tuple[int, int]] = []  # (branch, how many of the value's keys it defines)
    refused: list[dict[str, list[Any]]] = []  # discriminators of the branches the value rules out
    discriminators: list[dict[str, list[Any]]] = []  # of every object branch
    for i, branch in enumerate(branches):
        if not _type_fits(branch.get("type"), value):
            continue
        found_props = branch.get("properties")
        props: dict[str, Any] = found_props if isinstance(found_props, dict) else {}
        if isinstance(value, dict):
            fixed = {key: vals for key, sub in props.items() if (vals := _fixed(schemas, sub))}
            discriminators.append(fixed)
            if any(key in value and not _among(value[key], vals) for key, vals in fixed.items()):
                refused.append(fixed)
                continue
            live.append((i, len(set(value) & set(props))))
        else:
            live.append((i, 0))
    if not live:
        return _unknown_discriminator(error, refused) or _wrong_type(error, branches) or error
    if isinstance(value, dict) and len(live) == len(discriminators):  # none ruled out: is the key that tells missing?
        missing = _missing_discriminator(error, discriminators)
        if missing is not None:
            return missing
    most = max(overlap for _, overlap in live)
    meant = {i for i, overlap in live if overlap == most}
    if isinstance(value, dict) and len(meant) > 1:
        by_enums = _by_enums(schemas, error, branches, meant)
        if isinstance(by_enums, jsonschema.ValidationError):
            return by_enums
        meant = by_enums
    if len(meant) == len(branches):  # the value does not say which it meant
        return _missing_discriminator(error, discriminators) or error
    ours = [e for e in error.context if e.relative_schema_path and e.relative_schema_path[0] in meant]
    found = [_narrow(schemas, e) for e in ours]
    if not found:
        return error
    formats = [e for e in found if e.validator == "format"]
    return formats[0] if formats else jsonschema.exceptions.best_match(found) or error


def _by_enums(
    schemas: SchemaIndex, error: jsonschema.ValidationError, branches: list[dict[str, Any]], meant: set[int]
) -> set[int] | jsonschema.ValidationError:
    """``meant`` less the branches whose enum for one of the value's keys leaves its value out (a
    string filter's ``operator``), or the error naming that key when every branch leaves it out."""
    value = error.instance
    for key in value:
        enums = {i: _enum(schemas, branches[i], key) for i in meant}
        if any(enum is None for enum in enums.values()):
            continue
        taking = {i for i, enum in enums.items() if enum is not None and _among(value[key], enum)}
        if not taking:
            allowed = list(dict.fromkeys(v for enum in enums.values() for v in enum or ()))
            return _not_allowed(error, key, allowed)
        meant = taking
    return meant


def _not_allowed(error: jsonschema.ValidationError, key: str, allowed: list[Any]) -> jsonschema.ValidationError:
    """The error for the value's ``key`` holding none of ``allowed`` (a discriminator or an enum)."""
    value = error.instance[key]
    return jsonschema.ValidationError(
        f"{_shown(value)} is not a valid {key} here; use one of: {', '.join(map(_shown, allowed))}.",
        validator=UNKNOWN_DISCRIMINATOR,
        validator_value=allowed,
        instance=value,
        path=deque([*error.absolute_path, key]),
    )


def _enum(schemas: SchemaIndex, branch: dict[str, Any], key: str) -> list[Any] | None:
    props = branch.get("properties")
    sub = props.get(key) if isinstance(props, dict) else None
    enum = schemas.resolve(sub).get("enum") if isinstance(sub, dict) else None
    return list(enum) if isinstance(enum, list) else None


def _unknown_discriminator(
    error: jsonschema.ValidationError, refused: list[dict[str, list[Any]]]
) -> jsonschema.ValidationError | None:
    """The error for a value whose discriminator (a key every branch fixes) no branch takes."""
    value = error.instance
    if not refused or not isinstance(value, dict):
        return None
    for key in value:
        if all(key in fixed for fixed in refused):
            allowed = list(dict.fromkeys(v for fixed in refused for v in fixed[key]))
            if _among(value[key], allowed):
                continue
            return _not_allowed(error, key, allowed)
    return None


def _missing_discriminator(
    error: jsonschema.ValidationError, discriminators: list[dict[str, list[Any]]]
) -> jsonschema.ValidationError | None:
    """The error for an object that leaves out the key by which every branch is told apart."""
    value = error.instance
    if len(discriminators) < 2 or not isinstance(value, dict):
        return None
    for key in discriminators[0]:
        if key not in value and all(key in fixed for fixed in discriminators):
            allowed = list(dict.fromkeys(v for fixed in discriminators for v in fixed[key]))
            return jsonschema.ValidationError(
                f"'{key}' is required; it says which kind this is, one of: {', '.join(map(_shown, allowed))}.",
                validator=UNKNOWN_DISCRIMINATOR,
                validator_value=allowed,
                instance=value,
                path=deque([*error.absolute_path, key]),
            )
    return None


def _wrong_type(error: jsonschema.ValidationError, branches: list[dict[str, Any]]) -> jsonschema.ValidationError | None:
    """The error for a value of a JSON type no branch has (a string where an object goes)."""
    declared = [branch.get("type") for branch in branches]
    if not declared or any(not isinstance(kind, str) for kind in declared):
        return None
    kinds = list(dict.fromkeys(str(kind) for kind in declared if kind != "null"))
    if not kinds:
        return None
    where = next((str(p) for p in reversed(list(error.absolute_path)) if not isinstance(p, int)), "The value")
    nullable = " (or null)" if "null" in declared else ""
    return jsonschema.ValidationError(
        f"{where} must be {' or '.join(_article(kind) for kind in kinds)}{nullable}, not {_shown(error.instance)}.",
        validator=UNKNOWN_DISCRIMINATOR,
        validator_value=kinds,
        instance=error.instance,
        path=deque(error.absolute_path),
    )


def _shown(value: Any) -> str:
    """``value`` as the error quotes it: its repr (JSON's literals for true, false and null), cut short (a
    wrong value may be a whole document)."""
    text = json.dumps(value) if value is None or isinstance(value, bool) else repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _article(kind: str) -> str:
    return ("an " if kind[:1] in "aeiou" else "a ") + kind


def _fixed(schemas: SchemaIndex, sub: Any) -> list[Any]:
    """The one value a property schema allows (``enum`` of one, ``const``), as a list; else []."""
    node = schemas.resolve(sub) if isinstance(sub, dict) else {}
    if "const" in node:
        return [node["const"]]
    enum = node.get("enum")
    return list(enum) if isinstance(enum, list) and len(enum) == 1 else []


def _among(value: Any, allowed: list[Any]) -> bool:
    """``value`` is one of ``allowed`` as JSON compares them (``true`` is not ``1``)."""
    return any(type(value) is type(option) and value == option for option in allowed)


def _type_fits(declared: Any, value: Any) -> bool:
    """Whether ``value`` has the JSON type a branch declares (a branch declaring none may fit)."""
    if declared is None:
        return True
    names = declared if isinstance(declared, list) else [declared]
    for name in names:
        kinds = _JSON_TYPES.get(str(name), ())
        if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
            return True
    return False
