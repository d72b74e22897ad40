"""Mistakes and failures as a person meets them: one line that says what to do, the right exit code.

Exit 2 for a usage error (unknown persona or graph, bad input, no credentials), 1 for a runtime
failure (Klaviyo unreachable, the key rejected); no traceback unless ``--debug``.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.warm_cli import run_personas

from .conftest import PERSONAS, ROOT, child_env


def personas(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_personas([str(PERSONAS), *args], env=child_env(home, **env), cwd=home, capture_output=True,
                          text=True, timeout=180)


def one_line_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """The single ``error: ...`` line of a failed command (asserting the exit code and no traceback);
    a run that made up its thread id has said it first (``thread ID: ...``), before it began."""
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    if len(lines) == 2 and re.match(r"thread \S+: ", lines[0]):
        lines = lines[1:]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_an_unknown_persona(tmp_path: Path) -> None:
    line = one_line_error(personas(tmp_path, "run", "lead-magnet-sequncer", "--input", "{}"), 2)
    assert "no persona or graph named 'lead-magnet-sequncer'; did you mean lead-magnet-sequencer" in line
    assert "see `personas list`" in line
    line = one_line_error(personas(tmp_path, "chat", "nobody"), 2)
    assert "no such persona" in line and "klaviyo-assistant" in line


def test_an_unknown_graph(tmp_path: Path) -> None:
    line = one_line_error(personas(tmp_path, "run", "lead_magnets", "--input", "{}", "--sandbox"), 2)
    assert "no persona or graph named 'lead_magnets'; did you mean lead_magnet" in line
    assert "graphs: lead_magnet, segment_sync, campaign_report, chat" in line


def test_bad_json_in_a_file_and_inline(tmp_path: Path) -> None:
    bad = tmp_path / "submission.json"
    bad.write_text('{"data": {"type": "event",}}\n')
    line = one_line_error(personas(tmp_path, "run", "lead-magnet-sequencer", "--input", str(bad), "--sandbox"), 2)
    assert f"{bad} is not valid JSON (line 1, column 27" in line
    line = one_line_error(personas(tmp_path, "run", "lead-magnet-sequencer", "--input", '{"data": }', "--sandbox"), 2)
    assert "--input is not valid JSON (line 1, column 10" in line
    line = one_line_error(personas(tmp_path, "run", "lead-magnet-sequencer", "--input", "nothing.json"), 2)
    assert "--input 'nothing.json': no such file, and not JSON text either" in line


@pytest.mark.parametrize(("document", "field"), [
    ({"data": {"type": "profile", "id": "01H"}}, "data: no event found"),
    ({"data": {"type": "event", "id": "01J", "attributes": {}}}, "data.attributes.event_properties: missing"),
])
def test_json_that_is_not_a_form_submission_names_the_field(tmp_path: Path, document: dict[str, object],
                                                            field: str) -> None:
    proc = personas(tmp_path, "run", "lead-magnet-sequencer", "--input", json.dumps(document), "--sandbox")
    line = one_line_error(proc, 2)
    assert f"Invalid arguments for lead-magnet input: {field}" in line


def test_an_unreachable_klaviyo_base_url(tmp_path: Path) -> None:
    proc = personas(tmp_path, "run", "campaign-reporter", "--input", "{}",
                    KLAVIYO_BASE_URL="http://127.0.0.1:9", KLAVIYO_API_KEY="pk_not_used_here")
    line = one_line_error(proc, 1)
    assert line.startswith("error: cannot reach http://127.0.0.1:9 (get_accounts)")
    assert "check KLAVIYO_BASE_URL and your network; the run stopped at that step and is saved" in line
    assert line.endswith("--retry"), "the same line says how to continue the run"


def test_with_debug_the_traceback_is_shown(tmp_path: Path) -> None:
    proc = personas(tmp_path, "--debug", "run", "campaign-reporter", "--input", "{}",
                    KLAVIYO_BASE_URL="http://127.0.0.1:9", KLAVIYO_API_KEY="pk_not_used_here")
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "TransportError" in proc.stderr


def test_a_rejected_api_key(tmp_path: Path, sandbox_server: str) -> None:
    proc = personas(tmp_path, "run", "campaign-reporter", "--input", "{}",
                    KLAVIYO_BASE_URL=sandbox_server, KLAVIYO_API_KEY="pk_this_key_is_wrong_0000000000")
    line = one_line_error(proc, 1)
    assert line.startswith("error: Klaviyo rejected the API key (401) (get_accounts); check KLAVIYO_API_KEY")
    assert "pk_this_key_is_wrong" not in line  # the key itself is never printed


def test_no_credentials_at_all(tmp_path: Path) -> None:
    for args in (["run", "campaign-reporter", "--input", "{}"], ["chat", "klaviyo-assistant"]):
        line = one_line_error(personas(tmp_path, *args), 2)
        assert "No Klaviyo credentials: set KLAVIYO_API_KEY" in line
        assert "--sandbox" in line


def test_every_klaviyo_failure_maps_to_a_line_that_says_what_to_do() -> None:
    import datetime as dt

    import httpx

    from klaviyo_toolkit.errors import (
        DailyLimitExhaustedError,
        PermissionDeniedError,
        RateLimitError,
        ScopeDeniedError,
        ServerError,
        TransportError,
    )
    from personas.cli.errors import error_line

    try:
        try:
            raise httpx.ConnectTimeout("timed out", request=httpx.Request("GET", "https://a.klaviyo.com/api/lists"))
        except httpx.HTTPError as cause:
            raise TransportError("get_lists: the request timed out", operation_id="get_lists") from cause
    except TransportError as exc:
        transport = exc
    resets = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    cases = [
        (transport, 1, "cannot reach https://a.klaviyo.com (get_lists): ConnectTimeout: timed out; check "
                       "KLAVIYO_BASE_URL and your network"),
        (PermissionDeniedError(403, detail="missing scope lists:write", operation_id="delete_list"), 1,
         "Klaviyo refused the call (403) (delete_list): missing scope lists:write; use a key with the scopes"),
        (RateLimitError(429, retry_after=30, operation_id="get_lists"), 1,
         "Klaviyo rate-limited the call (429) (get_lists); wait 30 s and try again"),
        (ServerError(503, request_id="req-1", operation_id="get_lists"), 1,
         "Klaviyo failed with HTTP 503 (get_lists), request req-1; try again later"),
        (DailyLimitExhaustedError("query_campaign_values", 225, resets), 1, "the daily limit of 225 calls is spent"),
        (ScopeDeniedError("delete_list", ["lists:write"]), 1, "delete_list needs scope(s) lists:write"),
    ]
    for exc, code, text in cases:
        line = error_line(exc)
        assert line is not None and line[1] == code and text in line[0], (exc, line)
        assert "\n" not in line[0]
    assert error_line(RuntimeError("something else")) is None  # unexpected: the name, and --debug for more


def test_a_write_that_may_have_been_applied_is_never_said_as_try_again() -> None:
    """A create whose answer was lost (or answered 5xx) is not "cannot reach ... / try again later": run
    again, it could be applied twice. The line says it may have been applied and to read it back first."""
    from klaviyo_sandbox import Faults, Sandbox
    from klaviyo_toolkit.errors import KlaviyoError
    from personas.cli.errors import error_line

    sb = Sandbox(demo_data=False, rate_limit_factor=None)
    for fault in (Faults(lost_response_rate=1.0, count=1), Faults(error_rate=1.0, status=503, count=1)):
        sb.faults = Faults(**{**fault.to_json(), "operations": ["create_list"]})
        with pytest.raises(KlaviyoError) as caught:
            sb.client().call("create_list", name="Maybe twice")
        line = error_line(caught.value)
        assert line is not None and line[1] == 1, line
        assert "may have been applied" in line[0] and "read back whether it took effect" in line[0], line
        assert "try again" not in line[0] and "cannot reach" not in line[0], line
        assert "\n" not in line[0]


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("KLAVIYO_BASE_URL", "http://[::1", "Invalid IPv6 URL"),
        ("KLAVIYO_BASE_URL", "ht!tp://bad url", "needs a scheme (https or http)"),
        ("KLAVIYO_BASE_URL", "http://localhost:port", "not a valid URL"),
        ("KLAVIYO_BASE_URL", "a.klaviyo.com", "needs a scheme"),
        ("OPENAI_BASE_URL", "http://[fe80::1", "Invalid IPv6 URL"),
        ("PERSONAS_DATABASE_URL", "mysql://u:hunter2@db/x", "postgresql or postgres"),
        # a password where urlsplit looks for a port (the @host left out) or for a host (a character
        # Unicode reads as '#'): urlsplit's message quotes it, and it must not reach the line
        ("PERSONAS_DATABASE_URL", "postgresql://app:hunter2pw/personas", "not a port number"),
        ("OPENAI_BASE_URL", "https://user:hunter2pw/v1", "not a port number"),
        ("PERSONAS_DATABASE_URL", "postgresql://app:hunter2\uff03pw@db:5432/x", "percent-encode it"),
        ("KLAVIYO_BASE_URL", "http://u:hunter2\uff1fpw@127.0.0.1:8787", "percent-encode it"),
        ("KLAVIYO_API_KEY", "pk_abc\u20acdef0123456789", "U+20AC at position 7"),
        ("KLAVIYO_API_KEY", "pk_abc def0123456789", "U+0020 at position 7"),
        ("OPENAI_API_KEY", "sk-\u00e9", "U+00E9 at position 4"),
        ("KLAVIYO_API_KEY", '"pk_abcdef0123456789"', "KLAVIYO_API_KEY came in quotes; remove the quotes"),
        ("OPENAI_API_KEY", "'sk-abcdef0123456789'", "OPENAI_API_KEY came in quotes; remove the quotes"),
        ("KLAVIYO_API_KEY", "KLAVIYO_API_KEY=pk_abcdef0123456789",
         "KLAVIYO_API_KEY starts with KLAVIYO_API_KEY=; paste only the key, without KLAVIYO_API_KEY="),
    ],
)
def test_a_malformed_environment_variable_is_one_line_for_every_command(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    for args in (["--help"], ["list"], ["run", "campaign-reporter", "--input", "{}", "--sandbox"]):
        line = one_line_error(personas(tmp_path, *args, **{variable: value}), 2)
        assert variable in line and says in line, line
        assert "hunter2" not in line and "def0123456789" not in line, "the value is not echoed"
        assert "***" not in line, "no word of the message was taken for a secret"


def test_input_files_that_are_not_json_files_are_one_line_usage_errors(tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    line = one_line_error(personas(tmp_path, "run", "campaign-reporter", "--input", str(folder), "--sandbox"), 2)
    assert "is a folder" in line
    latin = tmp_path / "latin1.json"
    latin.write_bytes('{"date": "café"}'.encode("latin-1"))
    line = one_line_error(personas(tmp_path, "run", "campaign-reporter", "--input", str(latin), "--sandbox"), 2)
    assert "is not UTF-8 text" in line and "save it as UTF-8" in line
    line = one_line_error(personas(tmp_path, "chat", "klaviyo-assistant", "--replay", str(folder)), 2)
    assert "--replay" in line and "is a folder" in line


def test_a_json_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    bom = tmp_path / "report.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"date": "2099-01-01"}).encode())
    line = one_line_error(personas(tmp_path, "run", "campaign-reporter", "--input", str(bom), "--sandbox"), 2)
    assert "future" in line or "2099-01-01" in line, line  # the input was read: the date itself is refused


def test_audit_filters_that_cannot_match_are_usage_errors(tmp_path: Path) -> None:
    line = one_line_error(personas(tmp_path, "audit", "--since", "99999999h"), 2)
    assert "before the year 1" in line
    line = one_line_error(personas(tmp_path, "audit", "--status", "bogus"), 2)
    assert "not an audit status" in line and "pending_approval" in line


@pytest.mark.parametrize(("args", "says"), [
    (["audit", "--limit", "-1"], "--limit -1: give how many rows to show, 1 or more"),
    (["audit", "--limit", "0"], "--limit 0: give how many rows to show, 1 or more"),
    (["watch", "lead-magnet-sequencer", "--every", "-1"], "--every -1: give the seconds between polls, more than 0"),
    (["watch", "lead-magnet-sequencer", "--every", "0", "--once"], "--every 0: give the seconds between polls"),
    (["watch", "lead-magnet-sequencer", "--lookback", "-60"], "--lookback -60: give the seconds the first poll"),
    (["serve", "--workers", "0"], "--workers 0: give how many runs at a time, 1 or more"),
    (["worker", "--concurrency", "-2"], "--concurrency -2: give how many runs at a time, 1 or more"),
    (["runs", "--stalled-after", "-1"], "--stalled-after -1: give the seconds without a heartbeat, more than 0"),
    (["runs", "--stalled-after", "nan"], "--stalled-after nan: give the seconds without a heartbeat"),
])
def test_numbers_out_of_their_range_are_refused_with_the_range(tmp_path: Path, args: list[str], says: str) -> None:
    assert says in one_line_error(personas(tmp_path, *args), 2)


def test_audit_export_to_a_folder_that_does_not_exist_names_it_and_the_fix(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "x.jsonl"
    line = one_line_error(personas(tmp_path, "audit", "export", str(target)), 2)
    assert f"the folder {target.parent} does not exist; create it (mkdir -p {target.parent})" in line
    assert "FileNotFoundError" not in line
    line = one_line_error(personas(tmp_path, "audit", "export", str(tmp_path)), 2)
    assert "it is a folder; give a file name" in line


def test_a_head_record_overwritten_with_noise_is_named_by_verify(tmp_path: Path) -> None:
    from klaviyo_toolkit.audit import AuditLog
    from klaviyo_toolkit.audit_anchor import VaultAnchor
    from klaviyo_toolkit.vault import Vault

    with AuditLog(tmp_path / "audit.sqlite", anchor=VaultAnchor(Vault(tmp_path / "vault.sqlite"))) as log:
        log.record("get_lists", "ok")  # a log as the runtime keeps it, with its head beside the vault
    head = tmp_path / "vault.audit.head"
    head.write_bytes(b"\xff\xfe\x00" + bytes(range(256))[:253])
    line = tampered(personas(tmp_path, "audit", "verify"))
    assert f"the audit head record {head} was altered" in line and "restore the record from a backup" in line
    assert "UnicodeDecodeError" not in line


def test_a_deleted_head_record_fails_verify_as_a_cut_log_does(tmp_path: Path) -> None:
    """Deleting the head record is how a cut tail would be hidden: verify fails (exit 1, as for a cut
    log a monitor watches for), never a usage error (exit 2) that reads as the command's mistake."""
    from klaviyo_toolkit.audit import AuditLog
    from klaviyo_toolkit.audit_anchor import VaultAnchor
    from klaviyo_toolkit.vault import Vault

    with AuditLog(tmp_path / "audit.sqlite", anchor=VaultAnchor(Vault(tmp_path / "vault.sqlite"))) as log:
        for _ in range(3):
            log.record("get_lists", "ok")
    (tmp_path / "vault.audit.head").unlink()
    line = tampered(personas(tmp_path, "audit", "verify"))
    assert "vault.audit.head is missing" in line and "rows cut from the end cannot be ruled out" in line


def tampered(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``TAMPERED: ...`` line of a failed verification (exit 1, no traceback)."""
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr and not proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("TAMPERED: "), proc.stderr
    return lines[0]


def test_a_model_that_cannot_be_reached_or_refuses_says_what_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx
    import openai

    from personas.cli.common import _CONFIG
    from personas.cli.errors import error_line
    from personas.kernel.config import Config

    monkeypatch.setenv("OPENAI_BASE_URL", "http://user:hunter2secret@127.0.0.1:9/v1")
    token = _CONFIG.set(Config.from_env())  # as the root command resolves it (another test may have set one)
    try:
        request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
        down = error_line(openai.APIConnectionError(request=request))
        refused = error_line(openai.AuthenticationError("bad key", response=httpx.Response(401, request=request),
                                                        body=None))
    finally:
        _CONFIG.reset(token)
    assert down is not None and down[1] == 1
    assert "cannot reach the model at http://127.0.0.1:9/v1" in down[0] and "OPENAI_BASE_URL" in down[0]
    assert "hunter2secret" not in down[0]
    assert refused is not None and "rejected OPENAI_API_KEY (401" in refused[0]


def test_a_chat_whose_model_cannot_be_reached_names_the_url_and_the_variable(tmp_path: Path) -> None:
    """The chat as a newcomer meets it with OPENAI_BASE_URL pointing at nothing: langchain-openai wraps the
    openai client's error in its own class, which still reads as the model being unreachable."""
    from .conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    proc = run_personas([str(PERSONAS), "chat", "klaviyo-assistant", "--sandbox"], input="which lists?\n/exit\n",
                          env=child_env(tmp_path, OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=url), cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in out, out[-2000:]
    assert f"error: cannot reach the model at {url}" in out and "check OPENAI_BASE_URL" in out, out[-2000:]


def test_a_model_url_without_a_key_says_the_key_is_missing(tmp_path: Path) -> None:
    """OPENAI_BASE_URL alone (a local server, the key forgotten) uses no model: `run` and `chat` say why."""
    url = "http://127.0.0.1:9/v1"
    env = child_env(tmp_path, OPENAI_BASE_URL=url)
    form = str(ROOT / "examples" / "form_submission.json")
    run = run_personas([str(PERSONAS), "run", "lead-magnet-sequencer", "--input", form, "--sandbox"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=180)
    chat = run_personas([str(PERSONAS), "chat", "klaviyo-assistant", "--sandbox"], input="/exit\n", env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    for proc in (run, chat):
        out = " ".join((proc.stdout + proc.stderr).split())
        assert proc.returncode == 0 and "Traceback" not in out, out[-2000:]
        assert f"OPENAI_BASE_URL is {url} but OPENAI_API_KEY is not set" in out, out[-2000:]
        assert "any value, such as 'local'" in out or "accepts, such as 'local'" in out, out[-2000:]


def test_a_run_without_input_names_how_to_continue_a_killed_one(tmp_path: Path) -> None:
    """A sync killed mid-way is continued with --retry on its thread; the error for a bare ``--thread``
    names it beside --resume (which only answers an approval), so the person is not left guessing."""
    line = one_line_error(personas(tmp_path, "run", "segment-syncer", "--thread", "sync-1", "--sandbox"), 2)
    assert "--thread T --retry" in line and "--resume approve" in line
