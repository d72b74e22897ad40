"""Write ``tests/weights.json`` (seconds per test module) from a ``pytest --durations=0`` output.

The suite runs on a few workers, a module whole on one (``--dist loadscope``). The run ends when
the last worker ends, so the longest modules should start first and the short ones fill in at the
end; ``tests/conftest.py`` orders modules by these weights (longest first, modules not listed after
them in their own order). A stale file only makes the run a little longer, never changes a result.

Refresh it after a change that moves a module's time a lot::

    .venv/bin/python -m pytest -n 3 --dist loadscope --durations=0 > /tmp/durations.log
    .venv/bin/python scripts/test_weights.py /tmp/durations.log
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

LINE = re.compile(r"^(?P<seconds>\d+(?:\.\d+)?)s (?:call|setup|teardown) +(?P<node>\S+)")
OUT = Path(__file__).resolve().parents[1] / "tests" / "weights.json"
KEEP = 60  # modules kept: the rest are short enough to fill in wherever they fall


def weights(text: str) -> dict[str, float]:
    """Seconds per module (call, setup and teardown summed), the longest ``KEEP`` of them, longest first."""
    per: Counter[str] = Counter()
    for line in text.splitlines():
        found = LINE.match(line)
        if found:
            per[found["node"].split("::", 1)[0]] += float(found["seconds"])
    return {module: round(seconds, 1) for module, seconds in per.most_common(KEEP)}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    found = weights(Path(argv[0]).read_text(encoding="utf-8"))
    if not found:
        print(f"{argv[0]}: no durations found; run pytest with --durations=0", file=sys.stderr)
        return 1
    OUT.write_text(json.dumps(found, indent=1) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(found)} modules, {sum(found.values()):.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
