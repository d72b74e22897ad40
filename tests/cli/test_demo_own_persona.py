"""``personas demo`` after the user replaced a shipped persona with their own file, as the README allows.

The demo's answers authored by hand were written to the shipped personas' requests. Replayed to the
user's sequencer they matched none: every lead said "the model call failed (CassetteError ...)",
and the demo ended with exit 1 telling the user to re-author the project's cassettes. Now the policy
decides for the replaced persona and the demo says why; the shipped reporter keeps its answers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.warm_cli import run_personas

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "personas" / "definitions" / "lead-magnet-sequencer.yaml"


def test_the_demo_runs_with_the_users_own_sequencer_and_says_who_decided(tmp_path: Path) -> None:
    mine = tmp_path / "state" / "personas" / "lead-magnet-sequencer.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text(SHIPPED.read_text(encoding="utf-8").replace("{name: hot, min_score: 60",
                                                                "{name: hot, min_score: 80"), encoding="utf-8")
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(HOME=str(tmp_path), PERSONAS_HOME=str(tmp_path / "state"), PYTHONPATH=str(ROOT), COLUMNS="400",
               NO_COLOR="1", PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    done = run_personas([sys.executable, "-m", "personas.cli", "demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    out = " ".join((done.stdout + done.stderr).split())  # lines as wrapped at 400 columns, a long tmp path in them
    assert done.returncode == 0, out
    assert "CassetteError" not in out and "re-author" not in out and "Traceback" not in out
    assert f"{mine} replaces the shipped lead-magnet-sequencer" in out
    assert "Lead score 77 → band warm" in out, "the user's bands are the ones used"
    assert out.count("(decided by policy)") == 3
    assert "summaries: no model answered; answers authored by hand" in out, "the shipped reporter replays"
