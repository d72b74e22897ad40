"""Cursor paging is keyset paging, as Klaviyo's is: a next page starts strictly after the sort key
(and id) of the last item returned, whatever was deleted or inserted before it in the meantime.

Each walk follows ``links.next`` through a collection while, between pages, a seeded random mix of
changes lands: the last item returned (the cursor's boundary) or others are deleted, new items are
inserted before or after it. Whatever changed, every item that existed for the whole walk is
returned, and none twice. The walks cover profiles (default order and every sort, with ties and
missing values), lists (by name, with ties) and a list's members (join order, ``joined_group_at``,
and the ids-only relationship endpoint).
"""

from __future__ import annotations

import base64
import itertools
import json
import random
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock

#: Walks per query, one after the other on the same sandbox (each on what the ones before left).
WALKS = 4
PAGE_SIZE = 4
#: Numbers for emails and phone numbers, which must be unique: none is given twice in this module.
_SERIAL = itertools.count(1)


class World:
    """A collection under test: how to read it, and how to add and delete its items over HTTP."""

    def __init__(self, raw: httpx.Client, sb: Sandbox, clock: ManualClock, rng: random.Random) -> None:
        self.raw, self.sb, self.clock, self.rng = raw, sb, clock, rng
        self.alive: list[str] = []  # the items in the collection now, from every walk so far

    @staticmethod
    def serial() -> int:
        return next(_SERIAL)

    def url(self, sort: str | None) -> str:
        raise NotImplementedError

    def add(self) -> str:
        raise NotImplementedError

    def delete(self, item_id: str) -> None:
        raise NotImplementedError

    def settle(self) -> None:
        """Let the bulk jobs the changes queued come due and apply (time passes: ties end here)."""
        self.clock.advance(self.rng.choice([5, 5, 60]))
        self.sb.tick()

    def post(self, path: str, body: dict[str, Any], status: int) -> dict[str, Any]:
        res = self.raw.post(path, json=body)
        assert res.status_code == status, res.text
        return res.json() if res.content else {}


class Profiles(World):
    """Profiles with an email, or only a phone number or external id (no email to sort by), some
    of them suppressed (the only ones with a suppression timestamp)."""

    def url(self, sort: str | None) -> str:
        return f"/api/profiles?page[size]={PAGE_SIZE}" + (f"&sort={sort}" if sort else "")

    def add(self) -> str:
        n, kind = self.serial(), self.rng.choice(["email", "email", "phone", "external"])
        attrs: dict[str, Any] = {
            "email": {"email": f"{self.rng.choice('abc')}{n:03d}@example.com"},
            "phone": {"phone_number": f"+1500555{n:04d}"},
            "external": {"external_id": f"x-{n}"},
        }[kind]
        pid = str(self.post("/api/profiles", {"data": {"type": "profile", "attributes": attrs}}, 201)["data"]["id"])
        if kind == "email" and self.rng.random() < 0.4:
            job = {"profiles": {"data": [{"type": "profile", "attributes": attrs}]}}
            body = {"data": {"type": "profile-suppression-bulk-create-job", "attributes": job}}
            self.post("/api/profile-suppression-bulk-create-jobs", body, 202)
        return pid

    def delete(self, item_id: str) -> None:
        target = {"profile": {"data": {"type": "profile", "id": item_id, "attributes": {}}}}
        self.post("/api/data-privacy-deletion-jobs",
                  {"data": {"type": "data-privacy-deletion-job", "attributes": target}}, 202)


class Lists(World):
    """Lists named from a few names (many ties on name)."""

    def url(self, sort: str | None) -> str:
        return f"/api/lists?page[size]={PAGE_SIZE}" + (f"&sort={sort}" if sort else "")

    def add(self) -> str:
        name = self.rng.choice(["alpha", "beta", "gamma"])
        return str(self.post("/api/lists", {"data": {"type": "list", "attributes": {"name": name}}}, 201)["data"]["id"])

    def delete(self, item_id: str) -> None:
        assert self.raw.delete(f"/api/lists/{item_id}").status_code == 204


class Members(World):
    """The members of one list: profiles added to and removed from it."""

    def __init__(self, *args: Any, ids_only: bool = False) -> None:
        super().__init__(*args)
        self.ids_only = ids_only
        self.list_id = str(self.post("/api/lists", {"data": {"type": "list", "attributes": {"name": "M"}}},
                                     201)["data"]["id"])

    def url(self, sort: str | None) -> str:
        path = "relationships/profiles" if self.ids_only else "profiles"
        return f"/api/lists/{self.list_id}/{path}?page[size]={PAGE_SIZE}" + (f"&sort={sort}" if sort else "")

    def add(self) -> str:
        body = {"data": {"type": "profile", "attributes": {"email": f"m{self.serial():03d}@example.com"}}}
        pid = str(self.post("/api/profiles", body, 201)["data"]["id"])
        self.post(f"/api/lists/{self.list_id}/relationships/profiles", {"data": [{"type": "profile", "id": pid}]}, 204)
        return pid

    def delete(self, item_id: str) -> None:
        res = self.raw.request("DELETE", f"/api/lists/{self.list_id}/relationships/profiles",
                               json={"data": [{"type": "profile", "id": item_id}]})
        assert res.status_code == 204, res.text


def walk(world: World, sort: str | None) -> None:
    """Make a collection, follow its next links with random changes between pages, check the result."""
    rng, alive = world.rng, world.alive
    alive += [world.add() for _ in range(rng.randint(10, 22))]
    world.settle()
    throughout = set(alive)  # present from the first page to the last
    seen: list[str] = []
    url: str | None = world.url(sort)
    while url:
        res = world.raw.get(url)
        assert res.status_code == 200, res.text
        page = [str(item["id"]) for item in res.json()["data"]]
        seen += page
        url = res.json()["links"].get("next")
        if not url:
            break
        doomed: set[str] = set()
        if page and rng.random() < 0.5:
            doomed.add(page[-1])  # the item the cursor continues after
        doomed |= {i for i in alive if rng.random() < 0.15}  # before it, after it, seen or not
        for item_id in doomed:
            world.delete(item_id)
            alive.remove(item_id)
        throughout -= doomed
        alive += [world.add() for _ in range(rng.choice([0, 0, 1, 3]))]
        world.settle()
    repeated = sorted({i for i in seen if seen.count(i) > 1})
    assert not repeated, f"returned twice: {repeated}"
    skipped = sorted(throughout - set(seen))
    assert not skipped, f"skipped although present throughout: {skipped}"
    quiet = read_all(world, sort)  # the changes landed: with none, a walk returns exactly what is there
    assert sorted(quiet) == sorted(alive)


def read_all(world: World, sort: str | None) -> list[str]:
    """Every item of the collection, following next links with nothing changing."""
    seen: list[str] = []
    url: str | None = world.url(sort)
    while url:
        res = world.raw.get(url).json()
        seen += [str(item["id"]) for item in res["data"]]
        url = res["links"].get("next")
    return seen


PROFILE_SORTS = [None, "email", "-email", "created", "-created", "updated", "-updated", "id", "-id",
                 "subscriptions.email.marketing.suppression.timestamp",
                 "-subscriptions.email.marketing.suppression.timestamp"]


@pytest.mark.parametrize("sort", PROFILE_SORTS)
def test_profiles_pages_skip_and_repeat_nothing_while_profiles_come_and_go(
    raw: httpx.Client, sb: Sandbox, clock: ManualClock, sort: str | None
) -> None:
    world = Profiles(raw, sb, clock, random.Random(f"profiles {sort}"))
    for _ in range(WALKS):
        walk(world, sort)


@pytest.mark.parametrize("sort", [None, "name", "-name", "created", "-created"])
def test_lists_pages_skip_and_repeat_nothing_while_lists_come_and_go(
    raw: httpx.Client, sb: Sandbox, clock: ManualClock, sort: str | None
) -> None:
    world = Lists(raw, sb, clock, random.Random(f"lists {sort}"))
    for _ in range(WALKS):
        walk(world, sort)


@pytest.mark.parametrize(("sort", "ids_only"), [(None, False), ("joined_group_at", False),
                                                ("-joined_group_at", False), (None, True)])
def test_list_member_pages_skip_and_repeat_nothing_while_members_join_and_leave(
    raw: httpx.Client, sb: Sandbox, clock: ManualClock, sort: str | None, ids_only: bool
) -> None:
    world = Members(raw, sb, clock, random.Random(f"members {sort} {ids_only}"), ids_only=ids_only)
    for _ in range(WALKS):
        walk(world, sort)



def _payload(cursor: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))  # type: ignore[no-any-return]


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("sort", [None, "email"])
def test_a_cursor_whose_key_was_edited_is_400_not_500(raw: httpx.Client, sort: str | None) -> None:
    for i in range(3):
        raw.post("/api/profiles", json={"data": {"type": "profile", "attributes": {"email": f"t{i}@example.com"}}})
    query: dict[str, Any] = {"page[size]": 1, **({"sort": sort} if sort else {})}
    cursor = parse_qs(urlsplit(raw.get("/api/profiles", params=query).json()["links"]["next"]).query)
    payload = _payload(cursor["page[cursor]"][0])
    key = payload["k"]

    def answer(text: str) -> httpx.Response:
        return raw.get("/api/profiles", params={**query, "page[cursor]": _encode(text)})

    def refused(**changes: Any) -> bool:
        res = answer(json.dumps({**payload, **changes}))
        return res.status_code == 400 and res.json()["errors"][0] == {
            **res.json()["errors"][0], "source": {"parameter": "page[cursor]"},
            "detail": "page[cursor] is invalid; use links.next from a previous page."}

    assert answer(json.dumps(payload)).status_code == 200  # re-encoded as it was: still the cursor it was
    for bad in ([], [*key, 1], key[:-1], [True] * len(key), [[1]] * len(key), [{"a": 1}] * len(key), "x", None, 7):
        assert refused(k=bad), bad
    for direction in ("x", None, 1):
        assert refused(d=direction), direction
    assert refused(k=[float("nan")] * len(key))  # json.dumps writes NaN, as a hand-edited cursor may
    # Keys of the right shape are positions, however odd: each answers a page.
    for odd in ([float("inf"), "zzz", "~", -2], [-1, None, "", None], ["a", 10**30, "b", 0.5]):
        assert answer(json.dumps({**payload, "k": odd[: len(key)]})).status_code == 200, odd
