"""Clearing a field in an update: the ``CLEAR`` sentinel and the ``clear`` argument.

Klaviyo clears an attribute when an update (PATCH) sends it as ``null``, and leaves it unchanged
when the body leaves it out. In the toolkit's arguments ``None`` means "not given" (strict function
calling makes a model send every field, null for the ones it does not use), so clearing is asked
for explicitly, in either of two equivalent ways::

    from klaviyo_toolkit import CLEAR
    client.call("update_profile", id=pid, last_name=CLEAR, location={"city": CLEAR})
    client.call("update_profile", id=pid, clear=["last_name", "location.city"])

Both send ``"last_name": null`` and ``"location": {"city": null}`` in ``data.attributes``. A nested
field is named by its path: ``CLEAR`` inside the object given for an attribute, or the dotted name
in ``clear``. The fields that can be cleared are those the catalog marks ``clearable`` (see
``catalog/_clearable.py``: nullable in the request, not required, and able to be empty on the
resource Klaviyo answers with). Anything else is refused before any request, naming the field and
what to do instead: a create or a read (leave the field out), an id or a path parameter, a required
attribute or one that always has a value (give a new value), ``meta`` instructions, relationships,
a key inside free-form JSON (for a profile's custom properties, ``patch_properties={"unset": [...]}``)
and ``CLEAR`` inside a list.

A prepared call keeps its arguments as plain data with the clears as one sorted list
(``{"id": ..., "clear": ["last_name"]}``): what approvals show, checkpoints store and the audit log
records (the request body it logs holds the ``null``), and what preparing again reproduces exactly.
Models get the ``clear`` argument on every update tool with a clearable field
(:func:`with_clear_argument`), unless the toolset is made with ``clear_argument=False``: it is in the
tool schema sent with every request (strict mode: null when nothing is cleared).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from pydantic import BaseModel, Field, create_model

from .catalog import Operation
from .errors import InvalidArgumentError

__all__ = [
    "CLEAR",
    "CLEAR_ARG",
    "ClearType",
    "apply_clears",
    "clearable_paths",
    "take_clears",
    "with_clear_argument",
    "without_clears",
]

Json = dict[str, Any]

#: The argument that names fields to clear (the same for code and models; no operation has one of its own).
CLEAR_ARG: Final = "clear"


class ClearType:
    """The type of :data:`CLEAR`: one instance, which pickles, copies and prints as itself."""

    _instance: ClearType | None = None

    def __new__(cls) -> ClearType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "CLEAR"

    def __reduce__(self) -> str:
        return "CLEAR"

    def __copy__(self) -> ClearType:
        return self

    def __deepcopy__(self, memo: Any) -> ClearType:
        return self


#: Give it as an update's argument (or inside the object given for one) to clear that field.
CLEAR: Final = ClearType()


# -- the catalog's view --------------------------------------------------------------------------
def _fields(op: Operation) -> dict[str, tuple[Json, ...]]:
    """Every argument and nested object field of ``op`` by dotted name, with the chain of fields to it."""
    out: dict[str, tuple[Json, ...]] = {}

    def walk(fields: Sequence[Json], prefix: str, chain: tuple[Json, ...]) -> None:
        for f in fields:
            name = prefix + f["name"]
            out[name] = (*chain, f)
            if f["shape"]["kind"] == "object":
                walk(f["shape"]["fields"], name + ".", (*chain, f))

    walk(op.args, "", ())
    return out


@functools.cache
def _catalog_view(op: Operation) -> tuple[dict[str, tuple[Json, ...]], tuple[str, ...]]:
    fields = _fields(op)
    clearable = tuple(name for name, chain in fields.items() if op.method == "PATCH" and chain[-1].get("clearable"))
    return fields, clearable


def clearable_paths(op: Operation) -> tuple[str, ...]:
    """The dotted names of the fields an update can clear, in the catalog's order (empty unless a PATCH)."""
    return _catalog_view(op)[1]


# -- taking clears out of the arguments --------------------------------------------------------------
Path = tuple[str | int, ...]


def _marks(values: Mapping[str, Any]) -> list[Path]:
    """Where CLEAR is in ``values`` (keys, and indexes of lists), found without recursing (arguments may
    nest deeper than the stack; the depth limits are checked after this) and each container once."""
    found: list[Path] = []
    seen: set[int] = set()
    stack: list[tuple[Path, Any]] = [((), values)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, Mapping):
            items: Any = value.items()
        elif isinstance(value, (list, tuple)):
            items = enumerate(value)
        else:
            continue
        if id(value) in seen:
            continue
        seen.add(id(value))
        for key, item in items:
            if item is CLEAR:
                found.append((*path, key))
            elif isinstance(item, (Mapping, list, tuple)):
                stack.append(((*path, key), item))
    return found


def _dotted(path: Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))


def _without(values: Mapping[str, Any], paths: Sequence[Path]) -> dict[str, Any]:
    """A copy of ``values`` without the CLEAR at each of ``paths`` (all through objects): the objects on
    the way are copied, and one left empty by taking them out is dropped."""
    rest: dict[Any, Any] = dict(values)
    for path in paths:
        chain: list[dict[Any, Any]] = [rest]
        for key in path[:-1]:
            inner = dict(chain[-1][key])
            chain[-1][key] = inner
            chain.append(inner)
        chain[-1].pop(path[-1], None)
        for depth in range(len(chain) - 1, 0, -1):  # an object emptied: not given at all
            if not chain[depth]:
                chain[depth - 1].pop(path[depth - 1], None)
    rest.pop(CLEAR_ARG, None)
    return rest


def without_clears(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without CLEAR markers and the ``clear`` list (what :func:`take_clears` keeps, unchecked)."""
    return _without(values, [p for p in _marks(values) if not any(isinstance(k, int) for k in p)])


def _why_not(op: Operation, name: str, chain: tuple[Json, ...]) -> str:
    """Why the field at ``name`` cannot be cleared, and what to do instead."""
    f, top = chain[-1], chain[0]
    where, section = top.get("in"), top.get("section", "attributes")
    if where in ("path", "query", "header"):
        return f"is the request's {where} parameter, not an attribute, so it cannot be cleared"
    if section == "id" or f["name"] == "id":
        return "is the resource's id; it cannot be cleared"
    if section == "relationships":
        return "is a relationship, which Klaviyo's spec does not let an update clear; give the links to keep instead"
    if section == "meta":
        return "is an instruction for this update (meta), not a stored value; leave it out instead"
    if f.get("required"):
        return f"is required by {op.operation_id}, so it cannot be cleared; give a new value instead"
    if not f.get("nullable"):
        return (
            "cannot be cleared: Klaviyo does not accept null for it (the spec does not mark it nullable); "
            "give a new value instead"
        )
    return (
        "cannot be cleared: it always has a value on the resource Klaviyo answers with (the spec never "
        "shows it empty); give a new value instead"
    )


def _unknown(op: Operation, name: str, fields: Mapping[str, tuple[Json, ...]]) -> str:
    parent = name.rsplit(".", 1)[0] if "." in name else None
    if parent is None:
        return "is not an argument of this operation"
    while parent and parent not in fields:
        parent = parent.rsplit(".", 1)[0] if "." in parent else ""
    if not parent:
        return "is not an argument of this operation"
    kind = fields[parent][-1]["shape"]["kind"]
    if kind == "json":
        hint = ""
        if parent == "properties" and "patch_properties" in fields:
            hint = f"; to remove custom properties give patch_properties={{'unset': ['{name.split('.', 1)[1]}']}}"
        return f"is inside {parent}, which is free-form JSON: CLEAR cannot go inside it{hint}"
    if kind != "object":
        return f"is inside {parent}, which is one of several shapes or a list: give {parent} whole instead"
    return f"is not a field of {parent}"


def take_clears(
    op: Operation, values: Mapping[str, Any], *, look_inside: bool | None = None
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``values`` without what asks to clear (CLEAR markers, the ``clear`` list) and the dotted names
    of the fields to clear; InvalidArgumentError naming each field that cannot be cleared, and why.

    Only an update looks for CLEAR inside the objects given (``look_inside``, by default for a PATCH):
    for any other call a CLEAR can only be refused, and walking every item of a 10,000-profile import
    for one would cost a fifth of its preparing; such a CLEAR fails validation instead, and
    :func:`~klaviyo_toolkit._arguments.prepare` then looks inside to name it."""
    fields, clearable = _catalog_view(op)
    listed = values.get(CLEAR_ARG)
    inside = op.method == "PATCH" if look_inside is None else look_inside
    found = _marks(values) if inside else [(key,) for key, value in values.items() if value is CLEAR]
    if listed is None and not found:
        return {k: v for k, v in values.items() if k != CLEAR_ARG}, ()
    in_lists = [p for p in found if any(isinstance(k, int) for k in p)]
    problems = [(_dotted(p), "CLEAR cannot go inside a list; give the list without that item") for p in in_lists]
    marked = [_dotted(p) for p in found if p not in in_lists]
    rest = _without(values, [p for p in found if p not in in_lists])
    if isinstance(listed, str) or not isinstance(listed, (list, tuple, type(None))):
        example = (clearable or ("last_name",))[0]
        problems.append((CLEAR_ARG, f"must be a list of field names, e.g. {CLEAR_ARG}=['{example}']"))
    else:
        problems += [(CLEAR_ARG, f"{n!r} is not a field name") for n in listed or () if not isinstance(n, str)]
        marked += [n for n in listed or () if isinstance(n, str)]
    names = sorted(set(marked))
    if op.method != "PATCH" and names:
        kind = "creates" if op.method == "POST" else f"is a {op.method}"
        fix = (
            f"cannot be cleared: {op.operation_id} {kind}, and only updates (PATCH) clear a field; "
            "leave it out (or None) instead"
        )
        raise InvalidArgumentError(op.operation_id, [*problems, *((n, fix) for n in names)])
    misnamed = -1
    for name in names:
        chain = fields.get(name)
        if chain is None or name not in clearable:
            problems.append((name, _unknown(op, name, fields) if chain is None else _why_not(op, name, chain)))
            misnamed = len(problems) - 1
        elif _given_at(rest, name):
            problems.append((name, "is both given a value and cleared; give one or the other"))
        elif (bare := _bare_parent(chain, name, rest)) is not None:
            problems.append((name, f"is inside {bare[0]}, which needs {bare[1]}: give {bare[0]} with them too"))
        elif any(name.startswith(other + ".") for other in names):
            outer = next(other for other in names if name.startswith(other + "."))
            problems.append((name, f"is inside {outer}, which is cleared whole; clear one or the other"))
    if misnamed >= 0:  # name what can be cleared, once
        field_name, fix = problems[misnamed]
        options = ", ".join(clearable) if clearable else f"none ({op.operation_id} has no field that can be empty)"
        problems[misnamed] = (field_name, f"{fix}; the fields {op.operation_id} can clear: {options}")
    if problems:
        raise InvalidArgumentError(op.operation_id, problems)
    return rest, tuple(names)


def _bare_parent(chain: tuple[Json, ...], name: str, values: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first object around the field at ``name`` that has required fields but is not given (clearing
    inside it would send it without them), with those fields; None when there is none."""
    parts = name.split(".")
    for depth, f in enumerate(chain[:-1]):
        needed = [g["wire"] for g in f["shape"]["fields"] if g.get("required") and not g.get("nullable")]
        parent = ".".join(parts[: depth + 1])
        if needed and not _given_at(values, parent):
            return parent, ", ".join(needed)
    return None


def _given_at(values: Mapping[str, Any], name: str) -> bool:
    """Whether ``values`` give a (non-null) value at the dotted ``name`` or inside it."""
    value: Any = values
    for part in name.split("."):
        if isinstance(value, BaseModel):
            value = getattr(value, part, None)
        elif isinstance(value, Mapping):
            value = value.get(part)
        else:
            return False
    return value is not None and value != {}


def apply_clears(op: Operation, body: Any, names: Sequence[str]) -> None:
    """Write ``null`` at each cleared field's wire place in a built JSON:API ``body`` (in place)."""
    fields = _catalog_view(op)[0]
    data = body["data"]
    for name in names:
        chain = fields[name]
        place: Json = data.setdefault(chain[0].get("section", "attributes"), {})
        for f in chain[:-1]:
            inner = place.get(f["wire"])
            inner = dict(inner) if isinstance(inner, dict) else {}
            place[f["wire"]] = inner
            place = inner
        place[chain[-1]["wire"]] = None


# -- the model-facing argument -------------------------------------------------------------------------
CLEAR_DESCRIPTION = "Fields to clear (set empty); give null to change nothing. Not also given a value."


@functools.cache
def with_clear_argument(model: type[BaseModel], paths: tuple[str, ...]) -> type[BaseModel]:
    """``model`` with one more optional argument, ``clear``: a list of the ``paths`` that can be cleared."""
    item: Any = Literal[paths]
    return create_model(  # type: ignore[call-overload, no-any-return]
        model.__name__,
        __base__=model,
        __doc__=model.__doc__,
        **{CLEAR_ARG: (list[item] | None, Field(default=None, description=CLEAR_DESCRIPTION))},
    )
