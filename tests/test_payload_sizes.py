"""Sizes Klaviyo documents for one request: an item of a bulk body, any string of an event, the body.

A call over one is refused by the toolkit before anything is sent, naming the argument (its path as
the model gave it), the size, the limit and the fix; the refusal spends no rate-limit slot and is
never retried. One at the limit is sent and the sandbox accepts it: toolkit and sandbox read the
same figures (the operation's catalog record, Klaviyo's ingestion limits for events).

Requests go to the in-process sandbox over real HTTP; "nothing sent" means the sandbox logged no
request. Sizes are counted as they go on the wire: compact JSON, UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from langchain_core.messages import ToolMessage

from klaviyo_sandbox import DEMO_KEY, Sandbox
from klaviyo_toolkit import KlaviyoToolkit
from klaviyo_toolkit._arguments import build_request, validate_args
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import InvalidArgumentError
from klaviyo_toolkit.ratelimit import RateLimiter

CAT = load_catalog()
KB = 1024
RECORD_LIMIT = CAT.get("bulk_create_data_source_records").max_item_payload_bytes
PROFILE_LIMIT = CAT.get("bulk_import_profiles").max_item_payload_bytes
EVENT_STRING_LIMIT = 100 * KB


def wire_size(value: Any) -> int:
    """Bytes of ``value`` as httpx sends it (compact JSON, UTF-8), as the sandbox measures an item."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def record_of(size: int, kind: str = "data-source-record") -> dict[str, Any]:
    """A record argument whose item on the wire (``{"type":..., "attributes": {"record": ...}}``) is ``size`` bytes."""
    envelope = wire_size({"type": kind, "attributes": {"record": {"blob": ""}}})
    return {"record": {"blob": "x" * (size - envelope)}}


def profile_of(size: int, n: int = 0) -> dict[str, Any]:
    """A profile argument of bulk_import_profiles whose item on the wire is ``size`` bytes."""
    email = f"big{n}@example.com"
    envelope = wire_size({"type": "profile", "attributes": {"email": email, "properties": {"note": ""}}})
    return {"email": email, "properties": {"note": "n" * (size - envelope)}}


@pytest.fixture
def sb() -> Sandbox:
    return Sandbox(demo_data=False, clock=ManualClock())


@pytest.fixture
def data_source(sb: Sandbox) -> str:
    with sb.client() as kl:
        return str(kl.call("create_data_source", title="Orders").data["id"])


def refused(sb: Sandbox, operation: str, **args: Any) -> InvalidArgumentError:
    sb.requests.clear()
    with sb.client() as kl, pytest.raises(InvalidArgumentError) as err:
        kl.call(operation, **args)
    assert list(sb.requests) == [], "a refused call must not reach HTTP"
    return err.value


def sent(sb: Sandbox, operation: str, **args: Any) -> int:
    sb.requests.clear()
    with sb.client() as kl:
        status = kl.call(operation, **args).status
    assert [r["status"] for r in sb.requests] == [status]
    return status


# -- per item ------------------------------------------------------------------------------------
def test_a_tool_call_with_an_oversized_record_is_refused_before_any_request(sb: Sandbox, data_source: str) -> None:
    """bulk_create_data_source_records: "The maximum allowed payload size per-record is 512KB"."""
    assert RECORD_LIMIT == 512 * KB
    clock = ManualClock()
    limiter = RateLimiter(clock, factor=0.01)  # 3/s, 15/min -> 1/s, 1/min: a spent slot would show as a wait
    kit = KlaviyoToolkit(sb.client(rate_limiter=limiter, clock=clock), scopes=["custom-objects:write"])
    tool = kit.tool("bulk_create_data_source_records")
    records = [record_of(100), record_of(RECORD_LIMIT + 1), record_of(100)]
    sb.requests.clear()
    for _ in range(3):
        message = tool.invoke(
            {
                "type": "tool_call",
                "id": "c1",
                "name": tool.name,
                "args": {"data_source_records": records, "data_source_id": data_source},
            }
        )
        assert isinstance(message, ToolMessage) and message.status == "error"
        text = str(message.content)
        assert "data_source_records[1]" in text, text
        assert f"{RECORD_LIMIT + 1:,} bytes" in text and "512 KB" in text, text
        assert "Fix the arguments" in text and "smaller" in text, text
    assert list(sb.requests) == [] and "bulk_create_data_source_records" not in sb.call_counts, "nothing was sent"
    # no slot was spent by the three refusals: a good call goes at once (a spent one would wait 60 s)
    fits = [record_of(100), record_of(RECORD_LIMIT), record_of(100)]
    args = {"data_source_records": fits, "data_source_id": data_source}
    message = tool.invoke({"type": "tool_call", "id": "c2", "name": tool.name, "args": args})
    assert message.status == "success", message.content
    assert clock.slept == []
    assert [r["status"] < 300 for r in sb.requests] == [True]


def test_a_record_at_512_kb_is_sent_and_accepted_one_byte_more_is_refused(sb: Sandbox, data_source: str) -> None:
    rel = {"data_source_id": data_source}
    assert sent(sb, "create_data_source_record", data_source_record=record_of(RECORD_LIMIT), **rel) < 300
    err = refused(sb, "create_data_source_record", data_source_record=record_of(RECORD_LIMIT + 1), **rel)
    assert err.fields == ["data_source_record"], err
    assert f"{RECORD_LIMIT + 1:,} bytes" in str(err) and "512 KB" in str(err)


def test_a_profile_over_100_kb_in_a_bulk_import_is_named(sb: Sandbox) -> None:
    """bulk_import_profiles: "The maximum allowed payload size per-profile is 100KB"."""
    assert PROFILE_LIMIT == 100 * KB
    rows = [profile_of(300, n) for n in range(50)]
    rows[37] = profile_of(PROFILE_LIMIT + 1, 37)
    err = refused(sb, "bulk_import_profiles", profiles=rows)
    assert err.fields == ["profiles[37]"], err
    assert f"{PROFILE_LIMIT + 1:,} bytes" in str(err) and "100 KB" in str(err)
    rows[37] = profile_of(PROFILE_LIMIT, 37)
    assert sent(sb, "bulk_import_profiles", profiles=rows) == 202


# -- any string of an event --------------------------------------------------------------------------
EVENT = {"metric": {"name": "Viewed Product"}, "properties": {"sku": "A1"}}


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"profile": {"email": "e@example.com", "first_name": "a" * (EVENT_STRING_LIMIT + 1)}}, "profile.first_name"),
        ({"profile": {"email": "e@example.com", "location": {"city": "é" * 51_201}}}, "profile.location.city"),
        (
            {"profile": {"email": "e@example.com", "properties": {"bio": "b" * (EVENT_STRING_LIMIT + 1)}}},
            "profile.properties",  # free-form JSON: its own check names the argument, and "at bio"
        ),
        ({"profile": {"email": "e@example.com"}, "unique_id": "u" * (EVENT_STRING_LIMIT + 1)}, "unique_id"),
    ],
    ids=["first_name", "city-two-byte-chars", "profile-properties", "unique_id"],
)
def test_an_event_string_over_100_kb_is_refused_wherever_it_is(sb: Sandbox, args: dict[str, Any], field: str) -> None:
    """Klaviyo's ingestion limit: every string of an event payload, its profile block's included."""
    err = refused(sb, "create_event", **{**EVENT, **args})
    assert err.fields == [field], err
    assert "102,400" in str(err) and "shorten" in str(err), err


def test_an_event_key_over_100_kb_is_refused(sb: Sandbox) -> None:
    profile = {"email": "k@example.com", "properties": {"k" * (EVENT_STRING_LIMIT + 1): 1}}
    err = refused(sb, "create_event", **{**EVENT, "profile": profile})
    assert err.fields == ["profile.properties"], err
    assert "key" in str(err) and "102,401 bytes" in str(err)


def test_an_event_string_of_exactly_100_kb_is_sent_and_accepted(sb: Sandbox) -> None:
    profile = {"email": "e@example.com", "first_name": "a" * EVENT_STRING_LIMIT}
    assert sent(sb, "create_event", **{**EVENT, "profile": profile}) == 202


def test_a_bulk_event_string_is_named_by_its_item(sb: Sandbox) -> None:
    def entry(n: int, name: str) -> dict[str, Any]:
        return {
            "profile": {"email": f"b{n}@example.com", "first_name": name},
            "events": [{"properties": {"n": n}, "metric": {"name": "Ordered"}}],
        }

    entries = [entry(n, "Ada") for n in range(5)]
    entries[3] = entry(3, "z" * (EVENT_STRING_LIMIT + 1))
    err = refused(sb, "bulk_create_events", events_bulk_create=entries)
    assert err.fields == ["events_bulk_create[3].profile.first_name"], err


# -- the whole body --------------------------------------------------------------------------------
def test_a_profile_body_over_100_kb_is_refused_naming_the_largest_argument(sb: Sandbox) -> None:
    """create_profile: "The maximum allowed payload size is 100KB"."""
    limit = CAT.get("create_profile").max_payload_bytes
    assert limit == 100 * KB
    err = refused(sb, "create_profile", email="p@example.com", properties={"note": "n" * limit})
    assert err.fields == ["properties"], err
    assert "100 KB" in str(err) and "request body" in str(err)
    assert sent(sb, "create_profile", email="p@example.com", properties={"note": "n" * (limit // 2)}) == 201


# -- one set of figures ------------------------------------------------------------------------------
def event_with_name(size: int) -> dict[str, Any]:
    return {**EVENT, "profile": {"email": "e@example.com", "first_name": "a" * size}}


def profile_body_of(size: int) -> dict[str, Any]:
    """create_profile arguments whose request body, as sent, is ``size`` bytes."""
    op = CAT.get("create_profile")
    envelope = wire_size(
        build_request(op, validate_args(op, {"email": "p@example.com", "properties": {"n": ""}})).json_body
    )
    return {"email": "p@example.com", "properties": {"n": "n" * (size - envelope)}}


BOUNDARIES = {
    "record": ("bulk_create_data_source_records", RECORD_LIMIT, lambda n: {"data_source_records": [record_of(n)]}),
    "profile-in-import": ("bulk_import_profiles", PROFILE_LIMIT, lambda n: {"profiles": [profile_of(n)]}),
    "event-string": ("create_event", EVENT_STRING_LIMIT, event_with_name),
    "profile-body": ("create_profile", 100 * KB, profile_body_of),
}


@pytest.mark.parametrize("over", [0, 1], ids=["at-the-limit", "one-byte-over"])
@pytest.mark.parametrize("case", BOUNDARIES, ids=list(BOUNDARIES))
def test_at_each_limit_the_sandbox_agrees_with_the_toolkit(sb: Sandbox, data_source: str, case: str, over: int) -> None:
    """The body the toolkit builds (here without its size check) is taken or refused by the sandbox, over
    HTTP, exactly as the toolkit decides: both read the same figures."""
    name, limit, make = BOUNDARIES[case]
    op = CAT.get(name)
    args = make(limit + over)
    if name == "bulk_create_data_source_records":
        args["data_source_id"] = data_source
    try:
        KlaviyoClient(api_key="pk_test_0000000000").prepare(op, args)
        toolkit_sends = True
    except InvalidArgumentError as exc:
        toolkit_sends = False
        assert f"{limit + 1:,}" in str(exc), exc
    body = build_request(op, validate_args(op, args)).json_body
    headers = {"revision": op.revision, "Authorization": f"Klaviyo-API-Key {DEMO_KEY}"}
    with httpx.Client(transport=sb.transport(), base_url=Sandbox.BASE_URL, headers=headers) as http:
        answer = http.post(op.path, json=body)
    assert (answer.status_code < 300) == toolkit_sends == (over == 0), answer.text
    if over:
        assert answer.status_code == 400 and "bytes" in answer.json()["errors"][0]["detail"], answer.text
