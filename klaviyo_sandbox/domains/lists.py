"""Sandbox domain: lists and their membership, as Klaviyo documents them.

Membership is stored on the list: ``relationships["profiles"]`` holds the member linkages (so
``sandbox.related(list, "profiles")``, the generic engine and other domains see it) and
``private["joined"]`` maps profile id -> epoch seconds it joined (``joined_group_at``).

Rules kept here:

- adding to a list never changes consent (use the subscribe job for that), and each newly added
  profile is announced as ``profile_added_to_list`` so list-triggered flows can react;
- at most 1000 profiles per add/remove call; an unknown profile id makes the whole add a 404
  (JSON:API: a relationship update naming a missing resource), while removing one that is not a
  member is a no-op;
- ``joined_group_at`` of members stored without a time (seeded) is the later of the list's and
  the profile's creation;
- lists created without ``opt_in_process`` get the sandbox account default, ``single_opt_in``, and
  an update that clears it (``null``) sets that default again; a name cannot be cleared;
- an account holds at most 1,000 lists and segments together (Klaviyo Help Center, "Create and add
  contacts to a new list": "You can have up to 1,000 lists and segments in your account at any given
  time"): creating one more list or segment is a 400 (:func:`check_group_room`).

Segments live in ``segments.py``; profile <-> list and profile <-> segment relationships are
computed (this domain's and the segments domain's related resolvers), never stored on the profile.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._context import Ctx, Reply
from .._jsonapi import SandboxError, bad_request, iso
from .._services import Services
from .._store import Linkage, Resource
from ..domain import DomainBuilder

ACCOUNT_OPT_IN_DEFAULT = "single_opt_in"
#: Lists and segments an account can have at once, counted together.
MAX_LISTS_AND_SEGMENTS = 1000
_d = DomainBuilder("lists")


# -- membership storage ----------------------------------------------------------------------------
def member_ids(list_res: Resource) -> list[str]:
    """Profile ids in the list, in the order they joined."""
    return [rid for rtype, rid in list_res.linked("profiles") if rtype == "profile"]


def joined_at(list_res: Resource, profile: Resource) -> float:
    """When ``profile`` joined; for members stored without a time (seeded), the later of the
    list's and the profile's creation."""
    joined = list_res.private.get("joined") or {}
    return float(joined.get(profile.id, max(list_res.created, profile.created)))


def is_member(list_res: Resource, profile_id: str) -> bool:
    return ("profile", profile_id) in set(list_res.linked("profiles"))


def add_members(
    svc: Services, list_res: Resource, profiles: Iterable[Resource], now: float, *, announce: bool = True
) -> list[Resource]:
    """Add profiles to the list (consent untouched); the newly added ones, announced unless told not to."""
    current = list_res.linked("profiles")
    have = set(current)
    joined: dict[str, float] = list_res.private.setdefault("joined", {})
    added = []
    for profile in profiles:
        link = ("profile", profile.id)
        if link in have:
            continue
        current.append(link)
        have.add(link)
        joined[profile.id] = now
        added.append(profile)
    if added:
        list_res.relationships["profiles"] = current
        list_res.attributes["updated"] = iso(now)
        list_res.updated = now
        svc.store.put(list_res)
        if announce:
            for profile in added:
                svc.emit("profile_added_to_list", {"list": list_res, "profile": profile})
    return added


def remove_members(svc: Services, list_res: Resource, profile_ids: Iterable[str], now: float) -> list[str]:
    """Remove profiles from the list (consent untouched); the ids that were members."""
    drop = set(profile_ids)
    current = list_res.linked("profiles")
    removed = [rid for rtype, rid in current if rtype == "profile" and rid in drop]
    if removed:
        list_res.relationships["profiles"] = [link for link in current if link[1] not in drop]
        joined = list_res.private.get("joined") or {}
        for rid in removed:
            joined.pop(rid, None)
        list_res.attributes["updated"] = iso(now)
        list_res.updated = now
        svc.store.put(list_res)
    return removed


def lists_of(svc: Services, profile_id: str) -> list[Resource]:
    return [lst for lst in svc.store.iter("list") if is_member(lst, profile_id)]


@_d.related("profile", "lists")
def _profile_lists(svc: Services, profile: Resource) -> list[Linkage]:
    return [("list", lst.id) for lst in lists_of(svc, profile.id)]


# -- group members as rendered (a profile plus joined_group_at) ------------------------------------
def member_view(profile: Resource, joined: float) -> Resource:
    """A render-only copy of ``profile`` carrying ``joined_group_at`` (never stored)."""
    attrs = {**profile.attributes, "joined_group_at": iso(joined)}
    return Resource(
        profile.type, profile.id, attrs, profile.relationships, profile.created, profile.updated, profile.private
    )


def members_reply(ctx: Ctx, members: list[Resource], *, ids_only: bool) -> Reply:
    """A page of group members (filter, sort and cursor from the query), as profiles or linkages;
    without a sort, in the order they joined (then as stored: members joined at once)."""

    def joined(member: Resource) -> float | str | None:
        return ctx.fields.sort_value(member, "joined_group_at")

    if not ids_only:
        return ctx.many(members, first_by=joined)
    page, links = ctx.paginate(ctx.apply_filter(members), first_by=joined)
    data = [{"type": "profile", "id": r.id} for r in page]
    return Reply(ctx.schemas.success_status(ctx.op), {"data": data, "links": links})


def list_members(svc: Services, list_res: Resource) -> list[Resource]:
    """The list's member profiles as render copies with ``joined_group_at``."""
    out = []
    for pid in member_ids(list_res):
        profile = svc.store.get("profile", pid)
        if profile is not None:
            out.append(member_view(profile, joined_at(list_res, profile)))
    return out


def check_group_room(svc: Services, what: str) -> None:
    """A 400 when the account already has ``MAX_LISTS_AND_SEGMENTS`` lists and segments, before a
    ``what`` ("list" or "segment") is created."""
    lists, segments = svc.store.count("list"), svc.store.count("segment")
    if lists + segments >= MAX_LISTS_AND_SEGMENTS:
        raise bad_request(
            f"An account can have at most {MAX_LISTS_AND_SEGMENTS:,} lists and segments together; this one has "
            f"{lists:,} list(s) and {segments:,} segment(s). Delete a list or segment no longer used "
            f"(DELETE /api/lists/{{id}} or /api/segments/{{id}}) before creating this {what}.",
            pointer="/data",
        )


# -- handlers --------------------------------------------------------------------------------------
@_d.handles("create_list")
def create_list(ctx: Ctx) -> Reply:
    name = str(ctx.attrs.get("name") or "").strip()
    if not name:
        raise bad_request(
            "A list needs a name; give data.attributes.name, e.g. 'Newsletter'.", pointer="/data/attributes/name"
        )
    check_group_room(ctx.svc, "list")
    now = ctx.now
    res = Resource(
        "list",
        ctx.store.new_id("list", now),
        {
            "name": name,
            "opt_in_process": ctx.attrs.get("opt_in_process") or ACCOUNT_OPT_IN_DEFAULT,
            "created": iso(now),
            "updated": iso(now),
        },
        {"profiles": []},
        now,
        now,
        {"joined": {}},
    )
    ctx.store.put(res)
    return ctx.one(res, status=201)


@_d.handles("update_list")
def update_list(ctx: Ctx) -> Reply:
    res = ctx.get("list")
    ctx.check_body_id(res.id)
    attrs = ctx.attrs
    if "name" in attrs:
        if not str(attrs["name"] or "").strip():
            raise bad_request("A list's name cannot be empty.", pointer="/data/attributes/name")
        res.attributes["name"] = str(attrs["name"]).strip()
    if "opt_in_process" in attrs:  # null clears it: back to the account default, as a new list gets
        res.attributes["opt_in_process"] = attrs["opt_in_process"] or ACCOUNT_OPT_IN_DEFAULT
    res.attributes["updated"] = ctx.now_iso
    res.updated = ctx.now
    ctx.store.put(res)
    return ctx.one(res)


@_d.handles("get_list")
def get_list(ctx: Ctx) -> Reply:
    res = ctx.get("list")
    if "profile_count" in (ctx.list_param("additional-fields[list]") or []):
        count = sum(1 for pid in member_ids(res) if ctx.store.get("profile", pid) is not None)
        res = Resource(
            res.type,
            res.id,
            {**res.attributes, "profile_count": count},
            res.relationships,
            res.created,
            res.updated,
            res.private,
        )
    return ctx.one(res)


def _requested_profiles(ctx: Ctx) -> list[str]:
    data = ctx.data
    if not isinstance(data, list):
        raise bad_request('The body must be {"data": [{"type": "profile", "id": ...}, ...]}.', pointer="/data")
    ids = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or item.get("type") != "profile" or not item.get("id"):
            raise bad_request('Each item must be {"type": "profile", "id": "<profile id>"}.', pointer=f"/data/{i}")
        ids.append(str(item["id"]))
    return ids


@_d.handles("add_profiles_to_list")
def add_profiles_to_list(ctx: Ctx) -> Reply:
    list_res = ctx.get("list")
    ids = _requested_profiles(ctx)
    profiles = []
    for i, pid in enumerate(ids):
        profile = ctx.store.get("profile", pid)
        if profile is None:
            raise SandboxError(
                404,
                "not_found",
                "Not found.",
                f"A profile with id {pid} does not exist; create it first (create_profile or "
                "create_or_update_profile) or look its id up with get_profiles.",
                pointer=f"/data/{i}/id",
            )
        profiles.append(profile)
    add_members(ctx.svc, list_res, profiles, ctx.now)
    return ctx.no_content()


@_d.handles("remove_profiles_from_list")
def remove_profiles_from_list(ctx: Ctx) -> Reply:
    list_res = ctx.get("list")
    remove_members(ctx.svc, list_res, _requested_profiles(ctx), ctx.now)
    return ctx.no_content()


@_d.handles("get_profiles_for_list", "get_profile_ids_for_list")
def get_list_members(ctx: Ctx) -> Reply:
    list_res = ctx.get("list")
    members = list_members(ctx.svc, list_res)
    return members_reply(ctx, members, ids_only=ctx.op.operation_id == "get_profile_ids_for_list")


DOMAIN = _d.build()
