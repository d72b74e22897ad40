"""Every stable operation answers 2xx with a spec-valid document; bad bodies get pointed 400s; JSON:API works.

The sweep (``tests/sandbox/sweep.py``) gives each of the 345 operations minimal valid arguments;
``ARGS`` below adds what the sampled values cannot know (ids that exist, a real image, an https
webhook URL, the filter an operation requires). Each answer is validated here, independently of the
sandbox's own ``validate_responses`` check, against the response schema the spec names for that
status (``catalog.load_schemas()``), with date-time, date, time and uri formats checked too.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import functools
import itertools
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jsonschema
import pytest

from klaviyo_sandbox import PUBLIC_KEY, Sandbox
from klaviyo_toolkit.catalog import Operation, load_catalog, load_schemas
from klaviyo_toolkit.clock import ManualClock
from klaviyo_toolkit.errors import BadRequestError, KlaviyoError
from klaviyo_toolkit.ratelimit import RateLimiter
from tests.sandbox.sweep import minimal_args

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
FORM_DEFINITION = {
    "versions": [
        {
            "name": "Footer",
            "type": "embed",
            "status": "draft",
            "steps": [
                {
                    "name": "Sign up",
                    "columns": [
                        {
                            "rows": [
                                {
                                    "blocks": [
                                        {"type": "email", "properties": {"label": "Email", "property_name": "$email"}},
                                        {
                                            "type": "button",
                                            "properties": {"label": "Join"},
                                            "action": {"type": "next_step", "submit": True},
                                        },
                                    ]
                                }
                            ]
                        }
                    ],
                }
            ],
        }
    ]
}

#: Operations that cannot answer 2xx with valid arguments in a fresh sandbox. None: every stable
#: operation has a happy path the sandbox serves (the list stays, so a new exception is a decision).
CANNOT_ANSWER_2XX: dict[str, str] = {}


# -- independent response validation ---------------------------------------------------------------
_formats = jsonschema.FormatChecker()


@_formats.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return "T" in value.upper() and parsed.tzinfo is not None  # RFC 3339: a date, a time and an offset


@_formats.checks("date", raises=ValueError)
def _date(value: object) -> bool:
    return not isinstance(value, str) or bool(_dt.date.fromisoformat(value))


@_formats.checks("time", raises=ValueError)
def _time(value: object) -> bool:
    return not isinstance(value, str) or bool(_dt.time.fromisoformat(value))


@_formats.checks("uri")
def _uri(value: object) -> bool:
    return not isinstance(value, str) or bool(urlsplit(value).scheme and (urlsplit(value).netloc or ":" in value))


@functools.cache
def spec_validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {"$defs": load_schemas()["$defs"], "$ref": f"#/$defs/{name}"}, format_checker=_formats
    )


def conformance_problem(op: Operation, status: int, body: Any) -> str | None:
    """Why an answer breaks the spec (None when it conforms)."""
    responses: dict[str, str | None] = op.record["responses"]
    if str(status) not in responses:
        return f"status {status} is not one the spec documents ({', '.join(sorted(responses))})"
    name = responses[str(status)]
    if name is None:
        return None if body in (None, "", b"") else f"status {status} has no body in the spec, got {str(body)[:80]}"
    errors = sorted(spec_validator(name).iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/" + "/".join(str(p) for p in errors[0].absolute_path)
        return f"{len(errors)} schema error(s), first at {where}: {errors[0].message[:200]}"
    return None


# -- arguments the sampled values cannot know ------------------------------------------------------
class Fixtures:
    """Resources that some calls must name, made through the API on first use (and again if deleted)."""

    def __init__(self, sb: Sandbox, client: Any) -> None:
        self.sb, self.client = sb, client
        self._made: dict[str, str] = {}
        self._n = itertools.count(1)

    def _have(self, key: str, rtype: str, make: Callable[[], str]) -> str:
        rid = self._made.get(key)
        if rid is None or self.sb.store.get(rtype, rid) is None:
            rid = self._made[key] = make()
        return rid

    def _id(self, operation: str, **args: Any) -> str:
        return str(self.client.call(operation, **args).data["id"])

    def unique(self, stem: str) -> str:
        return f"{stem}-{next(self._n)}"

    def item(self) -> str:
        return self._have(
            "item",
            "catalog-item",
            lambda: self._id(
                "create_catalog_item",
                external_id=self.unique("CONF-ITEM"),
                title="Item",
                description="An item.",
                url="https://shop.example.com/item",
                price=10.0,
            ),
        )

    def category(self) -> str:
        return self._have(
            "category",
            "catalog-category",
            lambda: self._id("create_catalog_category", external_id=self.unique("conf-cat"), name="Category"),
        )

    def variant(self) -> str:
        return self._have(
            "variant",
            "catalog-variant",
            lambda: self._id(
                "create_catalog_variant",
                external_id=self.unique("CONF-VAR"),
                title="Variant",
                description="A variant.",
                sku=self.unique("SKU"),
                inventory_quantity=5,
                price=10.0,
                url="https://shop.example.com/v",
                item_id=self.item(),
            ),
        )

    def flow(self) -> str:
        existing = self.sb.store.all("flow")
        return existing[0].id if existing else self._id("create_flow", **self._minimal("create_flow"))

    def _minimal(self, operation: str) -> dict[str, Any]:
        return minimal_args(self.sb.catalog.get(operation), self.sb)

    def list(self) -> str:
        return self._have("list", "list", lambda: self._id("create_list", name=self.unique("Conformance")))

    def segment(self) -> str:
        existing = self.sb.store.all("segment")
        return (
            existing[0].id
            if existing
            else self._id("create_segment", **{**self._minimal("create_segment"), "name": self.unique("Conformance")})
        )

    def tag_group(self) -> str:
        return self._have("tag-group", "tag-group", lambda: self._id("create_tag_group", name=self.unique("Group")))

    def coupon(self) -> str:
        return self._have("coupon", "coupon", lambda: self._id("create_coupon", external_id=self.unique("CONF")))


Args = Callable[[Fixtures], dict[str, Any]]
ARGS: dict[str, Args] = {
    # relationship edits must name resources that exist
    **{
        op: (lambda f: {"id": f.item(), "catalog_category_ids": [f.category()]})
        for op in (
            "add_categories_to_catalog_item",
            "remove_categories_from_catalog_item",
            "update_categories_for_catalog_item",
        )
    },
    **{
        op: (lambda f: {"id": f.category(), "catalog_item_ids": [f.item()]})
        for op in (
            "add_items_to_catalog_category",
            "remove_items_from_catalog_category",
            "update_items_for_catalog_category",
        )
    },
    "tag_flows": lambda f: {"flow_ids": [f.flow()]},
    "remove_tag_from_flows": lambda f: {"flow_ids": [f.flow()]},
    "tag_lists": lambda f: {"list_ids": [f.list()]},
    "remove_tag_from_lists": lambda f: {"list_ids": [f.list()]},
    "tag_segments": lambda f: {"segment_ids": [f.segment()]},
    "remove_tag_from_segments": lambda f: {"segment_ids": [f.segment()]},
    "create_catalog_variant": lambda f: {"item_id": f.item(), "external_id": f.unique("CONF-VAR")},
    "create_back_in_stock_subscription": lambda f: {
        "variant_id": f.variant(),
        "channels": ["EMAIL"],
        "profile": {"email": "bis@example.com"},
    },
    # the default tag group is never deletable; the account's id is its public key
    "delete_tag_group": lambda f: {"id": f.tag_group()},
    "get_account": lambda f: {"id": PUBLIC_KEY},
    # get_coupon_codes requires a coupon or profile filter (as Klaviyo documents)
    "get_coupon_codes": lambda f: {"filter": f"equals(coupon.id,'{f.coupon()}')"},
    # values with a format the sampled "x" does not have
    "create_webhook": lambda f: {
        "endpoint_url": "https://hooks.example.com/conformance",
        "webhook_topic_ids": ["event:klaviyo.sent_sms"],
    },
    "create_form": lambda f: {"definition": FORM_DEFINITION, "status": "draft"},
    "upload_image_from_file": lambda f: {"file": base64.b64encode(PNG).decode(), "name": "pixel.png"},
    "upload_image_from_url": lambda f: {"import_from_url": "https://cdn.example.com/conformance.png"},
}


@dataclasses.dataclass
class Answer:
    status: int | None
    problem: str | None  # None: 2xx and spec-valid


def call_every_operation(sb: Sandbox) -> dict[str, Answer]:
    client = sb.client(rate_limiter=RateLimiter(factor=None), clock=ManualClock())
    fixtures = Fixtures(sb, client)
    answers: dict[str, Answer] = {}
    for op in load_catalog():
        try:
            args = minimal_args(op, sb)
            if op.operation_id in ARGS:
                args.update(ARGS[op.operation_id](fixtures))
            response = client.call(op, **args)
        except KlaviyoError as exc:
            answers[op.operation_id] = Answer(getattr(exc, "status", None), str(exc)[:300])
            continue
        answers[op.operation_id] = Answer(response.status, conformance_problem(op, response.status, response.body))
    return answers


@pytest.mark.parametrize("demo_data", [True, False], ids=["demo", "empty"])
def test_every_stable_operation_answers_2xx_with_a_spec_valid_document(demo_data: bool) -> None:
    # A manual clock: bulk and send jobs wait until told, so an operation such as cancel_campaign_send
    # finds a send still under way however slow the machine is.
    sb = Sandbox(
        seed=42,
        validate_responses=True,
        rate_limit_factor=None,
        demo_data=demo_data,
        clock=ManualClock(_dt.datetime(2026, 11, 25, 15, 0, tzinfo=_dt.UTC).timestamp()),
    )
    answers = call_every_operation(sb)
    assert len(answers) == 345
    failed = {op: f"{a.status}: {a.problem}" for op, a in answers.items() if a.problem}
    assert failed.keys() == CANNOT_ANSWER_2XX.keys(), failed
    ok = [op for op, a in answers.items() if a.problem is None]
    assert len(ok) == 345 - len(CANNOT_ANSWER_2XX)
    assert all(a.status is not None and 200 <= a.status < 300 for a in answers.values() if a.problem is None)
    assert sum(sb.call_counts[op] for op in answers) >= 345  # each went through the sandbox's pipeline


def test_the_validator_here_is_not_a_rubber_stamp() -> None:
    op = load_catalog().get("get_profile")
    assert conformance_problem(op, 200, {"data": {"type": "profile", "id": "x"}}) is not None
    assert "status 201" in (conformance_problem(op, 201, {}) or "")
    good_time = {"data": [], "links": {"self": "https://a.klaviyo.com/api/profiles/"}}
    assert conformance_problem(load_catalog().get("get_profiles"), 200, good_time) is None
    assert not _formats.conforms("2026-01-01", "date-time")
    assert _formats.conforms("2026-01-01T00:00:00+00:00", "date-time")


# -- wrong bodies: 400 with a pointer at the field --------------------------------------------------
def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        *parents, last = path.strip("/").split("/")
        node: Any = body
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value

    return apply


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        *parents, last = path.strip("/").split("/")
        node: Any = body
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[last]

    return apply


_EVENT = {"metric": {"name": "Viewed"}, "profile": {"email": "a@example.com"}, "properties": {"x": 1}}
WRONG_BODIES = [
    # operation, good arguments, how the body is broken, the pointer Klaviyo gives, words in the detail
    (
        "create_profile",
        {"email": "a@example.com"},
        _set("/data/attributes/email", 12345),
        "/data/attributes/email",
        "not of type",
    ),
    (
        "create_profile",
        {"email": "a@example.com"},
        _set("/data/attributes/firstName", "Ada"),
        "/data/attributes/firstName",
        "'firstName' is not a valid field for the resource 'profile'",
    ),
    (
        "create_profile",
        {"email": "a@example.com"},
        _set("/data/attributes/location", {"planet": "Mars"}),
        "/data/attributes/location/planet",
        "'planet' is not a valid field for the resource 'location'",
    ),
    ("create_list", {"name": "L"}, _drop("/data/attributes/name"), "/data/attributes/name", "'name' is required"),
    ("create_list", {"name": "L"}, _set("/data/type", "lists"), "/data/type", "'lists' is not one of"),
    ("create_list", {"name": "L"}, _drop("/data/type"), "/data/type", "'type' is required"),
    ("create_tag", {"name": "T"}, _set("/data/attributes/name", 5), "/data/attributes/name", "not of type"),
    ("create_event", _EVENT, _set("/data/attributes/value", "ten"), "/data/attributes/value", "not of type"),
    (
        "create_event",
        _EVENT,
        _drop("/data/attributes/metric/data/attributes/name"),
        "/data/attributes/metric/data/attributes/name",
        "'name' is required",
    ),
    (
        "create_event",
        _EVENT,
        _set("/data/attributes/profile/data/meta", {}),
        "/data/attributes/profile/data/meta",
        "'meta' is not a valid field",
    ),
    (
        "create_coupon",
        {"external_id": "SPRING"},
        _drop("/data/attributes/external_id"),
        "/data/attributes/external_id",
        "required",
    ),
    (
        "update_profile",
        {"id": "PLACEHOLDER", "first_name": "A"},
        _set("/data/attributes/first_name", ["A"]),
        "/data/attributes/first_name",
        "not of type",
    ),
    (
        "create_campaign",
        {
            "name": "C",
            "audiences": {"included": ["L1"]},
            "campaign_messages": [{"definition": {"channel": "email", "content": {"subject": "Hi"}}}],
        },
        _set("/data/attributes/campaign-messages/data/0/attributes/definition/content/fromEmail", "a@example.com"),
        "/data/attributes/campaign-messages/data/0/attributes/definition/content/fromEmail",
        "'fromEmail' is not a valid field for the resource 'content'",
    ),
]


@pytest.fixture
def empty() -> Sandbox:
    return Sandbox(demo_data=False, rate_limit_factor=None, validate_responses=True, clock=ManualClock())


@pytest.mark.parametrize(
    ("operation", "args", "break_it", "pointer", "says"),
    WRONG_BODIES,
    ids=[f"{w[0]}:{w[3].rsplit('/', 1)[-1]}" for w in WRONG_BODIES],
)
def test_a_wrong_body_is_400_pointing_at_the_field(
    empty: Sandbox,
    operation: str,
    args: dict[str, Any],
    break_it: Callable[[dict[str, Any]], None],
    pointer: str,
    says: str,
) -> None:
    with empty.client(clock=ManualClock()) as kl:
        if args.get("id") == "PLACEHOLDER":
            args = {**args, "id": kl.call("create_profile", email="someone@example.com").data["id"]}
        prep = kl.prepare(operation, args)
        body = prep.json_body
        assert isinstance(body, dict)
        break_it(body)
        before = {t: empty.store.count(t) for t in empty.store.types()}
        with pytest.raises(BadRequestError) as err:
            kl.send(dataclasses.replace(prep, json_body=body))
    assert err.value.status == 400 and err.value.code == "invalid"
    assert err.value.pointer == pointer
    assert says in (err.value.detail or "")
    assert {t: empty.store.count(t) for t in empty.store.types()} == before  # nothing was written


def test_a_body_that_is_not_json_or_missing_is_400(empty: Sandbox) -> None:
    http = httpx.Client(
        transport=empty.transport(),
        base_url=Sandbox.BASE_URL,
        headers={
            "Authorization": "Klaviyo-API-Key pk_sandbox_demo",
            "revision": "2026-07-15",
            "Content-Type": "application/vnd.api+json",
        },
    )
    bad = http.post("/api/lists", content=b"{not json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["source"]["pointer"] == "/"
    missing = http.post("/api/lists")
    assert missing.status_code == 400 and missing.json()["errors"][0]["source"]["pointer"] == "/data"
    wrong_param = http.get("/api/lists", params={"page[size]": "11"})
    assert wrong_param.status_code == 400
    assert wrong_param.json()["errors"][0]["source"] == {"parameter": "page[size]"}


# -- JSON:API semantics -----------------------------------------------------------------------------
@pytest.fixture
def kl(empty: Sandbox) -> Any:
    return empty.client(clock=ManualClock())


def _profiles(kl: Any, clock: ManualClock, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        out.append(
            kl.call(
                "create_profile",
                email=f"p{i:02d}@example.com",
                first_name=f"P{i}",
                external_id=f"ext-{i % 3}" if i < 3 else None,
            ).data
        )
        clock.advance(60)
    return out


def test_filter_operators_equals_any_greater_less_and(empty: Sandbox, kl: Any) -> None:
    clock = empty.clock
    assert isinstance(clock, ManualClock)
    made = _profiles(kl, clock, 6)
    ids = [p["id"] for p in made]
    created = [p["attributes"]["created"] for p in made]

    def found(expr: str) -> list[str]:
        return [p["id"] for p in kl.iterate("get_profiles", filter=expr, sort="created")]

    assert found("equals(email,'p02@example.com')") == [ids[2]]
    assert found("any(email,['p01@example.com','p04@example.com','nobody@example.com'])") == [ids[1], ids[4]]
    assert found(f"greater-than(created,{created[3]})") == ids[4:]
    assert found(f"less-than(created,{created[2]})") == ids[:2]
    assert found(f"and(greater-than(created,{created[0]}),less-than(created,{created[4]}))") == ids[1:4]
    assert found(f"and(any(id,['{ids[0]}','{ids[5]}']),greater-than(created,{created[0]}))") == [ids[5]]
    assert found("equals(external_id,'ext-1')") == [ids[1]]

    kl.call("create_tag", name="Spring launch")
    kl.call("create_tag", name="Autumn")
    assert [t["name"] for t in kl.iterate("get_tags", filter="contains(name,'launch')")] == ["Spring launch"]
    with pytest.raises(BadRequestError) as err:  # an operator the field does not support
        kl.send(dataclasses.replace(kl.prepare("get_profiles", {}), params=[("filter", "contains(email,'example')")]))
    assert err.value.source == {"parameter": "filter"}


def test_sort_ascending_and_descending(empty: Sandbox, kl: Any) -> None:
    assert isinstance(empty.clock, ManualClock)
    made = _profiles(kl, empty.clock, 4)
    ids = [p["id"] for p in made]
    assert [p["id"] for p in kl.iterate("get_profiles", sort="created")] == ids
    assert [p["id"] for p in kl.iterate("get_profiles", sort="-created")] == ids[::-1]
    assert [p["email"] for p in kl.iterate("get_profiles", sort="-email")] == sorted(
        (p["attributes"]["email"] for p in made), reverse=True
    )
    for name in ("b", "c", "a"):
        kl.call("create_list", name=name)
    assert [x["name"] for x in kl.iterate("get_lists", sort="name")] == ["a", "b", "c"]
    assert [x["name"] for x in kl.iterate("get_lists", sort="-name")] == ["c", "b", "a"]


def test_cursor_paging_and_page_size_limits(empty: Sandbox, kl: Any) -> None:
    for i in range(23):
        kl.call("create_list", name=f"list-{i:02d}")
    pages = list(kl.pages("get_lists", sort="name"))  # get_lists: default and maximum page size 10
    assert [len(p.data) for p in pages] == [10, 10, 3]
    names = [x["attributes"]["name"] for p in pages for x in p.data]
    assert names == [f"list-{i:02d}" for i in range(23)]
    assert "page%5Bcursor%5D=" in (pages[0].next_url or "") and pages[-1].next_url is None
    assert [len(p.data) for p in kl.pages("get_lists", page_size=4)] == [4, 4, 4, 4, 4, 3]
    with pytest.raises(BadRequestError, match="between 1 and 10"):
        kl.send(dataclasses.replace(kl.prepare("get_lists", {}), params=[("page[size]", "11")]))
    with pytest.raises(BadRequestError) as err:
        kl.send(dataclasses.replace(kl.prepare("get_lists", {}), params=[("page[cursor]", "garbage!")]))
    assert err.value.source == {"parameter": "page[cursor]"}
    # Klaviyo's Python SDK sends what follows "page[cursor]" in the next link ("=" included), or,
    # over plain http, the whole link: both reach the same page.
    cursor = parse_qs(urlsplit(pages[0].next_url or "").query)["page[cursor]"][0]
    for given in ("=" + cursor, pages[0].next_url or ""):
        page = kl.send(
            dataclasses.replace(
                kl.prepare("get_lists", {"sort": "name"}), params=[("sort", "name"), ("page[cursor]", given)]
            )
        )
        assert [x["attributes"]["name"] for x in page.data] == names[10:20]
    for i in range(3):
        kl.call("create_profile", email=f"pg{i}@example.com")
    assert len(kl.call("get_profiles", page_size=100).data) == 3  # get_profiles allows up to 100


def test_sparse_fieldsets_and_additional_fields(kl: Any) -> None:
    pid = kl.call("create_profile", email="sparse@example.com", first_name="Ada", last_name="L").data["id"]
    only = kl.call("get_profile", id=pid, fields_profile=["email", "first_name"]).data
    assert only["attributes"] == {"email": "sparse@example.com", "first_name": "Ada"}
    plain = kl.call("get_profile", id=pid).data["attributes"]
    assert "subscriptions" not in plain and "predictive_analytics" not in plain and plain["last_name"] == "L"
    more = kl.call("get_profile", id=pid, additional_fields_profile=["subscriptions"]).data["attributes"]
    assert more["subscriptions"]["email"]["marketing"]["consent"] == "NEVER_SUBSCRIBED"
    listed = kl.call("get_profiles", fields_profile=["email"], filter="equals(email,'sparse@example.com')").data
    assert listed[0]["attributes"] == {"email": "sparse@example.com"}


def test_include_and_relationship_endpoints(kl: Any) -> None:
    list_id = kl.call("create_list", name="Members").data["id"]
    pids = [kl.call("create_profile", email=f"m{i}@example.com").data["id"] for i in range(3)]
    kl.call("add_profiles_to_list", id=list_id, profile_ids=pids)
    linkage = kl.call("get_profile_ids_for_list", id=list_id)
    assert sorted(d["id"] for d in linkage.data) == sorted(pids)
    assert all(d == {"type": "profile", "id": d["id"]} for d in linkage.data)
    kl.call("remove_profiles_from_list", id=list_id, profile_ids=[pids[0]])
    assert sorted(d["id"] for d in kl.call("get_profile_ids_for_list", id=list_id).data) == sorted(pids[1:])
    assert sorted(p["id"] for p in kl.iterate("get_profiles_for_list", id=list_id)) == sorted(pids[1:])
    assert [x["id"] for x in kl.call("get_lists_for_profile", id=pids[1]).data] == [list_id]

    tag = kl.call("create_tag", name="VIP").data["id"]
    kl.call("tag_lists", id=tag, list_ids=[list_id])
    with_tags = kl.call("get_list", id=list_id, include=["tags"])
    assert with_tags.data["relationships"]["tags"]["data"] == [{"type": "tag", "id": tag}]
    assert [(i["type"], i["id"], i["attributes"]["name"]) for i in with_tags.included] == [("tag", tag, "VIP")]
    assert kl.call("get_tag_ids_for_list", id=list_id).data == [{"type": "tag", "id": tag}]

    kl.call(
        "create_event", metric={"name": "Viewed Product"}, profile={"email": "m1@example.com"}, properties={"sku": "A"}
    )
    events = kl.call("get_events", include=["metric", "profile"], filter=f"equals(profile_id,'{pids[1]}')")
    assert len(events.data) == 1
    kinds = {i["type"] for i in events.included}
    assert kinds == {"metric", "profile"}
    assert events.data[0]["relationships"]["profile"]["data"] == {"type": "profile", "id": pids[1]}
