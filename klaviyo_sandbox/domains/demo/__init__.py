"""The seeded demo account: Northwind Outfitters, a DTC outdoor-gear brand, 90 days of history.

Written straight into the store (no HTTP) by this domain's seeder. Contents depend only on the
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
- 10 metrics (``assets.METRICS``). Lists (members in ``relationships["profiles"]``, join times in
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

Seeding takes ~0.6 s; the day's account kept by ``snapshot.py`` loads in ~0.15 s. The steps are in
``seeder.py`` (shared state), ``assets.py``, ``groups.py``, ``people.py`` and ``engagement.py``; the
data they draw on in ``words.py``, ``content.py`` and ``definitions.py``.
"""

from __future__ import annotations

import datetime as _dt
import gc
from zoneinfo import ZoneInfo

from ..._services import Services
from ...domain import DomainBuilder
from ..accounts import ensure_account
from . import assets, engagement, groups, people, snapshot
from .content import CAMPAIGNS
from .seeder import DAY, ZONE, Seeder

_d = DomainBuilder("demo")


@_d.seeder
def seed_demo_account(svc: Services, seed: int) -> None:
    """Build the demo account into ``svc.store`` (see module docstring), or load the snapshot of the
    same account built earlier today (``snapshot``), and keep one for the next sandbox.

    The cyclic garbage collector is paused while it runs: seeding makes ~300,000 acyclic objects,
    and collections triggered on the way would rescan every other live sandbox (a test session
    holds several), doubling the time.
    """
    name = snapshot.key(svc.store, seed, _dt.datetime.fromtimestamp(svc.clock.time(), ZoneInfo(ZONE)).date())
    if name is not None and snapshot.load(svc.store, name):
        return
    paused = gc.isenabled()
    gc.disable()
    try:
        build(Seeder(svc, seed))
    finally:
        if paused:
            gc.enable()
    if name is not None:
        snapshot.save(svc.store, name)


def build(seeder: Seeder) -> None:
    """Every step, in the order the seeded random numbers are drawn in (changing it changes the account)."""
    ensure_account(seeder.svc, seeder.anchor - 900 * DAY)
    assets.seed_metrics(seeder)
    created = seeder.anchor - 400 * DAY
    assets.seed_templates(seeder, created)
    groups.make_groups(seeder, created)
    groups.make_form(seeder, created)
    schedule = engagement.schedule(seeder)
    people.make_people(seeder, schedule)
    people.make_submissions(seeder)
    for n, camp in enumerate(schedule):
        engagement.send_campaign(seeder, n, camp)
    engagement.make_orders(seeder)
    engagement.make_browsing(seeder)
    people.apply_consent(seeder)
    groups.fill_groups(seeder)
    assets.seed_flows(seeder)
    assets.seed_catalog(seeder)
    assets.seed_marketing_assets(seeder)
    seeder.write_events()


DOMAIN = _d.build()

__all__ = ["CAMPAIGNS", "DOMAIN", "Seeder", "build", "seed_demo_account"]
