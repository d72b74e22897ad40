"""Rules the spec states in words (descriptions, not schemas), which the sandbox must apply as Klaviyo does.

Each test talks to the sandbox over HTTP (the in-process transport): what real Klaviyo refuses must be
refused, with nothing stored, and what it answers must be answered the same way:

- a bulk event's ``unique_id`` defaults to its time to the second, so two events for one profile and
  metric in the same second of one request are a repeated ``unique_id``: the request fails whole;
- a custom metric's name is unique across the account, a data source's title within its namespace;
- every operation whose catalog record holds a count (``max_items``) or per-item size
  (``max_item_payload_bytes``) refuses a body over it, a single-record body too;
- a page holds no more than the description's maximum (``max_page_size``), whatever ``page[size]`` asks;
- an operation allowing only so many of its jobs pending at once (``max_pending_jobs``) refuses one more;
- no string of an event payload, its profile block's included, keys too, may pass 100 KB.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from klaviyo_sandbox import PUBLIC_KEY, Sandbox
from klaviyo_toolkit.catalog import Operation, load_catalog
from klaviyo_toolkit.clock import ManualClock

#: 2026-01-05T10:00:00.5Z: half a second into the second the bulk events below are dated.
NOW = 1767607200.5


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=NOW)


def error(resp: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["errors"][0]
    return err


# -- bulk events: the defaulted unique_id ----------------------------------------------------------
def bulk_entry(email: str, *events: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "event-bulk-create",
        "attributes": {
            "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
            "events": {
                "data": [
                    {
                        "type": "event",
                        "attributes": {
                            "properties": {"n": n},
                            "metric": {"data": {"type": "metric", "attributes": {"name": "Placed Order"}}},
                            **attrs,
                        },
                    }
                    for n, attrs in enumerate(events)
                ]
            },
        },
    }


def bulk_events(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": list(entries)}}}}


def test_bulk_events_in_one_second_without_unique_id_fail_the_whole_request(sb: Sandbox, raw: httpx.Client) -> None:
    # BaseEventCreateQueryBulkEntryResourceObject.unique_id: "If a unique_id is repeated for the same profile
    # and metric, the request will fail and no events will be processed. If this field is not present, this
    # field will use the time to the second."
    second, later_in_it = "2026-01-05T10:00:00+00:00", "2026-01-05T10:00:00.900000+00:00"
    for body, pointer in (
        (bulk_events(bulk_entry("a@example.com", {}, {})), "0/attributes/events/data/1"),  # both at request time
        (
            bulk_events(bulk_entry("a@example.com", {"time": second}, {"time": later_in_it})),
            "0/attributes/events/data/1",
        ),
        (
            bulk_events(bulk_entry("a@example.com", {"time": second}), bulk_entry("A@example.com", {})),
            "1/attributes/events/data/0",
        ),  # the same profile by email, the request's time in the same second
        (bulk_events(bulk_entry("a@example.com", {"unique_id": "1767607200"}, {})), "0/attributes/events/data/1"),
    ):
        err = error(raw.post("/api/event-bulk-create-jobs", json=body))
        assert "no events were processed" in err["detail"], err
        assert err["source"]["pointer"] == f"/data/attributes/events-bulk-create/data/{pointer}/attributes", err
    sb.settle()
    assert raw.get("/api/events").json()["data"] == []
    # a second apart, or another profile: each is an event of its own
    ok = bulk_events(
        bulk_entry("a@example.com", {"time": second}, {"time": "2026-01-05T10:00:01+00:00"}),
        bulk_entry("b@example.com", {"time": second}),
    )
    assert raw.post("/api/event-bulk-create-jobs", json=ok).status_code == 202
    sb.settle()
    assert len(raw.get("/api/events").json()["data"]) == 3


def test_bulk_client_events_in_one_second_without_unique_id_are_refused(raw: httpx.Client) -> None:
    body = {"data": bulk_entry("c@example.com", {}, {})}
    err = error(
        raw.post(
            "/client/event-bulk-create", params={"company_id": PUBLIC_KEY}, json=body, headers={"Authorization": ""}
        )
    )
    assert err["source"]["pointer"] == "/data/attributes/events/data/1/attributes"
    assert raw.get("/api/events").json()["data"] == []


# -- names the spec makes unique -------------------------------------------------------------------
def custom_metric(name: str) -> dict[str, Any]:
    return {
        "data": {
            "type": "custom-metric",
            "attributes": {"name": name, "definition": {"aggregation_method": "count", "metric_groups": []}},
        }
    }


def test_a_custom_metric_name_is_unique_across_the_account_on_create_and_update(raw: httpx.Client) -> None:
    # CustomMetricCreateQueryResourceObject.name: "Names must be unique across the account. Attempting to
    # create a metric with a duplicate name will return a 400 status code." (the update schema says the same)
    first = raw.post("/api/custom-metrics", json=custom_metric("Revenue"))
    assert first.status_code == 201, first.text
    err = error(raw.post("/api/custom-metrics", json=custom_metric("Revenue")))
    assert err["source"] == {"pointer": "/data/attributes/name"} and "Revenue" in err["detail"], err
    other = raw.post("/api/custom-metrics", json=custom_metric("revenue (EU)")).json()["data"]["id"]
    rename = {"data": {"type": "custom-metric", "id": other, "attributes": {"name": "Revenue"}}}
    err = error(raw.patch(f"/api/custom-metrics/{other}", json=rename))
    assert err["source"] == {"pointer": "/data/attributes/name"}, err
    assert [m["attributes"]["name"] for m in raw.get("/api/custom-metrics").json()["data"]] == [
        "Revenue",
        "revenue (EU)",
    ]
    # keeping its own name, or taking a free one, is no repeat
    first_id = first.json()["data"]["id"]
    same = {"data": {"type": "custom-metric", "id": first_id, "attributes": {"name": "Revenue"}}}
    assert raw.patch(f"/api/custom-metrics/{first_id}", json=same).status_code == 200
    rename["data"]["attributes"]["name"] = "Revenue (EU)"
    assert raw.patch(f"/api/custom-metrics/{other}", json=rename).status_code == 200
    assert raw.delete(f"/api/custom-metrics/{first_id}").status_code == 204
    assert raw.post("/api/custom-metrics", json=custom_metric("Revenue")).status_code == 201


def data_source(title: str, namespace: str | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {"title": title, **({"namespace": namespace} if namespace else {})}
    return {"data": {"type": "data-source", "attributes": attrs}}


def test_a_data_source_title_is_unique_within_its_namespace(raw: httpx.Client) -> None:
    # DataSourceCreateQueryResourceObject.title: "Must be between 1 and 255 characters and unique within the
    # namespace." (namespace defaults to "custom-objects")
    assert raw.post("/api/data-sources", json=data_source("Orders")).status_code == 201
    for repeat in (data_source("Orders"), data_source("Orders", "custom-objects")):
        err = error(raw.post("/api/data-sources", json=repeat))
        assert err["source"] == {"pointer": "/data/attributes/title"} and "Orders" in err["detail"], err
    assert raw.post("/api/data-sources", json=data_source("Orders", "warehouse")).status_code == 201
    assert len(raw.get("/api/data-sources").json()["data"]) == 2


# -- counts and per-item sizes the catalog records ---------------------------------------------------
def items_body(op: Operation, items: Any) -> dict[str, Any]:
    """A request body of ``op`` holding ``items`` where its limited argument goes (a list, or one item)."""
    arg = (
        next(a for a in op.args if a["name"] == op.max_items_arg)
        if op.max_items_arg
        else next(a for a in op.args if a["in"] == "body" and a["shape"]["kind"] == "data")
    )
    if op.body and op.body["root"] == "linkage":
        return {"data": items}
    return {"data": {"type": op.body["types"][0] if op.body else "x", arg["section"]: {arg["wire"]: {"data": items}}}}


def send(raw: httpx.Client, op: Operation, body: dict[str, Any]) -> httpx.Response:
    path = op.path.replace("{id}", "X1").replace("{list_id}", "X1")
    params = {"company_id": PUBLIC_KEY} if op.client_side else {}
    return raw.request(op.method, path, params=params, json=body)


COUNTED = [op for op in load_catalog() if op.max_items]
SIZED = [op for op in load_catalog() if op.max_item_payload_bytes]


def test_the_catalog_records_the_limits_the_tester_found() -> None:
    counts = {op.operation_id: op.max_items for op in COUNTED}
    assert counts["bulk_create_data_source_records"] == counts["bulk_delete_object_records"] == 500
    assert {op.operation_id for op in SIZED} >= {"create_data_source_record", "bulk_create_data_source_records"}


@pytest.mark.parametrize("op", COUNTED, ids=lambda op: op.operation_id)
def test_every_operation_refuses_more_items_than_its_description_allows(raw: httpx.Client, op: Operation) -> None:
    # e.g. bulk_create_data_source_records: "Accepts up to 500 records per request."
    body = items_body(op, [{"type": "x", "id": f"i{n}"} for n in range(op.max_items + 1)])
    err = error(send(raw, op, body))
    linkage = op.body is not None and op.body["root"] == "linkage"
    assert err["source"]["pointer"] == "/data" if linkage else err["source"]["pointer"].endswith("/data"), err
    assert f"at most {op.max_items}" in err["detail"] and str(op.max_items + 1) in err["detail"], err


@pytest.mark.parametrize("op", SIZED, ids=lambda op: op.operation_id)
def test_every_operation_refuses_an_item_over_its_per_item_size(raw: httpx.Client, op: Operation) -> None:
    # "The maximum allowed payload size per-record is 512KB" (per-profile 100KB): a body of one item too
    big = {"type": "x", "attributes": {"record": {"big": "x" * op.max_item_payload_bytes}}}
    single = op.max_items_arg is None
    err = error(send(raw, op, items_body(op, big if single else [big])))
    assert err["source"]["pointer"].endswith("/data" if single else "/data/0"), err
    assert "per item" in err["detail"], err


def test_data_source_records_over_the_limits_are_refused_and_nothing_is_queued(sb: Sandbox, raw: httpx.Client) -> None:
    ds = raw.post("/api/data-sources", json=data_source("Orders")).json()["data"]["id"]
    rel = {"data-source": {"data": {"type": "data-source", "id": ds}}}

    def records(*values: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"type": "data-source-record", "attributes": {"record": value}} for value in values]

    bulk = {"type": "data-source-record-bulk-create-job", "relationships": rel}
    too_many = {
        "data": {**bulk, "attributes": {"data-source-records": {"data": records(*({"i": i} for i in range(501)))}}}
    }
    err = error(raw.post("/api/data-source-record-bulk-create-jobs", json=too_many))
    assert err["source"]["pointer"] == "/data/attributes/data-source-records/data" and "500" in err["detail"]
    one = records({"big": "x" * (600 * 1024)})[0]
    single = {
        "data": {
            "type": "data-source-record-create-job",
            "relationships": rel,
            "attributes": {"data-source-record": {"data": one}},
        }
    }
    err = error(raw.post("/api/data-source-record-create-jobs", json=single))
    assert err["source"]["pointer"] == "/data/attributes/data-source-record/data" and "512 KB" in err["detail"]
    ids = [{"type": "object-record", "id": f"r{i}"} for i in range(501)]
    err = error(
        raw.post(
            "/api/object-record-bulk-delete-jobs",
            json={
                "data": {"type": "object-record-bulk-delete-job", "relationships": {"object-records": {"data": ids}}}
            },
        )
    )
    assert err["source"]["pointer"] == "/data/relationships/object-records/data" and "500" in err["detail"]
    # at the limits, each is taken
    fits = {"data": {**bulk, "attributes": {"data-source-records": {"data": records(*({"i": i} for i in range(500)))}}}}
    assert raw.post("/api/data-source-record-bulk-create-jobs", json=fits).status_code < 300
    single["data"]["attributes"]["data-source-record"]["data"] = records({"big": "x" * (500 * 1024)})[0]
    assert raw.post("/api/data-source-record-create-jobs", json=single).status_code < 300
    assert (
        raw.post(
            "/api/object-record-bulk-delete-jobs",
            json={
                "data": {
                    "type": "object-record-bulk-delete-job",
                    "relationships": {"object-records": {"data": ids[:500]}},
                }
            },
        ).status_code
        < 300
    )


# -- pages no larger than the description says ------------------------------------------------------
def test_get_events_returns_at_most_200_a_page_whatever_page_size_asks(sb: Sandbox, raw: httpx.Client) -> None:
    # get_events: "Returns a maximum of 200 events per page." (its page[size] schema allows 1 to 1000)
    entries = [bulk_entry(f"p{i}@example.com", {}) for i in range(250)]
    assert raw.post("/api/event-bulk-create-jobs", json=bulk_events(*entries)).status_code == 202
    sb.settle()
    first = raw.get("/api/events", params={"page[size]": "1000"})
    assert first.status_code == 200 and len(first.json()["data"]) == 200
    rest = raw.get(first.json()["links"]["next"])
    assert len(rest.json()["data"]) == 50 and "next" not in rest.json()["links"]
    seen = {e["id"] for e in first.json()["data"]} | {e["id"] for e in rest.json()["data"]}
    assert len(seen) == 250
    assert len(raw.get("/api/events").json()["data"]) == 200  # the default, 200
    assert len(raw.get("/api/events", params={"page[size]": "7"}).json()["data"]) == 7
    assert error(raw.get("/api/events", params={"page[size]": "1001"}))["source"] == {"parameter": "page[size]"}


def test_only_get_events_states_a_page_smaller_than_its_page_size_allows() -> None:
    """The rule above is the catalog's, for every listing: today only get_events needs it."""
    smaller = []
    for op in load_catalog():
        size = next((a for a in op.args if a["wire"] == "page[size]"), None)
        if op.max_page_size and size and op.max_page_size < size["shape"]["schema"].get("maximum", 100):
            smaller.append(op.operation_id)
    assert smaller == ["get_events"]


def test_a_job_listing_without_page_size_pages_by_its_stated_maximum(sb: Sandbox, raw: httpx.Client) -> None:
    # get_bulk_create_catalog_items_jobs: "Returns a maximum of 100 jobs per request." (no page[size])
    for n in range(101):
        item = {
            "type": "catalog-item",
            "attributes": {"external_id": f"x{n}", "title": "T", "description": "D", "url": "https://example.com/x"},
        }
        job = {"data": {"type": "catalog-item-bulk-create-job", "attributes": {"items": {"data": [item]}}}}
        assert raw.post("/api/catalog-item-bulk-create-jobs", json=job).status_code == 202
    page = raw.get("/api/catalog-item-bulk-create-jobs").json()
    assert len(page["data"]) == 100 and "next" in page["links"]
    assert len(raw.get(page["links"]["next"]).json()["data"]) == 1


# -- jobs pending at once ---------------------------------------------------------------------------
def coupon_codes_job(*codes: str) -> dict[str, Any]:
    return {
        "data": {
            "type": "coupon-code-bulk-create-job",
            "attributes": {
                "coupon-codes": {
                    "data": [
                        {
                            "type": "coupon-code",
                            "attributes": {"unique_code": code},
                            "relationships": {"coupon": {"data": {"type": "coupon", "id": "SPRING"}}},
                        }
                        for code in codes
                    ]
                }
            },
        }
    }


def test_the_101st_coupon_code_job_while_100_are_queued_is_refused(
    sb: Sandbox, raw: httpx.Client, clock: ManualClock
) -> None:
    # bulk_create_coupon_codes: "Max number of jobs queued at once we allow for is 100."
    coupon = {"data": {"type": "coupon", "attributes": {"external_id": "SPRING", "description": "Spring"}}}
    assert raw.post("/api/coupons", json=coupon).status_code == 201
    for n in range(100):
        assert raw.post("/api/coupon-code-bulk-create-jobs", json=coupon_codes_job(f"K{n}")).status_code == 202
    err = error(raw.post("/api/coupon-code-bulk-create-jobs", json=coupon_codes_job("K100")))
    assert "at most 100" in err["detail"] and err["source"] == {"pointer": "/data"}, err
    jobs = raw.get("/api/coupon-code-bulk-create-jobs").json()
    assert len(jobs["data"]) == 100 and "next" not in jobs["links"]
    clock.advance(60)  # the queued jobs come due and run: room again
    assert raw.post("/api/coupon-code-bulk-create-jobs", json=coupon_codes_job("K100")).status_code == 202
    sb.settle()
    codes = raw.get("/api/coupon-codes", params={"filter": 'equals(coupon.id,"SPRING")', "page[size]": "100"})
    assert codes.status_code == 200 and len(codes.json()["data"]) == 100 and "next" in codes.json()["links"]


def test_a_catalog_bulk_job_past_500_in_progress_is_refused(raw: httpx.Client) -> None:
    # bulk_delete_catalog_items (and the other eight): "The maximum number of jobs in progress at one time is 500."
    job = {
        "data": {
            "type": "catalog-item-bulk-delete-job",
            "attributes": {"items": {"data": [{"type": "catalog-item", "id": "$custom:::$default:::NONE"}]}},
        }
    }
    for _ in range(500):
        assert raw.post("/api/catalog-item-bulk-delete-jobs", json=job).status_code == 202
    assert "at most 500" in error(raw.post("/api/catalog-item-bulk-delete-jobs", json=job))["detail"]
    other = {
        "data": {
            "type": "catalog-category-bulk-delete-job",
            "attributes": {"categories": {"data": [{"type": "catalog-category", "id": "$custom:::$default:::NONE"}]}},
        }
    }
    assert raw.post("/api/catalog-category-bulk-delete-jobs", json=other).status_code == 202  # its own 500


# -- every string of an event payload ----------------------------------------------------------------
BIG = "x" * (100 * 1024 + 1)


def an_event(**profile_attrs: Any) -> dict[str, Any]:
    return {
        "data": {
            "type": "event",
            "attributes": {
                "properties": {"k": 1},
                "metric": {"data": {"type": "metric", "attributes": {"name": "Viewed"}}},
                "profile": {"data": {"type": "profile", "attributes": {"email": "ev@example.com", **profile_attrs}}},
            },
        }
    }


def test_no_string_of_an_event_payload_may_pass_100_kb_the_profiles_included(raw: httpx.Client) -> None:
    # EventCreateQueryV2 properties: "The size of the event payload must not exceed 5 MB, and each string
    # cannot be larger than 100 KB."; bulk_create_events: "A single string cannot exceed 100KB."
    profile = "/data/attributes/profile/data/attributes"
    for body, pointer in (
        (an_event(properties={"bio": BIG}), f"{profile}/properties/bio"),
        (an_event(first_name=BIG), f"{profile}/first_name"),
        (an_event(location={"address1": BIG}), f"{profile}/location/address1"),
        (an_event(properties={BIG: 1}), f"{profile}/properties"),  # a key: its object
    ):
        for path, params in (("/api/events", {}), ("/client/events", {"company_id": PUBLIC_KEY})):
            err = error(raw.post(path, params=params, json=body))
            assert err["source"]["pointer"] == pointer and "100 kB" in err["detail"], (path, err["detail"][:200])
    key = an_event()
    key["data"]["attributes"]["properties"] = {BIG: 1}
    err = error(raw.post("/api/events", json=key))
    assert err["source"]["pointer"] == "/data/attributes/properties" and "key" in err["detail"]
    entry = bulk_entry("ev@example.com", {})
    entry["attributes"]["profile"]["data"]["attributes"]["properties"] = {"bio": BIG}
    err = error(raw.post("/api/event-bulk-create-jobs", json=bulk_events(entry)))
    assert err["source"]["pointer"].endswith("/profile/data/attributes/properties/bio"), err
    client_bulk = {"data": entry}
    err = error(raw.post("/client/event-bulk-create", params={"company_id": PUBLIC_KEY}, json=client_bulk))
    assert err["source"]["pointer"] == "/data/attributes/profile/data/attributes/properties/bio", err
    assert raw.get("/api/events").json()["data"] == [] and raw.get("/api/profiles").json()["data"] == []
    # at the limit, taken
    assert raw.post("/api/events", json=an_event(properties={"bio": "x" * 100 * 1024})).status_code == 202
