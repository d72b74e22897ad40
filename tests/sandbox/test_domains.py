"""A sandbox is built from an explicit tuple of domains, and from nothing else.

Every operation a domain declares is a stable operation of the spec; each sandbox builds its own
registries from the tuple it is given (a sandbox without the lists domain serves lists with the
generic engine while another beside it keeps Klaviyo's list rules); and importing or re-importing any
module of the package changes no sandbox's behaviour.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import klaviyo_sandbox.domains
from klaviyo_sandbox import DEFAULT_DOMAINS, Domain, DomainBuilder, Sandbox
from klaviyo_sandbox.domain import Ctx, Reply
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.clock import ManualClock
from tests.sandbox.conftest import HEADERS, REPO

STABLE = {op.operation_id for op in load_catalog()}


def domain_modules() -> Iterator[Any]:
    package = klaviyo_sandbox.domains
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        yield importlib.import_module(info.name)


def sandbox(domains: tuple[Domain, ...] = DEFAULT_DOMAINS) -> Sandbox:
    return Sandbox(domains=domains, demo_data=False, rate_limit_factor=None, clock=ManualClock(),
                   validate_responses=True)


def http(sb: Sandbox) -> httpx.Client:
    return httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL, headers=HEADERS)


# -- what the domains declare ------------------------------------------------------------------------
def test_every_handled_operation_is_a_stable_operation() -> None:
    unknown = {f"{d.name}: {oid}" for d in DEFAULT_DOMAINS for oid in (*d.handlers, *d.jobs)
               if oid not in STABLE and not oid.startswith(f"{d.name}:")}  # a domain's own deferred work
    assert unknown == set()
    assert sum(len(d.handlers) for d in DEFAULT_DOMAINS) > 100  # the domains really are in the tuple


def test_every_domain_module_exports_one_domain_and_the_default_tuple_has_them_all() -> None:
    exported = [m.DOMAIN for m in domain_modules() if hasattr(m, "DOMAIN")]
    assert all(isinstance(d, Domain) for d in exported)
    assert sorted(d.name for d in exported) == sorted(d.name for d in DEFAULT_DOMAINS)
    assert {id(d) for d in exported} == {id(d) for d in DEFAULT_DOMAINS}


def test_a_domain_is_immutable() -> None:
    domain = DEFAULT_DOMAINS[0]
    with pytest.raises(TypeError):
        domain.handlers["get_lists"] = lambda ctx: Reply(200)  # type: ignore[index]
    with pytest.raises(AttributeError):
        domain.name = "other"  # type: ignore[misc]


def test_two_domains_may_not_claim_the_same_thing() -> None:
    def handler(ctx: Ctx) -> Reply:
        return Reply(200, {"data": []})

    with pytest.raises(ValueError, match=r"'lists'.*'mine'"):
        sandbox((*DEFAULT_DOMAINS, Domain("mine", handlers={"create_list": handler})))
    with pytest.raises(ValueError, match="given twice: lists"):
        sandbox((*DEFAULT_DOMAINS, next(d for d in DEFAULT_DOMAINS if d.name == "lists")))
    builder = DomainBuilder("mine")
    builder.handles("get_lists")(handler)
    with pytest.raises(ValueError, match="two handlers for get_lists"):
        builder.handles("get_lists")(lambda ctx: Reply(200))


# -- each sandbox its own ----------------------------------------------------------------------------
def test_two_sandboxes_with_different_domains_behave_independently() -> None:
    without_lists = tuple(d for d in DEFAULT_DOMAINS if d.name != "lists")
    full, generic = sandbox(), sandbox(without_lists)
    assert "add_profiles_to_list" in full.registry.handlers and "add_profiles_to_list" not in generic.registry.handlers
    for part in ("registry", "services", "store", "pipeline", "routes", "keys", "limits", "faults", "log"):
        assert getattr(full, part) is not getattr(generic, part), part
    assert full.registry.handlers is not generic.registry.handlers
    with http(full) as a, http(generic) as b:
        unknown = [{"type": "profile", "id": "01NOSUCHPROFILE00000000000"}]
        for client, hint in ((a, True), (b, False)):  # the lists domain's answer vs the generic engine's
            lst = client.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": "L"}}})
            assert lst.status_code == 201
            added = client.post(f"/api/lists/{lst.json()['data']['id']}/relationships/profiles", json={"data": unknown})
            assert added.status_code == 404, added.text  # both refuse a profile that does not exist
            assert ("create_profile" in added.json()["errors"][0]["detail"]) is hint, added.text
        assert a.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": " "}}}).status_code == 400
    full.close()
    generic.close()


def test_a_hook_sees_only_its_own_sandboxs_events() -> None:
    seen: list[tuple[Any, Any]] = []
    recorder = Domain("recorder", hooks={"event_created": (lambda svc, event: seen.append((svc, event)),)})
    watched, other = sandbox((*DEFAULT_DOMAINS, recorder)), sandbox()
    for sb in (other, watched):
        profile = sb.seeding.profile(email="ada@example.com")
        sb.seeding.event(profile, "Viewed Page", {"url": "/"})
    assert len(seen) == 1
    svc, event = seen[0]
    assert svc is watched.services and watched.store.get("event", event.id) is event


def test_a_sandbox_without_domains_is_the_generic_engine() -> None:
    bare = sandbox(())
    assert not bare.registry.handlers and not bare.registry.seeders
    with http(bare) as client:
        created = client.post("/api/lists", json={"data": {"type": "list", "attributes": {"name": "L"}}})
        assert created.status_code == 201
        assert client.get("/api/lists").json()["data"][0]["id"] == created.json()["data"]["id"]
    assert Sandbox(domains=(), demo_data=True, rate_limit_factor=None).store.is_empty()  # no seeder, no demo data


# -- imports change nothing ----------------------------------------------------------------------------
SCENARIO = r'''
import importlib, json, pkgutil, sys
import httpx
from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.clock import ManualClock

HEADERS = json.loads(sys.argv[1])


def run():
    """Profiles, a list, events and a live flow on a fresh sandbox: every answer and the outbox."""
    sb = Sandbox(demo_data=False, rate_limit_factor=None, clock=ManualClock(1_780_000_000.0))
    out = []
    with httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL, headers=HEADERS) as http:
        def call(method, path, body=None):
            resp = http.request(method, path, json=body)
            answer = resp.json() if resp.content else None
            for error in (answer or {}).get("errors", []):
                error.pop("id")  # random per error
            out.append([method, path, resp.status_code, answer])
            return resp
        event = {"data": {"type": "event", "attributes": {"properties": {"plan": "pro"},
                 "metric": {"data": {"type": "metric", "attributes": {"name": "Signed Up"}}},
                 "profile": {"data": {"type": "profile", "attributes": {"email": "ada@example.com"}}}}}}
        call("POST", "/api/events", event)
        metric = call("GET", "/api/metrics").json()["data"][0]["id"]
        flow = call("POST", "/api/flows", {"data": {"type": "flow", "attributes": {"name": "Welcome", "definition": {
            "triggers": [{"type": "metric", "id": metric}], "entry_action_id": "a",
            "actions": [{"temporary_id": "a", "type": "send-email", "links": {"next": None},
                         "data": {"message": {"subject_line": "Hi", "name": "Hi"}}}]}}}}).json()["data"]["id"]
        call("PATCH", f"/api/flows/{flow}", {"data": {"type": "flow", "id": flow, "attributes": {"status": "live"}}})
        event["data"]["attributes"]["profile"]["data"]["attributes"]["email"] = "bo@example.com"
        call("POST", "/api/events", event)
        lst = call("POST", "/api/lists", {"data": {"type": "list", "attributes": {"name": "L"}}}).json()["data"]["id"]
        profiles = call("GET", "/api/profiles?sort=email").json()["data"]
        call("POST", f"/api/lists/{lst}/relationships/profiles",
             {"data": [{"type": "profile", "id": p["id"]} for p in profiles]})
        call("GET", f"/api/profiles/{profiles[0]['id']}?include=lists,segments")
        call("GET", "/api/profiles?filter=equals(email,'BO@example.com')")
        call("GET", "/api/profiles?filter=equals(subscriptions.email.marketing.suppression.reason,'HARD_BOUNCE')")
    out.append(sb.outbox())
    out.append(sorted((k, len(v)) for k, v in sb.registry.hooks.items()))
    return out


first = run()
package = importlib.import_module("klaviyo_sandbox")
names = [m.name for m in pkgutil.walk_packages(package.__path__, "klaviyo_sandbox.")]
for name in names:
    importlib.import_module(name)
after_import = run()
for name in names:
    if name.startswith("klaviyo_sandbox.domains"):
        importlib.reload(sys.modules[name])
after_reload = run()
print(json.dumps({"names": len(names), "same_after_import": first == after_import,
                  "same_after_reload": first == after_reload, "outbox": len(first[-2])}))
'''


def test_importing_every_module_leaves_a_fresh_sandbox_the_same() -> None:
    done = subprocess.run([sys.executable, "-c", SCENARIO, json.dumps(HEADERS)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["names"] > 30 and result["outbox"] == 1  # the flow ran once, for bo's event only
    assert result["same_after_import"] and result["same_after_reload"]
