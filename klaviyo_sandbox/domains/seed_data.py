"""Word lists and content templates for the seeded demo account (Northwind Outfitters).

Data plus small builders: spec-shaped documents (form, flow and segment definitions, predictive
analytics), phone numbers, event ULIDs, and ``seed_flows`` which stores the flows; ``seed.py`` does
the rest. Everything is fictional: common given names and surnames, reserved example domains for
emails, fictional or drama ranges for phone numbers.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from .._context import iso

if TYPE_CHECKING:
    from .seed import Seeder

Json = dict[str, Any]
DAY = 86_400

BRAND = "Northwind Outfitters"
SENDER_EMAIL = "hello@northwind-outfitters.example.com"
SITE = "https://northwind-outfitters.example.com"

FIRST_NAMES = (
    "Ava",
    "Liam",
    "Olivia",
    "Noah",
    "Emma",
    "Elijah",
    "Sophia",
    "James",
    "Isabella",
    "Lucas",
    "Mia",
    "Mateo",
    "Amelia",
    "Benjamin",
    "Harper",
    "Henry",
    "Evelyn",
    "Theodore",
    "Abigail",
    "Jack",
    "Emily",
    "Levi",
    "Ella",
    "Sebastian",
    "Scarlett",
    "Owen",
    "Grace",
    "Samuel",
    "Chloe",
    "Wyatt",
    "Nora",
    "Julian",
    "Hazel",
    "Ezra",
    "Aurora",
    "Hudson",
    "Riley",
    "Leo",
    "Zoe",
    "Caleb",
    "Stella",
    "Isaac",
    "Hannah",
    "Miles",
    "Layla",
    "Rowan",
    "Maya",
    "Nathan",
    "Priya",
    "Arjun",
    "Mei",
    "Kenji",
    "Yuki",
    "Sofia",
    "Diego",
    "Camila",
    "Lars",
    "Ingrid",
    "Freya",
    "Finn",
    "Niamh",
    "Declan",
    "Aisha",
    "Omar",
    "Fatima",
    "Tariq",
    "Chiara",
    "Luca",
    "Elodie",
    "Hugo",
    "Greta",
    "Jonas",
    "Marta",
    "Tomas",
    "Ruby",
    "Archie",
    "Willow",
    "Jasper",
    "Iris",
    "Felix",
)
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Patel",
    "Shah",
    "Kim",
    "Park",
    "Tanaka",
    "Sato",
    "Chen",
    "Wang",
    "Larsen",
    "Nilsson",
    "Berg",
    "Murphy",
    "O'Brien",
    "Kelly",
    "Fischer",
    "Weber",
    "Schneider",
    "Rossi",
    "Bianchi",
    "Dubois",
    "Moreau",
    "Novak",
    "Kowalski",
    "Costa",
    "Silva",
    "Hughes",
    "Evans",
    "Fraser",
    "Reid",
    "MacLeod",
    "Okafor",
    "Haddad",
)
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com", "trail.example.net")

# (country, weight, city, region, zip, IANA zone, latitude, longitude, locale)
CITIES: tuple[tuple[str, float, str, str, str, str, float, float, str], ...] = (
    ("US", 6, "New York", "NY", "10001", "America/New_York", 40.7506, -73.9972, "en-US"),
    ("US", 4, "Boston", "MA", "02108", "America/New_York", 42.3576, -71.0636, "en-US"),
    ("US", 3, "Burlington", "VT", "05401", "America/New_York", 44.4759, -73.2121, "en-US"),
    ("US", 3, "Asheville", "NC", "28801", "America/New_York", 35.5951, -82.5515, "en-US"),
    ("US", 4, "Chicago", "IL", "60601", "America/Chicago", 41.8853, -87.6216, "en-US"),
    ("US", 3, "Minneapolis", "MN", "55401", "America/Chicago", 44.9836, -93.2696, "en-US"),
    ("US", 3, "Austin", "TX", "78701", "America/Chicago", 30.2711, -97.7437, "en-US"),
    ("US", 5, "Denver", "CO", "80202", "America/Denver", 39.7525, -104.9995, "en-US"),
    ("US", 4, "Boulder", "CO", "80302", "America/Denver", 40.0176, -105.2797, "en-US"),
    ("US", 3, "Salt Lake City", "UT", "84101", "America/Denver", 40.7560, -111.9003, "en-US"),
    ("US", 2, "Bozeman", "MT", "59715", "America/Denver", 45.6793, -111.0373, "en-US"),
    ("US", 2, "Phoenix", "AZ", "85004", "America/Phoenix", 33.4515, -112.0685, "en-US"),
    ("US", 5, "Seattle", "WA", "98101", "America/Los_Angeles", 47.6114, -122.3305, "en-US"),
    ("US", 4, "Portland", "OR", "97204", "America/Los_Angeles", 45.5184, -122.6742, "en-US"),
    ("US", 4, "San Francisco", "CA", "94105", "America/Los_Angeles", 37.7898, -122.3942, "en-US"),
    ("US", 1, "Anchorage", "AK", "99501", "America/Anchorage", 61.2176, -149.8997, "en-US"),
    ("CA", 4, "Vancouver", "BC", "V6B 1A1", "America/Vancouver", 49.2827, -123.1207, "en-CA"),
    ("CA", 3, "Calgary", "AB", "T2P 1J9", "America/Edmonton", 51.0447, -114.0719, "en-CA"),
    ("CA", 3, "Toronto", "ON", "M5H 2N2", "America/Toronto", 43.6532, -79.3832, "en-CA"),
    ("CA", 2, "Montreal", "QC", "H2Y 1C6", "America/Toronto", 45.5017, -73.5673, "fr-CA"),
    ("GB", 5, "London", "England", "EC1A 1BB", "Europe/London", 51.5202, -0.0979, "en-GB"),
    ("GB", 2, "Manchester", "England", "M1 1AE", "Europe/London", 53.4794, -2.2453, "en-GB"),
    ("GB", 2, "Edinburgh", "Scotland", "EH1 1YZ", "Europe/London", 55.9533, -3.1883, "en-GB"),
    ("DE", 3, "Munich", "Bavaria", "80331", "Europe/Berlin", 48.1374, 11.5755, "de-DE"),
    ("DE", 2, "Berlin", "Berlin", "10117", "Europe/Berlin", 52.5163, 13.3777, "de-DE"),
    ("FR", 1, "Chamonix", "Auvergne-Rhone-Alpes", "74400", "Europe/Paris", 45.9237, 6.8694, "fr-FR"),
    ("AU", 3, "Sydney", "NSW", "2000", "Australia/Sydney", -33.8688, 151.2093, "en-AU"),
    ("AU", 2, "Melbourne", "VIC", "3000", "Australia/Melbourne", -37.8136, 144.9631, "en-AU"),
    ("AU", 1, "Hobart", "TAS", "7000", "Australia/Hobart", -42.8821, 147.3272, "en-AU"),
    ("NZ", 1, "Queenstown", "Otago", "9300", "Pacific/Auckland", -45.0312, 168.6626, "en-NZ"),
)
STREETS = (
    "Main St",
    "Summit Ave",
    "Ridge Rd",
    "Lakeview Dr",
    "Cedar Ln",
    "Pine St",
    "Canyon Rd",
    "Harbor Way",
    "Trailhead Ct",
    "Birch Blvd",
)

ORGANIZATIONS = (
    "Summit Guides Co.",
    "Blue Ridge Scouts",
    "Cascade Climbing Club",
    "Alpine Youth League",
    "Northern Lights Tours",
    "Evergreen Outdoor School",
    "Red Rock Expeditions",
    "Trailblazers Running Club",
    "Harbor Kayak Rentals",
    "Granite Peak Lodge",
    "Wild Coast Adventures",
    "Meadowbrook Camp",
    "Pathfinder Schools",
    "Ridgeline Retail",
)
COMPANY_SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
ROLES = (
    "Enthusiast",
    "Trip leader",
    "Outdoor program director",
    "Retail buyer",
    "Guide",
    "Camp director",
    "Procurement manager",
)
INDUSTRIES = ("Outdoor recreation", "Education", "Hospitality", "Retail", "Non-profit", "Tourism", "Consumer")
PLANS = ("free", "free", "free", "trail-club", "trail-club", "summit-club")
ACTIVITIES = ("hiking", "trail running", "climbing", "camping", "backpacking", "kayaking", "skiing", "cycling")

# Lead-magnet form answers (property name -> options); fast-track leads come from the top of each list.
FORM_FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("company_size", "Team or organisation size", ("1000+", "201-1000", "51-200", "11-50", "1-10")),
    (
        "role",
        "Your role",
        (
            "Procurement manager",
            "Outdoor program director",
            "Camp director",
            "Trip leader",
            "Guide",
            "Retail buyer",
            "Enthusiast",
        ),
    ),
    (
        "interest",
        "What are you planning?",
        ("team outfitting", "guided trips", "school programs", "personal gear", "just the guide"),
    ),
    ("timeline", "When do you need gear?", ("this month", "this quarter", "next 6 months", "just browsing")),
    ("budget", "Budget", ("$25k+", "$5k-$25k", "$1k-$5k", "<$1k")),
)

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


def _block(kind: str, **props: Any) -> Json:
    return {"type": kind, "properties": props}


def form_definition(version_id: int, list_id: str) -> Json:
    """The Trail Guide lead-magnet popup: email plus the five qualification questions."""
    blocks: list[Json] = [
        _block(
            "html_text",
            content="<h2>Get the free Northwind Trail Guide</h2><p>12 routes, packing lists and "
            "gear advice from our guides.</p>",
        ),
        _block(
            "email",
            label="Email",
            placeholder="you@example.com",
            required=True,
            property_name="$email",
            show_label=False,
        ),
    ]
    for prop, label, options in FORM_FIELDS:
        blocks.append(
            _block(
                "dropdown",
                property_name=prop,
                label=label,
                required=prop in ("role", "timeline"),
                show_label=True,
                options=[{"label": o, "value": o} for o in options],
            )
        )
    blocks.append(
        {
            "type": "button",
            "properties": {"label": "Send me the guide"},
            "action": {"type": "next_step", "submit": True, "properties": {"list_id": list_id}},
        }
    )
    success = [_block("html_text", content="<h2>Check your inbox!</h2><p>Your Trail Guide is on its way.</p>")]
    return {
        "versions": [
            {
                "id": version_id,
                "name": "Trail Guide popup",
                "type": "popup",
                "status": "live",
                "ab_test": False,
                "channel": "WEB",
                "triggers": [{"type": "delay", "properties": {"seconds": 8}}],
                "steps": [
                    {"id": "step-signup", "name": "Sign up", "columns": [{"rows": [{"blocks": blocks}]}]},
                    {"id": "step-success", "name": "Success", "columns": [{"rows": [{"blocks": success}]}]},
                ],
            }
        ]
    }


def send_email_action(
    action_id: str, next_id: str | None, name: str, subject: str, preview: str, template_id: str
) -> Json:
    return {
        "id": action_id,
        "type": "send-email",
        "links": {"next": next_id},
        "data": {
            "status": "live",
            "message": {
                "name": name,
                "subject_line": subject,
                "preview_text": preview,
                "from_email": SENDER_EMAIL,
                "from_label": BRAND,
                "reply_to_email": SENDER_EMAIL,
                "cc_email": None,
                "bcc_email": None,
                "template_id": template_id,
                "smart_sending_enabled": False,
                "transactional": False,
                "add_tracking_params": True,
                "custom_tracking_params": None,
                "additional_filters": None,
            },
        },
    }


def delay_action(action_id: str, next_id: str | None, days: int) -> Json:
    return {
        "id": action_id,
        "type": "time-delay",
        "links": {"next": next_id},
        "data": {
            "unit": "days",
            "value": days,
            "secondary_value": None,
            "delay_until_time": None,
            "delay_until_weekdays": None,
        },
    }


def email_chain(
    ids: list[str], touches: tuple[tuple[str, str], ...], template_id: str, delays: tuple[int, ...] = (2, 3)
) -> list[Json]:
    """send-email, time-delay, send-email, ...: ``ids`` holds one id per action, in order."""
    actions: list[Json] = []
    k = 0
    for n, (subject, preview) in enumerate(touches):
        if n:
            actions.append(delay_action(ids[k], ids[k + 1], delays[min(n - 1, len(delays) - 1)]))
            k += 1
        nxt = ids[k + 1] if k + 1 < len(ids) else None
        actions.append(send_email_action(ids[k], nxt, f"Touchpoint {n + 1}", subject, preview, template_id))
        k += 1
    return actions


def lead_flow_definition(metric_id: str, sequence: str, ids: list[str], template_id: str) -> Json:
    """FlowDefinition: metric trigger on "Lead Sequence Started" where ``sequence`` equals this one."""
    actions = email_chain(ids, LEAD_SEQUENCES[sequence], template_id)
    return {
        "triggers": [
            {
                "type": "metric",
                "id": metric_id,
                "trigger_filter": {
                    "condition_groups": [
                        {
                            "conditions": [
                                {
                                    "type": "metric-property",
                                    "metric_id": metric_id,
                                    "field": "sequence",
                                    "filter": {"type": "string", "operator": "equals", "value": sequence},
                                }
                            ]
                        }
                    ]
                },
            }
        ],
        "profile_filter": None,
        "actions": actions,
        "entry_action_id": actions[0]["id"],
    }


def welcome_flow_definition(list_id: str, ids: list[str], template_id: str) -> Json:
    touches = (
        ("Welcome to Northwind — here's 10% off", "Your code: WELCOME10"),
        ("Our best-selling trail gear", "What our guides pack first"),
    )
    actions = email_chain(ids, touches, template_id, delays=(3,))
    return {
        "triggers": [{"type": "list", "id": list_id}],
        "profile_filter": None,
        "actions": actions,
        "entry_action_id": actions[0]["id"],
    }


def segment_definition(key: str, metric_ids: dict[str, str]) -> Json:
    """SegmentDefinition for "engaged" (opened in 30 days), "repeat" (2+ orders) or "unengaged"."""

    def metric(name: str, op: str, value: int, timeframe: Json) -> Json:
        return {
            "conditions": [
                {
                    "type": "profile-metric",
                    "metric_id": metric_ids[name],
                    "measurement": "count",
                    "measurement_filter": {"type": "numeric", "operator": op, "value": value},
                    "timeframe_filter": timeframe,
                    "metric_filters": None,
                }
            ]
        }

    def last(days: int) -> Json:
        return {"type": "date", "operator": "in-the-last", "quantity": days, "unit": "day"}

    if key == "engaged":
        groups = [metric("Opened Email", "greater-than", 0, last(30))]
    elif key == "repeat":
        groups = [metric("Placed Order", "greater-than-or-equal", 2, {"type": "date", "operator": "alltime"})]
    else:
        groups = [metric("Received Email", "greater-than", 0, last(90)), metric("Opened Email", "equals", 0, last(90))]
    return {"condition_groups": groups}


def predictions(rng: random.Random, orders: int, propensity: float, anchor: float) -> Json:
    """Profile ``predictive_analytics`` consistent with the profile's order count."""
    aov = round(rng.uniform(60, 260), 2)
    historic = round(orders * aov, 2)
    predicted = round(rng.uniform(0, 3) * aov * propensity, 2)
    return {
        "historic_clv": historic,
        "predicted_clv": predicted,
        "total_clv": round(historic + predicted, 2),
        "historic_number_of_orders": float(orders),
        "predicted_number_of_orders": round(rng.uniform(0, 3), 1),
        "average_days_between_orders": round(rng.uniform(30, 180), 1) if orders > 1 else None,
        "average_order_value": aov if orders else None,
        "churn_probability": round(rng.uniform(0.05, 0.95), 2),
        "expected_date_of_next_order": iso(anchor + rng.uniform(5, 120) * DAY) if orders else None,
        "ranked_channel_affinity": rng.choice((["email", "sms", "push"], ["sms", "email", "push"])),
    }


def lead_score(answers: dict[str, str]) -> int:
    """Points per answer: the earlier an option in its list (bigger team, sooner, larger budget), the more."""
    score = 0
    for prop, _, options in FORM_FIELDS:
        if answers.get(prop) in options:
            score += max(0, 3 - options.index(answers[prop]))
    return score


_PHONE_FORMATS = {
    "US": "+1{area}555{n:04d}",
    "CA": "+1{area}555{n:04d}",
    "GB": "+447700900{n:03d}",
    "DE": "+4915112{n:06d}",
    "FR": "+33612{n:06d}",
    "AU": "+61491570{n:03d}",
    "NZ": "+64211{n:06d}",
}
_AREA_CODES = {"US": (212, 303, 206, 617, 512, 720, 503, 415), "CA": (604, 416, 403, 514)}


def phone_number(country: str, n: int) -> str:
    """The ``n``-th E.164 number for a country, in fictional or drama ranges (555-01xx style, 07700 900xxx)."""
    areas = _AREA_CODES.get(country, (0,))
    return _PHONE_FORMATS[country].format(area=areas[n % len(areas)], n=n // len(areas) + 100)


_PAIRS = [a + b for a in "0123456789ABCDEFGHJKMNPQRSTVWXYZ" for b in "0123456789ABCDEFGHJKMNPQRSTVWXYZ"]
_SHIFTS = range(120, -1, -10)  # 13 pairs of base32 digits = 130 bits, the top two zero


def ulid(ms: int, random_bits: int) -> str:
    """A ULID (48-bit milliseconds, 80 random bits) in Crockford base32, as ``Store.new_id`` makes them."""
    value = (ms << 80) | random_bits
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


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
