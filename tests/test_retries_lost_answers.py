"""After a lost answer (the write reached Klaviyo, its response did not come back), a write that is the
same done twice is sent again and succeeds; a create is never repeated. Against the sandbox, whose
``lost_response`` fault commits the write and then drops the answer.
"""

from __future__ import annotations

from typing import Any

import pytest

from klaviyo_sandbox import Faults, Sandbox
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.errors import KlaviyoError

pytestmark = pytest.mark.usefixtures("clean_env")


def _lost_once(sb: Sandbox, operation_id: str) -> None:
    sb.faults = Faults(lost_response_rate=1.0, count=1, operations=[operation_id])
    sb.requests.clear()


def _served(sb: Sandbox, operation_id: str) -> list[Any]:
    return [r["status"] for r in sb.requests if r["operation_id"] == operation_id]


def _first(kl: KlaviyoClient, operation_id: str) -> str:
    return str(next(iter(kl.iterate(operation_id)))["id"])


def test_an_upsert_whose_answer_was_lost_is_sent_again_and_makes_one_profile() -> None:
    sb = Sandbox(demo_data=False, rate_limit_factor=None)
    kl = sb.client()
    _lost_once(sb, "create_or_update_profile")
    result = kl.call("create_or_update_profile", email="upsert@example.com", first_name="Ada")
    assert result.status in (200, 201) and len(_served(sb, "create_or_update_profile")) == 2
    found = kl.call("get_profiles", filter="equals(email,'upsert@example.com')").data
    assert [p["attributes"]["first_name"] for p in found] == ["Ada"], "one profile, not two"


@pytest.mark.parametrize(
    ("operation_id", "args"),
    [
        ("update_catalog_item", lambda kl: {"id": _first(kl, "get_catalog_items"), "title": "Renamed boot"}),
        ("tag_lists", lambda kl: {"id": _first(kl, "get_tags"), "list_ids": [_first(kl, "get_lists")]}),
        ("update_tag_group", lambda kl: {"id": _first(kl, "get_tag_groups"), "name": "Renamed group"}),
    ],
)
def test_a_patch_or_a_relationship_add_whose_answer_was_lost_is_sent_again(operation_id: str, args: Any) -> None:
    sb = Sandbox(rate_limit_factor=None)
    kl = sb.client()
    given = args(kl)
    _lost_once(sb, operation_id)
    kl.call(operation_id, **given)  # no error: the second try answered
    assert len(_served(sb, operation_id)) == 2


def test_a_create_whose_answer_was_lost_is_still_not_repeated() -> None:
    sb = Sandbox(demo_data=False, rate_limit_factor=None)
    kl = sb.client()
    _lost_once(sb, "create_profile")
    with pytest.raises(KlaviyoError) as lost:
        kl.call("create_profile", email="once@example.com")
    assert getattr(lost.value, "maybe_applied", False)
    assert len(_served(sb, "create_profile")) == 1
    assert len(kl.call("get_profiles", filter="equals(email,'once@example.com')").data) == 1


def test_an_action_patch_whose_answer_was_lost_is_not_repeated() -> None:
    """Cancelling a send is a PATCH that performs an action, not one that sets attributes."""
    sb = Sandbox(demo_data=False, rate_limit_factor=None)
    kl = sb.client()
    _lost_once(sb, "cancel_campaign_send")
    with pytest.raises(KlaviyoError) as lost:
        kl.call("cancel_campaign_send", id="nonexistent-job", action="cancel")
    assert getattr(lost.value, "maybe_applied", False)
    assert len(_served(sb, "cancel_campaign_send")) == 1
