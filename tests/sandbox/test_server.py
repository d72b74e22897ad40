"""``personas sandbox serve`` as a user runs it: a real child process on a real port.

What it promises: it says which key to use; state given with ``--state`` survives a restart; the
demo data depends on ``--seed`` alone; the ``/sandbox`` inspection endpoints work over HTTP.
Starting one takes ~1-2 s (imports, seeding 2,000 demo profiles), so the tests share two demo
servers (seeds 7 and 8, started together) where they can.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import DEMO_KEY, PUBLIC_KEY
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.errors import AuthenticationError, PermissionDeniedError
from klaviyo_toolkit.ratelimit import RateLimiter

from .conftest import SandboxProcess

HEADERS = {"Authorization": f"Klaviyo-API-Key {DEMO_KEY}", "revision": "2026-07-15",
           "Content-Type": "application/vnd.api+json"}


def klaviyo(proc: SandboxProcess, key: str = DEMO_KEY) -> KlaviyoClient:
    return KlaviyoClient(api_key=key, base_url=proc.base_url, public_api_key=PUBLIC_KEY, rate_limiter=RateLimiter())


@pytest.fixture(scope="module")
def demo_servers() -> Iterator[dict[int, SandboxProcess]]:
    """Servers with the demo data of seeds 7 and 8 (in memory), started together and shared."""
    servers = {seed: SandboxProcess("--seed", str(seed)) for seed in (7, 8)}
    try:
        for proc in servers.values():
            proc.start()
        for proc in servers.values():
            proc.wait_ready()
        yield servers
    finally:
        for proc in servers.values():
            proc.interrupt()  # both shut down at once
        for proc in servers.values():
            proc.stop()


@pytest.fixture(scope="module")
def seven(demo_servers: dict[int, SandboxProcess]) -> SandboxProcess:
    return demo_servers[7]


def demo_fingerprint(proc: SandboxProcess) -> dict[str, Any]:
    with klaviyo(proc) as kl:
        profiles = kl.call("get_profiles", sort="email", page_size=20, fields_profile=["email", "first_name"]).data
        lists = sorted(x["name"] for x in kl.iterate("get_lists"))
        campaigns = kl.call("get_campaigns", filter="equals(messages.channel,'email')", sort="name").data
    state = httpx.get(proc.base_url + "/sandbox/state").json()
    return {
        "profiles": [(p["id"], p["attributes"]["email"], p["attributes"]["first_name"]) for p in profiles],
        "lists": lists,
        "campaigns": [c["id"] for c in campaigns],
        "counts": {t: state.get(t) for t in ("profile", "list", "segment", "campaign", "flow")},
    }


def test_serve_prints_the_demo_key_and_how_to_connect(seven: SandboxProcess) -> None:
    banner = seven.banner
    assert f"on http://127.0.0.1:{seven.port}" in banner
    assert f"private key {DEMO_KEY} has every scope; public key (company_id) {PUBLIC_KEY}" in banner
    assert f"export KLAVIYO_BASE_URL=http://127.0.0.1:{seven.port} KLAVIYO_API_KEY={DEMO_KEY}" in banner
    assert "revision 2026-07-15, 345 operations" in banner and "state: memory" in banner
    about = httpx.get(seven.base_url + "/sandbox").json()
    assert (about["seed"], about["demo_key"], about["operations"]) == (7, DEMO_KEY, 345)


def test_data_created_over_http_survives_a_restart_with_the_same_state(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.db"
    with SandboxProcess("--empty", "--sandbox-state", str(state)) as first:
        assert f"state: {state}" in first.banner
        with klaviyo(first) as kl:
            profile = kl.call("create_profile", email="kept@example.com", first_name="Kept").data["id"]
            list_id = kl.call("create_list", name="Kept list").data["id"]
            kl.call("add_profiles_to_list", id=list_id, profile_ids=[profile])
            kl.call("create_event", metric={"name": "Kept Event"}, profile={"email": "kept@example.com"},
                    properties={"n": 1}, unique_id="kept-1")
        before = httpx.get(first.base_url + "/sandbox/state").json()
        key = httpx.post(first.base_url + "/sandbox/keys", json={"scopes": ["profiles:read"]}).json()["key"]
    assert state.exists() and state.stat().st_size > 0

    # Restarted without --empty: a state file that holds data is never seeded over.
    with SandboxProcess("--seed", "7", "--sandbox-state", str(state)) as second:
        assert httpx.get(second.base_url + "/sandbox/state").json() == before
        with klaviyo(second) as kl:
            assert kl.call("get_profile", id=profile).data["attributes"]["first_name"] == "Kept"
            assert [p["id"] for p in kl.iterate("get_profiles_for_list", id=list_id)] == [profile]
            [event] = kl.call("get_events", filter=f"equals(profile_id,'{profile}')").data
            assert event["attributes"]["event_properties"]["n"] == 1
        with klaviyo(second, key) as scoped:  # keys made over HTTP are state too
            assert scoped.call("get_profile", id=profile).status == 200


def test_the_seed_alone_decides_the_demo_data(demo_servers: dict[int, SandboxProcess]) -> None:
    seven, other = demo_servers[7], demo_servers[8]
    mine, different = demo_fingerprint(seven), demo_fingerprint(other)
    # Another process given seed 7 (here by a reset) builds exactly the same account.
    assert httpx.post(other.base_url + "/sandbox/reset", json={"seed": 7}).status_code == 200
    same = demo_fingerprint(other)
    assert mine == same  # the same ids, people, names and counts
    assert mine["profiles"] != different["profiles"] and mine["campaigns"] != different["campaigns"]
    assert mine["counts"] == different["counts"] and mine["lists"] == different["lists"]  # the same shape


def test_inspection_endpoints_work_over_the_port(seven: SandboxProcess) -> None:
    """Leaves the server as it found it: the demo data of seed 7 (by a reset)."""
    proc = seven
    http = httpx.Client(base_url=proc.base_url, headers=HEADERS)
    about = http.get("/sandbox").json()
    listed = " ".join(about["endpoints"])
    for path in ("outbox", "reset", "faults", "keys", "requests", "state", "limits", "tick"):
        assert f"/sandbox/{path}" in listed
    http.delete("/sandbox/requests")  # the server is shared: count from here

    # keys: chosen scopes, then revoked
    made = http.post("/sandbox/keys", json={"scopes": ["profiles:read"], "name": "reader"})
    assert made.status_code == 201 and made.json()["scopes"] == ["profiles:read"]
    key = made.json()["key"]
    with klaviyo(proc, key) as reader:
        assert reader.call("get_profiles", page_size=1).status == 200
        with pytest.raises(PermissionDeniedError, match="lists:write"):
            reader.call("create_list", name="nope")
        assert http.delete(f"/sandbox/keys/{key}").json() == {"revoked": True}
        with pytest.raises(AuthenticationError):
            reader.call("get_profiles")
    assert http.post("/sandbox/keys", json={"scopes": "profiles:read"}).status_code == 400

    # requests: counts per operation, and cleared
    seen = http.get("/sandbox/requests").json()
    assert seen["counts"].get("get_profiles") == 2 and seen["counts"].get("create_list") == 1
    assert {"method": "GET", "path": "/api/profiles", "operation_id": "get_profiles", "status": 200}.items() \
        <= seen["recent"][0].items()
    assert http.delete("/sandbox/requests").json() == {"cleared": True}
    assert http.get("/sandbox/requests").json()["counts"] == {}

    # faults: targeted at one operation, then off
    assert http.put("/sandbox/faults", json={"error_rate": 1.0, "status": 502,
                                             "operations": ["get_lists"]}).status_code == 200
    assert http.get("/api/lists").status_code == 502
    assert http.get("/api/segments").status_code == 200
    assert http.get("/sandbox/faults").json()["error_rate"] == 1.0
    assert http.put("/sandbox/faults", json={"bogus": 1}).status_code == 400
    assert http.delete("/sandbox/faults").json()["error_rate"] == 0.0
    assert http.get("/api/lists").status_code == 200

    # limits: scaled down until the second call in a second is refused; then off
    assert http.put("/sandbox/limits", json={"factor": 0.01}).json() == {"factor": 0.01}
    answers = [http.get("/api/accounts").status_code for _ in range(3)]
    assert answers[0] == 200 and 429 in answers
    assert http.put("/sandbox/limits", json={"factor": None}).json() == {"factor": None}
    assert {http.get("/api/accounts").status_code for _ in range(5)} == {200}
    for bad in (0, -1, "fast", True, [1]):  # refused, and limits stay off
        refused = http.put("/sandbox/limits", json={"factor": bad})
        assert refused.status_code == 400 and "factor must be a number > 0" in refused.text, refused.text
    assert {http.get("/api/accounts").status_code for _ in range(5)} == {200}

    # outbox: a profile joining the demo "Newsletter" list enters the Welcome series flow
    with klaviyo(proc) as kl:
        [newsletter] = kl.call("get_lists", filter="equals(name,'Newsletter')").data
        joiner = kl.call("create_profile", email="joiner@example.com").data["id"]
        kl.call("add_profiles_to_list", id=newsletter["id"], profile_ids=[joiner])
    outbox = http.get("/sandbox/outbox", params={"to": "joiner@example.com"}).json()
    assert outbox["count"] >= 1 and all(m["source"] == "flow" for m in outbox["messages"])
    assert http.delete("/sandbox/outbox").json() == {"deleted": True}
    assert http.get("/sandbox/outbox").json()["count"] == 0

    # tick applies due jobs; this server runs on real time, so its clock cannot be moved
    assert http.post("/sandbox/tick").json() == {"ticked": True}
    assert http.post("/sandbox/clock", json={"advance": 60}).status_code == 400

    # state and reset
    demo = http.get("/sandbox/state").json()
    assert demo["profile"] == 2001 and demo["flow"] == 4
    assert http.post("/sandbox/reset", json={"demo_data": False}).json() == {"reset": True, "seed": 7}
    assert http.get("/sandbox/state").json().get("profile", 0) == 0
    assert http.get("/api/profiles").json()["data"] == []
    assert http.post("/sandbox/reset", json={"seed": 7}).json() == {"reset": True, "seed": 7}
    assert http.get("/sandbox/state").json()["profile"] == 2000
    assert http.get("/sandbox/nope").status_code == 404
