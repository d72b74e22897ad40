"""Catalog items, variants and categories in the sandbox: compound ids, relationships, bulk jobs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import KlaviyoAPIError

BOOT = "$custom:::$default:::BOOT-1"


def item(client: Any, external_id: str = "BOOT-1", **extra: Any) -> dict[str, Any]:
    args = {"external_id": external_id, "title": "Ridge Boot", "description": "Waterproof boot.",
            "url": "https://shop.example.com/boot", "price": 189.0, **extra}
    return client.call("create_catalog_item", **args).data  # type: ignore[no-any-return]


def test_item_gets_compound_id_and_duplicate_external_id_is_409(client: Any) -> None:
    created = item(client)
    assert created["id"] == BOOT
    assert created["attributes"]["external_id"] == "BOOT-1"
    assert created["attributes"]["published"] is True
    assert client.call("get_catalog_item", id=BOOT).data["attributes"]["title"] == "Ridge Boot"
    with pytest.raises(KlaviyoAPIError) as err:
        item(client)
    assert err.value.status == 409
    assert err.value.source["pointer"] == "/data/attributes/external_id"
    assert "already exists" in (err.value.detail or "")


def test_unknown_catalog_type_is_rejected_with_pointer(client: Any) -> None:
    with pytest.raises(KlaviyoAPIError) as err:
        item(client, catalog_type="$shopify")
    assert err.value.status == 400
    assert err.value.source["pointer"] == "/data/attributes/catalog_type"
    assert "$default" in (err.value.detail or "")


def test_update_changes_attributes_and_keeps_id(client: Any) -> None:
    item(client)
    updated = client.call("update_catalog_item", id=BOOT, price=159.0, published=False).data
    assert updated["attributes"]["price"] == 159.0
    assert updated["attributes"]["published"] is False
    found = client.call("get_catalog_items", filter="equals(published,false)").data
    assert [i["id"] for i in found] == [BOOT]


def test_variant_needs_an_existing_item_and_dies_with_it(client: Any) -> None:
    with pytest.raises(KlaviyoAPIError) as err:
        client.call("create_catalog_variant", external_id="BOOT-1-10", title="Boot 10", description="Size 10",
                    sku="BOOT-1-10", inventory_quantity=4, price=189.0, url="https://shop.example.com/boot?s=10",
                    item_id=BOOT)
    assert err.value.status == 404
    assert err.value.source["pointer"] == "/data/relationships/item/data/id"
    item(client)
    variant = client.call("create_catalog_variant", external_id="BOOT-1-10", title="Boot 10", description="Size 10",
                          sku="BOOT-1-10", inventory_quantity=4, price=189.0, url="https://shop.example.com/boot?s=10",
                          item_id=BOOT).data
    assert variant["id"] == "$custom:::$default:::BOOT-1-10"
    assert variant["relationships"]["item"]["data"] == {"type": "catalog-item", "id": BOOT}
    by_item = client.call("get_catalog_variants", filter=f"equals(item.id,'{BOOT}')").data
    assert [v["id"] for v in by_item] == [variant["id"]]
    with_variants = client.call("get_catalog_item", id=BOOT, include=["variants"])
    assert [v["id"] for v in with_variants.included] == [variant["id"]]
    client.call("delete_catalog_item", id=BOOT)
    assert client.call("get_catalog_variants").data == []


def test_categories_link_both_ways(client: Any) -> None:
    item(client)
    item(client, "PACK-1", title="Daypack")
    category = client.call("create_catalog_category", external_id="footwear", name="Footwear", item_ids=[BOOT]).data
    cat_id = category["id"]
    assert cat_id == "$custom:::$default:::footwear"
    assert [i["id"] for i in client.call("get_items_for_catalog_category", id=cat_id).data] == [BOOT]
    client.call("add_categories_to_catalog_item", id="$custom:::$default:::PACK-1", catalog_category_ids=[cat_id])
    ids = [d["id"] for d in client.call("get_item_ids_for_catalog_category", id=cat_id).data]
    assert sorted(ids) == sorted([BOOT, "$custom:::$default:::PACK-1"])
    assert [c["id"] for c in client.call("get_categories_for_catalog_item", id=BOOT).data] == [cat_id]
    filtered = client.call("get_catalog_items", filter=f"equals(category.id,'{cat_id}')").data
    assert len(filtered) == 2
    client.call("remove_items_from_catalog_category", id=cat_id, catalog_item_ids=[BOOT])
    assert client.call("get_category_ids_for_catalog_item", id=BOOT).data == []
    assert [c["id"] for c in client.call("get_catalog_categories", filter=f"equals(item.id,'{BOOT}')").data] == []
    client.call("delete_catalog_category", id=cat_id)
    assert client.call("get_category_ids_for_catalog_item", id="$custom:::$default:::PACK-1").data == []


def test_linking_an_unknown_category_names_it(client: Any) -> None:
    item(client)
    with pytest.raises(KlaviyoAPIError) as err:
        client.call("add_categories_to_catalog_item", id=BOOT, catalog_category_ids=["$custom:::$default:::nope"])
    assert err.value.status == 404
    assert err.value.source["pointer"] == "/data/0/id"
    assert "nope" in (err.value.detail or "")


def test_bulk_create_applies_when_due_with_per_item_errors(sb: Sandbox, client: Any, clock: ManualClock) -> None:
    item(client)
    items = [
        {"external_id": "TENT-1", "title": "Tent", "description": "2P tent", "url": "https://shop.example.com/t"},
        {"external_id": "BOOT-1", "title": "Again", "description": "duplicate", "url": "https://shop.example.com/b"},
        {"external_id": "BAG-1", "title": "Bag", "description": "Sleeping bag", "url": "https://shop.example.com/s"},
    ]
    job = client.call("bulk_create_catalog_items", items=items).data
    assert job["attributes"]["status"] == "queued"
    assert job["attributes"]["total_count"] == 3
    assert client.call("get_catalog_items").data[0]["id"] == BOOT and len(client.call("get_catalog_items").data) == 1
    clock.advance(5)
    sb.tick()
    done = client.call("get_bulk_create_catalog_items_job", job_id=job["id"], include=["items"])
    attrs = done.data["attributes"]
    assert attrs["status"] == "complete"
    assert (attrs["completed_count"], attrs["failed_count"]) == (2, 1)
    assert attrs["errors"][0]["source"]["pointer"] == "/data/attributes/items/data/1/attributes/external_id"
    assert sorted(i["id"] for i in done.included) == ["$custom:::$default:::BAG-1", "$custom:::$default:::TENT-1"]
    assert len(client.call("get_catalog_items").data) == 3


def test_bulk_update_and_delete(sb: Sandbox, client: Any, clock: ManualClock) -> None:
    item(client)
    item(client, "PACK-1", title="Daypack")
    client.call("bulk_update_catalog_items", items=[{"id": BOOT, "price": 99.0}])
    client.call("bulk_delete_catalog_items", items=["$custom:::$default:::PACK-1", "$custom:::$default:::GONE"])
    clock.advance(5)
    sb.tick()
    assert client.call("get_catalog_item", id=BOOT).data["attributes"]["price"] == 99.0
    assert [i["id"] for i in client.call("get_catalog_items").data] == [BOOT]
    jobs = client.call("get_bulk_delete_catalog_items_jobs").data
    assert jobs[0]["attributes"]["failed_count"] == 1
    assert jobs[0]["attributes"]["errors"][0]["source"]["pointer"] == "/data/attributes/items/data/1/id"


def test_bulk_job_over_100_items_is_refused(raw: httpx.Client, sb: Sandbox) -> None:
    items = [{"type": "catalog-category", "attributes": {"external_id": f"c{n}", "name": f"C{n}"}} for n in range(101)]
    body = {"data": {"type": "catalog-category-bulk-create-job", "attributes": {"categories": {"data": items}}}}
    response = raw.post("/api/catalog-category-bulk-create-jobs", json=body)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["source"]["pointer"] == "/data/attributes/categories/data"
    assert "at most 100" in error["detail"]


def test_back_in_stock_subscription_records_an_event(sb: Sandbox, client: Any) -> None:
    item(client)
    client.call("create_catalog_variant", external_id="BOOT-1-10", title="Boot 10", description="Size 10",
                sku="BOOT-1-10", inventory_quantity=0, price=189.0, url="https://shop.example.com/boot?s=10",
                item_id=BOOT)
    client.call("create_back_in_stock_subscription", channels=["EMAIL"], variant_id="$custom:::$default:::BOOT-1-10",
                profile={"email": "waiting@example.com"})
    metric = sb.store.find("metric", "name", "Subscribed to Back in Stock")
    assert metric is not None
    events = [e for e in sb.store.iter("event") if e.relationships["metric"] == ("metric", metric.id)]
    assert len(events) == 1
    assert events[0].attributes["event_properties"]["variant_id"] == "$custom:::$default:::BOOT-1-10"
    assert sb.store.find("profile", "email", "waiting@example.com") is not None
