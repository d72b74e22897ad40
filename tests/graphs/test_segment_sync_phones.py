"""The segment syncer and a source as people write it: phone numbers as they are written, a path
relative to where the sync started (the last test).

Against the in-process sandbox over HTTP. "+44 (0)20 7946 0958" is how a UK number is often given:
the trunk 0 in brackets is dropped when dialled from abroad, so the number is +442079460958.
libphonenumber accepts "+4402079460958" as that same valid number, but as text it is another: the
syncer compared and sent it as written, so a list member Klaviyo holds as +442079460958 was not
matched (a mirror sync removed them) and the row was imported as a second profile. Each number is
now compared and sent in its one E.164 form.
"""

from __future__ import annotations

from typing import Any

import pytest

from .test_segment_sync import World, run, world, write_csv

__all__ = ["world"]  # a fixture, used by name


def _members(world: World, list_id: str) -> dict[str | None, str]:
    return {p.get("phone_number") or p.get("email"): p["id"]
            for p in world.client.iterate("get_profiles_for_list", id=list_id, page_size=100)}


def test_a_number_written_with_its_trunk_zero_is_the_member_who_has_it(world: World) -> None:
    list_id = world.client.call("create_list", name="SMS").data["id"]
    world.client.call("bulk_import_profiles", list_ids=[list_id], profiles=[
        {"phone_number": "+442079460958"}, {"phone_number": "+4930123456"}, {"phone_number": "+33142685300"}])
    world.settle()
    before = _members(world, list_id)
    rows = [{"email": "", "phone_number": "+44 (0)20 7946 0958"},  # UK, trunk 0 in brackets
            {"email": "", "phone_number": "+49 030 123456"},  # Germany, trunk 0 kept by mistake
            {"email": "", "phone_number": "+33 (0)1 42 68 53 00"},
            {"email": "", "phone_number": "+44 (0)20 7946 0959"}]  # a new number: imported in E.164
    path = write_csv(world.home / "sms.csv", rows, ["email", "phone_number"])
    world.reset_counts()

    result = run(world.context("phones"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id,
                                           "mode": "mirror"}).values["result"]
    world.settle()

    assert result["removes"]["planned"] == 0, "a member given in the file is never removed"
    assert world.sb.call_counts["remove_profiles_from_list"] == 0
    imported = [p["attributes"].get("phone_number") for body in world.sent("bulk_import_profiles")
                for p in body["data"]["attributes"]["profiles"]["data"]]
    assert imported == ["+442079460959"]
    after = _members(world, list_id)
    assert {k: after[k] for k in before} == before, "the same profiles, none made twice"
    assert set(after) == {*before, "+442079460959"}

    world.reset_counts()
    again = run(world.context("phones-2"), {"source": {"kind": "csv", "path": str(path)},
                                            "target_list_id": list_id, "mode": "mirror"}).values["result"]
    assert again["adds"]["planned"] == 0 and again["removes"]["planned"] == 0
    assert not any(world.sent(op) for op in ("bulk_import_profiles", "remove_profiles_from_list"))


def test_a_run_continued_from_another_folder_reads_the_same_file_and_a_moved_one_is_named(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source is given relative to where the sync started; a run stopped before it read the file
    and continued (``--retry``) from another folder read it there, or failed with a bare OSError."""
    from langgraph.checkpoint.memory import InMemorySaver

    from graphs.segment_sync import SyncInputError, build_graph

    list_id = world.new_list("Club", ["old@example.com"])
    folder = world.home / "work"
    folder.mkdir()
    write_csv(folder / "src.csv", [{"email": "new@example.com"}], ["email"])
    monkeypatch.chdir(folder)

    def started(thread: str) -> tuple[Any, dict[str, Any]]:
        graph = build_graph(InMemorySaver())
        config = {"configurable": {"thread_id": thread}}
        for update in graph.stream({"input": {"source": {"kind": "csv", "path": "src.csv"}, "target_list_id": list_id}},
                                   config, context=world.context(thread), stream_mode="updates"):
            if "read_target" in update:
                break  # stopped before the file was read
        return graph, config

    graph, config = started("moved-folder")
    monkeypatch.chdir(world.home)  # continued from another folder
    graph.invoke(None, config, context=world.context("moved-folder"))
    assert graph.get_state(config).values["result"]["adds"]["applied"] == 1

    monkeypatch.chdir(folder)
    graph, config = started("moved-file")
    (folder / "src.csv").rename(folder / "elsewhere.csv")
    with pytest.raises(SyncInputError, match=r"source\.path: no file at .*src\.csv any more"):
        graph.invoke(None, config, context=world.context("moved-file"))
