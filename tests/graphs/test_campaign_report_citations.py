"""What the summary and the chart say stands on the figures: every rate beside the count it was divided
from, in words that read, missing figures said to be missing, and campaign names kept as text.

The figures (T totals, C campaigns) are what the model is given and what "Figures cited" prints. A
day on which a campaign sent the evening before still converts, and one of today's converters orders
twice: the day's 8 conversions are not what its conversion rate divides (2 converters of 100
delivered), and a figure "8 (conversion rate 2.0%)" reads as a wrong number. The run is the real graph
on a blank sandbox account (New York) built by the eval fixture, at noon UTC on 2026-03-10.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from markdown_it import MarkdownIt

from evals.fixtures import Fixture, build_fixture
from graphs.campaign_report import FAILED_EXIT, exit_code, missing_figures
from graphs.campaign_report.chart import chart_figure
from graphs.campaign_report.settings import Thresholds
from graphs.campaign_report.summary import build_figures
from klaviyo_sandbox import DEMO_KEY, Sandbox
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.ratelimit import RateLimiter
from personas.kernel.models import ModelChoice
from personas.runtime import run_persona
from personas.runtime.loader import load_persona

NOW = _dt.datetime(2026, 3, 10, 12, 0, tzinfo=_dt.UTC).timestamp()  # 08:00 in New York: the report is of the 9th
NO_MODEL = ModelChoice(None, "no model (test)", "none")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return tmp_path


def _figures(state: dict[str, Any]) -> dict[str, str]:
    """label -> value of every figure the model is given (and "Figures cited" prints when cited)."""
    figures, _ = build_figures(state)
    return {f["label"]: f["value"] for f in figures}


def test_the_days_conversion_rate_and_click_rate_name_the_counts_they_divide() -> None:
    sb = Sandbox(seed=1, demo_data=False, rate_limit_factor=None, clock=ManualClock(NOW))
    client = sb.client(rate_limiter=RateLimiter(ManualClock(NOW)))
    fixture = Fixture.model_validate({"campaigns": [
        # 23:45 on the 8th in New York; its clicks and orders come after midnight, on the 9th
        {"name": "Late night", "at": "2026-03-09T03:45:00Z", "recipients": 10, "opens": 6, "clicks": 3,
         "conversions": [{"metric": "Placed Order", "count": 5, "value": 10}]},
        {"name": "Day", "at": "2026-03-09T14:00:00Z", "recipients": 100, "opens": 30, "clicks": 6,
         "conversions": [{"metric": "Placed Order", "count": 2, "value": 50}]},
    ]})
    built = build_fixture(sb, client, fixture, NOW)
    buyer = client.call("get_profiles", filter='equals(email,"recipient-2-1@campaigns.example")').data[0]["id"]
    message = built.refs["campaign-message:Day"]
    sb.seeding.event(buyer, "Placed Order", {"$attributed_message": message, "$attributed_campaign":
                                             built.refs["campaign:Day"]},
                     at=_dt.datetime(2026, 3, 9, 18, tzinfo=_dt.UTC).timestamp(), unique_id="repeat-order", value=50,
                     trigger_flows=False)

    state = run_persona("campaign-reporter", {}, sandbox=sb, client=client, model=NO_MODEL, clock=sb.clock,
                        saver=InMemorySaver(), audit=False).state
    assert state["date"] == "2026-03-09"
    day = next(r for r in state["campaigns"] if r["name"] == "Day")
    assert (day["conversions"], day["conversion_uniques"], day["delivered"]) == (3, 2, 100)
    assert state["totals"]["conversions"] == 8 and state["totals"]["clicks_unique"] == 9

    figures = _figures(state)
    # the day's 8 conversions (5 of them from the campaign sent on the 8th) beside a rate of 2 people / 100
    assert figures["conversions (Placed Order)"] == (
        "8 (conversion rate 2.0%, from 2 converters of the campaigns sent that day)")
    # one campaign: 3 orders by 2 people
    assert "conversions 3 (conversion rate 2.0%, from 2 converters)" in figures["campaign Day"]
    # the noun follows the count it names, never the explanation after it
    assert figures["click rate"] == (
        "6.0% (6 unique clicks of the day's 9; the rest from campaigns sent on earlier days)")
    assert figures["open rate"].startswith("30.0% (30 unique opens")
    markdown = Path(state["files"]["markdown"]).read_text(encoding="utf-8")  # what "Figures cited" prints
    assert f"click rate: {figures['click rate']}" in markdown
    assert f"conversions (Placed Order): {figures['conversions (Placed Order)']}" in markdown


def test_a_summary_says_which_metrics_figures_are_missing_and_gives_the_next_ones() -> None:
    """Two conversion metrics; Klaviyo answers 503 to the first one's reporting call (every retry). The
    report exits 1, but its summary, the part people read, used to say nothing of it: no conversions
    at all (the second metric's were in the table only) and no word that any figure was missing."""
    sb = Sandbox(seed=1, demo_data=False, rate_limit_factor=None, clock=ManualClock(NOW))
    built = build_fixture(sb, sb.client(rate_limiter=RateLimiter(ManualClock(NOW))), Fixture.model_validate({
        "campaigns": [{"name": "Day", "at": "2026-03-09T14:00:00Z", "recipients": 40, "opens": 10, "conversions": [
            {"metric": "Placed Order", "count": 2, "value": 30}, {"metric": "Started Checkout", "count": 4,
                                                                    "value": 20}]}]}), NOW)
    failing = built.refs["metric:Placed Order"]
    inner = sb.transport()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.rstrip("/") == "/api/campaign-values-reports" and failing in request.content.decode():
            return httpx.Response(503, json={"errors": [{"status": 503, "code": "server_error",
                                                         "title": "Service unavailable", "detail": "Try later."}]})
        return inner.handle_request(request)

    client = KlaviyoClient(api_key=DEMO_KEY, base_url=sb.BASE_URL, transport=httpx.MockTransport(handler),
                           rate_limiter=RateLimiter(ManualClock(NOW)), clock=ManualClock(NOW))
    spec = load_persona("campaign-reporter")
    spec = spec.model_copy(update={"settings": {**spec.settings,
                                                "conversion_metrics": ["Placed Order", "Started Checkout"]}})
    state = run_persona(spec, {}, sandbox=sb, client=client, model=NO_MODEL, clock=sb.clock, saver=InMemorySaver(),
                        audit=False).state
    assert missing_figures(state) == ["Placed Order"] and exit_code(state) == FAILED_EXIT
    text = state["summary"]["text"]
    assert "Started Checkout: 4 conversions worth $80.00 [T6, T7]." in text, text
    assert "Figures for 'Placed Order' are missing: its reporting call failed" in text, text
    # the chart's heading, drawn from the same state: the second metric's conversions, and what is missing
    heading = " ".join(t.get_text() for t in chart_figure(state, Thresholds()).texts)
    assert "4 Started Checkout conversions worth $80.00" in heading and "n/a conversions" not in heading, heading
    assert "Figures for 'Placed Order' are missing" in heading, heading


def test_a_campaign_name_stays_text_in_the_markdown_report() -> None:
    """A campaign name is Klaviyo data, and Klaviyo keeps line breaks in it. Quoted raw by the template
    summary (and linkable in the table, the anomalies and the notes), a name made a fake "Reporting limit
    reached" heading, a tracking image that loads when the report is opened, and a link under other
    words. Rendered by a CommonMark renderer, the report holds none of them."""
    name = ("Spring sale\n\n## Reporting limit reached\n\n![x](http://tracker.example/p.png) "
            "[Log in](http://evil.example) <img src=http://tracker.example/q.png>")
    sb = Sandbox(seed=1, demo_data=False, rate_limit_factor=None, clock=ManualClock(NOW))
    client = sb.client(rate_limiter=RateLimiter(ManualClock(NOW)))
    build_fixture(sb, client, Fixture.model_validate({"campaigns": [
        {"name": name, "at": "2026-03-09T14:00:00Z", "recipients": 20, "bounced": 5, "opens": 3},
        {"name": "Other", "at": "2026-03-09T15:00:00Z", "recipients": 30, "opens": 20}]}), NOW)
    state = run_persona("campaign-reporter", {}, sandbox=sb, client=client, model=NO_MODEL, clock=sb.clock,
                        saver=InMemorySaver(), audit=False).state
    assert any(row["name"] == name for row in state["campaigns"]), "the state keeps the name as Klaviyo has it"
    assert len(state["anomalies"]) == 2 and "Anomalies: Spring sale ## Reporting" in state["summary"]["text"]
    html = MarkdownIt("commonmark").enable("table").render(
        Path(state["files"]["markdown"]).read_text(encoding="utf-8"))
    assert "<img" not in html and "<a " not in html, html
    assert "<h2>Reporting limit reached</h2>" not in html
    assert re.findall(r"<h2>(.*?)</h2>", html) == ["Summary", "Campaigns", "Anomalies", "Source"]
    assert "[Log in](http://evil.example)" in html, "the name still reads as it is written"
