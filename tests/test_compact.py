"""Compaction: the model's view of a response is smaller and keeps the facts; the raw one stays available."""

from __future__ import annotations

import json
from typing import Any

import httpx

from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.tools import KlaviyoToolkit, compact_document

from .contract.fake_klaviyo import FakeKlaviyo

BASE = "https://a.klaviyo.com/api"


def profile(pid: str, **attributes: Any) -> dict[str, Any]:
    return {
        "type": "profile",
        "id": pid,
        "attributes": {"email": f"{pid.lower()}@example.com", "first_name": None, "properties": {}, **attributes},
        "relationships": {
            "lists": {
                "data": [{"type": "list", "id": "L1"}],
                "links": {"self": f"{BASE}/profiles/{pid}/relationships/lists/"},
            },
            "segments": {"links": {"self": f"{BASE}/profiles/{pid}/relationships/segments/"}},
            "push-tokens": {"data": []},
            "conversation": {"data": {"type": "conversation", "id": "C9"}},
        },
        "links": {"self": f"{BASE}/profiles/{pid}/"},
    }


DOC = {
    "data": [profile("P1", plan="pro"), profile("P2")],
    "included": [
        {"type": "list", "id": "L1", "attributes": {"name": "VIP"}, "links": {"self": f"{BASE}/lists/L1/"}},
    ],
    "links": {
        "self": f"{BASE}/profiles/",
        "next": f"{BASE}/profiles/?page%5Bcursor%5D=bmV4dDE%3D&page%5Bsize%5D=2",
        "prev": None,
    },
}


def test_links_are_dropped_and_attributes_flattened() -> None:
    view = compact_document(DOC)
    assert "links" not in json.dumps(view)
    first = view["data"][0]
    assert first["id"] == "P1" and first["email"] == "p1@example.com" and first["plan"] == "pro"
    assert "attributes" not in first
    assert "first_name" not in first and "properties" not in first, "empty values say nothing"


def test_a_shared_type_is_said_once() -> None:
    view = compact_document(DOC)
    assert view["type"] == "profile"
    assert all("type" not in record for record in view["data"])
    assert view["count"] == 2


def test_empty_relationships_are_dropped_and_included_records_folded_in() -> None:
    first = compact_document(DOC)["data"][0]
    assert "segments" not in first and "push-tokens" not in first
    assert first["lists"] == [{"id": "L1", "name": "VIP"}], "the included list, folded in"
    assert first["conversation"] == "C9", "not included: the id alone"


def test_the_next_cursor_is_extracted() -> None:
    assert compact_document(DOC)["next_cursor"] == "bmV4dDE="
    last_page = {**DOC, "links": {"self": f"{BASE}/profiles/", "next": None}}
    assert "next_cursor" not in compact_document(last_page)


def test_a_single_resource_is_an_object() -> None:
    view = compact_document({"data": profile("P1"), "links": {"self": "x"}})
    assert view == {
        "type": "profile",
        "data": {"id": "P1", "email": "p1@example.com", "lists": ["L1"], "conversation": "C9"},
    }


def test_bodies_that_are_not_documents() -> None:
    assert compact_document(None) == {"ok": True}
    assert compact_document({"status": "queued"}) == {"result": {"status": "queued"}}
    assert compact_document([1, 2]) == {"result": [1, 2]}


def test_the_view_is_smaller_than_the_document() -> None:
    doc = {**DOC, "data": [profile(f"P{i}") for i in range(20)]}
    assert len(json.dumps(compact_document(doc))) < len(json.dumps(doc)) / 2


def test_over_the_cap_records_are_cut_with_a_note_saying_so() -> None:
    doc = {"data": [profile(f"P{i}", bio="x" * 300) for i in range(100)], "links": DOC["links"]}
    view = compact_document(doc, max_chars=3000)
    text = json.dumps(view)
    assert len(text) <= 3000
    shown = len(view["data"])
    assert 0 < shown < 100
    assert f"showing {shown} of 100 records" in view["note"] and f"page_size={shown}" in view["note"]
    # the next page starts after record 100: a model following its cursor would never see the rest
    assert "next_cursor" not in view and "next_page_link" not in view


def test_long_text_values_are_shortened_with_a_note() -> None:
    doc = {"data": {"type": "template", "id": "T1", "attributes": {"name": "Welcome", "html": "<p>" + "a" * 9000}}}
    view = compact_document(doc, max_chars=2000)
    assert view["data"]["name"] == "Welcome"
    assert view["data"]["html"].endswith("…") and len(view["data"]["html"]) <= 501
    assert "characters cut" in view["note"]


def test_a_large_free_form_result_is_cut_with_a_note() -> None:
    view = compact_document({"rows": ["x" * 50] * 500}, max_chars=1000)
    assert len(view["result"]) <= 1000 and "cut" in view["note"]


def test_a_tool_returns_the_compact_view_and_the_raw_document_as_artifact() -> None:
    fake = FakeKlaviyo()
    fake.seed_profiles(3)
    kit = KlaviyoToolkit(
        scopes=["profiles:read"], api_key=fake.api_key, transport=httpx.MockTransport(fake.handle), clock=ManualClock()
    )
    message = kit.tool("get_profiles").invoke(
        {"type": "tool_call", "id": "call-1", "name": "get_profiles", "args": {"page_size": 2}}
    )
    assert message.tool_call_id == "call-1" and message.status == "success"
    view = json.loads(message.content)
    assert view["count"] == 2 and view["next_cursor"] and "links" not in message.content
    raw = message.artifact
    assert raw["links"]["next"] and raw["data"][0]["attributes"]["email"] == "person0@example.com"
    assert raw["data"][0]["links"]["self"].startswith("https://a.klaviyo.com/api/profiles/")


# -- odd shapes, the cap as the model sees it, next links without a cursor ---------------------------


def shown(view: dict[str, Any]) -> str:
    """The view as the tool sends it to the model (KlaviyoTool._finish)."""
    return json.dumps(view, ensure_ascii=False, default=str)


def test_odd_records_are_kept_as_they_came_not_raised_on() -> None:
    doc = {
        "data": [
            {"type": "list", "id": "1", "attributes": ["x"]},
            {"type": "list", "id": "2", "relationships": {"profiles": {"data": ["p1", {"type": "profile"}]}}},
            {"type": "list", "id": "3", "relationships": {"owner": "o1", "tags": {"data": {"id": ["x"], "type": "t"}}}},
            {"type": "list", "id": "4", "relationships": ["r"]},
            "not a record",
        ],
        "included": [{"attributes": {"name": "no type or id"}}, "loose", {"type": "tag", "id": ["unhashable"]}],
    }
    view = compact_document(doc)
    assert "type" not in view, "records of mixed kinds: no shared type"
    one, two, three, four, odd = view["data"]
    assert one["attributes"] == ["x"]
    assert two["profiles"] == ["p1", {"type": "profile"}]
    assert three["owner"] == "o1" and three["tags"] == {"id": ["x"], "type": "t"}
    assert four["relationships"] == ["r"] and odd == "not a record"
    assert view["included"] == doc["included"], "included entries nothing can point at are shown, not dropped"
    assert compact_document({"data": "weird"}) == {"data": "weird"}
    assert compact_document({"data": [], "included": {"type": "x"}})["included"] == [{"type": "x"}]


def test_a_tool_answers_odd_records_instead_of_raising() -> None:
    bodies = [
        {"data": [{"id": "1", "type": "list", "attributes": ["x"]}]},
        {"data": [{"id": "1", "type": "list", "relationships": {"profiles": {"data": ["p1"]}}}]},
    ]
    for body in bodies:
        kit = KlaviyoToolkit(
            scopes=["lists:read"],
            api_key="pk_test_0123456789",
            transport=httpx.MockTransport(lambda request, body=body: httpx.Response(200, json=body)),
            clock=ManualClock(),
        )
        message = kit.tool("get_lists").invoke({"type": "tool_call", "id": "c", "name": "get_lists", "args": {}})
        assert message.status == "success" and json.loads(message.content)["count"] == 1


def test_the_cap_holds_for_the_text_the_model_sees_even_when_escaping_grows_it() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(300):
        node["n"] = {}
        node = node["n"]
    doc = {"data": {"id": "1", "type": "t", "attributes": {"d": deep}}}
    view = compact_document(doc, max_chars=2000)
    assert len(shown(view)) <= 2000, "the partial JSON is escaped again inside the view"
    assert len(view["partial"]) > 1000 and "showing its start" in view["note"]
    quotes = {"data": {"id": "1", "type": "t", "attributes": {f"k{i}": ['"\\\n'] * 40 for i in range(60)}}}
    free_form = {"rows": ['"quoted"\x01'] * 500}
    for body in (doc, quotes, free_form):
        for cap in (200, 500, 1000, 2000):
            assert len(shown(compact_document(body, max_chars=cap))) <= cap, (body.keys(), cap)


def test_the_next_page_cursor_survives_a_record_too_large_to_show() -> None:
    doc = {"data": {"id": "1", "type": "t", "attributes": {"rows": list(range(5000))}}, "links": DOC["links"]}
    view = compact_document(doc, max_chars=1000)
    assert "partial" in view and view["next_cursor"] == "bmV4dDE=" and len(shown(view)) <= 1000


def test_a_next_link_without_a_cursor_is_not_given_as_the_cursor() -> None:
    link = f"{BASE}/profiles/?offset=100"
    view = compact_document({"data": [], "links": {"next": link}})
    assert "next_cursor" not in view, "a URL is not a page_cursor value"
    assert view["next_page_link"] == link
    as_object = {"data": [], "links": {"next": {"href": f"{BASE}/profiles/?page%5Bcursor%5D=abc"}}}
    assert compact_document(as_object)["next_cursor"] == "abc"
    assert compact_document({"data": [], "links": {"next": "http://[::1"}})["next_page_link"] == "http://[::1"
