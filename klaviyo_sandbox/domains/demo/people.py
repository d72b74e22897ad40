"""The demo account's people: 2,000 profiles with their consent story, the Trail Guide sign-ups, and the
consent and predictive analytics they end with.
"""

from __future__ import annotations

from typing import Any

from .._common import new_profile, set_email_consent, set_sms_consent, suppress_email
from .definitions import lead_score, phone_number, predictions
from .seeder import DAY, Person, Seeder
from .words import (
    ACTIVITIES,
    CITIES,
    COMPANY_SIZES,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    FORM_FIELDS,
    INDUSTRIES,
    LAST_NAMES,
    ORGANIZATIONS,
    PLANS,
    ROLES,
    STREETS,
)

N_PROFILES = 2_000
# consent state -> share of profiles
_STATES = (("sub", 0.65), ("never", 0.20), ("unsub", 0.12), ("hard", 0.02), ("user", 0.01))
_PROPENSITY = ((1.8, 0.25), (1.0, 0.45), (0.12, 0.30))  # open-rate multiplier, share


def make_people(seeder: Seeder, schedule: list[dict[str, Any]]) -> None:
    rng = seeder.rng
    states = [s for s, share in _STATES for _ in range(round(share * N_PROFILES))]
    rng.shuffle(states)
    created = sorted(
        seeder.anchor - (rng.uniform(2, 90) if rng.random() < 0.25 else rng.uniform(90, 1100)) * DAY
        for _ in range(N_PROFILES)
    )
    weights = [c[1] for c in CITIES]
    seen: set[str] = set()
    hard_bounce = next(c["send"] for c in schedule if c["anomaly"])
    for i, (state, when) in enumerate(zip(states, created, strict=True)):
        when = int(when)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = unique_email(seeder, first, last, seen)
        city = rng.choices(CITIES, weights)[0]
        customer = rng.random() < 0.3
        org = rng.choice(ORGANIZATIONS) if rng.random() < 0.25 else None
        role = rng.choice(ROLES[1:]) if org else "Enthusiast"
        attrs: dict[str, Any] = {
            "email": email,
            "phone_number": phone(seeder, city[0]) if rng.random() < 0.6 else None,
            "external_id": f"nw-cus-{100000 + i}" if customer else None,
            "first_name": first,
            "last_name": last,
            "organization": org,
            "title": role if org else None,
            "locale": city[8],
            "location": {
                "address1": f"{rng.randint(1, 999)} {rng.choice(STREETS)}",
                "address2": None,
                "city": city[2],
                "region": city[3],
                "country": city[0],
                "zip": city[4],
                "timezone": city[5],
                "latitude": city[6],
                "longitude": city[7],
                "ip": None,
            },
            "properties": {
                "company_size": rng.choice(COMPANY_SIZES) if org else "1-10",
                "role": role,
                "industry": rng.choice(INDUSTRIES),
                "plan": rng.choice(PLANS),
                "preferred_activity": rng.choice(ACTIVITIES),
                "lifetime_orders": 0,
            },
        }
        res = new_profile(seeder.svc, attrs, when, rid=seeder.new_id("profile", when))
        propensity = rng.choices([p for p, _ in _PROPENSITY], [w for _, w in _PROPENSITY])[0]
        person = Person(res, state, when, propensity)
        if customer:
            person.orders = rng.choices((0, 1, 2, 3, 4), (30, 35, 18, 10, 7))[0]
            person.lifetime_orders = person.orders + rng.choices((0, 1, 2, 4, 7), (40, 25, 15, 12, 8))[0]
        if state == "unsub":
            if rng.random() < 0.6:
                person.unsub_campaign = rng.randrange(len(schedule))
                person.unsub_at = schedule[person.unsub_campaign]["send"] + rng.randint(600, 7200)
            else:
                person.unsub_at = seeder.anchor - rng.uniform(95, 400) * DAY
            if person.unsub_at <= person.created + 60:
                person.unsub_at = person.created + 3600
        elif state == "hard":
            person.suppressed_at = hard_bounce + rng.randint(60, 900)
        elif state == "user":
            person.suppressed_at = seeder.anchor - rng.uniform(1, 200) * DAY
        seeder.people.append(person)
    others = [p.res.id for p in seeder.people if p.state != "hard"]
    seeder.webinar = {p.res.id for p in seeder.people if p.state == "hard"} | set(rng.sample(others, 210))


def phone(seeder: Seeder, country: str) -> str:
    """A unique E.164 number in a fictional or drama range (555-xxxx, 07700 900xxx, 0491 570xxx)."""
    n = seeder.phones.get(country, 0)
    seeder.phones[country] = n + 1
    return phone_number(country, n)


def unique_email(seeder: Seeder, first: str, last: str, seen: set[str]) -> str:
    base = f"{first}.{last}".lower().replace("'", "")
    domain = seeder.rng.choice(EMAIL_DOMAINS)
    email, n = f"{base}@{domain}", 1
    while email in seen:
        n += 1
        email = f"{base}{n}@{domain}"
    seen.add(email)
    return email


def make_submissions(seeder: Seeder) -> None:
    """150 Trail Guide sign-ups: mostly subscribers, some without consent, a few suppressed."""
    rng, pools = seeder.rng, {}
    for state in ("sub", "never", "unsub", "user"):
        pools[state] = [p for p in seeder.people if p.state == state]
    chosen = (
        rng.sample(pools["sub"], 115)
        + rng.sample(pools["never"], 22)
        + rng.sample(pools["unsub"], 8)
        + rng.sample(pools["user"], 5)
    )
    rng.shuffle(chosen)
    yesterday = seeder.day_start(1)
    form = {"form_id": seeder.ids["form"], "form_name": "Trail Guide", "form_version_id": seeder.ids["form-version"]}
    for n, person in enumerate(chosen):
        lo = max(person.created + 120, seeder.anchor - 90 * DAY)
        lo = max(lo, yesterday) if n < 6 and person.created < yesterday else lo
        when = int(rng.uniform(lo, seeder.anchor - 60))
        person.submitted_at = when
        answers = {
            prop: options[min(len(options) - 1, int(rng.triangular(0, len(options), len(options) * 0.6)))]
            for prop, _, options in FORM_FIELDS
        }
        person.res.attributes["properties"].update(answers)
        seeder.event(when - rng.randint(20, 600), person, "Form viewed by profile", dict(form))
        seeder.event(when, person, "Form submitted by profile", {**form, **answers}, f"form-{when}")
        if person.state == "sub":
            person.subscribed_at = when
        if when < seeder.anchor - 2 * DAY and rng.random() < 0.75:
            score = lead_score(answers)
            sequence = "fast-track" if score >= 8 else "nurture" if score >= 5 else "education"
            seeder.event(
                when + rng.randint(300, 1800),
                person,
                "Lead Sequence Started",
                {"sequence": sequence, "score": score, "form_id": seeder.ids["form"], "lead_source": "Trail Guide"},
            )
    for person in rng.sample([p for p in seeder.people if p.submitted_at is None], 700):
        start = max(person.created + 60, seeder.anchor - 90 * DAY)
        seeder.event(rng.uniform(start, seeder.anchor - 60), person, "Form viewed by profile", dict(form))


def apply_consent(seeder: Seeder) -> None:
    rng = seeder.rng
    for p in seeder.people:
        res = p.res
        if p.subscribed_at is not None:
            method = "Klaviyo Form" if p.submitted_at == p.subscribed_at else "API"
            set_email_consent(res, "SUBSCRIBED", p.subscribed_at, method=method, consented_at=p.subscribed_at)
        if p.state == "unsub" and p.unsub_at is not None:
            set_email_consent(res, "UNSUBSCRIBED", p.unsub_at, method="Unsubscribe Link")
        if p.state in ("hard", "user") and p.suppressed_at is not None:
            suppress_email(res, "HARD_BOUNCE" if p.state == "hard" else "USER_SUPPRESSED", p.suppressed_at)
        if res.attributes.get("phone_number") and rng.random() < 0.35:
            set_sms_consent(res, "SUBSCRIBED", p.created + 120)
        if rng.random() < 0.4:
            predicted = predictions(rng, p.lifetime_orders, p.propensity, seeder.anchor)
            res.attributes["predictive_analytics"] = predicted
