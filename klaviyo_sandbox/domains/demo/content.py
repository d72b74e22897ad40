"""What Northwind Outfitters sells and sends: brand, catalog, campaigns, email templates and the
lead-sequence touchpoints.
"""

from __future__ import annotations

BRAND = "Northwind Outfitters"
SENDER_EMAIL = "hello@northwind-outfitters.example.com"
SITE = "https://northwind-outfitters.example.com"

CATEGORIES = (("footwear", "Footwear"), ("packs", "Packs"), ("apparel", "Apparel"), ("camp", "Camp & Shelter"))
# (external id, title, category, price)
PRODUCTS = (
    ("NW-BOOT-RIDGE", "Ridgeline Waterproof Hiking Boot", "footwear", 189.0),
    ("NW-SHOE-TRAIL", "Switchback Trail Runner", "footwear", 139.0),
    ("NW-PACK-32", "Cairn 32L Daypack", "packs", 129.0),
    ("NW-PACK-65", "Traverse 65L Backpack", "packs", 279.0),
    ("NW-JKT-SHELL", "Stormline 3L Shell Jacket", "apparel", 249.0),
    ("NW-JKT-PUFF", "Emberlight Down Puffy", "apparel", 199.0),
    ("NW-BASE-MERINO", "Merino 200 Base Layer", "apparel", 89.0),
    ("NW-TENT-2P", "Basecamp 2P Tent", "camp", 349.0),
    ("NW-BAG-20F", "Glacier 20F Sleeping Bag", "camp", 229.0),
    ("NW-STOVE", "Kindle Micro Stove", "camp", 59.0),
    ("NW-POLES", "Carbon Trekking Poles", "packs", 119.0),
    ("NW-HEADLAMP", "Beacon 400 Headlamp", "camp", 45.0),
)

# name, subject, preview text, template key, audience key
CAMPAIGNS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "Weekend trail picks",
        "5 trails worth the drive this weekend",
        "Plus the gear our guides swear by",
        "newsletter",
        "newsletter",
    ),
    (
        "Webinar replay: layering for the shoulder season",
        "Your webinar replay is ready",
        "Watch the full layering session",
        "plain",
        "webinar",
    ),
    (
        "New arrivals: Stormline shell",
        "Meet the Stormline 3L shell",
        "Built for sideways rain",
        "spotlight",
        "newsletter",
    ),
    (
        "VIP early access: gear swap",
        "Early access for our VIPs",
        "The gear swap opens for you first",
        "spotlight",
        "vip",
    ),
    ("Trail Guide: issue 12", "Trail Guide #12 is here", "12 routes, 3 packing lists", "newsletter", "newsletter"),
    (
        "Re-engagement: we miss you",
        "Still heading outdoors?",
        "Here is 10% off to get you back out",
        "plain",
        "unengaged",
    ),
    (
        "Packing list: 3-day hut trip",
        "Your 3-day hut trip packing list",
        "Everything, nothing extra",
        "newsletter",
        "engaged",
    ),
    ("Sale: end of season", "End of season: up to 40% off", "Tents, bags and more", "spotlight", "newsletter"),
    (
        "How to pick a sleeping bag",
        "Warm nights, lighter packs",
        "A five-minute guide to temperature ratings",
        "newsletter",
        "newsletter",
    ),
    (
        "Ambassador stories: Patagonia",
        "Ten days on the W Trek",
        "Our ambassador's field notes",
        "newsletter",
        "engaged",
    ),
    (
        "Repeat buyer thank-you",
        "A thank-you from the trail crew",
        "A little something for your next trip",
        "plain",
        "repeat",
    ),
    ("Trail running 101", "From road to trail in four weeks", "A beginner's plan", "newsletter", "newsletter"),
    ("Restock: Cairn 32L", "The Cairn 32L is back", "In all four colours", "spotlight", "newsletter"),
    ("Leave no trace weekend", "Join a trail clean-up near you", "Gear up, give back", "plain", "newsletter"),
    ("Summit Club members night", "Members night: you're invited", "Talks, maps and snacks", "plain", "vip"),
    ("Camp kitchen essentials", "Better camp breakfasts", "Our stove and kit picks", "newsletter", "newsletter"),
    ("Rain gear that works", "Stay dry without the sweat", "What actually keeps you dry", "spotlight", "engaged"),
    ("New trails to explore", "Six trails we added this month", "Where to go first", "newsletter", "newsletter"),
    ("Headlamp buying guide", "Lumens, explained", "Pick the right headlamp", "newsletter", "newsletter"),
    (
        "Trail Guide: issue 11",
        "Trail Guide #11: the high country",
        "Alpine routes and cold-weather layering",
        "newsletter",
        "newsletter",
    ),
)


def _html(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        '<body style="font-family:Helvetica,Arial,sans-serif;color:#1f2a24">'
        '<table width="600" align="center"><tr><td><h1 style="color:#2f5d3a">{title}</h1>{body}'
        '<p><a href="' + SITE + '">Shop Northwind</a></p>'
        '<p style="font-size:11px">{{% unsubscribe %}} · Northwind Outfitters, 41 Harbor Way, Portland, ME'
        "</p></td></tr></table></body></html>"
    ).format(title=title, body=body)


TEMPLATES: dict[str, tuple[str, str]] = {
    "newsletter": (
        "Newsletter — standard",
        _html("{{ campaign.subject }}", "<p>Hi {{ first_name|default:'there' }},</p><p>{{ content }}</p>"),
    ),
    "spotlight": (
        "Product spotlight",
        _html("New from Northwind", '<img src="' + SITE + '/img/hero.jpg" width="600" alt=""><p>{{ content }}</p>'),
    ),
    "plain": (
        "Plain text letter",
        _html("A note from the trail crew", "<p>{{ content }}</p><p>— The Northwind team</p>"),
    ),
    "lead": (
        "Lead nurture — plain",
        _html(
            "Your Trail Guide",
            "<p>Hi {{ first_name|default:'there' }}, thanks for downloading the Trail Guide.</p><p>{{ content }}</p>",
        ),
    ),
    "welcome": (
        "Welcome series",
        _html("Welcome to Northwind", "<p>Glad you're here. Here's 10% off your first order: WELCOME10</p>"),
    ),
}

# sequence -> touchpoints (subject, preview); delays between them are 2 days, then 3 days.
LEAD_SEQUENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "fast-track": (
        ("Your Trail Guide + a 15-minute gear consult", "Pick a time that suits your team"),
        ("Ready to outfit your team? Let's talk numbers", "Volume pricing and a dedicated rep"),
    ),
    "nurture": (
        ("Your Trail Guide is here", "12 routes and the packing lists our guides use"),
        ("How trip leaders pack for a 3-day hike", "A checklist you can hand to your group"),
        ("Team pricing, whenever you're ready", "No pressure — here's what it looks like"),
    ),
    "education": (
        ("Your Trail Guide is here", "Start with route #1: an easy classic"),
        ("Layering 101: stay warm, stay dry", "The three-layer system, explained"),
        ("Choosing your first pair of boots", "Fit first, then features"),
    ),
}
