"""A run that stops for approval is recorded as paused; answering it (``personas runs resume``) runs it
on, bound to the request it showed; a rejected one ends without sending."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from klaviyo_sandbox import Sandbox
from personas.kernel.config import Config
from personas.kernel.errors import UsageProblem
from personas.runtime.loader import scan_personas
from personas.service.service import Service
from tests.graphs.leads import HOT, sequence_starts, sign_up


def careful_persona(home: Path) -> None:
    """The sequencer with its send (create_event) needing approval."""
    shipped = scan_personas(home).personas["lead-magnet-sequencer"]
    data = yaml.safe_load(Path(shipped.source).read_text(encoding="utf-8"))
    data["name"] = "careful-sequencer"
    data["approval"] = {"mode": "effects", "also": ["create_event"]}
    (home / "personas").mkdir(parents=True, exist_ok=True)
    (home / "personas" / "careful-sequencer.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")


@pytest.mark.parametrize(("answer", "starts", "status"), [("approve", 1, "done"), ("reject", 0, "done")])
def test_a_paused_run_is_recorded_and_answered(tmp_path: Path, answer: str, starts: int, status: str) -> None:
    home = tmp_path / "home"
    careful_persona(home)
    sb = Sandbox(seed=21)
    service = Service.open(Config(home=home), sandbox=sb)
    event = sign_up(sb, f"{answer}@example.com", HOT)
    run, _ = service.record_event(service.persona("careful-sequencer"), event["data"]["id"], event, trigger="webhook")
    paused = service.execute(run.id)
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    assert paused.status == "paused" and sequence_starts(sb, pid) == []
    assert service.store.counts()["paused"] == 1
    with pytest.raises(UsageProblem, match="only a failed run can be retried"):
        service.retry(run.id)
    done = service.execute(run.id, resume=answer)
    assert done.status == status and len(sequence_starts(sb, pid)) == starts
    with pytest.raises(UsageProblem, match="not waiting for an approval"):
        service.execute(run.id, resume="approve")
    service.close()


def test_runs_resume_shows_the_request_and_approves_only_when_it_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`personas runs resume RUN` shows what waits; `--answer approve` alone approves nothing (the request
    was never shown in that shell); `--request FINGERPRINT` names it and the run goes on."""
    from typer.testing import CliRunner

    from personas.cli import runs as runs_cli

    home = tmp_path / "home"
    careful_persona(home)
    sb = Sandbox(seed=21)
    service = Service.open(Config(home=home), sandbox=sb)
    monkeypatch.setattr(runs_cli, "_service", lambda: service)  # the real service, on the real sandbox
    monkeypatch.setenv("PERSONAS_HOME", str(home))  # where the command looks the run up before the service opens
    monkeypatch.setattr(service, "close", lambda: None)
    event = sign_up(sb, "named@example.com", HOT)
    run, _ = service.record_event(service.persona("careful-sequencer"), event["data"]["id"], event, trigger="webhook")
    service.execute(run.id)
    fingerprint = service.pending(run.id)[0].value["fingerprint"]
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    cli = CliRunner()

    shown = cli.invoke(runs_cli.app, ["resume", run.id])
    assert shown.exit_code == 0 and "create_event" in shown.output and f"--request {fingerprint}" in shown.output
    blind = cli.invoke(runs_cli.app, ["resume", run.id, "--answer", "approve"])
    assert isinstance(blind.exception, UsageProblem) and "--request" in str(blind.exception)
    assert sequence_starts(sb, pid) == [] and service.store.get(run.id).status == "paused"  # type: ignore[union-attr]
    named = cli.invoke(runs_cli.app, ["resume", run.id, "--answer", "approve", "--request", fingerprint])
    assert named.exit_code == 0, named.output
    assert len(sequence_starts(sb, pid)) == 1 and "done" in named.output


@pytest.mark.parametrize(
    "refused",
    [
        {"action": "approve", "fingerprint": "sha256:" + "0" * 64},  # another request's (a stale answer, a race)
        "maybe",
        {"action": "edit"},
    ],
    ids=["another-request", "not-an-answer", "empty-edit"],
)
def test_a_refused_answer_leaves_the_run_paused_and_answerable(tmp_path: Path, refused: object) -> None:
    """An answer the run cannot take raised an error inside the run, which recorded the run as failed:
    `runs resume` then said it was not waiting and `runs retry` that it was, so the approval could
    never be answered. Now the answer is refused with nothing changed, and the right one still works."""
    from personas.kernel.errors import AnswerProblem

    home = tmp_path / "home"
    careful_persona(home)
    sb = Sandbox(seed=21)
    service = Service.open(Config(home=home), sandbox=sb)
    event = sign_up(sb, "refused@example.com", HOT)
    run, _ = service.record_event(service.persona("careful-sequencer"), event["data"]["id"], event, trigger="webhook")
    assert service.execute(run.id).status == "paused"
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    with pytest.raises(AnswerProblem):
        service.execute(run.id, resume=refused)
    kept = service.store.get(run.id)
    assert kept is not None and kept.status == "paused" and kept.error is None
    assert len(service.pending(run.id)) == 1 and sequence_starts(sb, pid) == []
    fingerprint = service.pending(run.id)[0].value["fingerprint"]
    done = service.execute(run.id, resume={"action": "approve", "fingerprint": fingerprint})
    assert done.status == "done" and len(sequence_starts(sb, pid)) == 1
    service.close()


def test_runs_resume_exits_1_when_the_answered_run_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An approved run whose send then failed printed `failed` and exited 0 (`runs retry` exits 1 for
    the same ending): a script answering approvals took the failure for success."""
    from typer.testing import CliRunner

    from klaviyo_sandbox import Faults
    from personas.cli import runs as runs_cli

    home = tmp_path / "home"
    careful_persona(home)
    sb = Sandbox(seed=21)
    service = Service.open(Config(home=home), sandbox=sb)
    monkeypatch.setattr(runs_cli, "_service", lambda: service)
    monkeypatch.setenv("PERSONAS_HOME", str(home))
    monkeypatch.setattr(service, "close", lambda: None)
    event = sign_up(sb, "fails@example.com", HOT)
    run, _ = service.record_event(service.persona("careful-sequencer"), event["data"]["id"], event, trigger="webhook")
    service.execute(run.id)
    fingerprint = service.pending(run.id)[0].value["fingerprint"]
    sb.faults = Faults(error_rate=1.0, status=400, operations=["create_event"])  # the approved send is refused
    answered = CliRunner().invoke(runs_cli.app, ["resume", run.id, "--answer", "approve", "--request", fingerprint])
    assert f"{run.id}: failed" in answered.output and answered.exit_code == 1, answered.output
    assert service.store.get(run.id).status == "failed"  # type: ignore[union-attr]
    service.close()
