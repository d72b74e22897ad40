"""Klaviyo profiles as the syncer reads them: a list's or segment's members, and profiles looked up.

Each profile becomes a :class:`Member`: its identifiers, its email consent, and why it may not be
(re)subscribed (a suppression, or an unsubscribe from the target list). Members are read a page
(100) at a time; profiles are looked up 100 identifiers per call (:func:`lookup_profiles`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from klaviyo_toolkit.errors import NotFoundError, ToolkitUsageError
from klaviyo_toolkit.filters import quoted
from klaviyo_toolkit.tools import CallStopped

from .sources import SyncInputError, segment_hint

__all__ = ["LOOKUP_FIELDS", "PAGE_SIZE", "Member", "klaviyo_read", "lookup_profiles", "member_of", "read_group",
           "subscribed_without_consent"]

PAGE_SIZE = 100  # the largest page Klaviyo serves for list and segment members and profile lookups


@dataclass(frozen=True)
class Member:
    """A profile read from Klaviyo: identity, email consent, and why it may not be subscribed."""

    id: str
    email: str | None
    phone_number: str | None
    external_id: str | None
    consent: str | None
    suppressed: str | None


def _suppression(marketing: Mapping[str, Any], list_id: str | None) -> str | None:
    """Why email marketing must not be (re)subscribed: a suppression, or an unsubscribe from this list."""
    reasons = [str(s.get("reason") or "suppressed") for s in marketing.get("suppression") or [] if isinstance(s, dict)]
    if reasons:
        return ", ".join(reasons)
    for s in marketing.get("list_suppressions") or []:
        if isinstance(s, dict) and list_id and s.get("list_id") == list_id:
            return f"{s.get('reason') or 'UNSUBSCRIBE'} (from this list)"
    return None


def member_of(resource: Mapping[str, Any], list_id: str | None) -> Member:
    attrs = resource.get("attributes") or {}
    marketing = (((attrs.get("subscriptions") or {}).get("email") or {}).get("marketing")) or {}
    return Member(str(resource["id"]), attrs.get("email"), attrs.get("phone_number"), attrs.get("external_id"),
                  marketing.get("consent"), _suppression(marketing, list_id))


def klaviyo_read(kit: Any, name: str, **args: Any) -> Any:
    try:
        return kit.fetch(name, **args)
    except CallStopped as exc:  # a read stopped by policy is a configuration problem
        raise ToolkitUsageError(
            f"{name} was stopped by the persona's policy ({exc.stopped.reason}); reads must be allowed"
        ) from None


def read_group(kit: Any, kind: str, group_id: str, *, field: str, list_id: str | None = None,
               subscriptions: bool = False, named_too: bool = False) -> Iterator[list[Member]]:
    """The members of a list or segment, one page (at most 100 profiles) at a time.

    ``subscriptions`` also reads email consent and suppressions (``list_id`` decides which list
    unsubscribes count). An unknown id raises SyncInputError on ``field`` (saying that no group has
    it as a name either when ``named_too``: it was looked up as one).
    """
    op = "get_profiles_for_list" if kind == "list" else "get_profiles_for_segment"
    fields = ["email", "phone_number", "external_id"]
    args: dict[str, Any] = {"id": group_id, "page_size": PAGE_SIZE, "fields_profile": fields}
    if subscriptions:
        args["fields_profile"] = [*fields, "subscriptions"]
        args["additional_fields_profile"] = ["subscriptions"]
    cursor: str | None = None
    while True:
        try:
            page = klaviyo_read(kit, op, **args, **({"page_cursor": cursor} if cursor else {}))
        except NotFoundError:
            hint = segment_hint(kit, kind, "id", group_id)
            if named_too:
                raise SyncInputError(field, f"no Klaviyo {kind} has the id {group_id!r} and none is named so{hint}; "
                                            f"use a name or an id from get_{kind}s") from None
            raise SyncInputError(field, f"no Klaviyo {kind} has the id {group_id!r}{hint}; use an id from "
                                        f"get_{kind}s") from None
        yield [member_of(r, list_id) for r in page.data or []]
        cursor = page.next_cursor
        if not cursor:
            return


#: The identifiers a profile is looked up by (``get_profiles`` filters each with ``any``; Klaviyo's
#: filters have no ``or``, so each takes its own calls).
LOOKUP_FIELDS = ("email", "phone_number", "external_id")


def lookup_profiles(kit: Any, field: str, values: list[str], list_id: str, *, identifiers: bool = True) -> list[Member]:
    """Existing profiles whose ``field`` (email, phone_number or external_id) is one of ``values``
    (at most 100: one call), with their email consent state and, with ``identifiers`` (needed
    unless the lookup is by email of rows that give no other identifier), every identifier."""
    if field not in LOOKUP_FIELDS:
        raise ValueError(f"look profiles up by one of {', '.join(LOOKUP_FIELDS)}, not {field!r}")
    if len(values) > PAGE_SIZE:
        raise ValueError(f"look up at most {PAGE_SIZE} values per call")
    flt = f"any({field},{quoted(values, sep=',')})"
    fields = [*LOOKUP_FIELDS, "subscriptions"] if identifiers or field != "email" else ["email", "subscriptions"]
    page = klaviyo_read(kit, "get_profiles", filter=flt, page_size=PAGE_SIZE, fields_profile=fields,
                        additional_fields_profile=["subscriptions"])
    return [member_of(r, list_id) for r in page.data or []]


def subscribed_without_consent(db: sqlite3.Connection, sample: int) -> dict[str, Any]:
    """Members Klaviyo has subscribed whose source rows give no consent (a "no", an empty cell, rows
    that disagree): how many, and the first ``sample`` emails. The syncer never unsubscribes anyone
    (a subscribe from a form after the file was exported would be undone), so they stay subscribed;
    they are named so that a consent withdrawn in the source is never left unsaid."""
    where = ("FROM source s JOIN members m ON m.profile_id = s.member_id WHERE s.consent = 0 "
             "AND m.consent = 'SUBSCRIBED'")
    count = db.execute(f"SELECT COUNT(*) {where}").fetchone()[0]
    emails = [str(e) for (e,) in db.execute(f"SELECT COALESCE(s.email, m.email, s.phone) {where} ORDER BY s.rowno "
                                            "LIMIT ?", (sample,))]
    return {"count": int(count), "sample": emails}
