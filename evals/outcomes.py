"""What a case sets up besides the fixture, and the outcome checks beyond trajectory, state and outbox.

Set-up, before the run:

- ``files``: source files (a CSV, JSON lines) written into the run's folder; the input names them
  as ``{file: contacts.csv}`` and gets their path. ``{ref: list:Newsletter}`` in the input becomes
  the id the fixture gave;
- ``settings``: persona settings for this case, merged over the persona's;
- ``sandbox.faults``: the sandbox's fault injection, switched on once the fixture is built.

Checks, after the run (``expect``):

- ``call_counts``: calls of the last run per tool (``*`` every call; ``http:``/``model:`` prefixes);
- ``profiles``: a profile's state afterwards (consent, suppressions, properties), by fixture key or email;
- ``files``: files the run left under its ``$PERSONAS_HOME`` (reports, CSVs, PNG charts), by glob;
- ``model_requests``: what the model was sent (every run), e.g. that a name reached it fenced;
- ``lists[].count`` and ``lists[].profile`` given as an email (a profile the run created).

Example::

    payload = resolve_input(case.input, built.refs, folder)
    failures = check_outcomes(case, outcome, MatchContext(built.refs))
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from klaviyo_toolkit.errors import NotFoundError

from .case import Case, merge
from .matchers import MISSING, MatchContext, match_value

__all__ = ["check_outcomes", "resolve_input", "snapshot_files", "snapshot_profiles", "with_settings", "write_files"]

TEXT_LIMIT = 1_000_000  # bytes of a file kept as text for `text` and `rows` checks
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SQLITE_MAGIC = b"SQLite format 3\x00"


class InputError(ValueError):
    """The case's input names a fixture id or file that does not exist."""


# -- set-up --------------------------------------------------------------------------------------
def with_settings(spec: Any, settings: Mapping[str, Any]) -> Any:
    """The persona ``spec`` with the case's ``settings`` merged over its own, validated by its graph."""
    if not settings:
        return spec
    from graphs import graph_spec

    merged = merge(spec.settings, settings)
    graph_spec(spec.graph).settings.model_validate(merged)  # a wrong setting fails the set-up, naming the field
    return spec.model_copy(update={"settings": merged})


def write_files(case: Case, folder: Path) -> Path:
    """Write the case's ``files`` into ``folder`` (created); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, spec in case.files.items():
        (folder / name).write_text(spec.render(), encoding="utf-8")
    return folder


def resolve_input(value: Any, refs: Mapping[str, str], folder: Path) -> Any:
    """``value`` with ``{ref: KIND:NAME}`` replaced by the fixture's id and ``{file: NAME}`` by its path."""
    if isinstance(value, Mapping):
        if set(value) == {"ref"}:
            key = str(value["ref"])
            if key not in refs:
                raise InputError(f"input: unknown ref {key!r} (known: {', '.join(sorted(refs)) or 'none'})")
            return refs[key]
        if set(value) == {"file"}:
            return str(folder / str(value["file"]))
        return {k: resolve_input(v, refs, folder) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_input(v, refs, folder) for v in value]
    return value


# -- snapshots -----------------------------------------------------------------------------------
def _format(head: bytes) -> str:
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "text" if exc.start > len(head) - 4 else "binary"  # a character cut at the end is fine
    return "text"


def snapshot_files(home: Path) -> dict[str, dict[str, Any]]:
    """Every file under ``home`` (relative POSIX path -> {size, format, text, rows}); text for UTF-8 files."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        data = path.read_bytes()
        entry: dict[str, Any] = {"size": len(data), "format": _format(data[:512])}
        if entry["format"] == "text" and len(data) <= TEXT_LIMIT:
            try:
                entry["text"] = data.decode("utf-8-sig")  # a CSV for Excel starts with a byte-order mark
            except UnicodeDecodeError:
                entry["format"] = "binary"
        if "text" in entry and path.suffix.lower() == ".csv":
            entry["rows"] = list(csv.DictReader(io.StringIO(entry["text"])))
        out[path.relative_to(home).as_posix()] = entry
    return out


def _profile_view(resource: Mapping[str, Any], list_names: Mapping[str, str]) -> dict[str, Any]:
    attrs = resource.get("attributes") or {}
    marketing = (((attrs.get("subscriptions") or {}).get("email") or {}).get("marketing")) or {}
    return {
        "exists": True, "id": resource.get("id"), "email": attrs.get("email"),
        "phone_number": attrs.get("phone_number"), "first_name": attrs.get("first_name"),
        "last_name": attrs.get("last_name"),
        "consent": marketing.get("consent"),
        "can_receive_email_marketing": marketing.get("can_receive_email_marketing"),
        "suppression": [s.get("reason") for s in marketing.get("suppression") or [] if isinstance(s, Mapping)],
        "list_suppressions": [list_names.get(str(s.get("list_id")), s.get("list_id"))
                              for s in marketing.get("list_suppressions") or [] if isinstance(s, Mapping)],
        "subscriptions": attrs.get("subscriptions"),
        "properties": attrs.get("properties") or {},
    }


def snapshot_profiles(client: Any, refs: Mapping[str, str], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The profiles ``keys`` name (fixture keys or emails), with their email consent, after the run."""
    list_names = {v: k.split(":", 1)[1] for k, v in refs.items() if k.startswith("list:")}
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        pid = refs.get(f"profile:{key}")
        if pid is None:
            found = client.call("get_profiles", filter=f"equals(email,{json.dumps(key)})", page_size=1)
            pid = found.data[0]["id"] if found.data else None
        if pid is None:
            out[key] = {"exists": False}
            continue
        try:
            got = client.call("get_profile", id=pid, additional_fields_profile=["subscriptions"])
        except NotFoundError:  # deleted, or merged into another profile, by the run
            out[key] = {"exists": False, "id": pid}
            continue
        out[key] = _profile_view(got.data, list_names)
    return out


# -- checks --------------------------------------------------------------------------------------
def _count_calls(key: str, calls: Sequence[Mapping[str, Any]]) -> int:
    source, _, tool = key.rpartition(":") if key.startswith(("http:", "model:")) else ("", "", key)
    return sum(1 for c in calls if (not source or c.get("source") == source) and tool in ("*", c.get("tool")))


def _member(profile: str, members: Sequence[str], emails: Mapping[str, str]) -> bool:
    if profile in members:
        return True
    by_email = {e.lower(): k for k, e in emails.items()}
    key = by_email.get(profile.lower())
    return (key in members) if key else profile.lower() in {m.lower() for m in members}


def check_outcomes(case: Case, outcome: Any, ctx: MatchContext) -> list[str]:
    """Failures of ``call_counts``, ``profiles``, ``files``, ``model_requests`` and the list counts."""
    exp = case.expect
    failures: list[str] = []
    for key, matcher in exp.call_counts.items():
        failures += [f"call_counts: {p}" for p in
                     match_value(matcher, _count_calls(key, outcome.trajectory), ctx, f"calls of {key}")]
    for key, matcher in exp.profiles.items():
        view = outcome.profiles.get(key, MISSING)
        failures += [f"profiles: {p}" for p in match_value(matcher, view, ctx, key)]
    for file in exp.files:
        found = {p: f for p, f in outcome.files.items() if fnmatch.fnmatchcase(p, file.path)}
        where = f"files[{file.path}]"
        if file.count is not None:
            failures += [f"{where}: {p}" for p in match_value(file.count, len(found), ctx, "count")]
        if bool(found) != file.exists:
            shown = ", ".join(outcome.files) or "none"
            failures.append(f"{where}: " + (f"no such file (files: {shown})" if file.exists else
                                            f"exists: {', '.join(found)}"))
            continue
        for path, entry in found.items():
            for name in ("format", "size", "text", "rows"):
                matcher = getattr(file, name)
                if matcher is not None:
                    failures += [f"files[{path}]: {p}" for p in
                                 match_value(matcher, entry.get(name, MISSING), ctx, name)]
    if exp.model_requests is not None:  # each problem starts with its path ("model_requests", "len(model_requests)")
        failures += match_value(exp.model_requests, outcome.model_requests, ctx, "model_requests")
    for item in exp.lists:
        members = outcome.lists.get(item.list)
        if members is None:
            continue  # a missing or deleted list is reported by the runner's own list check
        if item.count is not None:
            failures += [f"lists: {item.list!r}: {p}" for p in match_value(item.count, len(members), ctx, "count")]
        if item.profile is not None and f"profile:{item.profile}" not in outcome.built.refs \
                and _member(item.profile, members, outcome.built.emails) != item.member:
            failures.append(f"lists: {item.profile} is {'not ' if item.member else ''}on {item.list!r}")
    return failures
