"""The segment syncer and a person in several rows: the last value of each field wins, consent must agree.

Against the in-process sandbox over HTTP. A source may hold the same person twice (the same email in
another case, the same phone number); each field takes the last value the person's rows give, as for
any duplicate, and who got a later row's values is reported. Consent is not a field to pick a winner
for: when one row says yes and another does not, nobody can say the person consented, so they are
added (as any row) but not subscribed, and the result names them with the rows involved.
"""

from __future__ import annotations

from graphs.segment_sync.report import render

from .test_segment_sync import World, run, world, write_csv

__all__ = ["world"]  # a fixture, used by name

ROWS = [
    {"email": "ann@example.com", "first_name": "Ann", "consent": "yes"},  # 2: consents ...
    {"email": "ANN@example.com", "first_name": "Annie", "consent": "no"},  # 3: ... and withholds
    {"email": "bo@example.com", "first_name": "Bo", "consent": ""},  # 4: withholds first ...
    {"email": "bo@example.com", "first_name": "Bo", "consent": "yes"},  # 5: ... then consents
    {"email": "cy@example.com", "first_name": "Cy", "consent": "yes"},  # 6: consents twice: subscribed
    {"email": "cy@example.com", "first_name": "Cyrus", "consent": "Yes"},  # 7
    {"email": "di@example.com", "first_name": "Di", "consent": "no"},  # 8: withholds twice: added only
    {"email": "di@example.com", "first_name": "Di", "consent": ""},  # 9
    {"email": "ann@example.com", "first_name": "A.", "consent": "yes"},  # 10: Ann a third time
]


def _subscribed(world: World) -> list[str]:
    return sorted(p["attributes"]["email"] for body in world.sent("bulk_subscribe_profiles")
                  for p in body["data"]["attributes"]["profiles"]["data"])


def test_rows_that_disagree_on_consent_never_subscribe_and_are_reported(world: World) -> None:
    """Before: the first row won, so Ann (yes, then no) was subscribed and nobody was told."""
    list_id = world.new_list("Target")
    path = write_csv(world.home / "dupes.csv", ROWS, ["email", "first_name", "consent"])
    world.reset_counts()
    state = run(world.context("conflicts"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id})
    result = state.values["result"]
    assert world.sb.call_counts["get_profiles"] == 1, "a conflicted person's consent is not looked up (only Cy's)"
    assert _subscribed(world) == ["cy@example.com"], "only the person whose every row consents"
    world.settle()
    for email in ("ann@example.com", "bo@example.com", "di@example.com"):
        assert world.consent(email)["consent"] == "NEVER_SUBSCRIBED", email
    assert world.consent("cy@example.com")["consent"] == "SUBSCRIBED"
    assert world.members(list_id) == {"ann@example.com", "bo@example.com", "cy@example.com", "di@example.com"}

    conflicts = result["consent_conflicts"]
    assert conflicts["count"] == 2
    assert conflicts["people"] == [
        {"person": "ann@example.com", "rows": [2, 3, 10], "consenting": [2, 10], "not_consenting": [3]},
        {"person": "bo@example.com", "rows": [4, 5], "consenting": [5], "not_consenting": [4]},
    ]
    assert result["duplicate_rows"] == 5 and result["subscribes"]["applied"] == 1
    assert result["status"] == "partial", "the source asked for subscribes the sync could not make"
    summary = state.values["summary"]
    assert "2 people have rows that disagree on consent" in summary and "not subscribed" in summary
    assert "ann@example.com (rows 2, 3, 10)" in summary
    shown = render(state.values)
    assert "consent conflict: ann@example.com: rows 2, 10 consent, row 3 does not" in shown

    imported = [p["attributes"] for body in world.sent("bulk_import_profiles")
                for p in body["data"]["attributes"]["profiles"]["data"]]
    names = {p["email"].lower(): p.get("first_name") for p in imported}
    assert names == {"ann@example.com": "A.", "bo@example.com": "Bo", "cy@example.com": "Cyrus",
                     "di@example.com": "Di"}, "other fields: the last row's, as for any duplicate"


def test_a_dry_run_shows_the_conflicts_in_the_plan(world: World) -> None:
    list_id = world.new_list("Target")
    path = write_csv(world.home / "dupes.csv", ROWS[:4], ["email", "first_name", "consent"])
    state = run(world.context("conflicts-dry", dry_run=True),
                {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id})
    assert state.values["plan"]["subscribes"] == 0
    assert state.values["result"]["consent_conflicts"]["count"] == 2
    assert "consent conflict: bo@example.com: row 5 consents, row 4 does not" in render(state.values)
    assert world.sent("bulk_subscribe_profiles") == []


def test_a_list_member_already_subscribed_is_left_alone_when_its_rows_disagree(world: World) -> None:
    """A conflict withholds a subscribe; it never unsubscribes anyone (that is not the source's to say)."""
    list_id = world.new_list("Target", ["ann@example.com"])
    world.subscribe("ann@example.com")
    path = write_csv(world.home / "dupes.csv", ROWS[:2], ["email", "first_name", "consent"])
    result = run(world.context("conflicts-member"),
                 {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id}).values["result"]
    world.settle()
    assert world.consent("ann@example.com")["consent"] == "SUBSCRIBED"
    assert result["consent_conflicts"]["count"] == 1 and result["subscribes"]["planned"] == 0


def test_a_later_row_gives_the_fields_an_empty_cell_erases_nothing_and_the_merges_are_reported(
        world: World) -> None:
    """Before: the first row won, so Ann's corrected name and Bo's new CRM id in later rows were
    dropped, and nobody was told. Now the last value each field is given wins (a source lists people
    as they were written); an empty cell is no value; consent, which agrees here, is untouched."""
    list_id = world.new_list("Target")
    rows = [
        {"email": "ann@example.com", "first_name": "Anne", "last_name": "Lee", "external_id": "", "consent": "yes"},
        {"email": "bo@example.com", "first_name": "Bo", "last_name": "", "external_id": "crm-1", "consent": ""},
        {"email": "Ann@Example.com", "first_name": "Ann", "last_name": "", "external_id": "", "consent": "yes"},
        {"email": "cy@example.com", "first_name": "Cy", "last_name": "", "external_id": "", "consent": ""},
        {"email": "bo@example.com", "first_name": "", "last_name": "Berg", "external_id": "crm-2", "consent": ""},
        {"email": "cy@example.com", "first_name": "Cy", "last_name": "", "external_id": "", "consent": ""},
    ]
    path = write_csv(world.home / "later.csv", rows, ["email", "first_name", "last_name", "external_id", "consent"])
    state = run(world.context("later"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id})
    result = state.values["result"]

    imported = {p["attributes"]["email"]: p["attributes"] for body in world.sent("bulk_import_profiles")
                for p in body["data"]["attributes"]["profiles"]["data"]}
    assert imported["ann@example.com"].get("first_name") == "Ann", "the later row's name"
    assert imported["ann@example.com"].get("last_name") == "Lee", "an empty cell erases nothing"
    assert imported["bo@example.com"].get("first_name") == "Bo"
    assert (imported["bo@example.com"].get("last_name"), imported["bo@example.com"].get("external_id")) == (
        "Berg", "crm-2")
    assert set(imported) == {"ann@example.com", "bo@example.com", "cy@example.com"}, "the first spelling is kept"
    assert _subscribed(world) == ["ann@example.com"], "consent: every row of Ann's says yes"

    assert result["duplicate_rows"] == 3
    assert result["merged_values"] == {"count": 2, "people": [
        {"person": "ann@example.com", "rows": [2, 4], "fields": ["first_name"]},
        {"person": "bo@example.com", "rows": [3, 6], "fields": ["external_id", "last_name"]},
    ]}, "Cy's rows agree: nothing to report"
    assert result["consent_conflicts"]["count"] == 0 and result["status"] == "done"
    summary = state.values["summary"]
    assert "3 duplicate rows were merged into one row per person" in summary
    assert "2 people were given a later row's values" in summary
    assert "ann@example.com (first_name), bo@example.com (external_id/last_name)" in summary
    assert "merged: bo@example.com: rows 3, 6: external_id, last_name from the last row" in render(state.values)
