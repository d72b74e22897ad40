"""The demo account's assets: metrics, email templates, the four live flows, the catalog, coupons, tags
and images, made with the domains' own helpers where they have them.
"""

from __future__ import annotations

from typing import Any

from ..._jsonapi import iso
from ..._store import Resource
from .. import catalogs, coupons, images, tags
from .._common import KLAVIYO_INTEGRATION, find_or_create_metric
from .content import CATEGORIES, LEAD_SEQUENCES, PRODUCTS, SITE, TEMPLATES
from .definitions import lead_flow_definition, welcome_flow_definition
from .seeder import DAY, Seeder

METRICS = (
    "Received Email",
    "Opened Email",
    "Clicked Email",
    "Bounced Email",
    "Unsubscribed from Email Marketing",
    "Placed Order",
    "Form viewed by profile",
    "Form submitted by profile",
    "Lead Sequence Started",
    "Active on Site",
)


def seed_metrics(seeder: Seeder) -> None:
    """The account's metrics (``METRICS``); form and site metrics are Klaviyo's own."""
    for name in METRICS:
        metric = find_or_create_metric(seeder.svc, name, seeder.anchor - 730 * DAY)
        if name in ("Form viewed by profile", "Form submitted by profile", "Active on Site"):
            metric.attributes["integration"] = dict(KLAVIYO_INTEGRATION)
        seeder.metric[name] = metric.id


def seed_templates(seeder: Seeder, created: float) -> None:
    """The five code templates of ``content.TEMPLATES``."""
    for key, (name, html) in TEMPLATES.items():
        seeder.ids["template:" + key] = seeder.put(
            "template",
            {
                "name": name,
                "editor_type": "CODE",
                "html": html,
                "text": None,
                "amp": None,
                "created": iso(created),
                "updated": iso(created),
            },
            created,
        ).id


def seed_flows(seeder: Seeder) -> None:
    """The four live flows with their flow-action and flow-message resources (action ids are the
    flow-action ids; a send-email's ``message.id`` is its flow-message id)."""
    when = seeder.anchor - 200 * DAY
    flows = [(f"Lead sequence: {seq}", "Metric", seq) for seq in LEAD_SEQUENCES]
    for name, trigger_type, key in [*flows, ("Welcome series", "Added to List", "welcome")]:
        touches = len(LEAD_SEQUENCES.get(key, ((), ())))
        action_ids = [seeder.store.new_id("flow-action", when) for _ in range(2 * touches - 1)]
        if key == "welcome":
            definition = welcome_flow_definition(seeder.ids["newsletter"], action_ids, seeder.ids["template:welcome"])
        else:
            definition = lead_flow_definition(
                seeder.metric["Lead Sequence Started"], key, action_ids, seeder.ids["template:lead"]
            )
        flow = seeder.put(
            "flow",
            {
                "name": name,
                "status": "live",
                "archived": False,
                "created": iso(when),
                "updated": iso(when),
                "trigger_type": trigger_type,
                "definition": definition,
            },
            when,
            {"flow-actions": [("flow-action", a) for a in action_ids]},
        )
        for action in definition["actions"]:
            rels: dict[str, Any] = {"flow": ("flow", flow.id), "flow-messages": []}
            if action["type"] == "send-email":
                message = action["data"]["message"]
                msg = seeder.put(
                    "flow-message",
                    {"channel": "email", "definition": message, "created": iso(when), "updated": iso(when)},
                    when,
                    {"flow-action": ("flow-action", action["id"]), "template": ("template", message["template_id"])},
                )
                rels["flow-messages"] = [("flow-message", msg.id)]
                message["id"] = msg.id
            seeder.put(
                "flow-action",
                {"created": iso(when), "updated": iso(when), "definition": action},
                when,
                rels,
                rid=action["id"],
            )
        seeder.ids["flow:" + key] = flow.id


def seed_catalog(seeder: Seeder) -> None:
    """Northwind's catalog: categories, 12 items and two variants each (see ``content.PRODUCTS``)."""
    svc, when = seeder.svc, seeder.anchor - 300 * 86_400
    for key, name in CATEGORIES:
        catalogs.create(svc, catalogs.CATEGORY, {"attributes": {"external_id": key, "name": name}}, when)
    sizes = {"footwear": ("9", "10"), "apparel": ("M", "L"), "packs": ("Regular", "Tall"), "camp": ("Standard", "XL")}
    for external, title, category, price in PRODUCTS:
        slug = external.lower()
        catalogs.create(
            svc,
            catalogs.ITEM,
            {
                "attributes": {
                    "external_id": external,
                    "title": title,
                    "description": f"{title} by Northwind Outfitters.",
                    "price": price,
                    "url": f"{SITE}/products/{slug}",
                    "image_full_url": f"{SITE}/img/{slug}.jpg",
                    "image_thumbnail_url": f"{SITE}/img/{slug}-thumb.jpg",
                    "images": [f"{SITE}/img/{slug}.jpg"],
                    "custom_metadata": {"activity": category},
                    "published": True,
                },
                "relationships": {
                    "categories": {"data": [{"type": catalogs.CATEGORY, "id": catalogs.compound_id(category)}]}
                },
            },
            when,
        )
        for size in sizes[category]:
            catalogs.create(
                svc,
                catalogs.VARIANT,
                {
                    "attributes": {
                        "external_id": f"{external}-{size.upper()}",
                        "title": f"{title} — {size}",
                        "description": f"{title}, size {size}.",
                        "sku": f"{external}-{size.upper()}",
                        "inventory_policy": 1,
                        "inventory_quantity": seeder.rng.randint(0, 60),
                        "price": price,
                        "url": f"{SITE}/products/{slug}?size={size}",
                        "published": True,
                    },
                    "relationships": {"item": {"data": {"type": catalogs.ITEM, "id": catalogs.compound_id(external)}}},
                },
                when,
            )


def seed_coupons(seeder: Seeder) -> None:
    """WELCOME10 (the welcome flow's code) with 25 codes, a few already assigned or used."""
    svc, when = seeder.svc, seeder.anchor - 120 * 86_400
    coupons.add_coupon(svc, {"external_id": "WELCOME10", "description": "10% off a first order"}, when)
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    subscribers = [p.res.id for p in seeder.people if p.state == "sub"]
    for n in range(25):
        code = "".join(seeder.rng.choice(alphabet) for _ in range(8))
        res = coupons.add_code(
            svc,
            {
                "attributes": {"unique_code": code},
                "relationships": {"coupon": {"data": {"type": "coupon", "id": "WELCOME10"}}},
            },
            when,
        )
        if n < 6:
            res.attributes["status"] = "USED" if n < 2 else "ASSIGNED_TO_PROFILE"
            res.relationships["profile"] = ("profile", subscribers[n])


def seed_marketing_assets(seeder: Seeder) -> None:
    """Tag groups and tags on the seeded flows and campaigns, the WELCOME10 coupon, three images."""
    svc, when = seeder.svc, seeder.anchor - 250 * 86_400
    tags.ensure_default_tag_group(svc, when)  # made with the account's other assets, not at seeding time
    lifecycle = Resource(
        "tag-group", tags.new_uuid(svc), {"name": "Lifecycle", "exclusive": False, "default": False}, {}, when, when
    )
    svc.store.put(lifecycle)
    flows = {f.attributes["name"]: f.id for f in svc.store.iter("flow")}
    campaigns = {c.attributes["name"]: c.id for c in svc.store.iter("campaign")}
    lead = tags.create_tag(svc, "Lead sequence", lifecycle, when)
    lead.relationships["flows"] = [("flow", fid) for name, fid in flows.items() if name.startswith("Lead sequence")]
    welcome = tags.create_tag(svc, "Welcome", lifecycle, when)
    welcome.relationships["flows"] = [("flow", flows["Welcome series"])]
    content = tags.create_tag(svc, "Content", tags.ensure_default_tag_group(svc, when), when)
    content.relationships["campaigns"] = [
        ("campaign", cid) for name, cid in campaigns.items() if "Trail Guide" in name or "guide" in name.lower()
    ]
    promo = tags.create_tag(svc, "Promotion", tags.ensure_default_tag_group(svc, when), when)
    promo.relationships["campaigns"] = [
        ("campaign", cid)
        for name, cid in campaigns.items()
        if any(w in name for w in ("Sale", "VIP", "Restock", "New arrivals"))
    ]
    seed_coupons(seeder)
    for name, fmt, size in (
        ("northwind-logo.png", "png", 18_432),
        ("hero-autumn-trails.jpg", "jpeg", 284_310),
        ("trail-guide-cover.jpg", "jpeg", 142_877),
    ):
        images.add_image(svc, name, fmt, size, False, when)
