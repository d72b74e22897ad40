"""Accounts, tags and tag groups, webhooks, images and forms (coupons are in ``coupons.py``).

What Klaviyo documents and the sandbox enforces:

- **accounts**: a key sees exactly one account, whose id is the public key (``SbxPub``); one is
  made on first use when the demo data is off.
- **tags**: every account has one default tag group (never deletable); at most 500 tags and 50 tag
  groups; a tag cannot move between groups and only names change. Links to campaigns, flows, lists
  and segments are stored on the tag (``relationships``), so ``campaign.tags`` etc. are found from
  the tag side; a resource takes at most 100 tags and one tag per exclusive group.
- **webhooks**: ``endpoint_url`` must be https, topics must exist (``get_webhook_topics``), the
  ``secret_key`` is kept private and never returned.
- **images**: from a URL, a ``data:image/...;base64`` URI or a multipart file; jpeg, png or gif up
  to 5 MB; numeric ids; a name already taken gets a suffix. The sandbox fetches nothing: a URL's
  size is a stand-in and its ``image_url`` points at a sandbox CDN host.
- **forms**: created as drafts from a spec ``FormDefinition``; one form-version per definition
  version; deleting a form deletes its versions.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
import zlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .._context import Ctx, Reply, handles, iso
from .._generic import generic
from .._jsonapi import SandboxError, bad_request
from .._store import Linkage, Resource
from . import coupons

if TYPE_CHECKING:
    from .._app import Sandbox
    from .seed import Seeder

Json = dict[str, Any]
__all__ = ["WEBHOOK_TOPICS", "coupons", "ensure_account", "ensure_default_tag_group", "seed_marketing_assets"]


# -- accounts ------------------------------------------------------------------------------------------
def ensure_account(sb: Sandbox, when: float | None = None) -> Resource:
    """The account the sandbox's keys belong to (Northwind when seeded, a blank sandbox account otherwise)."""
    from .._app import PUBLIC_KEY

    account = sb.store.get("account", PUBLIC_KEY)
    if account is not None:
        return account
    seeded = when is not None
    when = sb.clock.time() if when is None else when
    address = (
        {
            "address1": "41 Harbor Way",
            "address2": None,
            "city": "Portland",
            "region": "ME",
            "country": "US",
            "zip": "04101",
        }
        if seeded
        else {"address1": None, "address2": None, "city": None, "region": None, "country": "US", "zip": None}
    )
    contact = {
        "default_sender_name": "Northwind Outfitters" if seeded else "Sandbox",
        "default_sender_email": "hello@northwind-outfitters.example.com" if seeded else "sandbox@example.com",
        "website_url": "https://northwind-outfitters.example.com" if seeded else None,
        "organization_name": "Northwind Outfitters" if seeded else "Sandbox Account",
        "street_address": address,
    }
    account = Resource(
        "account",
        PUBLIC_KEY,
        {
            "test_account": False,
            "contact_information": contact,
            "industry": "Sporting Goods" if seeded else None,
            "timezone": "America/New_York",
            "preferred_currency": "USD",
            "public_api_key": PUBLIC_KEY,
            "locale": "en-US",
        },
        {},
        when,
        when,
    )
    sb.store.put(account)
    return account


@handles("get_accounts")
def _get_accounts(ctx: Ctx) -> Reply:
    return ctx.many([ensure_account(ctx.sandbox)])


@handles("get_account")
def _get_account(ctx: Ctx) -> Reply:
    account = ensure_account(ctx.sandbox)
    if ctx.id != account.id:
        raise SandboxError(
            404,
            "not_found",
            "Not found.",
            f"No account {ctx.id!r} for this key; its account is {account.id!r} (see get_accounts).",
        )
    return ctx.one(account)


# -- tags -------------------------------------------------------------------------------------------------
MAX_TAGS, MAX_TAG_GROUPS, MAX_TAGS_PER_RESOURCE = 500, 50, 100
_TAGGABLE = {"campaigns": "campaign", "flows": "flow", "lists": "list", "segments": "segment"}


def _uuid(sb: Sandbox) -> str:
    return str(uuid.UUID(int=sb.store.rng.getrandbits(128)))


def ensure_default_tag_group(sb: Sandbox) -> Resource:
    for group in sb.store.iter("tag-group"):
        if group.attributes.get("default"):
            return group
    now = sb.clock.time()
    group = Resource("tag-group", _uuid(sb), {"name": "Default", "exclusive": False, "default": True}, {}, now, now)
    sb.store.put(group)
    return group


def create_tag(sb: Sandbox, name: str, group: Resource, now: float) -> Resource:
    tag = Resource("tag", _uuid(sb), {"name": name}, {"tag-group": ("tag-group", group.id)}, now, now)
    sb.store.put(tag)
    return tag


def _tag_group_of(sb: Sandbox, tag: Resource) -> Resource | None:
    links = tag.linked("tag-group")
    return sb.store.get("tag-group", links[0][1]) if links else None


@handles("get_tag_groups")
def _get_tag_groups(ctx: Ctx) -> Reply:
    ensure_default_tag_group(ctx.sandbox)
    return ctx.many(ctx.store.all("tag-group"))


@handles("create_tag_group")
def _create_tag_group(ctx: Ctx) -> Reply:
    ensure_default_tag_group(ctx.sandbox)
    if ctx.store.count("tag-group") >= MAX_TAG_GROUPS:
        raise bad_request(
            f"An account cannot have more than {MAX_TAG_GROUPS} tag groups; delete one first.", pointer="/data"
        )
    group = Resource(
        "tag-group",
        _uuid(ctx.sandbox),
        {"name": ctx.attrs["name"], "exclusive": bool(ctx.attrs.get("exclusive") or False), "default": False},
        {},
        ctx.now,
        ctx.now,
    )
    ctx.store.put(group)
    return ctx.one(group)


@handles("update_tag_group", "update_tag")
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


@handles("delete_tag_group")
def _delete_tag_group(ctx: Ctx) -> Reply:
    group = ctx.get("tag-group")
    if group.attributes.get("default"):
        raise bad_request("The default tag group cannot be deleted.", pointer="/data/id")
    for tag in ctx.store.iter("tag"):
        if tag.relationships.get("tag-group") == ("tag-group", group.id):
            ctx.store.delete("tag", tag.id)
    ctx.store.delete("tag-group", group.id)
    return ctx.no_content()


@handles("create_tag")
def _create_tag(ctx: Ctx) -> Reply:
    sb = ctx.sandbox
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
        group = ensure_default_tag_group(sb)
    return ctx.one(create_tag(sb, ctx.attrs["name"], group, ctx.now))


@handles("delete_tag")
def _delete_tag(ctx: Ctx) -> Reply:
    ctx.store.delete("tag", ctx.get("tag").id)
    return ctx.no_content()


@handles("tag_campaigns", "tag_flows", "tag_lists", "tag_segments")
def _tag(ctx: Ctx) -> Reply:
    rel = ctx.op.operation_id.removeprefix("tag_")
    tag = ctx.get("tag")
    targets = _targets(ctx, rel)
    group = _tag_group_of(ctx.sandbox, tag)
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
    ctx.sandbox.link(tag, rel, targets)
    return ctx.no_content()


@handles("remove_tag_from_campaigns", "remove_tag_from_flows", "remove_tag_from_lists", "remove_tag_from_segments")
def _untag(ctx: Ctx) -> Reply:
    rel = ctx.op.operation_id.removeprefix("remove_tag_from_")
    tag = ctx.get("tag")
    ctx.sandbox.unlink(tag, rel, _targets(ctx, rel))
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


# -- webhooks ----------------------------------------------------------------------------------------------
WEBHOOK_TOPICS = (
    "event:klaviyo.received_email",
    "event:klaviyo.opened_email",
    "event:klaviyo.clicked_email",
    "event:klaviyo.bounced_email",
    "event:klaviyo.marked_email_as_spam",
    "event:klaviyo.dropped_email",
    "event:klaviyo.sent_sms",
    "event:klaviyo.received_sms",
    "event:klaviyo.clicked_sms",
    "event:klaviyo.failed_to_deliver_sms",
    "event:klaviyo.received_push",
    "event:klaviyo.bounced_push",
    "event:klaviyo.opened_push",
    "event:klaviyo.subscribed_to_email_marketing",
    "event:klaviyo.unsubscribed_from_email_marketing",
    "event:klaviyo.subscribed_to_sms_marketing",
    "event:klaviyo.unsubscribed_from_sms_marketing",
    "event:klaviyo.ready_to_review",
    "event:klaviyo.submitted_review",
)


def ensure_topics(sb: Sandbox) -> None:
    if sb.store.count("webhook-topic") == 0:
        for topic in WEBHOOK_TOPICS:
            sb.store.put(Resource("webhook-topic", topic, {}, {}, 0.0, 0.0))


@handles("get_webhook_topics", "get_webhook_topic", "get_webhooks", "get_webhook", "delete_webhook")
def _webhooks_read(ctx: Ctx) -> Reply:
    ensure_topics(ctx.sandbox)
    return generic(ctx)


@handles("create_webhook", "update_webhook")
def _write_webhook(ctx: Ctx) -> Reply:
    ensure_topics(ctx.sandbox)
    creating = ctx.op.operation_id == "create_webhook"
    res = (
        Resource(
            "webhook",
            ctx.store.new_id("webhook", ctx.now),
            {"enabled": True, "created_at": ctx.now_iso},
            {},
            ctx.now,
            ctx.now,
        )
        if creating
        else ctx.get("webhook")
    )
    attrs = ctx.attrs
    if "endpoint_url" in attrs:
        url = urlparse(str(attrs["endpoint_url"]))
        if url.scheme != "https" or not url.netloc:
            raise bad_request(
                f"endpoint_url must be an https URL, e.g. https://example.com/hooks; got {attrs['endpoint_url']!r}.",
                pointer="/data/attributes/endpoint_url",
            )
    topics = ctx.rel("webhook-topics")
    if creating and not topics:
        raise bad_request(
            "A webhook needs at least one topic (see get_webhook_topics).",
            pointer="/data/relationships/webhook-topics/data",
        )
    for n, (_, topic) in enumerate(topics):
        if ctx.store.get("webhook-topic", topic) is None:
            raise bad_request(
                f"{topic!r} is not a webhook topic; see get_webhook_topics for the list.",
                pointer=f"/data/relationships/webhook-topics/data/{n}/id",
            )
    for key in ("name", "description", "endpoint_url", "enabled"):
        if key in attrs:
            res.attributes[key] = attrs[key]
    if "secret_key" in attrs:
        res.private["secret_key"] = attrs["secret_key"]
    if topics or "webhook-topics" in (ctx.data.get("relationships") or {}):
        res.relationships["webhook-topics"] = list(dict.fromkeys(topics))
    res.attributes["updated_at"] = ctx.now_iso
    ctx.store.put(res)
    return ctx.one(res)


# -- images ------------------------------------------------------------------------------------------------
MAX_IMAGE_BYTES = 5 * 1024 * 1024
_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF8", "gif"))
_EXTENSIONS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "gif": "gif"}
_DATA_URI = re.compile(r"^data:image/(png|jpe?g|gif);base64,(.*)$", re.S)


def add_image(sb: Sandbox, name: str, fmt: str, size: int, hidden: bool, now: float) -> Resource:
    """Store an image with the next numeric id; a taken name gets a " (n)" suffix."""
    ids = [int(r.id) for r in sb.store.iter("image") if r.id.isdigit()]
    rid = str(max(ids, default=0) + 1)
    taken = {str(r.attributes.get("name")) for r in sb.store.iter("image")}
    final, n = name, 1
    while final in taken:
        final, n = f"{name} ({n})", n + 1
    from .._app import PUBLIC_KEY

    url = f"https://sandbox-cdn.klaviyo.test/company/{PUBLIC_KEY}/images/{rid}.{'jpg' if fmt == 'jpeg' else fmt}"
    image = Resource(
        "image",
        rid,
        {"name": final, "image_url": url, "format": fmt, "size": size, "hidden": hidden, "updated_at": iso(now)},
        {},
        now,
        now,
    )
    sb.store.put(image)
    return image


def _format_of(data: bytes, filename: str) -> str | None:
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    return _EXTENSIONS.get(filename.rsplit(".", 1)[-1].lower()) if "." in filename else None


@handles("upload_image_from_url")
def _image_from_url(ctx: Ctx) -> Reply:
    source = str(ctx.attrs["import_from_url"])
    pointer = "/data/attributes/import_from_url"
    match = _DATA_URI.match(source)
    if match:
        try:
            data = base64.b64decode(match.group(2), validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("The data URI's base64 payload is not valid base64.", pointer=pointer) from None
        fmt, size, default_name = _EXTENSIONS[match.group(1)], len(data), "image"
    else:
        url = urlparse(source)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise bad_request("import_from_url must be an http(s) URL or a data:image/...;base64 URI.", pointer=pointer)
        default_name = url.path.rsplit("/", 1)[-1] or url.netloc
        fmt = _format_of(b"", default_name) or ""
        if not fmt:
            raise bad_request(f"Unsupported image format in {source!r}; supported: jpeg, png, gif.", pointer=pointer)
        size = 20_000 + zlib.crc32(source.encode()) % 480_000  # the sandbox does not download the image
    if size > MAX_IMAGE_BYTES:
        raise bad_request("The image is larger than 5MB, the maximum.", pointer=pointer)
    image = add_image(
        ctx.sandbox, ctx.attrs.get("name") or default_name, fmt, size, bool(ctx.attrs.get("hidden") or False), ctx.now
    )
    return ctx.one(image)


@handles("upload_image_from_file")
def _image_from_file(ctx: Ctx) -> Reply:
    form = ctx.form or {}
    upload = form.get("file")
    if not isinstance(upload, dict):
        raise SandboxError(
            400, "invalid", "Invalid input.", "Send the image as the multipart form field 'file'.", parameter="file"
        )
    data = base64.b64decode(upload.get("base64") or "")
    filename = str(upload.get("filename") or "upload")
    fmt = _format_of(data, filename)
    if fmt is None:
        raise SandboxError(
            400,
            "invalid",
            "Invalid input.",
            f"{filename!r} is not a jpeg, png or gif image (the supported formats).",
            parameter="file",
        )
    if len(data) > MAX_IMAGE_BYTES:
        raise SandboxError(
            400, "invalid", "Invalid input.", "The image is larger than 5MB, the maximum.", parameter="file"
        )
    hidden = str(form.get("hidden", "false")).lower() in ("true", "1")
    image = add_image(ctx.sandbox, str(form.get("name") or filename), fmt, len(data), hidden, ctx.now)
    return ctx.one(image)


@handles("update_image")
def _update_image(ctx: Ctx) -> Reply:
    image = ctx.get("image")
    for key in ("name", "hidden"):
        if ctx.attrs.get(key) is not None:
            image.attributes[key] = ctx.attrs[key]
    image.attributes["updated_at"] = ctx.now_iso
    ctx.store.put(image)
    return ctx.one(image)


# -- forms -------------------------------------------------------------------------------------------------
_FORM_TYPES = {"full_screen": "full_page"}


def add_form(sb: Sandbox, attrs: Json, now: float) -> Resource:
    """A form and one form-version per definition version (version ids are filled in when absent)."""
    definition = dict(attrs.get("definition") or {"versions": []})
    form = Resource(
        "form",
        sb.store.new_id("form", now),
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
        vid = version.get("id") or sb.store.rng.randint(1_000_000, 9_999_999)
        version["id"] = vid
        sb.store.put(
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
    sb.store.put(form)
    return form


@handles("create_form")
def _create_form(ctx: Ctx) -> Reply:
    return ctx.one(add_form(ctx.sandbox, ctx.attrs, ctx.now))


@handles("delete_form")
def _delete_form(ctx: Ctx) -> Reply:
    form = ctx.get("form")
    for _, vid in form.linked("form-versions"):
        ctx.store.delete("form-version", vid)
    ctx.store.delete("form", form.id)
    return ctx.no_content()


# -- demo data ---------------------------------------------------------------------------------------------
def seed_marketing_assets(seeder: Seeder) -> None:
    """Tag groups and tags on the seeded flows and campaigns, the WELCOME10 coupon, three images."""
    sb, when = seeder.sb, seeder.anchor - 250 * 86_400
    ensure_default_tag_group(sb)
    lifecycle = Resource(
        "tag-group", _uuid(sb), {"name": "Lifecycle", "exclusive": False, "default": False}, {}, when, when
    )
    sb.store.put(lifecycle)
    flows = {f.attributes["name"]: f.id for f in sb.store.iter("flow")}
    campaigns = {c.attributes["name"]: c.id for c in sb.store.iter("campaign")}
    lead = create_tag(sb, "Lead sequence", lifecycle, when)
    lead.relationships["flows"] = [("flow", fid) for name, fid in flows.items() if name.startswith("Lead sequence")]
    welcome = create_tag(sb, "Welcome", lifecycle, when)
    welcome.relationships["flows"] = [("flow", flows["Welcome series"])]
    content = create_tag(sb, "Content", ensure_default_tag_group(sb), when)
    content.relationships["campaigns"] = [
        ("campaign", cid) for name, cid in campaigns.items() if "Trail Guide" in name or "guide" in name.lower()
    ]
    promo = create_tag(sb, "Promotion", ensure_default_tag_group(sb), when)
    promo.relationships["campaigns"] = [
        ("campaign", cid)
        for name, cid in campaigns.items()
        if any(w in name for w in ("Sale", "VIP", "Restock", "New arrivals"))
    ]
    coupons.seed_coupons(seeder)
    for name, fmt, size in (
        ("northwind-logo.png", "png", 18_432),
        ("hero-autumn-trails.jpg", "jpeg", 284_310),
        ("trail-guide-cover.jpg", "jpeg", 142_877),
    ):
        add_image(sb, name, fmt, size, False, when)
