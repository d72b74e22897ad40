"""What ``personas run`` writes to a terminal: Klaviyo data and form answers are shown, never obeyed;
and every exit code it can end with is in its help.

A form answer or a campaign name is written by whoever fills in the form or names the campaign; the
REPL already writes such text with its control characters escaped (``\\x1b``). Here the same holds
for ``personas run``, in a real pseudo-terminal (where click strips nothing) and in a pipe: an
escape that would erase the lines above, set the window title or reverse the text is printed as
text. The sequencer runs on the embedded sandbox; the reporter on a sandbox server whose campaign
was renamed over HTTP, as a careless colleague would.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from klaviyo_sandbox import DEMO_KEY
from tests.warm_cli import run_personas

from .conftest import PERSONAS, ROOT, Terminal, child_env

#: Erase the six lines above, set the window title, then reverse the rest of the line.
HOSTILE = "\x1b[1A\x1b[2K" * 6 + "\x1b]0;pwned\x07" + "APPROVED BY ADMIN\u202e"
SHOWN = "\\x1b[1A\\x1b[2K"


def hostile_form(tmp_path: Path) -> Path:
    event = json.loads((ROOT / "examples" / "form_submission.json").read_text())
    event["data"]["attributes"]["event_properties"]["role"] = "Trip leader" + HOSTILE
    path = tmp_path / "form.json"
    path.write_text(json.dumps(event))
    return path


def obeyable(raw: str) -> list[str]:
    """The hostile sequences that reached the output as they were (a terminal would obey them)."""
    return [s for s in ("\x1b[1A", "\x1b[2K", "\x1b]0;", "\x07", "\u202e") if s in raw]


def test_a_form_answer_with_terminal_escapes_is_shown_as_text_on_a_terminal(terminals: list[Terminal],
                                                                              tmp_path: Path) -> None:
    form = hostile_form(tmp_path)
    term = Terminal(["run", "lead-magnet-sequencer", "--input", str(form), "--sandbox"], child_env(tmp_path / "home"))
    terminals.append(term)
    assert term.wait() == 0, term.transcript
    raw = term.log.getvalue()
    assert obeyable(raw) == [], raw
    assert SHOWN in raw and "\\x1b]0;pwned\\x07APPROVED BY ADMIN\\u202e" in raw
    assert "Outcome: sent" in raw


def test_a_form_answer_with_terminal_escapes_is_shown_as_text_in_a_pipe(tmp_path: Path) -> None:
    form = hostile_form(tmp_path)
    proc = run_personas([str(PERSONAS), "run", "lead-magnet-sequencer", "--input", str(form), "--sandbox"],
                          env=child_env(tmp_path / "home"), cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert obeyable(proc.stdout + proc.stderr) == [], proc.stdout
    assert "\\x1b]0;pwned\\x07APPROVED BY ADMIN\\u202e" in proc.stdout


def test_a_campaign_name_with_terminal_escapes_is_shown_as_text_in_the_report(
        terminals: list[Terminal], tmp_path: Path, sandbox_server: str) -> None:
    headers = {"Authorization": f"Klaviyo-API-Key {DEMO_KEY}", "revision": "2026-07-15",
               "content-type": "application/vnd.api+json", "accept": "application/vnd.api+json"}
    with httpx.Client(base_url=sandbox_server, headers=headers, timeout=30) as http:
        campaigns = http.get("/api/campaigns", params={"filter": "equals(messages.channel,'email')"}).json()["data"]
        target = next(c for c in campaigns if c["attributes"]["name"] == "Weekend trail picks")
        body = {"data": {"type": "campaign", "id": target["id"], "attributes": {"name": "Weekend" + HOSTILE}}}
        assert http.patch(f"/api/campaigns/{target['id']}", json=body).status_code == 200
    env = child_env(tmp_path / "home", KLAVIYO_BASE_URL=sandbox_server, KLAVIYO_API_KEY=DEMO_KEY)
    term = Terminal(["run", "campaign-reporter", "--input", "{}"], env)
    terminals.append(term)
    assert term.wait() == 0, term.transcript
    raw = term.log.getvalue()
    assert obeyable(raw) == [], raw
    assert "APPROVED BY ADMIN" in raw


def test_an_error_that_quotes_the_input_shows_its_escapes_as_text(tmp_path: Path) -> None:
    bad = json.dumps({"source": {"kind": "csv" + HOSTILE}, "target": "VIP Customers"})
    proc = run_personas([str(PERSONAS), "run", "segment-syncer", "--input", bad, "--sandbox"],
                          env=child_env(tmp_path / "home"), cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr
    assert obeyable(proc.stderr) == [], proc.stderr
    assert "source.kind: csv\\x1b[1a" in proc.stderr  # the kind is read lower-cased


def help_text(tmp_path: Path, *args: str) -> str:
    proc = run_personas([str(PERSONAS), *args, "--help"], env=child_env(tmp_path / "home"), cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return " ".join(proc.stdout.split())


def test_every_exit_code_a_run_ends_with_is_in_the_help(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("email,first_name\nnot-an-email,X\nok@example.com,Y\n")
    sync = json.dumps({"source": {"kind": "csv", "path": str(rows)}, "target": "VIP Customers"})
    proc = run_personas([str(PERSONAS), "run", "segment-syncer", "--input", sync, "--sandbox"],
                          env=child_env(tmp_path / "home"), cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 3 and "Sync partial" in proc.stdout, proc.stdout + proc.stderr
    for args in ((), ("run",)):
        said = help_text(tmp_path, *args)
        assert "Exit codes:" in said, args
        for code, words in (("0", "paused for approval"), ("1", "a runtime failure"), ("2", "a usage error"),
                            ("3", "a segment sync finished in part"), ("130", "interrupted")):
            assert f"{code} " in said and words in said, (args, code)
