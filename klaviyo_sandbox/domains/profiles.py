"""Sandbox domain: profiles and identity (create, update, upsert, merge, import, deletion).

Identity is Klaviyo's: email, phone_number and external_id each belong to at most one profile
(emails compared without regard to case; external ids, like every other string, exactly).
Creating or updating a profile with an identifier another profile owns is a 409
``duplicate_profile`` whose ``meta.duplicate_profile_id`` names the owner; the upsert
(``/api/profile-import``) finds its target by id, then email, phone number, external id, and
still answers 409 when the identifiers given belong to two different profiles.

Emails must look like ``name@example.com`` and phone numbers be E.164 (``+15005550006``); a bad
one is a 400 whose ``source.pointer`` names the field. ``null`` clears a field on update and
upsert; ``properties`` and ``location`` are merged key by key; ``meta.patch_properties``
appends, unappends and unsets custom properties; ``meta.patch_identifiers`` adds and removes
secondary email addresses (``_secondary_emails.py``), checked before anything changes.

Consent is never changed here (see ``consent.py``). Merging happens at once (Klaviyo queues it):
the destination keeps its data, takes the source's missing fields and properties, and everything
linked to the source (events, list memberships, push tokens) moves to it; an identifier that
moves takes its consent with it. Bulk imports and deletion requests are jobs applied when due.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._context import Ctx, Reply
from .._jsonapi import SandboxError, bad_request, iso
from .._services import Services
from .._store import Resource, Store
from ..domain import DomainBuilder
from ._common import IDENTIFIERS, email_marketing, new_profile, refresh_consent, subscriptions
from ._identifiers import is_e164, is_email, phone_message
from ._secondary_emails import apply_patch_identifiers, check_patch_identifiers, secondary_emails
from .lists import add_members

Json = dict[str, Any]
FIELDS = ("email", "phone_number", "external_id", "first_name", "last_name", "organization", "locale", "title", "image")
_d = DomainBuilder("profiles")


# -- validation and identity --------------------------------------------------------------------------
def check_identifiers(attrs: Mapping[str, Any], base: str = "/data/attributes") -> None:
    """400 for an email or phone number Klaviyo would refuse, pointing at the field."""
    email, phone = attrs.get("email"), attrs.get("phone_number")
    if email is not None and not is_email(str(email)):
        raise bad_request(f"Invalid email address {email!r}; give it as name@example.com.", pointer=f"{base}/email")
    if phone is not None and not is_e164(str(phone)):
        raise bad_request(phone_message(str(phone)), pointer=f"{base}/phone_number")


def duplicate(owner: Resource, key: str, base: str = "/data/attributes") -> SandboxError:
    return SandboxError(
        409,
        "duplicate_profile",
        "Conflict.",
        f"A profile already exists with one of these identifiers ({key}); update profile {owner.id} "
        "(meta.duplicate_profile_id) instead, or merge the two profiles.",
        pointer=base,
        meta={"duplicate_profile_id": owner.id},
    )


def check_owners(
    svc: Services, attrs: Mapping[str, Any], profile_id: str | None, base: str = "/data/attributes"
) -> None:
    """409 if an identifier in ``attrs`` already belongs to a profile other than ``profile_id``."""
    for key in IDENTIFIERS:
        owner = svc.store.find("profile", key, attrs.get(key)) if attrs.get(key) else None
        if owner is not None and owner.id != profile_id:
            raise duplicate(owner, key, base)


def find_by_identifiers(svc: Services, attrs: Mapping[str, Any]) -> Resource | None:
    for key in IDENTIFIERS:
        found = svc.store.find("profile", key, attrs.get(key)) if attrs.get(key) else None
        if found is not None:
            return found
    return None


# -- filter fields ---------------------------------------------------------------------------------------
@_d.field("profile", "push_token")
def _push_tokens(store: Store, profile: Resource) -> list[str]:
    return [
        str(t.attributes.get("token"))
        for t in store.iter("push-token")
        if ("profile", profile.id) in t.linked("profile")
    ]


_d.add_field("profile", "profile_id", lambda store, res: res.id)
_d.add_field("profile", "_kx", lambda store, res: None)


def _suppression_field(kind: str, key: str) -> Any:
    """Resolver for ``subscriptions.email.marketing.<kind>.<key>``: every entry's value (reasons,
    list ids) or, for timestamps, the latest one, so comparisons and sorting see one time."""

    def read(store: Any, res: Resource) -> Any:
        entries = [e for e in email_marketing(res).get(kind) or [] if isinstance(e, dict)]
        values = [str(e[key]) for e in entries if e.get(key) is not None]
        if key == "timestamp":
            return max(values) if values else None
        return values

    return read


for _kind in ("suppression", "list_suppressions"):
    for _key in ("reason", "timestamp", "list_id"):
        _d.add_field("profile", f"subscriptions.email.marketing.{_kind}.{_key}", _suppression_field(_kind, _key))


# -- attribute changes ---------------------------------------------------------------------------------
def apply_attributes(profile: Resource, attrs: Mapping[str, Any], *, identifiers: bool = True) -> None:
    """Merge request attributes into a profile: null clears, properties and location merge."""
    for key, value in attrs.items():
        if key == "properties":
            props = dict(profile.attributes.get("properties") or {})
            profile.attributes["properties"] = {**props, **value} if isinstance(value, dict) else {}
        elif key == "location":
            loc = dict(profile.attributes.get("location") or {})
            profile.attributes["location"] = {**loc, **value} if isinstance(value, dict) else None
        elif key in FIELDS and (identifiers or key not in IDENTIFIERS):
            profile.attributes[key] = value


def apply_patch_properties(profile: Resource, meta: Any) -> None:
    """``meta.patch_properties``: append/unappend values to list properties, unset keys."""
    patch = (meta or {}).get("patch_properties") if isinstance(meta, dict) else None
    if not patch:
        return
    props = dict(profile.attributes.get("properties") or {})
    for key, value in (patch.get("append") or {}).items():
        current = props.get(key)
        items = current if isinstance(current, list) else ([] if current is None else [current])
        props[key] = items + (value if isinstance(value, list) else [value])
    for key, value in (patch.get("unappend") or {}).items():
        drop = value if isinstance(value, list) else [value]
        if isinstance(props.get(key), list):
            props[key] = [v for v in props[key] if v not in drop]
    unset = patch.get("unset")
    for key in [unset] if isinstance(unset, str) else (unset or []):
        props.pop(key, None)
    profile.attributes["properties"] = props


def touch(svc: Services, profile: Resource, now: float) -> None:
    profile.attributes["updated"] = iso(now)
    profile.updated = now
    refresh_consent(profile)  # an email or phone number given or cleared changes what it can receive
    svc.store.put(profile)


def create(svc: Services, attrs: Mapping[str, Any], now: float) -> Resource:
    return new_profile(svc, {k: v for k, v in attrs.items() if k in (*FIELDS, "properties", "location")}, now)


def upsert(
    svc: Services, pid: str | None, attrs: Mapping[str, Any], meta: Any, now: float, item: str = "/data"
) -> tuple[Resource, bool]:
    """Create or update by id, then email, phone number, external id; (profile, created)."""
    base = f"{item}/attributes"
    check_identifiers(attrs, base)
    if pid:
        profile = svc.store.get("profile", pid)
        if profile is None:
            raise SandboxError(
                404,
                "not_found",
                "Not found.",
                f"A profile with id {pid} does not exist; leave the id "
                "out to create or match the profile by its identifiers.",
                pointer=f"{item}/id",
            )
    else:
        profile = find_by_identifiers(svc, attrs)
    check_owners(svc, attrs, profile.id if profile else None, base)
    patch = check_patch_identifiers(svc, meta, profile.id if profile else None, f"{item}/meta")
    created = profile is None
    if profile is None:
        if not any(attrs.get(k) for k in IDENTIFIERS):
            raise bad_request(
                "A profile needs an email, phone_number or external_id (or the id of an existing profile).",
                pointer=base,
            )
        profile = create(svc, attrs, now)
    else:
        apply_attributes(profile, attrs)
    apply_patch_properties(profile, meta)
    apply_patch_identifiers(profile, patch)
    touch(svc, profile, now)
    return profile, created


# -- handlers ------------------------------------------------------------------------------------------
@_d.handles("create_profile")
def create_profile(ctx: Ctx) -> Reply:
    attrs = ctx.attrs
    check_identifiers(attrs)
    if not any(attrs.get(k) for k in IDENTIFIERS):
        raise bad_request(
            "A profile needs at least one identifier: email, phone_number or external_id.", pointer="/data/attributes"
        )
    check_owners(ctx.svc, attrs, None)
    return ctx.one(create(ctx.svc, attrs, ctx.now), status=201)


@_d.handles("update_profile")
def update_profile(ctx: Ctx) -> Reply:
    profile = ctx.get("profile")
    ctx.check_body_id(profile.id)
    data = ctx.data if isinstance(ctx.data, dict) else {}
    attrs = ctx.attrs
    check_identifiers(attrs)
    check_owners(ctx.svc, attrs, profile.id)
    patch = check_patch_identifiers(ctx.svc, data.get("meta"), profile.id, "/data/meta")
    apply_attributes(profile, attrs)
    apply_patch_properties(profile, data.get("meta"))
    apply_patch_identifiers(profile, patch)
    touch(ctx.svc, profile, ctx.now)
    return ctx.one(profile)


@_d.handles("create_or_update_profile")
def create_or_update_profile(ctx: Ctx) -> Reply:
    data = ctx.data if isinstance(ctx.data, dict) else {}
    profile, created = upsert(ctx.svc, data.get("id"), ctx.attrs, data.get("meta"), ctx.now)
    return ctx.one(profile, status=201 if created else 200)


@_d.handles("create_client_profile")
def create_client_profile(ctx: Ctx) -> Reply:
    """Client-side upsert: identifiers of an existing profile are never changed (only filled in)."""
    svc, data, attrs, now = ctx.svc, ctx.data if isinstance(ctx.data, dict) else {}, ctx.attrs, ctx.now
    check_identifiers(attrs)
    anonymous = attrs.get("anonymous_id")
    profile = svc.store.get("profile", str(data["id"])) if data.get("id") else find_by_identifiers(svc, attrs)
    if profile is None and anonymous:
        profile = next((p for p in svc.store.iter("profile") if p.private.get("anonymous_id") == anonymous), None)
    patch = check_patch_identifiers(svc, data.get("meta"), profile.id if profile else None, "/data/meta")
    if profile is None:
        if not any(attrs.get(k) for k in IDENTIFIERS) and not anonymous:
            raise bad_request("Give an email, phone_number, external_id or anonymous_id.", pointer="/data/attributes")
        check_owners(svc, attrs, None)
        profile = create(svc, attrs, now)
    else:
        apply_attributes(profile, attrs, identifiers=False)
        for key in IDENTIFIERS:
            owner = svc.store.find("profile", key, attrs.get(key)) if attrs.get(key) else None
            if attrs.get(key) and not profile.attributes.get(key) and owner is None:
                profile.attributes[key] = attrs[key]
    if anonymous and not profile.private.get("anonymous_id"):
        profile.private["anonymous_id"] = anonymous
    apply_patch_properties(profile, data.get("meta"))
    apply_patch_identifiers(profile, patch)
    touch(svc, profile, now)
    return ctx.accepted()


@_d.handles("merge_profiles")
def merge_profiles(ctx: Ctx) -> Reply:
    data = ctx.data if isinstance(ctx.data, dict) else {}
    dest = ctx.store.get("profile", str(data.get("id")))
    if dest is None:
        raise SandboxError(
            404,
            "not_found",
            "Not found.",
            f"The destination profile {data.get('id')} does not exist.",
            pointer="/data/id",
        )
    sources = ctx.rel("profiles")
    if len(sources) != 1:
        raise bad_request(
            f"Give exactly one source profile in relationships.profiles ({len(sources)} given).",
            pointer="/data/relationships/profiles/data",
        )
    source = ctx.store.get("profile", sources[0][1])
    if source is None:
        raise SandboxError(
            404,
            "not_found",
            "Not found.",
            f"The source profile {sources[0][1]} does not exist.",
            pointer="/data/relationships/profiles/data/0/id",
        )
    if source.id == dest.id:
        raise bad_request("A profile cannot be merged into itself.", pointer="/data/relationships/profiles/data/0/id")
    merge(ctx.svc, source, dest, ctx.now)
    return ctx.one(dest, status=201)


def merge(svc: Services, source: Resource, dest: Resource, now: float) -> None:
    """Merge ``source`` into ``dest`` and delete ``source`` (see module docstring)."""
    svc.store.delete("profile", source.id)
    src_subs, dst_subs = subscriptions(source), subscriptions(dest)
    for key in FIELDS:
        if not dest.attributes.get(key) and source.attributes.get(key):
            dest.attributes[key] = source.attributes[key]
            if key == "email":
                dst_subs["email"] = src_subs["email"]
            elif key == "phone_number":
                dst_subs["sms"] = src_subs["sms"]
    dest.attributes["properties"] = {
        **(source.attributes.get("properties") or {}),
        **(dest.attributes.get("properties") or {}),
    }
    dest.attributes["location"] = dest.attributes.get("location") or source.attributes.get("location")
    dates = [d for d in (dest.attributes.get("last_event_date"), source.attributes.get("last_event_date")) if d]
    dest.attributes["last_event_date"] = max(dates) if dates else None
    for key, value in source.private.items():
        dest.private.setdefault(key, value)
    apply_patch_identifiers(dest, {"append": secondary_emails(source)})  # both profiles' secondary addresses
    _relink(svc, source.id, dest.id)
    touch(svc, dest, now)


def _relink(svc: Services, source_id: str, dest_id: str) -> None:
    """Point every linkage (and per-profile map) at ``source_id`` to ``dest_id`` instead."""
    src, dst = ("profile", source_id), ("profile", dest_id)
    for rtype in svc.store.types():
        for res in svc.store.iter(rtype):
            changed = False
            for name, value in list(res.relationships.items()):
                if isinstance(value, list) and src in value:
                    seen: set[tuple[str, str]] = set()
                    out = []
                    for link in value:
                        link = dst if link == src else link
                        if link not in seen:
                            seen.add(link)
                            out.append(link)
                    res.relationships[name] = out
                    changed = True
                elif value == src:
                    res.relationships[name] = dst
                    changed = True
            for key in ("joined", "members"):
                held = res.private.get(key)
                if isinstance(held, dict) and source_id in held:
                    when = held.pop(source_id)
                    held[dest_id] = min(when, held.get(dest_id, when))
                    changed = True
                elif isinstance(held, list) and source_id in held:
                    res.private[key] = [m for m in dict.fromkeys(dest_id if m == source_id else m for m in held)]
                    changed = True
            if changed:
                svc.store.put(res)
    dedup: dict[str, str] = svc.store.mutable("event_unique_ids", dict)
    for key in [k for k in dedup if k.startswith(source_id + "|")]:
        event_id = dedup.pop(key)
        dedup.setdefault(dest_id + key[len(source_id) :], event_id)


# -- bulk import job -----------------------------------------------------------------------------------
@_d.handles("bulk_import_profiles")
def bulk_import_profiles(ctx: Ctx) -> Reply:
    for i, (rtype, rid) in enumerate(ctx.rel("lists")):
        if ctx.store.get(rtype, rid) is None:
            raise SandboxError(
                404,
                "not_found",
                "Not found.",
                f"A list with id {rid} does not exist; create it first or use an id from get_lists.",
                pointer=f"/data/relationships/lists/data/{i}/id",
            )
    job = ctx.create_job("profile-bulk-import-job")
    job.relationships.setdefault("lists", [])
    ctx.store.put(job)
    return ctx.one(job)


def _given(attrs: Json) -> Json:
    """An import item's attributes without its nulls, at any depth: Klaviyo's bulk import "does not
    support setting fields to null to clear them. Only fields explicitly provided with non-null values
    will be updated" (its Bulk Import Profiles guide), so a null email beside a known phone number
    never takes the email from the profile it lands on (Update Profile clears; an import does not)."""
    return {k: _given(v) if isinstance(v, dict) else v for k, v in attrs.items() if v is not None}


@_d.job("bulk_import_profiles")
def run_import(svc: Services, job: Resource) -> None:
    """Upsert every valid item; invalid ones become import-errors. Imported profiles join the lists."""
    now = svc.clock.time()
    items = ((job.private["body"]["data"]["attributes"].get("profiles") or {}).get("data")) or []
    profiles: dict[str, Resource] = {}
    errors = []
    for i, item in enumerate(items):
        attrs = item.get("attributes") or {}
        try:
            profile, _ = upsert(
                svc, item.get("id"), _given(attrs), item.get("meta"), now, f"/data/attributes/profiles/data/{i}"
            )
            profiles[profile.id] = profile
        except SandboxError as exc:
            err = Resource(
                "import-error",
                svc.store.new_id("import-error", now),
                {
                    "code": exc.code,
                    "title": exc.title,
                    "detail": exc.detail,
                    "source": {"pointer": exc.pointer or f"/data/attributes/profiles/data/{i}"},
                    "original_payload": dict(attrs),
                },
                {},
                now,
                now,
            )
            svc.store.put(err)
            errors.append(("import-error", err.id))
    for _, list_id in job.linked("lists"):
        list_res = svc.store.get("list", list_id)
        if list_res is not None:
            add_members(svc, list_res, profiles.values(), now)
    job.relationships["profiles"] = [("profile", pid) for pid in profiles]
    job.relationships["import-errors"] = errors
    job.attributes.update(
        {"completed_count": len(items) - len(errors), "failed_count": len(errors), "expires_at": iso(now + 30 * 86400)}
    )


# -- deletion ------------------------------------------------------------------------------------------
@_d.handles("request_profile_deletion")
def request_profile_deletion(ctx: Ctx) -> Reply:
    base = "/data/attributes/profile/data"
    target = (ctx.attrs.get("profile") or {}).get("data") or {}
    attrs = target.get("attributes") or {}
    given = [k for k in ("email", "phone_number") if attrs.get(k)] + (["id"] if target.get("id") else [])
    if len(given) != 1:
        raise bad_request(
            "Give exactly one identifier for the profile to delete: email, phone_number or id "
            f"({', '.join(given) or 'none'} given).",
            pointer=f"{base}/attributes",
        )
    check_identifiers(attrs, f"{base}/attributes")
    ctx.create_job("data-privacy-deletion-job")
    return ctx.accepted()


@_d.job("request_profile_deletion")
def run_deletion(svc: Services, job: Resource) -> None:
    target = job.private["body"]["data"]["attributes"]["profile"]["data"]
    attrs = target.get("attributes") or {}
    if target.get("id"):
        profile = svc.store.get("profile", str(target["id"]))
    else:
        key = "email" if attrs.get("email") else "phone_number"
        profile = svc.store.find("profile", key, attrs.get(key))
    if profile is not None:
        delete_profile(svc, profile)
    job.attributes["completed_count"] = 1 if profile is not None else 0


def delete_profile(svc: Services, profile: Resource) -> None:
    """Delete a profile, its events and every linkage or membership naming it."""
    for event in svc.store.iter("event"):
        if ("profile", profile.id) in event.linked("profile"):
            svc.store.delete("event", event.id)
    dedup: dict[str, str] = svc.store.mutable("event_unique_ids", dict)
    for key in [k for k in dedup if k.startswith(profile.id + "|")]:
        del dedup[key]
    for rtype in ("list", "segment"):
        for res in svc.store.iter(rtype):
            for key in ("joined", "members"):
                held = res.private.get(key)
                if isinstance(held, dict) and profile.id in held:
                    del held[profile.id]
                    svc.store.put(res)
                elif isinstance(held, list) and profile.id in held:
                    res.private[key] = [m for m in held if m != profile.id]
                    svc.store.put(res)
    svc.forget(profile)


# -- push tokens ---------------------------------------------------------------------------------------
@_d.handles("create_push_token", "create_client_push_token")
def create_push_token(ctx: Ctx) -> Reply:
    """Register a token for the profile given (found by id or identifiers, created if new)."""
    svc, attrs, now = ctx.svc, ctx.attrs, ctx.now
    target = (attrs.get("profile") or {}).get("data") or {}
    pattrs = target.get("attributes") or {}
    base = "/data/attributes/profile/data"
    check_identifiers(pattrs, f"{base}/attributes")
    profile = svc.store.get("profile", str(target["id"])) if target.get("id") else None
    if profile is None and not any(pattrs.get(k) for k in IDENTIFIERS):
        profile = create(svc, pattrs, now)  # an anonymous device profile, as the mobile SDKs make
    elif profile is None:
        profile, _ = upsert(svc, None, pattrs, pattrs.get("meta"), now, base)
    token = svc.store.find("push-token", "token", attrs["token"])
    if token is None:
        token = Resource("push-token", svc.store.new_id("push-token", now), {"created": iso(now)}, {}, now, now)
    token.attributes.update(
        {
            "token": attrs["token"],
            "platform": attrs["platform"],
            "vendor": attrs["vendor"],
            "enablement_status": attrs.get("enablement_status") or "AUTHORIZED",
            "background": attrs.get("background") or "AVAILABLE",
            "recorded_date": iso(now),
            "metadata": attrs.get("device_metadata"),
        }
    )
    token.relationships["profile"] = ("profile", profile.id)
    token.updated = now
    svc.store.put(token)
    return ctx.accepted()


@_d.handles("unregister_client_push_token")
def unregister_client_push_token(ctx: Ctx) -> Reply:
    token = ctx.store.find("push-token", "token", ctx.attrs.get("token"))
    if token is not None:
        token.attributes.update({"enablement_status": "UNAUTHORIZED", "recorded_date": ctx.now_iso})
        ctx.store.put(token)
    return ctx.accepted()


DOMAIN = _d.build()
