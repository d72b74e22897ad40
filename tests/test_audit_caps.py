"""A capped audit row still says what a big call acted on: shortened by structure, valid JSON.

Real calls to the sandbox through the toolkit, with the audit log's client hook; the rows are read
back from the SQLite file itself.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from klaviyo_sandbox import Sandbox
from klaviyo_toolkit.audit import AuditContext, AuditLog, arguments_digest
from klaviyo_toolkit.errors import NotFoundError
from klaviyo_toolkit.tools import KlaviyoToolkit, Sent

CAP = 16_000  # the log's cap on a row's arguments


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[tuple[KlaviyoToolkit, AuditLog]]:
    sandbox = Sandbox(rate_limit_factor=None)
    with AuditLog(tmp_path / "audit.db") as log:
        client = sandbox.client(hooks=[log.hook(AuditContext(user="ada", persona="syncer"))])
        yield KlaviyoToolkit(client, scopes="*"), log
    sandbox.close()


def stored(log: AuditLog, tool: str) -> tuple[str | None, str]:
    """(path, arguments text) of the newest row for ``tool``, as the file holds them."""
    with sqlite3.connect(log.path) as db:
        row = db.execute("SELECT path, arguments FROM audit_log WHERE tool = ? ORDER BY id DESC", (tool,)).fetchone()
    return row[0], row[1]


def test_a_capped_bulk_subscribe_row_still_names_its_list_and_counts_what_was_left_out(
    logged: tuple[KlaviyoToolkit, AuditLog],
) -> None:
    kit, log = logged
    made = kit.run("create_list", name="VIP")
    assert isinstance(made, Sent)
    list_id = made.response.data["id"]
    consent = {"email": {"marketing": {"consent": "SUBSCRIBED", "consented_at": None}}}
    profiles = [{"email": f"someone.with.a.long.name{i}@example.com", "subscriptions": consent} for i in range(400)]
    assert isinstance(kit.run("bulk_subscribe_profiles", profiles=profiles, list_id=list_id), Sent)
    _, text = stored(log, "bulk_subscribe_profiles")
    assert len(text) <= CAP
    row = json.loads(text)  # valid JSON, not a cut string
    assert row["truncated_chars"] > CAP
    body = row["shortened"]["body"]["data"]
    assert body["relationships"]["list"]["data"]["id"] == list_id  # the target survives the cap
    kept: list[Any] = body["attributes"]["profiles"]["data"]
    assert kept[0]["attributes"]["email"] == "someone.with.a.long.name0@example.com"
    assert kept[-1] == f"… {400 - (len(kept) - 1)} more items (400 in all)"


def test_a_capped_list_addition_keeps_profile_ids_and_says_how_many_more(
    logged: tuple[KlaviyoToolkit, AuditLog],
) -> None:
    kit, log = logged
    list_id = kit.run("create_list", name="VIP").response.data["id"]  # type: ignore[union-attr]
    ids = [f"01HPROFILE{i:016d}" for i in range(900)]
    with pytest.raises(NotFoundError):  # no such profiles: the failed call is recorded all the same
        kit.run("add_profiles_to_list", id=list_id, profile_ids=ids)
    path, text = stored(log, "add_profiles_to_list")
    assert path == f"/api/lists/{list_id}/relationships/profiles"
    row = json.loads(text)
    data = row["shortened"]["body"]["data"]
    assert len(text) <= CAP and data[0] == {"id": ids[0], "type": "profile"}
    assert [d["id"] for d in data[:-1]] == ids[: len(data) - 1]
    assert data[-1] == f"… {900 - (len(data) - 1)} more items (900 in all)"


def test_a_capped_recorded_call_keeps_its_ids_before_other_keys_and_masks_secrets(tmp_path: Path) -> None:
    """A row written without HTTP (a call waiting for approval) is shortened the same way."""
    with AuditLog(tmp_path / "audit.db") as log:
        properties = {f"field_{i:04d}": "x" * 300 for i in range(400)}
        note = "pasted pk_" + "a1B2c3D4e5" * 3 + " " + "y" * 40_000
        log.record("update_profile", "pending_approval",
                   arguments={"id": "01HTARGET", "properties": properties, "note": note})  # fmt: skip
        _, text = stored(log, "update_profile")
    row = json.loads(text)
    assert len(text) <= CAP and row["shortened"]["id"] == "01HTARGET"
    assert "a1B2c3D4e5a1B2c3D4e5" not in text  # redacted before it was shortened
    assert row["shortened"]["note"].endswith("characters in all)")
    assert row["shortened"]["properties"]["…"].endswith("(400 in all)")
    # the digest of the whole arguments (redacted): a kept copy checks against it, with its secret as given
    assert row["sha256"] == arguments_digest({"id": "01HTARGET", "properties": properties, "note": note})
    assert row["sha256"] != arguments_digest({"id": "01HTARGET", "properties": properties, "note": note + "z"})


def test_two_capped_rows_alike_in_what_they_show_differ_in_the_digest_of_the_whole_list(
    logged: tuple[KlaviyoToolkit, AuditLog],
) -> None:
    """900 profile ids, then the same 899 and another last one: the rows show the same first ids and
    counts, and only the digest of the whole list tells them apart (and matches a copy kept of it)."""
    kit, log = logged
    list_id = kit.run("create_list", name="VIP").response.data["id"]  # type: ignore[union-attr]
    ids = [f"01HPROFILE{i:016d}" for i in range(900)]
    rows = []
    for last in ("01HLASTONE0000000000000000", "01HLASTTWO0000000000000000"):
        with pytest.raises(NotFoundError):
            kit.run("add_profiles_to_list", id=list_id, profile_ids=[*ids[:-1], last])
        rows.append(json.loads(stored(log, "add_profiles_to_list")[1]))
    first, second = rows
    assert first["shortened"] == second["shortened"] and first["truncated_chars"] == second["truncated_chars"]
    assert first["sha256"] != second["sha256"]
    sent = {"body": {"data": [{"id": i, "type": "profile"} for i in [*ids[:-1], "01HLASTTWO0000000000000000"]]}}
    assert second["sha256"] == arguments_digest(sent)


@pytest.mark.parametrize("text", ['{"secret_key": "Wh00kSecretValue"}', '{\\"secret_key\\": \\"Wh00kSecretValue\\"}',
                                  "secret-key=Wh00kSecretValue", "webhook secret key: Wh00kSecretValue"])  # fmt: skip
def test_a_secret_key_named_in_json_text_is_masked(tmp_path: Path, text: str) -> None:
    """A webhook's ``secret_key`` inside text (an approver's edit, an error echoing a body) never reaches the log."""
    with AuditLog(tmp_path / "audit.db") as log:
        log.record("create_webhook", "edited", extra={"note": text}, error=text)
    assert b"Wh00kSecretValue" not in (tmp_path / "audit.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("audit.db-wal")
    )
