"""Input that Python's readers would guess at is refused, by the real command, naming what and where.

JSON a person gives (``--input``, ``--resume``, a JSON-lines source) never keeps the last of a key
given twice, never reads NaN, and never fails with a RecursionError or a digit-limit ValueError: a
whole document is a usage error (exit 2, nothing started); one line of a source is one invalid row,
reported with its number while the other rows are synced (exit 3).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .test_errors import one_line_error, personas

EVENT = {"data": {"type": "event", "id": "01J", "attributes": {"event_properties": {"email": "ann@example.com"}}}}


@pytest.mark.parametrize(("text", "says"), [
    ('{"data": {"type": "event"}, "data": ' + json.dumps(EVENT["data"]) + "}",
     "the key 'data' appears more than once in one object; give each key once"),
    ('{"data": {"type": "event", "id": NaN}}', "NaN is not JSON"),
    ('{"n": ' + "9" * 5000 + "}", "a number has 5,000 digits"),
    ("[" * 100_000 + "]" * 100_000, "nested more than about a thousand levels deep"),
])
def test_a_json_input_file_json_would_guess_at_is_a_usage_error(tmp_path: Path, text: str, says: str) -> None:
    document = tmp_path / "event.json"
    document.write_text(text)
    line = one_line_error(personas(tmp_path, "run", "lead-magnet-sequencer", "--input", str(document), "--sandbox"), 2)
    assert f"{document} is not valid JSON" in line and says in line, line


def test_a_resume_answer_that_names_one_request_twice_is_refused(tmp_path: Path) -> None:
    answer = '{"sha256:aa": "approve", "sha256:aa": "reject"}'
    proc = personas(tmp_path, "run", "segment-syncer", "--thread", "t1", "--resume", answer)
    line = one_line_error(proc, 2)
    assert "--resume is not valid JSON" in line and "'sha256:aa' appears more than once" in line


def test_a_json_lines_row_json_would_guess_at_is_reported_and_the_others_are_synced(tmp_path: Path) -> None:
    source = tmp_path / "members.jsonl"
    source.write_text("\n".join([
        '{"email": "ann@example.com", "consent": "yes"}',
        '{"email": "bob@example.com", "consent": "yes", "consent": "no"}',
        '{"email": "cy@example.com", "n": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"email": "dee@example.com", "n": ' + "9" * 5000 + "}",
        '{"email": "eve@example.com", "score": NaN}',
        '{"email": "fay@example.com"}',
    ]) + "\n")
    payload = json.dumps({"source": {"kind": "jsonl", "path": str(source)}, "target": "VIP Customers"})
    proc = personas(tmp_path, "run", "segment-syncer", "--sandbox", "--json", "--input", payload)
    assert proc.returncode == 3, proc.stderr  # finished in part: rows were skipped
    assert "Traceback" not in proc.stderr
    result = json.loads(proc.stdout)["state"]["result"]
    rows = {r["row"]: r for r in result["invalid"]["rows"]}
    assert sorted(rows) == [2, 3, 4, 5]
    assert "'consent' appears more than once" in rows[2]["problem"]
    assert "nested more than" in rows[3]["problem"]
    assert "5,000 digits" in rows[4]["problem"]
    assert "NaN is not JSON" in rows[5]["problem"]
    assert result["adds"]["planned"] == result["adds"]["applied"] == 2  # ann and fay: nothing else lost
    assert result["subscribes"]["applied"] == 1  # ann said yes; bob's yes-and-no was never taken as either


def _submission(**changes: object) -> dict[str, object]:
    """The example form submission (examples/form_submission.json) with parts replaced: a path written
    with ``__`` (``data__relationships__profile``) set to a value, or deleted when the value is ``...``."""
    document = json.loads((Path(__file__).resolve().parents[2] / "examples" / "form_submission.json").read_text())
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = document
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is ...:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return document


NO_PROFILE = {"data__relationships__profile": ..., "included": []}


@pytest.mark.parametrize(("changes", "says"), [
    ({"data__relationships__profile__data__id": 12345}, "profile.data.id: must be text, not a number"),
    ({"data__relationships__profile__data__id": ["x"]}, "data.relationships.profile.data.id: must be text, not a list"),
    ({"data__relationships__profile__data": "01KDV"}, "data.relationships.profile.data: must be an object, not text"),
    ({"data__relationships__profile__data__type": "list"}, "data.relationships.profile.data.type: is 'list', not"),
    ({"data__id": 7}, "data.id: must be text, not a number"),
    ({"included__0__attributes": "x"}, "included[0].attributes: must be an object, not text"),
    ({"data__attributes__datetime": "yesterday at noon"}, "data.attributes.datetime: 'yesterday at noon' is not an"),
    ({"data__attributes__event_properties__form_name": 123}, "event_properties.form_name: must be text, not a number"),
    ({"data__attributes__event_properties__note": "x" * 1_000_000},
     "data.attributes.event_properties: at note: a string of 1,000,000 bytes; at most 102,400"),
    ({**NO_PROFILE, "data__attributes__event_properties__email": "ann smith@example.com"},
     "event_properties.email: 'ann smith@example.com' is not a valid email address"),
    ({**NO_PROFILE, "data__attributes__event_properties__email": "a" * 300 + "@example.com"},
     "event_properties.email: the email address is too long"),
    ({**NO_PROFILE, "data__attributes__event_properties__email": ["ann@example.com"]},
     "event_properties.email: must be text, not a list"),
])
def test_a_submission_no_klaviyo_event_could_be_names_the_field_and_sends_nothing(
        tmp_path: Path, changes: dict[str, object], says: str) -> None:
    document = tmp_path / "event.json"
    document.write_text(json.dumps(_submission(**changes)))
    proc = personas(tmp_path, "run", "lead-magnet-sequencer", "--input", str(document), "--sandbox", "--json")
    line = one_line_error(proc, 2)
    assert "Invalid arguments for lead-magnet input: " in line and says in line, line
    assert proc.stdout == ""  # no result: the run stopped at its first step, before any call


def _sync(home: Path, name: str, text: str) -> tuple[object, ...]:
    """``personas run segment-syncer`` of a source file written with ``text`` into the sandbox's VIP list:
    (the process, its result or None)."""
    source = home / name
    source.write_text(text)
    kind = "jsonl" if name.endswith(".jsonl") else "csv"
    payload = json.dumps({"source": {"kind": kind, "path": str(source)}, "target": "VIP Customers"})
    proc = personas(home, "run", "segment-syncer", "--sandbox", "--json", "--input", payload)
    result = json.loads(proc.stdout)["state"]["result"] if proc.stdout.strip() else None
    return proc, result


@pytest.mark.parametrize(("header", "says"), [
    ("email,first_name,email,consent", "has the column 'email' twice (columns 1 and 3)"),
    ("Email,E-mail,consent", "has 2 columns for email (email, e_mail)"),
    ("email,Phone,Mobile", "has 2 columns for phone_number (phone, mobile)"),
    ("email,consent,Consent", "has the column 'consent' twice"),
])
def test_a_header_with_two_columns_for_one_field_is_refused_before_anything_is_sent(
        tmp_path: Path, header: str, says: str) -> None:
    width = header.count(",") + 1
    proc, result = _sync(tmp_path, "members.csv", f"{header}\n" + ",".join(["ann@example.com"] * width) + "\n")
    line = one_line_error(proc, 2)  # type: ignore[arg-type]
    assert "source.path: " in line and says in line and "keep one" in line, line
    assert result is None


def test_rows_whose_values_would_be_guessed_at_are_reported_and_the_others_synced(tmp_path: Path) -> None:
    rows = ["ann@example.com,Ann,yes", "bob@example.com,Bob,maybe", "cy@example.com,Cy,Yes please",
            "dee@example.com,Dee,no", "eve@example.com,Eve,", "fay@example.com,F\x00ay,yes", "gus@example.com,Gus,TRUE"]
    proc, result = _sync(tmp_path, "members.csv", "email,first_name,consent\n" + "\n".join(rows) + "\n")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr  # type: ignore[attr-defined]
    assert isinstance(result, dict)
    invalid = {r["row"]: r for r in result["invalid"]["rows"]}
    assert sorted(invalid) == [3, 4, 7]
    assert invalid[3]["field"] == "consent" and "'maybe' is neither a value meaning consent" in invalid[3]["problem"]
    assert "'Yes please' is neither" in invalid[4]["problem"]  # quoted as written (a secret lower-cased hides)
    assert invalid[7]["field"] == "first_name" and "U+0000 NUL" in invalid[7]["problem"]
    assert result["invalid"]["refused_by_klaviyo"] == 0  # found before sending: no batch carried it
    assert result["adds"]["applied"] == 4  # ann, dee, eve, gus
    assert result["subscribes"]["applied"] == 2  # ann and gus: a consent value nobody can read is never a yes


def test_json_lines_rows_with_two_keys_for_one_field_or_values_that_are_not_text_are_reported(tmp_path: Path) -> None:
    lines = ['{"email": "ann@example.com", "consent": "yes"}',
             '{"email": "bob@example.com", "Email": "bo@example.com"}',
             '{"email": ["cy@example.com"]}',
             '{"email": "dee@example.com", "first_name": {"given": "Dee"}}',
             '{"email": "eve@example.com", "consent": ["yes"]}']
    proc, result = _sync(tmp_path, "members.jsonl", "\n".join(lines) + "\n")
    assert proc.returncode == 3, proc.stderr  # type: ignore[attr-defined]
    assert isinstance(result, dict)
    invalid = {r["row"]: r for r in result["invalid"]["rows"]}
    assert sorted(invalid) == [2, 3, 4, 5]
    assert "has the key 'email' twice" in invalid[2]["problem"] and "'Email'" in invalid[2]["problem"]
    assert invalid[3]["field"] == "email" and "is a list, not text" in invalid[3]["problem"]
    assert invalid[4]["field"] == "first_name" and "is an object, not text" in invalid[4]["problem"]
    assert invalid[5]["field"] == "consent"
    assert result["adds"]["applied"] == 1 and result["subscribes"]["applied"] == 1


def test_a_persona_file_that_is_not_utf8_is_named_and_hides_no_other(tmp_path: Path) -> None:
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "mine.yaml").write_bytes(b"name: mine\ndescription: caf\xe9\n")  # Latin-1
    proc = personas(tmp_path, "list", "--json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert {p["name"] for p in json.loads(proc.stdout)} >= {"lead-magnet-sequencer", "segment-syncer"}
    assert f"{tmp_path / 'personas' / 'mine.yaml'}:2: is not UTF-8 text (byte 27); save it as UTF-8" in proc.stderr
    line = one_line_error(personas(tmp_path, "run", "mine", "--input", "{}"), 2)
    assert "mine.yaml:2: is not UTF-8 text" in line


@pytest.mark.parametrize(("case", "says"), [
    (b"id: one\ndescription: caf\xe9\n", "cases/one.yaml:2: is not UTF-8 text (byte 24); save it as UTF-8"),
    (b"id: one\ndescription: a\ninput: {mode: add-only}\ninput: {mode: mirror}\n",
     "cases/one.yaml:4: not valid YAML: duplicate key 'input' (first at line 3)"),
])
def test_an_eval_case_file_read_by_guessing_is_refused_naming_its_line(tmp_path: Path, case: bytes, says: str) -> None:
    suite = tmp_path / "mine"
    (suite / "cases").mkdir(parents=True)
    (suite / "suite.yaml").write_text("persona: segment-syncer\ndescription: mine\nthreshold: 1.0\n")
    (suite / "cases" / "one.yaml").write_bytes(case)
    line = one_line_error(personas(tmp_path, "eval", str(suite)), 2)
    assert says in line, line


def test_the_sync_report_says_how_many_rows_it_did_not_show_and_where_they_are(tmp_path: Path) -> None:
    source = tmp_path / "members.csv"
    source.write_text("email,consent\n" + "".join(f"bad{n},yes\n" for n in range(15)) + "ok@example.com,yes\n")
    payload = json.dumps({"source": {"kind": "csv", "path": str(source)}, "target": "VIP Customers"})
    proc = personas(tmp_path, "run", "segment-syncer", "--sandbox", "--input", payload)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.count("  invalid row ") == 10
    more = r"and 5 more invalid rows, every one in the table invalid of \S+\.sqlite"
    assert re.search(more, proc.stdout), proc.stdout
    assert "adds             1 in 1 batch(es): ok@example.com\n" in proc.stdout, "all shown: no '...'"


@pytest.mark.parametrize(("date", "says"), [
    ("2026-13-45", "date: '2026-13-45' is not a date; write it as YYYY-MM-DD, e.g. "),
    ("08/03/2026", "date: '08/03/2026' is not a date; write it as YYYY-MM-DD, e.g. "),
    ("{0}", "date: '{0}' is not a date"),
    ("2001-01-01", "date: 2001-01-01 is before 2012-01-01"),
])
def test_a_report_date_that_is_no_day_is_refused_before_a_thread_is_made(tmp_path: Path, date: str, says: str) -> None:
    """As the sequencer's and the syncer's inputs are: a typo in the date makes no thread and no failed
    run to list (it used to start one, which its first step then refused)."""
    state = tmp_path / "sandbox.sqlite"
    proc = personas(tmp_path, "run", "campaign-reporter", "--input", json.dumps({"date": date}),
                    "--sandbox-state", str(state), "--thread", "typo")
    line = one_line_error(proc, 2)
    assert line.startswith("error: --input: ") and says in line, line
    assert "thread" not in proc.stdout + proc.stderr.replace(line, "")
    listed = personas(tmp_path, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "typo" not in listed.stdout
