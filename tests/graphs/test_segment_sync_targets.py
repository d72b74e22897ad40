"""The segment syncer finds the lists it is given by name or by id, and never mistakes one for the other.

A Klaviyo list or segment id is six letters and digits, and so is a list named "Spring" or "VIPs24".
Against the in-process sandbox over HTTP: each test makes its lists through the API and counts the
``get_lists`` calls the sandbox answered (the syncer promises the fewest calls).
"""

from __future__ import annotations

import re

import pytest

from graphs.segment_sync import SyncInputError, parse_input

from .test_segment_sync import World, emails, run, world, write_csv

__all__ = ["world"]  # a fixture, used by name


def _source(world: World, name: str = "src.csv") -> dict[str, str]:
    path = write_csv(world.home / name, ({"email": e} for e in emails("new", 2)), ["email"])
    return {"kind": "csv", "path": str(path)}


@pytest.mark.parametrize("name", ["Spring", "VIPs24"])
def test_a_list_whose_name_looks_like_an_id_is_found_by_its_name(world: World, name: str) -> None:
    """Before: "Spring" was taken for an id (0 lookups), not found, and the sync failed."""
    list_id = world.new_list(name)
    world.reset_counts()
    result = run(world.context(f"named-{name}"), {"source": _source(world), "target": name}).values["result"]
    assert result["target_list_id"] == list_id and result["target_name"] == name
    assert world.members(list_id) == set(emails("new", 2))
    assert world.sb.call_counts["get_lists"] == 2, "its name, then the id it might also be (no list has it)"


def test_a_value_that_is_one_lists_id_and_another_lists_name_is_refused_naming_both(world: World) -> None:
    """Before: the list whose id it is was used silently, though the user may have meant the other."""
    by_id = world.new_list("Spring Sale")
    by_name = world.new_list(by_id)  # a list *named* like the first one's id
    with pytest.raises(SyncInputError) as refused:
        run(world.context("both"), {"source": _source(world), "target": by_id})
    said = str(refused.value)
    assert f"'{by_id}' is the id of list 'Spring Sale' and the name of list {by_name}" in said, said
    assert f'"id:{by_id}"' in said and f'"name:{by_id}"' in said, "says how to pick"
    assert world.members(by_id) == set() and world.members(by_name) == set(), "nothing sent"


def test_id_and_name_prefixes_pick_without_guessing(world: World) -> None:
    by_id = world.new_list("Spring Sale")
    by_name = world.new_list(by_id)
    world.reset_counts()
    run(world.context("pick-id"), {"source": _source(world, "a.csv"), "target": f"id:{by_id}"})
    assert world.members(by_id) == set(emails("new", 2)) and world.members(by_name) == set()
    assert world.sb.call_counts["get_lists"] == 0, "an id said to be one costs no lookup"
    world.reset_counts()
    result = run(world.context("pick-name"), {"source": _source(world, "b.csv"), "target": f"name:{by_id}"})
    assert result.values["result"]["target_list_id"] == by_name
    assert world.members(by_name) == set(emails("new", 2))
    assert world.sb.call_counts["get_lists"] == 1


def test_an_id_given_as_target_costs_one_name_lookup_and_target_list_id_none(world: World) -> None:
    """``target`` holds a name or an id: an id-shaped value is checked both ways (its name lookup is
    the one extra call; its members' read checks the id). ``target_list_id`` says it is an id."""
    list_id = world.new_list("Trail Club")
    world.reset_counts()
    run(world.context("target-id"), {"source": _source(world, "a.csv"), "target": list_id})
    assert world.sb.call_counts["get_lists"] == 1 and world.members(list_id) == set(emails("new", 2))
    world.reset_counts()
    run(world.context("target-list-id"), {"source": _source(world, "b.csv"), "target_list_id": list_id})
    assert world.sb.call_counts["get_lists"] == 0
    world.reset_counts()
    run(world.context("clearly-a-name"), {"source": _source(world, "c.csv"), "target": "Trail Club"})
    assert world.sb.call_counts["get_lists"] == 1, "a name that cannot be an id: one lookup, as before"


def test_an_id_shaped_target_that_is_neither_a_name_nor_an_id_says_both(world: World) -> None:
    world.new_list("Trail Club")
    with pytest.raises(SyncInputError, match=re.escape("no Klaviyo list has the id 'Nope12' and none is named so")):
        run(world.context("neither"), {"source": _source(world), "target": "Nope12"})


def test_a_source_list_given_by_name_is_looked_up_by_name(world: World) -> None:
    """``source.name`` says it is a name: before, "Spring" there was still taken for an id."""
    source = world.new_list("Spring", emails("s", 3))
    target = world.new_list("Target")
    result = run(world.context("src-name"), {"source": {"kind": "list", "name": "Spring"},
                                             "target_list_id": target}).values["result"]
    assert result["source"]["ids"] == [source]
    assert world.members(target) == set(emails("s", 3))


def test_the_source_and_target_prefixes_parse() -> None:
    request = parse_input({"source": {"kind": "list", "names": ["Spring", "id:Ab12Cd"]}, "target": "name:VIPs24"})
    assert request.source.names == ("name:Spring", "id:Ab12Cd") and request.target_list_id == "name:VIPs24"
    request = parse_input({"source": {"kind": "segment", "ids": ["Ab12Cd", "Summit club"]}, "target_list_id": "Xy12Ab"})
    assert request.source.names == ("id:Ab12Cd", "Summit club") and request.target_list_id == "id:Xy12Ab"
    with pytest.raises(SyncInputError, match="source: is the target list itself"):
        parse_input({"source": {"kind": "list", "id": "Xy12Ab"}, "target": "Xy12Ab"})
    with pytest.raises(SyncInputError, match="target: give the name or id"):
        parse_input({"source": {"kind": "list", "id": "Xy12Ab"}, "target": "name: "})


@pytest.mark.parametrize("key", ["target", "target_list_id", "name"])
def test_a_segment_given_as_the_target_is_refused_saying_it_is_a_segment(world: World, key: str) -> None:
    """A segment's members follow its definition: nothing can be added to one. Given as the target (by
    name or id), the error says it is a segment and how to use it, not only that no list has it."""
    condition = {"type": "profile-property", "property": "properties['plan']",
                 "filter": {"type": "string", "operator": "equals", "value": "pro"}}
    segment = world.client.call("create_segment", name="Pro customers",
                                definition={"condition_groups": [{"conditions": [condition]}]}).data["id"]
    world.new_list("Club")
    path = write_csv(world.home / "src.csv", [{"email": "ann@example.com"}], ["email"])
    target = {"target": segment} if key == "target" else {"target_list_id": segment} if key == "target_list_id" \
        else {"target": "Pro customers"}
    with pytest.raises(SyncInputError) as err:
        run(world.context(f"seg-{key}"), {"source": {"kind": "csv", "path": str(path)}, **target})
    assert "is a segment" in str(err.value) and '"kind": "segment"' in str(err.value)
    assert not any(world.sent(op) for op in ("bulk_import_profiles", "add_profiles_to_list"))
