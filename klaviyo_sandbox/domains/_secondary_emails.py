"""Secondary email addresses: a profile write's ``meta.patch_identifiers`` (spec revision 2026-07-15).

The spec (``ProfileMeta.patch_identifiers``, ``PatchIdentifiers``): "Currently only ``email`` is
supported, and it is used to add or remove secondary email addresses on a profile", as
``{"append": {"email": [...]}, "unappend": {"email": [...]}}``. The profile resource has no
attribute for them, so the sandbox keeps them in the profile's private data (``secondary_emails``).

Checked before the write changes anything, so a refused patch leaves the profile as it was: any
other identifier (``phone_number``, ``external_id``) or operation is a 400 naming it; each address
must be an email as ``email`` must; and an address belongs to one profile, so appending one that
another profile has (as its email or a secondary one) is a 409 ``duplicate_profile``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._jsonapi import SandboxError, bad_request
from .._services import Services
from .._store import Resource
from ._identifiers import is_email

__all__ = ["SECONDARY", "apply_patch_identifiers", "check_patch_identifiers", "secondary_emails"]

#: The key of a profile's private data that holds its secondary email addresses, as given.
SECONDARY = "secondary_emails"
Patch = dict[str, list[str]]


def secondary_emails(profile: Resource) -> list[str]:
    """The profile's secondary email addresses, in the order they were added."""
    return list(profile.private.get(SECONDARY) or [])


def _parse(patch: Any, pointer: str) -> Patch:
    """``{"append": [...], "unappend": [...]}`` from the request's ``patch_identifiers``, or a 400."""
    example = 'e.g. {"append": {"email": ["ada.work@example.com"]}}'
    if not isinstance(patch, Mapping):
        raise bad_request(f"patch_identifiers must be an object, {example}.", pointer=pointer)
    out: Patch = {}
    for op, given in patch.items():
        where = f"{pointer}/{op}"
        if op not in ("append", "unappend"):
            raise bad_request(f"patch_identifiers takes append and unappend, not {op!r}; {example}.", pointer=where)
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise bad_request(f"patch_identifiers.{op} must be an object, {example}.", pointer=where)
        for key in given:
            if key != "email":
                raise bad_request(
                    f"patch_identifiers supports only email (secondary email addresses), not {key!r}; "
                    f"set {key} in the profile's attributes instead.",
                    pointer=f"{where}/{key}",
                )
        value = given.get("email")
        emails = [] if value is None else [value] if isinstance(value, str) else value
        if not isinstance(emails, list):
            raise bad_request(
                f"patch_identifiers.{op}.email must be a list of email addresses.", pointer=f"{where}/email"
            )
        for i, email in enumerate(emails):
            if not isinstance(email, str) or not is_email(email):
                raise bad_request(
                    f"Invalid email address {email!r}; give it as name@example.com.", pointer=f"{where}/email/{i}"
                )
        out[op] = emails
    return out


def _owner(svc: Services, email: str) -> Resource | None:
    """The profile that has ``email``, as its email or a secondary one (compared without case)."""
    found = svc.store.find("profile", "email", email)
    if found is not None:
        return found
    wanted = email.lower()
    return next(
        (p for p in svc.store.iter("profile") if wanted in (e.lower() for e in secondary_emails(p))), None
    )


def check_patch_identifiers(svc: Services, meta: Any, profile_id: str | None, pointer: str) -> Patch | None:
    """The checked patch in ``meta`` (None: there is none) for the profile ``profile_id`` (None: a
    new one); 400 for a patch the spec does not allow, 409 for an address another profile has."""
    if not isinstance(meta, Mapping) or meta.get("patch_identifiers") is None:
        return None
    where = f"{pointer}/patch_identifiers"
    patch = _parse(meta["patch_identifiers"], where)
    for i, email in enumerate(patch.get("append", [])):
        owner = _owner(svc, email)
        if owner is not None and owner.id != profile_id:
            raise SandboxError(
                409,
                "duplicate_profile",
                "Conflict.",
                f"Another profile ({owner.id}) already has this email address; merge the two profiles "
                "(meta.duplicate_profile_id) instead of adding it to this one.",
                pointer=f"{where}/append/email/{i}",
                meta={"duplicate_profile_id": owner.id},
            )
    return patch


def apply_patch_identifiers(profile: Resource, patch: Patch | None) -> None:
    """Add and remove the patch's secondary addresses (never the profile's own email, never twice)."""
    if not patch:
        return
    current = secondary_emails(profile)
    primary = str(profile.attributes.get("email") or "").lower()
    for email in patch.get("append", []):
        if email.lower() != primary and email.lower() not in {c.lower() for c in current}:
            current.append(email)
    dropped = {e.lower() for e in patch.get("unappend", [])}
    profile.private[SECONDARY] = [c for c in current if c.lower() not in dropped]
