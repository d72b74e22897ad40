"""The rest of the CLI contract, run as a person would: list, tools --persona, run with an approval
paused in one process and resumed in another, audit (read, filter, verify), auth (a key in the vault)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.warm_cli import run_personas

from .conftest import PERSONAS, ROOT, child_env


def personas(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_personas([str(PERSONAS), *args], env=child_env(home, **env), capture_output=True, text=True,
                          timeout=180, cwd=ROOT)


def test_list_shows_every_persona_with_its_scopes_and_tools(tmp_path: Path) -> None:
    done = personas(tmp_path, "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert set(rows) == {"lead-magnet-sequencer", "segment-syncer", "campaign-reporter", "klaviyo-assistant"}
    assert rows["campaign-reporter"]["graph"] == "campaign_report"
    assert "query_campaign_values" in rows["campaign-reporter"]["tools"]
    assert all(r["scopes"] and r["tools"] for r in rows.values())


def test_tools_for_a_persona_are_what_it_binds_including_its_search_tools(tmp_path: Path) -> None:
    listed = json.loads(personas(tmp_path, "tools", "list", "--persona", "lead-magnet-sequencer", "--json").stdout)
    assert {t["name"] for t in listed} == {"get_profile", "get_profiles", "get_events", "get_metrics", "create_event",
                                           "update_profile"}
    schema = json.loads(personas(tmp_path, "tools", "schema", "--persona", "klaviyo-assistant").stdout)
    names = [d["function"]["name"] for d in schema]
    assert "find_tools" in names and "describe_tool" in names and "get_lists" in names
    assert all(d["function"]["strict"] is True for d in schema)


def _csv(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "members.csv"
    path.write_text("email,consent\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _two_members_and_a_mirror_of_one(tmp_path: Path, state: Path) -> tuple[str, str]:
    """A list with two members in a sandbox state file, and the input of a mirror sync to a file that
    keeps only one: a removal (destructive), which waits for approval. (list id, sync input)"""
    setup = (
        "from klaviyo_sandbox import Sandbox\n"
        f"sb = Sandbox(seed=42, state={str(state)!r}, rate_limit_factor=None)\n"
        "kl = sb.client()\n"
        "lid = kl.call('create_list', name='Trail Club').data['id']\n"
        "ids = [kl.call('create_profile', email=e).data['id'] for e in ('ann@example.com', 'bo@example.com')]\n"
        "kl.call('add_profiles_to_list', id=lid, profile_ids=ids)\n"
        "sb.close()\n"
        "print(lid)\n"
    )
    made = subprocess.run([str(Path(PERSONAS).with_name("python")), "-c", setup], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=child_env(tmp_path))
    assert made.returncode == 0, made.stderr
    list_id = made.stdout.strip()
    payload = json.dumps({"source": {"kind": "csv", "path": str(_csv(tmp_path, ["ann@example.com,no"]))},
                          "target_list_id": list_id, "mode": "mirror"})
    return list_id, payload


def test_a_run_paused_for_approval_is_resumed_from_the_shell_and_audited(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.sqlite"
    list_id, payload = _two_members_and_a_mirror_of_one(tmp_path, state)
    first = personas(tmp_path, "run", "segment-syncer", "--input", payload, "--sandbox-state", str(state),
                     "--thread", "sync-1", "--json")
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["paused"] and out["interrupts"][0]["tool"] == "remove_profiles_from_list"
    assert "--thread sync-1 --resume approve" in first.stderr

    second = personas(tmp_path, "run", "segment-syncer", "--sandbox-state", str(state), "--thread", "sync-1",
                      "--resume", "approve", "--json")
    assert second.returncode == 0, second.stderr
    assert not json.loads(second.stdout)["paused"]
    with sqlite3.connect(state) as db:
        body = json.loads(db.execute("SELECT body FROM resources WHERE type='list' AND id=?", (list_id,)).fetchone()[0])
    assert len(body["relationships"]["profiles"]) == 1, "bo was removed once approved"
    fingerprint = out["interrupts"][0]["fingerprint"]
    still_shown = [p for p in (tmp_path / "approvals" / "shown").glob("*.json") if fingerprint in p.read_text()]
    assert not still_shown, "an answered request is forgotten: an identical one later must be shown again"

    audit = personas(tmp_path, "audit", "--thread", "sync-1", "--json")
    rows = [json.loads(line) for line in audit.stdout.splitlines()]
    statuses = {(r["tool"], r["status"]) for r in rows}
    assert ("remove_profiles_from_list", "approved") in statuses and ("remove_profiles_from_list", "ok") in statuses
    assert all(r["persona"] == "segment-syncer" for r in rows)
    only_removals = personas(tmp_path, "audit", "--tool", "remove_profiles_from_list", "--status", "ok", "--json")
    assert len(only_removals.stdout.splitlines()) == 1
    verified = personas(tmp_path, "audit", "verify")
    assert verified.returncode == 0 and "chain intact" in verified.stdout


def test_a_shell_approval_answers_only_a_request_that_was_shown(tmp_path: Path) -> None:
    """`--resume approve` answers the request `personas run` printed for the thread; when the run
    waits on a request nobody was shown here (paused again elsewhere), it approves nothing and says
    how to name the request with --request."""
    state = tmp_path / "sandbox.sqlite"
    list_id, payload = _two_members_and_a_mirror_of_one(tmp_path, state)
    first = personas(tmp_path, "run", "segment-syncer", "--input", payload, "--sandbox-state", str(state),
                     "--thread", "sync-2", "--json")
    assert first.returncode == 0, first.stderr
    fingerprint = json.loads(first.stdout)["interrupts"][0]["fingerprint"]
    assert f"--request {fingerprint}" in first.stderr, "the hint names the request"
    for shown in (tmp_path / "approvals" / "shown").iterdir():
        shown.unlink()  # as if the run had paused on this request in another process, unseen here

    blind = personas(tmp_path, "run", "segment-syncer", "--sandbox-state", str(state), "--thread", "sync-2",
                     "--resume", "approve")
    assert blind.returncode == 2, blind.stdout + blind.stderr
    assert "not shown here" in blind.stderr and f"--request {fingerprint}" in blind.stderr
    wrong = personas(tmp_path, "run", "segment-syncer", "--sandbox-state", str(state), "--thread", "sync-2",
                     "--resume", "approve", "--request", "sha256:0000000000000000")
    assert wrong.returncode == 2 and "nothing was resumed" in wrong.stderr, wrong.stderr
    with sqlite3.connect(state) as db:
        body = json.loads(db.execute("SELECT body FROM resources WHERE type='list' AND id=?", (list_id,)).fetchone()[0])
    assert len(body["relationships"]["profiles"]) == 2, "nothing was removed"

    named = personas(tmp_path, "run", "segment-syncer", "--sandbox-state", str(state), "--thread", "sync-2",
                     "--resume", "approve", "--request", fingerprint, "--json")
    assert named.returncode == 0, named.stderr
    assert not json.loads(named.stdout)["paused"]


def test_a_paused_run_is_answered_only_on_the_klaviyo_and_persona_it_ran_with(tmp_path: Path) -> None:
    """An approval given with another sandbox (a fresh one, another state file) or another persona
    changes nothing and says how to answer it where the run is; before, the removal went to a fresh
    in-memory sandbox, the real one kept its members, and the thread counted as finished."""
    state = tmp_path / "sandbox.sqlite"
    list_id, payload = _two_members_and_a_mirror_of_one(tmp_path, state)
    first = personas(tmp_path, "run", "segment-syncer", "--input", payload, "--sandbox-state", str(state),
                     "--thread", "pz", "--json")
    assert first.returncode == 0 and json.loads(first.stdout)["paused"], first.stderr
    other = tmp_path / "other.sqlite"
    for flags in (["--sandbox"], ["--sandbox-state", str(other)]):
        elsewhere = personas(tmp_path, "run", "segment-syncer", *flags, "--thread", "pz", "--resume", "approve")
        assert elsewhere.returncode == 2, elsewhere.stdout + elsewhere.stderr
        assert f"ran on the sandbox state file {state.resolve()}" in elsewhere.stderr
        assert f"--sandbox-state {state.resolve()} --thread pz --resume approve" in elsewhere.stderr
    wrong_persona = personas(tmp_path, "run", "lead-magnet-sequencer", "--sandbox-state", str(state), "--thread", "pz",
                             "--resume", "approve")
    assert wrong_persona.returncode == 2 and "is a run of segment-syncer" in wrong_persona.stderr
    with sqlite3.connect(state) as db:
        body = json.loads(db.execute("SELECT body FROM resources WHERE type='list' AND id=?", (list_id,)).fetchone()[0])
    assert len(body["relationships"]["profiles"]) == 2, "nothing was removed anywhere"
    here = personas(tmp_path, "run", "segment-syncer", "--sandbox-state", str(state), "--thread", "pz",
                    "--resume", "approve", "--json")
    assert here.returncode == 0 and not json.loads(here.stdout)["paused"], here.stderr


def test_audit_verify_detects_a_tampered_row(tmp_path: Path) -> None:
    personas(tmp_path, "run", "campaign-reporter", "--input", "{}", "--sandbox")
    db = sqlite3.connect(tmp_path / "audit.sqlite")
    db.execute("DROP TRIGGER audit_log_no_update")
    db.execute("UPDATE audit_log SET status = 'ok', error = NULL WHERE id = 1")
    db.execute("UPDATE audit_log SET tool = 'delete_list' WHERE id = 1")
    db.commit()
    db.close()
    tampered = personas(tmp_path, "audit", "verify")
    assert tampered.returncode == 1 and "TAMPERED: row 1" in tampered.stderr


def test_a_key_kept_in_the_vault_runs_a_persona_and_revoking_it_stops_it(tmp_path: Path, sandbox_server: str) -> None:
    added = personas(tmp_path, "auth", "login", "sandbox", "--scopes", "accounts:read,campaigns:read,metrics:read",
                     KLAVIYO_API_KEY="pk_sandbox_demo", KLAVIYO_BASE_URL=sandbox_server)
    assert added.returncode == 0, added.stderr
    assert "pk_sandbox_demo" not in added.stdout.replace("KLAVIYO_API_KEY", "") + added.stderr
    assert b"pk_sandbox_demo" not in b"".join(p.read_bytes() for p in tmp_path.glob("vault.sqlite*"))
    listed = personas(tmp_path, "auth", "status")
    assert "sandbox" in listed.stdout and "Northwind Outfitters (SbxPub)" in listed.stdout and " ok" in listed.stdout

    ran = personas(tmp_path, "run", "campaign-reporter", "--input", "{}", "--connection", "sandbox")
    assert ran.returncode == 0, ran.stderr
    assert "reporting calls: 1" in ran.stdout

    assert personas(tmp_path, "auth", "revoke", "sandbox").returncode == 0
    refused = personas(tmp_path, "run", "campaign-reporter", "--input", "{}", "--credential", "sandbox")
    assert refused.returncode == 2 and "revoked" in refused.stderr and "Traceback" not in refused.stderr
    assert "personas auth login sandbox" in refused.stderr


def _chat_calls(home: Path, *names: str) -> None:
    """The assistant, its model asking for tools by these names, writing its audit rows in ``home``."""
    script = (
        "import sys\n"
        "from langchain_core.messages import AIMessage, HumanMessage\n"
        "from langgraph.checkpoint.memory import InMemorySaver\n"
        "from klaviyo_sandbox import Sandbox\n"
        "from personas.kernel.models import ScriptedChatModel\n"
        "from personas.runtime import RunDriver, build_context\n"
        "calls = [AIMessage('', tool_calls=[{'name': n, 'args': {}, 'id': f'c{i}'}])\n"
        "         for i, n in enumerate(sys.argv[1:])]\n"
        "sb = Sandbox(demo_data=False, rate_limit_factor=None)\n"
        "ctx = build_context('klaviyo-assistant', sandbox=sb, model=ScriptedChatModel([*calls, AIMessage('ok')]))\n"
        "RunDriver(ctx, InMemorySaver()).invoke({'messages': [HumanMessage('hi')]})\n"
    )
    done = subprocess.run([sys.executable, "-c", script, *names], env=child_env(home),
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_the_audit_view_shows_a_made_up_tool_name_and_never_obeys_it(tmp_path: Path) -> None:
    """A tool name is the model's choice (an unknown one is audited as denied): shown, never read as
    Rich markup (``[/bold]`` stopped the command) or as terminal controls (ESC erased lines above)."""
    _chat_calls(tmp_path, "[/bold]", "x\x1b[2A\x1b[2Kget_lists", "y\u202eevil")
    shown = personas(tmp_path, "audit")
    assert shown.returncode == 0, shown.stderr
    assert "[/bold]" in shown.stdout and "x\\x1b[2A\\x1b[2Kget_lists" in shown.stdout and "y\\u202eevil" in shown.stdout
    assert "\x1b" not in shown.stdout and "\u202e" not in shown.stdout


def test_an_audit_filter_that_names_nothing_is_a_usage_error_not_an_empty_log(tmp_path: Path) -> None:
    """A typo in --tool or --persona read as "0 rows": no activity, where there was some."""
    _chat_calls(tmp_path, "get_lists", "made_up_tool")
    typo = personas(tmp_path, "audit", "--tool", "get_list")  # get_list is an operation: 0 rows, said plainly
    assert typo.returncode == 0 and "0 of" in typo.stdout, typo.stderr
    for args, said in ((("--tool", "get_lsts"), "did you mean get_lists"),
                       (("--persona", "klaviyo-asistant"), "did you mean klaviyo-assistant"),
                       (("--json", "--persona", "nobody"), "no persona is named so")):
        done = personas(tmp_path, "audit", *args)
        assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr, done.stderr
    # names the log holds are shown as asked: a tool a model made up, a persona since deleted
    made_up = personas(tmp_path, "audit", "--tool", "made_up_tool")
    assert made_up.returncode == 0 and "made_up_tool" in made_up.stdout, made_up.stderr


def test_audit_verify_names_a_row_an_edit_stored_as_a_blob(tmp_path: Path) -> None:
    """SQLite stores any type in any column: a BLOB where the log writes text is reported as an edit
    (before, the hash could not be computed and verify and the view stopped with a TypeError)."""
    personas(tmp_path, "run", "campaign-reporter", "--input", "{}", "--sandbox")
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        db.execute("DROP TRIGGER audit_log_no_update")
        db.execute("UPDATE audit_log SET status = CAST(status AS BLOB) WHERE id = 2")
    tampered = personas(tmp_path, "audit", "verify")
    assert tampered.returncode == 1 and "TAMPERED: row 2" in tampered.stderr, tampered.stderr
    assert "status is stored as bytes" in tampered.stderr and "Traceback" not in tampered.stderr
    view = personas(tmp_path, "audit")
    assert view.returncode == 0, view.stderr
