"""Hostile input: refused before any HTTP call with an InvalidArgumentError naming the field, never a
raw ValueError, UnicodeEncodeError, RecursionError or httpx.InvalidURL; good input still goes through.

Requests go to the in-process sandbox over real HTTP (httpx + ASGI); "refused before HTTP" means the
sandbox logged no request.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit import KlaviyoToolkit
from klaviyo_toolkit._arguments import _scalar_type
from klaviyo_toolkit._input_checks import MAX_JSON_DEPTH, MAX_URL_BYTES
from klaviyo_toolkit.catalog import load_catalog
from klaviyo_toolkit.catalog._generator import Generator
from klaviyo_toolkit.client import KlaviyoClient
from klaviyo_toolkit.errors import InvalidArgumentError

CAT = load_catalog()


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox()


def refused(sb: Sandbox, operation: str, **args: Any) -> InvalidArgumentError:
    """The call must raise InvalidArgumentError and send nothing."""
    sb.requests.clear()
    with pytest.raises(InvalidArgumentError) as err:
        sb.client().call(operation, **args)
    assert list(sb.requests) == [], "refused input must not reach HTTP"
    return err.value


def sent(sb: Sandbox, operation: str, **args: Any) -> Any:
    sb.requests.clear()
    response = sb.client().call(operation, **args)
    assert len(sb.requests) == 1
    return response


def nested(levels: int, leaf: str = "1") -> str:
    text = leaf
    for _ in range(levels):
        text = '{"a": ' + text + "}"
    return text


def nested_lists(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


# -- F1: JSON text ---------------------------------------------------------------------------------
HOSTILE_JSON = {
    "nan": '{"a": NaN}',
    "infinity": '{"a": Infinity}',
    "minus-infinity": '{"a": -Infinity}',
    "nested-nan": '{"a": [1, {"b": NaN}]}',
    "overflowing-number": '{"a": 1e400}',
    "negative-overflow": '{"a": -1e999}',
    "overflowing-integer": '{"a": 1' + "0" * 400 + "}",
    "escaped-lone-surrogate": '{"a": "\\ud800"}',
    "escaped-low-surrogate": '{"a": "x\\udfff"}',
    "surrogate-in-key": '{"\\udc80": 1}',
    "raw-lone-surrogate": '{"a": "\ud83d"}',
    "escaped-nul": '{"a": "x\\u0000y"}',
    "escaped-escape-char": '{"a": "\\u001b[31m"}',
    "nul-in-key": '{"a\\u0000": 1}',
    "duplicate-key": '{"a": 1, "a": 2}',
    "deep-objects": nested(MAX_JSON_DEPTH + 5),
    "deep-3000": '{"a": ' + nested_lists(3000) + "}",
    "deep-100000": '{"a": ' + nested_lists(100_000) + "}",
    "a-list": "[1, 2, 3]",
    "a-number": "42",
    "a-string": '"plan"',
    "null-text": "null",
    "true-text": "true",
}


@pytest.mark.parametrize("text", HOSTILE_JSON.values(), ids=HOSTILE_JSON.keys())
def test_hostile_json_text_is_refused_naming_the_field(sandbox: Sandbox, text: str) -> None:
    err = refused(sandbox, "create_profile", email="json@example.com", properties=text)
    assert err.fields == ["properties"], err


@pytest.mark.parametrize(
    "value",
    [{"a": float("nan")}, {"a": [float("inf")]}, {"a": "\ud800"}, {"\x00": 1}, {"a": {1, 2}}, [1, 2],
     {"a": [0, -(10**309)]}, {"a": 10**5000}],
    ids=["nan", "inf", "surrogate", "nul-key", "a-set", "a-list", "huge-integer", "enormous-integer"],
)
def test_hostile_json_values_given_as_data_are_refused(sandbox: Sandbox, value: Any) -> None:
    err = refused(sandbox, "create_profile", email="data@example.com", properties=value)
    assert len(err.fields) == 1 and err.fields[0].startswith("properties"), err


def test_a_deep_dict_given_as_data_is_refused_without_recursing() -> None:
    value: Any = 1
    for _ in range(50_000):
        value = {"a": value}
    client = KlaviyoClient(api_key="pk_test_0000000000")
    with pytest.raises(InvalidArgumentError) as err:
        client.prepare("create_profile", {"email": "deep@example.com", "properties": value})
    assert err.value.fields == ["properties"]
    assert "nested deeper" in str(err.value)


def test_event_properties_follow_klaviyos_ingestion_limits(sandbox: Sandbox) -> None:
    event = {"metric": {"name": "Viewed"}, "profile": {"email": "event@example.com"}}
    ok = sent(sandbox, "create_event", properties=nested(10), **event)
    assert ok.status == 202
    err = refused(sandbox, "create_event", properties=nested(11), **event)
    assert err.fields == ["properties"] and "10 levels" in str(err)
    err = refused(sandbox, "create_event", properties=json.dumps({"a": list(range(4001))}), **event)
    assert err.fields == ["properties"] and "4,000" in str(err)
    err = refused(sandbox, "create_event", properties=json.dumps({"a": "z" * (100 * 1024 + 1)}), **event)
    assert err.fields == ["properties"] and "bytes" in str(err)


def test_json_nesting_within_the_limit_is_sent_whole(sandbox: Sandbox) -> None:
    response = sent(sandbox, "create_profile", email="nest@example.com", properties=nested(MAX_JSON_DEPTH - 1))
    depth, node = 0, response.data["attributes"]["properties"]
    while isinstance(node, dict):
        node, depth = node["a"], depth + 1
    assert depth == MAX_JSON_DEPTH - 1 and node == 1
    err = refused(sandbox, "create_profile", email="nest@example.com", properties=nested(MAX_JSON_DEPTH + 1))
    assert err.fields == ["properties"]


def test_a_json_array_argument_refuses_an_object(sandbox: Sandbox) -> None:
    definition = {"triggers": "{}", "actions": [], "entry_action_id": "1"}
    err = refused(sandbox, "create_flow", name="F", definition=definition)
    assert "definition.triggers" in err.fields


# -- F1: text and numbers anywhere -------------------------------------------------------------------
BAD_CHARS = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\ud800", "\udbff", "\udc00", "\udfff"]
TEXT_FIELDS = [
    ("create_list", {"name": "News{}letter"}, "name"),
    ("update_list", {"id": "L1", "name": "News{}letter"}, "name"),
    ("get_profiles", {"filter": "equals(email,'a{}@example.com')"}, "filter"),
    ("get_lists", {"filter": "equals(name,'x{}')"}, "filter"),
    ("create_profile", {"email": "t@example.com", "first_name": "Ad{}a"}, "first_name"),
    ("create_profile", {"email": "t@example.com", "location": {"city": "Lon{}don"}}, "location.city"),
    ("create_template", {"name": "T", "editor_type": "CODE", "html": "<p>hi{}</p>"}, "html"),
    ("create_tag", {"name": "t{}"}, "name"),
]


@pytest.mark.parametrize("char", BAD_CHARS, ids=[f"U+{ord(c):04X}" for c in BAD_CHARS])
@pytest.mark.parametrize(("operation", "args", "field"), TEXT_FIELDS, ids=[f"{o}.{f}" for o, _, f in TEXT_FIELDS])
def test_control_characters_and_lone_surrogates_are_refused_in_any_text(
    sandbox: Sandbox, operation: str, args: dict[str, Any], field: str, char: str
) -> None:
    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value.replace("{}", char) if isinstance(value, str) else value

    err = refused(sandbox, operation, **fill(args))
    assert err.fields == [field], err
    assert f"U+{ord(char):04X}" in str(err)


def test_tabs_and_newlines_stay_allowed_in_free_text(sandbox: Sandbox) -> None:
    html = "<html>\n\t<body>\r\n<p>hi</p></body></html>"
    response = sent(sandbox, "create_template", name="T\tone", editor_type="CODE", html=html)
    assert response.data["attributes"]["html"] == html
    refused(sandbox, "create_template", name="T", editor_type="CODE", html=html + "\x00")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "NaN", "Infinity", "-inf", 10**400])
def test_non_finite_numbers_are_refused(sandbox: Sandbox, value: Any) -> None:
    err = refused(
        sandbox,
        "create_event",
        properties="{}",
        value=value,
        metric={"name": "Paid"},
        profile={"email": "n@example.com"},
    )
    assert err.fields == ["value"], err


@pytest.mark.parametrize(
    ("operation", "args", "field"),
    [
        ("get_profiles", {"page_size": True}, "page_size"),
        ("get_lists", {"page_size": True}, "page_size"),
        ("get_events", {"page_size": True}, "page_size"),
        ("create_event", {"value": True}, "value"),
        ("create_segment", {"is_starred": 1}, "is_starred"),
        ("create_segment", {"is_starred": "yes"}, "is_starred"),
        ("create_segment", {"is_starred": "false"}, "is_starred"),
        ("create_tag_group", {"exclusive": 0}, "exclusive"),
    ],
)
def test_booleans_and_numbers_do_not_stand_in_for_each_other(
    sandbox: Sandbox, operation: str, args: dict[str, Any], field: str
) -> None:
    err = refused(sandbox, operation, **args)
    assert field in err.fields, err


# -- F1: URL length --------------------------------------------------------------------------------
def test_a_filter_too_long_for_a_url_is_refused_with_a_batch_size(sandbox: Sandbox) -> None:
    emails = ",".join(f"'user{i}@example.com'" for i in range(4000))
    err = refused(sandbox, "get_profiles", filter=f"any(email,[{emails}])")
    assert err.fields == ["filter"]
    assert "4,000 values" in str(err) and "batches" in str(err)
    per_call = int(str(err).split("give at most ")[1].split(" ")[0].replace(",", ""))
    batch = ",".join(f"'user{i}@example.com'" for i in range(per_call))
    assert sent(sandbox, "get_profiles", filter=f"any(email,[{batch}])").status == 200


@pytest.mark.parametrize(
    ("operation", "args", "field"),
    [
        ("get_list", {"id": "X" * 100_000}, "id"),
        ("get_list", {"id": "X" * MAX_URL_BYTES}, "id"),
        ("get_list", {"id": "é" * 3000}, "id"),
        ("get_profiles", {"filter": "equals(email,'" + "a" * 70_000 + "@example.com')"}, "filter"),
        ("get_profiles", {"filter": "equals(email,'" + "%" * 3000 + "@example.com')"}, "filter"),
        ("get_lists", {"page_cursor": "c" * 9000}, "page_cursor"),
    ],
)
def test_any_argument_too_long_for_a_url_is_named(
    sandbox: Sandbox, operation: str, args: dict[str, Any], field: str
) -> None:
    err = refused(sandbox, operation, **args)
    assert err.fields == [field], err
    assert "8,000" in str(err)


# -- F1: tools never raise -------------------------------------------------------------------------
TOOL_CASES = [
    ("create_profile", {"email": "n@example.com", "properties": '{"score": NaN}'}),
    ("create_profile", {"email": "s@example.com", "properties": '{"a": "\\ud800"}'}),
    ("create_profile", {"email": "s@example.com", "first_name": "\ud800"}),
    ("create_profile", {"email": "d@example.com", "properties": '{"a": ' + nested_lists(3000) + "}"}),
    ("create_profile", {"email": "d@example.com", "properties": "[1, 2]"}),
    ("get_profiles", {"filter": "equals(email,'" + "a" * 70_000 + "')"}),
    ("get_profiles", {"page_size": True}),
    ("get_list", {"id": ""}),
    ("get_list", {"id": ".."}),
    ("get_list", {"id": "X" * 100_000}),
    ("create_list", {"name": "a\x00b"}),
    ("create_list", {"name": ""}),
]


@pytest.mark.parametrize(("name", "args"), TOOL_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(TOOL_CASES)])
def test_a_tool_call_with_hostile_input_returns_an_error_message(sandbox: Sandbox, name: str, args: Any) -> None:
    kit = KlaviyoToolkit(sandbox.client(), scopes=["profiles:read", "profiles:write", "lists:read", "lists:write"])
    tool = kit.tool(name)
    full = {k: None for k in tool.args_model.model_fields} | args
    sandbox.requests.clear()
    message = tool.invoke({"type": "tool_call", "id": "c1", "name": name, "args": full})
    assert isinstance(message, ToolMessage) and message.status == "error"
    assert "Fix the arguments" in str(message.content)
    assert list(sandbox.requests) == []


def test_the_client_turns_an_unencodable_request_into_a_named_error(sandbox: Sandbox) -> None:
    """A backstop: a request edited after validation (a guard's bug) still fails typed, not raw."""
    client = sandbox.client()
    for bad in (float("nan"), "\ud800"):
        prep = client.prepare("create_list", {"name": "Backstop"})
        prep.json_body["data"]["attributes"]["name"] = bad
        prep.arguments["name"] = bad
        sandbox.requests.clear()
        with pytest.raises(InvalidArgumentError) as err:
            client.send(prep)
        assert err.value.fields == ["name"]
        assert list(sandbox.requests) == []


# -- F4: emails, phones, limits, identifiers, names ------------------------------------------------
BAD_EMAILS = [
    "ada@example.com.",
    "ada@example..com",
    "ada@.example.com",
    "ada@-example.com",
    "ada@example-.com",
    ".ada@example.com",
    "ada.@example.com",
    "a..da@example.com",
    "a" * 250 + "@example.com",
    "a" * 65 + "@example.com",
    "ada@" + "b" * 64 + ".com",
    "a,b@example.com",
    "<ada@example.com>",
    "ada(x)@example.com",
    "ada:x@example.com",
    "ada@123.45",
    "ada@example_x.com",
    "ada\ud800@example.com",
]


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_emails_klaviyo_refuses_are_refused_first(sandbox: Sandbox, email: str) -> None:
    assert refused(sandbox, "create_profile", email=email).fields == ["email"]
    err = refused(sandbox, "bulk_suppress_profiles", profiles=[{"email": "ok@example.com"}, {"email": email}])
    assert err.fields == ["profiles[1].email"], err


@pytest.mark.parametrize(
    "phone",
    ["+1٥٠٠٥٥٥٠٠٠٦", "+1५००५५५०००६", "+1০৫০০৫৫৫০০০৬", "+44٧٩٠٠٩٠٠١٢٣"],
)
def test_phones_need_ascii_digits_in_e164(sandbox: Sandbox, phone: str) -> None:
    assert refused(sandbox, "create_profile", phone_number=phone).fields == ["phone_number"]


@pytest.mark.parametrize(
    ("phone", "why"),
    [
        ("+15555555", "too few digits for a +1 (US) number"),
        ("+12125551234567", "too many digits for a +1 (US) number"),
        ("+999123456789", "calling code"),
        ("+447700900123", "no +44 (GB) number is in that range"),
    ],
)
def test_phones_that_cannot_exist_are_refused_first(sandbox: Sandbox, phone: str, why: str) -> None:
    """E.164 in form but no such number: one in a batch of 500 is named, and nothing is sent."""
    err = refused(sandbox, "create_profile", phone_number=phone)
    assert err.fields == ["phone_number"] and why in str(err), err
    rows = [{"email": f"p{i}@example.com", "phone_number": f"+1500555{i:04d}"} for i in range(500)]
    rows[317]["phone_number"] = phone
    err = refused(sandbox, "bulk_import_profiles", profiles=rows)
    assert err.fields == ["profiles[317].phone_number"], err


def test_good_emails_and_phones_still_go_through(sandbox: Sandbox) -> None:
    for email in ("o'brien+news@example.co.uk", "ada.lovelace@sub.example.com", "x_y-z@example.io"):
        assert sent(sandbox, "create_profile", email=email).status == 201
    assert sent(sandbox, "create_profile", phone_number="+15005550077").status == 201
    refused(sandbox, "create_profile", email="ada@example.com.")


@pytest.mark.parametrize("operation", ["bulk_suppress_profiles", "bulk_unsuppress_profiles"])
@pytest.mark.parametrize("count", [101, 1001])
def test_suppressions_are_limited_to_100_emails_per_call(sandbox: Sandbox, operation: str, count: int) -> None:
    profiles = [{"email": f"s{i}@example.com"} for i in range(count)]
    err = refused(sandbox, operation, profiles=profiles)
    assert err.fields == ["profiles"] and "batches of 100" in str(err)


def test_a_suppression_of_100_emails_is_sent(sandbox: Sandbox) -> None:
    response = sent(sandbox, "bulk_suppress_profiles", profiles=[{"email": f"h{i}@example.com"} for i in range(100)])
    assert response.status == 202
    refused(sandbox, "bulk_suppress_profiles", profiles=[{"email": f"h{i}@example.com"} for i in range(101)])


def test_every_documented_per_call_limit_is_in_the_catalog() -> None:
    limits = {op.operation_id: op.max_items for op in CAT if op.max_items}
    assert limits["bulk_suppress_profiles"] == limits["bulk_unsuppress_profiles"] == 100
    text = "Email address per request limit: 100<br><br>*Rate limits*"
    gen = Generator({"paths": {}, "components": {"schemas": {}}}, "stable")
    record = gen.operation(
        "/api/x-jobs",
        "post",
        {
            "operationId": "bulk_x",
            "description": "Things per call limit: `250`. " + text,
            "requestBody": {
                "content": {
                    "application/vnd.api+json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "data": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "type": {"type": "string", "enum": ["x"]},
                                            "id": {"type": "string"},
                                        },
                                    },
                                }
                            },
                        }
                    }
                }
            },
        },
    )
    assert record["max_items"] == 250


@pytest.mark.parametrize(
    "args",
    [{}, {"first_name": "Ada"}, {"email": None, "phone_number": None, "external_id": ""}, {"external_id": "  "}],
)
def test_a_profile_needs_an_identifier(sandbox: Sandbox, args: dict[str, Any]) -> None:
    err = refused(sandbox, "create_profile", **args)
    assert "at least one of email, phone_number, external_id" in str(err)


@pytest.mark.parametrize("name", ["", " ", "\t\n"])
@pytest.mark.parametrize("operation", ["create_list", "create_tag", "create_segment"])
def test_a_required_name_cannot_be_blank(sandbox: Sandbox, operation: str, name: str) -> None:
    assert "name" in refused(sandbox, operation, name=name).fields


def test_the_specs_length_and_pattern_constraints_are_carried_and_checked() -> None:
    from pydantic import TypeAdapter, ValidationError

    gen = Generator({"paths": {}, "components": {"schemas": {}}}, "stable")
    schema = gen.scalar_schema({"type": "string", "minLength": 2, "maxLength": 4, "pattern": "^[a-z]+$"})
    assert schema == {"type": "string", "minLength": 2, "maxLength": 4, "pattern": "^[a-z]+$"}
    assert gen.scalar_schema({"type": "array", "items": {"type": "string"}, "maxItems": 2})["maxItems"] == 2
    adapter: TypeAdapter[Any] = TypeAdapter(_scalar_type(schema, "code"))
    assert adapter.validate_python("abc") == "abc"
    for bad in ("a", "abcde", "ab1"):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)


# -- F6: path ids ----------------------------------------------------------------------------------
BAD_IDS = ["", ".", "..", " . ", " L1", "L1 ", "\tL1", "L1\n", "L1\r", "a\x00b", "a\u200bb", "\u00a0L1", "L1\u2028"]
PATH_OPERATIONS = [op for op in CAT if any(a["in"] == "path" for a in op.args)]


@pytest.mark.parametrize("bad", BAD_IDS, ids=[repr(b) for b in BAD_IDS])
def test_every_path_parameter_of_every_operation_refuses_bad_ids(bad: str) -> None:
    client = KlaviyoClient(api_key="pk_test_0000000000")
    for op in PATH_OPERATIONS:
        for arg in (a for a in op.args if a["in"] == "path"):
            if "enum" in arg["shape"]["schema"]:
                continue
            with pytest.raises(InvalidArgumentError) as err:
                client.prepare(op, {arg["name"]: bad})
            assert err.value.fields == [arg["name"]], (op.operation_id, err.value)


@pytest.mark.parametrize(
    ("operation", "args"),
    [
        ("get_list", {"id": ""}),
        ("get_list", {"id": "."}),
        ("get_list_profiles", {"id": ".."}),
        ("delete_list", {"id": ""}),
        ("delete_campaign", {"id": "."}),
        ("update_list", {"id": "", "name": "x"}),
        ("get_list", {"id": " s7ZLZY"}),
        ("add_profiles_to_list", {"id": "..", "profile_ids": ["P1"]}),
    ],
)
def test_dot_and_empty_ids_never_reach_another_endpoint(sandbox: Sandbox, operation: str, args: Any) -> None:
    assert refused(sandbox, operation, **args).fields == ["id"]


@pytest.mark.parametrize("bad", ["", " P1", "..", "P\x001"])
def test_relationship_ids_are_checked_too(sandbox: Sandbox, bad: str) -> None:
    err = refused(sandbox, "add_profiles_to_list", id="L1", profile_ids=["P0", bad])
    assert err.fields == ["profile_ids[1]"], err
    err = refused(sandbox, "bulk_subscribe_profiles", list_id=bad, profiles=[{"email": "r@example.com"}])
    assert "list_id" in err.fields, err
