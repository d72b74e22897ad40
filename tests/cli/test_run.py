"""``personas run``: progress bars in a terminal (never with ``--json``), and the README's example input.

Long work shows progress: in a real pseudo-terminal, a segment sync of 3,000 rows against the
embedded sandbox draws a bar per phase that reports counts and a spinner per node; the campaign
reporter reports its phases too. With ``--json`` the output is JSON and nothing else.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from klaviyo_sandbox import Sandbox
from tests.warm_cli import run_personas

from .conftest import PERSONAS, ROOT, Terminal, child_env, plain
from .make_form_submission import EXAMPLE, LEAD, capture

TARGET_LIST = "RLfaTs"  # "Webinar Attendees" in the seed-42 sandbox: 250 members
ROWS = 3000
SPINNER = re.compile("[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]")
BAR = "━"


@pytest.fixture(scope="module")
def sync_input(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CSV of the list's 250 members plus 2,750 new people (so nothing is removed and no approval waits)."""
    members = [p["email"] for p in Sandbox(seed=42).client().iterate("get_profiles_for_list", id=TARGET_LIST)]
    path = tmp_path_factory.mktemp("sync") / "people.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "first_name"])
        writer.writerows([email, "Member"] for email in members)
        writer.writerows([f"new{i:05d}@example.com", "New"] for i in range(ROWS - len(members)))
    return json.dumps({"source": {"kind": "csv", "path": str(path)}, "target_list_id": TARGET_LIST})


def run_in_terminal(terminals: list[Terminal], home: Path, *args: str) -> tuple[int, str, str]:
    """``personas run ARGS`` in a pty with a colour terminal; returns exit code, raw output, plain output."""
    term = Terminal(["run", *args], child_env(home, TERM="xterm-256color"), timeout=180)
    terminals.append(term)
    code = term.wait(timeout=180)
    raw = term.log.getvalue()
    return code, raw, plain(raw)


def test_a_large_segment_sync_shows_progress_bars(terminals: list[Terminal], tmp_path: Path, sync_input: str) -> None:
    code, raw, out = run_in_terminal(terminals, tmp_path, "segment-syncer", "--input", sync_input, "--sandbox")
    assert code == 0, out
    assert SPINNER.search(raw) and BAR in raw  # drawn live, as it went
    final = out.rsplit("✓ prepare", 1)[1]  # the last frame: every phase ticked, with its count
    for phase, count in (("read_target", "250 profiles"), ("read_source", "3,000 rows"), ("plan", "3/3 batches"),
                         ("apply", "3/3 batches"), ("verify", "3/3 jobs")):
        assert re.search(rf"✓ {phase} +{BAR}+ {re.escape(count)}", final), (phase, final)
    assert re.search(rf"✓ (diff|report) +{BAR}+", final)  # nodes without counts get a line too
    assert "Sync done: added 2750 profiles to list RLfaTs" in out


def test_with_json_there_is_no_progress_noise(terminals: list[Terminal], tmp_path: Path, sync_input: str) -> None:
    code, raw, out = run_in_terminal(terminals, tmp_path, "segment-syncer", "--input", sync_input, "--sandbox",
                                     "--json")
    assert code == 0, out
    assert not SPINNER.search(raw) and BAR not in raw and "\x1b[" not in raw
    result = json.loads(out)
    assert result["paused"] is False
    assert result["state"]["result"]["adds"]["applied"] == ROWS - 250


def test_the_campaign_reporter_reports_its_phases(terminals: list[Terminal], tmp_path: Path) -> None:
    code, _, out = run_in_terminal(terminals, tmp_path, "campaign-reporter", "--input", "{}", "--sandbox")
    assert code == 0, out
    final = out.rsplit("✓ prepare", 1)[1]
    for phase, count in (("fetch_reports", "1/1 metrics"), ("load_campaigns", "2/2 campaigns"),
                         ("write_files", "3/3 files")):
        assert re.search(rf"✓ {phase} +{BAR}+ {re.escape(count)}", final), (phase, final)
    assert re.search(rf"✓ (analyse|summarize) +{BAR}+", final)


# -- the README's input for the sequencer --------------------------------------------------------
def _example_is_current() -> bool:
    """Seeded ids carry the day the sandbox was seeded: is the example's profile in today's sandbox?"""
    example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    return bool(example["data"]["relationships"]["profile"]["data"]["id"]
                == capture()["data"]["relationships"]["profile"]["data"]["id"])


def test_the_example_is_a_seeded_submission_in_the_readme_format() -> None:
    from graphs.lead_magnet.inputs import parse_submission

    example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    submission = parse_submission(example)
    fresh = parse_submission(capture())
    assert submission.email == LEAD and submission.metric == "Form submitted by profile"
    assert submission.form_name == "Trail Guide" and submission.answers == fresh.answers
    assert "personas run lead-magnet-sequencer --input examples/form_submission.json --sandbox" in (
        ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture
def submission_file(tmp_path: Path) -> Path:
    """``examples/form_submission.json`` if its ids are today's, else the same submission captured now."""
    if _example_is_current():
        return EXAMPLE
    path = tmp_path / "form_submission.json"
    path.write_text(json.dumps(capture()), encoding="utf-8")
    return path


def test_the_sequencer_runs_on_a_form_submission_file(tmp_path: Path, submission_file: Path) -> None:
    proc = run_personas([str(PERSONAS), "run", "lead-magnet-sequencer", "--input", str(submission_file),
                           "--sandbox"], env=child_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"Lead: {LEAD} (form Trail Guide)" in out
    assert "Score: 70 (hot)" in out and re.search(r"\+20 +answer timeline = this month", out)
    assert "Sequence: fast-track (decided by policy)" in out and "  why: no model configured" in out
    assert re.search(r"First touchpoint: \d{4}-\d\d-\d\dT\d\d:\d\d[+-]\d\d:\d\d America/Denver = ", out)
    assert "Outcome: sent: sequence 'fast-track'" in out
    assert "model: no model configured" in out  # it says who decided

    proc = run_personas([str(PERSONAS), "run", "lead-magnet-sequencer", "--input", str(submission_file),
                           "--sandbox", "--json"], env=child_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout)["state"]
    assert state["score"]["total"] == 70 and state["decision"]["sequence"] == "fast-track"
    assert state["schedule"]["timezone"] == "America/Denver" and state["send"]["status"] == "sent"
    assert state["outcome"].startswith("sent: sequence 'fast-track'")


def test_the_example_file_itself_runs_against_todays_sandbox(tmp_path: Path) -> None:
    # Seeded ids are written on a fixed calendar, so the example's profile id exists whatever the day.
    assert _example_is_current(), "re-capture examples/form_submission.json with tests/cli/make_form_submission.py"
    proc = run_personas([str(PERSONAS), "run", "lead-magnet-sequencer", "--input", str(EXAMPLE), "--sandbox"],
                          env=child_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Outcome: sent" in proc.stdout
