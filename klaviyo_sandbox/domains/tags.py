"""Sandbox domain: tags and tag groups.

Every account has one default tag group (never deletable); at most 500 tags and 50 tag groups; a
tag cannot move between groups and only names change. Links to campaigns, flows, lists and segments
are stored on the tag (``relationships``), so ``campaign.tags`` etc. are found from the tag side; a
resource takes at most 100 tags and one tag per exclusive group.
"""

from __future__ import annotations

import uuid

from .._context import Ctx, Reply
from .._jsonapi import SandboxError, bad_request
from .._services import Services
from .._store import Linkage, Resource
from ..domain import DomainBuilder

_d = DomainBuilder("tags")


MAX_TAGS, MAX_TAG_GROUPS, MAX_TAGS_PER_RESOURCE = 500, 50, 100
_TAGGABLE = {"campaigns": "campaign", "flows": "flow", "lists": "list", "segments": "segment"}


def new_uuid(svc: Services) -> str:
    return str(uuid.UUID(int=svc.store.rng.getrandbits(128)))


def ensure_default_tag_group(svc: Services, now: float | None = None) -> Resource:
    """The account's default tag group, made (at ``now``, else the clock's time) if it has none."""
    for group in svc.store.iter("tag-group"):
        if group.attributes.get("default"):
            return group
    now = svc.clock.time() if now is None else now
    group = Resource("tag-group", new_uuid(svc), {"name": "Default", "exclusive": False, "default": True}, {}, now, now)
    svc.store.put(group)
    return group


def create_tag(svc: Services, name: str, group: Resource, now: float) -> Resource:
    tag = Resource("tag", new_uuid(svc), {"name": name}, {"tag-group": ("tag-group", group.id)}, now, now)
    svc.store.put(tag)
    return tag


def _tag_group_of(svc: Services, tag: Resource) -> Resource | None:
    links = tag.linked("tag-group")
    return svc.store.get("tag-group", links[0][1]) if links else None


@_d.handles("get_tag_groups")
def _get_tag_groups(ctx: Ctx) -> Reply:
    ensure_default_tag_group(ctx.svc)
    return ctx.many(ctx.store.all("tag-group"))


@_d.handles("create_tag_group")
def _create_tag_group(ctx: Ctx) -> Reply:
    ensure_default_tag_group(ctx.svc)
    if ctx.store.count("tag-group") >= MAX_TAG_GROUPS:
        raise bad_request(
            f"An account cannot have more than {MAX_TAG_GROUPS} tag groups; delete one first.", pointer="/data"
        )
    group = Resource(
        "tag-group",
        new_uuid(ctx.svc),
        {"name": ctx.attrs["name"], "exclusive": bool(ctx.attrs.get("exclusive") or False), "default": False},
        {},
        ctx.now,
        ctx.now,
    )
    ctx.store.put(group)
    return ctx.one(group)


@_d.handles("update_tag_group", "update_tag")
def _rename(ctx: Ctx) -> Reply:
    rtype = "tag" if ctx.op.operation_id == "update_tag" else "tag-group"
    res = ctx.get(rtype)
    if ctx.data.get("id") != res.id:
        raise SandboxError(
            409, "conflict", "Conflict.", f"The body's id does not match the {rtype} being updated.", pointer="/data/id"
        )
    if rtype == "tag" and ctx.data.get("relationships"):
        raise bad_request(
            "A tag cannot be moved to another tag group; only its name can change.", pointer="/data/relationships"
        )
    res.attributes["name"] = ctx.attrs["name"]
    ctx.store.put(res)
    return ctx.no_content()


@_d.handles("delete_tag_group")
def _delete_tag_group(ctx: Ctx) -> Reply:
    group = ctx.get("tag-group")
    if group.attributes.get("default"):
        raise bad_request("The default tag group cannot be deleted.", pointer="/data/id")
    for tag in ctx.store.iter("tag"):
        if tag.relationships.get("tag-group") == ("tag-group", group.id):
            ctx.store.delete("tag", tag.id)
    ctx.store.delete("tag-group", group.id)
    return ctx.no_content()


@_d.handles("create_tag")
def _create_tag(ctx: Ctx) -> Reply:
    svc = ctx.svc
    if ctx.store.count("tag") >= MAX_TAGS:
        raise bad_request(
            f"An account cannot have more than {MAX_TAGS} tags; delete unused tags first.", pointer="/data"
        )
    links = ctx.rel("tag-group")
    if links:
        group = ctx.store.get("tag-group", links[0][1])
        if group is None:
            raise SandboxError(
                404,
                "not_found",
                "Not found.",
                f"A tag group with id {links[0][1]!r} does not exist.",
                pointer="/data/relationships/tag-group/data/id",
            )
    else:
        group = ensure_default_tag_group(svc)
    return ctx.one(create_tag(svc, ctx.attrs["name"], group, ctx.now))


@_d.handles("delete_tag")
def _delete_tag(ctx: Ctx) -> Reply:
    ctx.store.delete("tag", ctx.get("tag").id)
    return ctx.no_content()


@_d.handles("tag_campaigns", "tag_flows", "tag_lists", "tag_segments")
def _tag(ctx: Ctx) -> Reply:
    rel = ctx.op.operation_id.removeprefix("tag_")
    tag = ctx.get("tag")
    targets = _targets(ctx, rel)
    group = _tag_group_of(ctx.svc, tag)
    siblings = [t for t in ctx.store.iter("tag") if t.id != tag.id]
    for n, target in enumerate(targets):
        if target in tag.linked(rel):
            continue
        tags_on = [t for t in siblings if target in t.linked(rel)]
        if len(tags_on) + 1 > MAX_TAGS_PER_RESOURCE:
            raise bad_request(
                f"{target[0]} {target[1]} already has {MAX_TAGS_PER_RESOURCE} tags, the most allowed.",
                pointer=f"/data/{n}/id",
            )
        if group is not None and group.attributes.get("exclusive"):
            clash = next((t for t in tags_on if t.relationships.get("tag-group") == ("tag-group", group.id)), None)
            if clash is not None:
                raise SandboxError(
                    409,
                    "conflict",
                    "Conflict.",
                    f"Tag group {group.attributes.get('name')!r} is exclusive and {target[0]} {target[1]} already has "
                    f"its tag {clash.attributes.get('name')!r}; remove that tag first.",
                    pointer=f"/data/{n}/id",
                )
    ctx.svc.link(tag, rel, targets)
    return ctx.no_content()


@_d.handles("remove_tag_from_campaigns", "remove_tag_from_flows", "remove_tag_from_lists", "remove_tag_from_segments")
def _untag(ctx: Ctx) -> Reply:
    rel = ctx.op.operation_id.removeprefix("remove_tag_from_")
    tag = ctx.get("tag")
    ctx.svc.unlink(tag, rel, _targets(ctx, rel))
    return ctx.no_content()


def _targets(ctx: Ctx, rel: str) -> list[Linkage]:
    rtype = _TAGGABLE[rel]
    links = ctx.linkages()
    for n, (ltype, lid) in enumerate(links):
        if ltype != rtype or ctx.store.get(rtype, lid) is None:
            raise SandboxError(
                404, "not_found", "Not found.", f"A {rtype} with id {lid!r} does not exist.", pointer=f"/data/{n}/id"
            )
    return list(dict.fromkeys(links))


DOMAIN = _d.build()
