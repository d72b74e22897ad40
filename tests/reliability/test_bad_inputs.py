"""Bad input, everywhere it can come in: one clear line naming the field and the fix, and nothing written.

Four doors: the toolkit (a model's or a developer's arguments), the graphs' inputs (a webhook's
event, a sync's source, a report's date), the command line (``--input``, ``--resume``, ``--replay``
cassettes, missing keys), and persona files. Each case must fail with one line (what the CLI would
print: ``personas.cli.errors.error_line``) that contains the field and the fix, and the sandbox
must hold exactly what it held before: no partial write (its store compared before and after, and
no write answered 2xx in its request log).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.ratelimit import RateLimiter
from klaviyo_toolkit.tools import KlaviyoToolkit
from personas.cli.errors import error_line
from personas.kernel.models import ScriptedChatModel
from personas.runtime import RunDriver, build_context
from personas.runtime.loader import load_persona

from .fleet import ANSWERS, FORM, START, setup_client

pytestmark = pytest.mark.reliability

CATALOG = load_catalog()
ROOT = Path(__file__).resolve().parents[2]
NOPE = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
SUBSCRIBED = {"email": {"marketing": {"consent": "SUBSCRIBED"}}}


# -- the account the inputs are aimed at ---------------------------------------------------------------------
class World:
    """A sandbox with a list of two members, a third profile, a form submission, and files to sync."""

    def __init__(self, tmp: Path, state: Path | None = None) -> None:
        self.tmp = tmp
        self.sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock(START), request_log_size=None,
                          state=state)
        self.client = self.sb.client(rate_limiter=RateLimiter(factor=None), clock=self.sb.clock)
        self.kit = KlaviyoToolkit(self.client, scopes="*")
        kl = setup_client(self.sb)
        kl.call("bulk_subscribe_profiles", profiles=[{"email": f"{n}@example.com", "subscriptions": SUBSCRIBED}
                                                     for n in ("ann", "bob", "cy")])
        self.sb.clock.advance(60)
        self.sb.settle()
        ids = {p["email"]: p["id"] for p in kl.iterate("get_profiles")}
        self.ann, self.bob, self.cy = ids["ann@example.com"], ids["bob@example.com"], ids["cy@example.com"]
        self.list_id = kl.call("create_list", name="Members").data["id"]
        kl.call("add_profiles_to_list", id=self.list_id, profile_ids=[self.ann, self.bob])
        event = self.sb.seeding.event(self.ann, FORM, {"form_id": "TRAILG", **ANSWERS[0]}, unique_id="form:ann")
        self.event = dict(kl.call("get_event", id=event.id, include=["profile", "metric"]).body)
        kl.call("get_accounts")  # the sandbox makes its account on first sight; Klaviyo's always exists
        kl.close()
        self.sb.log.clear()

    def snapshot(self) -> dict[str, Any]:
        """Every resource's attributes and relationships (what a write, even a partial one, would change)."""
        store = self.sb.store
        self.sb.settle()
        return {kind: {r.id: (json.dumps(r.attributes, sort_keys=True, default=str), sorted(map(str, r.relationships)))
                       for r in store.all(kind)}
                for kind in ("profile", "list", "event", "metric", "campaign", "segment", "flow", "webhook")}

    def writes(self) -> list[str]:
        """Writes Klaviyo accepted (2xx) since the case began."""
        return [f"{r['method']} {r['operation_id']} {r['status']}" for r in self.sb.requests
                if r["method"] != "ASYNC" and not CATALOG.get(r["operation_id"]).read_only
                and r["status"] is not None and 200 <= r["status"] < 300]

    def csv(self, name: str, rows: list[dict[str, str]], header: list[str]) -> str:
        path = self.tmp / name
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, header)
            writer.writeheader()
            writer.writerows(rows)
        return str(path)

    def run(self, persona: str, payload: dict[str, Any], **settings: Any) -> Any:
        """Run a persona's graph on ``payload`` (state input), relaxing nothing."""
        spec = load_persona(persona)
        if settings:
            spec = spec.model_copy(update={"settings": {**spec.settings, **settings}})
        ctx = build_context(spec, client=self.client, clock=self.sb.clock, model=ScriptedChatModel([]),
                            thread_id=f"bad-{persona}")
        return RunDriver(ctx).invoke(RunDriver(ctx).spec.make_input(payload))


def _event(world: World, edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = json.loads(json.dumps(world.event))
    edit(doc)
    return doc


def _sync(world: World, source: dict[str, Any], target: str | None = None, mode: str = "mirror") -> Any:
    """A mirror sync (the mode that removes, where bad sources can do harm) unless ``mode`` says otherwise."""
    return world.run("segment-syncer", {"source": source, "target_list_id": target or world.list_id, "mode": mode})


@dataclass(frozen=True)
class Bad:
    """One bad input: what to do with it, and what the one-line error must name (field, fix)."""

    id: str
    act: Callable[[World], Any]
    field: str
    fix: str


def kit(op: str, **args: Any) -> Callable[[World], Any]:
    return lambda w: w.kit.run(op, **args)


def kit_ids(op: str, make: Callable[[World], dict[str, Any]]) -> Callable[[World], Any]:
    return lambda w: w.kit.run(op, **make(w))


def sub(email: str) -> dict[str, Any]:
    return {"email": email, "subscriptions": SUBSCRIBED}


GOOD = [sub(f"ok{i}@example.com") for i in range(4)]
ZW = "ann@example.com\u200b"

TOOLKIT = [
    Bad("email-zero-width", kit("create_profile", email=ZW), "email", "cannot be seen"),
    Bad("email-rtl-override", kit("create_profile", email="a\u202enn@example.com"), "email", "remove them"),
    Bad("email-nul", kit("create_profile", email="ann@exa\x00mple.com"), "email", "remove it"),
    Bad("email-bom", kit("create_profile", email="\ufeffann@example.com"), "email", "remove them"),
    Bad("email-line-separator", kit("create_profile", email="ann@exa\u2028mple.com"), "email", "remove them"),
    Bad("email-not-an-address", kit("create_profile", email="ann.example.com"), "email", "name@example.com"),
    Bad("email-double-at", kit("create_profile", email="ann@@example.com"), "email", "name@example.com"),
    Bad("phone-not-e164", kit("create_profile", phone_number="555-0100"), "phone_number", "E.164"),
    Bad("phone-invisible", kit("create_profile", phone_number="+15005550006\u200b"), "phone_number", "remove"),
    Bad("one-bad-email-in-a-batch", kit("bulk_subscribe_profiles", profiles=[*GOOD, sub("bad@@example.com")]),
        "profiles[4].email", "name@example.com"),
    Bad("one-hidden-email-in-a-batch", kit("bulk_subscribe_profiles", profiles=[*GOOD, sub(ZW)]),
        "profiles[4].email", "cannot be seen"),
    Bad("one-bad-phone-in-an-import", kit("bulk_import_profiles", profiles=[
        {"email": "ok@example.com"}, {"email": "x@example.com", "phone_number": "555"}]),
        "profiles[1].phone_number", "+15005550006"),
    Bad("1001-members", kit_ids("add_profiles_to_list", lambda w: {"id": w.list_id, "profile_ids": [w.cy] * 1001}),
        "profile_ids", "batches of 1000"),
    Bad("1001-removals", kit_ids("remove_profiles_from_list",
                                 lambda w: {"id": w.list_id, "profile_ids": [w.ann] * 1001}),
        "profile_ids", "batches of 1000"),
    Bad("1001-subscriptions", kit("bulk_subscribe_profiles",
                                  profiles=[sub(f"p{i}@example.com") for i in range(1001)]),
        "profiles", "batches of 1000"),
    Bad("unknown-list", kit_ids("add_profiles_to_list", lambda w: {"id": "NOPE12", "profile_ids": [w.cy]}),
        "NOPE12", "does not exist"),
    Bad("unknown-profile-among-known", kit_ids("add_profiles_to_list",
                                               lambda w: {"id": w.list_id, "profile_ids": [w.cy, NOPE]}),
        NOPE, "create it first"),
    Bad("unknown-list-in-an-import", kit("bulk_import_profiles", profiles=[{"email": "new@example.com"}],
                                         list_ids=["NOPE12"]), "lists", "use an id from get_lists"),
    Bad("unknown-list-in-a-subscribe", kit("bulk_subscribe_profiles", profiles=[sub("new@example.com")],
                                           list_id="NOPE12"), "list", "use an id from get_lists"),
    Bad("unknown-profile-update", kit("update_profile", id=NOPE, properties={"plan": "x"}), NOPE, "does not exist"),
    Bad("unknown-profile-event", kit("create_event", metric={"name": "Viewed"}, profile={"id": NOPE},
                                     properties={}), "profile/data/id", "give an existing id"),
    Bad("unknown-operation", kit("delete_every_list"), "delete_every_list", "Did you mean: delete_list"),
    Bad("unknown-argument", kit("create_list", nme="VIP"), "nme", "valid arguments"),
    Bad("missing-argument", kit("create_list"), "name", "give a value"),
    Bad("wrong-type", kit("get_profiles", page_size="ten"), "page_size", "integer"),
    Bad("page-size-over-the-limit", kit("get_profiles", page_size=1000), "page_size", "less than or equal to 100"),
    Bad("filter-on-a-field-not-allowed", kit("get_profiles", filter="equals(favorite_color,'red')"),
        "favorite_color", "allowed fields"),
    Bad("quoted-datetime", kit("get_events", filter="greater-than(datetime,'2026-01-01T00:00:00Z')"),
        "datetime", "without quotes"),
    Bad("properties-not-json", kit("create_event", metric={"name": "X"}, profile={"email": "ann@example.com"},
                                   properties="plan=pro"), "properties", "JSON text"),
    Bad("event-time-out-of-range", kit("create_event", metric={"name": "X"}, profile={"email": "ann@example.com"},
                                       properties={}, time="1999-12-31T00:00:00Z"), "time", "2000-01-01"),
    Bad("enum-value", kit_ids("update_list", lambda w: {"id": w.list_id, "opt_in_process": "triple_opt_in"}),
        "opt_in_process", "double_opt_in"),
    Bad("exclusive-arguments", kit_ids("bulk_suppress_profiles", lambda w: {
        "profiles": [{"email": "ann@example.com"}], "list_id": w.list_id}), "profiles", "give exactly one of"),
    Bad("exclusive-identifiers", kit("request_profile_deletion", profile={"email": "ann@example.com",
                                                                          "phone_number": "+15005550006"}),
        "profile.email", "give exactly one of"),
    Bad("no-identifier-in-a-batch", kit("bulk_subscribe_profiles", profiles=[*GOOD, {"subscriptions": SUBSCRIBED}]),
        "profiles[4]", "give at least one of"),
    Bad("campaigns-without-channel", kit("get_campaigns"), "filter", "messages.channel"),
    Bad("wrong-value-type", kit("create_event", metric={"name": "X"}, properties={},
                                profile={"email": "ann@example.com"}, value="lots"), "value", "number"),
]

GRAPHS = [
    Bad("lead-input-not-an-object", lambda w: w.run("lead-magnet-sequencer", {"input": ["not", "an", "event"]}),
        "input", "give a JSON object"),
    Bad("lead-input-a-profile", lambda w: w.run("lead-magnet-sequencer", {"input": {"data": {"type": "profile"}}}),
        "data", "no event found"),
    Bad("lead-input-no-id", lambda w: w.run("lead-magnet-sequencer", {"input": _event(
        w, lambda d: d["data"].pop("id"))}), "data.id", "as Klaviyo returns it"),
    Bad("lead-input-no-properties", lambda w: w.run("lead-magnet-sequencer", {"input": _event(
        w, lambda d: d["data"]["attributes"].pop("event_properties"))}), "data.attributes.event_properties",
        "form's answers"),
    Bad("lead-input-properties-a-list", lambda w: w.run("lead-magnet-sequencer", {"input": _event(
        w, lambda d: d["data"]["attributes"].update(event_properties=["a", "b"]))}),
        "data.attributes.event_properties", "must be an object"),
    Bad("lead-input-another-metric", lambda w: w.run("lead-magnet-sequencer", {"input": _event(
        w, lambda d: [i["attributes"].update(name="Placed Order") for i in d["included"] if i["type"] == "metric"])}),
        "data.relationships.metric",
        "pass a form-submission event"),
    Bad("lead-input-no-profile", lambda w: w.run("lead-magnet-sequencer", {"input": _event(
        w, lambda d: (d["data"].pop("relationships"), d.pop("included")))}), "data.relationships.profile",
        "include=profile"),
    Bad("lead-input-hidden-email", lambda w: w.run("lead-magnet-sequencer", {"input": _event(
        w, lambda d: d["included"][0]["attributes"].update(email=ZW))}), "email", "cannot be seen"),
    Bad("lead-input-unknown-profile", lambda w: w.run("lead-magnet-sequencer", {"input": _event(
        w, lambda d: (d["data"]["relationships"]["profile"]["data"].update(id=NOPE), d.pop("included")))}),
        NOPE, "deleted or merged"),
    Bad("sync-no-source", lambda w: w.run("segment-syncer", {"target_list_id": w.list_id}), "source", "missing"),
    Bad("sync-unknown-kind", lambda w: _sync(w, {"kind": "xlsx", "path": "members.xlsx"}), "source.kind", "csv"),
    Bad("sync-missing-file", lambda w: _sync(w, {"kind": "csv", "path": str(w.tmp / "gone.csv")}),
        "source.path", "no file at"),
    Bad("sync-no-target", lambda w: w.run("segment-syncer", {"source": {
        "kind": "csv", "path": w.csv("a.csv", [{"email": "ann@example.com"}], ["email"])}}),
        "target", "give the name or id"),
    Bad("sync-unknown-target", lambda w: _sync(w, {"kind": "csv", "path": w.csv(
        "b.csv", [{"email": "ann@example.com"}], ["email"])}, "NOPE12"), "target_list_id", "no Klaviyo list"),
    Bad("sync-no-email-column", lambda w: _sync(w, {"kind": "csv", "path": w.csv(
        "c.csv", [{"name": "Ann"}], ["name", "city"])}), "source.path", "no email column"),
    Bad("sync-not-utf8", lambda w: _sync(w, {"kind": "csv", "path": _write(w.tmp / "d.csv", b"email\nj\xf6rg@x.de\n")}),
        "source.path", "save it as UTF-8"),
    Bad("sync-empty-file", lambda w: _sync(w, {"kind": "csv", "path": _write(w.tmp / "e.csv", b"")}),
        "source.path", "empty"),
    Bad("sync-source-is-target", lambda w: _sync(w, {"kind": "list", "id": w.list_id}), "source",
        "is the target list"),
    Bad("sync-unknown-key", lambda w: w.run("segment-syncer", {"source": {"kind": "csv", "path": "x.csv"},
                                                               "target_list_id": w.list_id, "dryrun": True}),
        "dryrun", "unknown key"),
    Bad("sync-every-row-invalid", lambda w: _sync(w, {"kind": "csv", "path": w.csv(
        "f.csv", [{"email": "not-an-email"}, {"email": ZW}], ["email"])}), "source.path",
        "mode add-only"),
    Bad("report-not-a-date", lambda w: w.run("campaign-reporter", {"date": "yesterday-ish"}), "date", "YYYY-MM-DD"),
    Bad("report-impossible-date", lambda w: w.run("campaign-reporter", {"date": "2026-13-01"}), "date",
        "YYYY-MM-DD"),
    Bad("report-future-date", lambda w: w.run("campaign-reporter", {"date": "2030-01-01"}), "date",
        "has not started yet"),
    Bad("report-date-a-number", lambda w: w.run("campaign-reporter", {"date": 20261201}), "date",
        "give a JSON string"),
    Bad("report-unknown-key", lambda w: w.run("campaign-reporter", {"day": "2026-11-20"}), "day",
        "the input takes date"),
]


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.sb.close()


def one_line(outcome: Any) -> str:
    """What a person is told: the CLI's line for an exception, or a run's outcome."""
    if isinstance(outcome, BaseException):
        known = error_line(outcome)
        assert known is not None, f"no clear message for {type(outcome).__name__}: {outcome}"
        return known[0]
    state = outcome.state
    return str(state.get("outcome") or state.get("summary") or state)


@pytest.mark.parametrize("case", TOOLKIT + GRAPHS, ids=lambda c: c.id)
def test_bad_input_gets_one_line_naming_the_field_and_the_fix_and_writes_nothing(world: World, case: Bad) -> None:
    before = world.snapshot()
    try:
        outcome: Any = case.act(world)
    except Exception as exc:
        outcome = exc
    line = one_line(outcome)
    assert "\n" not in line.strip(), f"more than one line:\n{line}"
    assert case.field in line, f"{case.field!r} not named in: {line}"
    assert case.fix in line, f"{case.fix!r} (the fix) not in: {line}"
    assert world.writes() == [], "Klaviyo accepted a write"
    assert world.snapshot() == before, "the account changed"


def test_there_are_at_least_fifty_cases() -> None:
    assert len(TOOLKIT) + len(GRAPHS) + len(CLI) >= 50


# -- the command line ----------------------------------------------------------------------------------------
CLI: list[tuple[str, list[str], dict[str, str], str, str]] = [
    # id, argv ({state}, {event}, {home} are filled in), env, field, fix
    ("cli-input-not-json", ["run", "lead-magnet-sequencer", "--input", "{not json", "--sandbox-state", "{state}"],
     {}, "--input", "not valid JSON"),
    ("cli-input-no-file", ["run", "lead-magnet-sequencer", "--input", "nothing.json", "--sandbox-state", "{state}"],
     {}, "--input 'nothing.json'", "no such file"),
    ("cli-input-not-an-object", ["run", "lead-magnet-sequencer", "--input", "[1, 2]", "--sandbox-state", "{state}"],
     {}, "--input", "JSON object"),
    ("cli-input-bad-event", ["run", "lead-magnet-sequencer", "--input", '{"data": {"type": "profile"}}',
                             "--sandbox-state", "{state}"], {}, "data", "no event found"),
    ("cli-resume-not-an-answer", ["run", "segment-syncer", "--thread", "t1", "--resume", "maybe",
                                  "--sandbox-state", "{state}"], {}, "maybe", "approve, reject"),
    ("cli-resume-edit-without-args", ["run", "segment-syncer", "--thread", "t1", "--resume", '{"action": "edit"}',
                                      "--sandbox-state", "{state}"], {}, "edit", '"args"'),
    ("cli-resume-bad-json", ["run", "segment-syncer", "--thread", "t1", "--resume", '{"action": ',
                             "--sandbox-state", "{state}"], {}, "--resume", "approve, reject or JSON"),
    ("cli-resume-no-thread", ["run", "segment-syncer", "--resume", "approve", "--sandbox-state", "{state}"], {},
     "--resume", "--thread"),
    ("cli-resume-unknown-thread", ["run", "segment-syncer", "--thread", "never-ran", "--resume", "approve",
                                   "--sandbox-state", "{state}"], {}, "never-ran", "check the id"),
    ("cli-report-bad-date", ["run", "campaign-reporter", "--input", '{"date": "2026-02-30"}',
                             "--sandbox-state", "{state}"], {}, "date", "YYYY-MM-DD"),
    ("cli-cassette-missing", ["run", "lead-magnet-sequencer", "--input", "{event}", "--replay", "{home}/gone.json",
                              "--sandbox-state", "{state}"], {}, "gone.json", "re-record"),
    ("cli-cassette-broken", ["run", "lead-magnet-sequencer", "--input", "{event}", "--replay", "{home}/broken.json",
                             "--sandbox-state", "{state}"], {}, "broken.json", "re-record"),
    ("cli-cassette-no-provenance", ["run", "lead-magnet-sequencer", "--input", "{event}", "--replay",
                                    "{home}/anonymous.json", "--sandbox-state", "{state}"], {}, "provenance",
     "re-record"),
    ("cli-no-klaviyo-key", ["run", "campaign-reporter", "--input", "{}"], {}, "KLAVIYO_API_KEY", "personas auth login"),
    ("cli-no-key-for-a-run", ["run", "lead-magnet-sequencer", "--input", "{event}"], {}, "KLAVIYO_API_KEY",
     "--sandbox"),
    ("cli-unknown-persona", ["run", "lead-magnet-sequncer", "--input", "{}", "--sandbox-state", "{state}"], {},
     "lead-magnet-sequncer", "did you mean lead-magnet-sequencer"),
    ("cli-sync-bad-source", ["run", "segment-syncer", "--input", '{"source": {"kind": "xlsx", "path": "m.xlsx"}, '
                             '"target_list_id": "L"}', "--sandbox-state", "{state}"], {}, "source.kind", "csv"),
    ("cli-bad-persona-file", ["run", "broken", "--input", "{}", "--sandbox-state", "{state}"], {}, "scopes[0]",
     "did you mean 'accounts:read'"),
]
#: Exit codes that are not 2 (a usage error; a cassette missing or not loading is one: a file to fix).
CODES: dict[str, int] = {}


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every CLI case run through the console entry point, in one child process, against a sandbox
    state file; with the state file's contents before and after."""
    home = tmp_path_factory.mktemp("cli")
    state = home / "sandbox.sqlite"
    world = World(home, state=state)
    event_path = home / "event.json"
    event_path.write_text(json.dumps(world.event), encoding="utf-8")
    world.sb.close()
    (home / "broken.json").write_text("{ this is not json", encoding="utf-8")
    (home / "anonymous.json").write_text(json.dumps({"interactions": []}), encoding="utf-8")
    (home / "personas").mkdir()
    spec = (ROOT / "personas" / "definitions" / "campaign-reporter.yaml").read_text(encoding="utf-8")
    (home / "personas" / "broken.yaml").write_text(
        spec.replace("name: campaign-reporter", "name: broken").replace("  - accounts:read", "  - account:read", 1),
        encoding="utf-8")
    before = _state_rows(state)
    fill = {"{state}": str(state), "{event}": str(event_path), "{home}": str(home)}
    cases = [{"argv": [fill.get(a, a.replace("{home}", str(home))) for a in argv], "env": env}
             for _, argv, env, _, _ in CLI]
    (home / "cases.json").write_text(json.dumps(cases), encoding="utf-8")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("OPENAI_API_KEY", "KLAVIYO_API_KEY", "KLAVIYO_BASE_URL", "PERSONAS_CONNECTION")}
    env.update({"PERSONAS_HOME": str(home), "PYTHONPATH": str(ROOT),
                "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"})
    done = subprocess.run([sys.executable, "-m", "tests.reliability.cli_battery", str(home / "cases.json")],
                          cwd=home, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {"results": dict(zip([c[0] for c in CLI], results, strict=True)), "before": before,
            "after": _state_rows(state)}


def _state_rows(path: Path) -> list[Any]:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [(t, sorted(map(repr, db.execute(f"SELECT * FROM {t}")))) for t in sorted(tables)]
    finally:
        db.close()


@pytest.mark.parametrize(("case", "field", "fix"), [(c[0], c[3], c[4]) for c in CLI], ids=[c[0] for c in CLI])
def test_the_command_line_says_what_is_wrong_in_one_line_and_changes_nothing(
        cli_results: dict[str, Any], case: str, field: str, fix: str) -> None:
    result = cli_results["results"][case]
    assert result["code"] == CODES.get(case, 2), result
    lines = result["stderr"].strip().splitlines()
    if len(lines) == 2 and re.match(r"thread \S+: ", lines[0]):  # a run that made up its thread id said it first
        lines = lines[1:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result["stderr"]
    assert "Traceback" not in result["stderr"] + result["stdout"]
    assert field in lines[0] and fix in lines[0], lines[0]
    assert cli_results["after"] == cli_results["before"], "the sandbox's state file changed"
