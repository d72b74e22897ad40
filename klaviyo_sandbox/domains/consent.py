"""Sandbox domain: consent. Subscribe, unsubscribe, suppress and unsuppress (bulk jobs, applied
when due) and the client-side subscription endpoint (applied at once).

Nobody is subscribed without an explicit subscribe call; adding to a list never does it. (Email
marketing still reaches a never-subscribed profile: Klaviyo's implied consent, see ``_common.py``;
SMS needs the explicit consent recorded here.) As Klaviyo documents:

- a subscribe names at least one channel and carries its identifier (``email`` / ``phone_number``,
  an ``id`` alone is refused); ``consented_at`` is accepted only with ``historical_import``;
- subscribing sets marketing consent SUBSCRIBED (method ``API``, ``consented_at`` or now, the
  ``custom_source`` as method detail), lifts ``UNSUBSCRIBE``, ``SPAM_COMPLAINT`` and
  ``USER_SUPPRESSED`` suppressions, but a ``HARD_BOUNCE`` or ``INVALID_EMAIL`` suppression stays,
  so such a profile still cannot receive email marketing. Subscribers join the given list
  (announced as ``profile_added_to_list`` unless ``historical_import``). On a double opt-in list
  (and not a historical import) email consent waits for confirmation: a confirmation message is
  put in the outbox and ``confirm_opt_in`` completes it;
- unsubscribing email from a list the profile is on removes it from that list and records a list
  suppression; otherwise (no list, or not a member) it is a global unsubscribe: consent
  UNSUBSCRIBED plus an ``UNSUBSCRIBE`` suppression. SMS unsubscribes are always global;
- suppressing (by email, or every current member of a list or segment) adds ``USER_SUPPRESSED``;
  unsuppressing removes only that reason.

Sandbox account defaults: lists are single opt-in unless created otherwise; SMS is set up for the
countries of the demo profiles (:data:`SMS_COUNTRIES`: the US and Canada, the UK, France, Germany,
Australia, New Zealand). Klaviyo refuses SMS consent for a number whose region has no sending number
in the account (a 400 since revision 2024-05-15), and so does the sandbox. A region is a country,
not a calling code: ``+1`` is also Jamaica's, the Bahamas' and a score of others', and a US sending
number does not reach them.
"""

from __future__ import annotations

from typing import Any

from .._context import Ctx, Reply
from .._formats import phone_region
from .._jsonapi import SandboxError, bad_request, iso
from .._services import Services
from .._store import Resource
from ..domain import DomainBuilder
from ._common import (
    add_email_suppression,
    email_marketing,
    new_profile,
    parse_time,
    remove_email_suppressions,
    set_email_consent,
    set_sms_consent,
    subscriptions,
)
from .lists import add_members, is_member, list_members, remove_members
from .profiles import apply_attributes, check_identifiers, find_by_identifiers, touch
from .segments import segment_members

Json = dict[str, Any]
LIFTED_BY_SUBSCRIBE = ("UNSUBSCRIBE", "SPAM_COMPLAINT", "USER_SUPPRESSED")
ITEMS = "/data/attributes/profiles/data"
_d = DomainBuilder("consent")


def _items(attrs: Json) -> list[Json]:
    return list(((attrs.get("profiles") or {}).get("data")) or [])


def _group(ctx: Ctx, name: str) -> Resource | None:
    """The list or segment named in ``relationships.<name>`` (404 if it does not exist)."""
    links = ctx.rel(name)
    if not links:
        return None
    res = ctx.store.get(name, links[0][1])
    if res is None:
        raise SandboxError(
            404,
            "not_found",
            "Not found.",
            f"A {name} with id {links[0][1]} does not exist; use an id from get_{name}s.",
            pointer=f"/data/relationships/{name}/data/id",
        )
    return res


#: The countries the sandbox account sends SMS to, by name and by the ISO codes of the numbers
#: they cover (see the module docstring); the UK's +44 numbers include the Crown Dependencies'.
SMS_COUNTRIES = {
    "the US": ("US",),
    "Canada": ("CA",),
    "the UK": ("GB", "GG", "JE", "IM"),
    "France": ("FR",),
    "Germany": ("DE",),
    "Australia": ("AU",),
    "New Zealand": ("NZ",),
}
_SMS_REGIONS = frozenset(code for codes in SMS_COUNTRIES.values() for code in codes)


def sms_set_up_for(phone: str) -> bool:
    """Whether the sandbox account has a sending number for ``phone``'s country (a valid E.164 number)."""
    return phone_region(phone) in _SMS_REGIONS


def _channels(subs: Json) -> tuple[Json | None, Json | None, Json | None]:
    email, sms = subs.get("email") or {}, subs.get("sms") or {}
    return email.get("marketing"), sms.get("marketing"), sms.get("transactional")


def _check_items(
    items: list[Json],
    limit: int,
    *,
    historical: bool = False,
    now: float = 0.0,
    store: Any = None,
    one: str | None = None,
    subscribing: bool = True,
) -> None:
    """Check the profiles of a subscribe or unsubscribe request, each at its own pointer.

    Every profile carries the identifier of each channel it names: ``email`` for
    email, ``phone_number`` for SMS (an ``id`` alone is not enough: Klaviyo subscribes the address,
    not the record). An ``id`` must be a profile's (``store``). ``consented_at`` is only for a
    historical import (Klaviyo: "if the historical_import flag is not included, providing any value
    for this field will raise an error"), where it is required and in the past. ``one``: the pointer
    of the single profile of a request that takes one (the client subscription), else they are at
    ``profiles.data/<i>``. A subscribe (``subscribing``) must name at least one channel; an
    unsubscribe without one changes nothing, as before.
    """
    if not items:
        raise bad_request("Give at least one profile in profiles.data.", pointer=ITEMS)
    if len(items) > limit:
        raise bad_request(
            f"At most {limit} profiles per call ({len(items)} given); split them into batches.", pointer=ITEMS
        )
    for i, item in enumerate(items):
        at = one or f"{ITEMS}/{i}"
        base = f"{at}/attributes"
        attrs = item.get("attributes") or {}
        check_identifiers(attrs, base)
        if item.get("id") and store is not None and store.get("profile", str(item["id"])) is None:
            raise bad_request(
                f"There is no profile with id {item['id']}; leave the id out and give the profile's email "
                "or phone_number.",
                pointer=f"{at}/id",
            )
        email, sms, sms_tx = _channels(attrs.get("subscriptions") or {})
        if subscribing and not (email or sms or sms_tx):
            raise bad_request(
                "Name at least one channel to change in subscriptions, e.g. "
                '{"email": {"marketing": {"consent": "SUBSCRIBED"}}}.',
                pointer=f"{base}/subscriptions",
            )
        if email and not attrs.get("email"):
            raise bad_request(
                "An email subscription needs the profile's email in the request (an id alone is not enough).",
                pointer=f"{base}/email",
            )
        if (sms or sms_tx) and not attrs.get("phone_number"):
            raise bad_request(
                "An SMS subscription needs the profile's phone_number (E.164) in the request "
                "(an id alone is not enough).",
                pointer=f"{base}/phone_number",
            )
        phone = attrs.get("phone_number")
        if subscribing and (sms or sms_tx) and isinstance(phone, str) and not sms_set_up_for(phone):
            where = phone_region(phone) or "unknown"
            raise bad_request(
                f"SMS is not set up for the country of {phone} ({where}) in this account (it sends SMS to "
                f"numbers of {', '.join(SMS_COUNTRIES)}), so its SMS consent cannot be changed; leave the "
                "sms block out to subscribe the email only, or set up a sending number for that country in "
                "Klaviyo.",
                pointer=f"{base}/phone_number",
            )
        for channel, sub in (("email/marketing", email), ("sms/marketing", sms), ("sms/transactional", sms_tx)):
            if not sub:
                continue
            where = f"{base}/subscriptions/{channel}/consented_at"
            if not historical and sub.get("consented_at") is not None:
                raise bad_request(
                    "consented_at is only for a historical import: set historical_import: true to sync past "
                    "consent, or leave consented_at out (consent is then recorded now).",
                    pointer=where,
                )
            when = parse_time(sub.get("consented_at")) if historical else None
            if historical and (when is None or when > now):
                raise bad_request(
                    "A historical import needs each subscription's consented_at, in the past.", pointer=where
                )


# -- subscribe ----------------------------------------------------------------------------------------
def _profile_for(svc: Services, pid: str | None, attrs: Json, now: float) -> Resource:
    """The profile to change: by id, then email/phone; created when missing. Free identifiers are set."""
    profile = svc.store.get("profile", pid) if pid else None
    profile = profile or find_by_identifiers(svc, attrs)
    if profile is None:
        return new_profile(svc, {k: attrs.get(k) for k in ("email", "phone_number")}, now)
    for key in ("email", "phone_number"):
        if attrs.get(key) and not profile.attributes.get(key) and svc.store.find("profile", key, attrs[key]) is None:
            profile.attributes[key] = attrs[key]
    return profile


def subscribe(
    svc: Services,
    profile: Resource,
    subs: Json,
    list_res: Resource | None,
    now: float,
    *,
    historical: bool = False,
    source: str | None = None,
    confirmed: bool = False,
) -> None:
    """Record explicit consent for the channels in ``subs`` (see module docstring)."""
    email, sms, sms_tx = _channels(subs)
    joins = False
    if email and profile.attributes.get("email"):
        double = list_res is not None and list_res.attributes.get("opt_in_process") == "double_opt_in"
        if list_res is not None and double and not historical and not confirmed:
            pending = profile.private.setdefault("pending_opt_in", {})
            pending[list_res.id] = {"requested": now, "source": source, "consented_at": email.get("consented_at")}
            svc.outbox.add(
                to=profile.attributes["email"],
                channel="email",
                profile_id=profile.id,
                source="double_opt_in",
                list_id=list_res.id,
                subject="Please confirm your subscription",
                send_at=iso(now),
                status="scheduled",
                skip_reason=None,
            )
        else:
            remove_email_suppressions(profile, LIFTED_BY_SUBSCRIBE, now)
            set_email_consent(
                profile,
                "SUBSCRIBED",
                now,
                method="API",
                method_detail=source,
                consented_at=parse_time(email.get("consented_at")),
            )
            em = email_marketing(profile)
            em["custom_method_detail"] = source
            em["double_optin"] = bool(confirmed)
            if list_res is not None:
                em["list_suppressions"] = [
                    s for s in em.get("list_suppressions") or [] if s.get("list_id") != list_res.id
                ]
            joins = True
    if sms and profile.attributes.get("phone_number"):
        set_sms_consent(profile, "SUBSCRIBED", now, method="API")
        joins = True
    if sms_tx and profile.attributes.get("phone_number"):
        subscriptions(profile)["sms"]["transactional"] = {
            "can_receive_sms_transactional": True,
            "consent": "SUBSCRIBED",
            "consent_timestamp": iso(now),
            "method": "API",
            "method_detail": source,
            "last_updated": iso(now),
        }
    touch(svc, profile, now)
    if joins and list_res is not None:
        add_members(svc, list_res, [profile], now, announce=not historical)


def confirm_opt_in(svc: Services, profile: Resource, list_id: str) -> bool:
    """The profile clicked the double opt-in confirmation for ``list_id``; False if none was pending."""
    pending = (profile.private.get("pending_opt_in") or {}).pop(list_id, None)
    list_res = svc.store.get("list", list_id)
    if pending is None or list_res is None:
        return False
    sub = {"consent": "SUBSCRIBED", "consented_at": pending.get("consented_at")}
    subscribe(
        svc,
        profile,
        {"email": {"marketing": sub}},
        list_res,
        svc.clock.time(),
        source=pending.get("source"),
        confirmed=True,
    )
    return True


@_d.handles("bulk_subscribe_profiles")
def bulk_subscribe_profiles(ctx: Ctx) -> Reply:
    attrs = ctx.attrs
    _check_items(
        _items(attrs), 1000, historical=bool(attrs.get("historical_import")), now=ctx.now, store=ctx.store
    )
    _group(ctx, "list")
    ctx.create_job("profile-subscription-bulk-create-job")
    return ctx.accepted()


@_d.job("bulk_subscribe_profiles")
def run_subscribe(svc: Services, job: Resource) -> None:
    attrs = job.private["body"]["data"]["attributes"]
    list_res = svc.store.get("list", job.linked("list")[0][1]) if job.linked("list") else None
    now = svc.clock.time()
    for item in _items(attrs):
        pattrs = item.get("attributes") or {}
        profile = _profile_for(svc, item.get("id"), pattrs, now)
        subscribe(
            svc,
            profile,
            pattrs.get("subscriptions") or {},
            list_res,
            now,
            historical=bool(attrs.get("historical_import")),
            source=attrs.get("custom_source"),
        )


@_d.handles("create_client_subscription")
def create_client_subscription(ctx: Ctx) -> Reply:
    base = "/data/attributes/profile/data"
    target = (ctx.attrs.get("profile") or {}).get("data") or {}
    pattrs = dict(target.get("attributes") or {})
    check_identifiers(pattrs, f"{base}/attributes")
    if not pattrs.get("email") and not pattrs.get("phone_number"):
        raise bad_request("One of email or phone_number is required to subscribe.", pointer=f"{base}/attributes")
    subs = pattrs.get("subscriptions")
    if subs is None:
        subs = {"email": {"marketing": {"consent": "SUBSCRIBED"}}} if pattrs.get("email") else {}
        if pattrs.get("phone_number"):
            subs["sms"] = {"marketing": {"consent": "SUBSCRIBED"}}
    item = {"id": target.get("id"), "attributes": {**pattrs, "subscriptions": subs}}
    _check_items([item], 1, store=ctx.store, one=base)
    list_res = _group(ctx, "list")
    profile = _profile_for(ctx.svc, target.get("id"), pattrs, ctx.now)
    apply_attributes(profile, pattrs, identifiers=False)
    subscribe(ctx.svc, profile, subs, list_res, ctx.now, source=ctx.attrs.get("custom_source"))
    return ctx.accepted()


# -- unsubscribe ----------------------------------------------------------------------------------------
@_d.handles("bulk_unsubscribe_profiles")
def bulk_unsubscribe_profiles(ctx: Ctx) -> Reply:
    _check_items(_items(ctx.attrs), 100, store=ctx.store, subscribing=False)
    _group(ctx, "list")
    ctx.create_job("profile-subscription-bulk-delete-job")
    return ctx.accepted()


@_d.job("bulk_unsubscribe_profiles")
def run_unsubscribe(svc: Services, job: Resource) -> None:
    attrs = job.private["body"]["data"]["attributes"]
    list_res = svc.store.get("list", job.linked("list")[0][1]) if job.linked("list") else None
    now = svc.clock.time()
    for item in _items(attrs):
        pattrs = item.get("attributes") or {}
        profile = _profile_for(svc, None, pattrs, now)
        email, sms, sms_tx = _channels(pattrs.get("subscriptions") or {})
        if email and list_res is not None and is_member(list_res, profile.id):
            remove_members(svc, list_res, [profile.id], now)
            em = email_marketing(profile)
            em["list_suppressions"] = [
                *(em.get("list_suppressions") or []),
                {"list_id": list_res.id, "reason": "UNSUBSCRIBE", "timestamp": iso(now)},
            ]
        elif email:
            set_email_consent(profile, "UNSUBSCRIBED", now, method="API")
            add_email_suppression(profile, "UNSUBSCRIBE", now)
        if sms:
            set_sms_consent(profile, "UNSUBSCRIBED", now, method="API")
        if sms_tx:
            tx = subscriptions(profile)["sms"].get("transactional")
            if tx:
                tx.update({"consent": "UNSUBSCRIBED", "can_receive_sms_transactional": False, "last_updated": iso(now)})
        touch(svc, profile, now)


# -- suppress / unsuppress ------------------------------------------------------------------------------
@_d.handles("bulk_suppress_profiles", "bulk_unsuppress_profiles")
def bulk_suppression(ctx: Ctx) -> Reply:
    items = _items(ctx.attrs)
    list_res, segment = _group(ctx, "list"), _group(ctx, "segment")
    given = [name for name, value in (("profiles", items), ("list", list_res), ("segment", segment)) if value]
    if len(given) != 1:
        raise bad_request(
            f"Give exactly one of: profiles (by email), a list, or a segment ({', '.join(given) or 'none'} given).",
            pointer="/data",
        )
    if len(items) > 100:
        raise bad_request(f"At most 100 email addresses per call ({len(items)} given).", pointer=ITEMS)
    for i, item in enumerate(items):
        check_identifiers(item.get("attributes") or {}, f"{ITEMS}/{i}/attributes")
    kind = "create" if ctx.op.operation_id == "bulk_suppress_profiles" else "delete"
    job = ctx.create_job(f"profile-suppression-bulk-{kind}-job")
    job.attributes["skipped_count"] = 0
    job.relationships["lists"] = [("list", list_res.id)] if list_res else []
    job.relationships["segments"] = [("segment", segment.id)] if segment else []
    ctx.store.put(job)
    return ctx.one(job)


def _targets(svc: Services, job: Resource, *, create: bool, now: float) -> list[Resource]:
    attrs = job.private["body"]["data"]["attributes"]
    if _items(attrs):
        out = []
        for item in _items(attrs):
            email = (item.get("attributes") or {}).get("email")
            profile = svc.store.find("profile", "email", email)
            if profile is None and create:
                profile = new_profile(svc, {"email": email}, now)
            if profile is not None:
                out.append(profile)
        return out
    for _, list_id in job.linked("lists"):
        list_res = svc.store.get("list", list_id)
        return list_members(svc, list_res) if list_res else []
    for _, seg_id in job.linked("segments"):
        seg = svc.store.get("segment", seg_id)
        return segment_members(svc, seg) if seg else []
    return []


@_d.job("bulk_suppress_profiles", "bulk_unsuppress_profiles")
def run_suppression(svc: Services, job: Resource) -> None:
    now = svc.clock.time()
    suppress = job.private["operation"] == "bulk_suppress_profiles"
    targets = _targets(svc, job, create=suppress, now=now)
    done = 0
    for view in targets:
        profile = svc.store.get("profile", view.id)
        if profile is None or not profile.attributes.get("email"):
            continue
        changed = (
            add_email_suppression(profile, "USER_SUPPRESSED", now)
            if suppress
            else bool(remove_email_suppressions(profile, ("USER_SUPPRESSED",), now))
        )
        if changed:
            touch(svc, profile, now)
            done += 1
    job.attributes.update({"total_count": len(targets), "completed_count": done, "skipped_count": len(targets) - done})


DOMAIN = _d.build()
