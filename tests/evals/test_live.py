"""Recording for real: ``--record``, ``--epochs`` and ``--compare`` against an OpenAI-compatible endpoint.

The endpoint is ``tests/fake_openai.py`` on a local port (a fake of the third-party service, as the
sandbox is of Klaviyo), answering with scripted tool calls and reporting a served model name, a
response id and token usage as real servers do. The suite is a copy in ``tmp_path``; the real
cassettes are never touched.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from evals.author import live_choice
from evals.case import load_suite
from evals.report import live_line, write_reports
from evals.runner import run_case, run_suite
from personas.cli import main as personas_main
from personas.kernel.cassette import Cassette, CassetteError
from personas.kernel.config import Config
from tests.fake_openai import FakeOpenAI

SUITES = Path(__file__).resolve().parents[2] / "evals" / "suites"
HOT = "hot-director-this-month"


def choose(sequence: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "choose_sequence", "args": {"sequence": sequence, "reason": "team buying now"}}]}


@pytest.fixture
def suite_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path / "home"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PERSONAS_MODEL"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "lm"
    shutil.copytree(SUITES / "lead_magnet", folder, ignore=shutil.ignore_patterns("cassettes-*"))  # authored set only
    return folder


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    answers = {"sequence": "fast-track"}
    server = FakeOpenAI(mode="script", model="fake-mini-2026-01-01", script=lambda body, n: choose(answers["sequence"]))
    server.answers = answers  # type: ignore[attr-defined]
    with server:
        host = server.base_url.replace("http://", "http://eval-user:pw-Secret-77@")
        monkeypatch.setenv("OPENAI_BASE_URL", host + "?api-key=sk-in-the-query")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-endpoint-1")
        yield server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        personas_main(list(argv))
    captured = capsys.readouterr()
    return int(done.value.code or 0), " ".join((captured.out + captured.err).split())


def test_record_keeps_what_the_endpoint_said_and_replays_without_a_key(
        suite_dir: Path, endpoint: FakeOpenAI, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run(capsys, "eval", str(suite_dir), "--case", HOT, "--record", "--cassettes", "fake")
    assert code == 0, out
    sent = endpoint.requests[0]["body"]
    assert sent["model"] == "gpt-4.1-mini" and sent["temperature"] == 0.0 and not sent.get("stream")
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "choose_sequence"}}
    assert sent["tools"][0]["function"]["strict"] is True
    path = suite_dir / "cassettes-fake" / f"{HOT}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    prov = data["provenance"]
    assert prov["kind"] == "recorded" and prov["requested_model"] == "gpt-4.1-mini"
    assert prov["served_models"] == ["fake-mini-2026-01-01"]
    assert prov["base_url"] == endpoint.base_url, "no user, password or query: where credentials hide"
    assert prov["package_version"] and prov["date"] and prov["case"] == f"lm/{HOT}"
    evidence = data["interactions"][0]["evidence"]
    assert evidence["id"] == "chatcmpl-fake-1" and evidence["model"] == "fake-mini-2026-01-01"
    assert evidence["usage"]["input_tokens"] > 10 and evidence["usage"]["output_tokens"] >= 5
    text = path.read_text(encoding="utf-8")
    assert "pw-Secret-77" not in text and "sk-in-the-query" not in text and "sk-test-fake" not in text
    manifest = json.loads((suite_dir / "cassettes-fake" / "set.json").read_text(encoding="utf-8"))
    assert manifest["requested_model"] == "gpt-4.1-mini" and manifest["label"] == "fake"
    assert json.loads((suite_dir / "cassettes" / f"{HOT}.json").read_text())["provenance"]["kind"] == "authored"

    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name)
    before = len(endpoint.requests)
    code, out = run(capsys, "eval", str(suite_dir), "--case", HOT, "--cassettes", "fake",
                    "--report", str(suite_dir.parent / "out"))
    assert code == 0, out
    assert len(endpoint.requests) == before, "replay asks nobody"
    assert "1 recorded (1 passed)" in out and "Live pass rate: 100.0% over 1 case(s) a real model answered" in out
    assert "replayed cassettes from cassettes-fake/" in out
    report = (suite_dir.parent / "out" / "report.md").read_text(encoding="utf-8")
    assert "### Recorded (1)" in report and "recorded from fake-mini-2026-01-01 (asked for gpt-4.1-mini)" in report


def test_a_recorded_cassette_whose_provenance_disagrees_does_not_load(
        suite_dir: Path, endpoint: FakeOpenAI, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capsys, "eval", str(suite_dir), "--case", HOT, "--record", "--cassettes", "fake")[0] == 0
    good = json.loads((suite_dir / "cassettes-fake" / f"{HOT}.json").read_text(encoding="utf-8"))

    def broken(change: Any) -> str:
        data = json.loads(json.dumps(good))
        change(data)
        path = tmp_path / "c.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        with pytest.raises(CassetteError) as caught:
            Cassette.load(path)
        return str(caught.value)

    assert "interaction 1 has no evidence" in broken(lambda d: d["interactions"][0].pop("evidence"))
    assert "is not what the answers say" in broken(lambda d: d["provenance"].update(served_models=["gpt-4.1-mini"]))
    assert "holds credentials" in broken(lambda d: d["provenance"].update(base_url="https://u:p@llm.example/v1"))
    assert "evidence.usage" in broken(lambda d: d["interactions"][0]["evidence"].update(usage=None))
    assert "package_version" in broken(lambda d: d["provenance"].pop("package_version"))
    authored = json.loads((suite_dir / "cassettes" / f"{HOT}.json").read_text(encoding="utf-8"))

    def relabelled(data: Any) -> None:
        data.clear()
        data.update(json.loads(json.dumps(authored)))
        data["provenance"] = dict(good["provenance"])

    assert "has no evidence" in broken(relabelled), "an authored cassette relabelled recorded"
    as_authored = broken(lambda d: d["provenance"].update(kind="authored", by="x", method="x"))
    assert "authored cassette carries response evidence" in as_authored


def test_epochs_report_pass_at_k_over_live_runs_only(suite_dir: Path, endpoint: FakeOpenAI,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    endpoint.script = lambda body, n: choose("fast-track" if n % 3 != 1 else "nurture")
    code, out = run(capsys, "eval", str(suite_dir), "--case", HOT, "--case", "no-model", "--epochs", "3",
                    "--report", str(suite_dir.parent / "out"))
    assert code == 1, "pass@1 (2 of 3) is under the threshold"
    assert len(endpoint.requests) == 3, "the model case ran three times; the no-model case once"
    assert "pass@3" in out and "1 live (" in out and "1 no model (1 passed)" in out
    assert "Live pass rate: 66.7% over 1 case(s) a real model answered" in out
    xml = (suite_dir.parent / "out" / "junit.xml").read_text(encoding="utf-8")
    assert 'name="pass_at_3" value="1.000"' in xml and f'name="{HOT} [epoch 2]"' in xml
    assert not (suite_dir / "cassettes-fake").exists(), "epochs record nothing into the suite"


def test_an_epoch_the_model_did_not_answer_counts_in_no_live_rate_and_the_answered_ones_still_do(
        suite_dir: Path, endpoint: FakeOpenAI, tmp_path: Path) -> None:
    """Each run keeps its own kind: with three epochs where the first gets no answer (nothing listens), the
    second passes and the third fails, the live rate is 1 of the 2 answered runs, and the lost run is apart."""
    from tests.ports import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    endpoint.script = lambda body, n: choose("fast-track" if n == 0 else "nurture")
    live = Config.from_env()

    def factory(s: Any, case: Any, epoch: int) -> Any:
        config = replace(live, openai_base_url=dead, model_timeout=3.0) if epoch == 0 else live
        return live_choice(s, case, tmp_path / f"{epoch}.json", config=config)

    result = run_suite(load_suite(suite_dir), case_ids=[HOT], model_factory=factory, epochs=3)
    assert [(r.status, r.kind) for r in result.results] == [("error", "error"), ("passed", "live"),
                                                            ("failed", "live")]
    assert result.live_pass_rate == pytest.approx(0.5) and result.pass_rate == pytest.approx(1 / 3)
    assert result.by_kind() == {"live": (1, 0), "error": (1, 0)}
    assert live_line([result]) == ("Live pass rate: 50.0% over 1 case(s) a real model answered (lm 50.0%); "
                                   "1 run(s) got no model answer (errors, not counted).")
    md, _ = write_reports([result], tmp_path / "out")
    report = md.read_text(encoding="utf-8")
    assert f"| `{HOT}` | band:hot, happy-path | 1/2 passed |" in report.split("### Live (1)")[1].split("###")[0]
    assert f"| `{HOT}` | band:hot, happy-path | error |" in report.split("### Unanswered (error) (1)")[1]


def test_compare_shows_which_cases_changed_decision(suite_dir: Path, endpoint: FakeOpenAI,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cases = ["--case", HOT, "--case", "warm-trip-leader"]
    assert run(capsys, "eval", str(suite_dir), *cases, "--record", "--cassettes", "ft")[0] == 1, "warm is overruled"
    endpoint.answers["sequence"] = "nurture"  # type: ignore[attr-defined]
    assert run(capsys, "eval", str(suite_dir), *cases, "--record", "--cassettes", "nu")[0] == 1, "hot gets nurture"
    code, out = run(capsys, "eval", str(suite_dir), *cases, "--compare", "ft", "nu", "--report",
                    str(suite_dir.parent / "cmp"))
    assert code == 0
    assert "2 of 2 case(s) changed decision or verdict between ft and nu" in out
    table = (suite_dir.parent / "cmp" / "compare.md").read_text(encoding="utf-8")
    hot = next(line for line in table.splitlines() if HOT in line)
    assert "passed<br>sequence=fast-track; decided_by=model" in hot
    assert "failed: " in hot and "sequence=nurture; decided_by=model" in hot and hot.endswith("| yes |")
    code, out = run(capsys, "eval", str(suite_dir), *cases, "--compare", "cassettes", "ft")
    assert "1 of 2 case(s) changed" in out, "the authored set and the fast-track recording differ only on warm"


def test_a_labelled_set_replays_with_the_model_it_was_recorded_from(
        suite_dir: Path, endpoint: FakeOpenAI, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAS_MODEL", "qwen2.5-7b-instruct")
    assert run(capsys, "eval", str(suite_dir), "--case", HOT, "--record", "--cassettes", "qwen")[0] == 0
    assert endpoint.requests[-1]["body"]["model"] == "qwen2.5-7b-instruct"
    for name in ("PERSONAS_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name)
    suite = load_suite(suite_dir)
    assert suite.cassette_sets() == ["cassettes", "qwen"]
    assert run_case(suite, suite.case(HOT), label="qwen").passed, "set.json names the model asked for"
    monkeypatch.setenv("PERSONAS_MODEL", "gpt-4.1-mini")
    result = run_case(suite, suite.case(HOT), label="qwen")
    assert result.status == "error" and "set PERSONAS_MODEL=qwen2.5-7b-instruct to replay it" in (result.error or "")


def test_a_set_that_is_not_there_or_not_a_plain_label_is_a_usage_error(
        suite_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "eval", str(suite_dir), "--case", HOT, "--cassettes", "llama")
    assert code == 2 and "suite lm has no cassette set 'llama' (no cassettes-llama/; its sets: cassettes)" in out
    assert f"`personas eval {shlex.quote(str(suite_dir))} --record --cassettes llama`" in out
    code, out = run(capsys, "eval", str(suite_dir), "--compare", "cassettes", "llama")
    assert code == 2 and "no cassette set 'llama'" in out
    code, out = run(capsys, "eval", str(suite_dir), "--cassettes", "../elsewhere")
    assert code == 2 and "a set is a folder label of letters, digits" in out
    assert run(capsys, "eval", str(suite_dir), "--author", "--cassettes", "llama")[0] == 2
    assert not (suite_dir / "cassettes-llama").exists() and not (suite_dir.parent / "elsewhere").exists()


def test_record_against_a_model_that_does_not_answer_says_so_and_writes_nothing(
    suite_dir: Path, dead_model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "eval", str(suite_dir), "--case", HOT, "--record", "--cassettes", "rec")
    assert code == 1
    assert f"the live model at {dead_model} did not answer" in out
    assert "nothing was recorded for this case" in out and "nothing recorded" in out
    assert "recorded into" not in out and "a real model answered" not in out, out
    assert not (suite_dir / "cassettes-rec").exists()
