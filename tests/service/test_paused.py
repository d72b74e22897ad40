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
