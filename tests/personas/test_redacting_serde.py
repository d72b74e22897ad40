"""The checkpoint serializer masks secrets in every write, including values it has seen clean before.

It remembers channel values found clean by a digest of their bytes (so a checkpoint does not scan
its whole state at every step); these tests pin that the memory never lets a secret through.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from klaviyo_toolkit.redact import redact_bytes, redact_text, register_secret
from personas.kernel.privacy import RedactingSerde, _needs_redaction, redact_state


def checkpoint(step: int, **values: Any) -> dict[str, Any]:
    """A checkpoint shaped as LangGraph writes one."""
    return {
        "v": 4,
        "id": f"1f0-{step:04d}",
        "ts": f"2026-12-04T10:00:0{step}+00:00",
        "channel_values": values,
        "channel_versions": {name: f"{step:032d}.0.123" for name in values},
        "versions_seen": {"decide": {name: f"{step:032d}.0.5" for name in values}},
        "updated_channels": list(values),
    }


def written(serde: RedactingSerde, obj: Any) -> bytes:
    return serde.dumps_typed(obj)[1]


def test_a_value_changed_in_place_after_it_was_seen_clean_is_checked_again() -> None:
    serde = RedactingSerde(JsonPlusSerializer())
    profile = {"email": "ada@example.com", "properties": {"note": "likes hiking"}}
    assert b"likes hiking" in written(serde, checkpoint(1, profile=profile, outcome="ok"))
    profile["properties"]["note"] = "password=hunter2hunter2"  # the same object, now holding a secret
    data = written(serde, checkpoint(2, profile=profile, outcome="ok"))
    assert b"hunter2hunter2" not in data and b"ada@example.com" in data
    assert serde.loads_typed(("msgpack", data))["channel_values"]["outcome"] == "ok", "it still loads"


def test_one_new_value_with_a_secret_is_masked_among_values_seen_clean() -> None:
    serde = RedactingSerde(JsonPlusSerializer())
    big = {"answers": {f"q{i}": "an ordinary answer" for i in range(50)}}
    for step in range(3):
        written(serde, checkpoint(step, submission=big))
    leaked = {"billing": "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "gh": "ghu_" + "a1B2" * 9, "refresh": "ghr_" + "Z9y8" * 9}
    data = written(serde, checkpoint(4, submission=big, form=leaked))
    for value in ("4eC39HqLyjWDarjtT1zdp7dc", "a1B2" * 9, "Z9y8" * 9):
        assert value.encode() not in data, value
    assert b"an ordinary answer" in data


def test_a_secret_registered_after_a_value_was_seen_clean_is_masked_in_the_next_write() -> None:
    serde = RedactingSerde(JsonPlusSerializer())
    value = {"echo": "the endpoint said hello-there-friend-0042"}
    assert b"hello-there-friend-0042" in written(serde, checkpoint(1, reply=value))
    register_secret("hello-there-friend-0042")  # registered later, whatever its shape
    assert b"hello-there-friend-0042" not in written(serde, checkpoint(2, reply=value))
    assert b"hello-there-friend-0042" not in written(serde, value), "and in a pending write"


def test_names_of_channels_and_other_fields_are_checked_too() -> None:
    serde = RedactingSerde(JsonPlusSerializer())
    obj = checkpoint(1, outcome="ok")
    obj["extra"] = {"api_key": "xk_live_51c0ffee4d2e"}  # a field a later LangGraph might add
    assert b"xk_live_51c0ffee4d2e" not in written(serde, obj)


def test_what_is_written_is_what_a_scan_of_the_whole_state_writes() -> None:
    """The per-value check changes nothing in what is written, secrets or not: the same bytes as
    scanning the whole serialized state every time (the serializer before it remembered values)."""
    inner = JsonPlusSerializer()
    serde = RedactingSerde(inner)

    def whole_scan(obj: Any) -> bytes:
        data = inner.dumps_typed(obj)[1]
        if _needs_redaction(data):
            data = inner.dumps_typed(redact_state(obj))[1]
        return redact_bytes(data)

    states = [
        checkpoint(1, input={"data": {"id": "E1", "links": {"self": "https://a.klaviyo.com/api/events/E1"}}}),
        checkpoint(2, profile={"relationships": {"push-tokens": {"links": {"related": "/push-tokens/"}}}}),
        checkpoint(3, note="Bearer abcdefghijklmnop1234", plain="nothing here"),
        checkpoint(4, key="pk_" + "Q" * 34, aws="AKIAIOSFODNN7EXAMPLE", form={"password": "hunter2hunter2"}),
        {"source": "loop", "step": 2, "parents": {}},
    ]
    for state in states * 2:  # the second time, partly from memory
        assert written(serde, state) == whole_scan(state), state


def test_github_tokens_of_every_kind_are_masked_in_text() -> None:
    for prefix in ("ghp_", "gho_", "ghs_", "ghu_", "ghr_"):
        token = prefix + "x7K9" * 9
        assert token not in redact_text(f"the token is {token}"), prefix
