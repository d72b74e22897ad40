"""Sandbox domain: sign-up forms and their versions.

Forms are created as drafts from a spec ``FormDefinition``, with one form-version per definition
version (version ids are filled in when absent); deleting a form deletes its versions.
"""

from __future__ import annotations

from typing import Any

from .._context import Ctx, Reply
from .._jsonapi import iso
from .._services import Services
from .._store import Linkage, Resource
from ..domain import DomainBuilder

Json = dict[str, Any]

_d = DomainBuilder("forms")


_FORM_TYPES = {"full_screen": "full_page"}


def add_form(svc: Services, attrs: Json, now: float) -> Resource:
    """A form and one form-version per definition version (version ids are filled in when absent)."""
    definition = dict(attrs.get("definition") or {"versions": []})
    form = Resource(
        "form",
        svc.store.new_id("form", now),
        {
            "name": attrs["name"],
            "status": attrs.get("status") or "draft",
            "ab_test": bool(attrs.get("ab_test")),
            "definition": definition,
            "created_at": iso(now),
            "updated_at": iso(now),
        },
        {},
        now,
        now,
    )
    versions: list[Linkage] = []
    for n, version in enumerate(definition.get("versions") or []):
        vid = version.get("id") or svc.store.rng.randint(1_000_000, 9_999_999)
        version["id"] = vid
        svc.store.put(
            Resource(
                "form-version",
                str(vid),
                {
                    "form_type": _FORM_TYPES.get(version.get("type") or "popup", version.get("type") or "popup"),
                    "variation_name": version.get("name") or f"Version {n + 1}",
                    "status": version.get("status") or form.attributes["status"],
                    "ab_test": {"variation_name": version.get("name") or f"Version {n + 1}"}
                    if version.get("ab_test")
                    else None,
                    "created_at": iso(now),
                    "updated_at": iso(now),
                },
                {"form": ("form", form.id)},
                now,
                now,
            )
        )
        versions.append(("form-version", str(vid)))
    form.relationships["form-versions"] = versions
    svc.store.put(form)
    return form


@_d.handles("create_form")
def _create_form(ctx: Ctx) -> Reply:
    return ctx.one(add_form(ctx.svc, ctx.attrs, ctx.now))


@_d.handles("delete_form")
def _delete_form(ctx: Ctx) -> Reply:
    form = ctx.get("form")
    for _, vid in form.linked("form-versions"):
        ctx.store.delete("form-version", vid)
    ctx.store.delete("form", form.id)
    return ctx.no_content()


DOMAIN = _d.build()
