"""Input that Python's readers would guess at is refused, by the real command, naming what and where.

JSON a person gives (``--input``, ``--resume``, a JSON-lines source) never keeps the last of a key
given twice, never reads NaN, and never fails with a RecursionError or a digit-limit ValueError: a
whole document is a usage error (exit 2, nothing started); one line of a source is one invalid row,
reported with its number while the other rows are synced (exit 3).
"""

from __future__ import annotations

import json
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

