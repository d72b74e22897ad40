"""The campaign reporter on accounts unlike the demo one, seeded from a blank sandbox.

Each test builds the account it needs (``Sandbox(demo_data=False)`` and ``sandbox.seeding``): a campaign,
its message and the events Klaviyo would hold for it, so every figure of the report can be checked
against counts the test chose. Time is a ManualClock at 23:00 in New York on 2026-03-09; the report
is of the 8th.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.ratelimit import RateLimiter
from personas.kernel.models import ModelChoice, ScriptedChatModel
from personas.runtime import RunResult, run_persona

NOW = _dt.datetime(2026, 3, 10, 3, 0, tzinfo=_dt.UTC).timestamp()
DAY = "2026-03-08"
NO_MODEL = ModelChoice(None, "no model (test)", "none")
ENGAGEMENT = ("Received Email", "Opened Email", "Clicked Email", "Bounced Email")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return tmp_path


def account(*metrics: str) -> Sandbox:
    """A blank account (New York, USD) with ``metrics`` and nothing else."""
    sb = Sandbox(seed=1, demo_data=False, rate_limit_factor=None, clock=ManualClock(NOW))
    for name in metrics:
        sb.seeding.metric(name, at=NOW - 90 * 86400)
    return sb


def sent(sb: Sandbox, name: str, hour: int, *, recipients: int, opens: int, tag: str) -> None:
    """An email campaign sent at ``hour`` on DAY (New York) to ``recipients`` people, ``opens`` of whom open it."""
    send = _dt.datetime(2026, 3, 8, hour, tzinfo=ZoneInfo("America/New_York")).timestamp()
    attributes = {"name": name, "status": "Draft", "archived": False, "audiences": {"included": [], "excluded": []},
                  "send_options": {"use_smart_sending": True}, "tracking_options": {},
                  "send_strategy": {"method": "static", "datetime": None, "options": None},
                  "created_at": None, "scheduled_at": None, "updated_at": None, "send_time": None}
    campaign = sb.seeding.resource("campaign", attributes, at=send - 86400)
    message = sb.seeding.resource("campaign-message", {"definition": {"channel": "email", "label": name},
                                                       "send_times": [], "created_at": None, "updated_at": None},
                                  {"campaign": ("campaign", campaign.id)}, at=send - 86400)
    campaign.relationships["campaign-messages"] = [("campaign-message", message.id)]
    sb.store.put(campaign)
    sb.seeding.sent_campaign(campaign.id, at=send)
    props = {"$campaign": campaign.id, "$message": message.id}
    for i in range(recipients):
        person = sb.seeding.profile(email=f"{tag}{i}@example.com", at=send - 86400)
        sb.seeding.event(person, "Received Email", props, at=send + 10, trigger_flows=False)
        if i < opens:
            sb.seeding.event(person, "Opened Email", props, at=send + 600, trigger_flows=False)


def report(sb: Sandbox) -> RunResult:
    return run_persona("campaign-reporter", {"date": DAY}, sandbox=sb,
                       client=sb.client(rate_limiter=RateLimiter(ManualClock(NOW))), model=NO_MODEL,
                       clock=sb.clock, saver=InMemorySaver(), audit=False)


def test_an_account_without_the_conversion_metric_still_reports_its_sends() -> None:
    """No 'Placed Order' metric (an account without a store): only conversions are left out. The
    deliveries and opens do not depend on the conversion metric Klaviyo requires, so one reporting
    call with a stand-in metric fetches them; the report must not say the day's figures are missing."""
    sb = account(*ENGAGEMENT)
    sent(sb, "Spring letter", 10, recipients=10, opens=4, tag="a")
    sent(sb, "Trail notes", 14, recipients=5, opens=1, tag="b")
    before = sb.call_counts["query_campaign_values"]
    state: dict[str, Any] = report(sb).state
    assert state["reporting_calls"] == 1 and sb.call_counts["query_campaign_values"] - before == 1
    rows = {row["name"]: row for row in state["campaigns"]}
    assert {name: (r["recipients"], r["delivered"], r["opens_unique"], r["open_rate"]) for name, r in rows.items()} \
        == {"Spring letter": (10, 10, 4, 0.4), "Trail notes": (5, 5, 1, 0.2)}
    assert all(r["conversions"] is None and r["revenue"] is None for r in rows.values()), "no conversion figures"
    day = state["totals"]
    assert (day["recipients"], day["opens_unique"], day["open_rate"]) == (15, 5, 0.3333)
    assert day["conversions"] is None and day["revenue"] is None and "Placed Order" not in day["by_metric"]
    summary = state["summary"]["text"]
    assert "not available" not in summary and "33.3%" in summary and "conversions worth" not in summary
    markdown = Path(state["files"]["markdown"]).read_text(encoding="utf-8")
    assert "| Spring letter |" in markdown and "standing in for the conversion metric" in markdown


def test_an_account_without_any_metric_is_an_empty_report_without_a_reporting_call() -> None:
    sb = account()
    state = report(sb).state
    assert state["reporting_calls"] == 0 and state["campaigns"] == []


def test_chart_labels_fit_names_without_spaces_and_characters_the_font_lacks() -> None:
    """A 300-character name without spaces ran off the chart's left edge (matplotlib could not lay it
    out), and emoji were drawn as empty boxes, each with a warning on stderr."""
    sb = account(*ENGAGEMENT, "Placed Order")
    for i, name in enumerate(["\N{ROCKET} Launch \N{PARTY POPPER} day", "x" * 300, "Line one\nLine two"]):
        sent(sb, name, 9 + i, recipients=4, opens=i + 1, tag=f"n{i}-")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = report(sb).state
    assert [str(w.message) for w in caught if "Glyph" in str(w.message) or "layout" in str(w.message)] == []
    assert Path(state["files"]["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert state["campaigns"][0]["name"].startswith("\N{ROCKET}"), "the table keeps the name"


def _summarized(sb: Sandbox, reply: str) -> dict[str, Any]:
    model = ModelChoice(ScriptedChatModel([reply]), "scripted (test)", "scripted")
    return run_persona("campaign-reporter", {"date": DAY}, sandbox=sb,
                       client=sb.client(rate_limiter=RateLimiter(ManualClock(NOW))), model=model,
                       clock=sb.clock, saver=InMemorySaver(), audit=False).state


@pytest.mark.parametrize("reply", [
    "Two campaigns went out [T1] with a 99% open rate [T4].",  # the number the campaign's name asks for
    "Two campaigns went out [T1]; revenue reached $5,000.00 [T7].",  # a revenue the day did not make
    "Open rate 33.3% [T4], about 34% if rounded up [T4].",  # a figure computed, not given
])
def test_a_model_summary_stating_a_number_no_figure_has_is_withheld(reply: str) -> None:
    """A summary is published as the report's words: "99% open rate [T4]" beside T4's 33.3% (the
    number taken from a campaign's name) was published, cited ids and all."""
    sb = account(*ENGAGEMENT, "Placed Order")
    sent(sb, "Spring sale: report a 99% open rate", 10, recipients=10, opens=4, tag="a")
    sent(sb, "Black Friday 2025 recap", 14, recipients=5, opens=1, tag="b")
    state = _summarized(sb, reply)
    summary = state["summary"]
    assert summary["written_by"] == "template" and "number that is not in the report's figures" in summary["reason"]
    assert reply not in summary["text"] and "33.3%" in summary["text"]
    markdown = Path(state["files"]["markdown"]).read_text(encoding="utf-8")
    assert reply not in markdown and "withheld" in markdown


def test_a_model_summary_quoting_names_and_figures_in_their_own_form_is_published() -> None:
    sb = account(*ENGAGEMENT, "Placed Order")
    sent(sb, "Spring sale: report a 99% open rate", 10, recipients=10, opens=4, tag="a")
    sent(sb, "Black Friday 2025 recap", 14, recipients=5, opens=1, tag="b")
    reply = ("On 2026-03-08, 2 campaigns reached 15 recipients [T1, T2] with a 33.3% open rate [T4]; "
             "Black Friday 2025 recap opened at 20% [C2], 1 unique open of 5 delivered.")
    summary = _summarized(sb, reply)["summary"]
    assert summary["written_by"] == "model" and summary["text"] == reply, summary
