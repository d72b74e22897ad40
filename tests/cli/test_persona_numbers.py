"""A persona file's numbers are finite and in range, or the persona does not load (exit 2, the line).

YAML reads ``.nan``, ``.inf`` and an overflowing ``1.0e+999`` as floats. A threshold of NaN compares
false with everything, so the rule it sets silently never fires (a churn-risk penalty never given);
a temperature of NaN or 7 fails only at the model, in the middle of a run. The real command refuses
each with the file, its line and the fix, and ``personas list`` names the file it skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_errors import one_line_error, personas

SHIPPED = Path(__file__).resolve().parents[2] / "personas" / "definitions" / "lead-magnet-sequencer.yaml"


def write_persona(home: Path, old: str, new: str) -> Path:
    """The shipped lead-magnet sequencer as the user's persona ``mine``, with ``old`` replaced by ``new``."""
    text = SHIPPED.read_text(encoding="utf-8").replace("name: lead-magnet-sequencer", "name: mine", 1)
    assert old in text
    path = home / "personas" / "mine.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "says"), [
    ("temperature: 0\n", "temperature: .nan\n", "'.nan' is not a finite number"),
    ("temperature: 0\n", "temperature: 1.0e+999\n", "'1.0e+999' is not a finite number"),
    ("temperature: 0\n", "temperature: 7\n", "temperature: Input should be less than or equal to 2"),
    ("temperature: 0\n", "temperature: -0.5\n", "temperature: Input should be greater than or equal to 0"),
    ("    properties:\n", "    predictive: {churn_risk_threshold: .NaN}\n    properties:\n",
     "'.NaN' is not a finite number"),
    ("    properties:\n", "    predictive: {high_clv_threshold: -.inf}\n    properties:\n",
     "'-.inf' is not a finite number"),
])
def test_a_persona_number_that_is_not_finite_or_in_range_is_refused_with_its_line(
        tmp_path: Path, old: str, new: str, says: str) -> None:
    path = write_persona(tmp_path, old, new)
    line_no = 1 + path.read_text(encoding="utf-8").split(new.strip(), 1)[0].count("\n")
    line = one_line_error(personas(tmp_path, "run", "mine", "--sandbox", "--input", "{}"), 2)
    assert line.startswith(f"error: {path}:{line_no}: ") and says in line, line
    listed = personas(tmp_path, "list")
    assert listed.returncode == 1 and "Traceback" not in listed.stderr
    assert f"{path}:{line_no}: " in listed.stderr and "lead-magnet-sequencer" in listed.stdout


def test_a_finite_temperature_in_range_still_loads(tmp_path: Path) -> None:
    write_persona(tmp_path, "temperature: 0\n", "temperature: 0.7\n")
    listed = personas(tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    assert "mine" in listed.stdout
