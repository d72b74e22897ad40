"""The segment syncer and emails written in another Unicode form or case than Klaviyo holds them.

Against the in-process sandbox over HTTP. ``josé`` can be written with a precomposed é (NFC) or as
e followed by a combining accent (NFD, as some macOS tools and exports write it): one address to a
person, two strings to Python. The syncer compared them as text, so a mirror sync whose file gave
the NFD form removed the member Klaviyo holds in NFC and imported "another" person (which the
sandbox then refused: the person was simply gone from the list). Addresses are now compared in NFC
without regard to case, and every tool sends them in NFC with their case as given.
"""

from __future__ import annotations

import re
import unicodedata

import pytest

from klaviyo_toolkit.errors import InvalidArgumentError

from .test_segment_sync import World, run, world, write_csv

__all__ = ["world"]  # a fixture, used by name

NFC = unicodedata.normalize("NFC", "josé@example.com")
NFD = unicodedata.normalize("NFD", "josé@example.com")


def _list_emails(world: World, list_id: str) -> dict[str, str]:
    return {p["email"]: p["id"] for p in world.client.iterate("get_profiles_for_list", id=list_id, page_size=100)}


def test_an_address_in_another_unicode_form_or_case_is_the_member_who_has_it(world: World) -> None:
    assert NFC != NFD
    list_id = world.new_list("Club", [NFC, "Ann@Example.com", "zoë@exämple.com"])
    world.settle()
    before = _list_emails(world, list_id)
    rows = [{"email": NFD}, {"email": "Ann@EXAMPLE.COM"},
            {"email": unicodedata.normalize("NFD", "ZOË@EXÄMPLE.COM")},
            {"email": unicodedata.normalize("NFD", "Renée@Example.com")}]  # new: sent in NFC, case as given
    path = write_csv(world.home / "src.csv", rows, ["email"])
    world.reset_counts()

    result = run(world.context("unicode"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id,
                                            "mode": "mirror"}).values["result"]
    world.settle()

    assert result["removes"]["planned"] == 0, "a member the file gives is never removed"
    assert world.sb.call_counts["remove_profiles_from_list"] == 0
    imported = [p["attributes"]["email"] for body in world.sent("bulk_import_profiles")
                for p in body["data"]["attributes"]["profiles"]["data"]]
    assert imported == [unicodedata.normalize("NFC", "Renée@Example.com")]
    assert result["adds"] == {**result["adds"], "planned": 1, "applied": 1, "refused": 0}
    after = _list_emails(world, list_id)
    assert {k: after[k] for k in before} == before, "the same profiles, none made twice"
    assert len(after) == 4

    world.reset_counts()
    again = run(world.context("unicode-2"), {"source": {"kind": "csv", "path": str(path)},
                                             "target_list_id": list_id, "mode": "mirror"}).values["result"]
    assert again["adds"]["planned"] == 0 and again["removes"]["planned"] == 0


def test_the_sandbox_finds_a_profile_by_its_address_in_either_form(world: World) -> None:
    """A profile written in NFD is the one an NFC address names: found by a filter, never made twice."""
    made = world.client.call("create_profile", email=NFD).data["id"]
    found = world.client.call("get_profiles", filter=f'equals(email,"{NFC.upper()}")').data
    assert [p["id"] for p in found] == [made]
    world.client.call("bulk_import_profiles", profiles=[{"email": NFC}])
    world.settle()
    assert [p["id"] for p in world.client.iterate("get_profiles", page_size=100)] == [made]


def test_every_tool_sends_an_address_in_its_nfc_form_and_refuses_what_klaviyo_would(world: World) -> None:
    """The toolkit's one email check gives the NFC form to every tool (``create_profile`` here), and refuses,
    before any request, a local part holding a symbol or a combining mark no letter absorbs: it accepted
    them, and the server refused the call (one such row sank a whole import batch)."""
    world.client.call("create_profile", email=unicodedata.normalize("NFD", "Zoë@Exämple.com"))
    assert [b["data"]["attributes"]["email"] for b in world.sent("create_profile")] == [
        unicodedata.normalize("NFC", "Zoë@Exämple.com")]
    for bad, named in (("ada\u00a9@example.com", "U+00A9 COPYRIGHT SIGN"),
                       ("adx\u0301@example.com", "U+0301 COMBINING ACUTE ACCENT")):
        with pytest.raises(InvalidArgumentError, match=re.escape(named)):
            world.client.call("create_profile", email=bad)
    assert len(world.sent("create_profile")) == 1
