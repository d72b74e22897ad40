"""The segment syncer and the profile Klaviyo will resolve a row to, consent columns and the input's names.

Against the in-process sandbox (no demo data, a manual clock). Klaviyo's import finds a row's
profile by *any* identifier it gives (email, phone number, external id), and the subscribe that
follows finds it by the email the import gave it. So a new email with the phone number of a
suppressed profile lands on that profile: it must be checked as that profile, and never
subscribed. A row whose email is one profile's and whose phone number is another's is refused by
Klaviyo's import, while a subscribe by its email alone would go through: it is found before any
write and sent in no batch. A file whose email or consent column has a name the syncer does not
read is refused before any call, never read as "no email" or "no consent".
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from graphs.segment_sync import SyncInputError, render
from graphs.segment_sync.plan import Plan
from graphs.segment_sync.sources import InvalidRow, Row

from .test_segment_sync import World, run, world, write_csv

__all__ = ["world"]  # a fixture, used by name

CONSENT = {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}


def _unsubscribe(world: World, **identity: str) -> str:
    """A profile with ``identity`` that unsubscribed (Klaviyo suppresses it: UNSUBSCRIBE); its id."""
    profile_id: str = world.client.call("create_profile", **identity).data["id"]
    world.client.call("bulk_unsubscribe_profiles", profiles=[{"email": identity["email"], "subscriptions": CONSENT}])
    world.settle()
    return profile_id


def _profile(world: World, profile_id: str) -> dict[str, Any]:
    data: dict[str, Any] = world.client.call("get_profile", id=profile_id,
                                             additional_fields_profile=["subscriptions"]).data
    return data["attributes"]


def _subscribed(world: World) -> list[str]:
    return [p["attributes"]["email"] for body in world.sent("bulk_subscribe_profiles")
            for p in body["data"]["attributes"]["profiles"]["data"]]


def _imported(world: World) -> list[dict[str, Any]]:
    return [p["attributes"] for body in world.sent("bulk_import_profiles")
            for p in body["data"]["attributes"]["profiles"]["data"]]


# -- 1. a suppressed profile found by phone number or external id --------------------------------------
def test_a_suppressed_profile_a_row_lands_on_by_phone_or_external_id_is_never_resubscribed(world: World) -> None:
    by_phone = _unsubscribe(world, email="chiara@example.com", phone_number="+14155550101")
    by_id = _unsubscribe(world, email="crm@example.com", external_id="crm-9")
    target = world.new_list("VIP", ["member@example.com"])
    member = _unsubscribe(world, email="sms-member@example.com", phone_number="+14155550102")
    world.client.call("add_profiles_to_list", id=target, profile_ids=[member])
    rows = [
        {"email": "newperson@example.com", "phone_number": "+14155550101", "external_id": "", "consent": "yes"},
        {"email": "other@example.com", "phone_number": "", "external_id": "crm-9", "consent": "yes"},
        {"email": "third@example.com", "phone_number": "+14155550102", "external_id": "", "consent": "yes"},
        {"email": "fresh@example.com", "phone_number": "+14155550103", "external_id": "", "consent": "yes"},
    ]
    path = write_csv(world.home / "supp.csv", rows, ["email", "phone_number", "external_id", "consent"])
    world.reset_counts()

    snap = run(world.context("supp"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": target})
    world.settle()

    result = snap.values["result"]
    assert _subscribed(world) == ["fresh@example.com"], "only the row whose every profile may be subscribed"
    assert result["suppressed"]["count"] == 3 and result["subscribes"]["applied"] == 1
    assert "newperson@example.com (UNSUBSCRIBE; on the profile of chiara@example.com)" in result["suppressed"]["sample"]
    for profile_id in (by_phone, by_id, member):
        marketing = _profile(world, profile_id)["subscriptions"]["email"]["marketing"]
        assert marketing["consent"] == "UNSUBSCRIBED" and marketing["suppression"], profile_id
    # one lookup per kind of identifier (100 per call); the member's phone needed none
    filters = [c.params["filter"].split("(")[1].split(",")[0] for c in world.calls if c.operation_id == "get_profiles"]
    assert sorted(filters) == ["email", "external_id", "phone_number"]


def test_a_row_whose_identifiers_all_name_one_profile_is_subscribed_with_one_lookup(world: World) -> None:
    """The email lookup reads the profiles' phone numbers too when a row gives one: a phone its own
    profile holds needs no call of its own, and is no conflict."""
    world.client.call("create_profile", email="known@example.com", phone_number="+14155550104")
    target = world.new_list("VIP")
    path = write_csv(world.home / "one.csv", [{"email": "known@example.com", "phone_number": "+14155550104",
                                               "consent": "yes"}], ["email", "phone_number", "consent"])
    world.reset_counts()
    result = run(world.context("one"), {"source": {"kind": "csv", "path": str(path)},
                                        "target_list_id": target}).values["result"]
    assert _subscribed(world) == ["known@example.com"] and result["status"] == "done"
    assert world.sb.call_counts["get_profiles"] == 1


# -- 2. a row whose identifiers belong to two profiles --------------------------------------------------
def test_a_row_whose_email_and_phone_belong_to_two_profiles_is_reported_and_sent_in_no_batch(world: World) -> None:
    stella = world.client.call("create_profile", email="stella@example.com").data["id"]
    jasper = world.client.call("create_profile", email="jasper@example.com", phone_number="+13035550100").data["id"]
    target = world.new_list("VIP")
    rows = [{"email": "stella@example.com", "phone_number": "+13035550100", "consent": "yes"},
            {"email": "newbie@example.com", "phone_number": "", "consent": "yes"}]
    path = write_csv(world.home / "conf.csv", rows, ["email", "phone_number", "consent"])
    world.reset_counts()

    snap = run(world.context("conf"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": target})
    world.settle()

    result = snap.values["result"]
    assert [p["email"] for p in _imported(world)] == ["newbie@example.com"]
    assert _subscribed(world) == ["newbie@example.com"]
    assert world.members(target) == {"newbie@example.com"}
    assert _profile(world, stella)["subscriptions"]["email"]["marketing"]["consent"] != "SUBSCRIBED"
    assert result["status"] == "partial"
    assert (result["adds"]["applied"], result["subscribes"]["applied"]) == (1, 1)
    assert result["identity_conflicts"]["count"] == 1
    (row,) = [r for r in result["invalid"]["rows"] if r["row"] == 2]
    for said in ("stella@example.com", "jasper@example.com", stella, jasper, "merge"):
        assert said in row["problem"], (said, row)
    text = render(snap.values)
    assert "invalid row 2: phone_number:" in text and "not sent" in text
    assert "added 1 profiles" in text and "subscribed 1 with explicit consent" in text


def test_an_import_refusal_of_a_row_already_subscribed_says_the_subscribe_went_through(tmp_path: Path) -> None:
    """Klaviyo may still refuse a row at import (a profile made after the plan's lookups): the import
    job's errors come after the subscribe was sent, so the refused row says that it was subscribed."""
    with Plan.create(tmp_path / "plan.sqlite") as plan:
        plan.load_rows([Row(2, "late@example.com", "+13035550100", consent=True)])
        plan.match()
        plan.build(batch_size=10, file_source=True, subscribe=True, remove=False)
        plan.mark(1, "done", job_id="job-1")
        plan.mark(2, "done")
        plan.refused_by_job([("late@example.com", "+13035550100", "A profile already exists")])
        (refused,) = plan.invalid(5, "klaviyo")
    assert "A profile already exists" in refused["problem"]
    assert "subscribe" in refused["problem"] and "added to the list" in refused["problem"]


# -- 3. an email column under a name the syncer does not read; invalid rows keep their members ---------
def test_an_email_column_under_another_name_is_refused_before_any_call(world: World) -> None:
    target = world.new_list("VIP", ["a@example.com"])
    path = world.home / "customers.csv"
    path.write_text("Customer Email,Phone,consent\na@example.com,+14155550101,yes\nb@example.com,,\n")
    world.reset_counts()
    with pytest.raises(SyncInputError) as refused:
        run(world.context("mail"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": target,
                                    "mode": "mirror"})
    message = str(refused.value)
    assert "'Customer Email'" in message and "email_address" in message and "rename" in message
    assert sum(world.sb.call_counts.values()) == 0


def test_a_mirror_sync_keeps_every_member_whose_email_is_in_an_invalid_row(world: World) -> None:
    keep = ["obj@example.com", "hidden@example.com", "fine@example.com"]
    target = world.new_list("VIP", [*keep, "gone@example.com"])
    path = world.home / "rows.jsonl"
    lines = [{"email": "obj@example.com", "first_name": {"given": "Ann"}},  # an object: invalid
             {"email": "hidden@example.com", "phone_number": "+1415555\u200b0101"},  # hidden character: invalid
             {"email": "fine@example.com"}]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    world.reset_counts()
    snap = run(world.context("jsonl"), {"source": {"kind": "jsonl", "path": str(path)}, "target_list_id": target,
                                        "mode": "mirror"})
    world.settle()
    result = snap.values["result"]
    assert result["invalid_rows"] == 2 and result["removes"]["applied"] == 1
    assert world.members(target) == set(keep)
    assert result["kept_invalid"]["count"] == 2
    assert set(result["kept_invalid"]["sample"]) == {"obj@example.com", "hidden@example.com"}
    assert re.search(r"kept\s+2 members whose row is invalid", render(snap.values))


# -- 4. the consent column ------------------------------------------------------------------------------
def test_a_consent_column_under_another_name_is_refused_before_any_call(world: World) -> None:
    target = world.new_list("VIP")
    path = world.home / "nc.csv"
    path.write_text("email,Email Consent\noptin1@example.com,yes\n")
    world.reset_counts()
    with pytest.raises(SyncInputError) as refused:
        run(world.context("nc"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": target})
    message = str(refused.value)
    assert "'Email Consent'" in message and "consent_column" in message and "'consent'" in message
    assert sum(world.sb.call_counts.values()) == 0


def test_a_file_without_a_consent_column_says_nobody_is_subscribed(world: World) -> None:
    target = world.new_list("VIP")
    path = write_csv(world.home / "plain.csv", [{"email": "optin1@example.com", "first_name": "Ann"}],
                     ["email", "first_name"])
    snap = run(world.context("plain"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": target})
    result = snap.values["result"]
    assert result["status"] == "done" and result["adds"]["applied"] == 1
    assert result["missing_consent_column"] == "consent"
    said = "no 'consent' column in the file: nobody is subscribed; the persona's consent_column setting names it"
    assert said in render(snap.values)
    # a file with the column says nothing of it
    path = write_csv(world.home / "with.csv", [{"email": "optin2@example.com", "consent": "no"}], ["email", "consent"])
    snap = run(world.context("with"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": target})
    assert "missing_consent_column" not in snap.values["result"]
    assert "consent' column" not in render(snap.values)


# -- 5. the key the target was given under ----------------------------------------------------------------
def test_an_unknown_target_names_the_key_it_was_given_under(world: World) -> None:
    path = write_csv(world.home / "a.csv", [{"email": "a@example.com"}], ["email"])
    with pytest.raises(SyncInputError, match=r"target: no Klaviyo list has the id 'ZZZZZZ' and none is named so"):
        run(world.context("zz"), {"source": {"kind": "csv", "path": str(path)}, "target": "ZZZZZZ"})
    with pytest.raises(SyncInputError, match=r"target_list_id: no Klaviyo list has the id 'Nope12'"):
        run(world.context("nope"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": "Nope12"})


def test_invalid_rows_carry_their_email_whatever_made_them_invalid() -> None:
    from graphs.segment_sync.sources import validate_record

    cases = [{"email": "a@example.com", "first_name": ["Ann"]},
             {"email": "a@example.com", "phone_number": "+1415\u200b5550101"}]
    for record in cases:
        row = validate_record(3, record, "consent", {"yes"})
        assert isinstance(row, InvalidRow) and row.email == "a@example.com", row
