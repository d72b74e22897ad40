"""The demo account's lists, segments and sign-up form, and their members once the people exist."""

from __future__ import annotations

from ..._jsonapi import iso
from .definitions import form_definition, segment_definition
from .seeder import DAY, Seeder


def make_groups(seeder: Seeder, when: float) -> None:
    lists = (
        ("newsletter", "Newsletter", "double_opt_in"),
        ("lead", "Lead Magnet — Trail Guide", "single_opt_in"),
        ("vip", "VIP Customers", "single_opt_in"),
        ("webinar", "Webinar Attendees", "single_opt_in"),
    )
    for key, name, opt_in in lists:
        seeder.ids[key] = seeder.put(
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
        seeder.ids[key] = seeder.put(
            "segment",
            {
                "name": name,
                "definition": segment_definition(key, seeder.metric),
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


def make_form(seeder: Seeder, when: float) -> None:
    version_id = seeder.rng.randint(1_000_000, 9_999_999)
    form = seeder.put(
        "form",
        {
            "name": "Trail Guide",
            "status": "live",
            "ab_test": False,
            "definition": form_definition(version_id, seeder.ids["lead"]),
            "created_at": iso(when),
            "updated_at": iso(when),
        },
        when,
    )
    version = seeder.put(
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
    seeder.ids["form"] = form.id
    seeder.ids["form-version"] = version.id


def fill_groups(seeder: Seeder) -> None:
    def link(key: str, people: list[tuple[float, str]]) -> None:
        """Members in the order they joined, with ``private["joined"]`` as ``lists.py`` keeps it."""
        res = seeder.store.get("list", seeder.ids[key])
        assert res is not None
        people.sort()
        res.relationships["profiles"] = [("profile", pid) for _, pid in people]
        res.private["joined"] = {pid: when for when, pid in people}

    people = seeder.people
    link("newsletter", [(p.subscribed_at or p.created, p.res.id) for p in people if p.state in ("sub", "user")])
    link("lead", [(p.submitted_at, p.res.id) for p in people if p.submitted_at])
    vips = [p for p in people if p.lifetime_orders >= 5]
    link("vip", [(min(p.created + 200 * DAY, seeder.anchor - DAY), p.res.id) for p in vips])
    link("webinar", [(seeder.anchor - 20 * DAY, p.res.id) for p in people if p.res.id in seeder.webinar])
    received: set[str] = set()
    opened_90: set[str] = set()
    opened_30: set[str] = set()
    orders: dict[str, int] = {}
    m = seeder.metric
    for ts, pid, mid, _, _ in seeder.events:
        if mid == m["Received Email"]:
            received.add(pid)
        elif mid == m["Opened Email"]:
            opened_90.add(pid)
            if ts >= seeder.anchor - 30 * DAY:
                opened_30.add(pid)
        elif mid == m["Placed Order"]:
            orders[pid] = orders.get(pid, 0) + 1
    members = {
        "engaged": opened_30,
        "repeat": {pid for pid, n in orders.items() if n >= 2},
        "unengaged": received - opened_90,
    }
    for key, ids in members.items():
        seg = seeder.store.get("segment", seeder.ids[key])
        assert seg is not None
        seg.private["members"] = [p.res.id for p in people if p.res.id in ids]
