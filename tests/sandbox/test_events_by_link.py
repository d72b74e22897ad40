"""``get_events`` filtered by profile or metric reads only that profile's or metric's events
(``Store.linking``), and answers exactly what reading every event answers: the same events, in the
same order, page after page, after merges, deletions and events added since."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_sandbox._store import Resource
from klaviyo_toolkit.client import KlaviyoClient


@pytest.fixture(scope="module")
def sb() -> Sandbox:
    return Sandbox(seed=11, rate_limit_factor=None)


def every_page(client: KlaviyoClient, **params: Any) -> list[str]:
    return [e["id"] for page in client.pages("get_events", page_size=20, **params) for e in page.data or []]


def by_reading_all(sb: Sandbox, keep: Any, newest_first: bool = False) -> list[str]:
    """The answer worked out from every stored event, without the sandbox's filter code."""
    events: list[Resource] = [e for e in sb.store.all("event") if keep(e)]
    if newest_first:  # sort=-datetime: newest first, ties in the order stored (a stable sort)
        events = sorted(events, key=lambda e: -e.attributes["timestamp"])
    else:  # no sort: by timestamp, then as stored
        events = sorted(events, key=lambda e: e.attributes["timestamp"])
    return [e.id for e in events]


def linked(event: Resource, rel: str) -> str | None:
    value = event.relationships.get(rel)
    return value[1] if isinstance(value, tuple) else None


def test_a_profiles_or_metrics_events_are_what_reading_every_event_finds(sb: Sandbox) -> None:
    client = sb.client()
    events = sb.store.all("event")
    busiest = Counter(linked(e, "profile") for e in events).most_common(1)[0][0]
    # the metric with the fewest events (but several): every filter below stays a few pages long
    counts = Counter(linked(e, "metric") for e in events)
    metric = min((m for m, n in counts.items() if n >= 3), key=lambda m: counts[m])
    ours = sorted(e.attributes["timestamp"] for e in events if linked(e, "metric") == metric)
    cutoff = ours[len(ours) // 2 - 1]
    assert sum(linked(e, "profile") == busiest for e in events) > 20  # more than a page

    mine = every_page(client, filter=f'equals(profile_id,"{busiest}")')
    assert mine == by_reading_all(sb, lambda e: linked(e, "profile") == busiest) and mine
    newest = every_page(client, filter=f'equals(profile_id,"{busiest}")', sort="-datetime")
    assert newest == by_reading_all(sb, lambda e: linked(e, "profile") == busiest, newest_first=True)
    both = every_page(client, filter=f'and(equals(metric_id,"{metric}"),equals(profile_id,"{busiest}"))')
    assert both == by_reading_all(sb, lambda e: linked(e, "metric") == metric and linked(e, "profile") == busiest)
    recent = every_page(client, filter=f'and(equals(metric_id,"{metric}"),greater-than(timestamp,{cutoff}))')
    assert recent == by_reading_all(sb, lambda e: linked(e, "metric") == metric and e.attributes["timestamp"] > cutoff)
    assert recent
    # filters that name no single profile or metric read every event, as before
    either = every_page(client, filter=f'or(equals(profile_id,"{busiest}"),equals(metric_id,"{metric}"))')
    assert either == by_reading_all(sb, lambda e: linked(e, "profile") == busiest or linked(e, "metric") == metric)
    others = every_page(client, filter=f'and(not(equals(profile_id,"{busiest}")),equals(metric_id,"{metric}"))')
    assert others == by_reading_all(sb, lambda e: linked(e, "profile") != busiest and linked(e, "metric") == metric)
    assert every_page(client, filter='equals(profile_id,"01NOBODY0000000000000000XX")') == []


def test_events_added_merged_and_deleted_since_are_found_where_they_now_belong() -> None:
    sb = Sandbox(seed=12, rate_limit_factor=None)
    client = sb.client()
    ann = client.call("create_profile", email="ann@example.com").data["id"]
    bob = client.call("create_profile", email="bob@example.com").data["id"]
    for n, who in enumerate(("ann@example.com", "ann@example.com", "bob@example.com", "bob@example.com")):
        if n == 3:  # added after the index was built
            assert len(every_page(client, filter=f'equals(profile_id,"{ann}")')) == 2
        client.call("create_event", metric={"name": "Linked Test"}, profile={"email": who}, properties={},
                    unique_id=f"linked-{n}")
    assert len(every_page(client, filter=f'equals(profile_id,"{bob}")')) == 2

    client.call("merge_profiles", id=bob, profile_ids=[ann])  # ann's events move to bob, in place
    assert every_page(client, filter=f'equals(profile_id,"{ann}")') == []
    moved = every_page(client, filter=f'equals(profile_id,"{bob}")')
    assert len(moved) == 4 and moved == by_reading_all(sb, lambda e: linked(e, "profile") == bob)

    sb.store.delete("event", moved[0])
    assert every_page(client, filter=f'equals(profile_id,"{bob}")') == moved[1:]
