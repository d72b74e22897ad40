#!/usr/bin/env python3
"""Write ``examples/form_submission.json``: a seeded lead-magnet submission as Klaviyo's Get Event returns it.

The document is what ``get_event`` with ``include=profile,metric`` answers in ``Sandbox(seed=42)`` for
the Trail Guide form submission of ``LEAD`` (the README's input format for
``personas run lead-magnet-sequencer --input examples/form_submission.json --sandbox``).

The seeded data is anchored to the current day, but its profile ids are written on a fixed
calendar (see ``klaviyo_sandbox/domains/demo/seeder.py``), so the example stays valid on any day.

    .venv/bin/python tests/cli/make_form_submission.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EXAMPLE = ROOT / "examples" / "form_submission.json"
LEAD = "diego.sato@example.com"  # a consented, hot lead with no sequence yet
FORM_METRIC = "Form submitted by profile"


def capture(email: str = LEAD, seed: int = 42) -> dict[str, Any]:
    """The Get Event document (include=profile,metric) of ``email``'s latest form submission in the seeded sandbox."""
    from klaviyo_sandbox import Sandbox

    client = Sandbox(seed=seed).client()
    metric_id = next(m["id"] for m in client.iterate("get_metrics") if m["name"] == FORM_METRIC)
    profile = client.call("get_profiles", filter=f'equals(email,"{email}")').data[0]
    events = client.call("get_events", sort="-datetime",
                         filter=f'and(equals(metric_id,"{metric_id}"),equals(profile_id,"{profile["id"]}"))')
    return dict(client.call("get_event", id=events.data[0]["id"], include=["profile", "metric"]).body)


def main() -> int:
    EXAMPLE.parent.mkdir(parents=True, exist_ok=True)
    EXAMPLE.write_text(json.dumps(capture(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {EXAMPLE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
