"""The segment syncer and members Klaviyo knows by another identifier than the source's email.

Against the in-process sandbox over HTTP. A list member may have no email yet: a phone-only (SMS)
contact, or a profile known by its external id alone. A source row that gives an email *and* that
phone number (or external id) is the same Klaviyo profile: importing the row gives the profile its
email, it does not make a new one. So that member is in the source and must never be planned as a
removal in mirror mode (before, it was: the approval asked to remove a person the file lists, and
whether they stayed depended on whether the import job or the removal finished first). A member
with another email and the row's phone number is that profile too: the import updates it.
"""

from __future__ import annotations

from .test_segment_sync import World, run, world, write_csv

__all__ = ["world"]  # a fixture, used by name


def _members(world: World, list_id: str) -> set[tuple[str | None, str | None, str | None]]:
    return {(p.get("email"), p.get("phone_number"), p.get("external_id"))
            for p in world.client.iterate("get_profiles_for_list", id=list_id, page_size=100)}


def test_a_member_known_by_phone_or_external_id_only_is_kept_when_a_row_gives_it_an_email(world: World) -> None:
    list_id = world.client.call("create_list", name="VIP").data["id"]
    world.client.call("bulk_import_profiles", list_ids=[list_id], profiles=[
        {"phone_number": "+15005550007"}, {"external_id": "crm-7"}, {"email": "keep@example.com"},
        {"email": "gone@example.com"}])
    world.settle()
    rows = [
        {"email": "sms@example.com", "phone_number": "+15005550007", "external_id": "", "consent": ""},
        {"email": "crm@example.com", "phone_number": "", "external_id": "crm-7", "consent": ""},
        {"email": "keep@example.com", "phone_number": "", "external_id": "", "consent": ""},
    ]
    path = write_csv(world.home / "vip.csv", rows, ["email", "phone_number", "external_id", "consent"])
    ids_before = {p.get("phone_number") or p.get("external_id") or p.get("email"): p["id"]
                  for p in world.client.iterate("get_profiles_for_list", id=list_id, page_size=100)}
    world.reset_counts()

    snap = run(world.context("mirror"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id,
                                         "mode": "mirror"})
    world.settle()

    result = snap.values["result"]
    removed = [i["id"] for body in world.sent("remove_profiles_from_list") for i in body["data"]]
    assert removed == [ids_before["gone@example.com"]], "only the member the source does not list leaves"
    assert result["removes"]["planned"] == result["removes"]["applied"] == 1, result["removes"]
    assert _members(world, list_id) == {("sms@example.com", "+15005550007", None),
                                        ("crm@example.com", None, "crm-7"), ("keep@example.com", None, None)}
    world.reset_counts()
    again = run(world.context("again"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id,
                                         "mode": "mirror"})
    assert [c.operation_id for c in world.calls] == ["get_profiles_for_list"], "in step: one read, nothing to do"
    assert again.values["result"]["status"] == "done"


def test_a_member_whose_phone_a_row_gives_with_another_email_is_not_removed_under_the_import(world: World) -> None:
    """A phone number is one profile's: a row (y@, P) is imported onto the member (x@, P), which
    then holds y@. Removing that member in the same run raced the import job (whichever ran last
    won), so it is kept; the member list ends as the source says, and the next run has nothing to do."""
    list_id = world.client.call("create_list", name="VIP").data["id"]
    world.client.call("bulk_import_profiles", list_ids=[list_id],
                      profiles=[{"email": "x@example.com", "phone_number": "+15005550007"}])
    world.settle()
    path = write_csv(world.home / "vip.csv", [{"email": "y@example.com", "phone_number": "+15005550007"}],
                     ["email", "phone_number"])
    payload = {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id, "mode": "mirror"}
    world.reset_counts()
    snap = run(world.context("mirror"), payload)
    world.settle()
    assert world.sent("remove_profiles_from_list") == [] and snap.values["result"]["removes"]["planned"] == 0
    assert _members(world, list_id) == {("y@example.com", "+15005550007", None)}
    world.reset_counts()
    run(world.context("again"), payload)
    assert [c.operation_id for c in world.calls] == ["get_profiles_for_list"]
