"""Value matchers and trajectory matching (strict / unordered / subset / superset)."""

from __future__ import annotations

from typing import Any

import pytest

from evals.matchers import MISSING, CallSpec, MatchContext, check_matcher, match_trajectory, match_value


def ok(expected: Any, actual: Any, ctx: MatchContext | None = None) -> bool:
    return match_value(expected, actual, ctx) == []


# -- values -------------------------------------------------------------------------------------
def test_scalars_are_equal_or_not() -> None:
    assert ok("nurture", "nurture")
    assert ok(77, 77.0)
    assert not ok(1, True), "a bool is not a number"
    assert match_value("nurture", "education", path="decision.sequence") == [
        'decision.sequence: expected "nurture", got "education"'
    ]


def test_a_mapping_is_a_partial_match_at_every_depth() -> None:
    actual = {
        "metric": {"name": "Lead Sequence Started"},
        "properties": {"sequence": "nurture", "touchpoint": 1},
        "unique_id": "lead-sequence:p1",
    }
    assert ok({"properties": {"sequence": "nurture"}}, actual)
    problems = match_value({"properties": {"sequence": "fast-track", "lead_band": "hot"}}, actual, path="args")
    assert problems == [
        'args.properties.sequence: expected "fast-track", got "nurture"',
        'args.properties.lead_band: missing (expected "hot")',
    ]
    assert not ok({"properties": 1}, {"properties": {"a": 1}})


def test_a_list_needs_a_distinct_match_for_each_item_in_any_order() -> None:
    factors = [{"factor": "base", "points": 5}, {"factor": "answer role = Guide", "points": 5}]
    assert ok([{"points": 5, "factor": "answer role = Guide"}, {"factor": "base"}], factors)
    assert not ok([{"points": 5}, {"points": 5}, {"points": 5}], factors), "two items cannot match three"
    assert ok({"items": [{"factor": "base"}, {"factor": {"contains": "role"}}]}, factors)
    assert not ok({"items": [{"factor": {"contains": "role"}}, {"factor": "base"}]}, factors), "items keeps order"
    assert not ok([], factors) and ok([], []), "[] is an empty list, not any list"
    assert ok({"type": "array"}, factors)


def test_operators() -> None:
    assert ok({"exact": {"a": 1}}, {"a": 1}) and not ok({"exact": {"a": 1}}, {"a": 1, "b": 2})
    assert ok({"regex": "^lead-sequence:[0-9A-Z]+$"}, "lead-sequence:01KK")
    assert ok({"contains": "consult"}, "Your Trail Guide + a 15-minute gear consult")
    assert ok({"contains": {"sequence": "nurture"}}, [{"sequence": "education"}, {"sequence": "nurture"}])
    assert ok({"any_of": ["nurture", "education"]}, "education") and not ok({"any_of": ["nurture"]}, "fast-track")
    assert ok({"all_of": [{"min": 60}, {"max": 100}]}, 77)
    assert ok({"not": "fast-track"}, "education") and not ok({"not": {"contains": "fast"}}, "fast-track")
    assert ok({"between": [60, 100]}, 60) and not ok({"between": [60, 100]}, 59.5)
    assert ok({"gt": 1, "lt": 3}, 2) and not ok({"min": 1}, "2")
    assert ok({"len": 3}, [1, 2, 3]) and ok({"len": {"min": 1}}, "x")
    assert ok({"type": "integer"}, 3) and not ok({"type": "integer"}, 3.5) and ok({"type": "null"}, None)
    assert ok({"fields": {"type": "event"}}, {"type": "event", "id": "1"}), "fields matches keys named like operators"


def test_absent_and_present_tell_missing_null_and_set_apart() -> None:
    assert ok({"k": {"absent": True}}, {}) and ok({"k": {"absent": True}}, {"k": None})
    assert not ok({"k": {"absent": True}}, {"k": "x"})
    assert ok({"k": {"present": True}}, {"k": 0}) and not ok({"k": {"present": True}}, {"k": None})
    assert match_value("x", MISSING, path="a.b") == ['a.b: missing (expected "x")']


def test_refs_name_the_ids_the_fixture_made() -> None:
    ctx = MatchContext({"profile:maya": "01ABC"})
    assert ok({"profile": {"id": {"ref": "profile:maya"}}}, {"profile": {"id": "01ABC"}}, ctx)
    assert not ok({"ref": "profile:maya"}, "01XYZ", ctx)
    assert match_value({"ref": "profile:nobody"}, "01ABC", ctx)[0].startswith("value: unknown ref 'profile:nobody'")


def test_contains_a_ref_finds_the_fixture_id_inside_text() -> None:
    ctx = MatchContext({"profile:maya": "01ABC"})
    assert ok({"contains": {"ref": "profile:maya"}}, 'equals(profile_id,"01ABC")', ctx)
    assert match_value({"contains": {"ref": "profile:maya"}}, 'equals(profile_id,"01XYZ")', ctx) == [
        'value: "equals(profile_id,\\"01XYZ\\")" does not contain profile:maya (01ABC)'
    ]
    assert match_value({"contains": {"ref": "list:x"}}, "text", ctx)[0].startswith("value: unknown ref 'list:x'")
    assert ok({"contains": {"ref": "profile:maya"}}, ["01XYZ", "01ABC"], ctx), "in a list it matches an item"


def test_badly_written_matchers_are_reported_with_their_path() -> None:
    (problem,) = check_matcher({"args": {"filter": {"regex": "(unclosed"}}})
    assert problem.startswith("args.filter.regex: not a valid regular expression (missing )")
    assert check_matcher({"score": {"between": [1]}}) == ["score.between: give [low, high] numbers"]
    assert check_matcher({"x": {"min": "ten"}, "y": {"absent": "yes"}, "z": {"ref": "maya"}}) == [
        "x.min: give a number",
        "y.absent: give true or false",
        "z.ref: give KIND:NAME, e.g. profile:maya",
    ]
    assert check_matcher({"a": [{"any_of": []}]}) == ["a[0].any_of: give a list of matchers"]
    assert check_matcher({"state": {"decision": {"sequence": "nurture"}}}) == []


# -- trajectories -------------------------------------------------------------------------------
def call(tool: str, source: str = "http", **args: Any) -> dict[str, Any]:
    return {"source": source, "tool": tool, "args": args, "status": 200 if source == "http" else None}


RUN = [
    call("get_profile", id="p1"),
    call("get_metrics"),
    call("choose_sequence", "model", sequence="nurture"),
    call("create_event", properties={"sequence": "nurture"}),
    call("update_profile", id="p1"),
]


def spec(tool: str, **args: Any) -> CallSpec:
    return CallSpec(tool=tool, args=args or None)


def test_strict_needs_the_same_calls_in_the_same_order() -> None:
    expected = [
        spec("get_profile"),
        spec("get_metrics"),
        spec("choose_sequence", sequence="nurture"),
        spec("create_event"),
        spec("update_profile"),
    ]
    assert match_trajectory("strict", expected, RUN, match="partial") == []
    swapped = [expected[1], expected[0], *expected[2:]]
    assert (
        match_trajectory("strict", swapped, RUN, match="partial")[0]
        == "call 1 (get_profile): tool is get_profile, not get_metrics"
    )
    assert match_trajectory("strict", expected[:-1], RUN, match="partial") == [
        'call 5: unexpected http:update_profile {"id": "p1"}'
    ]
    assert match_trajectory("strict", [*expected, spec("get_events")], RUN, match="partial") == [
        "call 6: expected get_events, but the run made only 5 calls"
    ]


def test_unordered_needs_the_same_calls_in_any_order() -> None:
    expected = [
        spec("update_profile"),
        spec("create_event"),
        spec("choose_sequence"),
        spec("get_metrics"),
        spec("get_profile"),
    ]
    assert match_trajectory("unordered", expected, RUN, match="partial") == []
    assert match_trajectory("unordered", expected[:-1], RUN, match="partial") == [
        'unexpected call http:get_profile {"id": "p1"}'
    ]


def test_superset_needs_every_expected_call_and_allows_others() -> None:
    assert (
        match_trajectory("superset", [spec("create_event", properties={"sequence": "nurture"})], RUN, match="partial")
        == []
    )
    problems = match_trajectory("superset", [spec("create_event", properties={"sequence": "fast-track"})], RUN)
    assert problems == [
        'expected create_event {"properties": {"sequence": "fast-track"}}: the nearest create_event '
        'call differs: args.properties.sequence: expected "fast-track", got "nurture"'
    ]
    assert match_trajectory("superset", [spec("delete_list")], RUN, match="partial") == [
        "expected delete_list: no delete_list call was made"
    ]


def test_subset_allows_only_expected_calls() -> None:
    allowed = [
        spec(t)
        for t in ("get_profile", "get_metrics", "get_events", "choose_sequence", "create_event", "update_profile")
    ]
    assert match_trajectory("subset", allowed, RUN, match="partial") == [], (
        "an expected call that did not happen is fine"
    )
    assert match_trajectory("subset", allowed, [*RUN, call("delete_list", id="L1")], match="partial") == [
        'unexpected call http:delete_list {"id": "L1"}'
    ]


def test_each_expected_call_matches_a_distinct_actual_call() -> None:
    twice = [spec("get_metrics"), spec("get_metrics")]
    assert match_trajectory("superset", twice, RUN, match="partial") == [
        "expected get_metrics: only 1 matching get_metrics call(s) were made, each matched by another expected call"
    ]


def test_source_and_ignore_narrow_what_is_matched() -> None:
    assert match_trajectory("strict", [spec("choose_sequence")], RUN, source="model", match="partial") == []
    http = [spec("get_profile"), spec("create_event"), spec("update_profile")]
    assert match_trajectory("strict", http, RUN, source="http", ignore=["get_metrics"], match="partial") == []
    model_spec = CallSpec(tool="choose_sequence", source="http")
    assert match_trajectory("superset", [model_spec], RUN, match="partial")[0].startswith(
        "expected http:choose_sequence"
    )


def test_a_call_status_can_be_matched() -> None:
    assert match_trajectory("superset", [CallSpec(tool="get_metrics", status=200)], RUN, match="partial") == []
    assert match_trajectory("superset", [CallSpec(tool="get_metrics", status={"min": 400})], RUN, match="partial") != []


def test_arguments_match_exactly_by_default() -> None:
    """Exact: an argument not written must be absent or null, at every level, and lists hold only what is written."""
    made = [call("create_event", properties={"sequence": "nurture", "touchpoint": 1}, unique_id="u1", page=None)]
    whole = spec("create_event", properties={"sequence": "nurture", "touchpoint": 1}, unique_id="u1")
    assert match_trajectory("strict", [whole], made) == [], "a null argument counts as not given"
    assert match_trajectory(
        "strict", [spec("create_event", properties={"sequence": "nurture"}, unique_id="u1")], made
    ) == ["call 1 (create_event): args.properties.touchpoint: not expected, got 1 (match: partial allows it)"]
    assert match_trajectory("strict", [spec("create_event")], made)[0].startswith(
        "call 1 (create_event): args.properties: not expected"
    ), "a call written without args must have none"
    assert match_trajectory("strict", [spec("create_event")], made, match="partial") == []
    lists = [call("add", ids=["a", "b"])]
    assert match_trajectory("strict", [spec("add", ids=["a"])], lists) == [
        'call 1 (add): args.ids: unexpected item "b"'
    ]
    assert match_trajectory("strict", [spec("add", ids=["b", "a"])], lists) == [], "any order, but all of them"
    one_off = CallSpec(tool="add", args={"ids": ["a"]}, match="partial")
    assert match_trajectory("strict", [one_off], lists) == [], "a call can say partial for itself"


def test_an_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown trajectory mode 'loose'"):
        match_trajectory("loose", [], RUN)  # type: ignore[arg-type]
