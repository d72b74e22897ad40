"""Klaviyo's own Python SDK (``klaviyo-api``) pointed at the sandbox on a port must just work.

The SDK takes another host through ``KlaviyoAPI(..., test_host=base_url)`` (it sets the generated
``openapi_client.Configuration.host``); it sends its own ``revision`` header and, by default,
parses every answer into its typed (pydantic) response models, so each call here also checks that
the sandbox's documents fit the SDK's models. Skipped when the package is not installed (it is a
dev extra: ``pip install klaviyo-api``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from klaviyo_sandbox import DEMO_KEY, PUBLIC_KEY, Sandbox
from klaviyo_toolkit.oauth import OAuthClient, OAuthConfig, authorization_url, new_state, parse_redirect, pkce_pair
from tests.oauth_consent import consent

from .conftest import on_port, serve

klaviyo_api = pytest.importorskip(
    "klaviyo_api", reason="Klaviyo's SDK is not installed: pip install klaviyo-api (a dev extra)"
)
from openapi_client.exceptions import ApiException  # noqa: E402  (installed with klaviyo-api)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Sandbox, str]]:
    """The seeded demo account on a local port, limits off (the SDK sleeps for real on a 429)."""
    sb = Sandbox(seed=42, rate_limit_factor=None, validate_responses=True)
    with on_port(sb.app) as base_url:
        yield sb, base_url
    sb.close()


@pytest.fixture
def sdk(served: tuple[Sandbox, str]) -> Any:
    _, base_url = served
    return klaviyo_api.KlaviyoAPI(DEMO_KEY, max_delay=0, max_retries=0, test_host=base_url)


def test_the_sdk_sends_its_revision_and_our_key(served: tuple[Sandbox, str], sdk: Any) -> None:
    sb, _ = served
    accounts = sdk.Accounts.get_accounts()
    assert accounts.data[0].id == "SbxPub"
    assert accounts.data[0].attributes.contact_information.organization_name == "Northwind Outfitters"
    assert sb.requests[-1]["operation_id"] == "get_accounts" and sb.requests[-1]["status"] == 200


def test_profiles_lists_and_events_through_the_sdk(served: tuple[Sandbox, str], sdk: Any) -> None:
    sb, _ = served
    created = sdk.Profiles.create_profile({"data": {"type": "profile", "attributes": {
        "email": "sdk.ada@example.com", "first_name": "Ada", "properties": {"plan": "pro"}}}})
    profile_id = created.data.id
    assert created.data.attributes.email == "sdk.ada@example.com"

    found = sdk.Profiles.get_profiles(filter="equals(email,'sdk.ada@example.com')")
    assert [p.id for p in found.data] == [profile_id]
    assert found.data[0].attributes.properties == {"plan": "pro"}

    new_list = sdk.Lists.create_list({"data": {"type": "list", "attributes": {"name": "SDK readers"}}})
    list_id = new_list.data.id
    assert sdk.Lists.add_profiles_to_list(list_id, {"data": [{"type": "profile", "id": profile_id}]}) is None
    members = sdk.Lists.get_profiles_for_list(list_id)
    assert [p.id for p in members.data] == [profile_id]

    event = {"data": {"type": "event", "attributes": {
        "properties": {"sku": "TRAIL-1"}, "value": 42.5, "unique_id": "sdk-order-1",
        "metric": {"data": {"type": "metric", "attributes": {"name": "SDK Placed Order"}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": "sdk.ada@example.com"}}}}}}
    before = sb.store.count("event")
    assert sdk.Events.create_event(event) is None  # 202, no body
    assert sdk.Events.create_event(event) is None  # the same unique_id again: deduplicated
    events = sdk.Events.get_events(filter=f"equals(profile_id,'{profile_id}')")
    assert len(events.data) == 1
    assert events.data[0].attributes.event_properties["sku"] == "TRAIL-1"
    assert sb.store.count("event") == before + 1


def test_campaign_values_report_through_the_sdk(served: tuple[Sandbox, str], sdk: Any) -> None:
    placed = next(m.id for m in sdk.Metrics.get_metrics().data if m.attributes.name == "Placed Order")
    report = sdk.Reporting.query_campaign_values({"data": {"type": "campaign-values-report", "attributes": {
        "statistics": ["recipients", "opens", "open_rate", "conversion_value"],
        "timeframe": {"key": "last_30_days"}, "conversion_metric_id": placed}}})
    results = report.data.attributes.results
    assert results, "the demo account sent campaigns in the last 30 days"
    assert sum(r.statistics["recipients"] for r in results) > 1000  # counted by event time in the window
    assert all(0 <= r.statistics["open_rate"] <= 1 for r in results)
    assert {"campaign_id", "send_channel"} <= set(results[0].groupings)


def test_sdk_pagination_follows_the_sandboxes_next_links(sdk: Any) -> None:
    first = sdk.Profiles.get_profiles(page_size=5, sort="email")
    assert len(first.data) == 5 and first.links.next
    second = sdk.Profiles.get_profiles(page_size=5, sort="email", page_cursor=first.links.next)  # a whole URL
    assert len(second.data) == 5
    assert not {p.id for p in first.data} & {p.id for p in second.data}
    assert first.data[-1].attributes.email <= second.data[0].attributes.email


def test_sdk_errors_carry_the_sandboxes_json_api_errors(sdk: Any) -> None:
    with pytest.raises(ApiException) as missing:
        sdk.Profiles.get_profile("01NOSUCHPROFILE000000000000")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["errors"][0]["code"] == "not_found"

    with pytest.raises(ApiException) as bad:
        sdk.Profiles.get_profiles(filter="contains(email,'example')")  # not an operator email supports
    assert bad.value.status == 400
    assert json.loads(bad.value.body)["errors"][0]["source"] == {"parameter": "filter"}

    body = {"data": {"type": "profile", "attributes": {"email": "sdk.twice@example.com"}}}
    first = sdk.Profiles.create_profile(body).data.id
    with pytest.raises(ApiException) as duplicate:
        sdk.Profiles.create_profile(body)
    error = json.loads(duplicate.value.body)["errors"][0]
    assert duplicate.value.status == 409 and error["meta"]["duplicate_profile_id"] == first
    # (A misspelt attribute never reaches the server through the SDK: its models drop unknown keys.)


def test_the_sdk_with_an_oauth_access_token(served: tuple[Sandbox, str]) -> None:
    _, base_url = served
    config = OAuthConfig.for_base_url(base_url, client_id="sbx-client", client_secret="sbx-secret",
                                      redirect_uri="http://localhost:8000/callback", scopes=["accounts:read"])
    verifier, challenge = pkce_pair()
    state = new_state()
    with httpx.Client() as browser:  # the consent page, as a person answers it
        code = parse_redirect(consent(browser, authorization_url(config, state, challenge)).headers["location"], state)
    with OAuthClient(config) as oauth:
        token = oauth.exchange_code(code, verifier).access_token
    sdk = klaviyo_api.KlaviyoAPI(None, access_token=token, max_delay=0, max_retries=0, test_host=base_url)
    assert sdk.Accounts.get_accounts().data[0].id == "SbxPub"
    with pytest.raises(ApiException) as denied:
        sdk.Profiles.get_profiles()
    assert denied.value.status == 403 and "profiles:read" in str(denied.value.body)


# -- a broad sweep: every operation the SDK has a method for --------------------------------------------
#: The least number of SDK methods that must work against the sandbox (the issue's bar).
MIN_SDK_METHODS = 130


def sdk_methods(sdk: Any) -> dict[str, tuple[Any, Any]]:
    """Operation id -> (the SDK's bound method, its unwrapped function): its API groups name methods by
    operation id, and wrap them (retries) in ``(*args, **kwargs)``."""
    found: dict[str, tuple[Any, Any]] = {}
    for group in dir(sdk):
        if group.startswith("_") or not group[0].isupper():
            continue
        api = getattr(sdk, group)
        for name in dir(type(api)):
            if not name.startswith("_") and callable(getattr(api, name)):
                found.setdefault(name, (getattr(api, name), getattr(type(api), name)))
    return found


def sdk_arguments(function: Any, op: Any, prepared: Any, args: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The SDK call for a request our client prepared: path ids and the body positionally, query as kwargs."""
    import inspect

    params = inspect.signature(function).parameters
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    path_args = [a for a in op.args if a["in"] == "path"]
    for arg in path_args:
        positional.append(args[arg["name"]])
    if prepared.json_body is not None:
        positional.append(prepared.json_body)
    for wire, value in prepared.params:
        name = wire.replace("[", "_").replace("]", "").replace("-", "_")
        if name not in params:
            continue
        annotation = str(params[name].annotation)
        keywords[name] = value.split(",") if "List" in annotation else int(value) if "int" in annotation else value
    if "company_id" in params:
        keywords["company_id"] = PUBLIC_KEY
    if "revision" in params:  # an SDK quirk: Get Client IP Allowlist takes the revision as an argument
        keywords["revision"] = op.revision
    return positional, keywords


def test_the_official_sdk_passes_a_broad_sweep_of_methods() -> None:
    """Klaviyo's SDK for the sandbox's revision (24.x, 2026-07-15), each method called with the minimal
    valid arguments of the conformance sweep; its typed models parse every answer."""
    import datetime as _dt

    from klaviyo_toolkit.catalog import load_catalog
    from klaviyo_toolkit.clock import ManualClock
    from klaviyo_toolkit.errors import KlaviyoError
    from klaviyo_toolkit.ratelimit import RateLimiter

    from .sweep import minimal_args
    from .test_conformance import ARGS, Fixtures

    assert load_catalog().revision == klaviyo_api.KlaviyoAPI._REVISION  # the SDK for this revision
    sb = Sandbox(seed=42, rate_limit_factor=None, validate_responses=True,
                 clock=ManualClock(_dt.datetime(2026, 11, 25, 15, 0, tzinfo=_dt.UTC).timestamp()))
    ours = sb.client(rate_limiter=RateLimiter(factor=None), clock=ManualClock())
    fixtures = Fixtures(sb, ours)
    catalog = load_catalog()
    passed: list[str] = []
    failed: dict[str, str] = {}
    with serve(sb.app) as base_url:  # its own server: the module's ``served`` holds the shared one
        sdk = klaviyo_api.KlaviyoAPI(DEMO_KEY, max_delay=0, max_retries=0, test_host=base_url)
        methods = sdk_methods(sdk)
        for op in catalog:
            if op.operation_id not in methods or (op.body and op.body.get("root") == "form"):
                continue  # not in the SDK, or a file upload (the SDK wants a file object)
            method, function = methods[op.operation_id]
            if "/push-tokens/{id}" in op.path and not sb.store.count("push-token"):  # deleted by the sweep:
                ours.call("create_push_token", **minimal_args(catalog.get("create_push_token"), sb))  # with a profile
            try:
                args = minimal_args(op, sb)
                if op.operation_id in ARGS:
                    args.update(ARGS[op.operation_id](fixtures))
                prepared = ours.prepare(op, args)
                positional, keywords = sdk_arguments(function, op, prepared, args)
                method(*positional, **keywords)
            except (ApiException, KlaviyoError, ValueError, TypeError) as exc:
                failed[op.operation_id] = f"{type(exc).__name__}: {str(exc)[:300]}"
                continue
            passed.append(op.operation_id)
    assert len(passed) >= MIN_SDK_METHODS, failed
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())
