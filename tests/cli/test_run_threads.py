"""``personas run`` as scripts use it: a lead Klaviyo has no profile for is a failure, not a quiet "done"."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .conftest import PERSONAS, child_env


def personas(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PERSONAS), *args], env=child_env(home, **env), cwd=home, capture_output=True,
                          text=True, timeout=180)


def test_a_lead_klaviyo_has_no_profile_for_fails_the_command(tmp_path: Path) -> None:
    ghost = {"data": {"type": "event", "id": "EVTGHOST01", "attributes": {
        "datetime": "2026-03-10T14:59:00+00:00",
        "event_properties": {"email": "ghost.lead@example.com", "form_id": "TRAILG", "form_name": "Trail Guide"}}}}
    proc = personas(tmp_path, "run", "lead-magnet-sequencer", "--input", json.dumps(ghost), "--sandbox")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: no Klaviyo profile has the email ghost.lead@example.com")
