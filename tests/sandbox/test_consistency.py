"""Eventual consistency: writes Klaviyo documents as asynchronous show only after a delay.

With ``realistic=True`` (``personas sandbox serve --realistic``) an event, a profile merge, a client
subscription or push token is checked and answered at once (a bad one is still a 400 at once) but
applied ``consistency_delay`` seconds later, dated when it was received; bulk jobs take
``job_seconds``. ``settle()`` (``POST /sandbox/settle``) finishes everything pending now. Without
``realistic`` the in-process default stays immediate. Everything runs on a ManualClock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import REALISTIC_CONSISTENCY_DELAY, REALISTIC_JOB_SECONDS, Sandbox
from klaviyo_sandbox.seeding import iso
from klaviyo_toolkit.clock import ManualClock

from .conftest import HEADERS, SandboxProcess


@pytest.fixture
def real(clock: ManualClock) -> Iterator[Sandbox]:
    sandbox = Sandbox(demo_data=False, rate_limit_factor=None, clock=clock, realistic=True, validate_responses=True)
    yield sandbox
    sandbox.close()


@pytest.fixture
def http(real: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(transport=real.transport(), base_url=Sandbox.BASE_URL, headers=HEADERS) as client:
        yield client


def event(email: str, name: str = "Viewed Product", **attributes: Any) -> dict[str, Any]:
    return {"data": {"type": "event", "attributes": {
        "properties": {"sku": "A"}, "metric": {"data": {"type": "metric", "attributes": {"name": name}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": email}}}, **attributes}}}


def events(http: httpx.Client) -> list[dict[str, Any]]:
    return list(http.get("/api/events").json()["data"])


def test_the_realistic_defaults() -> None:
    assert Sandbox(demo_data=False).consistency_delay == 0  # in-process default: immediate
    realistic = Sandbox(demo_data=False, realistic=True)
    assert realistic.consistency_delay == REALISTIC_CONSISTENCY_DELAY == 5.0
    assert realistic.job_seconds == REALISTIC_JOB_SECONDS == 10.0
    assert Sandbox(demo_data=False, realistic=True, consistency_delay=1.5).consistency_delay == 1.5


def test_an_event_shows_after_the_delay_dated_when_it_was_received(
    real: Sandbox, http: httpx.Client, clock: ManualClock
) -> None:
    received = clock.time()
    assert http.post("/api/events", json=event("ada@example.com")).status_code == 202
    assert events(http) == [] and http.get("/api/profiles").json()["data"] == []  # not yet
    assert http.get("/api/metrics").json()["data"] == []
    clock.advance(REALISTIC_CONSISTENCY_DELAY - 0.1)
    assert events(http) == []
    clock.advance(0.2)
    shown = events(http)
    assert len(shown) == 1 and shown[0]["attributes"]["datetime"] == iso(received)
    assert http.get("/api/profiles").json()["data"][0]["attributes"]["email"] == "ada@example.com"


def test_a_bad_asynchronous_write_is_refused_at_once_and_leaves_nothing(
    real: Sandbox, http: httpx.Client
) -> None:
    unknown = event("x@example.com")
    unknown["data"]["attributes"]["profile"]["data"] = {"type": "profile", "id": "01NOSUCHPROFILE", "attributes": {}}
    answer = http.post("/api/events", json=unknown)
    assert answer.status_code == 400 and answer.json()["errors"][0]["source"]["pointer"].endswith("/id")
    assert http.post("/api/events", json=event("ok@example.com")).status_code == 202
    real.settle()
    assert [e["attributes"]["event_properties"]["sku"] for e in events(http)] == ["A"]
    assert [p["attributes"]["email"] for p in http.get("/api/profiles").json()["data"]] == ["ok@example.com"]
    assert real.seeding is not None and real.store.count("profile") == 1  # the scratch check wrote nothing


def test_a_merge_and_a_client_subscription_are_asynchronous_too(
    real: Sandbox, http: httpx.Client, clock: ManualClock
) -> None:
    keep = real.seeding.profile(email="keep@example.com").id
    gone = real.seeding.profile(email="gone@example.com", first_name="Gone").id
    merge = {"data": {"type": "profile-merge", "id": keep,
                      "relationships": {"profiles": {"data": [{"type": "profile", "id": gone}]}}}}
    assert http.post("/api/profile-merge", json=merge).status_code == 201
    assert http.get(f"/api/profiles/{gone}").status_code == 200  # still there until the merge runs
    made = http.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": "News"}}})
    list_id = made.json()["data"]["id"]
    subscribe = {"data": {"type": "subscription", "attributes": {"profile": {"data": {"type": "profile",
                 "attributes": {"email": "sub@example.com"}}}},
                          "relationships": {"list": {"data": {"type": "list", "id": list_id}}}}}
    assert http.post("/client/subscriptions", params={"company_id": "SbxPub"}, json=subscribe).status_code == 202
    assert http.get("/api/profiles", params={"filter": "equals(email,'sub@example.com')"}).json()["data"] == []
    clock.advance(REALISTIC_CONSISTENCY_DELAY + 0.1)
    assert http.get(f"/api/profiles/{gone}").status_code == 404
    assert http.get(f"/api/profiles/{keep}").json()["data"]["attributes"]["first_name"] == "Gone"
    found = http.get("/api/profiles", params={"filter": "equals(email,'sub@example.com')",
                                              "additional-fields[profile]": "subscriptions"}).json()["data"]
    assert found[0]["attributes"]["subscriptions"]["email"]["marketing"]["consent"] == "SUBSCRIBED"


def test_bulk_jobs_take_their_realistic_time(real: Sandbox, http: httpx.Client, clock: ManualClock) -> None:
    body = {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": {"email": f"p{i}@example.com"}} for i in range(3)]}}}}
    job = http.post("/api/profile-bulk-import-jobs", json=body).json()["data"]["id"]
    clock.advance(REALISTIC_JOB_SECONDS - 1)
    assert http.get(f"/api/profile-bulk-import-jobs/{job}").json()["data"]["attributes"]["status"] == "queued"
    clock.advance(1.1)
    assert http.get(f"/api/profile-bulk-import-jobs/{job}").json()["data"]["attributes"]["status"] == "complete"
    assert len(http.get("/api/profiles").json()["data"]) == 3


def poll(read: Callable[[], list[Any]], clock: ManualClock, *, every: float = 1.0, tries: int = 30) -> list[Any]:
    """Read-after-write as code against Klaviyo must do it: read again until the write shows."""
    for _ in range(tries):
        found = read()
        if found:
            return found
        clock.sleep(every)
    raise AssertionError("the write never showed")


def test_read_after_write_code_must_wait_and_the_sandbox_makes_it(
    real: Sandbox, http: httpx.Client, clock: ManualClock
) -> None:
    http.post("/api/events", json=event("poll@example.com", unique_id="order-1"))
    naive = events(http)  # what code that assumes immediate visibility would see
    assert naive == []
    assert len(poll(lambda: events(http), clock)) == 1
    assert clock.slept == [1.0] * 5  # five polls of a second each: the 5 s delay


def test_settle_finishes_everything_pending_but_not_future_sends(real: Sandbox, http: httpx.Client) -> None:
    http.post("/api/events", json=event("s@example.com"))
    job = http.post("/api/profile-bulk-import-jobs", json={"data": {"type": "profile-bulk-import-job",
                    "attributes": {"profiles": {"data": [{"type": "profile",
                                                          "attributes": {"email": "b@example.com"}}]}}}})
    job_id = job.json()["data"]["id"]
    assert http.post("/sandbox/settle").json() == {"settled": True}
    assert len(events(http)) == 1
    assert http.get(f"/api/profile-bulk-import-jobs/{job_id}").json()["data"]["attributes"]["status"] == "complete"


def test_the_in_process_default_stays_immediate(sb: Sandbox, raw: httpx.Client) -> None:
    assert raw.post("/api/events", json=event("now@example.com")).status_code == 202
    assert len(raw.get("/api/events").json()["data"]) == 1


def test_serve_realistic_delays_events_until_settled() -> None:
    with SandboxProcess("--empty", "--no-rate-limits", "--realistic") as proc:
        assert "realistic" in proc.banner
        with httpx.Client(base_url=proc.base_url, headers=HEADERS) as served:
            assert served.post("/api/events", json=event("served@example.com")).status_code == 202
            assert served.get("/api/events").json()["data"] == []  # 5 s of real time have not passed
            served.post("/sandbox/settle")
            assert len(served.get("/api/events").json()["data"]) == 1
