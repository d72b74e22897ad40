"""The rows of the audit log: who acted and what happened, how a row is chained, and how it reads back.

Shared by every storage of :class:`~klaviyo_toolkit.audit.AuditLog` (SQLite, PostgreSQL): the columns
in order, the hash that chains a row to the one before it, the stored time format, and the caps and
redaction every value passes through before it is written.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from .audit_anchor import Head
from .audit_summary import summarize_response
from .errors import ToolkitUsageError
from .redact import redact, redact_text

__all__ = [
    "AuditContext",
    "AuditEntry",
    "AuditStatus",
    "ChainReport",
    "arguments_digest",
    "check_chain",
    "normalise_head",
    "summarize_response",
]

AuditStatus = Literal[
    "ok", "error", "denied", "dry_run", "rejected", "pending_approval", "approved", "edited", "waived"
]
_STATUSES: frozenset[str] = frozenset(get_args(AuditStatus))
GENESIS = "0" * 64
_MAX_ARGUMENT_CHARS = 16_000
_MAX_ERROR_CHARS = 1_000


# -- rows ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditContext:
    """Who is acting: passed to :meth:`AuditLog.hook` and :meth:`AuditLog.record`; copy with ``replace``.

    Example::

        ctx = AuditContext(user="ada", persona="segment_sync", thread_id="t-42", prompt_version="sync@3")
        ctx.replace(thread_id="t-43")
    """

    user: str | None = None
    persona: str | None = None
    thread_id: str | None = None
    prompt_version: str | None = None
    connection: str | None = None
    account: str | None = None

    def replace(self, **changes: str | None) -> AuditContext:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log, as :meth:`AuditLog.query` returns it."""

    id: int
    time: _dt.datetime
    user: str | None
    persona: str | None
    thread_id: str | None
    prompt_version: str | None
    connection: str | None
    account: str | None
    tool: str
    method: str | None
    path: str | None
    arguments: Any
    status: str
    http_status: int | None
    request_id: str | None
    latency_ms: float | None
    response_summary: str | None
    error: str | None
    extra: dict[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (time as ISO 8601)."""
        out = dataclasses.asdict(self)
        out["time"] = self.time.isoformat()
        return out


@dataclass(frozen=True)
class ChainReport:
    """What :meth:`AuditLog.verify` found; true when the chain is intact."""

    ok: bool
    checked: int
    broken_at: int | None = None
    reason: str = ""
    head: str = GENESIS

    def __bool__(self) -> bool:
        return self.ok


_CONTENT = (
    "id", "time", "user", "persona", "thread_id", "prompt_version", "connection", "account", "tool", "method",
    "path", "arguments", "status", "http_status", "request_id", "latency_ms", "response_summary", "error", "extra",
)  # fmt: skip
_COLUMNS = (*_CONTENT, "prev_hash", "hash")
_SELECT = ", ".join(f'"{c}"' for c in _COLUMNS)  # quoted: "user" is a keyword in PostgreSQL
_INSERT = f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"


def _row_hash(prev_hash: str, content: Mapping[str, Any], key: bytes | None) -> str:
    canonical = json.dumps([content[c] for c in _CONTENT], ensure_ascii=False, separators=(",", ":"))
    message = f"{prev_hash}\n{canonical}".encode()
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _iso(moment: _dt.datetime | str) -> str:
    """The stored time format (UTC, microseconds), so text order is time order; naive means UTC."""
    if isinstance(moment, str):
        moment = _dt.datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    return moment.astimezone(_dt.UTC).isoformat(timespec="microseconds")


#: How hard a value over the cap is shortened, gentlest first: (items kept per array, characters kept
#: per string, keys kept per object). Identifying keys (``id``, ``type``, ``*_id``, ``relationships``)
#: are kept before any other.
_SHORTENINGS = ((200, 500, 200), (50, 200, 60), (20, 120, 30), (5, 80, 12), (1, 64, 6), (0, 64, 4))


def _dumps(value: Any, limit: int) -> str:
    """``value`` redacted, as JSON text of at most ``limit`` characters.

    Over the cap it is shortened by structure, never cut as text: long arrays keep their first items
    and say how many were left out, long strings and objects with many keys likewise, and every
    object keeps its identifying keys. So a capped row is still valid JSON that names what the call
    acted on (the list in a bulk job's ``relationships``, the first profile ids), under
    ``{"truncated_chars": <the whole text's length>, "sha256": ..., "shortened": ...}``; ``sha256`` is
    :func:`arguments_digest` of the whole value, so two rows whose shown parts are alike but whose
    lists differ past them tell apart, and a kept copy of the arguments can be checked against the row.
    """
    shown = redact(value)
    text = _json_text(shown)
    if len(text) <= limit:
        return text
    digest = _sha256(text)
    for items, chars, keys in _SHORTENINGS:
        short = {"truncated_chars": len(text), "sha256": digest, "shortened": _shorten(shown, items, chars, keys)}
        capped = _json_text(short)
        if len(capped) <= limit:
            return capped
    return json.dumps({"truncated_chars": len(text), "sha256": digest})


def arguments_digest(value: Any) -> str:
    """The ``sha256`` a capped row keeps of ``value`` (its arguments or extra, as given to the log):
    the SHA-256 of its redacted JSON text (keys sorted, UTF-8). Compare it with a row's to check that
    a copy kept elsewhere (a bulk job's whole profile list) is what the call carried."""
    return _sha256(_json_text(redact(value)))


def _json_text(value: Any) -> str:
    """A (redacted) value as a row stores it: JSON, keys sorted, non-ASCII as it is."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _identifying(key: str) -> bool:
    return key in ("id", "ids", "type", "relationships") or key.endswith(("_id", "_ids", "-id"))


def _shorten(value: Any, items: int, chars: int, keys: int) -> Any:
    """``value`` with arrays cut to ``items`` (and a note of how many more), strings to ``chars``,
    objects to ``keys`` keys (identifying ones first; a note of how many more)."""
    if isinstance(value, str):
        return value if len(value) <= chars else f"{value[:chars]}… ({len(value)} characters in all)"
    if isinstance(value, Mapping):
        names = sorted(value, key=lambda k: (not _identifying(str(k)), str(k)))
        out = {str(k): _shorten(value[k], items, chars, keys) for k in names[:keys]}
        if len(names) > keys:
            out["…"] = f"{len(names) - keys} more keys ({len(names)} in all)"
        return out
    if isinstance(value, (list, tuple)):
        kept = [_shorten(v, items, chars, keys) for v in value[:items]]
        if len(value) > items:
            kept.append(f"… {len(value) - items} more items ({len(value)} in all)")
        return kept
    return value


def _cap(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    text = redact_text(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_HEAD_DIGITS = frozenset("0123456789abcdef")


def normalise_head(value: str | None) -> str | None:
    """A head kept elsewhere, as :meth:`AuditLog.head` returns it: surrounding space stripped, lowercase.

    Raises:
        ToolkitUsageError: ``value`` is not a head (64 hex digits), so it could only be a typo; it is
            never compared, since a mistyped head would look like a log whose rows were cut.
    """
    if value is None:
        return None
    head = value.strip().lower()
    if len(head) != len(GENESIS) or not set(head) <= _HEAD_DIGITS:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise ToolkitUsageError(
            f"{shown!r} is not an audit head: a head is {len(GENESIS)} hex digits (this one has {len(head)} "
            "characters); pass the whole head as printed"
        )
    return head


#: The columns the log writes as numbers; every other one is text (or NULL).
_NUMBERS: dict[str, tuple[type, ...]] = {"id": (int,), "http_status": (int,), "latency_ms": (int, float)}


def _mistyped(content: Mapping[str, Any]) -> str | None:
    """Why a row's column holds a value the log never writes (a BLOB where text goes: SQLite lets an
    edit store any type), or None; a hash over it would not even compute."""
    for name in _COLUMNS:
        value = content[name]
        wanted = _NUMBERS.get(name, (str,))
        if value is not None and (isinstance(value, bool) or not isinstance(value, wanted)):
            return f"its {name} is stored as {type(value).__name__}, which the log never writes (edited)"
    return None


def check_chain(
    rows: Iterable[tuple[Any, ...]],
    key: bytes | None,
    *,
    anchored: Head | None,
    expected_head: str | None,
    after: int = 0,
    prev: str = GENESIS,
) -> ChainReport:
    """Recompute the chain over ``rows`` (every row after row ``after``, whose hash is ``prev``, oldest
    first); the first row that was changed, removed, inserted or forged, and a tail cut below the
    ``anchored`` head or ``expected_head``."""
    checked = after
    wanted = {h for h in (expected_head,) if h and h != GENESIS}
    at_head: str | None = None
    for row in rows:
        content = dict(zip(_COLUMNS, row, strict=True))
        checked += 1
        if content["id"] != checked:
            return ChainReport(False, checked, content["id"], f"row {checked} is missing", prev)
        if why := _mistyped(content):
            return ChainReport(False, checked, content["id"], why, prev)
        if content["prev_hash"] != prev:
            return ChainReport(False, checked, content["id"], "does not link to the row before it", prev)
        if not hmac.compare_digest(_row_hash(prev, content, key), content["hash"]):
            why = (
                "its hash was not made with the log's key (edited or forged)"
                if key
                else "its content does not match its hash"
            )
            return ChainReport(False, checked, content["id"], why, prev)
        prev = content["hash"]
        if anchored is not None and checked == anchored.rows:
            at_head = prev
        wanted.discard(prev)
    if wanted:
        return ChainReport(False, checked, None, "the expected head is gone: rows were cut from the end", prev)
    if anchored is not None:
        if checked < anchored.rows:
            why = f"the log ends at row {checked} but its anchored head is row {anchored.rows}: "
            why += "rows were cut from the end"
            return ChainReport(False, checked, None, why, prev)
        if at_head != anchored.hash:
            return ChainReport(False, checked, anchored.rows, "the anchored head does not match this row", prev)
    return ChainReport(True, checked, None, "", prev)


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    """A row as read; one that an edit left unreadable (a BLOB, broken JSON, a bad time) is shown as it
    is, for ``verify`` to report, rather than stopping every view of the log."""
    data: dict[str, Any] = {
        k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v for k, v in zip(_COLUMNS, row, strict=True)
    }
    try:
        data["time"] = _dt.datetime.fromisoformat(str(data["time"]))
    except ValueError:
        data["time"] = _dt.datetime.fromtimestamp(0, _dt.UTC)
    for name in ("arguments", "extra"):
        try:
            data[name] = json.loads(data[name])
        except (TypeError, ValueError):
            data[name] = {"unreadable": str(data[name])}
    return AuditEntry(**data)
