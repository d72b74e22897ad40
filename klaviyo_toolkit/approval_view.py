"""What an approval changes: the resource as it is now, read before the pause, beside the request.

An approval request shows the exact request, but a request alone does not say what it changes:
``delete_list`` names only an id, and ``update_profile`` with a new email does not say which email
it replaces. :func:`current_view` reads the resource a ``PATCH`` or ``DELETE`` addresses (the
``GET`` on the same path, or on its owner for a ``/relationships/`` path), or the one a ``POST``
in :data:`POST_TARGETS` names (the campaign ``send_campaign`` sends, the profile an upsert changes,
found by id or, as Klaviyo finds it, by email, phone number, then external id, the profile a merge
keeps and those it merges in, the profile whose data is deleted, the list a bulk subscribe or
unsubscribe is for, the list or segment whose members a bulk suppress or unsuppress acts on), and
returns:

- ``resource``: what the call acts on, in words (``list s7ZLZY 'Newsletter'``), and ``fields``: a
  few of its attributes that say which one it is (name, email, status, profile count, ...);
- ``changes`` (a ``PATCH``, or an upsert by id): each attribute the request sets, with its value
  now and after (nested objects such as ``properties``, ``location`` or a message's
  ``definition.content`` field by field, to any depth: a ``PATCH`` sets the fields it names), and
  ``returned``: false when the read did not return the attribute at all (a webhook's secret key),
  so a value that is only unknown is never shown as unset;
- ``linked`` (a ``PATCH`` that replaces a relationship): the ids linked now, or ``unread`` (why not);
- ``profiles`` (profiles added to or removed from a list by id): how many, the first ones in words
  (or ``unread``: why they could not be named, such as the scope the persona lacks);
- ``audiences`` (a campaign): its included and excluded lists and segments, by name;
- ``merged_in`` (a merge): the first profiles merged into it (and then deleted), each in words, and
  ``merged_count``: how many it merges in, so a long merge never looks shorter than it is;
- or ``unread``: why the resource could not be read (a scope the persona lacks, an error).

The read goes out with the caller's toolset, so it is scoped and audited like any call; it shows,
it never decides (what stops a call is :mod:`klaviyo_toolkit.effects`). Values are capped for the
screen (a long value changed past its head is shown from where it first differs, so two long values
never look the same when they are not) and secrets are masked.

Example::

    view = current_view(kit, catalog.get("update_profile"), {"id": "01H...", "email": "new@x.com"}, body)
    view["changes"]   # [{"field": "email", "before": "old@x.com", "after": "new@x.com"}]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import KlaviyoError, RateLimitWaitError
from .redact import is_secret_key, redact

if TYPE_CHECKING:
    from .catalog import Operation
    from .tools import Toolset

__all__ = [
    "BY_PROFILE_KEY",
    "IDENTIFYING",
    "MAX_CHANGES",
    "OTHER_TARGETS",
    "POST_CHANGES",
    "POST_TARGETS",
    "VIEW_MAX_WAIT",
    "VIEW_READ_TIMEOUT",
    "current_view",
    "reader_of",
]

#: Attributes that say which resource this is, shown first (in this order) when present.
IDENTIFYING = (
    "name",
    "title",
    "label",
    "email",
    "phone_number",
    "external_id",
    "first_name",
    "last_name",
    "status",
    "channel",
    "subject",
    "trigger_type",
    "profile_count",
    "url",
    "endpoint_url",
    "send_time",
    "audiences",
    "created",
    "updated",
)
#: Seconds a read for the view may take before it is given up (and said so): it only shows, and the
#: person waits for the request meanwhile. A caller reads with this and no retries (the runtime's viewer).
VIEW_READ_TIMEOUT = 5.0
#: Seconds a read for the view may wait for its rate-limit slot: enough for a per-second window to
#: roll over, never a per-minute one (a list's ``profile_count`` allows 15 a minute), which would hold
#: the approval up as long; a read refused for it is said so, and takes no slot from the run's calls.
VIEW_MAX_WAIT = 2.0
#: At most this many identifying fields and this many changes are listed (the request is shown whole).
MAX_FIELDS = 8
MAX_CHANGES = 25
#: A value longer than this (as JSON) is shown by its length and head.
MAX_VALUE_CHARS = 160
#: Extra arguments for a read, where they make the view more useful (how many profiles a list holds).
READ_EXTRAS: Mapping[str, Mapping[str, Any]] = {
    "get_list": {"additional_fields_list": ["profile_count"]},
    "get_segment": {"additional_fields_segment": ["profile_count"]},
}


#: ``POST`` operations that act on one resource named in their arguments: the read, and the argument
#: holding the id (a profile reference's ``id`` for ``request_profile_deletion``).
POST_TARGETS: Mapping[str, tuple[str, str]] = {
    "send_campaign": ("get_campaign", "id"),
    "create_or_update_profile": ("get_profile", "id"),
    "merge_profiles": ("get_profile", "id"),
    "request_profile_deletion": ("get_profile", "profile.id"),  # or its email or phone (BY_PROFILE_KEY)
    "bulk_subscribe_profiles": ("get_list", "list_id"),
    "bulk_unsubscribe_profiles": ("get_list", "list_id"),
    "bulk_suppress_profiles": ("get_list", "list_id"),  # or every member of a segment (OTHER_TARGETS)
    "bulk_unsuppress_profiles": ("get_list", "list_id"),
    "assign_template_to_campaign_message": ("get_campaign_message", "id"),
}
#: ``POST`` operations whose resource may be named by another argument instead (a bulk suppress of a
#: segment's members): the read and the argument, used when the :data:`POST_TARGETS` one is not given.
OTHER_TARGETS: Mapping[str, tuple[str, str]] = {
    "bulk_suppress_profiles": ("get_segment", "segment_id"),
    "bulk_unsuppress_profiles": ("get_segment", "segment_id"),
}
#: ``POST`` operations that may name their profile by email, phone number or external id instead of
#: id: the argument holding them ("" for the arguments themselves). An upsert with no id changes the
#: profile its identifiers find (a new email or external id set on someone else's profile): that
#: profile is shown, or that none has them (a new profile is made).
BY_PROFILE_KEY: Mapping[str, str] = {"request_profile_deletion": "profile", "create_or_update_profile": ""}
#: The identifiers a profile is found by, in the order Klaviyo tries them.
PROFILE_KEYS = ("email", "phone_number", "external_id")
#: ``POST`` operations that set attributes of the resource they name (an upsert by id): shown as changes.
POST_CHANGES = frozenset({"create_or_update_profile"})
#: At most this many of the profiles a call adds or removes by id are named.
MAX_NAMED = 10
#: At most this many other resources named by a ``POST`` (the profiles a merge takes in) are read.
MAX_ALSO = 5


def _post_target(op: Operation, args: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """The (read, argument) that names the resource a ``POST`` acts on, for these ``args``."""
    target = POST_TARGETS.get(op.operation_id) if op.method == "POST" else None
    other = OTHER_TARGETS.get(op.operation_id)
    if target is not None and other is not None and args is not None and _arg(args, target[1]) in (None, ""):
        return other if _arg(args, other[1]) not in (None, "") else target
    return target


def reader_of(kit: Toolset, op: Operation, args: Mapping[str, Any] | None = None) -> Operation | None:
    """The ``GET`` that reads what ``op`` changes: the same path, or for a ``/relationships/`` path
    (added to, removed from, replaced) the owner's (``/api/lists/{id}`` for
    ``/api/lists/{id}/relationships/profiles``), or a ``POST``'s in :data:`POST_TARGETS` (or, when
    ``args`` name it so, :data:`OTHER_TARGETS`); None for any other operation."""
    target = _post_target(op, args)
    if target is not None:
        return kit.catalog.get(target[0]) if target[0] in kit.catalog else None
    relationship = "/relationships/" in op.path  # a POST adds to one, a DELETE removes, a PATCH replaces
    if "{id}" not in op.path or not (op.method in ("PATCH", "DELETE") or (op.method == "POST" and relationship)):
        return None
    return _get_at(kit, op.path.split("/relationships/")[0], op.stage)


def _get_at(kit: Toolset, path: str, stage: str | None = None) -> Operation | None:
    """The ``GET`` operation at ``path`` (of ``stage``, when given), or None."""
    for candidate in kit.catalog:
        if candidate.method == "GET" and candidate.path == path and stage in (None, candidate.stage):
            return candidate
    return None


def _read(kit: Toolset, name: str, **args: Any) -> tuple[Any, str | None]:
    """One read for the view: (its answer, None), or (None, why it was not made or failed): a scope
    the persona lacks is named and the read not made; an error says which read failed."""
    missing = kit.missing_scopes(kit.catalog.get(name))
    if missing:
        return None, f"{name} needs {', '.join(missing)}, which this persona was not granted"
    try:
        return kit.fetch(name, **args), None
    except RateLimitWaitError as exc:
        return None, f"{name} not read: its rate limit has no slot within {VIEW_MAX_WAIT:g}s ({exc})"
    except KlaviyoError as exc:
        return None, f"{name} failed: {exc}"


def _any_id(ids: list[str]) -> str:
    """The filter that reads the records with these ids, in one request."""
    return "any(id,[" + ",".join(json.dumps(i) for i in ids) + "])"


def current_view(
    kit: Toolset, op: Operation, args: Mapping[str, Any], body: Any = None, *, name_profiles: bool = True
) -> dict[str, Any] | None:
    """The resource ``op`` (called with ``args``, sending ``body``) acts on, as it is now, and what the
    request changes in it; None when there is nothing to read (see :func:`reader_of`). The profiles a
    call adds or removes by id are named (read) unless ``name_profiles`` is false (the caller's own
    summary names them already, as the segment syncer's batches do)."""
    read = reader_of(kit, op, args)
    if read is None:
        return None
    target = _post_target(op, args)
    rid = _arg(args, target[1] if target is not None else "id")
    if rid in (None, "") and op.operation_id in BY_PROFILE_KEY:
        upsert = op.operation_id in POST_CHANGES
        rid, why = _profile_id(kit, _arg(args, BY_PROFILE_KEY[op.operation_id]), ": it makes a new profile" * upsert)
        if why:
            return {"unread": why}
    if rid in (None, ""):
        return None
    answer, why = _read(kit, read.name, id=rid, **READ_EXTRAS.get(read.name, {}))
    if why:
        return {"unread": why}
    found = answer.data
    if not isinstance(found, Mapping):
        return {"unread": f"{read.name} answered no record for id {rid}"}
    attrs = _attrs(found)
    fields = {k: _shown(attrs[k]) for k in IDENTIFYING if k in attrs and attrs[k] not in (None, "")}
    view: dict[str, Any] = {
        "read_with": read.name,
        "resource": _named(found, read, rid),
        "fields": dict(list(fields.items())[:MAX_FIELDS]),
    }
    ids = args.get("profile_ids")
    if name_profiles and "/relationships/profiles" in op.path and isinstance(ids, list) and ids:
        view["profiles"] = _profiles(kit, [str(i) for i in ids])
    audiences = attrs.get("audiences")
    if read.name in ("get_campaign", "get_campaign_beta") and isinstance(audiences, Mapping):
        view["audiences"] = _audiences(kit, audiences)
    if op.operation_id == "merge_profiles":
        merged = list(args.get("profile_ids") or [])
        view["merged_in"] = [_other(kit, read, pid) for pid in merged[:MAX_ALSO]]
        view["merged_count"] = len(merged)
    if op.operation_id in POST_CHANGES:
        view["changes"] = _changes(attrs, _attributes(body), read.name)
    elif op.method == "PATCH":
        if "/relationships/" in op.path:
            linked = _linked(kit, op, rid)
            if linked is not None:
                view["linked"] = linked
        else:
            view["changes"] = _changes(attrs, _attributes(body), read.name)
    return view


def _arg(args: Mapping[str, Any], path: str) -> Any:
    """The argument at a dotted ``path`` (``profile.id``; "" for ``args`` itself), or None."""
    value: Any = args
    for part in path.split(".") if path else ():
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _attrs(record: Mapping[str, Any]) -> Mapping[str, Any]:
    given = record.get("attributes")
    return given if isinstance(given, Mapping) else {}


def _named(record: Mapping[str, Any], read: Operation, rid: Any) -> str:
    """``list s7ZLZY 'Newsletter'``: the record's type, id and name (or title, label; a profile's
    email, phone number or external id). A campaign message keeps its label in its ``definition``
    (revision 2024-10-15 on), so a name is looked for there too."""
    attrs = _attrs(record)
    keys = ("email", "phone_number", "external_id") if record.get("type") == "profile" else ("name", "title", "label")
    definition = attrs.get("definition")
    places = (attrs, definition) if isinstance(definition, Mapping) else (attrs,)
    name = next((place[k] for place in places for k in keys if place.get(k)), None)
    return f"{record.get('type') or read.tag} {record.get('id', rid)}" + (f" {_shown(name)!r}" if name else "")


def _other(kit: Toolset, read: Operation, rid: Any) -> str:
    """Another resource a ``POST`` names, in words, or why it could not be read."""
    answer, why = _read(kit, read.name, id=rid)
    if why:
        return f"{rid}: {why}"
    return _named(answer.data, read, rid) if isinstance(answer.data, Mapping) else f"{rid}: no record"


def _profile_id(kit: Toolset, keys: Any, none_found: str = "") -> tuple[str | None, str | None]:
    """(the id of the profile ``keys`` names by email, phone number or external id, tried in that
    order as Klaviyo finds a profile, or None; why none was found, ``none_found`` added when no
    profile has them, or why a read could not be made): one ``get_profiles`` read per identifier
    given, until one finds it."""
    given = [(k, keys[k]) for k in PROFILE_KEYS if keys.get(k)] if isinstance(keys, Mapping) else []
    for key, value in given:
        answer, why = _read(kit, "get_profiles", filter=f"equals({key},{json.dumps(str(value))})", page_size=1)
        if why:
            return None, why
        found = answer.data
        first = found[0] if isinstance(found, list) and found and isinstance(found[0], Mapping) else None
        if first and first.get("id"):
            return str(first["id"]), None
    if not given:
        return None, None
    return None, "no profile has " + " or ".join(f"{key} {_shown(value)!r}" for key, value in given) + none_found


def _profiles(kit: Toolset, ids: list[str]) -> dict[str, Any]:
    """How many profiles a call names by id, and the first :data:`MAX_NAMED` in words (one read)."""
    unique = list(dict.fromkeys(ids))  # an id given twice is one profile
    out: dict[str, Any] = {"count": len(unique)}
    if len(unique) < len(ids):
        out["repeated"] = len(ids) - len(unique)
    first = unique[:MAX_NAMED]
    answer, why = _read(kit, "get_profiles", filter=_any_id(first), page_size=len(first))
    if why:
        return {**out, "unread": why}
    read = kit.catalog.get("get_profiles")
    by_id = {str(r.get("id")): r for r in answer.data or [] if isinstance(r, Mapping)}
    out["named"] = [_named(by_id[i], read, i) if i in by_id else f"{i}: no such profile" for i in first]
    return out


def _audiences(kit: Toolset, audiences: Mapping[str, Any]) -> dict[str, list[str]]:
    """A campaign's included and excluded audiences in words (``list s7ZLZY 'Newsletter'``): its
    ids name lists or segments, so one ``get_lists`` and one ``get_segments`` read (the first
    :data:`MAX_NAMED` of each side); an id neither read finds, or one not read, is shown as it is."""
    sides = {k: [str(i) for i in audiences.get(k) or []][:MAX_NAMED] for k in ("included", "excluded")}
    wanted = list(dict.fromkeys(sides["included"] + sides["excluded"]))
    names: dict[str, str] = {}
    for name in ("get_lists", "get_segments") if wanted else ():
        answer, why = _read(kit, name, filter=_any_id(wanted))
        if why:
            continue  # its ids are shown as they are
        read = kit.catalog.get(name)
        for record in answer.data or []:
            if isinstance(record, Mapping) and record.get("id"):
                names[str(record["id"])] = _named(record, read, record["id"])
    return {side: [names.get(i, f"{i} (not read)") for i in ids] for side, ids in sides.items() if ids}


def _attributes(body: Any) -> Mapping[str, Any]:
    """The attributes a JSON:API ``PATCH`` body sets."""
    data = body.get("data") if isinstance(body, Mapping) else None
    attrs = data.get("attributes") if isinstance(data, Mapping) else None
    return attrs if isinstance(attrs, Mapping) else {}


def _changes(now: Mapping[str, Any], given: Mapping[str, Any], read: str) -> list[dict[str, Any]]:
    """Each attribute ``given`` sets, with its value in ``now`` (what ``read`` returned): nested
    objects field by field, to any depth (``definition.content.subject``), so a change of one field
    never looks like the rest of its object dropped. An attribute the read left out is marked so,
    not shown as unset."""
    out: list[dict[str, Any]] = []
    for key, after in given.items():
        out += _nested(key, now.get(key), after, key in now)
    # what changes first: forty unchanged properties sent along must not push the one change out of view
    out.sort(key=lambda change: bool(change["same"]))
    if len(out) <= MAX_CHANGES:
        return out
    rest = out[MAX_CHANGES:]
    changed = sum(1 for change in rest if not change["same"])
    of_them = f"{changed} of them changes" if changed else "none of them a change"
    more = {"field": "…", "before": None, "after": f"{len(rest)} more in the request, {of_them}"}
    return [*out[:MAX_CHANGES], more]


def _nested(field: str, before: Any, after: Any, returned: bool) -> list[dict[str, Any]]:
    """The changes setting ``field`` to ``after`` makes: one per leaf of a non-empty object whose
    value now is an object or unset, else one for the whole value."""
    if isinstance(after, Mapping) and after and isinstance(before, Mapping | None):
        out: list[dict[str, Any]] = []
        for sub, value in after.items():
            out += _nested(f"{field}.{sub}", (before or {}).get(sub), value, returned)
        return out
    return [_change(field, before, after, returned)]


def _change(field: str, before: Any, after: Any, returned: bool) -> dict[str, Any]:
    masked = is_secret_key(field.rsplit(".", 1)[-1])
    if masked:
        shown = ("[redacted]" if before is not None else None, "[redacted]" if after is not None else None)
    else:
        shown = _shown_pair(before, after)
    return {
        "field": field,
        "before": shown[0],
        "after": shown[1],
        "same": returned and before == after,
        "returned": returned,
    }


def _shown_pair(before: Any, after: Any) -> tuple[Any, Any]:
    """``before`` and ``after`` for the screen. Two long strings that differ past their heads (a
    template whose link changed deep in its HTML) would look the same capped at their heads: they are
    shown from just before the first character that differs instead."""
    was, now = redact(before), redact(after)
    if not (isinstance(was, str) and isinstance(now, str)) or was == now:
        return _shown(before), _shown(after)
    if max(len(was), len(now)) <= MAX_VALUE_CHARS:
        return was, now
    first = next((i for i, (a, b) in enumerate(zip(was, now, strict=False)) if a != b), min(len(was), len(now)))
    start = max(0, first - 40)
    if start == 0:
        return _shown(before), _shown(after)
    return _window(was, start), _window(now, start)


def _window(text: str, start: int) -> str:
    """``MAX_VALUE_CHARS`` of ``text`` from ``start``, saying where they sit in it."""
    piece = text[start : start + MAX_VALUE_CHARS]
    more = "…" if start + MAX_VALUE_CHARS < len(text) else ""
    return f"…{piece}{more} (from character {start + 1:,} of {len(text):,} characters)"


def _linked(kit: Toolset, op: Operation, rid: Any) -> dict[str, Any] | None:
    """The ids a relationship links now (the ``GET`` of the same path), for a ``PATCH`` that replaces
    them, or ``unread``: why they could not be read (a person told nothing would think nothing is lost)."""
    read = _get_at(kit, op.path)
    if read is None:
        return None
    answer, why = _read(kit, read.name, id=rid)
    if why:
        return {"unread": why}
    data = answer.data
    ids = [str(d.get("id")) for d in data if isinstance(d, Mapping)] if isinstance(data, list) else []
    more = bool((answer.links or {}).get("next"))
    return {"count": f"{len(ids)} or more" if more else len(ids), "ids": ids[:20]}


def _shown(value: Any) -> Any:
    """``value`` for the screen: secrets masked, a long one as its length and head."""
    value = redact(value)
    if isinstance(value, str | int | float | bool) or value is None:
        text = value if isinstance(value, str) else None
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    if text is not None and len(text) > MAX_VALUE_CHARS:
        return f"{text[:MAX_VALUE_CHARS]}… ({len(text):,} characters)"
    return value
