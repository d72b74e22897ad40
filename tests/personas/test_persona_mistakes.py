"""A newcomer's first persona file, with the mistakes people make: each is named, with its file and fix.

A persona is known by its ``name:``, whatever its file is called, so a broken file is found by that
name too (it was "no such persona", with another persona offered in its place). A file far bigger
than a persona is refused before it is parsed: every command scans every file, and a stray 4 MB one
made ``personas list`` take 40 s and 1 GB.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from personas.runtime.loader import MAX_YAML_BYTES, PersonaConfigError, load_persona, scan_personas
from tests.warm_cli import run_personas

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
name: zz-daily
description: My daily report.
graph: campaign_report
prompt: campaign_reporter.v1.md
scopes: [accounts:read, campaigns:read, metrics:read]
tools:
  include: [get_accounts, get_metrics, get_campaigns, query_campaign_values]
"""

#: (what is wrong, the file's text, what the error must say)
BROKEN = [
    ("a missing field", GOOD.replace("description: My daily report.\n", ""), "description: is required"),
    ("a tab in the indentation", GOOD.replace("  include:", "\tinclude:"), "not valid YAML: .* replace the tab"),
    ("an unknown key", GOOD + "colour: blue\n", "colour: unknown key"),
    ("a quoted name and CRLF lines", GOOD.replace("name: zz-daily", 'name: "zz-daily"').replace("\n", "\r\n")
     + "colour: blue\r\n", "colour: unknown key"),
]


def _home(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    folder = tmp_path / "home" / "personas"
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return tmp_path / "home"


def _personas(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``personas`` command of this checkout, in a fresh HOME with no keys."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(HOME=str(home), PERSONAS_HOME=str(home), PYTHONPATH=str(ROOT), COLUMNS="200", NO_COLOR="1",
               PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    return run_personas([sys.executable, "-m", "personas.cli", *args], cwd=home, env=env, capture_output=True,
                          text=True, timeout=180)


@pytest.mark.parametrize(("what", "text", "says"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_file_is_found_by_the_name_it_gives(tmp_path: Path, what: str, text: str, says: str) -> None:
    home = _home(tmp_path, {"my-report.yaml": text})
    with pytest.raises(PersonaConfigError, match=says) as refused:
        load_persona("zz-daily", home=home)
    assert refused.value.path.endswith("my-report.yaml") and refused.value.persona == "zz-daily"


def test_personas_run_shows_the_broken_files_error_not_another_persona(tmp_path: Path) -> None:
    home = _home(tmp_path, {"my-report.yaml": BROKEN[0][1]})
    done = _personas(home, "run", "zz-daily", "--input", "{}", "--sandbox")
    assert done.returncode == 2, done.stderr
    assert "my-report.yaml:1: description: is required" in done.stderr
    assert "no persona" not in done.stderr and "did you mean" not in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_file_over_the_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    """Valid YAML padded with comments: it loaded (after seconds of parsing); now it is refused, by name."""
    padding = "".join(f"# note {i:07d} {'.' * 60}\n" for i in range(MAX_YAML_BYTES // 70 + 10))
    home = _home(tmp_path, {"my-report.yaml": GOOD + padding, "fine.yaml": GOOD.replace("zz-daily", "zz-fine")})
    found = scan_personas(home)
    assert "zz-fine" in found.personas and "zz-daily" not in found.personas
    [error] = found.errors
    assert error.persona == "zz-daily" and f"over {MAX_YAML_BYTES // 1024} KiB" in str(error)
    done = _personas(home, "list")
    assert done.returncode == 1 and "my-report.yaml: is over 256 KiB" in done.stderr
    assert "zz-fine" in done.stdout, "the other personas are still listed"


def test_a_file_at_the_limit_with_a_bom_still_loads(tmp_path: Path) -> None:
    padding = "# x\n" * ((MAX_YAML_BYTES - len(GOOD) - 3) // 4)
    home = _home(tmp_path, {"zz-daily.yaml": b"\xef\xbb\xbf" + (GOOD + padding).encode()})
    assert load_persona("zz-daily", home=home).description == "My daily report."


#: (what is wrong, the file's text, the message: file line, field, and what to write instead)
WRONG_TYPES = [
    ("tools as a list", GOOD.replace("tools:\n  include: [", "tools: [").replace("values]", "values]"),
     ":6: tools: must be a mapping (indented `key: value` lines under it), not a list"),
    ("scopes as one string", GOOD.replace("scopes: [accounts:read, campaigns:read, metrics:read]",
                                          "scopes: accounts:read"),
     ":5: scopes: must be a list (indented `- item` lines under it, or [a, b]), not 'accounts:read'"),
    ("an empty description", GOOD.replace("description: My daily report.", "description:"),
     ":2: description: must be text, not nothing; give a value after the colon"),
    ("yes for text", GOOD.replace("description: My daily report.", "description: yes"),
     ':2: description: must be text, not True; YAML reads an unquoted yes, no, on, off, true or false as true or '
     'false: quote it ("Yes", not Yes)'),
    ("a number for text", GOOD.replace("description: My daily report.", "description: 2026"),
     ':2: description: must be text, not 2026; YAML reads it as a number: quote it ("2026", not 2026)'),
    ("a word for a number", GOOD + "temperature: low\n", ":8: temperature: must be a number (e.g. 0.05), not 'low'"),
    ("a setting's number as a word", GOOD + "settings:\n  thresholds:\n    max_bounce_rate: high\n",
     ":10: settings.thresholds.max_bounce_rate: must be a number (e.g. 0.05), not 'high'"),
    ("approval as a word", GOOD + "approval: effects\n",
     ":8: approval: must be a mapping (indented `key: value` lines under it), not 'effects'"),
    ("a missing prompt", GOOD.replace("prompt: campaign_reporter.v1.md\n", ""),
     ":1: prompt: is required; add it, e.g. `prompt: a file of prompts/, e.g. klaviyo_assistant.v1.md`"),
]


@pytest.mark.parametrize(("what", "text", "says"), WRONG_TYPES, ids=[w[0] for w in WRONG_TYPES])
def test_a_value_of_the_wrong_kind_says_what_to_write(tmp_path: Path, what: str, text: str, says: str) -> None:
    """Pydantic's own words named its classes ("a valid dictionary or instance of ToolSelection")."""
    home = _home(tmp_path, {"zz-daily.yaml": text})
    with pytest.raises(PersonaConfigError) as refused:
        load_persona("zz-daily", home=home)
    assert str(refused.value).endswith(f"zz-daily.yaml{says}"), str(refused.value)
    assert "Input should be" not in str(refused.value) and "instance of" not in str(refused.value)


@pytest.mark.parametrize(("folder", "says"), [
    ("~zz-no-such-user/reports", "settings.output_dir: '~zz-no-such-user/reports' starts with ~zz-no-such-user, "
                                 "but this machine has no user 'zz-no-such-user'"),
    ('"/tmp/reports\\0x"', "settings.output_dir: a folder path cannot contain a NUL character"),
])
def test_an_output_folder_the_run_cannot_name_is_refused_naming_the_setting(tmp_path: Path, folder: str,
                                                                            says: str) -> None:
    """It failed only once the run had started: "RuntimeError: Could not determine home directory."
    (a ``~user`` this machine lacks) or a ValueError traceback (a NUL in the path), naming no setting."""
    home = _home(tmp_path, {"zz-daily.yaml": GOOD + f"settings:\n  output_dir: {folder}\n"})
    done = _personas(home, "run", "zz-daily", "--sandbox", "--input", '{"date": "2026-03-08"}')
    assert done.returncode == 2 and f"zz-daily.yaml:9: {says}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "RuntimeError" not in done.stderr


@pytest.mark.parametrize(("key", "says"), [
    ("Yes", 'has a key YAML read as True, not text; YAML reads an unquoted yes, no, on, off, true or false as '
            'true or false: quote it ("Yes", not Yes)'),
    ("off", 'has a key YAML read as False, not text; YAML reads an unquoted yes, no'),
    ("10", 'has a key YAML read as 10, not text; YAML reads it as a number: quote it ("10", not 10)'),
])
def test_a_table_key_yaml_reads_as_true_or_a_number_names_its_table_and_says_to_quote_it(
        tmp_path: Path, key: str, says: str) -> None:
    """A scoring table's ``Yes: 10`` is ``{True: 10}`` to YAML: it was "leads_a_team[1].[key]: must be
    text, not True", naming a made-up index and no fix; quoted, the same table loads."""
    shipped = (ROOT / "personas" / "definitions" / "lead-magnet-sequencer.yaml").read_text()
    table = "      interest: {"
    assert table in shipped
    wrote = shipped.replace("name: lead-magnet-sequencer", "name: zz-lead").replace(
        table, f"      leads_a_team: {{{key}: 10, Maybe: 0}}\n{table}")
    home = _home(tmp_path, {"zz-lead.yaml": wrote})
    with pytest.raises(PersonaConfigError) as refused:
        load_persona("zz-lead", home=home)
    line = wrote.splitlines().index(f"      leads_a_team: {{{key}: 10, Maybe: 0}}") + 1
    assert f"zz-lead.yaml:{line}: settings.scoring.answers.leads_a_team: {says}" in str(refused.value), refused.value
    home = _home(tmp_path / "quoted", {"zz-lead.yaml": wrote.replace(f"{{{key}:", f'{{"{key}":')})
    assert load_persona("zz-lead", home=home).settings["scoring"]["answers"]["leads_a_team"] == {key: 10, "Maybe": 0}
