"""Persona files: the shipped ones load; every mistake names the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphs import graph_spec
from klaviyo_toolkit.tools import KlaviyoToolkit
from personas.kernel.context import select_tools
from personas.runtime.loader import PersonaConfigError, list_personas, load_persona, scan_personas

GOOD = """\
name: my-helper
description: Reads lists.
graph: chat
prompt: klaviyo_assistant.v1.md
scopes:
  - lists:read
tools:
  include: [get_lists]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "my-helper.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refuse(tmp_path: Path, text: str) -> PersonaConfigError:
    with pytest.raises(PersonaConfigError) as err:
        load_persona(str(write(tmp_path, text)))
    return err.value


def test_the_shipped_personas_load_and_stay_within_128_tools() -> None:
    names = {spec.name for spec in list_personas()}
    assert {"lead-magnet-sequencer", "klaviyo-assistant"} <= names
    for spec in list_personas():
        kit = KlaviyoToolkit(scopes=spec.scopes)
        tools = select_tools(kit, spec.tools)
        assert 0 < len(tools) <= 128, spec.name
        for tool in tools:
            assert not kit.missing_scopes(tool.operation)


def test_a_good_file_loads(tmp_path: Path) -> None:
    spec = load_persona(str(write(tmp_path, GOOD)))
    assert spec.name == "my-helper" and spec.scopes == ["lists:read"]


def test_unknown_key_names_file_line_and_the_allowed_keys(tmp_path: Path) -> None:
    err = refuse(tmp_path, GOOD + "colour: blue\n")
    assert err.line == 9 and err.field == "colour"
    assert str(err).startswith(f"{tmp_path / 'my-helper.yaml'}:9: colour: unknown key; allowed keys:")


def test_unknown_scope_suggests_the_right_one(tmp_path: Path) -> None:
    err = refuse(tmp_path, GOOD.replace("lists:read", "list:read"))
    assert (err.line, err.field) == (6, "scopes[0]")
    assert "'list:read' is not a Klaviyo scope; did you mean 'lists:read'?" in str(err)


def test_unknown_tool(tmp_path: Path) -> None:
    err = refuse(tmp_path, GOOD.replace("[get_lists]", "[get_lists, get_listz]"))
    assert (err.line, err.field) == (8, "tools.include[1]")
    assert "get_listz" in str(err) and "get_lists" in str(err)


def test_tool_outside_the_scopes(tmp_path: Path) -> None:
    err = refuse(tmp_path, GOOD.replace("[get_lists]", "[get_lists, delete_list]"))
    assert err.field == "tools.include[1]"
    assert "delete_list needs scope(s) lists:write" in str(err)


def test_missing_prompt_file(tmp_path: Path) -> None:
    err = refuse(tmp_path, GOOD.replace("klaviyo_assistant.v1.md", "nope.md"))
    assert (err.line, err.field) == (4, "prompt")
    assert "no prompt file 'nope.md'" in str(err) and "klaviyo_assistant.v1.md" in str(err)


def test_bad_graph_and_bad_yaml(tmp_path: Path) -> None:
    err = refuse(tmp_path, GOOD.replace("graph: chat", "graph: chatbot"))
    assert (err.line, err.field) == (3, "graph")
    err = refuse(tmp_path, GOOD + "tools: [unclosed\n")
    assert "not valid YAML" in str(err) and err.line is not None


def test_graph_settings_are_validated_with_the_graphs_model(tmp_path: Path) -> None:
    text = Path("personas/definitions/lead-magnet-sequencer.yaml").read_text(encoding="utf-8")
    text = text.replace("name: lead-magnet-sequencer", "name: my-helper").replace(
        "engagement_days: 30", "engagement_dayz: 30"
    )
    err = refuse(tmp_path, text)
    assert err.field == "settings.engagement_dayz" and "unknown setting" in str(err)
    assert err.line == text.splitlines().index("  engagement_dayz: 30") + 1


def test_band_naming_an_unknown_sequence_is_refused(tmp_path: Path) -> None:
    text = Path("personas/definitions/lead-magnet-sequencer.yaml").read_text(encoding="utf-8")
    text = text.replace("name: lead-magnet-sequencer", "name: my-helper").replace(
        "sequences: [education]", "sequences: [edu]"
    )
    err = refuse(tmp_path, text)
    assert "unknown sequence(s) ['edu']" in str(err)


def test_unknown_persona_lists_the_known_ones() -> None:
    with pytest.raises(PersonaConfigError) as err:
        load_persona("lead-magnet-sequenser")
    assert "did you mean lead-magnet-sequencer" in str(err.value)


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    err = refuse(tmp_path, GOOD + "name: other-helper\n")
    assert err.line == 9 and "duplicate key 'name' (first at line 1)" in str(err)


def test_unknown_names_in_approval_also_are_load_errors(tmp_path: Path) -> None:
    err = refuse(tmp_path, GOOD + "approval:\n  also: [delete_lists]\n")
    assert (err.line, err.field) == (10, "approval.also[0]") and "delete_list" in str(err)


def test_the_graph_contract_is_checked_against_scopes_and_tools(tmp_path: Path) -> None:
    shipped = Path(load_persona("campaign-reporter").source).read_text(encoding="utf-8")
    no_scope = shipped.replace("  - metrics:read ", "  - lists:read ").replace(", get_metrics", "")
    err = refuse(tmp_path, no_scope)
    assert err.field == "scopes" and "get_metrics" in str(err) and "metrics:read" in str(err)
    no_tool = shipped.replace(", get_campaigns", "")
    err = refuse(tmp_path, no_tool)
    assert err.field == "tools" and "get_campaigns" in str(err) and "tools.include" in str(err)


def _home_with(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "home" / "personas"
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return tmp_path / "home"


def test_user_personas_are_known_by_their_name_and_duplicates_are_refused(tmp_path: Path) -> None:
    home = _home_with(tmp_path, {
        "my-reporter.yaml": GOOD.replace("my-helper", "zzz-reporter"),
        "copy.yaml": GOOD.replace("my-helper", "campaign-reporter"),
    })
    found = scan_personas(home)
    assert "zzz-reporter" in found.personas and "my-reporter" not in found.personas
    assert load_persona("zzz-reporter", home=home).name == "zzz-reporter"
    assert found.personas["campaign-reporter"].graph == "campaign_report", "the shipped one stays"
    [dup] = found.errors
    assert dup.field == "name" and "'campaign-reporter' is already the name of" in str(dup)
    assert "name the file campaign-reporter.yaml" in str(dup)


def test_a_file_named_after_a_shipped_persona_replaces_it_on_purpose(tmp_path: Path) -> None:
    shipped = Path(load_persona("campaign-reporter").source).read_text(encoding="utf-8")
    home = _home_with(tmp_path, {"campaign-reporter.yaml": shipped.replace("max_bounce_rate: 0.05",
                                                                           "max_bounce_rate: 0.07"),
                                 "also-reporter.yaml": GOOD.replace("my-helper", "also-reporter"),
                                 "again.yaml": GOOD.replace("my-helper", "also-reporter")})
    found = scan_personas(home)
    assert found.personas["campaign-reporter"].settings["thresholds"]["max_bounce_rate"] == 0.07
    [dup] = found.errors  # two of yours with one name: the second (in file order) is refused
    assert Path(dup.path).name == "also-reporter.yaml" and "again.yaml" in str(dup)


def test_a_broken_replacement_of_a_shipped_persona_leaves_neither_to_run(tmp_path: Path) -> None:
    """A file named after a shipped persona replaces it; broken, the shipped one ran in its place,
    unseen: `personas serve` sent a sequencer's touchpoint without the approval the file required."""
    import yaml

    stricter = yaml.safe_load(Path(load_persona("lead-magnet-sequencer").source).read_text(encoding="utf-8"))
    stricter["approval"] = {"mode": "effects", "also": ["create_event"]}
    stricter["settings"]["recheck_after"] = "soon"  # the slip: a number was meant
    home = _home_with(tmp_path, {"lead-magnet-sequencer.yaml": yaml.safe_dump(stricter)})
    found = scan_personas(home)
    assert "lead-magnet-sequencer" not in found.personas and "campaign-reporter" in found.personas
    [broken] = found.errors
    assert Path(broken.path).name == "lead-magnet-sequencer.yaml" and "recheck_after" in str(broken)
    with pytest.raises(PersonaConfigError, match="recheck_after"):
        load_persona("lead-magnet-sequencer", home=home)


def test_one_broken_file_hides_no_other_persona(tmp_path: Path) -> None:
    home = _home_with(tmp_path, {"broken.yaml": GOOD + "colour: blue\n", "fine.yaml": GOOD})
    found = scan_personas(home)
    assert "my-helper" in found.personas and len(found.personas) >= 5
    assert [Path(e.path).name for e in found.errors] == ["broken.yaml"]
    with pytest.raises(PersonaConfigError, match="colour: unknown key"):
        load_persona("broken", home=home)


@pytest.mark.parametrize(("cron", "says"), [
    ("61 7 * * *", "the minute '61' is outside 0-59"),
    ("0 24 * * *", "the hour '24' is outside 0-23"),
    ("*/0 * * * *", "step '0' must be a whole number above 0"),
    ("0 7 * * someday", "the day of week 'someday' is outside 0-7"),
])
def test_a_schedule_that_is_not_a_valid_cron_fails_at_load_naming_the_field(
        tmp_path: Path, cron: str, says: str) -> None:
    err = refuse(tmp_path, GOOD + f'schedule: "{cron}"\n')
    assert err.field == "schedule" and says in str(err)


@pytest.mark.parametrize("cron", ["0 7 * * *", "*/15 8-18 * * mon-fri", "0 0 1 jan,jul *", "30 6 * * 0,7"])
def test_valid_cron_schedules_load(tmp_path: Path, cron: str) -> None:
    assert load_persona(str(write(tmp_path, GOOD + f'schedule: "{cron}"\n'))).schedule == cron


# -- approval.relax names the effects it waives, per operation -----------------------------------
# the syncer's graph: its own code calls the operations relaxed here (a relax waives nothing for a model's calls)
LISTS = GOOD.replace("lists:read", "lists:read\n  - lists:write\n  - profiles:read\n  - profiles:write\n"
                     "  - segments:read\n  - subscriptions:write").replace(
    "graph: chat\nprompt: klaviyo_assistant.v1.md", "graph: segment_sync\nprompt: segment_syncer.v1.md").replace(
    "include: [get_lists]", "include: [" + ", ".join(graph_spec("segment_sync").operations) + "]")


def test_relax_maps_each_operation_to_the_effects_it_waives(tmp_path: Path) -> None:
    spec = load_persona(str(write(tmp_path, LISTS + "approval:\n  relax:\n"
                                              "    add_profiles_to_list: [sending]   # the sync\n"
                                              "    bulk_import_profiles: [identity, sending]\n")))
    assert spec.approval.relax == {"add_profiles_to_list": ["sending"], "bulk_import_profiles": ["identity", "sending"]}


def test_a_relax_that_names_operations_alone_is_refused_with_the_fix(tmp_path: Path) -> None:
    """A plain name used to waive every effect the call had; it no longer means anything."""
    err = refuse(tmp_path, LISTS + "approval:\n  relax:\n    - add_profiles_to_list\n    - bulk_import_profiles\n")
    assert (err.line, err.field) == (15, "approval.relax")
    text = str(err)
    assert "which effects it waives" in text
    assert "add_profiles_to_list: [sending]" in text, "the fix names what the operation always does"
    assert "bulk_import_profiles: [...]" in text and "can have: consent, identity, sending, volume" in text


@pytest.mark.parametrize(
    ("relax", "field", "problem"),
    [
        ("{add_profiles_to_list: [consent]}", "approval.relax.add_profiles_to_list",
         "add_profiles_to_list never has effect 'consent'; it can have: sending"),
        ("{add_profiles_to_list: [sendin]}", "approval.relax.add_profiles_to_list", "'sendin' is not an effect"),
        ("{add_profiles_to_lists: [sending]}", "approval.relax.add_profiles_to_lists", "add_profiles_to_list"),
        ("{add_profiles_to_list: []}", "approval.relax.add_profiles_to_list", "name at least one effect"),
    ],
)
def test_relax_refuses_effects_an_operation_cannot_have_and_unknown_names(
    tmp_path: Path, relax: str, field: str, problem: str
) -> None:
    err = refuse(tmp_path, LISTS + f"approval:\n  relax: {relax}\n")
    assert err.field == field and err.line == 15, str(err)
    assert problem in str(err)


@pytest.mark.parametrize(
    ("graph", "relax", "name"),
    [
        ("chat", "{bulk_subscribe_profiles: [consent, sending]}", "bulk_subscribe_profiles"),
        ("chat", "{create_list_relationships: [sending]}", "create_list_relationships"),  # an alias too
        ("segment_sync", "{bulk_unsubscribe_profiles: [consent]}", "bulk_unsubscribe_profiles"),
    ],
)
def test_relax_is_refused_for_an_operation_the_graphs_own_code_never_calls(
    tmp_path: Path, graph: str, relax: str, name: str
) -> None:
    """A relax stands for what the graph's code does around the call; a call the graph's code never
    makes is the model's (in a chat, every call), and a model's calls always stop."""
    text = LISTS
    if graph == "chat":
        text = text.replace("graph: segment_sync\nprompt: segment_syncer.v1.md",
                            "graph: chat\nprompt: klaviyo_assistant.v1.md")
    err = refuse(tmp_path, text + f"approval:\n  relax: {relax}\n")
    assert err.field == f"approval.relax.{name}", str(err)
    assert f"the {graph} graph's own code never calls" in str(err) and "a model's calls always stop" in str(err)
