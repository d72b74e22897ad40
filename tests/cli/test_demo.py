"""``personas demo`` as a newcomer runs it: no keys at all, under a minute, every step shown.

The demo runs as a subprocess with no OpenAI or Klaviyo settings and ``PERSONAS_HOME`` in the test's
folder. With ``--sandbox-state FILE`` its embedded sandbox keeps its data in SQLite, so the test can open
what the sandbox holds afterwards and check that each lead's sequence started exactly once.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from klaviyo_sandbox import Sandbox
from tests.warm_cli import run_personas

from .conftest import PERSONAS, child_env

AUTHORED = "an answer authored by hand, replayed in place of the model"  # never "the model": no model answered
LEADS = {  # email -> (name, the sequence the demo ends with, who decided)
    "maya.fernandez@example.com": ("Maya Fernandez", "fast-track", AUTHORED),
    "tom.becker@example.net": ("Tom Becker", "nurture", "policy"),
    "priya.nair@example.org": ("Priya Nair", "education", AUTHORED),
}
TRIGGER_METRIC = "Lead Sequence Started"
LIMIT_S = 60  # the contract: the demo finishes in under a minute


def test_the_demo_runs_without_keys_in_under_a_minute_and_shows_every_step(tmp_path: Path) -> None:
    state = tmp_path / "demo-sandbox.sqlite"
    started = time.monotonic()
    proc = run_personas([str(PERSONAS), "demo", "--sandbox-state", str(state)], env=child_env(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    took = time.monotonic() - started
    print(f"personas demo took {took:.1f} s (limit {LIMIT_S} s)")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert took < LIMIT_S
    out = proc.stdout
    assert "Traceback" not in out + proc.stderr
    assert "no KLAVIYO_API_KEY needed" in out  # it says the sandbox stands in for Klaviyo

    # three leads: score and factors, sequence and why, the scheduled time, the outbox
    sections = re.split(r"─+ Lead \d: ", out)[1:]
    assert len(sections) == 3, out
    for section, (email, (name, sequence, decided_by)) in zip(sections, LEADS.items(), strict=True):
        assert section.startswith(f"{name} <{email}>")
        assert re.search(r"Lead score -?\d+ → band (hot|warm|cold)", section), section
        assert re.search(r"│ +\+5 │ base +│", section)  # the factors, with their points
        assert re.search(r"│ +[+-]\d+ │ answer timeline = ", section)
        assert f"Sequence: {sequence} (decided by {decided_by})" in " ".join(section.split())
        assert re.search(r"\n  why: \S", section)
        assert re.search(r"Scheduled: \d{4}-\d\d-\d\dT\d\d:\d\d[+-]\d\d:\d\d in \S+ \(", section)
        outbox_line = rf'Outbox: \(scheduled\) to {re.escape(email)} at \S+: "[^"]+" \(flow \w+, message 1\)'
        assert re.search(outbox_line, section)
        assert f"Outcome: sent: sequence '{sequence}'" in section
    # the one the policy decided says why: the model's answer was out of policy
    assert "the model chose 'fast-track', which band warm" in sections[1]

    # the campaign report for yesterday, its files, and which model answered
    report = out.split("Campaign reporter: yesterday", 1)[1]
    assert re.search(r"Campaign +┃ +Sent ┃ +Open ┃", report) and re.search(r"Weekend trail picks +│ +1,316 │", report)
    assert re.search(r"Webinar replay: layering[^│]*│ +189 │ +2\.0% ⚠ │ +0\.0% │ +21\.2% ⚠", report), (
        "anomalies marked", report)
    assert report.count("Two email campaigns had activity yesterday") == 1, "the summary once"
    png = Path(re.search(r"png +(\S+\.png)", report).group(1))  # type: ignore[union-attr]
    table = Path(re.search(r"csv +(\S+\.csv)", report).group(1))  # type: ignore[union-attr]
    day = dt.date.fromisoformat(png.parent.name)
    assert dt.date.today() - dt.timedelta(days=2) <= day <= dt.date.today()  # yesterday, in the account's zone
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    from PIL import Image

    with Image.open(png) as image:
        assert image.format == "PNG" and min(image.size) > 100
    with table.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and any("Weekend trail picks" in " ".join(r.values()) for r in rows), rows
    assert "Model: no live model (OPENAI_API_KEY is not set); answers authored by hand" in " ".join(out.split())
    assert "written by the model" not in out and "(decided by model)" not in out
    assert "reporting calls: 1" in out
    assert f"Sandbox state: {state}" in " ".join(out.split())

    # what the sandbox holds afterwards: one sequence start and one set of messages per lead
    sb = Sandbox(state=str(state), demo_data=False)
    try:
        client = sb.client()
        trigger = next(m["id"] for m in client.iterate("get_metrics") if m["name"] == TRIGGER_METRIC)
        for email, (_, sequence, _) in LEADS.items():
            profile = client.call("get_profiles", filter=f'equals(email,"{email}")').data
            assert len(profile) == 1, email
            pid = profile[0]["id"]
            starts = list(client.iterate("get_events",
                                         filter=f'and(equals(metric_id,"{trigger}"),equals(profile_id,"{pid}"))'))
            assert len(starts) == 1, (email, starts)
            assert starts[0]["event_properties"]["sequence"] == sequence
            outbox = sb.outbox(profile_id=pid)
            positions = Counter((m["flow_id"], m["position"]) for m in outbox)
            assert outbox and max(positions.values()) == 1, (email, outbox)  # each message once
            assert sorted(p for _, p in positions) == list(range(1, len(outbox) + 1))
            assert len({m["flow_id"] for m in outbox}) == 1
    finally:
        sb.close()


def test_a_state_file_keeps_the_seed_it_was_made_with(tmp_path: Path) -> None:
    def demo(*args: str) -> subprocess.CompletedProcess[str]:
        return run_personas([str(PERSONAS), "demo", *args], env=child_env(tmp_path), cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    state = tmp_path / "s7.sqlite"
    made = demo("--seed", "7", "--sandbox-state", str(state))
    assert made.returncode == 0, made.stderr
    assert "Embedded Klaviyo sandbox (seed 7," in made.stdout
    other = demo("--sandbox-state", str(state))  # --seed 42, the default
    assert other.returncode == 2 and "Traceback" not in other.stderr and not other.stdout
    assert (f"error: --sandbox-state {state} was made with --seed 7, not 42: run it as `personas demo --seed 7 "
            f"--sandbox-state {state}`") in other.stderr
    again = demo("--seed", "7", "--sandbox-state", str(state))
    assert again.returncode == 0, again.stderr
    assert "(seed 7," in again.stdout and "re-author" not in again.stdout + again.stderr

    legacy = tmp_path / "legacy.sqlite"  # made by `personas sandbox serve --seed 7`, or an earlier demo
    Sandbox(seed=7, state=str(legacy)).close()
    old = demo("--sandbox-state", str(legacy))
    assert old.returncode == 0, old.stdout + old.stderr
    said = " ".join(old.stdout.split())
    assert f"(seed not recorded in {legacy}," in said and "so the policy decides" in said
    assert "re-author" not in said and "Cassette" not in said + old.stderr


class ClosedPipe(io.StringIO):
    """A terminal that goes away part-way (``personas demo | head``): writing the second lead fails."""

    def write(self, text: str) -> int:
        if "Lead 2" in text:
            raise BrokenPipeError("the reader went away")
        return super().write(text)


def test_a_demo_that_fails_part_way_lets_its_state_file_go(tmp_path: Path) -> None:
    """One process holds a state file at a time: a demo stopped by an error must not keep it held."""
    from rich.console import Console

    from personas.cli.demo import run_demo
    from personas.kernel.config import Config

    state = tmp_path / "demo.sqlite"
    with pytest.raises(SystemExit):  # what the demo makes of a closed pipe
        run_demo(console=Console(file=ClosedPipe(), width=100), state_file=state, config=Config(home=tmp_path / "h"))
    sb = Sandbox(state=state, demo_data=False)  # refused (StateInUse) while the failed demo held it
    try:
        assert sb.store.count("profile") > 0, "what the demo did before it failed was written"
    finally:
        sb.close()


def test_campaign_names_in_a_reused_state_file_are_shown_not_obeyed(tmp_path: Path) -> None:
    """The demo's report printed names raw: a campaign named ``\\x1b]0;...\\x07\\x1b[2J`` in a reused
    --sandbox-state file retitled and cleared the user's terminal (``personas run`` shows escapes)."""
    def demo() -> subprocess.CompletedProcess[str]:
        return run_personas([str(PERSONAS), "demo", "--sandbox-state", str(state)], env=child_env(tmp_path),
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)

    state = tmp_path / "demo.sqlite"
    assert demo().returncode == 0
    sb = Sandbox(state=str(state), demo_data=False)
    try:
        for campaign in list(sb.store.iter("campaign")):
            campaign.attributes["name"] = "\x1b]0;owned\x07\x1b[2J" + str(campaign.attributes.get("name"))
            sb.store.put(campaign)
        sb.store.flush()
    finally:
        sb.close()
    again = demo()
    assert again.returncode == 0, again.stderr
    assert "\x1b" not in again.stdout and "\x07" not in again.stdout
    assert "\\x1b]0;owned\\x07\\x1b[2JWeekend" in "".join(again.stdout.split())  # shown, as escapes
