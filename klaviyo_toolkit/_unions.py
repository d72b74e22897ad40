"""Which branch of a union argument a value meant, so that a refusal names the real fault.

pydantic reports a value that fits none of a union's branches with the errors of every branch, and
the first said of each field was kept: ``create_campaign`` with an sms message whose content had a
``subject`` came back as "channel: must be 'email'" (the email branch's complaint), sending the
caller to change the one field that was right. A value says which branch it means by its
discriminators (the fields a branch fixes to one value: ``channel``, ``method``, ``type``,
``value``, ``is_local``), then by the fields it gives, then by the enums its values fall in; only
that branch's errors are reported, saying what they depend on ("required when method is
'throttled'"). A discriminator no branch takes, or one left out, is itself the error, with the
values it may have; so is a value of a JSON type no branch has; a value that fits no form and says
none names every form. Scalar unions (a string or a number) say what they take.

Runs on the error path only: nothing here is built at import or when a tool is made. (The sandbox
does the same for request bodies in ``klaviyo_sandbox/_branches.py``; the toolkit cannot import it.)
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["NARROWED", "narrow"]

Json = dict[str, Any]
Err = dict[str, Any]

#: The ``type`` of an error made or reworded here: its ``msg`` is the fix, as written.
NARROWED = "narrowed"
#: A value not given (a field left out), told apart from an explicit null.
_MISSING: Any = object()
_OBJECTS = ("object", "resource")
#: The name of a union branch's model ends in its index (``...DefinitionV2``; see ``_Builder``).
_BRANCH_TAG = re.compile(r"V(\d+)$")
#: The longest quote of a wrong value.
_SHOWN = 80
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list, tuple),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def narrow(args: Sequence[Json], values: Mapping[str, Any], errors: Sequence[Mapping[str, Any]]) -> list[Err]:
    """pydantic's ``errors`` for ``values`` of an operation whose arguments are ``args`` (catalog
    shapes), with each union's errors narrowed to the branch its value meant (module docstring)."""
    shapes = {a["name"]: a["shape"] for a in args}
    every = [dict(e) for e in errors]
    out: list[Err] = [e for e in every if not e["loc"]]  # about the arguments as a whole
    for name, group in _grouped(every, 0):
        shape = shapes.get(name) if isinstance(name, str) else None
        if shape is None:
            out += group
        else:
            out += _narrow(shape, values.get(name, _MISSING), group, 1, "")
    return out


def _narrow(shape: Json, value: Any, errors: list[Err], at: int, when: str) -> list[Err]:
    """The errors under ``shape`` (whose value is ``value``, at ``loc[:at]``), narrowed; ``when``
    names the discriminators the nearest enclosing branch was chosen by (" when channel is 'sms'")."""
    kind = shape["kind"]
    if kind == "data":
        return _narrow(shape["item"], value, errors, at, when)
    out = [_here(e, shape, when) for e in errors if len(e["loc"]) <= at]
    deeper = [e for e in errors if len(e["loc"]) > at]
    if not deeper:
        return out
    if kind == "array":
        for index, group in _grouped(deeper, at):
            fits = isinstance(value, list) and isinstance(index, int) and 0 <= index < len(value)
            out += _narrow(shape["items"], value[index] if fits else _MISSING, group, at + 1, when)
    elif kind in _OBJECTS:
        fields = {f["name"]: f["shape"] for f in shape["fields"]}
        for name, group in _grouped(deeper, at):
            sub = fields.get(name) if isinstance(name, str) else None
            if sub is None:
                out += [_extra(e, shape, at, when) for e in group]
            else:
                given = value.get(name, _MISSING) if isinstance(value, Mapping) else _MISSING
                out += _narrow(sub, given, group, at + 1, when)
    elif kind == "union":
        out += _union(shape["variants"], value, deeper, at, when)
    elif kind == "scalar" and isinstance(shape["schema"].get("anyOf"), list) and value is not _MISSING:
        out += _scalar_union(shape["schema"]["anyOf"], value, deeper, at)
    else:
        out += deeper
    return out


def _here(error: Err, shape: Json, when: str) -> Err:
    """An error about the value of ``shape`` itself: a required field said with the branch it belongs
    to, an object given as something else said with its fields (not a generated class name)."""
    if error["type"] == "missing" and when:
        return _made(error["loc"], f"is required{when}; give a value")
    if error["type"] in ("model_type", "model_attributes_type", "dict_type") and shape["kind"] in _OBJECTS:
        names = ", ".join(f["name"] for f in shape["fields"])
        return _made(error["loc"], f"must be an object with the fields {names}, not {_shown(error.get('input'))}")
    return error


def _extra(error: Err, shape: Json, at: int, when: str) -> Err:
    """A key the object at ``loc[:at]`` has no field for, said with the fields it has."""
    if error["type"] != "extra_forbidden" or len(error["loc"]) != at + 1:
        return error
    names = ", ".join(f["name"] for f in shape["fields"])
    made = _made(error["loc"], f"is not a field of {_name(error['loc'][:at])}{when}; its fields are: {names}")
    made["unknown_key"] = True  # the last part of loc is the key as given, to be named as it is
    return made


def _union(variants: list[Json], value: Any, errors: list[Err], at: int, when: str) -> list[Err]:
    """The errors of the branch ``value`` meant, or one error saying what it lacks to mean one."""
    groups = _grouped(errors, at)
    indices = _branch_indices(variants, [tag for tag, _ in groups])
    if indices is None or any(v["kind"] not in _OBJECTS for v in variants):
        return errors  # branches that are not objects (JSON text twice over) or errors not told apart
    by_branch = {indices[k]: group for k, (_, group) in enumerate(groups)}
    loc = tuple(errors[0]["loc"][:at])
    choice = _choose(variants, value, loc)
    if isinstance(choice, dict):
        return [choice]
    meant = [i for i in choice if i in by_branch]
    if not meant:
        return errors
    if len(meant) == len(variants) > 1 and not _same(by_branch, at):
        return [_made(loc, _forms(variants))]
    best = min(meant, key=lambda i: len(by_branch[i]))  # the first of those with the fewest faults
    return _narrow(variants[best], value, by_branch[best], at + 1, _when(variants[best], value) or when)


def _choose(variants: list[Json], value: Any, loc: tuple[Any, ...]) -> list[int] | Err:
    """The branches ``value`` means (by discriminators, then fields given, then enums), or the
    error that it names a discriminator no branch takes, leaves one out, or is no object at all."""
    every = list(range(len(variants)))
    fixed = [_fixed(v) for v in variants]
    if not isinstance(value, Mapping):
        if value is _MISSING or not isinstance(value, (str, int, float, bool, list, tuple, type(None))):
            return every
        key, allowed = _common_key(fixed)
        which = f" with {key} one of: {_listed(allowed)}" if key else ""
        return _made(loc, f"must be an object{which}, not {_shown(value)}")
    refused = {i for i, f in enumerate(fixed) if any(k in value and not _among(value[k], v) for k, v in f.items())}
    live = [i for i in every if i not in refused]
    if not live:
        for key in value:
            if all(key in f for f in fixed):
                allowed = list(dict.fromkeys(x for f in fixed for x in f[key]))
                if not _among(value[key], allowed):
                    return _made((*loc, key), _not_one_of(value[key], key, allowed))
        return every
    if not refused:
        key, allowed = _common_key(fixed)
        if key and key not in value and len(variants) > 1:
            return _made(
                (*loc, key), f"is required; it says which kind of {_name(loc)} this is, one of: {_listed(allowed)}"
            )
    overlap = {i: len(set(value) & {f["name"] for f in variants[i]["fields"]}) for i in live}
    most = max(overlap.values())
    meant = [i for i in live if overlap[i] == most]
    for key in value if len(meant) > 1 else ():
        enums = [_enum(variants[i], key) for i in meant]
        if any(enum is None for enum in enums):
            continue
        taking = [i for i, enum in zip(meant, enums, strict=True) if enum is not None and _among(value[key], enum)]
        if not taking:
            allowed = list(dict.fromkeys(x for enum in enums for x in enum or ()))
            return _made((*loc, key), _not_one_of(value[key], key, allowed))
        meant = taking
    return meant


def _scalar_union(forms: list[Any], value: Any, errors: list[Err], at: int) -> list[Err]:
    """A value of a scalar union (``string`` or ``number``): what it may be when it is none of them;
    else the errors of the form its type fits."""
    loc = tuple(errors[0]["loc"][:at])
    schemas = [f if isinstance(f, dict) else {} for f in forms]
    fits = [i for i, f in enumerate(schemas) if _type_fits(f.get("type"), value)]
    if not fits:
        return [_made(loc, f"must be {_described(schemas)}, not {_shown(value)}")]
    taking = [i for i in fits if not isinstance(schemas[i].get("enum"), list) or _among(value, schemas[i]["enum"])]
    if not taking:
        allowed = list(dict.fromkeys(x for i in fits for x in schemas[i].get("enum") or ()))
        return [_made(loc, _not_one_of(value, _name(loc), allowed))]
    groups = _grouped(errors, at)
    if len(groups) != len(forms):
        return errors
    best = min(taking, key=lambda i: len(groups[i][1]))
    return groups[best][1]


# -- helpers ---------------------------------------------------------------------------------------
def _grouped(errors: list[Err], at: int) -> list[tuple[Any, list[Err]]]:
    """Errors by ``loc[at]``, in the order first met (errors with no ``loc[at]`` left out)."""
    groups: dict[Any, list[Err]] = {}
    for e in errors:
        if len(e["loc"]) > at:
            groups.setdefault(e["loc"][at], []).append(e)
    return list(groups.items())


def _branch_indices(variants: list[Json], tags: list[Any]) -> list[int] | None:
    """The branch each union-member tag stands for: by the model's name, else by order (pydantic
    reports every member of a union that fails, in order); None when they cannot be told apart."""
    found = [_BRANCH_TAG.search(t) if isinstance(t, str) else None for t in tags]
    indices = [int(m.group(1)) for m in found if m]
    if len(indices) == len(tags) and len(set(indices)) == len(tags) and all(i < len(variants) for i in indices):
        return indices
    return list(range(len(tags))) if len(tags) == len(variants) else None


def _same(by_branch: Mapping[int, list[Err]], at: int) -> bool:
    """Whether every branch has the same faults (the same fields, the same kind of fault)."""
    said = {frozenset((tuple(e["loc"][at + 1 :]), e["type"]) for e in group) for group in by_branch.values()}
    return len(said) == 1


def _fixed(variant: Json) -> dict[str, list[Any]]:
    """The fields a branch fixes to one value (its discriminators), with that value."""
    out: dict[str, list[Any]] = {}
    for f in variant.get("fields", ()):
        schema = f["shape"].get("schema") if f["shape"]["kind"] == "scalar" else None
        if isinstance(schema, dict):
            if "const" in schema:
                out[f["name"]] = [schema["const"]]
            elif isinstance(schema.get("enum"), list) and len(schema["enum"]) == 1:
                out[f["name"]] = list(schema["enum"])
    return out


def _enum(variant: Json, key: str) -> list[Any] | None:
    for f in variant["fields"]:
        if f["name"] == key and f["shape"]["kind"] == "scalar":
            enum = f["shape"]["schema"].get("enum")
            return list(enum) if isinstance(enum, list) else None
    return None


def _common_key(fixed: list[dict[str, list[Any]]]) -> tuple[str | None, list[Any]]:
    """The discriminator every branch fixes, with the values it takes; (None, []) if there is none."""
    for key in fixed[0] if fixed else ():
        if all(key in f for f in fixed):
            return key, list(dict.fromkeys(x for f in fixed for x in f[key]))
    return None, []


def _when(variant: Json, value: Any) -> str:
    """`` when channel is 'sms'``: the discriminators ``value`` chose ``variant`` by."""
    if not isinstance(value, Mapping):
        return ""
    said = [f"{key} is {_shown(value[key])}" for key in _fixed(variant) if key in value]
    return f" when {' and '.join(said)}" if said else ""


def _forms(variants: list[Json]) -> str:
    """The fix for an object that fits none of a union's forms and does not say which it means."""
    forms = []
    for v in variants:
        fixed = _fixed(v)
        needed = [f["name"] for f in v["fields"] if f.get("required") and not f.get("nullable")]
        named = [f"{n}: {_shown(fixed[n][0])}" if n in fixed else n for n in needed]
        forms.append("{" + ", ".join(named or [f["name"] for f in v["fields"]]) + "}")
    return f"fits none of the forms it takes; give {' or '.join(dict.fromkeys(forms))}"


def _described(forms: list[Json]) -> str:
    """What a scalar union takes, in words: "a string or a number"."""
    enum = [x for f in forms if isinstance(f.get("enum"), list) for x in f["enum"]]
    words = [_kind(f) for f in forms if not isinstance(f.get("enum"), list)]
    if enum:
        words.append(f"one of {_listed(list(dict.fromkeys(enum)))}")
    words = list(dict.fromkeys(words))
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _kind(schema: Json) -> str:
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        inner = _kind(items) if isinstance(items, dict) else "value"
        return "a list of " + inner.removeprefix("an ").removeprefix("a ") + "s"
    word = {"boolean": "true or false", "integer": "an integer", "object": "an object"}.get(str(kind))
    return word or f"a {kind}" if kind else "a value"


def _not_one_of(value: Any, key: str, allowed: list[Any]) -> str:
    """The fix for a value no form takes ("'text' is not a valid channel; use one of ..."), with the
    nearest allowed value when one is near."""
    near = [] if not isinstance(value, str) else difflib.get_close_matches(value, [str(a) for a in allowed], n=1)
    hint = f" (did you mean {_shown(near[0])}?)" if near else ""
    return f"{_shown(value)} is not a valid {key}; use one of: {_listed(allowed)}{hint}"


def _made(loc: Sequence[Any], msg: str) -> Err:
    return {"loc": tuple(loc), "type": NARROWED, "msg": msg, "input": None}


def _name(loc: Sequence[Any]) -> str:
    """The field a location ends at (``definition`` for ``campaign_messages.0.definition``; ``styles
    item`` for ``definition.styles.0``), union-member tags (class names) left out."""
    parts = [p for p in loc if not (isinstance(p, str) and p[:1].isupper())]
    name = next((p for p in reversed(parts) if isinstance(p, str)), "value")
    return f"{name} item" if parts and isinstance(parts[-1], int) else name


def _listed(values: list[Any]) -> str:
    return ", ".join(_shown(v) for v in values)


def _shown(value: Any) -> str:
    """``value`` as an error quotes it: a string's repr (as pydantic quotes ``'email'``), anything else
    as JSON (``true``, ``null``, ``{"x": 1}``), cut short."""
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _among(value: Any, allowed: Sequence[Any]) -> bool:
    """``value`` is one of ``allowed`` as JSON compares them (``true`` is not ``1``)."""
    return any(type(value) is type(option) and value == option for option in allowed)


def _type_fits(declared: Any, value: Any) -> bool:
    """Whether ``value`` has the JSON type a schema declares (none declared fits anything)."""
    if declared is None:
        return True
    for name in declared if isinstance(declared, list) else [declared]:
        kinds = _JSON_TYPES.get(str(name), ())
        if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
            return True
    return False
