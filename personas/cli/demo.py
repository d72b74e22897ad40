"""``personas demo``: the lead-magnet sequencer and the campaign reporter, end to end, offline.

It starts the embedded Klaviyo sandbox with seeded data, signs up three leads of different quality
through the lead-magnet form (real API calls: consent recorded by a subscribe job, the form's
submission event), runs the sequencer on each submission and shows every step (score and factors,
sequence and why, the scheduled time, the message in the outbox), then runs the campaign reporter
for yesterday. It says what answered for the model, counted per run: the live one when
``OPENAI_API_KEY`` is set (and how many of its calls failed), otherwise answers authored by hand and
replayed from ``personas/cli/demo_cassettes/``, which fit a fresh seed-42 sandbox only (another seed,
without a live model, runs with no model: the policy decides).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from graphs.campaign_report.view import terminal_view
from graphs.lead_magnet.fixtures import settle_sandbox, sign_up
from graphs.lead_magnet.render import outcome_line, sequence_line
from klaviyo_sandbox import Sandbox
from personas.kernel.cassette import public_base_url
from personas.kernel.config import Config
from personas.kernel.errors import UsageProblem
from personas.kernel.models import ModelChoice, resolve_model
from personas.runtime.context import audit_log, build_context
from personas.runtime.driver import run_persona
from personas.runtime.loader import BUILTIN_DIR, load_persona

from .common import visible_data

CASSETTES = Path(__file__).parent / "demo_cassettes"
#: The sandbox the authored answers were written for (scripts/author_demo_cassettes.py).
AUTHORED_SEED = 42
REAUTHOR = "re-author it with `python scripts/author_demo_cassettes.py`"
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


class Answers(BaseCallbackHandler):
    """What a run's model calls came to: how many were asked, answered, failed (and why).

    The demo reports this, not the model it was configured with: a live model that never answered
    must not be named as the one that did.
    """

    raise_error = False

    def __init__(self) -> None:
        self.asked = 0
        self.answered = 0
        self.failures: list[str] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.asked += 1

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.answered += 1

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        root = error
        while root.__cause__ is not None or (root.__context__ is not None and not root.__suppress_context__):
            root = root.__cause__ or root.__context__  # type: ignore[assignment]
        self.failures.append(type(root).__name__)


def counted(choice: ModelChoice) -> tuple[ModelChoice, Answers]:
    """``choice`` with a copy of its model that reports its calls to a new :class:`Answers`."""
    answers = Answers()
    if choice.model is None:
        return choice, answers
    model = choice.model.model_copy(update={"callbacks": [answers]})
    return dataclasses.replace(choice, model=model), answers


def configured(choice: ModelChoice) -> str:
    """What is set up to answer for the model, before anything is asked."""
    if choice.kind == "authored" and choice.cassette is not None:
        p = choice.cassette.provenance
        return (f"no live model (OPENAI_API_KEY is not set); answers authored by hand stand in for it, replayed "
                f"from {_shown(choice.cassette.path.parent)}/ (written {p.get('date')} by "
                "scripts/author_demo_cassettes.py)")
    if choice.kind == "live":
        return f"{choice.description} (configured; what answered is counted at the end)"
    return choice.description


def answered(runs: list[tuple[ModelChoice, Answers, str]], config: Config) -> str:
    """What actually answered for the model, counted over ``runs`` ((choice, answers, what each call
    was for)); runs with the same kind of model are told together."""
    kinds = {choice.kind for choice, _, _ in runs}
    if len(kinds) > 1:
        return "; ".join(f"{_plural(run[2])}: {answered([run], config)}" for run in runs)
    choice = runs[0][0]
    if choice.model is None:
        return choice.description
    asked = sum(a.asked for _, a, _ in runs)
    done = sum(a.answered for _, a, _ in runs)
    failures = [f for _, a, _ in runs for f in a.failures]
    parts = [f"{a.asked} {what if a.asked == 1 else _plural(what)}" for _, a, what in runs if a.asked]
    calls = f"{asked} call{'s' if asked != 1 else ''}" + (f" ({', '.join(parts)})" if len(runs) > 1 and parts else "")
    if not asked:
        return "not asked (nothing in this run needed a model's answer)"
    failed = ""
    if failures:
        kinds_failed = ", ".join(dict.fromkeys(failures))
        where = f" at {public_base_url(config.openai_base)}" if choice.kind == "live" else ""
        failed = (f"{len(failures)} failed ({kinds_failed}{where}); the policy decided, or a template wrote, "
                  "in their place")
    if choice.kind == "live":
        who = f"live model {config.model or _model_name(choice)} at {public_base_url(config.openai_base)}"
        if not done:
            return f"none answered: {failed}"
        return f"{who} answered {done} of {calls}" + (f"; {failed}" if failed else "")
    if choice.kind == "authored":
        where = _shown(choice.cassette.path.parent) + "/" if choice.cassette else "a cassette"
        head = f"no model answered; answers authored by hand ({where}) were replayed for {done} of {calls}"
        return head + (f"; {failed}" if failed else "")
    return f"{choice.description}: {done} of {calls} answered" + (f"; {failed}" if failed else "")


def _plural(what: str) -> str:
    """``lead decision`` -> ``lead decisions``, ``summary`` -> ``summaries``."""
    return what[:-1] + "ies" if what.endswith("y") else what + "s"


def _model_name(choice: ModelChoice) -> str:
    return str(getattr(choice.model, "model_name", "") or "?")


def _shown(path: Path) -> str:
    """``path`` relative to the project (``personas/cli/demo_cassettes``), wherever the demo runs from."""
    root = Path(__file__).resolve().parents[2]
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def _choose(persona: Any, file: str, config: Config, seed: int, given: Any) -> ModelChoice:
    """The model a demo persona uses: ``given``, else live with a key, else the authored answers, which
    were written for the shipped persona on a fresh seed-42 sandbox (another seed, or the user's file
    replacing the shipped persona, gets none: the policy decides)."""
    if given is not None:
        return given if isinstance(given, ModelChoice) else ModelChoice(given, "the model passed in", "scripted")
    live = bool(config.openai_api_key)
    if not live and persona.source and Path(persona.source).resolve().parent != BUILTIN_DIR.resolve():
        # the user's file replaces the shipped persona: the authored answers were written to the shipped
        # one's requests, and replayed to another they failed each lead, then the demo (exit 1), telling
        # the user to re-author the project's cassettes
        return ModelChoice(None, f"none: {persona.source} replaces the shipped {persona.name}, and the demo's "
                                 "answers authored by hand fit the shipped one, so the policy decides and a "
                                 "template writes (set OPENAI_API_KEY for a live model)", "none")
    if not live and seed != AUTHORED_SEED:
        data = "this state file's data (its seed is not recorded)" if seed == UNKNOWN_SEED else f"seed {seed}"
        return ModelChoice(None, f"none: the demo's answers authored by hand fit the seed-{AUTHORED_SEED} sandbox, "
                                 f"not {data}, so the policy decides and a template writes (set "
                                 "OPENAI_API_KEY for a live model)", "none")
    return resolve_model(persona.model, config, replay=str(CASSETTES / file), prefer_replay=not live,
                         rerecord_hint=REAUTHOR)


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
    ``Sandbox(state=..., demo_data=False)`` (what the leads got: events, outbox). Run again on the same
    file, the leads are already in their sequences: nothing starts or is sent twice.
    """
    from rich.console import Console
    from rich.table import Table

    config = config or Config.from_env()
    audit_log(config)  # the log every run writes, before anything is done: a state folder it cannot use stops here

    console = console or Console(highlight=False)
    started = time.perf_counter()
    reused = bool(state_file) and Path(str(state_file)).exists() and Path(str(state_file)).stat().st_size > 0
    sb = Sandbox(seed=seed, clock=clock, state=state_file)
    try:  # a failure part-way lets the state file go too (one process holds it at a time)
        made_with = _state_seed(sb, seed, state_file, reused)
        if made_with is None:  # a state file that does not say its seed: its data fits no authored answer
            seed = UNKNOWN_SEED
        console.rule("[bold]klaviyo-personas demo")
        client = sb.client()
        counts = {t: sb.store.count(t) for t in ("profile", "list", "segment", "campaign", "flow", "event")}
        said_seed = f"seed {made_with}" if made_with is not None else f"seed not recorded in {state_file}"
        console.print(
            f"Embedded Klaviyo sandbox ({said_seed}, key pk_sandbox_demo, no KLAVIYO_API_KEY needed): "
            + ", ".join(f"{n} {t}s" for t, n in counts.items())
        )
        if reused:
            console.print(f"Sandbox state {state_file} is reused: these leads signed up in an earlier run and "
                          "started their sequences then, so this run starts no new sequence and sends nothing twice.")
        sequencer = load_persona("lead-magnet-sequencer", home=config.home)
        lead_choice, lead_answers = counted(_choose(sequencer, "lead_magnet.json", config, seed, lead_model))
        console.print(f"Model: {configured(lead_choice)}\n")
        form = _form(sb, client)
        for n, lead in enumerate(LEADS, 1):
            console.rule(f"Lead {n}: {lead['first_name']} {lead['last_name']} <{lead['email']}>")
            console.print("Form answers: " + ", ".join(f"{k}={v}" for k, v in lead["answers"].items()))
            event = _submit(client, sb, lead, form)
            ctx = build_context(sequencer, config=config, sandbox=sb, model=lead_choice, user="demo", clock=sb.clock)
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
            console.print(sequence_line(decision, lead_choice.kind))
            console.print(f"  why: {decision.get('reason')}")
            if state.get("schedule"):
                sc = state["schedule"]
                console.print(f"Scheduled: {sc['local']} in {sc['timezone']} ({sc['send_at']} UTC): {sc['reason']}")
            settle_sandbox(sb)()
            for msg in sorted(sb.outbox(profile_id=state["profile"]["id"]),
                              key=lambda m: (str(m.get("send_at")), m.get("position") or 0)):
                console.print(
                    f"Outbox: ({msg['status']}) to {msg['to']} at {msg['send_at']}: "
                    f'"{msg.get("subject")}" (flow {msg.get("flow_id")}, message {msg.get("position")})'
                )
            console.print(outcome_line(state) + "\n")
        _check_played(lead_choice, reused)
        report_choice, report_answers = _report(sb, console, config, seed, report_model, reused)
        console.rule()
    except BaseException:
        sb.close()
        raise
    sb.close()  # writes the state file, if any
    if state_file:
        console.print(f"Sandbox state: {state_file} (open it with Sandbox(state=..., demo_data=False)).")
    said = answered([(lead_choice, lead_answers, "lead decision"), (report_choice, report_answers, "summary")],
                    config)
    console.print(
        f"Done in {time.perf_counter() - started:.1f} s. Model: {said}. "
        "Audit log: `personas audit --persona lead-magnet-sequencer`."
    )
    return 0


#: Where a demo's sandbox state file records the seed its data was made with.
SEED_KEY = "_personas_demo_seed"
#: The seed of a state file that does not record one (made by an earlier version, ``personas run`` or
#: ``personas sandbox serve``): never the authored one, so the policy decides.
UNKNOWN_SEED = -1


def _state_seed(sb: Any, seed: int, state_file: str | Path | None, reused: bool) -> int | None:
    """The seed the sandbox's data was made with: ``seed`` for new data (recorded in the state file),
    the one a reused state file records, or None when it records none.

    Raises:
        UsageProblem: the state file was made with another seed than ``--seed`` asks for (its data is
            that seed's: the authored answers would not fit it, and the header would misstate it).
    """
    if not state_file:
        return seed
    if not reused:
        sb.store.set_value(SEED_KEY, seed)
        sb.store.flush()  # with the data it describes, whatever happens next
        return seed
    recorded = sb.store.value(SEED_KEY)
    if recorded is None:
        return None
    if int(recorded) != seed:
        sb.close()
        raise UsageProblem(
            f"--sandbox-state {state_file} was made with --seed {recorded}, not {seed}: run it as "
            f"`personas demo --seed {recorded} --sandbox-state {state_file}`, or give a new file for seed {seed}"
        )
    return seed


def _check_played(choice: ModelChoice, reused: bool) -> None:
    """A fresh run must use every authored answer (one left over means the demo asks differently now:
    re-author them); a reused sandbox state needs fewer answers (no lead is decided again), which is fine."""
    if choice.cassette is not None and not reused:
        choice.cassette.check_finished()


def _report(sb: Any, console: Any, config: Config, seed: int, model: Any = None,
            reused: bool = False) -> tuple[ModelChoice, Answers]:
    reporter = load_persona("campaign-reporter", home=config.home)
    choice, answers = counted(_choose(reporter, "campaign_report.json", config, seed, model))
    console.rule("Campaign reporter: yesterday")
    ctx = build_context(reporter, config=config, sandbox=sb, model=choice, user="demo", clock=sb.clock)
    state = run_persona(reporter, {}, context=ctx, saver=_memory()).state
    # campaign names are Klaviyo data: their control characters are shown as escapes (\x1b), never obeyed
    # (a reused --sandbox-state may hold any name), as `personas run` shows them
    console.print(terminal_view(visible_data(state), choice.kind))
    console.print(f"Model: {answered([(choice, answers, 'summary')], config)}")
    _check_played(choice, reused)
    return choice, answers


def _memory() -> Any:
    from langgraph.checkpoint.memory import InMemorySaver

    return InMemorySaver()
