"""The segment syncer against the in-process sandbox (no demo data, rate limits off, a manual clock).

Each test builds its own list and profiles through the sandbox's API, runs the graph with the
persona's context, and checks the list, consent and the calls the sandbox saw.
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import re
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command
from pydantic import ValidationError

from graphs import graph_spec
from graphs.segment_sync import Settings, SyncInputError, build_graph, parse_input, read_file
from klaviyo_sandbox import Faults, Sandbox
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.effects import APPROVAL_EFFECTS
from klaviyo_toolkit.errors import ServerError
from klaviyo_toolkit.ratelimit import RateLimiter
from personas.kernel.context import PersonaContext
from personas.kernel.spec import ApprovalPolicy
from personas.runtime import build_context
from personas.runtime.loader import load_persona

WRITES = ("bulk_import_profiles", "add_profiles_to_list", "bulk_subscribe_profiles", "remove_profiles_from_list")


class World:
    """A sandbox, a client on it, and helpers to seed lists and read them back."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.clock = ManualClock()
        self.sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=self.clock)
        self.client = self.sb.client(clock=self.clock, rate_limiter=RateLimiter(self.clock, factor=None))
        self.calls: list[Any] = []  # every CallRecord the syncer's client made
        self.client.hooks.append(self.calls.append)

    def settle(self) -> None:
        """Let the sandbox's bulk jobs finish."""
        self.clock.advance(60)
        self.sb.tick()

    def new_list(self, name: str, emails: Iterable[str] = ()) -> str:
        list_id: str = self.client.call("create_list", name=name).data["id"]
        batch = list(emails)
        for start in range(0, len(batch), 1000):
            self.client.call(
                "bulk_import_profiles", profiles=[{"email": e} for e in batch[start : start + 1000]], list_ids=[list_id]
            )
        self.settle()
        return list_id

    def suppress(self, *emails: str) -> None:
        self.client.call("bulk_suppress_profiles", profiles=[{"email": e} for e in emails])
        self.settle()

    def subscribe(self, *emails: str) -> None:
        consent = {"email": {"marketing": {"consent": "SUBSCRIBED"}}}
        self.client.call("bulk_subscribe_profiles", profiles=[{"email": e, "subscriptions": consent} for e in emails])
        self.settle()

    def reset_counts(self) -> None:
        self.sb.call_counts.clear()
        self.sb.requests.clear()
        self.calls.clear()

    def members(self, list_id: str) -> set[str]:
        return {p["email"] for p in self.client.iterate("get_profiles_for_list", id=list_id, page_size=100)}

    def consent(self, email: str) -> dict[str, Any]:
        page = self.client.call(
            "get_profiles", filter=f'equals(email,"{email}")', additional_fields_profile=["subscriptions"]
        )
        marketing: dict[str, Any] = page.data[0]["attributes"]["subscriptions"]["email"]["marketing"]
        return marketing

    def sent(self, operation: str) -> list[Any]:
        """Bodies of the syncer's successful calls to ``operation``."""
        return [c.body for c in self.calls if c.operation_id == operation and c.error is None]

    def context(
        self, thread: str, *, approvals: bool = False, dry_run: bool | None = None, **settings: Any
    ) -> PersonaContext:
        """The shipped persona; ``approvals`` keeps its policy (removals stop), else every effect of every
        write is waived."""
        spec = load_persona("segment-syncer")
        policy = spec.approval if approvals else ApprovalPolicy(relax={op: sorted(APPROVAL_EFFECTS) for op in WRITES})
        spec = spec.model_copy(update={"approval": policy, "settings": {**spec.settings, **settings}})
        return build_context(spec, client=self.client, audit=False, thread_id=thread, clock=self.clock, dry_run=dry_run)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return World(tmp_path)


def write_csv(path: Path, rows: Iterable[dict[str, Any]], header: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def emails(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}{i}@example.com" for i in range(start, start + n)]


def run(ctx: PersonaContext, payload: dict[str, Any] | None, *, saver: Any = None, resume: Any = None) -> Any:
    """Invoke the graph once; its state snapshot."""
    graph = build_graph(saver if saver is not None else InMemorySaver())
    config = {"configurable": {"thread_id": ctx.thread_id}, "recursion_limit": 500}
    arg = Command(resume=resume) if resume is not None else ({"input": payload} if payload is not None else None)
    graph.invoke(arg, config, context=ctx)
    return graph.get_state(config)


def interrupts(snapshot: Any) -> list[Any]:
    return [i.value for task in snapshot.tasks for i in task.interrupts]


# -- persona, settings and input ----------------------------------------------------------------------
def test_persona_loads_with_removals_needing_approval_and_batch_size_capped() -> None:
    spec = load_persona("segment-syncer")
    assert spec.graph == "segment_sync" and spec.approval.mode == "effects"
    assert "remove_profiles_from_list" in spec.tools.include
    assert spec.approval.relax == {
        "bulk_subscribe_profiles": ["consent", "sending"],  # consent-column rows, with the list
        "bulk_import_profiles": ["identity", "sending"],  # the file is the system of record; the list rides along
        "add_profiles_to_list": ["sending"],
    }, "named, each with the effects its graph code accounts for, nothing else"
    assert graph_spec("segment_sync").settings is Settings
    settings = Settings.model_validate(spec.settings)
    assert settings.batch_size == 1000 and settings.subscribe_with_consent and settings.mode == "add-only"
    with pytest.raises(ValidationError, match="at most 1000 profiles"):
        Settings(batch_size=1001)


def test_bad_input_names_the_field_and_the_fix(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "ok.csv", [{"email": "a@example.com"}], ["email"])
    cases = [
        (
            {"source": {"kind": "csv", "path": str(tmp_path / "missing.csv")}, "mode": "mirror", "target_list_id": "L"},
            "source.path: no file at",
        ),
        ({"source": {"kind": "xlsx", "path": str(csv_path)}, "mode": "mirror", "target_list_id": "L"}, "source.kind"),
        ({"source": {"kind": "csv", "path": str(csv_path)}}, "target: give the name or id"),
        (
            {"source": {"kind": "list", "id": "L"}, "mode": "mirror", "target_list_id": "L"},
            "source: is the target list",
        ),
        (
            {"source": {"kind": "csv", "path": str(csv_path)}, "mode": "mirror", "target_list_id": "L", "dryrun": True},
            "dryrun",
        ),
    ]
    for payload, message in cases:
        with pytest.raises(SyncInputError, match=message):
            parse_input(payload)
    request = parse_input({"source": {"path": str(csv_path)}, "mode": "mirror", "target_list_id": " L "})
    assert request.source.kind == "csv" and request.target_list_id == "L" and not request.dry_run


def test_the_input_example_an_error_gives_works_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example a refused input is shown names a file the project ships: copied as it is (from
    the repository's root, as the README runs commands), it is taken."""
    with pytest.raises(SyncInputError) as refused:
        parse_input([])
    example = json.loads(str(refused.value).split("e.g. ", 1)[1])
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    assert Path(example["source"]["path"]).is_file(), example
    assert parse_input(example).source.kind == "csv"


def test_file_readers_stream_and_report_each_bad_row(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "rows.csv",
        [
            {"E-mail Address": "Ann@Example.com", "Phone": "", "consent": "Yes"},
            {"E-mail Address": "not-an-email", "Phone": "", "consent": "yes"},
            {"E-mail Address": "", "Phone": "+1 (500) 555-0006", "consent": "no"},
            {"E-mail Address": "", "Phone": "555-0006", "consent": ""},
            {"E-mail Address": "", "Phone": "", "consent": "yes"},
        ],
        ["E-mail Address", "Phone", "consent"],
    )
    request = parse_input({"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": "L"})
    rows = read_file(request.source, "consent", {"yes"})
    assert inspect.isgenerator(rows)  # streamed: nothing is read before it is asked for
    got = list(rows)
    assert got[0].email == "Ann@Example.com" and got[0].consent is True  # type: ignore[union-attr]
    assert got[2].phone_number == "+15005550006" and got[2].consent is False  # type: ignore[union-attr]
    bad = [(r.row, r.field) for r in got if hasattr(r, "problem")]
    assert bad == [(3, "email"), (5, "phone_number"), (6, "email")]
    assert "E.164" in got[3].problem  # type: ignore[union-attr]

    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"email": "b@example.com", "consent": true}\n{oops\n[1, 2]\n\n{"Email": "c@example.com"}\n')
    rows = list(
        read_file(
            parse_input(
                {"source": {"kind": "jsonl", "path": str(jsonl)}, "mode": "mirror", "target_list_id": "L"}
            ).source,
            "consent",
            {"true"},
        )
    )
    assert [getattr(r, "email", None) for r in rows] == ["b@example.com", None, None, "c@example.com"]
    assert rows[0].consent is True and "not valid JSON" in rows[1].problem  # type: ignore[union-attr]


def test_a_file_without_an_email_column_fails_before_any_call(world: World) -> None:
    list_id = world.new_list("Target")
    path = write_csv(world.home / "names.csv", [{"name": "Ann"}], ["name", "city"])
    world.reset_counts()
    with pytest.raises(SyncInputError, match=r"no email column \(its columns: name, city\)"):
        run(
            world.context("no-email"),
            {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id},
        )
    assert sum(world.sb.call_counts.values()) == 0


@pytest.mark.parametrize(("mark", "name"), [(";", "semicolons (;)"), ("\t", "tabs"), ("|", "vertical bars (|)")])
def test_a_file_separated_by_another_mark_than_commas_says_so_before_any_call(world: World, mark: str,
                                                                              name: str) -> None:
    list_id = world.new_list("Target")
    path = world.home / "excel.csv"  # what Excel saves as "CSV" in many locales
    path.write_text(mark.join(["email", "first_name", "consent"]) + "\n" + mark.join(["semi@example.com", "S", "yes"]))
    world.reset_counts()
    said = f"{path} is separated by {name}, not commas; save it as CSV with commas (in Excel: CSV UTF-8 (Comma "
    with pytest.raises(SyncInputError, match=re.escape(said)):
        run(world.context("semicolons"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": list_id})
    assert sum(world.sb.call_counts.values()) == 0


def test_an_unknown_target_list_is_a_clear_error(world: World) -> None:
    path = write_csv(world.home / "a.csv", [{"email": "a@example.com"}], ["email"])
    with pytest.raises(SyncInputError, match="target: no list is named 'nope'; lists: none"):
        run(world.context("unknown"), {"source": {"kind": "csv", "path": str(path)}, "target": "nope"})
    with pytest.raises(SyncInputError, match="target_list_id: no Klaviyo list has the id 'Nope12'"):
        run(world.context("unknown-id"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": "Nope12"})


# -- the diff, consent and the call budget --------------------------------------------------------------
def test_adds_and_removes_exactly_the_difference_in_the_fewest_calls(world: World) -> None:
    kept, dropped, new = emails("kept", 1800), emails("gone", 1200), emails("new", 2500)
    list_id = world.new_list("Target", kept + dropped)
    path = write_csv(
        world.home / "src.csv", ({"email": e, "first_name": "Pat"} for e in kept + new), ["email", "first_name"]
    )
    world.reset_counts()
    state = run(
        world.context("diff"),
        {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id},
    )
    result = state.values["result"]
    counts = world.sb.call_counts
    assert result["status"] == "done"
    assert result["adds"] == {
        "planned": 2500, "applied": 2500, "refused": 0, "rejected": 0, "failed": 0, "not_sent": 0, "batches": 3
    }
    assert result["removes"]["applied"] == 1200 and result["unchanged"] == 1800
    assert counts["bulk_import_profiles"] == 3  # 2,500 adds: exactly 3 batches
    assert counts["remove_profiles_from_list"] == 2
    assert counts["bulk_subscribe_profiles"] == 0 and counts["add_profiles_to_list"] == 0
    batches = world.sent("bulk_import_profiles")
    assert all(len(body["data"]["attributes"]["profiles"]["data"]) <= 1000 for body in batches)
    reads = counts["get_profiles_for_list"]
    assert reads == 30  # 3,000 members, 100 per page
    minimum = math.ceil(2500 / 1000) + math.ceil(1200 / 1000) + reads
    assert sum(counts.values()) <= 1.05 * minimum, dict(counts)
    assert result["jobs"]["finished"] == 3 and result["jobs"]["failed_rows"] == 0
    assert world.members(list_id) == set(kept + new)
    assert world.consent("new0@example.com")["consent"] == "NEVER_SUBSCRIBED"  # adding never subscribes


def test_a_profile_stored_in_another_case_that_unsubscribed_is_never_resubscribed(world: World) -> None:
    """The source writes the address in lower case; the profile was made as Mixed.Case@Example.com and
    unsubscribed. The lookup must find it (email matching ignores case) so that its consent holds."""
    world.client.call("create_profile", email="Mixed.Case@Example.com")
    world.client.call("bulk_unsubscribe_profiles", profiles=[
        {"email": "Mixed.Case@Example.com", "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}}])
    world.settle()
    target = world.new_list("Target")
    path = write_csv(world.home / "case.csv", [{"email": "mixed.case@example.com", "consent": "YES"}],
                     ["email", "consent"])
    world.reset_counts()
    result = run(world.context("case"), {"source": {"kind": "csv", "path": str(path)},
                                         "target_list_id": target}).values["result"]
    world.settle()
    assert not world.sent("bulk_subscribe_profiles"), "an unsubscribed profile is never subscribed again"
    assert world.consent("Mixed.Case@Example.com")["consent"] == "UNSUBSCRIBED"
    assert result["suppressed"]["count"] == 1


def test_only_consenting_rows_are_subscribed_and_suppressed_ones_never(world: World) -> None:
    list_id = world.new_list("Target", ["member-sup@example.com", "member-sub@example.com", "member@example.com"])
    world.new_list("Elsewhere", ["outside-sup@example.com"])
    world.suppress("member-sup@example.com", "outside-sup@example.com")
    world.subscribe("member-sub@example.com")
    rows = [
        {"email": "member-sup@example.com", "consent": "yes"},  # suppressed member: reported, never subscribed
        {"email": "member-sub@example.com", "consent": "yes"},  # already subscribed: nothing to do
        {"email": "member@example.com", "consent": "TRUE"},  # member with consent: subscribed
        {"email": "outside-sup@example.com", "consent": "1"},  # suppressed, not in the list: added, not subscribed
        {"email": "yes@example.com", "consent": "subscribed"},  # new with consent: added and subscribed
        {"email": "no@example.com", "consent": "no"},  # new without consent: added only
        {"email": "blank@example.com", "consent": ""},
        {"phone_number": "+15005550006", "consent": "yes"},  # consent but no email: added, not subscribed
    ]
    path = write_csv(world.home / "consent.csv", rows, ["email", "phone_number", "consent"])
    world.reset_counts()
    result = run(
        world.context("consent"),
        {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id},
    ).values["result"]
    subscribed = [
        p["attributes"]["email"]
        for body in world.sent("bulk_subscribe_profiles")
        for p in body["data"]["attributes"]["profiles"]["data"]
    ]
    assert sorted(subscribed) == ["member@example.com", "yes@example.com"]
    assert all(
        body["data"]["relationships"]["list"]["data"]["id"] == list_id for body in world.sent("bulk_subscribe_profiles")
    )
    assert result["suppressed"]["count"] == 2 and result["already_subscribed"] == 1
    assert result["consent_without_email"] == 1 and result["subscribes"]["applied"] == 2
    assert "outside-sup@example.com (USER_SUPPRESSED)" in result["suppressed"]["sample"]
    assert world.sb.call_counts["get_profiles"] == 1  # consent of the rows not in the list: one lookup
    world.settle()
    assert world.consent("yes@example.com")["consent"] == "SUBSCRIBED"
    for email in ("no@example.com", "blank@example.com"):
        assert world.consent(email)["consent"] == "NEVER_SUBSCRIBED"
    for email in ("member-sup@example.com", "outside-sup@example.com"):
        marketing = world.consent(email)
        assert marketing["suppression"] and marketing["consent"] != "SUBSCRIBED"
    assert world.members(list_id) >= {"yes@example.com", "no@example.com", "outside-sup@example.com"}


def test_invalid_rows_are_reported_counted_and_never_sent(world: World) -> None:
    list_id = world.new_list("Target", ["a@example.com"])
    path = write_csv(
        world.home / "mixed.csv",
        [
            {"email": "a@example.com"},
            {"email": "b@example"},
            {"email": "c@example.com", "phone_number": "12345"},
            {"first_name": "Ann"},
            {},  # a blank line is not a row
            {"email": "A@example.com"},  # the same person again
            {"email": "d@example.com"},
        ],
        ["email", "phone_number", "first_name"],
    )
    result = run(
        world.context("invalid"),
        {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id},
    ).values["result"]
    counts = (result["source_rows"], result["valid_rows"], result["invalid_rows"], result["duplicate_rows"])
    assert counts == (6, 3, 3, 1)
    bad = [(r["row"], r["field"]) for r in result["invalid"]["rows"]]
    assert bad == [(3, "email"), (4, "phone_number"), (5, "email")]
    sent = json.dumps(world.sent("bulk_import_profiles"))
    assert "b@example" not in sent and "c@example.com" not in sent and "d@example.com" in sent
    world.settle()
    assert world.members(list_id) == {"a@example.com", "d@example.com"}


def test_a_row_with_more_fields_than_the_header_is_reported_not_shifted(world: World) -> None:
    """An unquoted comma ("Smith, John") shifts the later values: a stray value would land in the
    consent column. The row is reported with its number; a mirror sync keeps that member."""
    list_id = world.new_list("Target", ["d1@example.com"])
    path = world.home / "shifted.csv"
    path.write_text("email,name,consent\nd1@example.com,Smith, John,yes\nd2@example.com,Jones,yes\n"
                    "d3@example.com,no\n", encoding="utf-8")
    result = run(world.context("shifted"), {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror",
                                            "target_list_id": list_id}).values["result"]
    bad = {r["row"]: r for r in result["invalid"]["rows"]}
    assert set(bad) == {2, 4} and "has 4 fields where the header has 3" in bad[2]["problem"]
    assert 'quote a value that contains a comma' in bad[2]["problem"]
    subscribed = json.dumps(world.sent("bulk_subscribe_profiles"))
    assert "d1@example.com" not in subscribed and "d2@example.com" in subscribed
    world.settle()
    assert "d1@example.com" in world.members(list_id), "a member whose row is invalid is not removed"


def test_a_file_with_only_invalid_rows_never_empties_the_list(world: World) -> None:
    list_id = world.new_list("Target", emails("m", 3))
    path = write_csv(world.home / "broken.csv", [{"email": "oops"}, {"email": "nope"}], ["email"])
    with pytest.raises(SyncInputError, match="would remove all 3 members"):
        run(
            world.context("broken"),
            {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id},
        )
    assert world.members(list_id) == set(emails("m", 3))


def test_rows_klaviyo_refuses_in_the_import_job_are_reported(world: World) -> None:
    list_id = world.new_list("Target")
    world.client.call("create_profile", email="owner@example.com")
    world.client.call("create_profile", phone_number="+15005550006")
    path = write_csv(
        world.home / "conflict.csv",
        [
            {"email": "owner@example.com", "phone_number": "+15005550006"},
            {"email": "fine@example.com", "phone_number": ""},
        ],
        ["email", "phone_number"],
    )
    result = run(
        world.context("conflict"),
        {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id},
    ).values["result"]
    assert result["status"] == "partial"
    assert result["jobs"]["failed_rows"] == 1 and result["jobs"]["completed_rows"] == 1
    assert result["jobs"]["errors"][0]["profile"] == "owner@example.com"
    assert (result["adds"]["applied"], result["adds"]["refused"]) == (1, 1)  # added: only what Klaviyo took
    assert "added 1 profiles" in run_summary(result) and "Klaviyo refused 1 adds" in run_summary(result)
    assert result["invalid"]["rows"] == [
        {"row": 2, "field": "email", "value": "owner@example.com", "by": "klaviyo",
         "problem": result["invalid"]["rows"][0]["problem"]}
    ]
    assert "Klaviyo refused it (import job)" in result["invalid"]["rows"][0]["problem"]


def run_summary(result: dict[str, Any]) -> str:
    from graphs.segment_sync.report import _template

    return _template(result)


# -- list and segment sources ---------------------------------------------------------------------------
def test_list_to_list_adds_known_ids_directly(world: World) -> None:
    source = world.new_list("Source", emails("s", 5) + emails("both", 3))
    target = world.new_list("Target", emails("both", 3) + emails("t", 2))
    world.reset_counts()
    result = run(
        world.context("l2l"), {"source": {"kind": "list", "id": source}, "mode": "mirror", "target_list_id": target}
    ).values["result"]
    counts = world.sb.call_counts
    assert counts["add_profiles_to_list"] == 1 and counts["bulk_import_profiles"] == 0
    assert counts["bulk_subscribe_profiles"] == 0 and counts["get_profiles_for_list"] == 2
    assert result["adds"]["applied"] == 5 and result["removes"]["applied"] == 2 and result["unchanged"] == 3
    assert world.members(target) == set(emails("s", 5) + emails("both", 3))


def test_an_unknown_source_list_names_the_field(world: World) -> None:
    target = world.new_list("Target")
    with pytest.raises(SyncInputError, match=r"source: no list is named 'missing'; lists: Target"):
        run(world.context("nosrc"), {"source": {"kind": "list", "id": "missing"}, "target_list_id": target})
    with pytest.raises(SyncInputError, match=r"source\.id: no Klaviyo list has the id 'Miss12'"):
        run(world.context("nosrc-id"), {"source": {"kind": "list", "id": "Miss12"}, "target_list_id": target})


def test_add_only_is_the_default_and_lists_are_named_or_given_by_id(world: World) -> None:
    target = world.new_list("VIP Customers", emails("keep", 2) + emails("gone", 2))
    path = write_csv(world.home / "vip.csv", ({"email": e} for e in emails("keep", 2) + emails("new", 3)), ["email"])
    result = run(
        world.context("addonly"), {"source": {"kind": "csv", "path": str(path)}, "target": "VIP Customers"}
    ).values["result"]
    assert result["adds"]["applied"] == 3 and result["removes"]["planned"] == 0
    assert world.members(target) == set(emails("keep", 2) + emails("gone", 2) + emails("new", 3)), "nobody left"
    mirrored = run(
        world.context("mirror"), {"source": {"kind": "csv", "path": str(path)}, "target": target, "mode": "mirror"}
    ).values["result"]
    assert mirrored["removes"]["applied"] == 2 and world.members(target) == set(emails("keep", 2) + emails("new", 3))
    with pytest.raises(SyncInputError, match="mode: 'sync'; use add-only"):
        run(world.context("badmode"), {"source": {"kind": "csv", "path": str(path)}, "target": target, "mode": "sync"})


# -- dry runs ---------------------------------------------------------------------------------------------
def _dry_world(world: World) -> tuple[str, Path]:
    list_id = world.new_list("Target", emails("old", 3) + emails("keep", 2))
    rows = [
        {"email": e, "consent": "yes" if e == "new0@example.com" else ""} for e in emails("keep", 2) + emails("new", 4)
    ]
    path = write_csv(world.home / "dry.csv", rows, ["email", "consent"])
    world.reset_counts()
    return list_id, path


@pytest.mark.parametrize("how", ["input", "persona", "guard"])
def test_a_dry_run_shows_the_plan_and_sends_nothing(world: World, how: str) -> None:
    list_id, path = _dry_world(world)
    payload = {
        "source": {"kind": "csv", "path": str(path)},
        "mode": "mirror",
        "target_list_id": list_id,
        "dry_run": how == "input",
    }
    if how == "persona":
        spec = load_persona("segment-syncer")
        spec = spec.model_copy(
            update={"approval": ApprovalPolicy(relax={"bulk_subscribe_profiles": ["consent", "sending"],
                                               "bulk_import_profiles": ["identity", "sending"]}, dry_run=True)}
        )
        ctx = build_context(spec, client=world.client, audit=False, thread_id="dry", clock=world.clock)
    else:
        ctx = world.context("dry", approvals=True, dry_run=True if how == "guard" else None)
    state = run(ctx, payload)
    assert not interrupts(state)
    plan, result = state.values["plan"], state.values["result"]
    assert all(world.sb.call_counts[op] == 0 for op in WRITES), dict(world.sb.call_counts)
    assert (plan["adds"], plan["removes"], plan["subscribes"], plan["unchanged"]) == (4, 3, 1, 2)
    assert plan["samples"]["adds"] == emails("new", 4)
    assert plan["samples"]["removes"] == emails("old", 3)
    assert plan["samples"]["subscribes"] == ["new0@example.com"]
    assert result["status"] == "dry_run" and result["adds"]["not_sent"] == 4
    assert state.values["summary"].startswith("Dry run, nothing sent")
    assert world.members(list_id) == set(emails("old", 3) + emails("keep", 2))


# -- approvals ----------------------------------------------------------------------------------------------
def test_each_removal_batch_waits_for_approval_approve_runs_reject_skips(world: World) -> None:
    list_id = world.new_list("Target", emails("keep", 2) + emails("gone", 4))
    path = write_csv(world.home / "keep.csv", ({"email": e} for e in emails("keep", 2)), ["email"])
    world.reset_counts()
    ctx = world.context("approve", approvals=True, batch_size=2)
    saver = InMemorySaver()
    state = run(
        ctx, {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id}, saver=saver
    )
    asked = interrupts(state)
    assert len(asked) == 1 and asked[0]["tool"] == "remove_profiles_from_list"
    assert len(asked[0]["args"]["profile_ids"]) == 2
    assert world.sb.call_counts["remove_profiles_from_list"] == 0
    state = run(ctx, None, saver=saver, resume={"action": "approve", "fingerprint": asked[0]["fingerprint"]})
    assert world.sb.call_counts["remove_profiles_from_list"] == 1 and interrupts(state)
    state = run(ctx, None, saver=saver, resume={"action": "reject", "reason": "keep them for now"})
    assert world.sb.call_counts["remove_profiles_from_list"] == 1 and not interrupts(state)
    result = state.values["result"]
    assert result["status"] == "partial"
    assert (result["removes"]["applied"], result["removes"]["rejected"]) == (2, 2)
    assert result["problems"][0]["status"] == "rejected" and "keep them for now" in result["problems"][0]["detail"]
    assert len(world.members(list_id)) == 4
    # the two batches shown for approval left their full lists beside the plan; nothing else did
    listings = sorted(p.name for p in Path(result["plan_file"]).parent.glob("*.batch-*.txt"))
    assert [name.split(".batch-")[1] for name in listings] == ["1.remove.txt", "2.remove.txt"], listings
    assert asked[0]["details"]["full list"].endswith("batch-1.remove.txt")


def test_batches_that_need_no_approval_leave_no_file_of_emails(world: World) -> None:
    list_id = world.new_list("Target")
    path = write_csv(world.home / "new.csv", ({"email": e, "consent": "yes"} for e in emails("new", 5)),
                     ["email", "consent"])
    state = run(world.context("quiet", batch_size=2), {"source": {"kind": "csv", "path": str(path)},
                                                       "target_list_id": list_id})
    result = state.values["result"]
    assert result["adds"]["applied"] == 5 and result["subscribes"]["applied"] == 5
    assert not list(Path(result["plan_file"]).parent.glob("*.batch-*.txt"))


# -- resuming --------------------------------------------------------------------------------------------------
def _resume_world(world: World) -> tuple[str, Path]:
    list_id = world.new_list("Target", emails("old", 2))
    path = write_csv(world.home / "big.csv", ({"email": e} for e in emails("new", 2500)), ["email"])
    world.reset_counts()
    return list_id, path


def _imports_ok(world: World) -> int:
    return sum(1 for r in world.sb.requests if r["operation_id"] == "bulk_import_profiles" and r["status"] < 300)


def test_a_failed_batch_resumes_without_repeating_finished_ones(world: World) -> None:
    list_id, path = _resume_world(world)

    def break_after_first_import(record: Any) -> None:
        if record.operation_id == "bulk_import_profiles" and record.error is None:
            world.sb.faults = Faults(error_rate=1.0, operations=["bulk_import_profiles"])

    world.client.hooks.append(break_after_first_import)
    saver = InMemorySaver()
    ctx = world.context("fail", approvals=False)
    with pytest.raises(ServerError):
        run(
            ctx,
            {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id},
            saver=saver,
        )
    assert _imports_ok(world) == 1
    world.client.hooks.remove(break_after_first_import)
    world.sb.faults = Faults()
    state = run(ctx, None, saver=saver)
    assert _imports_ok(world) == 3  # batch 1 once, batch 2 (failed) once more, batch 3
    assert state.values["result"]["status"] == "done"
    assert world.members(list_id) == set(emails("new", 2500))


def test_a_killed_run_resumes_from_its_checkpoint(world: World) -> None:
    list_id, path = _resume_world(world)
    ctx = world.context("kill", approvals=False)
    checkpoints = world.home / "checkpoints.sqlite"
    config = {"configurable": {"thread_id": "kill"}, "recursion_limit": 500}
    first = sqlite3.connect(str(checkpoints), check_same_thread=False)
    stream: Iterator[Any] = build_graph(SqliteSaver(first)).stream(
        {"input": {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id}},
        config,
        context=ctx,
        stream_mode="updates",
        durability="sync",
    )
    for update in stream:
        if "apply" in update:
            break  # the process dies here, after the first batch
    stream.close()  # type: ignore[attr-defined]
    first.close()
    assert _imports_ok(world) == 1
    second = sqlite3.connect(str(checkpoints), check_same_thread=False)  # a new process
    graph = build_graph(SqliteSaver(second))
    assert graph.get_state(config).values["cursor"] == 2
    graph.invoke(None, config, context=ctx)
    result = graph.get_state(config).values["result"]
    second.close()
    assert _imports_ok(world) == 3 and result["adds"]["applied"] == 2500
    assert world.members(list_id) == set(emails("new", 2500))


class _StopAfterWrites(SqliteSaver):
    """LangGraph's SQLite saver, stopped as Ctrl-C stops it: after the first ``apply`` step's writes
    are saved and before the checkpoint that follows them (a fault in the dependency, not our code)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self.applied = False

    def put_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        super().put_writes(config, writes, task_id, task_path)
        self.applied = self.applied or task_path.endswith(", apply")

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        if self.applied:
            raise KeyboardInterrupt
        return super().put(config, checkpoint, metadata, new_versions)


def test_a_run_stopped_between_a_steps_writes_and_its_checkpoint_is_continued(world: World) -> None:
    """LangGraph's ``next`` leaves out a task whose writes were saved: Ctrl-C at that moment made the
    run look finished ('nothing left to run'), with batches never sent. It is left to run, and a
    retry sends each batch once."""
    from personas.runtime import RunDriver
    from personas.runtime.driver import left_to_run

    list_id, path = _resume_world(world)
    ctx = world.context("ctrl-c", approvals=False)
    checkpoints = world.home / "checkpoints.sqlite"
    payload = {"input": {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id}}
    first = sqlite3.connect(str(checkpoints), check_same_thread=False)
    with pytest.raises(KeyboardInterrupt):
        RunDriver(ctx, _StopAfterWrites(first)).invoke(payload)
    first.close()
    assert _imports_ok(world) == 1
    second = sqlite3.connect(str(checkpoints), check_same_thread=False)  # the next command
    driver = RunDriver(ctx, SqliteSaver(second))
    snapshot = driver.snapshot()
    assert not snapshot.next and left_to_run(snapshot) == ("apply",), "LangGraph's next alone reads it finished"
    assert driver.result().status == "stopped"
    result = driver.retry()
    second.close()
    assert result.status == "done" and result.state["result"]["adds"]["applied"] == 2500
    assert _imports_ok(world) == 3, "each batch once: the saved writes of the first are applied, not redone"
    assert world.members(list_id) == set(emails("new", 2500))


def test_a_batch_sent_before_the_checkpoint_is_not_sent_again(world: World) -> None:
    list_id, path = _resume_world(world)
    ctx = world.context("crash", approvals=False)
    saver = InMemorySaver()
    graph = build_graph(saver)
    config = {"configurable": {"thread_id": "crash"}, "recursion_limit": 500}
    graph.invoke(
        {"input": {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id}},
        config,
        context=ctx,
        interrupt_before=["apply"],
    )
    values = graph.get_state(config).values
    from graphs.segment_sync.plan import Plan

    with Plan.open(Path(values["plan_file"])) as plan:  # batch 1 went out, then the process died
        batch = plan.batch(1)
        world.client.call(
            "bulk_import_profiles", profiles=[{"email": i["email"]} for i in plan.items(batch)], list_ids=[list_id]
        )
        plan.mark(1, "done")
    graph.invoke(None, config, context=ctx)
    assert _imports_ok(world) == 3
    assert graph.get_state(config).values["result"]["adds"]["applied"] == 2500


def test_progress_events_and_a_small_checkpoint(world: World) -> None:
    list_id = world.new_list("Target", emails("old", 150))
    path = write_csv(world.home / "p.csv", ({"email": e} for e in emails("new", 2100)), ["email"])
    ctx = world.context("progress")
    graph = build_graph(InMemorySaver())
    config = {"configurable": {"thread_id": "progress"}}
    events = [
        chunk
        for chunk in graph.stream(
            {"input": {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id}},
            config,
            context=ctx,
            stream_mode="custom",
        )
    ]
    applied = [e for e in events if e["phase"] == "apply"]
    assert applied[-1] == {
        "phase": "apply",
        "kind": "remove",
        "batch": 4,
        "done": 4,
        "total": 4,
        "unit": "batches",
        "profiles": 150,
    }
    assert {e["phase"] for e in events} >= {"read_target", "read_source", "plan", "apply", "verify"}
    assert len(json.dumps(graph.get_state(config).values, default=str)) < 10_000  # rows live in the plan file


def test_run_persona_takes_a_step_per_batch_beyond_the_default_recursion_limit(world: World) -> None:
    from personas.runtime import run_persona

    list_id = world.new_list("Target")
    path = write_csv(world.home / "many.csv", ({"email": e} for e in emails("b", 210)), ["email"])
    ctx = world.context("steps", batch_size=1)
    result = run_persona(
        ctx.spec,
        {"input": {"source": {"kind": "csv", "path": str(path)}, "mode": "mirror", "target_list_id": list_id}},
        context=ctx,
        saver=InMemorySaver(),
    )
    assert not result.paused and result.state["result"]["adds"]["applied"] == 210
    assert world.sb.call_counts["bulk_import_profiles"] == 210


def test_a_second_sync_on_the_same_thread_is_a_new_run_not_a_replay(world: World) -> None:
    list_id = world.new_list("Target")
    first = write_csv(world.home / "one.csv", [{"email": "one@example.com"}], ["email"])
    second = write_csv(world.home / "two.csv", [{"email": "two@example.com"}], ["email"])
    ctx = world.context("again")
    saver = InMemorySaver()
    one = run(
        ctx, {"source": {"kind": "csv", "path": str(first)}, "mode": "mirror", "target_list_id": list_id}, saver=saver
    )
    two = run(
        ctx, {"source": {"kind": "csv", "path": str(second)}, "mode": "mirror", "target_list_id": list_id}, saver=saver
    )
    assert one.values["run_id"] != two.values["run_id"]
    assert two.values["result"]["adds"]["applied"] == 1 and two.values["result"]["removes"]["applied"] == 1
    assert world.members(list_id) == {"two@example.com"}


def test_the_model_may_write_the_summary_and_the_template_stands_in_when_it_fails(world: World) -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    list_id = world.new_list("Target")
    path = write_csv(world.home / "s.csv", [{"email": "a@example.com"}], ["email"])
    payload = {
        "source": {"kind": "csv", "path": str(path)},
        "mode": "mirror",
        "target_list_id": list_id,
        "dry_run": True,
    }
    spec = load_persona("segment-syncer")
    spec = spec.model_copy(update={"settings": {**spec.settings, "summarize_with_model": True}})
    model = GenericFakeChatModel(messages=iter([AIMessage("One person would join the list; nothing was sent.")]))
    ctx = build_context(spec, client=world.client, audit=False, thread_id="m1", clock=world.clock, model=model)
    assert run(ctx, payload).values["summary"] == "One person would join the list; nothing was sent."
    broken = GenericFakeChatModel(messages=iter([]))  # raises when asked
    ctx = build_context(spec, client=world.client, audit=False, thread_id="m2", clock=world.clock, model=broken)
    assert run(ctx, payload).values["summary"].startswith("Dry run, nothing sent: would add 1 profiles")
