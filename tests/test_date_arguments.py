"""Arguments the spec declares ``format: date-time`` (or ``date``) are checked before any HTTP: a wrong
one is an InvalidArgumentError naming the field and the format, and the sandbox sees no request."""

from __future__ import annotations

from typing import Any

import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.errors import InvalidArgumentError

pytestmark = pytest.mark.usefixtures("clean_env")

EVENT = {"metric": {"name": "Viewed"}, "profile": {"email": "dates@example.com"}, "properties": "{}"}
NOT_A_TIME = [
    "tomorrow",
    "2026-13-45",
    "2026-07-15",
    "2026-02-30T10:00:00Z",
    "2026-07-15T24:00:00Z",
    "15/07/2026 10:00",
    "",
]


def _refused(sb: Sandbox, operation_id: str, field: str, **args: Any) -> str:
    sb.requests.clear()
    with sb.client() as kl, pytest.raises(InvalidArgumentError) as err:
        kl.call(operation_id, **args)
    assert not sb.requests, "refused before any request"
    problems = dict(err.value.problems)
    assert field in problems, problems
    assert "ISO 8601" in problems[field] and "+00:00" in problems[field]
    return problems[field]


@pytest.mark.parametrize("value", NOT_A_TIME)
def test_an_event_time_that_is_not_a_date_and_time_is_refused_before_any_request(value: str) -> None:
    sb = Sandbox(rate_limit_factor=None)
    said = _refused(sb, "create_event", "time", time=value, **EVENT)
    assert repr(value) in said


def test_nested_and_other_date_time_fields_are_checked_too() -> None:
    sb = Sandbox(rate_limit_factor=None)
    timeframe = {"start": "2026-01-01", "end": "2026-01-02T00:00:00Z"}
    _refused(
        sb,
        "query_campaign_values",
        "timeframe.start",
        statistics=["opens"],
        conversion_metric_id="M1",
        timeframe=timeframe,
    )
    _refused(sb, "update_coupon_code", "expires_at", id="C1", expires_at="next week")


@pytest.mark.parametrize(
    "value",
    ["2026-07-15T10:00:00+00:00", "2026-07-15T10:00:00Z", "2026-07-15T10:00:00.123-05:00", "2026-07-15T10:00:00"],
)
def test_iso_8601_times_with_or_without_an_offset_go_through(value: str) -> None:
    sb = Sandbox(rate_limit_factor=None)
    with sb.client() as kl:
        assert kl.call("create_event", time=value, **EVENT).status == 202
