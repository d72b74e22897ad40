"""The demo account's history: 20 email campaigns over 90 days with their engagement, orders
(attributed to a click or not) and browsing.
"""

from __future__ import annotations

from typing import Any

from ..._jsonapi import iso
from .content import BRAND, CAMPAIGNS, PRODUCTS, SENDER_EMAIL, SITE
from .seeder import DAY, Person, Seeder


def schedule(seeder: Seeder) -> list[dict[str, Any]]:
    """Send times: two yesterday (10:00, 14:00 New York), the rest every ~5 days back to day 89."""
    out = []
    for n, (name, subject, preview, template, audience) in enumerate(CAMPAIGNS):
        if n < 2:
            send = seeder.local(1, 10 + 4 * n)
        else:
            days = min(89, round(3 + (n - 2) * 86 / 18) + seeder.rng.randint(-1, 1))
            send = seeder.local(days, seeder.rng.choice((9, 10, 11, 14, 16)), seeder.rng.choice((0, 15, 30)))
        out.append(
            {
                "name": name,
                "subject": subject,
                "preview": preview,
                "template": template,
                "audience": audience,
                "send": send,
                "anomaly": n == 1,
            }
        )
    return out


def audience(seeder: Seeder, key: str, t: float) -> list[Person]:
    people = seeder.people
    if key == "webinar":
        return [p for p in people if p.res.id in seeder.webinar and p.can_email(t)]
    if key == "vip":
        return [p for p in people if p.lifetime_orders >= 5 and p.state != "hard" and p.can_email(t)]
    if key == "repeat":
        return [p for p in people if p.orders >= 2 and p.state != "hard" and p.can_email(t)]
    pool = [p for p in people if p.state != "hard" and p.can_email(t)]
    if key == "engaged":
        return [p for p in pool if p.propensity >= 1.0]
    if key == "unengaged":
        return [p for p in pool if p.propensity < 1.0]
    return pool


def send_campaign(seeder: Seeder, n: int, camp: dict[str, Any]) -> None:
    rng, send = seeder.rng, camp["send"]
    created = send - rng.uniform(2, 6) * DAY
    audience_ids = {
        "newsletter": [seeder.ids["newsletter"]],
        "webinar": [seeder.ids["webinar"]],
        "vip": [seeder.ids["vip"]],
        "engaged": [seeder.ids["engaged"]],
        "unengaged": [seeder.ids["unengaged"]],
        "repeat": [seeder.ids["repeat"]],
    }[camp["audience"]]
    cid = seeder.new_id("campaign", created)
    template = seeder.ids["template:" + camp["template"]]
    mid = seeder.new_id("campaign-message", created)
    definition = {
        "channel": "email",
        "label": camp["name"],
        "content": {
            "subject": camp["subject"],
            "preview_text": camp["preview"],
            "from_email": SENDER_EMAIL,
            "from_label": BRAND,
            "reply_to_email": SENDER_EMAIL,
            "cc_email": None,
            "bcc_email": None,
        },
    }
    seeder.put(
        "campaign",
        {
            "name": camp["name"],
            "status": "Sent",
            "archived": False,
            "audiences": {"included": audience_ids, "excluded": [seeder.ids["unengaged"]] if n % 3 == 2 else []},
            "send_options": {"use_smart_sending": True},
            "tracking_options": {
                "add_tracking_params": True,
                "custom_tracking_params": None,
                "is_tracking_clicks": True,
                "is_tracking_opens": True,
            },
            "send_strategy": {"method": "static", "datetime": iso(send), "options": None},
            "created_at": iso(created),
            "scheduled_at": iso(send - rng.uniform(1, 20) * 3600),
            "updated_at": iso(send + 3600),
            "send_time": iso(send),
        },
        created,
        {"campaign-messages": [("campaign-message", mid)]},
        rid=cid,
    )
    seeder.put(
        "campaign-message",
        {
            "definition": definition,
            "send_times": [{"datetime": iso(send), "is_local": False}],
            "created_at": iso(created),
            "updated_at": iso(send),
        },
        created,
        {"campaign": ("campaign", cid), "template": ("template", template)},
        rid=mid,
    )
    base = {"$message": mid, "$campaign": cid, "Campaign Name": camp["name"], "Subject": camp["subject"]}
    boost = 3 if camp["audience"] == "unengaged" else 1  # a win-back offer lifts opens
    open_rate = 0.04 if camp["anomaly"] else rng.uniform(0.28, 0.42) * boost
    click_rate = rng.uniform(0.08, 0.16)
    for person in audience(seeder, camp["audience"], send):
        at = send + rng.randint(5, 1200)
        domain = person.res.attributes["email"].split("@")[1]
        if (person.state == "hard" and camp["anomaly"]) or rng.random() < 0.003:
            kind = "hard" if person.state == "hard" else "soft"
            seeder.event(
                person.suppressed_at or at,
                person,
                "Bounced Email",
                {**base, "Bounce Type": kind, "Email Domain": domain},
            )
            continue
        seeder.event(at, person, "Received Email", {**base, "Email Domain": domain})
        if person.unsub_campaign == n:
            seeder.event(person.unsub_at or at, person, "Unsubscribed from Email Marketing", dict(base))
        if rng.random() >= open_rate * person.propensity:
            continue
        opened = at + int(rng.expovariate(1 / 10_800)) + 30
        client = rng.choice(("Gmail", "Apple Mail", "Outlook"))
        seeder.event(opened, person, "Opened Email", {**base, "Client Name": client})
        if rng.random() >= click_rate * person.propensity:
            continue
        clicked = opened + rng.randint(10, 1800)
        seeder.event(clicked, person, "Clicked Email", {**base, "URL": f"{SITE}/journal/{n + 1}"})
        if rng.random() < 0.1:
            order(seeder, clicked + int(rng.expovariate(1 / 21_600)) + 120, person, mid)


def order(seeder: Seeder, when: float, person: Person, message_id: str | None = None) -> None:
    rng = seeder.rng
    items = rng.sample(PRODUCTS, rng.choices((1, 2, 3), (60, 30, 10))[0])
    value = round(sum(p[3] for p in items) * rng.choice((1.0, 1.0, 0.9, 0.8)), 2)
    order_id = f"NW-{len(seeder.events) + 100000}"
    props: dict[str, Any] = {
        "$value": value,
        "OrderId": order_id,
        "Items": [p[1] for p in items],
        "Categories": sorted({p[2] for p in items}),
        "ItemCount": len(items),
        "$currency_code": "USD",
    }
    if message_id:
        props["$attributed_message"] = message_id
    seeder.event(when, person, "Placed Order", props, order_id)


def make_orders(seeder: Seeder) -> None:
    """Unattributed orders: each customer's orders spread over the last 90 days."""
    for person in seeder.people:
        start = max(person.created + 3600, seeder.anchor - 90 * DAY)
        for _ in range(person.orders):
            order(seeder, seeder.rng.uniform(start, seeder.anchor - 60), person)
        person.res.attributes["properties"]["lifetime_orders"] = person.lifetime_orders


def make_browsing(seeder: Seeder) -> None:
    rng = seeder.rng
    for person in seeder.people:
        if rng.random() < 0.4:
            start = max(person.created, seeder.anchor - 90 * DAY)
            for _ in range(rng.randint(1, 5)):
                page = rng.choice(PRODUCTS)[0].lower()
                seeder.event(
                    rng.uniform(start, seeder.anchor - 1),
                    person,
                    "Active on Site",
                    {"page": f"{SITE}/products/{page}"},
                )
