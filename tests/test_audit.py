"""Audit log: one row per call, append-only in the database itself, tamper-evident, secrets redacted."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from klaviyo_toolkit.audit import AuditContext, AuditLog, redact, summarize_response
from klaviyo_toolkit.client import CallRecord, KlaviyoClient
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import BadRequestError, NotFoundError, ToolkitUsageError
from klaviyo_toolkit.redact import redact_bytes, redact_text

CTX = AuditContext(user="ada", persona="lead_magnet", thread_id="t-1", prompt_version="lead_magnet@3")
START = 1_700_000_000.0  # ManualClock's default epoch time: 2023-11-14T22:13:20Z

PK = "pk_" + "a1B2c3D4e5" * 3  # a Klaviyo private key
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhY21lIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
OPENAI = "sk-proj-" + "Zx9Yw8Vu7T" * 3
REFRESH = "rt_" + "Q7w8E9r0T1" * 3
PASSWORD = "Tr0ub4dorTr0ub4dor"
CLIENT_SECRET = "cs_" + "Mn4Bv5Cx6Z" * 3


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def log(tmp_path: Path, clock: ManualClock) -> AuditLog:
    with AuditLog(tmp_path / "audit.db", clock=clock) as audit:
        yield audit  # type: ignore[misc]


def fake_klaviyo(request: httpx.Request) -> httpx.Response:
    """Two profiles for GET /api/profiles, a JSON:API 404 for anything else."""
    if request.url.path == "/api/profiles":
        body = {"data": [{"type": "profile", "id": "P1", "attributes": {}},
                         {"type": "profile", "id": "P2", "attributes": {}}],
                "links": {"next": "https://a.klaviyo.com/api/profiles?page%5Bcursor%5D=abc"}}
        return httpx.Response(200, json=body, headers={"x-klaviyo-req-id": "req-ok"})
    return httpx.Response(404, json={"errors": [{"status": "404", "code": "not_found", "title": "Not found",
                                                 "detail": "No list with id L404"}]},
                          headers={"x-klaviyo-req-id": "req-404"})


def test_client_hook_writes_a_row_per_call(log: AuditLog, clock: ManualClock) -> None:
    client = KlaviyoClient(api_key=PK, transport=httpx.MockTransport(fake_klaviyo), clock=clock,
                           hooks=[log.hook(CTX)])
    client.call("get_profiles", filter="equals(email,'ada@example.com')")
    with pytest.raises(NotFoundError):
        client.call("get_list", id="L404")

    failed, ok = log.query()
    assert (ok.tool, ok.method, ok.path, ok.status, ok.http_status, ok.request_id) == (
        "get_profiles", "GET", "/api/profiles", "ok", 200, "req-ok")
    assert (ok.user, ok.persona, ok.thread_id, ok.prompt_version) == ("ada", "lead_magnet", "t-1", "lead_magnet@3")
    assert ok.arguments["params"]["filter"] == "equals(email,'ada@example.com')"
    assert ok.response_summary == "2 profiles: P1, P2 (more pages)"
    assert ok.time == dt.datetime.fromtimestamp(START, dt.UTC)
    assert ok.latency_ms is not None and ok.latency_ms >= 0
    assert (failed.tool, failed.path, failed.status, failed.http_status, failed.request_id) == (
        "get_list", "/api/lists/L404", "error", 404, "req-404")
    assert failed.error is not None and "No list with id L404" in failed.error
    assert failed.response_summary is None
    assert PK not in json.dumps([e.to_json() for e in (ok, failed)], default=str)


def test_hook_context_can_be_read_at_call_time(log: AuditLog) -> None:
    current = {"ctx": CTX}
    hook = log.hook(lambda: current["ctx"])
    record = CallRecord("get_lists", "GET", "/api/lists", {}, None, 200, "r1", 1, 0.01, 0.0, response_body={})
    hook(record)
    current["ctx"] = CTX.replace(thread_id="t-2", persona="segment_sync")
    hook(record)
    assert [(e.persona, e.thread_id) for e in log.query()] == [("segment_sync", "t-2"), ("lead_magnet", "t-1")]


def test_events_that_never_reach_http(log: AuditLog) -> None:
    log.record("delete_profile", "denied", context=CTX, arguments={"id": "P1"}, error="needs profiles:write")
    log.record("create_campaign_send_job", "pending_approval", context=CTX, arguments={"id": "C1"})
    log.record("create_campaign_send_job", "rejected", context=CTX, arguments={"id": "C1"},
               response_summary="the user declined")
    log.record("create_event", "dry_run", context=CTX, method="post", path="/api/events",
               arguments={"body": {"data": {"type": "event"}}})
    log.record("create_campaign_send_job", "edited", context=CTX, arguments={"id": "C2"})
    log.record("create_campaign_send_job", "approved", context=CTX, arguments={"id": "C2"})
    statuses = [e.status for e in log.query()]
    assert statuses == ["approved", "edited", "dry_run", "rejected", "pending_approval", "denied"]
    dry = log.query(status="dry_run")[0]
    assert (dry.method, dry.path, dry.http_status) == ("POST", "/api/events", None)
    with pytest.raises(ToolkitUsageError, match="Unknown audit status"):
        log.record("get_lists", "done")  # type: ignore[arg-type]


def test_query_filters_newest_first(log: AuditLog, clock: ManualClock) -> None:
    for i in range(6):
        who = CTX.replace(user="ada" if i % 2 else "bob", thread_id=f"t-{i % 3}")
        log.record("get_lists" if i < 3 else "get_segments", "ok" if i != 4 else "error", context=who)
        clock.advance(60)
    t0 = dt.datetime.fromtimestamp(START, dt.UTC)
    assert [e.id for e in log.query()] == [6, 5, 4, 3, 2, 1]
    assert [e.id for e in log.query(user="ada")] == [6, 4, 2]
    assert [e.id for e in log.query(tool="get_segments", status="ok")] == [6, 4]
    assert [e.id for e in log.query(thread_id="t-1")] == [5, 2]
    assert [e.id for e in log.query(persona="nobody")] == []
    assert [e.id for e in log.query(since=t0 + dt.timedelta(minutes=2), until=t0 + dt.timedelta(minutes=4))] == [4, 3]
    assert [e.id for e in log.query(since=(t0 + dt.timedelta(minutes=5)).isoformat())] == [6]
    assert [e.id for e in log.query(since=t0.replace(tzinfo=None) + dt.timedelta(minutes=5))] == [6]  # naive = UTC
    assert [e.id for e in log.query(limit=2)] == [6, 5]
    assert log.count() == 6


def test_export_jsonl(log: AuditLog, tmp_path: Path) -> None:
    for tool in ("get_lists", "get_profiles", "get_segments"):
        log.record(tool, "ok", context=CTX, arguments={"page_size": 10})
    out = tmp_path / "audit.jsonl"
    assert log.export_jsonl(out) == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["tool"] for r in rows] == ["get_lists", "get_profiles", "get_segments"]
    assert rows[0]["prev_hash"] == "0" * 64 and rows[1]["prev_hash"] == rows[0]["hash"]
    assert rows[2]["arguments"] == {"page_size": 10} and rows[2]["time"].startswith("2023-11-14T22:13:20")


# -- append-only and tamper evidence ----------------------------------------------------------------


def test_database_refuses_update_and_delete(log: AuditLog) -> None:
    log.record("get_lists", "ok", context=CTX)
    raw = sqlite3.connect(log.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("UPDATE audit_log SET status = 'error'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("DELETE FROM audit_log")
    raw.close()
    assert log.query()[0].status == "ok" and log.verify()


def _tamper(path: Path, *statements: str) -> None:
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
    raw.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    for sql in statements:
        raw.execute(sql)
    raw.close()


def _fill(log: AuditLog, n: int = 5) -> None:
    for i in range(n):
        log.record("get_profiles", "ok", context=CTX, arguments={"page": i})


def test_verify_passes_on_an_intact_chain(log: AuditLog) -> None:
    assert log.verify().checked == 0
    _fill(log)
    report = log.verify(expected_head=log.head())
    assert report.ok and report.checked == 5 and report.head == log.head()


def test_verify_finds_an_edited_row(log: AuditLog) -> None:
    _fill(log)
    _tamper(log.path, "UPDATE audit_log SET status = 'error', arguments = '{\"page\": 9}' WHERE id = 3")
    report = log.verify()
    assert not report and report.broken_at == 3 and "content" in report.reason


def test_verify_finds_an_edit_with_a_recomputed_hash(log: AuditLog) -> None:
    _fill(log)
    _tamper(log.path, "UPDATE audit_log SET hash = 'f' || substr(hash, 2) WHERE id = 2")
    report = log.verify()
    assert not report and report.broken_at == 2  # its own hash is wrong now; fixing it would break row 3


def test_verify_finds_a_deleted_row(log: AuditLog) -> None:
    _fill(log)
    _tamper(log.path, "DELETE FROM audit_log WHERE id = 2")
    report = log.verify()
    assert not report and report.broken_at == 3 and "missing" in report.reason


def test_verify_finds_a_cut_tail_given_the_saved_head(log: AuditLog) -> None:
    _fill(log)
    saved = log.head()
    _tamper(log.path, "DELETE FROM audit_log WHERE id = 5")
    assert log.verify()  # the rest still chains...
    report = log.verify(expected_head=saved)
    assert not report and "cut" in report.reason  # ...but the head kept elsewhere is gone


def test_verify_recent_checks_the_newest_rows_from_the_link_before_them(log: AuditLog) -> None:
    _fill(log, 8)
    whole = log.verify()
    recent = log.verify_recent(3)
    assert recent.ok and (recent.checked, recent.head) == (8, whole.head)
    _tamper(log.path, "UPDATE audit_log SET arguments = '{\"page\": 9}' WHERE id = 2")
    assert log.verify_recent(3).ok and not log.verify()  # older rows are the whole verify's
    _tamper(log.path, "UPDATE audit_log SET arguments = '{\"page\": 9}' WHERE id = 7")
    broken = log.verify_recent(3)
    assert not broken and broken.broken_at == 7
    _tamper(log.path, "DELETE FROM audit_log WHERE id = 5")
    gone = log.verify_recent(3)
    assert not gone and "row 5 is missing" in gone.reason


# -- secrets ---------------------------------------------------------------------------------------


def test_no_secret_reaches_the_database_file(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "audit.db"
    with AuditLog(path, clock=clock) as log:
        log.record(
            "create_profile",
            "error",
            context=CTX,
            arguments={
                "api_key": PK,
                "headers": {"Authorization": f"Bearer {JWT}"},
                "oauth": {"refresh_token": REFRESH, "client_secret": CLIENT_SECRET},
                "notes": [f"my OpenAI key is {OPENAI}", f"password={PASSWORD}"],
                "email": "ada@example.com",
            },
            response_summary=f"echoed Authorization: Klaviyo-API-Key {PK}",
            error=BadRequestError(400, detail=f"bad form: refresh_token={REFRESH}&client_secret={CLIENT_SECRET}"),
        )
        log.hook(CTX)(CallRecord(
            "create_event", "POST", "/api/events", {}, {"data": {"attributes": {"properties": {"token": JWT}}}},
            201, "r", 1, 0.1, 0.0, response_body={"data": {"type": "event", "id": f"id with {OPENAI}"}},
        ))  # fmt: skip
        row = log.query(tool="create_profile")[0]
        assert row.arguments["email"] == "ada@example.com"  # what is not secret stays readable
        assert row.arguments["api_key"].startswith("pk_a1B") and "…" in row.arguments["api_key"]
        assert row.error is not None and f"refresh_token={REFRESH[:6]}…{REFRESH[-4:]}" in row.error
        assert log.verify()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("audit.db"))
    assert b"ada@example.com" in stored  # the check below is looking at the right bytes
    for secret in (PK, JWT, OPENAI, REFRESH, CLIENT_SECRET, PASSWORD):
        assert secret.encode() not in stored, secret


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"API-Key": PK}, {"API-Key": f"{PK[:6]}…{PK[-4:]}"}),
        ({"access_token": "short"}, {"access_token": "***"}),
        ({"token": {"nested": 1}}, {"token": "***"}),
        ({"push_token": None, "tokens_used": 3, "unique_id": "u1"}, {"push_token": None, "tokens_used": 3,
                                                                     "unique_id": "u1"}),
        (f"Klaviyo-API-Key {PK}", f"Klaviyo-API-Key {PK[:6]}…{PK[-4:]}"),
        (f"Authorization: Bearer {JWT}", f"Authorization: Bearer {JWT[:6]}…{JWT[-4:]}"),
        (f"key {OPENAI} end", f"key {OPENAI[:6]}…{OPENAI[-4:]} end"),
        ('{"refresh_token": "abcdefgh"}', '{"refresh_token": "***"}'),
        ("a basic plan and pk_short", "a basic plan and pk_short"),
        ([("x", b"\x00\x01")], [["x", "<2 bytes>"]]),
    ],
)
def test_redact(value: Any, expected: Any) -> None:
    assert redact(value) == expected
    assert redact(redact(value)) == expected  # masking is stable


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("apı_key=abcd12345678", "abcd12345678"),
        ("apİ_key=abcd12345678", "abcd12345678"),
        ("code_verıfıer=abcdefgh1234", "abcdefgh1234"),
        ("baſıc QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "QWxhZGRpbjpvcGVuIHNlc2FtZQ"),
        ("paſſword=hunter2222", "hunter2222"),
        ("TOKEN=abcdefgh", "abcdefgh"),
        ("BEARER abcdefgh1234", "abcdefgh1234"),
    ],
)
def test_redact_text_sees_letters_the_expressions_match_case_blind(text: str, secret: str) -> None:
    assert secret not in redact_text(text)


#: Secrets said in text, as redaction should leave them; also checked inside JSON text below.
_SAID: list[tuple[str, str]] = [
        ("my password is hunter2!", "my password is ***"),
        ("PASSWORD IS Tr0ub4dor&3 ok", "PASSWORD IS *** ok"),
        ("the passcode was 8842-1177.", "the passcode was ***"),
        ("Password is: hunter2", "Password is: ***"),
        ("the new passwords will be Summer2026 and more", "the new passwords will be *** and more"),
        ('my password is "correct horse battery" ok', 'my password is "***" ok'),
        ("password is \u201cmy secret phrase\u201d", "password is \u201c***\u201d"),
        ("passphrase is correct-horse-battery-staple-extra", "passphrase is correc…xtra"),
        # other secrets said the same way, or written as a pair with a space in the name
        ("my API key is 0f9e8d7c6b5a, thanks", "my API key is ***, thanks"),
        ("the access token was abcdEFGH1234.", "the access token was ***"),
        ("API key: 0123456789abcdef0123456789abcdef", "API key: 012345…cdef"),
        ("Client Secret = 7Hq2Zx9Lm4Np", "Client Secret = ***"),
        ("the api key is required", "the api key is required"),
        # a password written into a URL, and a webhook signing secret
        ("postgresql://app:S3cr3tPassw0rd@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("redis://:onlypass@cache:6379/0 and amqp://guest:guest@mq//", "redis://:***@cache:6379/0 and amqp://guest:***@mq//"),
        ("http://host:8080/a@b and mailto:ada@example.com", "http://host:8080/a@b and mailto:ada@example.com"),
        ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "secret whsec_…LaSw"),
        # a signed JWT, and a PEM private key (whole, or cut before its END line)
        ("id eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c ok",
         "id eyJhbG…sw5c ok"),
        ("k: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCoz\n-----END RSA PRIVATE KEY-----\nok",
         "k: -----B…----\nok"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE", "-----B…AAAE"),
        ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nComment: ada@example.com (work)\n\nlQOYBF9xAbcdEFgh\n=Ab1c\n"
         "-----END PGP PRIVATE KEY BLOCK-----", "-----B…----"),
        # keys of the services a Klaviyo account is wired to: Shopify, SendGrid, Mailchimp
        ("shop token shpat_0123456789abcdef0123456789abcdef ok", "shop token shpat_…cdef ok"),
        ("SG.abcdefghijklmnopqrstuv.ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq", "SG.abc…nopq"),
        ("mailchimp 0123456789abcdef0123456789abcdef-us21 here", "mailchimp 012345…us21 here"),
        ("a cursor eyJwYWdlIjogMn0= and -----BEGIN CERTIFICATE-----",
         "a cursor eyJwYWdlIjogMn0= and -----BEGIN CERTIFICATE-----"),
        # what says something about a password is left as it is
        ("Password is incorrect.", "Password is incorrect."),
        ("the password is required", "the password is required"),
        ("your password is not set", "your password is not set"),
        ("the password was reset", "the password was reset"),
        ("pwd is abc", "pwd is abc"),
        ("a passport is needed", "a passport is needed"),
]


@pytest.mark.parametrize(("text", "expected"), _SAID)
def test_a_password_said_in_a_sentence_is_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # masking is stable


@pytest.mark.parametrize("ascii_only", [False, True])
# not the key blocks: one cut before its END line is masked to the end of the text, JSON or not
@pytest.mark.parametrize(("text", "expected"), [case for case in _SAID if "PRIVATE KEY" not in case[0]])
def test_json_text_is_masked_as_its_strings_are_and_stays_json(text: str, expected: str, ascii_only: bool) -> None:
    """Tool arguments, cassette keys and error bodies are redacted as JSON text, where a quote reads
    ``\\"`` (and a curly one ``\\u201c`` when ASCII-escaped): a quoted password went through unmasked,
    "the password is required" lost its last word, and a mask must never split an escape."""
    dumped = json.dumps({"note": text, "password_hint": f'password="hunter22{len(text)}"'}, ensure_ascii=ascii_only)
    back = json.loads(redact_text(dumped))
    assert back["note"] == expected
    assert "hunter22" not in back["password_hint"]
    assert json.loads(redact_text(json.dumps({"said": 'she said "the password is required"'}))) == {
        "said": 'she said "the password is required"'
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"token": null, "x": 1}', '{"token": null, "x": 1}'),  # says there is none: not a secret
        ('{"access_token":false}', '{"access_token":false}'),
        ("refresh_token=None&state=ok", "refresh_token=None&state=ok"),
        ("password: True", "password: True"),
        ('{"token": "nullified-value"}', '{"token": "***"}'),  # quoted: masked whole, whatever it reads
        ("token=nullable123 ok", "token=*** ok"),  # a literal's letters inside a value: masked
        ("password: falsehood", "password: ***"),
    ],
)
def test_a_json_literal_in_a_secrets_pair_is_kept(text: str, expected: str) -> None:
    """An unquoted ``null``/``true``/``false`` (or Python's None/True/False) after a secret's name
    says what the field holds, not a secret: a dumped ``"token": null`` read ``"token": ***``."""
    assert redact_text(text) == expected


_FOREIGN = "pk_" + "q7W2e9R4t6" * 3 + "Yu8i"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"店铺的Klaviyo私钥是{_FOREIGN}请保密", _FOREIGN),
        (f"キーは{_FOREIGN}です", _FOREIGN),
        (f"Schlüssel:{_FOREIGN}ä", _FOREIGN),
        (f"old_{_FOREIGN}", _FOREIGN),
        (f"{_FOREIGN}_backup", _FOREIGN),
        ("sk_live_" + "Zx8" * 8 + "です", "Zx8" * 8),
        ("AKIA" + "QWERTYUIOPASDFGH" + "は鍵", "QWERTYUIOPASDFGH"),
        ("ghp_" + "a1" * 18 + "键", "a1" * 18),
        ("令牌Bearer abcdefghijklmnop", "abcdefghijklmnop"),
        ("密钥api_key=supersecret12", "supersecret12"),
        ("sk-proj-" + "Ab3" * 8 + "的", "Ab3" * 8),
    ],
)
def test_a_key_written_against_other_letters_is_masked(text: str, secret: str) -> None:
    """A secret starts where ASCII letters and digits do not go on: ``\\b`` is Unicode-aware on text,
    so CJK, accented letters or ``_`` against a key hid it from the shapes (text and bytes alike)."""
    assert secret not in redact_text(text)
    if "Bearer" not in text and "api_key" not in text:  # key shapes: checkpoint bytes are masked in place too
        assert secret.encode() not in redact_bytes(text.encode())


def test_the_shortcut_folds_every_letter_the_expressions_match_case_blind() -> None:
    """Text is only searched when it holds a hint once folded: every letter that ``(?i)`` matches to
    a hint's letter must fold to that letter, or a secret written with it would skip redaction."""
    from klaviyo_toolkit.redact import _PATTERN_HINTS, _fold

    letters = sorted({c for hint in _PATTERN_HINTS for c in hint if c.isalpha()})
    blind = {letter: re.compile(f"(?i){letter}") for letter in letters}
    any_letter = re.compile(f"(?i)[{''.join(letters)}]")
    missed = [
        (hex(code), letter)
        for code in range(0x110000)
        if any_letter.fullmatch(char := chr(code))
        for letter in letters
        if blind[letter].fullmatch(char) and _fold(char) != letter
    ]
    assert not missed


def test_summarize_response() -> None:
    assert summarize_response(None) == "no content"
    assert summarize_response({"data": {"type": "campaign", "id": "C1", "attributes": {}}}) == "campaign C1"
    many = {"data": [{"type": "list", "id": f"L{i}"} for i in range(7)]}
    assert summarize_response(many) == "7 lists: L0, L1, L2, L3, L4, …"
    assert len(summarize_response({"text": "x" * 1000})) == 300


# -- concurrency -----------------------------------------------------------------------------------


def test_concurrent_appends_keep_every_row_and_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    logs = [AuditLog(path), AuditLog(path)]  # two handles on one file stand in for two processes
    threads_per_log, per_thread = 4, 40
    start = threading.Barrier(threads_per_log * len(logs))
    errors: list[BaseException] = []

    def append(log: AuditLog, worker: int) -> None:
        try:
            start.wait(timeout=10)
            for i in range(per_thread):
                log.record("get_profiles", "ok", context=CTX.replace(thread_id=f"w{worker}"), arguments={"i": i})
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(log, n * 10 + k))
               for n, log in enumerate(logs) for k in range(threads_per_log)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    total = threads_per_log * len(logs) * per_thread
    assert logs[0].count() == total
    report = logs[1].verify()
    assert report.ok and report.checked == total
    per_worker = {e.thread_id for e in logs[0].query(limit=None)}
    assert len(per_worker) == threads_per_log * len(logs)
    for log in logs:
        log.close()
