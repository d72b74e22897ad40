"""Where the sandbox must answer as Klaviyo does, or a developer is misled going live.

- one revision: the catalog's; any other (newer, older, malformed) is Klaviyo's 400 naming the
  ``revision`` parameter, and the official SDK for that revision is what works;
- no invented behaviour: a repeated ``Idempotency-Key`` (a header Klaviyo does not have) is not
  replayed;
- ids are ids: ``%2F`` in an id stays in the id, never reaching another operation; odd paths are
  JSON:API 404s; the one IP allow list is at ``integration-egress``;
- Klaviyo's ingestion limits for events (300 properties, 100 kB fields, 4,000 array items, 10 levels,
  a timestamp from 2000 to a year ahead, 5 MB bodies), documented payload limits elsewhere (100 KB
  for a profile), and filter values typed as Klaviyo writes them (datetimes unquoted).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox

from .conftest import HEADERS

REVISION = "2026-07-15"


def error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/vnd.api+json", response.text
    return response.json()["errors"][0]  # type: ignore[no-any-return]


def event(properties: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    return {"data": {"type": "event", "attributes": {
        "properties": properties,
        "metric": {"data": {"type": "metric", "attributes": {"name": "Viewed Product"}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": "ada@example.com"}}},
        **attributes}}}


# -- revisions ----------------------------------------------------------------------------------------
def test_the_sandbox_serves_its_catalogs_revision_only(sb: Sandbox, raw: httpx.Client) -> None:
    assert sb.catalog.revision == REVISION
    assert raw.get("/api/lists").status_code == 200
    assert raw.get("/api/lists", headers={"revision": f"{REVISION}.pre"}).status_code == 200
    for revision, says in (
        ("2026-07-16", "newer than this sandbox's revision, 2026-07-15"),
        ("2031-01-15", "unable to specify a future revision date"),
        ("2026-10-15", "newer than this sandbox's revision"),  # what klaviyo-api 25 sends
        ("2025-10-15", "serves only revision 2026-07-15"),
        ("2019-01-01", "serves only revision 2026-07-15"),
    ):
        answer = raw.get("/api/lists", headers={"revision": revision})
        assert answer.status_code == 400, revision
        err = error(answer)
        assert err["code"] == "invalid" and err["title"] == "Invalid input."
        assert err["source"] == {"parameter": "revision"}
        assert says in err["detail"] and f"revision: {REVISION}" in err["detail"], err["detail"]
    for revision in ("2026-13-01", "2026-02-30", "latest", "2026-07-15-pre", ""):
        answer = raw.get("/api/lists", headers={"revision": revision})
        assert answer.status_code == 400 and error(answer)["source"] == {"parameter": "revision"}, revision
    missing = httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL,
                           headers={k: v for k, v in HEADERS.items() if k != "revision"}).get("/api/lists")
    assert missing.status_code == 400 and "revision" in error(missing)["detail"]


def test_a_revision_the_spec_makes_optional_defaults_to_the_catalogs(sb: Sandbox) -> None:
    bare = httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL)  # no key, no revision, no company
    answer = bare.get("/client/ip-allowlists/integration-egress")
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert data["id"] == "integration-egress" and data["attributes"]["prefixes"] == ["127.0.0.1/32"]
    assert data["links"]["self"].endswith("/client/ip-allowlists/integration-egress/")
    other = bare.get("/client/ip-allowlists/everything")
    assert other.status_code == 404 and error(other)["code"] == "not_found"
    assert bare.get("/client/ip-allowlists/integration-egress", headers={"revision": "2027-01-15"}).status_code == 400


# -- no invented behaviour ------------------------------------------------------------------------------
def test_a_repeated_idempotency_key_is_not_replayed(raw: httpx.Client) -> None:
    key = {"Idempotency-Key": "same-key"}
    first = raw.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": "One"}}}, headers=key)
    second = raw.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": "Two"}}}, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json()["data"]["id"] != second.json()["data"]["id"]
    assert second.json()["data"]["attributes"]["name"] == "Two"
    assert not any("idempotent" in h.lower() for h in second.headers)
    names = sorted(item["attributes"]["name"] for item in raw.get("/api/lists").json()["data"])
    assert names == ["One", "Two"]


# -- ids and paths --------------------------------------------------------------------------------------
def test_an_encoded_slash_stays_in_the_id(sb: Sandbox, raw: httpx.Client) -> None:
    made = raw.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": "L"}}}).json()["data"]["id"]
    # "<id>%2Fprofiles" is one id (no such list), not get_profiles_for_list of <id>
    answer = raw.get(f"/api/lists/{made}%2Fprofiles")
    assert answer.status_code == 404 and f"{made}/profiles" in error(answer)["detail"]
    assert sb.requests[-1]["operation_id"] == "get_list"
    nested = raw.get(f"/api/lists/{made}%2Fx/relationships/profiles")
    assert nested.status_code == 404 and sb.requests[-1]["operation_id"] == "get_profile_ids_for_list"
    deleted = raw.delete(f"/api/lists/{made}%2F")
    assert deleted.status_code == 404 and raw.get(f"/api/lists/{made}").status_code == 200
    # an id with a slash the sandbox holds is reached through its encoded form, and links say so
    sb.seeding.resource("list", {"name": "Slashed", "created": "2026-01-01T00:00:00+00:00",
                                 "updated": "2026-01-01T00:00:00+00:00", "opt_in_process": "single_opt_in"},
                        id="a/b")
    found = raw.get("/api/lists/a%2Fb")
    assert found.status_code == 200 and found.json()["data"]["id"] == "a/b"
    assert found.json()["data"]["links"]["self"].endswith("/api/lists/a%2Fb/")


def test_odd_paths_are_json_api_404s_and_wrong_methods_name_the_allowed(raw: httpx.Client) -> None:
    for path in ("/api/lists/a%0Ab", "/api/nowhere", "/api/lists/x/y/z/w"):
        answer = raw.get(path)
        assert answer.status_code == 404 and error(answer)["code"] == "not_found", path
    wrong = raw.put("/api/lists")
    assert wrong.status_code == 405 and error(wrong)["code"] == "method_not_allowed"
    assert wrong.headers["Allow"] == "GET, POST"


# -- ingestion and payload limits ------------------------------------------------------------------------
@pytest.mark.parametrize(("properties", "attributes", "pointer", "says"), [
    ({f"p{i}": i for i in range(301)}, {}, "/data/attributes/properties", "at most 300"),
    ({"note": "x" * (100 * 1024 + 1)}, {}, "/data/attributes/properties/note", "100 kB"),
    ({"items": list(range(4001))}, {}, "/data/attributes/properties/items", "4,000"),
    ({"deep": json.loads('{"a":' * 11 + "1" + "}" * 11)}, {}, "/data/attributes/properties/deep/a/a/a/a/a/a/a/a/a",
     "10 levels"),
    ({}, {"time": "1999-12-31T23:59:59+00:00"}, "/data/attributes/time", "2000"),
    ({}, {"time": "2099-01-01T00:00:00+00:00"}, "/data/attributes/time", "one year"),
])
def test_events_outside_klaviyos_ingestion_limits_are_400s(
    raw: httpx.Client, properties: dict[str, Any], attributes: dict[str, Any], pointer: str, says: str
) -> None:
    answer = raw.post("/api/events", json=event(properties, **attributes))
    assert answer.status_code == 400, answer.text[:300]
    err = error(answer)
    assert err["code"] == "invalid" and err["source"]["pointer"].startswith(pointer) and says in err["detail"]
    client_side = raw.post("/client/events", params={"company_id": "SbxPub"}, json=event(properties, **attributes))
    assert client_side.status_code == 400


def test_events_at_the_limits_are_accepted(raw: httpx.Client) -> None:
    at_limits = {f"p{i}": i for i in range(298)}
    at_limits.update({"note": "x" * (100 * 1024), "items": list(range(4000))})
    assert raw.post("/api/events", json=event(at_limits, time="2000-01-01T00:00:00+00:00")).status_code == 202


def test_bodies_over_the_documented_size_are_400s(raw: httpx.Client) -> None:
    huge = event({"blob": ["y" * 60_000] * 90})  # 5.4 MB, every field within its own limits
    answer = raw.post("/api/events", content=json.dumps(huge))
    assert answer.status_code == 400 and "at most 5,242,880 bytes" in error(answer)["detail"]
    profile = {"data": {"type": "profile", "attributes": {"email": "big@example.com",
                                                          "properties": {"bio": "z" * 110_000}}}}
    too_big = raw.post("/api/profiles", json=profile)  # Create Profile: "maximum allowed payload size is 100KB"
    assert too_big.status_code == 400 and "100 KB" in error(too_big)["detail"]


def test_filter_values_are_typed_as_klaviyo_writes_them(raw: httpx.Client) -> None:
    quoted = raw.get("/api/events", params={"filter": "greater-than(datetime,'2026-01-01T00:00:00Z')"})
    assert quoted.status_code == 400
    err = error(quoted)
    assert err["source"] == {"parameter": "filter"} and "without quotes" in err["detail"]
    assert raw.get("/api/events", params={"filter": "greater-than(datetime,2026-01-01T00:00:00Z)"}).status_code == 200
    assert raw.get("/api/events", params={"filter": "less-than(timestamp,'5')"}).status_code == 400
    assert raw.get("/api/events", params={"filter": "equals(metric_id,5)"}).status_code == 400
    assert raw.get("/api/events", params={"filter": "equals(metric_id,'5')"}).status_code == 200


def test_bodies_in_the_wrong_media_type_are_refused_not_a_crash(raw: httpx.Client) -> None:
    broken_form = {"Content-Type": "multipart/form-data"}  # no boundary
    assert raw.get("/api/lists", headers=broken_form).status_code == 200  # a GET's body is not read
    upload = raw.post("/api/image-upload", content=b"xx", headers=broken_form)
    assert upload.status_code == 400 and error(upload)["code"] == "invalid"
    text = raw.post("/api/lists", content=b"name=x", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415 and error(text)["code"] == "unsupported_media_type"
    assert "ratelimit-reset" in text.headers
    as_json = raw.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": "J"}}},
                       headers={"Content-Type": "application/json"})
    assert as_json.status_code == 201


def test_a_quoted_datetime_in_a_metric_aggregate_filter_is_refused(sb: Sandbox, raw: httpx.Client) -> None:
    metric = sb.seeding.metric("Placed Order").id

    def aggregate(*filters: str) -> httpx.Response:
        return raw.post("/api/metric-aggregates", json={"data": {"type": "metric-aggregate", "attributes": {
            "metric_id": metric, "measurements": ["count"], "interval": "day", "filter": list(filters)}}})

    assert aggregate("greater-or-equal(datetime,2026-01-01T00:00:00)", "less-than(datetime,2026-01-02T00:00:00)"
                     ).status_code == 200
    quoted = aggregate("greater-or-equal(datetime,'2026-01-01T00:00:00')", "less-than(datetime,2026-01-02T00:00:00)")
    assert quoted.status_code == 400 and "without quotes" in error(quoted)["detail"]
    assert error(quoted)["source"]["pointer"].startswith("/data/attributes/filter")
