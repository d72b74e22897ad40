"""Commands that read or list stay light: they import none of LangChain, LangGraph, langsmith,
matplotlib or openai (together about 0.7 s before a command could answer), on success and on the
error they report. Each runs in a fresh interpreter with its own state folder, as from a shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = {"langchain_core", "langchain_openai", "langgraph", "langsmith", "matplotlib", "openai"}
PROBE = """
import contextlib, io, json, sys
sys.argv = ["personas", *ARGS]
from personas.cli import main
code = 0
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()) as err:
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
print(json.dumps({"code": code, "said": out.getvalue() + err.getvalue(),
                  "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def run_cli(args: list[str], home: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLAVIYO_", "PERSONAS_", "OPENAI_"))}
    env |= {"PERSONAS_HOME": str(home), "HOME": str(home)}
    probe = PROBE.replace("ARGS", json.dumps(args))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env,
                          check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(("args", "code", "said"), [
    (["--help"], 0, "Commands"),
    (["list"], 0, "lead-magnet-sequencer"),
    (["tools", "list", "--tag", "Lists"], 0, "get_lists"),
    (["audit"], 0, "audit log"),
    (["audit", "verify"], 0, "ok"),
    (["runs"], 0, "no runs yet"),
    (["runs", "--persona", "nobody"], 2, "no such persona"),
    (["auth", "status"], 0, "no connections"),
])
def test_reading_and_listing_import_nothing_heavy(tmp_path: Path, args: list[str], code: int, said: str) -> None:
    result = run_cli(args, tmp_path)
    assert result["code"] == code, result["said"]
    assert said in str(result["said"])
    assert HEAVY.isdisjoint(result["loaded"]), sorted(HEAVY & set(result["loaded"]))  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "said"), [
    (["run", "lead-magnet-sequncer", "--input", "{}"], "did you mean lead-magnet-sequencer"),
    (["run", "lead-magnet-sequencer"], "give --input"),
    (["run", "lead-magnet-sequencer", "--input", "[1]"], "--input must be a JSON object"),
    (["run", "lead-magnet-sequencer", "--input", "{bad"], "--input"),
    (["run", "segment-syncer", "--thread", "t1", "--resume", "maybe"], "unknown approval answer 'maybe'"),
    (["run", "campaign-reporter", "--resume", "approve"], "--resume needs --thread"),
    (["chat", "nobody"], "no such persona"),
    (["chat", "klaviyo-assistant", "--seed", "3"], "--seed is the embedded sandbox's seed"),
    (["watch", "lead-magnt-sequencer", "--once"], "no persona named 'lead-magnt-sequencer'; did you mean lead-magnet"),
    (["runs", "retry", "01NOSUCHRUN"], "no run '01NOSUCHRUN'; see `personas runs`"),
    (["worker"], "personas worker needs PERSONAS_DATABASE_URL"),
    (["worker", "--catch-up", "sometimes"], "--catch-up 'sometimes': use one of latest, all, none"),
    (["serve"], "KLAVIYO_WEBHOOK_SECRET is not set"),
    (["runs", "resume", "01NOSUCHRUN", "--answer", "approve"], "no run '01NOSUCHRUN'; see `personas runs`"),
])
def test_a_mistake_on_the_command_line_is_answered_before_langgraph_is_imported(
    tmp_path: Path, args: list[str], said: str
) -> None:
    """A run, a chat, a watch, a retry, a worker or a server imports LangChain and LangGraph (about a
    second) only once its persona, run and flags hold up: a mistyped name, a malformed --input, an
    unknown run or a missing setting is answered at once, exit 2."""
    result = run_cli(args, tmp_path)
    assert result["code"] == 2, result["said"]
    assert said in str(result["said"]), result["said"]
    assert HEAVY.isdisjoint(result["loaded"]), sorted(HEAVY & set(result["loaded"]))  # type: ignore[arg-type]


@pytest.mark.parametrize(("command", "refused"), [
    (["run", "NAME", "--input", "{}"], "no persona"), (["watch", "NAME", "--once"], "no persona"),
    (["runs", "retry", "NAME"], "no run"), (["runs", "resume", "NAME"], "no run"),
])
def test_a_persona_name_pasted_whole_is_not_echoed_whole(tmp_path: Path, command: list[str], refused: str) -> None:
    """A file's text given where a persona's name or a run's id belongs is refused with the first 100
    characters of it, not all of them."""
    pasted = "row," * 2500
    result = run_cli([pasted if arg == "NAME" else arg for arg in command], tmp_path)
    said = str(result["said"])
    assert result["code"] == 2 and refused in said, said[:500]
    assert len(said) < 600 and "row,row" in said and "…" in said, said[:700]
