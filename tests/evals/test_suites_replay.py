"""Every eval suite replays from its cassettes, as CI runs it: ``personas eval`` in a fresh process.

No key and no network: the model is the suites' cassettes, Klaviyo the embedded sandbox. The run
must pass every suite's threshold and take well under two minutes. The cassettes themselves are
checked too: each says where it came from, none holds a secret, none is orphaned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from evals.case import discover_suites, load_suite
from personas.kernel.cassette import scrub

ROOT = Path(__file__).resolve().parents[2]
BUDGET_SECONDS = 120


def test_every_suite_passes_its_threshold_on_replay(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "KLAVIYO_", "PERSONAS_MODEL"))}
    env["PERSONAS_HOME"] = str(tmp_path / "home")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "personas.cli", "eval", "--report", str(tmp_path / "out")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUDGET_SECONDS)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert elapsed < BUDGET_SECONDS
    assert "no OPENAI_API_KEY needed" in done.stdout
    root = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {s.name for s in discover_suites()}
    for name, suite in suites.items():
        props = {p.get("name"): p.get("value") for p in suite.find("properties") or []}
        assert float(props["pass_rate"]) >= float(props["threshold"]), name
        assert props["result"] == "pass"
        for case in suite.iter("testcase"):
            cassette = next(p.get("value") for p in case.iter("property") if p.get("name") == "cassette")
            assert cassette.startswith(("authored by hand", "recorded from", "no model")), (case.get("name"), cassette)
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "authored by hand" in report and "| lead_magnet |" in report and "| chat |" in report
    assert len(list(suites["chat"].iter("testcase"))) >= 15, "the klaviyo-assistant tool-selection suite runs too"


def test_cassettes_say_where_they_came_from_and_hold_no_secrets() -> None:
    for info in discover_suites():
        suite = load_suite(info.path)
        used = set()
        for case in suite.cases:
            path = suite.cassette_path(case)
            if case.authored_responses:
                assert path.exists(), f"{case.id}: authored_responses but no cassette; run --author"
            if not path.exists():
                continue
            used.add(path.resolve())
            text = path.read_text(encoding="utf-8")
            data = json.loads(text)
            assert scrub(text) == text, f"{path} holds something that looks like a key"
            provenance = data["provenance"]
            assert provenance["kind"] in ("authored", "recorded")
            if provenance["kind"] == "authored":
                assert "by hand" in provenance["method"] and case.authored_responses, path
                assert [i["response"] for i in data["interactions"]] == [
                    r.to_response(n) for n, r in enumerate(case.authored_responses)], f"{path} is stale: re-author it"
            else:
                assert provenance.get("model") and provenance.get("date"), path
        orphans = {p.resolve() for p in (suite.path / "cassettes").glob("*.json")} - used
        assert not orphans, f"cassettes no case uses: {sorted(map(str, orphans))}"
