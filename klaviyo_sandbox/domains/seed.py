"""The seeded demo account: Northwind Outfitters, a DTC outdoor-gear brand, 90 days of history.

Written straight into the store (no HTTP) by a seeder in ``SEEDERS``. Contents depend only on the
seed and on the current day in the account's zone (America/New_York): every time is relative to
the start of today there, and nothing happens after it, so "yesterday" always has data and the
same seed on the same day gives the same ids.

Contents (counts for seed 42; other seeds differ in people and numbers, not in shape). Ids are
the store's (seeded) ids, except events, whose ULIDs come from the seeder's own generator:

- account ``SbxPub`` (the public key): Northwind Outfitters, America/New_York, USD.
- 2,000 profiles: names, example.* emails, E.164 phones for 1,188 (fictional ranges), 30 cities
  in 7 countries with their IANA zone in ``location.timezone``, properties (company_size, role,
  industry, plan, lifetime_orders, preferred_activity), predictive_analytics for ~40%. Email
  consent: 1,300 SUBSCRIBED, 400 NEVER_SUBSCRIBED, 240 UNSUBSCRIBED, 60 suppressed (40
  HARD_BOUNCE, 20 USER_SUPPRESSED, both still SUBSCRIBED); SMS SUBSCRIBED for ~35% with a phone.
- 10 metrics (``METRICS``). Lists (members in ``relationships["profiles"]``, join times in
  ``private["joined"]`` as ``lists.py`` keeps them): "Newsletter" (1,320 current subscribers),
  "Lead Magnet — Trail Guide" (the form's 150 sign-ups), "VIP Customers" (157, lifetime_orders
  >= 5), "Webinar Attendees" (250). Segments with spec definitions and members in
  ``private["members"]`` computed from the seeded events: "Engaged (30 days)" (opened in 30
  days, 989), "Repeat Buyers" (2+ orders, 262), "Unengaged (90 days)" (received, never opened, 271).
- 5 templates; 20 Sent email campaigns over 90 days, one campaign-message each. Two went out
  yesterday: "Weekend trail picks" at 10:00 (normal) and "Webinar replay: ..." at 14:00 (the
  anomaly: ~21% hard bounces, ~2% opens; its bounced profiles are the HARD_BOUNCE suppressions).
- ~28,700 events, all before today: Received/Opened/Clicked/Bounced Email with ``$message`` and
  ``$campaign`` (a bounced recipient gets Bounced Email instead of Received Email), Unsubscribed
  from Email Marketing, Placed Order (``$value``, ``OrderId``; ``$attributed_message`` when it
  followed a click), Active on Site, Form viewed/submitted by profile (form_id, form_name,
  form_version_id; submissions carry the answers), Lead Sequence Started (``sequence``, ``score``)
  for ~75% of the sign-ups older than two days; the newest sign-ups (6 yesterday) have none yet.
- form "Trail Guide" (live popup) with one form-version.
- 4 live flows: "Lead sequence: fast-track|nurture|education" (metric trigger on Lead Sequence
  Started filtered on ``sequence``; send-email, 2-day delay, send-email[, 3-day delay, send-email])
  and "Welcome series" (list trigger: Newsletter), with flow-action and flow-message resources.
  Seeded events never ran through flows: the outbox starts empty.
- catalog (4 categories, 12 items, 24 variants), coupon WELCOME10 with 25 codes, tag groups
  Default and Lifecycle with 4 tags, 3 images.

Seeding takes ~0.6 s.
"""

from __future__ import annotations

import datetime as _dt
import gc
import random
import uuid
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .._app import SEEDERS
from .._context import iso
from .._store import Resource
from . import seed_data as D
from ._common import (
    KLAVIYO_INTEGRATION,
    find_or_create_metric,
    new_profile,
    set_email_consent,
    set_sms_consent,
    suppress_email,
)
from .catalogs import seed_catalog
from .misc import ensure_account, seed_marketing_assets

if TYPE_CHECKING:
    from .._app import Sandbox

ZONE = "America/New_York"
DAY = 86_400
ID_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the calendar seeded ids are written on
N_PROFILES = 2_000
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
# consent state -> share of profiles
_STATES = (("sub", 0.65), ("never", 0.20), ("unsub", 0.12), ("hard", 0.02), ("user", 0.01))
_PROPENSITY = ((1.8, 0.25), (1.0, 0.45), (0.12, 0.30))  # open-rate multiplier, share


class _Person:
    __slots__ = (
        "created",
        "lifetime_orders",
        "orders",
        "propensity",
        "res",
        "state",
        "submitted_at",
        "subscribed_at",
        "suppressed_at",
        "unsub_at",
        "unsub_campaign",
    )

    def __init__(self, res: Resource, state: str, created: float, propensity: float) -> None:
        self.res = res
        self.state = state
        self.created = created
        self.subscribed_at = created + 60 if state != "never" else None
        self.unsub_at: float | None = None
        self.unsub_campaign: int | None = None
        self.suppressed_at: float | None = None
        self.propensity = propensity
        self.orders = 0
        self.lifetime_orders = 0
        self.submitted_at: float | None = None

    def can_email(self, t: float) -> bool:
        return (
            self.subscribed_at is not None
            and self.subscribed_at <= t
            and (self.unsub_at is None or self.unsub_at > t)
            and (self.suppressed_at is None or self.suppressed_at > t)
        )


class Seeder:
    """Builds the demo account into ``sb.store``; ``run()`` does it all (see module docstring)."""

    def __init__(self, sb: Sandbox, seed: int) -> None:
        self.sb = sb
        self.store = sb.store
        self.rng = random.Random(f"northwind:{seed}")
        self.zone = ZoneInfo(ZONE)
        self.today = _dt.datetime.fromtimestamp(sb.clock.time(), self.zone).date()
        self.anchor = self.day_start(0)
        self.events: list[tuple[int, str, str, dict[str, Any], str]] = []
        self.metric: dict[str, str] = {}
        self.ids: dict[str, str] = {}
        self.people: list[_Person] = []
        self.webinar: set[str] = set()
        self.phones: dict[str, int] = {}

    # -- time ------------------------------------------------------------------------------------
    def day_start(self, days_ago: int) -> float:
        day = self.today - _dt.timedelta(days=days_ago)
        return _dt.datetime.combine(day, _dt.time(0), self.zone).timestamp()

    def local(self, days_ago: int, hour: int, minute: int = 0) -> float:
        day = self.today - _dt.timedelta(days=days_ago)
        return _dt.datetime.combine(day, _dt.time(hour, minute), self.zone).timestamp()

    def id_time(self, when: float) -> float:
        """The time an id encodes: a fixed calendar, one millisecond per id made, so the same seed
        gives the same ids whatever the day (examples and cassettes can name them)."""
        self._id_count = getattr(self, "_id_count", 0) + 1
        return ID_EPOCH + self._id_count / 1000

    def new_id(self, rtype: str, when: float) -> str:
        return self.store.new_id(rtype, self.id_time(when))

    def put(
        self,
        rtype: str,
        attrs: dict[str, Any],
        when: float,
        rels: dict[str, Any] | None = None,
        rid: str | None = None,
        private: dict[str, Any] | None = None,
    ) -> Resource:
        res = Resource(rtype, rid or self.new_id(rtype, when), attrs, rels or {}, when, when, private or {})
        self.store.put(res)
        return res

    def event(self, ts: float, person: _Person, metric: str, props: dict[str, Any], uid: str | None = None) -> None:
        if ts < self.anchor:
            t = int(ts)
            self.events.append((t, person.res.id, self.metric[metric], props, uid or str(t)))

    # -- the whole account -----------------------------------------------------------------------
    def run(self) -> None:
        ensure_account(self.sb, self.anchor - 900 * DAY)
        for name in METRICS:
            metric = find_or_create_metric(self.sb, name, self.anchor - 730 * DAY)
            if name in ("Form viewed by profile", "Form submitted by profile", "Active on Site"):
                metric.attributes["integration"] = dict(KLAVIYO_INTEGRATION)
            self.metric[name] = metric.id
        created = self.anchor - 400 * DAY
        for key, (name, html) in D.TEMPLATES.items():
            self.ids["template:" + key] = self.put(
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
        self.make_groups(created)
        self.make_form(created)
        schedule = self.schedule()
        self.make_people(schedule)
        self.make_submissions()
        for n, camp in enumerate(schedule):
            self.send_campaign(n, camp)
        self.make_orders()
        self.make_browsing()
        self.apply_consent()
        self.fill_groups()
        D.seed_flows(self)
        seed_catalog(self)
        seed_marketing_assets(self)
        self.write_events()

    def make_groups(self, when: float) -> None:
        lists = (
            ("newsletter", "Newsletter", "double_opt_in"),
            ("lead", "Lead Magnet — Trail Guide", "single_opt_in"),
            ("vip", "VIP Customers", "single_opt_in"),
            ("webinar", "Webinar Attendees", "single_opt_in"),
        )
        for key, name, opt_in in lists:
            self.ids[key] = self.put(
                "list",
                {"name": name, "created": iso(when), "updated": iso(when), "opt_in_process": opt_in},
                when,
                {"profiles": []},
            ).id
        for key, name in (
            ("engaged", "Engaged (30 days)"),
            ("repeat", "Repeat Buyers"),
            ("unengaged", "Unengaged (90 days)"),
        ):
            self.ids[key] = self.put(
                "segment",
                {
                    "name": name,
                    "definition": D.segment_definition(key, self.metric),
                    "created": iso(when),
                    "updated": iso(when),
                    "is_active": True,
                    "is_processing": False,
                    "is_starred": key == "engaged",
                },
                when,
                {},
                private={"members": []},
            ).id

    def make_form(self, when: float) -> None:
        version_id = self.rng.randint(1_000_000, 9_999_999)
        form = self.put(
            "form",
            {
                "name": "Trail Guide",
                "status": "live",
                "ab_test": False,
                "definition": D.form_definition(version_id, self.ids["lead"]),
                "created_at": iso(when),
                "updated_at": iso(when),
            },
            when,
        )
        version = self.put(
            "form-version",
            {
                "form_type": "popup",
                "variation_name": "Trail Guide popup",
                "status": "live",
                "created_at": iso(when),
                "updated_at": iso(when),
            },
            when,
            {"form": ("form", form.id)},
            rid=str(version_id),
        )
        form.relationships["form-versions"] = [("form-version", version.id)]
        self.ids["form"] = form.id
        self.ids["form-version"] = version.id

    # -- people ----------------------------------------------------------------------------------
    def schedule(self) -> list[dict[str, Any]]:
        """Send times: two yesterday (10:00, 14:00 New York), the rest every ~5 days back to day 89."""
        out = []
        for n, (name, subject, preview, template, audience) in enumerate(D.CAMPAIGNS):
            if n < 2:
                send = self.local(1, 10 + 4 * n)
            else:
                days = min(89, round(3 + (n - 2) * 86 / 18) + self.rng.randint(-1, 1))
                send = self.local(days, self.rng.choice((9, 10, 11, 14, 16)), self.rng.choice((0, 15, 30)))
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

    def make_people(self, schedule: list[dict[str, Any]]) -> None:
        rng = self.rng
        states = [s for s, share in _STATES for _ in range(round(share * N_PROFILES))]
        rng.shuffle(states)
        created = sorted(
            self.anchor - (rng.uniform(2, 90) if rng.random() < 0.25 else rng.uniform(90, 1100)) * DAY
            for _ in range(N_PROFILES)
        )
        weights = [c[1] for c in D.CITIES]
        seen: set[str] = set()
        hard_bounce = next(c["send"] for c in schedule if c["anomaly"])
        for i, (state, when) in enumerate(zip(states, created, strict=True)):
            when = int(when)
            first, last = rng.choice(D.FIRST_NAMES), rng.choice(D.LAST_NAMES)
            email = self.unique_email(first, last, seen)
            city = rng.choices(D.CITIES, weights)[0]
            customer = rng.random() < 0.3
            org = rng.choice(D.ORGANIZATIONS) if rng.random() < 0.25 else None
            role = rng.choice(D.ROLES[1:]) if org else "Enthusiast"
            attrs: dict[str, Any] = {
                "email": email,
                "phone_number": self.phone(city[0]) if rng.random() < 0.6 else None,
                "external_id": f"nw-cus-{100000 + i}" if customer else None,
                "first_name": first,
                "last_name": last,
                "organization": org,
                "title": role if org else None,
                "locale": city[8],
                "location": {
                    "address1": f"{rng.randint(1, 999)} {rng.choice(D.STREETS)}",
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
                    "company_size": rng.choice(D.COMPANY_SIZES) if org else "1-10",
                    "role": role,
                    "industry": rng.choice(D.INDUSTRIES),
                    "plan": rng.choice(D.PLANS),
                    "preferred_activity": rng.choice(D.ACTIVITIES),
                    "lifetime_orders": 0,
                },
            }
            res = new_profile(self.sb, attrs, when, rid=self.new_id("profile", when))
            propensity = rng.choices([p for p, _ in _PROPENSITY], [w for _, w in _PROPENSITY])[0]
            person = _Person(res, state, when, propensity)
            if customer:
                person.orders = rng.choices((0, 1, 2, 3, 4), (30, 35, 18, 10, 7))[0]
                person.lifetime_orders = person.orders + rng.choices((0, 1, 2, 4, 7), (40, 25, 15, 12, 8))[0]
            if state == "unsub":
                if rng.random() < 0.6:
                    person.unsub_campaign = rng.randrange(len(schedule))
                    person.unsub_at = schedule[person.unsub_campaign]["send"] + rng.randint(600, 7200)
                else:
                    person.unsub_at = self.anchor - rng.uniform(95, 400) * DAY
                if person.unsub_at <= person.created + 60:
                    person.unsub_at = person.created + 3600
            elif state == "hard":
                person.suppressed_at = hard_bounce + rng.randint(60, 900)
            elif state == "user":
                person.suppressed_at = self.anchor - rng.uniform(1, 200) * DAY
            self.people.append(person)
        others = [p.res.id for p in self.people if p.state != "hard"]
        self.webinar = {p.res.id for p in self.people if p.state == "hard"} | set(rng.sample(others, 210))

    def phone(self, country: str) -> str:
        """A unique E.164 number in a fictional or drama range (555-xxxx, 07700 900xxx, 0491 570xxx)."""
        n = self.phones.get(country, 0)
        self.phones[country] = n + 1
        return D.phone_number(country, n)

    def unique_email(self, first: str, last: str, seen: set[str]) -> str:
        base = f"{first}.{last}".lower().replace("'", "")
        domain = self.rng.choice(D.EMAIL_DOMAINS)
        email, n = f"{base}@{domain}", 1
        while email in seen:
            n += 1
            email = f"{base}{n}@{domain}"
        seen.add(email)
        return email

    def make_submissions(self) -> None:
        """150 Trail Guide sign-ups: mostly subscribers, some without consent, a few suppressed."""
        rng, pools = self.rng, {}
        for state in ("sub", "never", "unsub", "user"):
            pools[state] = [p for p in self.people if p.state == state]
        chosen = (
            rng.sample(pools["sub"], 115)
            + rng.sample(pools["never"], 22)
            + rng.sample(pools["unsub"], 8)
            + rng.sample(pools["user"], 5)
        )
        rng.shuffle(chosen)
        yesterday = self.day_start(1)
        form = {"form_id": self.ids["form"], "form_name": "Trail Guide", "form_version_id": self.ids["form-version"]}
        for n, person in enumerate(chosen):
            lo = max(person.created + 120, self.anchor - 90 * DAY)
            lo = max(lo, yesterday) if n < 6 and person.created < yesterday else lo
            when = int(rng.uniform(lo, self.anchor - 60))
            person.submitted_at = when
            answers = {
                prop: options[min(len(options) - 1, int(rng.triangular(0, len(options), len(options) * 0.6)))]
                for prop, _, options in D.FORM_FIELDS
            }
            person.res.attributes["properties"].update(answers)
            self.event(when - rng.randint(20, 600), person, "Form viewed by profile", dict(form))
            self.event(when, person, "Form submitted by profile", {**form, **answers}, f"form-{when}")
            if person.state == "sub":
                person.subscribed_at = when
            if when < self.anchor - 2 * DAY and rng.random() < 0.75:
                score = D.lead_score(answers)
                sequence = "fast-track" if score >= 8 else "nurture" if score >= 5 else "education"
                self.event(
                    when + rng.randint(300, 1800),
                    person,
                    "Lead Sequence Started",
                    {"sequence": sequence, "score": score, "form_id": self.ids["form"], "lead_source": "Trail Guide"},
                )
        for person in rng.sample([p for p in self.people if p.submitted_at is None], 700):
            start = max(person.created + 60, self.anchor - 90 * DAY)
            self.event(rng.uniform(start, self.anchor - 60), person, "Form viewed by profile", dict(form))

    # -- campaigns and engagement -------------------------------------------------------------------
    def audience(self, key: str, t: float) -> list[_Person]:
        people = self.people
        if key == "webinar":
            return [p for p in people if p.res.id in self.webinar and p.can_email(t)]
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

    def send_campaign(self, n: int, camp: dict[str, Any]) -> None:
        rng, send = self.rng, camp["send"]
        created = send - rng.uniform(2, 6) * DAY
        audience_ids = {
            "newsletter": [self.ids["newsletter"]],
            "webinar": [self.ids["webinar"]],
            "vip": [self.ids["vip"]],
            "engaged": [self.ids["engaged"]],
            "unengaged": [self.ids["unengaged"]],
            "repeat": [self.ids["repeat"]],
        }[camp["audience"]]
        cid = self.new_id("campaign", created)
        template = self.ids["template:" + camp["template"]]
        mid = self.new_id("campaign-message", created)
        definition = {
            "channel": "email",
            "label": camp["name"],
            "content": {
                "subject": camp["subject"],
                "preview_text": camp["preview"],
                "from_email": D.SENDER_EMAIL,
                "from_label": D.BRAND,
                "reply_to_email": D.SENDER_EMAIL,
                "cc_email": None,
                "bcc_email": None,
            },
        }
        self.put(
            "campaign",
            {
                "name": camp["name"],
                "status": "Sent",
                "archived": False,
                "audiences": {"included": audience_ids, "excluded": [self.ids["unengaged"]] if n % 3 == 2 else []},
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
        self.put(
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
        for person in self.audience(camp["audience"], send):
            at = send + rng.randint(5, 1200)
            domain = person.res.attributes["email"].split("@")[1]
            if (person.state == "hard" and camp["anomaly"]) or rng.random() < 0.003:
                kind = "hard" if person.state == "hard" else "soft"
                self.event(
                    person.suppressed_at or at,
                    person,
                    "Bounced Email",
                    {**base, "Bounce Type": kind, "Email Domain": domain},
                )
                continue
            self.event(at, person, "Received Email", {**base, "Email Domain": domain})
            if person.unsub_campaign == n:
                self.event(person.unsub_at or at, person, "Unsubscribed from Email Marketing", dict(base))
            if rng.random() >= open_rate * person.propensity:
                continue
            opened = at + int(rng.expovariate(1 / 10_800)) + 30
            client = rng.choice(("Gmail", "Apple Mail", "Outlook"))
            self.event(opened, person, "Opened Email", {**base, "Client Name": client})
            if rng.random() >= click_rate * person.propensity:
                continue
            clicked = opened + rng.randint(10, 1800)
            self.event(clicked, person, "Clicked Email", {**base, "URL": f"{D.SITE}/journal/{n + 1}"})
            if rng.random() < 0.1:
                self.order(clicked + int(rng.expovariate(1 / 21_600)) + 120, person, mid)

    def order(self, when: float, person: _Person, message_id: str | None = None) -> None:
        rng = self.rng
        items = rng.sample(D.PRODUCTS, rng.choices((1, 2, 3), (60, 30, 10))[0])
        value = round(sum(p[3] for p in items) * rng.choice((1.0, 1.0, 0.9, 0.8)), 2)
        order_id = f"NW-{len(self.events) + 100000}"
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
        self.event(when, person, "Placed Order", props, order_id)

    def make_orders(self) -> None:
        """Unattributed orders: each customer's orders spread over the last 90 days."""
        for person in self.people:
            start = max(person.created + 3600, self.anchor - 90 * DAY)
            for _ in range(person.orders):
                self.order(self.rng.uniform(start, self.anchor - 60), person)
            person.res.attributes["properties"]["lifetime_orders"] = person.lifetime_orders

    def make_browsing(self) -> None:
        rng = self.rng
        for person in self.people:
            if rng.random() < 0.4:
                start = max(person.created, self.anchor - 90 * DAY)
                for _ in range(rng.randint(1, 5)):
                    page = rng.choice(D.PRODUCTS)[0].lower()
                    self.event(
                        rng.uniform(start, self.anchor - 1),
                        person,
                        "Active on Site",
                        {"page": f"{D.SITE}/products/{page}"},
                    )

    # -- resulting state ----------------------------------------------------------------------------
    def apply_consent(self) -> None:
        rng = self.rng
        for p in self.people:
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
                predicted = D.predictions(rng, p.lifetime_orders, p.propensity, self.anchor)
                res.attributes["predictive_analytics"] = predicted

    def fill_groups(self) -> None:
        def link(key: str, people: list[tuple[float, str]]) -> None:
            """Members in the order they joined, with ``private["joined"]`` as ``lists.py`` keeps it."""
            res = self.store.get("list", self.ids[key])
            assert res is not None
            people.sort()
            res.relationships["profiles"] = [("profile", pid) for _, pid in people]
            res.private["joined"] = {pid: when for when, pid in people}

        people = self.people
        link("newsletter", [(p.subscribed_at or p.created, p.res.id) for p in people if p.state in ("sub", "user")])
        link("lead", [(p.submitted_at, p.res.id) for p in people if p.submitted_at])
        vips = [p for p in people if p.lifetime_orders >= 5]
        link("vip", [(min(p.created + 200 * DAY, self.anchor - DAY), p.res.id) for p in vips])
        link("webinar", [(self.anchor - 20 * DAY, p.res.id) for p in people if p.res.id in self.webinar])
        received: set[str] = set()
        opened_90: set[str] = set()
        opened_30: set[str] = set()
        orders: dict[str, int] = {}
        m = self.metric
        for ts, pid, mid, _, _ in self.events:
            if mid == m["Received Email"]:
                received.add(pid)
            elif mid == m["Opened Email"]:
                opened_90.add(pid)
                if ts >= self.anchor - 30 * DAY:
                    opened_30.add(pid)
            elif mid == m["Placed Order"]:
                orders[pid] = orders.get(pid, 0) + 1
        members = {
            "engaged": opened_30,
            "repeat": {pid for pid, n in orders.items() if n >= 2},
            "unengaged": received - opened_90,
        }
        for key, ids in members.items():
            seg = self.store.get("segment", self.ids[key])
            assert seg is not None
            seg.private["members"] = [p.res.id for p in people if p.res.id in ids]

    def write_events(self) -> None:
        """Store events as ``_common.record_event`` would (same shape and dedup index), but in bulk."""
        self.events.sort(key=lambda e: e[0])
        dedup: dict[str, str] = self.store.mutable("event_unique_ids", dict)
        put, bits, last = self.store.put, self.rng.getrandbits, {}
        for ts, pid, mid, props, uid in self.events:
            key = f"{pid}|{mid}|{uid}"
            if key in dedup:
                continue
            eid = D.ulid(int(self.id_time(ts) * 1000), bits(80))
            put(
                Resource(
                    "event",
                    eid,
                    {
                        "timestamp": ts,
                        "datetime": iso(ts),
                        "event_properties": props,
                        "uuid": str(uuid.UUID(int=bits(128))),
                    },
                    {"profile": ("profile", pid), "metric": ("metric", mid)},
                    ts,
                    ts,
                    {"unique_id": uid},
                )
            )
            dedup[key] = eid
            last[pid] = ts
        for p in self.people:
            if p.res.id in last:
                p.res.attributes["last_event_date"] = iso(last[p.res.id])


def seed_demo_account(sb: Sandbox, seed: int) -> None:
    """The seeder registered in ``SEEDERS``.

    The cyclic garbage collector is paused while it runs: seeding makes ~300,000 acyclic objects,
    and collections triggered on the way would rescan every other live sandbox (a test session
    holds several), doubling the time.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        Seeder(sb, seed).run()
    finally:
        if paused:
            gc.enable()


SEEDERS.append(seed_demo_account)
