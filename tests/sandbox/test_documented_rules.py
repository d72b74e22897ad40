"""Business rules Klaviyo documents in words that its spec's schemas do not express, over real HTTP
(in-process). Each test names where Klaviyo says it.

- an account holds at most 1,000 lists and segments together (Help Center, "Create and add contacts
  to a new list").
"""

from __future__ import annotations

from typing import Any

import httpx

SEGMENT_DEFINITION = {"condition_groups": [{"conditions": [{
    "type": "profile-property", "property": "properties['plan']",
    "filter": {"type": "existence", "operator": "is-set"}}]}]}


def error(resp: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["errors"][0]
    return err


def create_list(raw: httpx.Client, name: str) -> httpx.Response:
    return raw.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": name}}})


def create_segment(raw: httpx.Client, name: str) -> httpx.Response:
    return raw.post("/api/segments", json={"data": {"type": "segment", "attributes": {
        "name": name, "definition": SEGMENT_DEFINITION}}})


# -- lists and segments: 1,000 in an account ------------------------------------------------------------
def test_an_account_holds_at_most_1000_lists_and_segments(raw: httpx.Client) -> None:
    """"You can have up to 1,000 lists and segments in your account at any given time." (Klaviyo Help
    Center, Create and add contacts to a new list.) Lists and segments count together."""
    for i in range(998):
        assert create_list(raw, f"List {i}").status_code == 201
    segment = create_segment(raw, "Segment 999")
    assert segment.status_code == 201, segment.text
    last = create_list(raw, "List 1000")
    assert last.status_code == 201, last.text

    for refused in (create_list(raw, "List 1001"), create_segment(raw, "Segment 1001")):
        err = error(refused)
        assert err["code"] == "invalid" and err["source"] == {"pointer": "/data"}
        assert "1,000 lists and segments" in err["detail"] and "Delete a list or segment" in err["detail"]
    assert raw.get("/api/lists", params={"filter": 'equals(name,"List 1001")'}).json()["data"] == []

    assert raw.delete(f"/api/segments/{segment.json()['data']['id']}").status_code == 204
    assert create_list(raw, "List 1001").status_code == 201  # room again once one is gone

