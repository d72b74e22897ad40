"""Secrets in what a cassette holds are masked when it is written, and the file still loads and replays.

A recording holds whatever the model and the tools said: JSON text with a secret-named pair whose value
has spaces (``"password": "correct horse battery"``) must be masked whole, not up to the first space;
and a secret-named key with a bare JSON value (``"token": null``, a strict-mode argument left unused)
must not turn the file into text that does not parse (a recording lost after the model was paid for).
The endpoint is ``tests/fake_openai.py`` on a local port; the suite is a copy in ``tmp_path``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evals.case import SUITES_DIR
from klaviyo_toolkit.redact import redact_text
from personas.cli import main as personas_main
from personas.kernel.cassette import Cassette, stored
from tests.fake_openai import FakeOpenAI

HOT = "hot-director-this-month"
LEAK = 'the form said {"password": "correct horse battery", "api_key": "k9 z"} and Bearer abcdefgh12345678'


@pytest.fixture
def suite_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path / "home"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PERSONAS_MODEL"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "lm"
    shutil.copytree(SUITES_DIR / "lead_magnet", folder, ignore=shutil.ignore_patterns("cassettes-*"))
    return folder


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    def answer(body: dict[str, Any], n: int) -> dict[str, Any]:
        return {"tool_calls": [{"name": "choose_sequence", "args": {"sequence": "fast-track", "reason": LEAK}}]}

    with FakeOpenAI(mode="script", model="fake-mini-2026-01-01", script=answer) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-endpoint-1")
        yield server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        personas_main(list(argv))
    captured = capsys.readouterr()
    return int(done.value.code or 0), " ".join((captured.out + captured.err).split())


def test_a_recorded_secret_pair_is_masked_whole_and_the_cassette_replays(
        suite_dir: Path, endpoint: FakeOpenAI, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run(capsys, "eval", str(suite_dir), "--case", HOT, "--record", "--cassettes", "fake")
    assert code == 0 and "1 cassette recorded into cassettes-fake/" in out, out
    text = (suite_dir / "cassettes-fake" / f"{HOT}.json").read_text(encoding="utf-8")
    for secret in ("horse", "battery", "k9 z", "abcdefgh12345678"):
        assert secret not in text, f"{secret!r} was written into the cassette"
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name)
    before = len(endpoint.requests)
    code, replayed = run(capsys, "eval", str(suite_dir), "--case", HOT, "--cassettes", "fake")
    assert len(endpoint.requests) == before, "replay asks nobody"
    assert code == 0 and "1 recorded (1 passed)" in replayed, replayed  # the masked file still answers


@pytest.mark.parametrize("bare", [None, True, False, 0, 12345, 1.5, [], {}])
def test_a_secret_named_key_with_a_bare_value_keeps_the_file_json(tmp_path: Path, bare: Any) -> None:
    path = tmp_path / "c.json"
    cassette = Cassette.new(path, {"kind": "authored", "by": "me", "method": "by hand", "date": "2026-12-01"})
    args = {"token": bare, "password": bare, "api_key": bare, "profile_id": "01HX"}
    cassette.record({"model": "m", "messages": [{"role": "human", "text": "hi"}]},
                    {"content": "", "tool_calls": [{"name": "create_push_token", "args": args}]})
    cassette.save()
    loaded = Cassette.load(path)  # raised "is not valid JSON" before: the file held `"token": ***`
    kept = loaded.interactions[0]["response"]["tool_calls"][0]["args"]
    assert kept["profile_id"] == "01HX" and set(kept) == set(args)
    assert all(kept[k] in (bare, "***") for k in ("token", "password", "api_key")), kept
    assert stored(args) == kept, "a case's answers compare in the form a saved cassette holds them"


@pytest.mark.parametrize(("text", "secret"), [
    ('{"password": "correct horse battery"}', "horse battery"),
    ('{"password": "ab,cdefgh"}', "cdefgh"),
    ('{"client_secret": "s3 cr3t", "x": 1}', "cr3t"),
    ("{'api_key': 'two words here'}", "words here"),
    (json.dumps(json.dumps({"refresh_token": "a b c d e"})), "b c d e"),  # JSON text inside JSON text
])
def test_a_quoted_secret_pair_is_masked_to_its_closing_quote(text: str, secret: str) -> None:
    out = redact_text(text)
    assert secret not in out, out
    if text.startswith(("{\"", '"')):
        json.loads(out)  # still JSON
