"""``personas run`` as scripts use it: ``--retry`` of a finished thread is success, and a lead
Klaviyo has no profile for is a failure, not a quiet "done"."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import PERSONAS, child_env
from .make_form_submission import capture


def personas(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PERSONAS), *args], env=child_env(home, **env), cwd=home, capture_output=True,
                          text=True, timeout=180)


@pytest.fixture(scope="module")
def submission(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded Trail Guide submission of the seed-42 sandbox, as a file."""
    path = tmp_path_factory.mktemp("input") / "submission.json"
    path.write_text(json.dumps(capture()), encoding="utf-8")
    return path


def test_retry_of_a_finished_thread_succeeds_and_says_so(tmp_path: Path, submission: Path) -> None:
    """A script that retries until the command succeeds must stop once the run finished (as
    --resume of a finished thread does): exit 0, nothing run again."""
    state = tmp_path / "sandbox.sqlite"
    common = ["--sandbox-state", str(state), "--thread", "finished-once"]
    first = personas(tmp_path, "run", "lead-magnet-sequencer", "--input", str(submission), *common)
    assert first.returncode == 0 and "Outcome: sent" in first.stdout, first.stdout + first.stderr
    for _ in range(2):
        again = personas(tmp_path, "run", "lead-magnet-sequencer", "--retry", *common)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "thread 'finished-once' has nothing left to run; it finished" in again.stderr
        assert "Traceback" not in again.stderr and "error" not in again.stderr


def test_a_lead_klaviyo_has_no_profile_for_fails_the_command(tmp_path: Path) -> None:
    ghost = {"data": {"type": "event", "id": "EVTGHOST01", "attributes": {
        "datetime": "2026-03-10T14:59:00+00:00",
        "event_properties": {"email": "ghost.lead@example.com", "form_id": "TRAILG", "form_name": "Trail Guide"}}}}
    proc = personas(tmp_path, "run", "lead-magnet-sequencer", "--input", json.dumps(ghost), "--sandbox")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: no Klaviyo profile has the email ghost.lead@example.com")
