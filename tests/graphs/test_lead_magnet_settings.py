"""A persona whose score bands or scoring tables could not work as written is refused when it loads
(``personas list``, a run), naming the field and the fix: two bands at one min_score, a band no score
reaches, a sequence or band named twice, one answer given twice in a scoring table, two ranges of
one table that overlap, a range written high to low, a negative engagement cap. Bands in any order
still band as written."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from personas.runtime.loader import PersonaConfigError, load_persona
from tests.warm_cli import run_personas

SHIPPED = Path("personas/definitions/lead-magnet-sequencer.yaml").read_text(encoding="utf-8")
HOT, WARM, COLD = ("{name: hot, min_score: 60", "{name: warm, min_score: 30", "{name: cold, min_score: -100")


def mine(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """The shipped persona as ``my-leads``, with ``edits`` (old, new) made, in a file of the user's."""
    text = SHIPPED.replace("name: lead-magnet-sequencer", "name: my-leads")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "personas" / "my-leads.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def line(path: Path, text: str) -> int:
    """The line of the last row of ``path`` holding ``text``."""
    return [n for n, row in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text in row][-1]


@pytest.mark.parametrize(("edit", "field", "at", "problem"), [
    ((WARM, "{name: warm, min_score: 60"), "settings.bands[1].min_score", "name: warm",
     "60 is also the min_score of bands[0] ('hot'), so band 'warm' could never be given (a score of 60 or more "
     "is 'hot'); give each band its own min_score"),
    ((HOT, "{name: hot, min_score: 600"), "settings.bands[0].min_score", "name: hot",
     "band 'hot' could never be given: no lead can score 600, the most the scoring settings give is 135; lower "
     "its min_score or give more points in scoring"),
    ((COLD, "{name: warm, min_score: -100"), "settings.bands[2].name", "min_score: -100",
     "'warm' is already the name of bands[1]; give each band its own name"),
    (("- name: education", "- name: nurture"), "settings.sequences[2].name", "- name: nurture",
     "'nurture' is already the name of sequences[1]; give each sequence its own name"),
    (("sequences: [education]}", "sequences: [edu]}"), "settings.bands[2].sequences[0]", "sequences: [edu]",
     "band 'cold' names unknown sequence(s) ['edu']"),
    (('"Guide": 5,', '"Guide": 5, " guide": -5,'), "settings.scoring.answers.role. guide", '" guide"',
     "' guide' is 'Guide' spelt another way"),
    (("cap: 25}", "cap: -5}"), "settings.scoring.engagement.cap", "cap: -5",
     "greater than or equal to 0"),
    # ranges that share more than an end: a number in both scored as the larger, unseen ($1k-$5k and
    # $5k-$25k only touch, as the shipped table writes them, and stay accepted)
    (('"1-10": 0}', '"1-10": 0, "150-500": 12}'), "settings.scoring.answers.company_size.150-500", '"150-500"',
     "the range '150-500' overlaps the range '201-1000'"),
    (('"<$1k": 0}', '"<$1k": 0, "<=$2k": 1}'), "settings.scoring.answers.budget.<=$2k", '"<=$2k"',
     "the range '<=$2k' overlaps the range '$1k-$5k' (a number in both would score as whichever gives more)"),
    # a range written high to low holds no number, so its points never count (and its ends, swapped, are the fix)
    (('"1-10": 0}', '"1-10": 0, "1000-500": 12}'), "settings.scoring.answers.company_size.1000-500", '"1000-500"',
     "the range '1000-500' runs from high to low, so no number lies in it and its points never count; write it "
     "low to high: '500-1000'"),
    (('"<$1k": 0}', '"<$1k": 0, "$50k to $30k": 2}'), "settings.scoring.answers.budget.$50k to $30k", '"$50k to $30k"',
     "write it low to high: '$30k to $50k'"),
])
def test_a_band_or_table_that_could_not_work_is_refused_naming_the_field(
    tmp_path: Path, edit: tuple[str, str], field: str, at: str, problem: str
) -> None:
    path = mine(tmp_path, edit)
    with pytest.raises(PersonaConfigError) as err:
        load_persona(str(path))
    assert err.value.field == field, str(err.value)
    assert problem in err.value.problem, err.value.problem
    assert err.value.line == line(path, at), "the line of the field"


def test_personas_list_names_the_field_and_the_fix(tmp_path: Path) -> None:
    path = mine(tmp_path, (WARM, "{name: warm, min_score: 60"))
    env = {**os.environ, "PERSONAS_HOME": str(tmp_path), "HOME": str(tmp_path / "home"), "PYTHONPATH": os.getcwd()}
    done = run_personas([sys.executable, "-m", "personas.cli", "list"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert f"{path}:{line(path, 'name: warm')}: settings.bands[1].min_score: 60 is also the min_score" in done.stderr
    assert "my-leads" not in done.stdout, "listed as a persona all the same"


def test_the_lowest_band_below_another_that_already_takes_the_lowest_score_is_refused(tmp_path: Path) -> None:
    """The lowest score these tables give is -40 (5 base, -15 of answers, -10 churn risk, -20 no email):
    a warm band from -200 takes every score under 30, so cold (from -300) is never given."""
    path = mine(tmp_path, (WARM, "{name: warm, min_score: -200"), (COLD, "{name: cold, min_score: -300"))
    with pytest.raises(PersonaConfigError) as err:
        load_persona(str(path))
    assert err.value.field == "settings.bands[2].min_score"
    assert "the lowest score the scoring settings give is -40, already band 'warm'" in err.value.problem


def test_bands_in_any_order_band_as_written(tmp_path: Path) -> None:
    from graphs.lead_magnet.settings import Settings

    path = mine(tmp_path, (HOT, "{name: hotter, min_score: 45"), (COLD, "{name: cold, min_score: 0"))
    text = path.read_text(encoding="utf-8").splitlines()
    bands = [n for n, row in enumerate(text) if row.lstrip().startswith("- {name: ")]
    text[bands[0]], text[bands[2]] = text[bands[2]], text[bands[0]]  # cold, warm, hotter
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    settings = Settings.model_validate(load_persona(str(path)).settings)
    assert [settings.band_for(s).name for s in (-500, 0, 29, 30, 44, 45, 135)] == (
        ["cold", "cold", "cold", "warm", "warm", "hotter", "hotter"])
