"""Arguments: envelopes built by the toolkit, bad input refused before any HTTP call."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.errors import InvalidArgumentError, UnknownOperationError

CAT = load_catalog()


def refuse(operation: str, **args: Any) -> InvalidArgumentError:
    """Call through a client whose transport fails the test if anything is sent."""

    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no HTTP call expected, got {request.method} {request.url}")

    client = KlaviyoClient(api_key="pk_test_0000000000", transport=httpx.MockTransport(never))
    with pytest.raises(InvalidArgumentError) as err:
        client.call(operation, **args)
    return err.value


def build(operation: str, **args: Any) -> dict[str, Any]:
    client = KlaviyoClient(api_key="pk_test_0000000000")
    return client.prepare(operation, args).describe()


def test_create_profile_envelope() -> None:
    req = build("create_profile", email="ada@example.com", first_name="Ada", properties='{"plan": "pro"}',
                location={"city": "London", "timezone": "Europe/London"})
    assert req == {
        "method": "POST",
        "path": "/api/profiles",
        "body": {"data": {"type": "profile", "attributes": {
            "email": "ada@example.com", "first_name": "Ada",
            "location": {"city": "London", "timezone": "Europe/London"}, "properties": {"plan": "pro"}}}},
    }


def test_relationship_linkage_and_path() -> None:
    req = build("add_profiles_to_list", id="LIST1", profile_ids=["P1", "P2"])
    assert req["path"] == "/api/lists/LIST1/relationships/profiles"
    assert req["body"] == {"data": [{"type": "profile", "id": "P1"}, {"type": "profile", "id": "P2"}]}


def test_nested_resources_and_relationships() -> None:
    req = build("bulk_subscribe_profiles", list_id="L1", profiles=[
        {"email": "a@example.com", "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}])
    data = req["body"]["data"]
    assert data["type"] == "profile-subscription-bulk-create-job"
    assert data["relationships"] == {"list": {"data": {"type": "list", "id": "L1"}}}
    assert data["attributes"]["profiles"]["data"][0] == {
        "type": "profile", "attributes": {"email": "a@example.com",
                                          "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}}


def test_patch_takes_the_id_from_the_path_and_sends_only_given_fields() -> None:
    req = build("update_profile", id="P9", first_name="Grace", last_name=None)
    assert req["path"] == "/api/profiles/P9"
    assert req["body"] == {"data": {"type": "profile", "id": "P9", "attributes": {"first_name": "Grace"}}}


def test_query_parameters_are_encoded_as_klaviyo_expects() -> None:
    req = build("get_profiles", filter="equals(email,'a@b.com')", page_size=5, fields_profile=["email", "first_name"],
                additional_fields_profile=["subscriptions"])
    assert req["params"] == {
        "filter": "equals(email,'a@b.com')", "page[size]": "5", "fields[profile]": "email,first_name",
        "additional-fields[profile]": "subscriptions"}


def test_union_arguments_pick_the_matching_variant() -> None:
    req = build("query_campaign_values", statistics=["opens"], conversion_metric_id="M1",
                timeframe={"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"})
    assert req["body"]["data"]["attributes"]["timeframe"] == {
        "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}


def test_invalid_email_names_the_field_and_the_fix() -> None:
    err = refuse("create_profile", email="ada-at-example")
    assert err.fields == ["email"]
    assert "name@example.com" in str(err)


def test_phone_not_in_e164() -> None:
    err = refuse("create_profile", phone_number="(555) 123-4567")
    assert err.fields == ["phone_number"]
    assert "E.164" in str(err) and "+15005550006" in str(err)


def test_nested_email_is_checked_too() -> None:
    err = refuse("create_event", properties={}, metric={"name": "Signed Up"}, profile={"email": "nope"})
    assert err.fields == ["profile.email"]


def test_more_items_than_the_operation_accepts() -> None:
    err = refuse("add_profiles_to_list", id="L1", profile_ids=[f"P{i}" for i in range(1001)])
    assert err.fields == ["profile_ids"]
    assert "1001 items" in str(err) and "at most 1000" in str(err) and "batches of 1000" in str(err)


def test_mutually_exclusive_arguments() -> None:
    err = refuse("bulk_suppress_profiles", profiles=[{"email": "a@example.com"}], list_id="L1")
    assert "exactly one of profiles, list_id, segment_id" in str(err)
    err = refuse("request_profile_deletion", profile={"id": "P1", "email": "a@example.com"})
    assert "exactly one of profile.id, profile.email, profile.phone_number" in str(err)


def test_unknown_argument_lists_the_valid_ones() -> None:
    err = refuse("create_profile", emails=["a@example.com"])
    assert err.fields == ["emails"]
    assert "valid arguments: " in str(err) and "email" in str(err)


def test_an_unknown_key_is_named_as_given_whatever_its_shape() -> None:
    """Keys with brackets, a capital or a type's name were said as "(arguments)", naming nothing; and
    Klaviyo's own name for a parameter (``fields[profile]``, as in its docs) says which argument it is."""
    err = refuse("get_profiles", **{"fields[profile]": ["email"], "page[size]": 5})
    assert err.fields == ["fields[profile]", "page[size]"]
    assert "Klaviyo's name for fields_profile: give fields_profile instead" in str(err)
    assert "Klaviyo's name for page_size: give page_size instead" in str(err)
    assert refuse("create_profile", Email="a@example.com").fields == ["Email"]
    assert refuse("create_profile", str="a@example.com").fields == ["str"]
    nested = refuse("create_event", metric={"name": "Ordered", "Service": "api"}, profile={"email": "a@example.com"},
                    properties={})
    assert nested.fields == ["metric.Service"] and "its fields are: name, service" in str(nested)


def test_a_tool_names_an_unknown_key_as_given_too() -> None:
    from klaviyo_sandbox import Sandbox
    from klaviyo_toolkit import KlaviyoToolkit

    sb = Sandbox(demo_data=False, rate_limit_factor=None)
    tool = KlaviyoToolkit(sb.client(), scopes="*").get_tools(include=["get_profiles"])[0]
    answer = tool.invoke({"type": "tool_call", "id": "c1", "name": "get_profiles", "args": {"page[size]": 5}})
    assert answer.status == "error" and "page[size]: is not an argument" in answer.content
    assert "give page_size instead" in answer.content and "(arguments)" not in answer.content
    assert not [r for r in sb.requests if r["operation_id"] == "get_profiles"], "refused before any request"


def test_missing_required_argument() -> None:
    err = refuse("add_profiles_to_list", profile_ids=["P1"])
    assert err.fields == ["id"] and "required" in str(err)


def test_filter_is_checked_against_the_operations_allowed_fields() -> None:
    err = refuse("get_profiles", filter="equals(favourite_colour,'red')")
    assert err.fields == ["filter"] and "allowed fields" in str(err)
    err = refuse("get_profiles", filter="greater-than(email,'a')")
    assert "use one of: any, equals" in str(err)
    err = refuse("get_profiles", filter="equals(email,unquoted)")
    assert "quote strings" in str(err)
    err = refuse("get_campaigns", filter="contains(name,'Spring')")
    assert "messages.channel" in str(err)


@pytest.mark.parametrize("when", ["2024-13-01T00:00:00Z", "2024-02-30", "2024-01-01T24:00:00Z", "2024-01-01T10:61Z"])
def test_a_datetime_that_is_no_real_moment_is_refused_naming_the_filter(when: str) -> None:
    err = refuse("get_profiles", filter=f"greater-than(updated,{when})")
    assert err.fields == ["filter"] and f"'{when}' is not a real date and time" in str(err)


@pytest.mark.parametrize("text", [
    "and(" * 40 + "equals(email,'a')" + ")" * 40,
    "not(" * 5000 + "equals(email,'a')" + ")" * 5000,  # past Python's recursion limit: was a RecursionError
    "any(email," + "[" * 5000 + "]" * 5000 + ")",
])
def test_a_filter_nested_past_any_real_one_is_refused(text: str) -> None:
    err = refuse("get_profiles", filter=text)
    assert err.fields == ["filter"] and "nested deeper than 32 levels" in str(err)
    assert len(str(err)) < 600, "the message shows the start of the filter, not all of it"


def test_a_value_quoted_in_the_hint_is_shown_as_written() -> None:
    assert "equals(email,'true')" in str(refuse("get_profiles", filter="equals(email,true)"))


def test_bad_json_text_for_free_form_objects() -> None:
    err = refuse("create_profile", email="a@example.com", properties="{plan: pro}")
    assert err.fields == ["properties"] and "JSON" in str(err)


def test_unknown_operation_or_alias() -> None:
    client = KlaviyoClient(api_key="pk_test_0000000000")
    with pytest.raises(UnknownOperationError) as err:
        client.call("create_profiles_bulk")
    assert "Unknown Klaviyo operation 'create_profiles_bulk'" in str(err.value)
    assert client.prepare("create_campaign_send_job", {"id": "C1"}).operation.operation_id == "send_campaign"


def test_every_operation_builds_a_request_from_minimal_arguments() -> None:
    """Fill every required argument with a plausible value; each operation must build a request."""
    from klaviyo_toolkit._arguments import args_model

    def sample(schema: dict[str, Any], name: str = "") -> Any:
        if "JSON text" in schema.get("description", ""):
            text = "[]" if name in json_arrays else "{}"
            return [text] if "array" in str(schema.get("type")) else text
        if name == "file":
            return "aGVsbG8="
        if name == "filter" and schema.get("type") == "string":
            if op.operation_id == "get_campaigns":
                return "equals(messages.channel,'email')"
            if not op.filters:
                return "x"
            field, spec = next(iter(op.filters.items()))
            value = "2024-01-01T00:00:00Z" if spec.get("format") == "date-time" else "'x'"
            return f"{spec['operators'][0]}({field},{value})"
        if "anyOf" in schema:
            return sample(next(s for s in schema["anyOf"] if s.get("type") != "null"))
        typ = schema.get("type")
        if isinstance(typ, list):
            typ = next(t for t in typ if t != "null")
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return next(v for v in schema["enum"] if v is not None)
        if typ == "object":
            return {k: sample(v, k) for k, v in schema["properties"].items()
                    if k in schema.get("required", []) and "null" not in str(v.get("type"))}
        if typ == "array":
            return [sample(schema["items"])]
        return {"string": "x@example.com", "integer": 1, "number": 1.0, "boolean": True}.get(str(typ), "x")

    from klaviyo_toolkit.tools._strict import strict_schema

    built = 0
    refused = {}
    op = None
    def arrays(shapes: list[dict[str, Any]]) -> set[str]:
        """Names of the JSON-text fields where the spec wants an array (the model is told by the error)."""
        found, stack = set(), [(f["name"], f["shape"]) for f in shapes]
        while stack:
            name, shape = stack.pop()
            if shape["kind"] == "json" and shape.get("type") == "array":
                found.add(name)
            stack += [(f["name"], f["shape"]) for f in shape.get("fields", [])]
            stack += [(name, s) for s in [shape.get("items"), shape.get("item"), *shape.get("variants", [])] if s]
        return found

    for op in CAT:
        json_arrays = arrays(op.args)
        schema = strict_schema(args_model(op))
        args = {k: sample(v, k) for k, v in schema["properties"].items() if "null" not in str(v.get("type"))
                and not ("anyOf" in v and {"type": "null"} in v["anyOf"])}
        try:
            req = KlaviyoClient(api_key="pk_test_0000000000").prepare(op, args)
        except InvalidArgumentError as exc:
            refused[op.operation_id] = str(exc)
            continue
        assert req.path.startswith(("/api/", "/client/")) and "{" not in req.path
        built += 1
    # Only the operations with cross-field rules (see _constraints.py) need more than required fields.
    assert set(refused) <= {"bulk_subscribe_profiles", "bulk_suppress_profiles", "bulk_unsuppress_profiles",
                            "create_client_subscription", "request_profile_deletion", "create_profile",
                            "create_or_update_profile"}, refused
    assert built == len(CAT) - len(refused)
