#!/usr/bin/env python3
"""Write the demo's cassettes: model responses authored by hand, requests captured from the demo.

No live model was available when the demo was built, so the responses below were written by the
maintainers; each cassette says so (provenance "authored"). The script runs the demo on several
dates to check that the requests do not depend on the day (the demo must replay on any day), then
saves ``personas/demo_cassettes/{lead_magnet,campaign_report}.json``. With ``OPENAI_API_KEY`` set,
``--record`` records a live model instead (provenance "recorded").

    python scripts/author_demo_cassettes.py [--record]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import sys
import tempfile
from pathlib import Path

from langchain_core.messages import AIMessage
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from klaviyo_toolkit.clock import ManualClock  # noqa: E402
from personas.cli.demo import CASSETTES, run_demo  # noqa: E402
from personas.kernel.cassette import Cassette  # noqa: E402
from personas.kernel.config import Config  # noqa: E402
from personas.kernel.models import (  # noqa: E402
    CassetteChatModel,
    ModelChoice,
    ScriptedChatModel,
    live_model,
    recorded_provenance,
)
from personas.runtime.loader import load_persona  # noqa: E402

LEAD_RESPONSES = [
    {
        "sequence": "fast-track",
        "reason": "A 201-1000 person program director outfitting a team this month with a "
        "$5k-$25k budget is ready for a sales conversation.",
    },
    {
        "sequence": "fast-track",
        "reason": "Guided trips this quarter with a set budget look like a buyer; a consult could close it sooner.",
    },
    {"sequence": "education", "reason": "Just browsing, solo, and only wants the guide: teach first, sell later."},
]
REPORT_RESPONSE = (
    "Two email campaigns had activity yesterday [T1]. Weekend trail picks carried the day: a 31.3% open rate "
    "and all 4 orders, worth $1,015.20 [C1]. The webinar replay needs attention: 21.2% of its recipients "
    "bounced [A1] and only 2.0% opened [A2], which points at a stale or purchased segment; check its audience "
    "before the next send."
)
DATES = ["2026-11-26T23:00:00+00:00", "2026-06-15T14:00:00+00:00", "2027-01-03T05:00:00+00:00"]


def _identity(persona: str) -> tuple[str, dict[str, float]]:
    """The model the demo asks for with this persona (PERSONAS_MODEL wins) and its temperature: the cassette key."""
    spec = load_persona(persona)
    return Config.from_env().model or spec.model, {"temperature": float(spec.temperature)}


def _authored(responses: list[AIMessage], path: Path, persona: str) -> ModelChoice:
    cassette = Cassette.new(
        path,
        {
            "kind": "authored",
            "by": "klaviyo-personas maintainers",
            "method": "responses written by hand in scripts/author_demo_cassettes.py; requests captured from the demo",
            "date": dt.date.today().isoformat(),
        },
    )
    name, generation = _identity(persona)
    model = CassetteChatModel(cassette=cassette, live=ScriptedChatModel(responses), model_name=name,
                              generation=generation)
    return ModelChoice(model, "authored responses", "authored", cassette)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--record", action="store_true", help="record a live model (needs OPENAI_API_KEY)")
    args = parser.parse_args()
    os.environ.setdefault("PERSONAS_HOME", tempfile.mkdtemp(prefix="demo-author-"))
    lead_calls = [
        AIMessage("", tool_calls=[{"name": "choose_sequence", "args": r, "id": f"call_{i}"}])
        for i, r in enumerate(LEAD_RESPONSES)
    ]
    captured: list[tuple[Cassette, Cassette]] = []
    for when in DATES:
        clock = ManualClock(dt.datetime.fromisoformat(when).timestamp())
        if args.record:
            config = Config.from_env()
            choices = []
            for persona, file in (("lead-magnet-sequencer", "lead_magnet.json"),
                                  ("campaign-reporter", "campaign_report.json")):
                name, generation = _identity(persona)
                cassette = Cassette.new(CASSETTES / file, recorded_provenance(name, config))
                model = CassetteChatModel(cassette=cassette, model_name=name, generation=generation,
                                          live=live_model(name, config, generation["temperature"], streaming=False))
                choices.append(ModelChoice(model, "live", "live", cassette))
            lead, report = choices
        else:
            lead = _authored(list(lead_calls), CASSETTES / "lead_magnet.json", "lead-magnet-sequencer")
            report = _authored([AIMessage(REPORT_RESPONSE)], CASSETTES / "campaign_report.json", "campaign-reporter")
        run_demo(42, console=Console(file=io.StringIO()), lead_model=lead, report_model=report, clock=clock)
        captured.append((lead.cassette, report.cassette))  # type: ignore[arg-type]
        if args.record:
            break
    first_lead, first_report = captured[0]
    for (lead_c, report_c), when in zip(captured[1:], DATES[1:], strict=False):
        if lead_c.interactions != first_lead.interactions or report_c.interactions != first_report.interactions:
            print(
                f"the demo's model requests differ on {when}; the cassettes would not replay on every day",
                file=sys.stderr,
            )
            return 1
    first_lead.save()
    first_report.save()
    print(
        f"wrote {first_lead.path} ({len(first_lead.interactions)} interactions) and {first_report.path} "
        f"({len(first_report.interactions)}); requests identical on {len(captured)} dates"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
