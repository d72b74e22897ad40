"""Catalogs: items, variants and categories with Klaviyo's compound ids, relationships and bulk jobs.

Klaviyo ids catalog resources ``$custom:::$default:::<external_id>`` (the only integration type is
``$custom`` and the only catalog type ``$default``), so creating the same external id twice is a 409.
An item's categories are stored once, on the item (``relationships["categories"]``); a category's
items are computed from that (a related resolver), so both sides of the relationship endpoints agree.
A variant links its item (``relationships["item"]``); deleting an item deletes its variants.

Bulk create/update/delete jobs (up to 100 resources each) apply when due (``Sandbox.tick``): each
resource is applied on its own, failures become the job's ``errors`` (with ``source.pointer`` into
the request) and ``failed_count``, the rest ``completed_count``; created or updated resources are
the job's ``items``/``variants``/``categories`` relationship (``include=items``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._context import Ctx, Reply
from .._jsonapi import SandboxError, bad_request, iso
from .._services import Services
from .._store import Linkage, Resource
from ..domain import DomainBuilder
from ._common import find_or_create_metric, find_or_create_profile, record_event
from .profiles import check_identifiers

Json = dict[str, Any]
_d = DomainBuilder("catalogs")
INTEGRATION = "$custom"
CATALOG = "$default"
ITEM, VARIANT, CATEGORY = "catalog-item", "catalog-variant", "catalog-category"
_FIELDS = {
    ITEM: (
        "title",
        "price",
        "description",
        "url",
        "image_full_url",
        "image_thumbnail_url",
        "images",
        "custom_metadata",
        "published",
    ),
    VARIANT: (
        "title",
        "description",
        "sku",
        "inventory_policy",
        "inventory_quantity",
        "price",
        "url",
        "image_full_url",
        "image_thumbnail_url",
        "images",
        "custom_metadata",
        "published",
    ),
    CATEGORY: ("name",),
}
_NAMES = {ITEM: "catalog item", VARIANT: "catalog variant", CATEGORY: "catalog category"}


def compound_id(external_id: str) -> str:
    """``$custom:::$default:::<external_id>``, the id Klaviyo gives catalog resources."""
    return f"{INTEGRATION}:::{CATALOG}:::{external_id}"


def _missing(rtype: str, rid: str, pointer: str) -> SandboxError:
    return SandboxError(
        404, "not_found", "Not found.", f"A {_NAMES.get(rtype, rtype)} with id {rid!r} does not exist.", pointer=pointer
    )


def _linked(svc: Services, links: list[Linkage], rtype: str, pointer: str) -> list[Linkage]:
    """The given linkages, checked to exist (404 naming the first missing one)."""
    for n, (ltype, lid) in enumerate(links):
        if ltype != rtype or svc.store.get(rtype, lid) is None:
            raise _missing(rtype, lid, f"{pointer}/{n}/id")
    return list(dict.fromkeys(links))


def _rel(data: Mapping[str, Any], name: str) -> list[Linkage] | None:
    """Linkages in ``data.relationships.<name>.data`` (None when the relationship is absent)."""
    rel = (data.get("relationships") or {}).get(name)
    if not isinstance(rel, Mapping) or "data" not in rel:
        return None
    value = rel["data"]
    items = value if isinstance(value, list) else ([value] if value else [])
    return [(str(d.get("type")), str(d.get("id"))) for d in items if isinstance(d, Mapping)]


# -- single-resource operations (used by the endpoints and the bulk jobs) ------------------------------
def create(svc: Services, rtype: str, data: Mapping[str, Any], now: float, pointer: str = "/data") -> Resource:
    attrs = dict(data.get("attributes") or {})
    if attrs.get("integration_type") not in (None, INTEGRATION):
        raise bad_request(
            f"integration_type must be {INTEGRATION!r}.", pointer=f"{pointer}/attributes/integration_type"
        )
    if attrs.get("catalog_type") not in (None, CATALOG):
        raise bad_request(
            f"catalog_type must be {CATALOG!r}; it is the only catalog type.",
            pointer=f"{pointer}/attributes/catalog_type",
        )
    external = str(attrs.get("external_id") or "")
    if not external.strip():
        raise bad_request("external_id must not be empty.", pointer=f"{pointer}/attributes/external_id")
    rid = compound_id(external)
    if svc.store.get(rtype, rid) is not None:
        raise SandboxError(
            409,
            "duplicate",
            "Conflict.",
            f"A {_NAMES[rtype]} with external_id {external!r} already exists (id {rid}); update it "
            "instead, or use another external_id.",
            pointer=f"{pointer}/attributes/external_id",
            meta={"duplicate_id": rid},
        )
    values: Json = {"external_id": external, **{k: attrs.get(k) for k in _FIELDS[rtype]}}
    if rtype != CATEGORY:
        values["published"] = True if attrs.get("published") is None else attrs["published"]
    if rtype == VARIANT:
        values["inventory_policy"] = attrs.get("inventory_policy") or 0
    values["created"] = values["updated"] = iso(now)
    res = Resource(rtype, rid, values, {}, now, now)
    rel_pointer = f"{pointer}/relationships"
    items: list[Linkage] = []
    if rtype == VARIANT:
        item = _rel(data, "item") or []
        if not item:
            raise bad_request("A variant needs its item: relationships.item.data.id.", pointer=f"{rel_pointer}/item")
        if svc.store.get(ITEM, item[0][1]) is None:
            raise _missing(ITEM, item[0][1], f"{rel_pointer}/item/data/id")
        res.relationships["item"] = (ITEM, item[0][1])
    elif rtype == ITEM:
        res.relationships["categories"] = _linked(
            svc, _rel(data, "categories") or [], CATEGORY, f"{rel_pointer}/categories/data"
        )
    else:
        items = _linked(svc, _rel(data, "items") or [], ITEM, f"{rel_pointer}/items/data")
    svc.store.put(res)
    if items:
        set_category_items(svc, res, items, "add")
    return res


def update(
    svc: Services, rtype: str, res: Resource, data: Mapping[str, Any], now: float, pointer: str = "/data"
) -> Resource:
    if data.get("id") is not None and str(data["id"]) != res.id:
        raise SandboxError(
            409,
            "conflict",
            "Conflict.",
            f"The body's id {data['id']!r} does not match the {_NAMES[rtype]} being updated ({res.id}).",
            pointer=f"{pointer}/id",
        )
    rel_pointer = f"{pointer}/relationships"
    categories = _rel(data, "categories") if rtype == ITEM else None
    if categories is not None:
        categories = _linked(svc, categories, CATEGORY, f"{rel_pointer}/categories/data")
    items = _rel(data, "items") if rtype == CATEGORY else None
    if items is not None:
        items = _linked(svc, items, ITEM, f"{rel_pointer}/items/data")
    for key, value in (data.get("attributes") or {}).items():
        if key in _FIELDS[rtype]:
            res.attributes[key] = value
    if categories is not None:
        res.relationships["categories"] = categories
    if items is not None:
        set_category_items(svc, res, items)
    res.attributes["updated"] = iso(now)
    res.updated = now
    svc.store.put(res)
    return res


def delete(svc: Services, rtype: str, rid: str) -> None:
    """Delete a catalog resource and the links to it (an item takes its variants with it)."""
    if svc.store.get(rtype, rid) is None:
        raise _missing(rtype, rid, "/data/id")
    svc.store.delete(rtype, rid)
    if rtype == ITEM:
        for variant in svc.store.iter(VARIANT):
            if variant.relationships.get("item") == (ITEM, rid):
                svc.store.delete(VARIANT, variant.id)
    elif rtype == CATEGORY:
        for item in svc.store.iter(ITEM):
            if (CATEGORY, rid) in item.linked("categories"):
                item.relationships["categories"] = [c for c in item.linked("categories") if c != (CATEGORY, rid)]
                svc.store.put(item)


@_d.related(CATEGORY, "items")
def category_items(svc: Services, category: Resource) -> list[Linkage]:
    return [(ITEM, item.id) for item in svc.store.iter(ITEM) if (CATEGORY, category.id) in item.linked("categories")]


def set_category_items(svc: Services, category: Resource, items: list[Linkage], mode: str = "replace") -> None:
    """Make ``items`` the category's items ("replace"), or add ("add") / remove ("remove") them."""
    wanted = set(items)
    link = (CATEGORY, category.id)
    for item in svc.store.iter(ITEM):
        current = item.linked("categories")
        inside = (ITEM, item.id) in wanted
        has = link in current
        if mode == "add" and inside and not has:
            item.relationships["categories"] = [*current, link]
        elif (mode == "remove" and inside and has) or (mode == "replace" and has and not inside):
            item.relationships["categories"] = [c for c in current if c != link]
        elif mode == "replace" and inside and not has:
            item.relationships["categories"] = [*current, link]
        else:
            continue
        svc.store.put(item)


@_d.related(ITEM, "variants")
def item_variants(svc: Services, item: Resource) -> list[Linkage]:
    return [(VARIANT, v.id) for v in svc.store.iter(VARIANT) if v.relationships.get("item") == (ITEM, item.id)]


for _type in (ITEM, VARIANT, CATEGORY):
    _d.add_field(_type, "ids", lambda store, res: res.id)
_d.add_field(ITEM, "category.id", lambda store, res: [i for _, i in res.linked("categories")])
_d.add_field(VARIANT, "item.id", lambda store, res: next((i for _, i in res.linked("item")), None))
_d.add_field(
    CATEGORY,
    "item.id",
    lambda store, res: [item.id for item in store.iter(ITEM) if (CATEGORY, res.id) in item.linked("categories")],
)


# -- endpoints ------------------------------------------------------------------------------------------
_TYPE_OF = {"catalog_item": ITEM, "catalog_variant": VARIANT, "catalog_category": CATEGORY}


@_d.handles("create_catalog_item", "create_catalog_variant", "create_catalog_category")
def _create(ctx: Ctx) -> Reply:
    rtype = _TYPE_OF[ctx.op.operation_id.removeprefix("create_")]
    return ctx.one(create(ctx.svc, rtype, ctx.data, ctx.now))


@_d.handles("update_catalog_item", "update_catalog_variant", "update_catalog_category")
def _update(ctx: Ctx) -> Reply:
    rtype = _TYPE_OF[ctx.op.operation_id.removeprefix("update_")]
    return ctx.one(update(ctx.svc, rtype, ctx.get(rtype), ctx.data, ctx.now))


@_d.handles("delete_catalog_item", "delete_catalog_variant", "delete_catalog_category")
def _delete(ctx: Ctx) -> Reply:
    rtype = _TYPE_OF[ctx.op.operation_id.removeprefix("delete_")]
    ctx.get(rtype)
    delete(ctx.svc, rtype, ctx.id)
    return ctx.no_content()


@_d.handles(
    "add_categories_to_catalog_item", "remove_categories_from_catalog_item", "update_categories_for_catalog_item"
)
def _item_categories(ctx: Ctx) -> Reply:
    item = ctx.get(ITEM)
    links = _linked(ctx.svc, ctx.linkages(), CATEGORY, "/data")
    current = item.linked("categories")
    if ctx.op.operation_id.startswith("add_"):
        item.relationships["categories"] = list(dict.fromkeys([*current, *links]))
    elif ctx.op.operation_id.startswith("remove_"):
        item.relationships["categories"] = [c for c in current if c not in set(links)]
    else:
        item.relationships["categories"] = links
    item.attributes["updated"] = ctx.now_iso
    ctx.store.put(item)
    return ctx.no_content()


@_d.handles("add_items_to_catalog_category", "remove_items_from_catalog_category", "update_items_for_catalog_category")
def _category_items(ctx: Ctx) -> Reply:
    category = ctx.get(CATEGORY)
    links = _linked(ctx.svc, ctx.linkages(), ITEM, "/data")
    mode = (
        "add"
        if ctx.op.operation_id.startswith("add_")
        else "remove"
        if ctx.op.operation_id.startswith("remove_")
        else "replace"
    )
    set_category_items(ctx.svc, category, links, mode)
    return ctx.no_content()


@_d.handles("create_back_in_stock_subscription")
def _back_in_stock(ctx: Ctx) -> Reply:
    """Subscribe a profile to a variant's restock: upserts the profile, records the event."""
    svc = ctx.svc
    variant_links = ctx.rel("variant")
    if not variant_links:
        raise bad_request(
            "relationships.variant.data.id (the catalog variant) is required.", pointer="/data/relationships/variant"
        )
    variant = svc.store.get(VARIANT, variant_links[0][1])
    if variant is None:
        raise _missing(VARIANT, variant_links[0][1], "/data/relationships/variant/data/id")
    who = (ctx.attrs.get("profile") or {}).get("data") or {}
    ident = {**(who.get("attributes") or {}), "id": who.get("id")}
    check_identifiers(ident, "/data/attributes/profile/data/attributes")  # the same rules as profile writes
    if not any(ident.get(k) for k in ("id", "email", "phone_number", "external_id")):
        raise bad_request(
            "Give the profile's email, phone_number, external_id or id in attributes.profile.",
            pointer="/data/attributes/profile",
        )
    channels = list(ctx.attrs.get("channels") or [])
    if "EMAIL" in channels and not (ident.get("email") or ident.get("id")):
        raise bad_request(
            "The EMAIL channel needs the profile's email.", pointer="/data/attributes/profile/data/attributes/email"
        )
    if "SMS" in channels and not (ident.get("phone_number") or ident.get("id")):
        raise bad_request(
            "The SMS channel needs the profile's phone_number.",
            pointer="/data/attributes/profile/data/attributes/phone_number",
        )
    if ident.get("id") and svc.store.get("profile", str(ident["id"])) is None:
        raise SandboxError(
            404,
            "not_found",
            "Not found.",
            f"A profile with id {ident['id']!r} does not exist.",
            pointer="/data/attributes/profile/data/id",
        )
    profile, _ = find_or_create_profile(
        svc, {k: v for k, v in ident.items() if k in ("id", "email", "phone_number", "external_id")}, ctx.now
    )
    metric = find_or_create_metric(svc, "Subscribed to Back in Stock", ctx.now)
    record_event(
        svc,
        profile,
        metric,
        {
            "variant_id": variant.id,
            "sku": variant.attributes.get("sku"),
            "product_name": variant.attributes.get("title"),
            "channels": channels,
        },
        ctx.now,
        unique_id=f"bis-{variant.id}-{ctx.now}",
    )
    return ctx.accepted()


# -- bulk jobs ------------------------------------------------------------------------------------------
_JOB_OPS = {
    "bulk_create_catalog_items": (ITEM, "create", "items"),
    "bulk_update_catalog_items": (ITEM, "update", "items"),
    "bulk_delete_catalog_items": (ITEM, "delete", "items"),
    "bulk_create_catalog_variants": (VARIANT, "create", "variants"),
    "bulk_update_catalog_variants": (VARIANT, "update", "variants"),
    "bulk_delete_catalog_variants": (VARIANT, "delete", "variants"),
    "bulk_create_catalog_categories": (CATEGORY, "create", "categories"),
    "bulk_update_catalog_categories": (CATEGORY, "update", "categories"),
    "bulk_delete_catalog_categories": (CATEGORY, "delete", "categories"),
}


def _job_items(body: Any, key: str) -> list[Any]:
    attrs = ((body or {}).get("data") or {}).get("attributes") or {}
    items = (attrs.get(key) or {}).get("data")
    return items if isinstance(items, list) else []


@_d.handles(*_JOB_OPS)
def _bulk(ctx: Ctx) -> Reply:
    job_type = str(ctx.data.get("type"))
    return ctx.one(ctx.create_job(job_type))


def _job_runner(operation_id: str) -> Callable[[Services, Resource], None]:
    rtype, action, key = _JOB_OPS[operation_id]

    def run(svc: Services, job: Resource) -> None:
        now = svc.clock.time()
        done: list[Linkage] = []
        errors: list[Json] = []
        for n, item in enumerate(_job_items(job.private.get("body"), key)):
            pointer = f"/data/attributes/{key}/data/{n}"
            try:
                if action == "create":
                    done.append((rtype, create(svc, rtype, item, now, pointer).id))
                elif action == "update":
                    res = svc.store.get(rtype, str(item.get("id")))
                    if res is None:
                        raise _missing(rtype, str(item.get("id")), f"{pointer}/id")
                    done.append((rtype, update(svc, rtype, res, item, now, pointer).id))
                else:
                    if svc.store.get(rtype, str(item.get("id"))) is None:
                        raise _missing(rtype, str(item.get("id")), f"{pointer}/id")
                    delete(svc, rtype, str(item.get("id")))
                    done.append((rtype, str(item.get("id"))))
            except SandboxError as exc:
                body = exc.body()["errors"][0]
                errors.append(
                    {
                        "id": body["id"],
                        "code": exc.code,
                        "title": exc.title,
                        "detail": exc.detail,
                        "source": {"pointer": exc.pointer or pointer},
                    }
                )
        job.attributes.update(completed_count=len(done), failed_count=len(errors), errors=errors)
        if action != "delete":
            job.relationships[key] = done

    return run


for _op in _JOB_OPS:
    _d.job(_op)(_job_runner(_op))

DOMAIN = _d.build()
