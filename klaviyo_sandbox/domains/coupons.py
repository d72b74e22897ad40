"""Coupons and coupon codes: ids, uniqueness, statuses and the bulk-create job.

As Klaviyo documents: a coupon's id is its ``external_id`` (so creating one twice is a 409); a code's
id is ``<coupon id>-<unique_code>`` and a code is unique within its coupon (409 on a duplicate);
``expires_at`` defaults to a year after creation; new codes are ``UNASSIGNED``; a code assigned to
a profile cannot be deleted; listing codes needs a ``coupon.id`` or ``profile.id`` filter; deleting
a coupon deletes its codes. ``bulk_create_coupon_codes`` takes up to 1,000 codes and reports each
failure in the job's ``errors``.
"""

from __future__ import annotations

import re
from typing import Any

from .._context import Ctx, Reply
from .._jsonapi import SandboxError, bad_request, iso
from .._services import Services
from .._store import Linkage, Resource
from ..domain import DomainBuilder

Json = dict[str, Any]
_d = DomainBuilder("coupons")
YEAR = 365 * 86_400
_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def add_coupon(svc: Services, attrs: Json, now: float) -> Resource:
    external = str(attrs.get("external_id") or "")
    if not _EXTERNAL_ID.match(external):
        raise bad_request(
            "external_id may only contain letters, digits, '-' and '_' (it becomes the coupon's id); "
            f"got {external!r}.",
            pointer="/data/attributes/external_id",
        )
    if svc.store.get("coupon", external) is not None:
        raise SandboxError(
            409,
            "duplicate",
            "Conflict.",
            f"A coupon with external_id {external!r} already exists.",
            pointer="/data/attributes/external_id",
            meta={"duplicate_id": external},
        )
    coupon = Resource(
        "coupon",
        external,
        {
            "external_id": external,
            "description": attrs.get("description"),
            "monitor_configuration": attrs.get("monitor_configuration"),
        },
        {},
        now,
        now,
    )
    svc.store.put(coupon)
    return coupon


def add_code(svc: Services, data: Json, now: float, pointer: str = "/data") -> Resource:
    """Create one coupon code from a ``coupon-code`` resource object (raises with a pointer into it)."""
    attrs = data.get("attributes") or {}
    coupon_data = ((data.get("relationships") or {}).get("coupon") or {}).get("data") or {}
    coupon_id = str(coupon_data.get("id") or "")
    if not coupon_id:
        raise bad_request(
            "A coupon code needs its coupon: relationships.coupon.data.id.",
            pointer=f"{pointer}/relationships/coupon/data",
        )
    if svc.store.get("coupon", coupon_id) is None:
        raise SandboxError(
            404,
            "not_found",
            "Not found.",
            f"A coupon with id {coupon_id!r} does not exist.",
            pointer=f"{pointer}/relationships/coupon/data/id",
        )
    code = str(attrs.get("unique_code") or "")
    if not code.strip():
        raise bad_request("unique_code must not be empty.", pointer=f"{pointer}/attributes/unique_code")
    rid = f"{coupon_id}-{code}"
    if svc.store.get("coupon-code", rid) is not None:
        raise SandboxError(
            409,
            "duplicate",
            "Conflict.",
            f"Coupon {coupon_id!r} already has the code {code!r}; codes are unique per coupon.",
            pointer=f"{pointer}/attributes/unique_code",
            meta={"duplicate_id": rid},
        )
    expires = attrs.get("expires_at") or iso(now + YEAR)
    res = Resource(
        "coupon-code",
        rid,
        {"unique_code": code, "expires_at": expires, "status": "UNASSIGNED"},
        {"coupon": ("coupon", coupon_id), "profile": None},
        now,
        now,
    )
    svc.store.put(res)
    return res


def codes_of(svc: Services, coupon_id: str) -> list[Resource]:
    return [c for c in svc.store.iter("coupon-code") if c.relationships.get("coupon") == ("coupon", coupon_id)]


@_d.related("coupon", "coupon-codes")
def _coupon_codes(svc: Services, coupon: Resource) -> list[Linkage]:
    return [("coupon-code", c.id) for c in codes_of(svc, coupon.id)]


@_d.handles("create_coupon")
def _create_coupon(ctx: Ctx) -> Reply:
    return ctx.one(add_coupon(ctx.svc, ctx.attrs, ctx.now))


@_d.handles("delete_coupon")
def _delete_coupon(ctx: Ctx) -> Reply:
    coupon = ctx.get("coupon")
    for code in codes_of(ctx.svc, coupon.id):
        ctx.store.delete("coupon-code", code.id)
    ctx.store.delete("coupon", coupon.id)
    return ctx.no_content()


@_d.handles("create_coupon_code")
def _create_code(ctx: Ctx) -> Reply:
    return ctx.one(add_code(ctx.svc, ctx.data, ctx.now))


@_d.handles("get_coupon_codes")
def _get_codes(ctx: Ctx) -> Reply:
    text = ctx.query.get("filter") or ""
    if "coupon.id" not in text and "profile.id" not in text:
        raise bad_request(
            "Filter by coupon or profile, e.g. filter=equals(coupon.id,'WELCOME10') or "
            "any(profile.id,['...']); listing every code is not supported.",
            parameter="filter",
        )
    return ctx.many(ctx.store.all("coupon-code"))


@_d.handles("get_coupon_codes_for_coupon")
def _codes_for_coupon(ctx: Ctx) -> Reply:
    coupon = ctx.get("coupon")
    return ctx.many(codes_of(ctx.svc, coupon.id))


@_d.handles("update_coupon_code")
def _update_code(ctx: Ctx) -> Reply:
    code = ctx.get("coupon-code")
    if ctx.data.get("id") != code.id:
        raise SandboxError(
            409,
            "conflict",
            "Conflict.",
            "The body's id does not match the coupon code being updated.",
            pointer="/data/id",
        )
    if "status" in ctx.attrs and ctx.attrs["status"] is None:  # a code is always in some state
        raise bad_request(
            "A coupon code's status cannot be cleared; give a new status.", pointer="/data/attributes/status"
        )
    for key in ("status", "expires_at"):
        if key in ctx.attrs and (key == "expires_at" or ctx.attrs[key] is not None):
            code.attributes[key] = ctx.attrs[key]  # expires_at null clears it: the code never expires
    code.updated = ctx.now
    ctx.store.put(code)
    return ctx.one(code)


@_d.handles("delete_coupon_code")
def _delete_code(ctx: Ctx) -> Reply:
    code = ctx.get("coupon-code")
    if code.relationships.get("profile") or code.attributes.get("status") == "ASSIGNED_TO_PROFILE":
        raise bad_request(f"Coupon code {code.id} is assigned to a profile and cannot be deleted.", pointer="/data/id")
    ctx.store.delete("coupon-code", code.id)
    return ctx.no_content()


def _job_codes(body: Any) -> list[Any]:
    attrs = ((body or {}).get("data") or {}).get("attributes") or {}
    codes = (attrs.get("coupon-codes") or {}).get("data")
    return codes if isinstance(codes, list) else []


@_d.handles("bulk_create_coupon_codes")
def _bulk_codes(ctx: Ctx) -> Reply:
    return ctx.one(ctx.create_job("coupon-code-bulk-create-job"))


@_d.job("bulk_create_coupon_codes")
def _run_bulk_codes(svc: Services, job: Resource) -> None:
    now = svc.clock.time()
    created, errors = [], []
    for n, item in enumerate(_job_codes(job.private.get("body"))):
        pointer = f"/data/attributes/coupon-codes/data/{n}"
        try:
            created.append(("coupon-code", add_code(svc, item, now, pointer).id))
        except SandboxError as exc:
            errors.append(
                {
                    "id": exc.body()["errors"][0]["id"],
                    "code": exc.code,
                    "title": exc.title,
                    "detail": exc.detail,
                    "source": {"pointer": exc.pointer or pointer},
                }
            )
    job.attributes.update(completed_count=len(created), failed_count=len(errors), errors=errors)
    job.relationships["coupon-codes"] = created


DOMAIN = _d.build()
