"""Polling: new events of the trigger metric from a stored cursor, each run exactly once across
restarts, late events found by the overlap window, and the same event never run twice whether it
came by webhook or by poll."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from klaviyo_sandbox import Faults, Sandbox
from personas.kernel.config import Config
from personas.kernel.errors import UsageProblem
from personas.service.queues import LocalQueue
from personas.service.service import Service
from personas.service.watch import poll_once
from tests.graphs.leads import COLD, HOT, WARM, first_touchpoints, sign_up


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(seed=9)


def pid(event: dict) -> str:  # type: ignore[type-arg]
    return str(event["data"]["relationships"]["profile"]["data"]["id"])


def test_each_event_is_processed_once_across_restarts(tmp_path: Path, sandbox: Sandbox) -> None:
    config = Config(home=tmp_path / "h")
    service = Service.open(config, sandbox=sandbox)
    spec = service.persona("lead-magnet-sequencer")
    first = [sign_up(sandbox, f"p{n}@example.com", (HOT, WARM, COLD)[n]) for n in range(3)]
    new = poll_once(service, spec, now=time.time(), lookback=600)
    assert sorted(r.key for r in new) == sorted(f"event:{e['data']['id']}" for e in first)
    queue = LocalQueue(service)
    for run in new:
        queue.enqueue(run.id)
    queue.drain(timeout=60)
    service.close()

    # a new process: the cursor is where the last one left it
    again = Service.open(config, sandbox=sandbox)
    assert poll_once(again, spec, now=time.time()) == []  # overlap re-reads the same events: none new
    late = sign_up(sandbox, "late@example.com", HOT)
    [run] = poll_once(again, spec, now=time.time())
    assert run.key == f"event:{late['data']['id']}" and run.trigger == "poll"
    done = again.execute(run.id)
    assert done.status == "done", done
    assert all(r.status == "done" for r in again.store.runs())
    for event in [*first, late]:
        assert len(first_touchpoints(sandbox, pid(event))) == 1
    assert len(again.store.runs()) == 4
    again.close()


def test_the_overlap_window_finds_events_recorded_late(tmp_path: Path, sandbox: Sandbox) -> None:
    service = Service.open(Config(home=tmp_path / "h"), sandbox=sandbox)
    spec = service.persona("lead-magnet-sequencer")
    sign_up(sandbox, "early@example.com", WARM)
    poll_once(service, spec, now=time.time(), lookback=600)
    # an event Klaviyo shows only now, dated two minutes before the cursor
    cursor = float(service.store.cursor("watch:lead-magnet-sequencer") or 0)
    late = sign_up(sandbox, "backdated@example.com", WARM)
    sandbox.store.get("event", late["data"]["id"]).attributes.update(  # type: ignore[union-attr]
        timestamp=int(cursor) - 120, datetime=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(cursor - 120))
    )
    assert [r.key for r in poll_once(service, spec, now=time.time())] == [f"event:{late['data']['id']}"]
    assert poll_once(service, spec, now=time.time(), overlap=0) == []
    service.close()


def test_an_event_delivered_by_webhook_is_not_run_again_by_a_poll(tmp_path: Path, sandbox: Sandbox) -> None:
    service = Service.open(Config(home=tmp_path / "h"), sandbox=sandbox)
    spec = service.persona("lead-magnet-sequencer")
    event = sign_up(sandbox, "both@example.com", HOT)
    _run, created = service.record_event(spec, event["data"]["id"], event, trigger="webhook")
    assert created and poll_once(service, spec, now=time.time(), lookback=600) == []
    assert [r.trigger for r in service.store.runs()] == ["webhook"]
    service.close()


def test_watching_a_persona_that_no_event_starts_says_so(tmp_path: Path, sandbox: Sandbox) -> None:
    service = Service.open(Config(home=tmp_path / "h"), sandbox=sandbox)
    with pytest.raises(UsageProblem, match=r"not started by events.*schedule: on_event"):
        poll_once(service, service.persona("campaign-reporter"), now=time.time())
    service.close()


def test_an_event_dated_in_the_future_never_hides_the_events_after_it(tmp_path: Path, sandbox: Sandbox) -> None:
    """A form submission dated two days ahead (a client's clock) used to move the cursor past now:
    every later lead was older than the cursor and never polled."""
    service = Service.open(Config(home=tmp_path / "h"), sandbox=sandbox)
    spec = service.persona("lead-magnet-sequencer")
    ahead = sign_up(sandbox, "ahead@example.com", WARM)
    future = time.time() + 2 * 86400
    sandbox.store.get("event", ahead["data"]["id"]).attributes.update(  # type: ignore[union-attr]
        timestamp=int(future), datetime=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(future)))
    assert len(poll_once(service, spec, now=time.time(), lookback=600)) == 1
    assert float(service.store.cursor("watch:lead-magnet-sequencer") or 0) <= time.time()
    later = [sign_up(sandbox, f"later{n}@example.com", HOT) for n in range(3)]
    found = {r.key for r in poll_once(service, spec, now=time.time())}
    assert found == {f"event:{e['data']['id']}" for e in later}
    service.close()


@pytest.mark.parametrize("stored", ["garbage", "nan", "1e20", "-5"])
def test_a_damaged_cursor_polls_the_lookback_again_and_runs_nothing_twice(
        tmp_path: Path, sandbox: Sandbox, stored: str) -> None:
    service = Service.open(Config(home=tmp_path / "h"), sandbox=sandbox)
    spec = service.persona("lead-magnet-sequencer")
    first = sign_up(sandbox, "first@example.com", WARM)
    assert len(poll_once(service, spec, now=time.time(), lookback=600)) == 1
    service.store.set_cursor("watch:lead-magnet-sequencer", stored)
    second = sign_up(sandbox, "second@example.com", HOT)
    found = [r.key for r in poll_once(service, spec, now=time.time(), lookback=600)]
    assert found == [f"event:{second['data']['id']}"], "the first event is not run again"
    assert f"event:{first['data']['id']}" in {r.key for r in service.store.runs()}
    service.close()


def test_two_submissions_of_one_lead_handled_at_once_start_one_sequence_and_record_that_one(
        tmp_path: Path, sandbox: Sandbox) -> None:
    """Runs about one profile take turns: the second sees the first's start, and the profile records
    the sequence Klaviyo started. Handled at once, both decided and sent, Klaviyo kept the first event,
    and the second run's record overwrote the profile with the sequence it had chosen."""
    from tests.graphs.leads import sequence_starts

    service = Service.open(Config(home=tmp_path / "h"), sandbox=sandbox)
    spec = service.persona("lead-magnet-sequencer")
    first = sign_up(sandbox, "twice@example.com", HOT, submission_id="first")
    sign_up(sandbox, "twice@example.com", COLD, submission_id="second")  # the same form, sent again
    profile, metric = pid(first), first["data"]["relationships"]["metric"]["data"]["id"]
    forms = [e.id for e in sandbox.store.all("event")
             if e.linked("profile") == [("profile", profile)] and e.linked("metric") == [("metric", metric)]]
    client = sandbox.client()
    runs = [service.record_event(spec, event_id, dict(client.call("get_event", id=event_id,
                                                                  include=["profile", "metric"]).body),
                                 trigger="webhook")[0] for event_id in forms]
    assert len({r.id for r in runs}) == 2
    # a slow send: without turns, both runs decide before either has started a sequence
    sandbox.faults = Faults(slow_rate=1.0, delay=0.3, operations=["create_event"])
    queue = LocalQueue(service, workers=2)
    for run in runs:
        queue.enqueue(run.id)
    queue.drain(timeout=120)
    done = service.store.runs()
    assert all(r.status == "done" for r in done), [r.error for r in done]
    assert sum((r.outcome or "").startswith("sent") for r in done) == 1, [r.outcome for r in done]
    [start] = sequence_starts(sandbox, profile)
    started = (start.attributes.get("properties") or start.attributes.get("event_properties"))["sequence"]
    recorded = sandbox.store.get("profile", profile).attributes["properties"]["lead_sequence"]  # type: ignore[union-attr]
    assert recorded == started
    service.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_polled_event_holding_a_nul_is_recorded_failed_naming_the_field_and_polling_goes_on(
        tmp_path: Path, sandbox: Sandbox, backend: str, request: pytest.FixtureRequest) -> None:
    """PostgreSQL refuses a NUL in text: an event id holding one broke every poll at that event (a
    DataError out of poll_once), so the events after it were never run; a NUL in a property reached
    the run. Webhook deliveries are refused for it (400); a polled event is recorded failed instead."""
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    service = Service.open(Config(home=tmp_path / "h", database_url=url), sandbox=sandbox)
    spec = service.persona("lead-magnet-sequencer")
    events = [sign_up(sandbox, f"n{n}@example.com", HOT) for n in range(4)]
    in_property, in_id = (sandbox.store.get("event", e["data"]["id"]) for e in events[1:3])
    in_property.attributes["event_properties"]["note"] = "a\x00b"  # type: ignore[union-attr]
    sandbox.store.delete("event", in_id.id)  # type: ignore[union-attr]
    in_id.id += "\x00x"  # type: ignore[union-attr]
    sandbox.store.put(in_id)  # type: ignore[arg-type]
    new = poll_once(service, spec, now=time.time(), lookback=600)
    assert sorted(r.key for r in new) == sorted(f"event:{e['data']['id']}" for e in (events[0], events[3]))
    assert all(r.status == "queued" for r in new)
    failed = {r.key: r.error or "" for r in service.store.runs(status="failed")}
    assert len(failed) == 2, failed
    nul = "a NUL character (\\u0000)"
    assert f"data.attributes.event_properties.note holds {nul}" in failed[f"event:{in_property.id}"]  # type: ignore[union-attr]
    escaped = in_id.id.replace("\x00", "\\u0000")  # type: ignore[union-attr]
    assert f"data.id holds {nul}" in failed[f"event:{escaped}"] and "correct the event" in failed[f"event:{escaped}"]
    assert float(service.store.cursor("watch:lead-magnet-sequencer") or 0) > 0
    assert poll_once(service, spec, now=time.time()) == []  # seen again by the overlap: nothing new, no error
    assert len(service.store.runs()) == 4
    service.close()


def test_a_poll_that_fails_after_recording_some_events_still_runs_them(
        tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll that recorded a page's events and then failed (Klaviyo's next page a 5xx after its
    retries) left those runs queued: the next poll saw them again, not new, and handed none on, so a
    watcher that kept going never ran those leads (only its restart took them over)."""
    from klaviyo_toolkit.errors import ServerError
    from klaviyo_toolkit.tools._pipeline import Toolset
    from personas.service import serving

    leads = [sign_up(sandbox, f"cut{n}@example.com", HOT) for n in range(2)]
    real = Toolset.pages
    failures = [1]

    def cut_off(self: Toolset, name: str, /, **args: object):  # type: ignore[no-untyped-def]
        for page in real(self, name, **args):
            yield page
            if name == "get_events" and failures:
                failures.pop()
                raise ServerError("get_events: 503 on the next page")

    class Stop(Exception):
        pass

    polls = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 2:  # the failed poll's pause, then the next poll's
            raise Stop

    monkeypatch.setattr(Toolset, "pages", cut_off)
    monkeypatch.setattr(serving.time, "sleep", sleep)
    config = Config(home=tmp_path / "h")
    lines: list[str] = []
    with pytest.raises(Stop):
        serving.watch(config, "lead-magnet-sequencer", every=0.01, lookback=600, report=lines.append,
                      sandbox=sandbox)
    assert "this poll failed" in lines[0]
    service = Service.open(config, sandbox=sandbox)
    assert sorted(r.status for r in service.store.runs()) == ["done", "done"], lines
    for event in leads:
        assert len(first_touchpoints(sandbox, pid(event))) == 1
    service.close()
