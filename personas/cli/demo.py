"""``personas demo``: the lead-magnet sequencer and the campaign reporter, end to end, offline.

It starts the embedded Klaviyo sandbox with seeded data, signs up three leads of different quality
through the lead-magnet form (real API calls: consent recorded by a subscribe job, the form's
submission event), runs the sequencer on each submission and shows every step (score and factors,
sequence and why, the scheduled time, the message in the outbox), then runs the campaign reporter
for yesterday. It says which model answered: the live one when ``OPENAI_API_KEY`` is set,
otherwise the recorded responses in ``personas/demo_cassettes/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from graphs.campaign_report.view import terminal_view
from graphs.lead_magnet.fixtures import settle_sandbox, sign_up
from klaviyo_sandbox import Sandbox
from personas.kernel.config import Config
from personas.kernel.models import resolve_model
from personas.runtime.context import build_context
from personas.runtime.driver import run_persona
from personas.runtime.loader import load_persona

CASSETTES = Path(__file__).parent / "demo_cassettes"
LEADS = [
    {
        "email": "maya.fernandez@example.com",
        "first_name": "Maya",
        "last_name": "Fernandez",
        "timezone": "America/Denver",
        "answers": {
            "company_size": "201-1000",
            "role": "Outdoor program director",
            "interest": "team outfitting",
            "timeline": "this month",
            "budget": "$5k-$25k",
        },
    },
    {
        "email": "tom.becker@example.net",
        "first_name": "Tom",
        "last_name": "Becker",
        "timezone": "Europe/Berlin",
        "answers": {
            "company_size": "11-50",
            "role": "Trip leader",
            "interest": "guided trips",
            "timeline": "this quarter",
            "budget": "$1k-$5k",
        },
    },
    {
        "email": "priya.nair@example.org",
        "first_name": "Priya",
        "last_name": "Nair",
        "timezone": "Asia/Kolkata",
        "answers": {
            "company_size": "1-10",
            "role": "Enthusiast",
            "interest": "just the guide",
            "timeline": "just browsing",
            "budget": "<$1k",
        },
    },
]


def _submit(client: Any, sb: Any, lead: dict[str, Any], form: dict[str, Any]) -> dict[str, Any]:
    """Sign a lead up the way the form would: subscribe with consent, then the submission event."""
    event = sign_up(
        client,
        lead["email"],
        lead["answers"],
        timezone=lead["timezone"],
        list_id=form["list_id"],
        form=(form["id"], form["name"]),
        submission_id=f"demo-form:{lead['email']}",
        settle=settle_sandbox(sb),
    )
    profile_id = event["data"]["relationships"]["profile"]["data"]["id"]
    client.call("update_profile", id=profile_id, first_name=lead["first_name"], last_name=lead["last_name"])
    return dict(client.call("get_event", id=event["data"]["id"], include=["profile", "metric"]).body)


def _form(sb: Any, client: Any) -> dict[str, Any]:
    lists = {item["name"]: item["id"] for item in client.iterate("get_lists")}
    list_id = next((v for k, v in lists.items() if "Lead Magnet" in k), None)
    if list_id is None:
        list_id = client.call("create_list", name="Lead Magnet — Trail Guide").data["id"]
    forms = [f for f in sb.store.all("form") if "Trail" in str(f.attributes.get("name", ""))]
    form_id = forms[0].id if forms else "TRAILG"
    name = str(forms[0].attributes.get("name")) if forms else "Trail Guide"
    return {"id": form_id, "name": name, "list_id": list_id}


def run_demo(
    seed: int = 42,
    *,
    console: Any = None,
    lead_model: Any = None,
    report_model: Any = None,
    clock: Any = None,
    state_file: str | Path | None = None,
    config: Config | None = None,
) -> int:
    """Run the demo; returns a process exit code.

    With ``state_file`` the sandbox keeps its data in that SQLite file, to be opened afterwards with
    ``Sandbox(state=..., demo_data=False)`` (what the leads got: events, outbox).
    """
    from rich.console import Console
    from rich.table import Table

    config = config or Config.from_env()

    console = console or Console(highlight=False)
    started = time.perf_counter()
    console.rule("[bold]klaviyo-personas demo")
    sb = Sandbox(seed=seed, clock=clock, state=state_file)
    client = sb.client()
    counts = {t: sb.store.count(t) for t in ("profile", "list", "segment", "campaign", "flow", "event")}
    console.print(
        f"Embedded Klaviyo sandbox (seed {seed}, key pk_sandbox_demo, no KLAVIYO_API_KEY needed): "
        + ", ".join(f"{n} {t}s" for t, n in counts.items())
    )
    live = bool(config.openai_api_key)
    sequencer = load_persona("lead-magnet-sequencer", home=config.home)
    lead_model = lead_model or resolve_model(
        sequencer.model,
        config,
        replay=str(CASSETTES / "lead_magnet.json"),
        prefer_replay=not live,
        rerecord_hint="re-author it with `python scripts/author_demo_cassettes.py`",
    )
    console.print(f"Model: {lead_model.description}\n")
    form = _form(sb, client)
    for n, lead in enumerate(LEADS, 1):
        console.rule(f"Lead {n}: {lead['first_name']} {lead['last_name']} <{lead['email']}>")
        console.print("Form answers: " + ", ".join(f"{k}={v}" for k, v in lead["answers"].items()))
        event = _submit(client, sb, lead, form)
        ctx = build_context(sequencer, config=config, sandbox=sb, model=lead_model, user="demo", clock=sb.clock)
        result = run_persona(sequencer, {"input": event}, context=ctx, saver=_memory())
        state = result.state
        score = state["score"]
        table = Table(title=f"Lead score {score['total']} → band {score['band']}", show_header=True)
        table.add_column("points", justify="right")
        table.add_column("factor")
        table.add_column("why")
        for f in score["factors"]:
            table.add_row(f"{f['points']:+d}", f["factor"], f["why"])
        console.print(table)
        decision = state["decision"]
        console.print(f"Sequence: [bold]{decision.get('sequence')}[/bold] (decided by {decision.get('decided_by')})")
        console.print(f"  why: {decision.get('reason')}")
        if state.get("schedule"):
            sc = state["schedule"]
            console.print(f"Scheduled: {sc['local']} in {sc['timezone']} ({sc['send_at']} UTC): {sc['reason']}")
        settle_sandbox(sb)()
        for msg in sb.outbox(profile_id=state["profile"]["id"]):
            console.print(
                f"Outbox: ({msg['status']}) to {msg['to']} at {msg['send_at']}: "
                f'"{msg.get("subject")}" (flow {msg.get("flow_id")}, message {msg.get("position")})'
            )
        console.print(f"Outcome: {state.get('outcome')}\n")
    if lead_model.cassette is not None:
        lead_model.cassette.check_finished()
    _report(sb, console, live, config, report_model)
    console.rule()
    sb.close()  # writes the state file, if any
    if state_file:
        console.print(f"Sandbox state: {state_file} (open it with Sandbox(state=..., demo_data=False)).")
    console.print(
        f"Done in {time.perf_counter() - started:.1f} s. Model: {lead_model.description}. "
        "Audit log: `personas audit --persona lead-magnet-sequencer`."
    )
    return 0


def _report(sb: Any, console: Any, live: bool, config: Config, model: Any = None) -> None:
    reporter = load_persona("campaign-reporter", home=config.home)
    model = model or resolve_model(
        reporter.model,
        config,
        replay=str(CASSETTES / "campaign_report.json"),
        prefer_replay=not live,
        rerecord_hint="re-author it with `python scripts/author_demo_cassettes.py`",
    )
    console.rule("Campaign reporter: yesterday")
    ctx = build_context(reporter, config=config, sandbox=sb, model=model, user="demo", clock=sb.clock)
    state = run_persona(reporter, {}, context=ctx, saver=_memory()).state
    console.print(terminal_view(state))
    console.print(f"Model: {model.description}")
    if model.cassette is not None:
        model.cassette.check_finished()


def _memory() -> Any:
    from langgraph.checkpoint.memory import InMemorySaver

    return InMemorySaver()
