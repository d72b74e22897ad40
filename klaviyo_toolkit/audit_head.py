"""Whether an audit log still holds the head its anchor saved, checked before every append.

The anchor's head is the evidence of how far the log reached: a log that ends below it (rows cut
from the end, an older copy put back, the file deleted) or that has another row in its place (the
log replaced) shows, to :meth:`~klaviyo_toolkit.audit.AuditLog.verify`, what happened. An append
onto such a log would save a new head over that evidence, and the next verify would find the log
intact; so the append is refused, with nothing written, and so is one whose head record cannot be
read (damaged, or deleted where the vault says it is kept). Going on without the lost rows is a
deliberate act: :meth:`~klaviyo_toolkit.audit.AuditLog.accept_loss` appends a row that records what
was wrong and why it was accepted, keeps a copy of the old head record, and anchors the head on it.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .audit_anchor import AuditAnchor, Head
from .audit_rows import _COLUMNS, _SELECT, _row_hash
from .errors import ToolkitUsageError

if TYPE_CHECKING:
    from .audit import AuditLog

__all__ = ["AuditHeadError", "HeadProblem", "chained_under_another_key", "head_problem", "keep_head_record"]


@dataclass(frozen=True)
class HeadProblem:
    """Why a log does not hold its anchored head: said in a sentence, with the head when it could be read."""

    reason: str
    head: Head | None
    newest: int

    def facts(self) -> dict[str, Any]:
        """What the acceptance row records."""
        head = None if self.head is None else {"rows": self.head.rows, "hash": self.head.hash}
        return {"problem": self.reason, "anchored_head": head, "log_rows": self.newest}


class AuditHeadError(ToolkitUsageError):
    """Nothing was written: the log does not hold its anchored head (see the module docstring).

    Attributes:
        log: the log's file (or database) as the message names it.
        problem: why, in a sentence.
    """

    def __init__(self, log: str, problem: HeadProblem) -> None:
        self.log = log
        self.problem = problem
        super().__init__(
            f"nothing was written to the audit log {log}: {problem.reason}. An append would anchor the head over "
            "this and hide it, so the log is left as it is: check it (AuditLog.verify), restore the log (or the "
            "head record) from a backup, or accept the loss deliberately with AuditLog.accept_loss(reason), "
            "which records it in the log"
        )


def _record(anchor: AuditAnchor) -> str:
    where = getattr(anchor, "head_path", None)
    return f" ({where})" if where is not None else ""


def head_problem(
    anchor: AuditAnchor | None,
    newest: int,
    hash_at: Callable[[int], str | None],
    load: Callable[[], Head | None] | None = None,
) -> HeadProblem | None:
    """Why the log whose newest row is ``newest`` does not hold ``anchor``'s head, or None when it does.

    ``hash_at(n)`` is row ``n``'s hash (None if there is no such row). A log without an anchor, or
    whose anchor has no head yet, has nothing to hold. ``load``: the head as read before ``newest``
    was (the anchor's ``load_head`` when None).
    """
    if anchor is None:
        return None
    try:
        head = (load or anchor.load_head)()
    except ToolkitUsageError as exc:
        return HeadProblem(str(exc), None, newest)
    if head is None:
        return None
    record = _record(anchor)
    if newest < head.rows:
        if newest == 0:
            why = f"it has no rows, but its anchored head{record} is row {head.rows}: it was deleted or emptied"
        else:
            why = (
                f"it ends at row {newest} but its anchored head{record} is row {head.rows}: rows were cut from "
                "the end, or an older copy of the log was put back"
            )
        return HeadProblem(why, head, newest)
    if hash_at(head.rows) != head.hash:
        why = f"its row {head.rows} is not the anchored head{record}: the log was replaced by another"
        return HeadProblem(why, head, newest)
    return None


def keep_head_record(anchor: AuditAnchor | None, now: _dt.datetime) -> str | None:
    """Copy the anchor's head record beside it (``<name>.<UTC time>.replaced``) before it is replaced;
    the copy's path (None when there is no record to keep)."""
    where = getattr(anchor, "head_path", None)
    if where is None or not Path(where).exists():
        return None
    source = Path(where)
    copy = source.with_name(f"{source.name}.{now.astimezone(_dt.UTC):%Y%m%dT%H%M%S.%fZ}.replaced")
    shutil.copy2(source, copy)
    return str(copy)


def chained_under_another_key(log: AuditLog) -> bool:
    """Whether neither the first nor the newest row of ``log`` verifies with the key it was opened with: its
    rows were chained under another key (the anchor's vault replaced, or made anew after its key was lost)
    or the log was rewritten whole. Accepting a loss cannot make such a log verify (row 1 stays broken).
    False for an empty log, a log without a key, or a row an edit left unhashable (an edit, not a key)."""
    if log._key is None:
        return False
    ends = "(SELECT min(id) FROM audit_log), (SELECT max(id) FROM audit_log)"
    rows = log._fetch(f"SELECT {_SELECT} FROM audit_log WHERE id IN ({ends})", [])
    for row in rows:
        content = dict(zip(_COLUMNS, row, strict=True))
        try:
            if hmac.compare_digest(_row_hash(str(content["prev_hash"]), content, log._key), str(content["hash"])):
                return False
        except (TypeError, ValueError):
            return False
    return bool(rows)
