"""How a pending approval is shown to a person: the exact request in full, or, when long, counts
and a sample with the whole request in an owner-only file (never a silent cut). The REPL and
``personas run`` show approvals the same way. Secrets in the request (a webhook's new secret key)
are masked on the screen and in the file, as in what the request changes; the fingerprint still
names the exact request."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from klaviyo_toolkit.redact import clip, redact

from .common import visible

__all__ = ["SHOW_LIMIT", "approval_lines", "describe_approval", "one_line", "remember_shown", "shown_requests"]


#: A request whose JSON is longer than this is summarised on screen, in full in a file.
SHOW_LIMIT = 1500


def approval_lines(item: dict[str, Any], folder: Path) -> list[str]:
    """The request as a person reads it: method and path, then the params and body in full, or,
    when long, counts and a sample, with the whole request written to a file (never a silent cut)."""
    item = redact(item)  # the screen, a terminal's scrollback and the file never hold a secret
    request = item.get("request") or {}
    lines = [one_line(f"{request.get('method')} {request.get('path')}")]
    details = item.get("details")
    if isinstance(details, dict):
        lines += [one_line(f"{k}: {v}") for k, v in details.items()]
    current = item.get("current")
    if isinstance(current, dict):
        lines += current_lines(current)
    whole = json.dumps({k: v for k, v in request.items() if k in ("params", "body")}, ensure_ascii=False)
    if len(whole) <= SHOW_LIMIT:
        if request.get("params"):
            lines.append("params: " + json.dumps(request["params"], ensure_ascii=False))
        if request.get("body") is not None:
            lines.append("body: " + json.dumps(request["body"], ensure_ascii=False))
        return lines
    lines.append(f"the request is {len(whole):,} characters; in short:")
    for key, value in (item.get("args") or {}).items():
        if isinstance(value, list):
            sample = ", ".join(clip(json.dumps(v, ensure_ascii=False), 60, more="") for v in value[:3])
            lines.append(f"  {key}: {len(value):,} items, e.g. {sample}")
        else:
            text = json.dumps(value, ensure_ascii=False)
            shown = text if len(text) <= 200 else clip(text, 200, more="") + f"… ({len(text):,} characters)"
            lines.append(f"  {key}: {shown}")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = str(item.get("fingerprint") or "request").replace(":", "-") + ".json"
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(item, out, ensure_ascii=False, indent=1, default=str)
    lines.append(f"the whole request: {path}")
    return lines


def current_lines(current: dict[str, Any]) -> list[str]:
    """What the request acts on, as read before the pause, and what it changes: ``field: now → after``
    (values as JSON, so a line break or an escape in Klaviyo data stays on its line)."""
    if current.get("unread"):
        return [f"as it is now: not read ({current['unread']})"]
    lines = [f"as it is now: {current.get('resource')} (read with {current.get('read_with')})"]
    fields = current.get("fields") or {}
    if fields:
        lines.append("  " + ", ".join(f"{k}: {_value(v)}" for k, v in fields.items()))
    profiles = current.get("profiles")
    if isinstance(profiles, dict):
        named = [str(n) for n in profiles.get("named") or []]
        count = profiles.get("count")
        more = f" and {count - len(named)} more" if isinstance(count, int) and count > len(named) and named else ""
        unread = f", not named ({profiles['unread']})" if profiles.get("unread") else ""
        repeated = profiles.get("repeated")
        twice = f" ({repeated} id(s) given more than once, counted once)" if repeated else ""
        listed = ": " + "; ".join(named) + more if named else unread
        lines.append(f"the request names {count} profile(s){twice}{listed}")
    audiences = current.get("audiences")
    if isinstance(audiences, dict) and audiences:
        parts = [f"{side}: " + "; ".join(str(a) for a in names) for side, names in audiences.items() if names]
        lines.append("audiences: " + " | ".join(parts))
    merged = current.get("merged_in")
    if isinstance(merged, list) and merged:
        total = current.get("merged_count")
        beyond = total - len(merged) if isinstance(total, int) else 0
        head = f"{total} profiles: " if beyond > 0 else ""
        tail = f"; and {beyond} more" if beyond > 0 else ""
        lines.append("merged into it, then deleted: " + head + "; ".join(str(a) for a in merged) + tail)
    changes = current.get("changes")
    if isinstance(changes, list) and changes:
        lines.append("what changes:")
        for change in changes:
            if not isinstance(change, dict):
                continue
            before, after = change.get("before"), change.get("after")
            if change.get("field") == "…":  # the cut: how many more, not a field that is unset
                lines.append(f"  … {after}")
                continue
            same = " (unchanged)" if change.get("same") else ""
            # not returned by the read (a webhook's secret key): unknown, which is not the same as unset
            was = f"(not returned by {current.get('read_with')})" if change.get("returned") is False else _value(before)
            lines.append(f"  {change.get('field')}: {was} → {_value(after)}{same}")
    linked = current.get("linked")
    if isinstance(linked, dict) and linked.get("unread"):
        lines.append(f"linked now: not read ({linked['unread']}); the request replaces them")
    elif isinstance(linked, dict):
        ids = ", ".join(str(i) for i in linked.get("ids") or [])
        shown = f" ({ids})" if ids else ""
        lines.append(f"linked now: {linked.get('count')}{shown}; the request replaces them")
    return lines


def _value(value: Any) -> str:
    return "(not set)" if value is None else json.dumps(value, ensure_ascii=False, default=str)


def one_line(text: str) -> str:
    """``text`` on one line, its line breaks and tabs written as escapes (``\\n``): a part of an
    approval that holds Klaviyo data (a campaign's name in why a call stops, a graph's summary) must
    not start a line that passes for the approval's own (``why: it reads only``)."""
    return visible(text, lines=False)


def describe_approval(item: dict[str, Any], folder: Path) -> str:
    """One pending approval as text: what, why, the request (see :func:`approval_lines`), its fingerprint."""
    lines = [one_line(f"{item.get('tool')} - {item.get('summary')}")]
    if item.get("why"):
        lines.append(f"  why: it {one_line(str(item['why']))}")
    lines += ["  " + line for line in approval_lines(item, folder)]
    if item.get("fingerprint"):
        lines.append(f"  request {item['fingerprint']}")
    return "\n".join(lines)


def _shown_file(folder: Path, thread: str) -> Path:
    from personas.kernel.context import thread_key

    return folder / "shown" / f"{thread_key(thread)}.json"


def remember_shown(folder: Path, thread: str, fingerprints: list[str], *, forget: Sequence[str] = ()) -> None:
    """Note the requests a command printed for ``thread``: a later ``--resume approve`` without
    ``--request`` answers only requests a person was shown (an owner-only file in the state folder).

    ``forget`` names requests just answered: once a resume used an answer, that request was settled,
    and an identical request the run pauses on later (after a worker or another terminal moved it on)
    must be shown again before a bare ``--resume approve`` can take it."""
    path = _shown_file(folder, thread)
    known = (shown_requests(folder, thread) - set(forget)) | set(fingerprints)
    if not known:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(sorted(known), out)


def shown_requests(folder: Path, thread: str) -> set[str]:
    """The request fingerprints printed for ``thread`` so far (empty when none or unreadable)."""
    try:
        data = json.loads(_shown_file(folder, thread).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {str(f) for f in data} if isinstance(data, list) else set()
