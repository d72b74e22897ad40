"""A pause is answered only under the approval policy it paused under: resumed with another file of
the persona's name (the shipped one, which does not ask before the send), the answer was never read,
so a rejection sent the request. The run records its policy; another one's resume is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from klaviyo_sandbox import Sandbox
from personas.kernel.config import Config
from personas.kernel.errors import AnswerProblem
from personas.runtime import RunDriver, build_context, checkpointer, load_persona
from personas.runtime.checkpoints import forget_checkpointers
from tests.graphs.leads import HOT, WEDNESDAY_3PM_NY, sequence_starts, sign_up

PERSONA = "lead-magnet-sequencer"


def careful_copy(tmp_path: Path) -> Path:
    """The shipped sequencer, same name, with its send asking for approval: a user's own copy of it."""
    data = yaml.safe_load(Path(load_persona(PERSONA).source).read_text(encoding="utf-8"))
    data["approval"] = {**data["approval"], "also": ["create_event"]}
    path = tmp_path / "my-sequencer.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_a_pause_answered_under_another_policy_of_the_same_name_is_refused_and_sends_nothing(tmp_path: Path) -> None:
    from klaviyo_toolkit.clock import ManualClock

    sb = Sandbox(seed=3, rate_limit_factor=None, clock=ManualClock(WEDNESDAY_3PM_NY))
    config = Config(home=tmp_path / "home")
    saver_path = config.path("checkpoints.sqlite")
    event = sign_up(sb, "asks.first@example.com", HOT)
    pid = event["data"]["relationships"]["profile"]["data"]["id"]
    careful = load_persona(str(careful_copy(tmp_path)))
    assert careful.name == PERSONA

    def driver(spec: object) -> RunDriver:
        ctx = build_context(spec, config=config, sandbox=sb, clock=sb.clock, thread_id="lead-1")
        return RunDriver(ctx, checkpointer(saver_path))

    try:
        paused = driver(careful).invoke({"input": event})
        assert paused.paused and paused.interrupts[0]["tool"] == "create_event"
        with pytest.raises(AnswerProblem, match=r"paused under another approval policy .*my-sequencer\.yaml"):
            driver(load_persona(PERSONA)).invoke(None, resume="reject")
        assert sequence_starts(sb, pid) == [], "a rejection the shipped policy never read sent the request"
        assert driver(careful).result().paused, "still paused, answerable under its own policy"

        done = driver(careful).invoke(None, resume="reject")
        assert done.state["send"]["status"] == "rejected" and sequence_starts(sb, pid) == []
    finally:
        forget_checkpointers()
        sb.close()


def test_a_pause_answered_under_its_own_policy_goes_on(tmp_path: Path) -> None:
    from klaviyo_toolkit.clock import ManualClock

    sb = Sandbox(seed=3, rate_limit_factor=None, clock=ManualClock(WEDNESDAY_3PM_NY))
    config = Config(home=tmp_path / "home")
    careful = load_persona(str(careful_copy(tmp_path)))
    event = sign_up(sb, "says.yes@example.com", HOT)
    try:
        drivers = [RunDriver(build_context(careful, config=config, sandbox=sb, clock=sb.clock, thread_id="lead-2"),
                             checkpointer(config.path("checkpoints.sqlite"))) for _ in range(2)]
        paused = drivers[0].invoke({"input": event})
        done = drivers[1].invoke(None, resume={"action": "approve", "fingerprint": paused.interrupts[0]["fingerprint"]})
        assert done.state["send"]["status"] == "sent"
        assert len(sequence_starts(sb, event["data"]["relationships"]["profile"]["data"]["id"])) == 1
    finally:
        forget_checkpointers()
        sb.close()
