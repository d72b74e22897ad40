"""Sandbox domain: who a campaign reaches, and sending it (recipient estimation and send jobs).

Audiences are list or segment ids; members are read with ``svc.related(audience, "profiles")``
(a list stores them, a segment computes them). Recipients are the included members, minus the
excluded ones, who can receive marketing on the campaign's channel (``_common``'s consent rules).

``send_campaign`` (POST /api/campaign-send-jobs; the job's id is the campaign's id, as in Klaviyo)
checks the campaign can go (a Draft, with an audience and, for email, a template and a subject),
marks it ``Sending`` (or ``Scheduled`` for a future static time) and queues a job. When the job runs
(``svc.tick()`` once ``job_seconds`` have passed) every audience member gets an outbox entry through
``schedule_message``: scheduled at the static send time (per recipient in their own timezone for
local sends) or now, or skipped with the reason (no consent, suppressed, smart sending: a message on
the same channel in the previous 16 hours for email, 24 for SMS). The campaign is then ``Sent``
(or stays ``Scheduled`` until its send time passes). ``cancel_campaign_send`` cancels or reverts a
send that has not gone out: queued jobs stop, future outbox entries are skipped.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from typing import Any

from .._context import Ctx, Reply
from .._formats import parse_date, parse_date_time
from .._jsonapi import SandboxError, bad_request, iso, not_found
from .._services import Services
from .._store import Resource
from ..domain import DomainBuilder
from ._common import (
    can_receive_email_marketing,
    can_receive_sms_marketing,
    is_list_suppressed,
    parse_time,
    profile_zone,
    schedule_message,
)

Json = dict[str, Any]
AUDIENCE_TYPES = ("list", "segment")
#: "You can send a single campaign to a maximum of 15 lists/segments" (Klaviyo help center, "How to
#: send a campaign to multiple lists or segments").
MAX_INCLUDED_AUDIENCES = 15
_d = DomainBuilder("campaign_sends")
SMART_SENDING_HOURS = {"email": 16, "sms": 24, "mobile_push": 16}
#: Campaign statuses while a send is on its way (a send job can still be cancelled or reverted).
IN_FLIGHT = ("Scheduled", "Sending", "Preparing to send", "Preparing to schedule", "Adding Recipients")


# -- audiences ------------------------------------------------------------------------------------
def find_audience(svc: Services, audience_id: str) -> Resource | None:
    for rtype in AUDIENCE_TYPES:
        found = svc.store.get(rtype, audience_id)
        if found is not None:
            return found
    return None


def check_audiences(svc: Services, audiences: Any, pointer: str) -> None:
    """400 naming the first audience id that is neither a list nor a segment, or the included
    audiences when there are more than Klaviyo sends one campaign to (``MAX_INCLUDED_AUDIENCES``)."""
    if not isinstance(audiences, dict):
        return
    included = audiences.get("included") or []
    if len(set(map(str, included))) > MAX_INCLUDED_AUDIENCES:
        raise bad_request(
            f"A campaign can be sent to at most {MAX_INCLUDED_AUDIENCES} lists or segments; this one includes "
            f"{len(set(map(str, included)))}. Combine them in a segment, or clone the campaign for the rest.",
            pointer=f"{pointer}/included",
        )
    for key in ("included", "excluded"):
        for i, aid in enumerate(audiences.get(key) or []):
            if find_audience(svc, str(aid)) is None:
                raise bad_request(
                    f"Audience {aid!r} is not a list or segment in this account; use ids from "
                    "GET /api/lists or GET /api/segments.",
                    pointer=f"{pointer}/{key}/{i}",
                )


def members(svc: Services, audience_ids: Iterable[str]) -> list[str]:
    """Profile ids in any of the audiences, in first-seen order, without duplicates."""
    seen: dict[str, None] = {}
    for aid in audience_ids:
        audience = find_audience(svc, str(aid))
        if audience is None:
            continue
        for rtype, pid in svc.related(audience, "profiles"):
            if rtype == "profile":
                seen.setdefault(pid, None)
    return list(seen)


def audience(svc: Services, campaign: Resource) -> list[Resource]:
    """Profiles the campaign targets: included members minus excluded members (consent not checked)."""
    aud = campaign.attributes.get("audiences") or {}
    excluded = set(members(svc, aud.get("excluded") or []))
    profiles = (svc.store.get("profile", pid) for pid in members(svc, aud.get("included") or []) if pid not in excluded)
    return [p for p in profiles if p is not None]


def messages_of(svc: Services, campaign: Resource) -> list[Resource]:
    found = (svc.store.get(t, i) for t, i in campaign.linked("campaign-messages"))
    return [m for m in found if m is not None]


def channel_of(message: Resource) -> str:
    return str((message.attributes.get("definition") or {}).get("channel") or "email")


def can_receive(profile: Resource, channel: str, list_id: str | None = None) -> bool:
    """Whether the send may go to ``profile`` (``_common``'s rules; ``list_id``: the list suppression
    to honour, see ``suppressing_list``)."""
    if channel == "email":
        return can_receive_email_marketing(profile, list_id)
    if channel == "sms":
        return can_receive_sms_marketing(profile)
    return bool(profile.relationships.get("push-tokens") or profile.attributes.get("push_tokens"))


def suppressing_list(svc: Services, campaign: Resource, reach: dict[str, set[str]], profile: Resource) -> str | None:
    """A list of the campaign's that suppresses ``profile`` when it is in the audience only through
    lists it unsubscribed from (``reach``: included audience id -> member ids); else None."""
    via = [aid for aid, ids in reach.items() if profile.id in ids]
    if via and all(svc.store.get("list", aid) is not None and is_list_suppressed(profile, aid) for aid in via):
        return via[0]
    return None


def _reach(svc: Services, campaign: Resource) -> dict[str, set[str]]:
    included = (campaign.attributes.get("audiences") or {}).get("included") or []
    return {str(aid): set(members(svc, [aid])) for aid in included}


def estimate(svc: Services, campaign: Resource) -> int:
    messages = messages_of(svc, campaign)
    channel = channel_of(messages[0]) if messages else "email"
    reach = _reach(svc, campaign)
    return sum(
        1 for p in audience(svc, campaign) if can_receive(p, channel, suppressing_list(svc, campaign, reach, p))
    )


# -- recipient estimation ---------------------------------------------------------------------------
def _estimation(svc: Services, campaign: Resource, now: float) -> Resource:
    res = Resource(
        "campaign-recipient-estimation",
        campaign.id,
        {"estimated_recipient_count": estimate(svc, campaign)},
        {},
        now,
        now,
    )
    svc.store.put(res)
    return res


@_d.handles("refresh_campaign_recipient_estimation")
def refresh_estimation(ctx: Ctx) -> Reply:
    campaign = _campaign(ctx, str(ctx.data["id"]))
    job = _job("campaign-recipient-estimation-job", campaign.id, ctx, "refresh_campaign_recipient_estimation")
    return ctx.one(job)


@_d.handles("get_campaign_recipient_estimation")
def get_estimation(ctx: Ctx) -> Reply:
    campaign = _campaign(ctx, ctx.id)
    res = ctx.store.get("campaign-recipient-estimation", campaign.id) or _estimation(ctx.svc, campaign, ctx.now)
    return ctx.one(res)


@_d.job("refresh_campaign_recipient_estimation")
def _run_estimation(svc: Services, job: Resource) -> None:
    campaign = svc.store.get("campaign", job.id)
    if campaign is None:
        raise not_found("campaign", job.id)
    _estimation(svc, campaign, svc.clock.time())


# -- sending ----------------------------------------------------------------------------------------
@_d.handles("send_campaign")
def send_campaign(ctx: Ctx) -> Reply:
    svc = ctx.svc
    campaign = _campaign(ctx, str(ctx.data["id"]))
    status = campaign.attributes.get("status")
    if status != "Draft":
        raise bad_request(
            f"Campaign {campaign.id} has status {status!r}; only Draft campaigns can be sent. "
            "Clone it with POST /api/campaign-clone to send it again.",
            pointer="/data/id",
        )
    if not (campaign.attributes.get("audiences") or {}).get("included"):
        raise bad_request(
            "The campaign has no audience; set audiences.included to list or segment ids with "
            "PATCH /api/campaigns/{id} before sending.",
            pointer="/data/id",
        )
    messages = messages_of(svc, campaign)
    if not messages:
        raise bad_request("The campaign has no message to send.", pointer="/data/id")
    for message in messages:
        _check_sendable(svc, message)
    send_at = _send_time(campaign, ctx.now)
    now = ctx.now
    strategy = campaign.attributes.get("send_strategy") or {}
    if strategy.get("method") in ("static", "throttled") and not _is_local(campaign) and send_at < now:
        raise bad_request(
            f"The campaign's send_strategy.datetime {strategy.get('datetime')} is in the past; set a "
            "future time or the immediate strategy with PATCH /api/campaigns/{id}.",
            pointer="/data/id",
        )
    future = send_at > now + svc.jobs.seconds
    campaign.attributes.update(
        {
            "status": "Scheduled" if future else "Sending",
            "scheduled_at": iso(now),
            "send_time": iso(send_at),
            "updated_at": iso(now),
        }
    )
    campaign.updated = now
    ctx.store.put(campaign)
    is_local = _is_local(campaign)
    for message in messages:
        message.attributes["send_times"] = [{"datetime": iso(send_at), "is_local": is_local}]
        ctx.store.put(message)
    job = _job("campaign-send-job", campaign.id, ctx, "send_campaign")
    return ctx.one(job)


@_d.handles("cancel_campaign_send")
def cancel_send(ctx: Ctx) -> Reply:
    svc = ctx.svc
    job = ctx.get("campaign-send-job")
    ctx.check_body_id(job.id)
    campaign = _campaign(ctx, job.id)
    action = ctx.attrs.get("action")
    now = ctx.now
    status = campaign.attributes.get("status")
    sent_by = campaign.private.get("sent_by")
    if status not in IN_FLIGHT or (sent_by is not None and sent_by <= now):
        raise bad_request(
            f"Campaign {campaign.id} has status {status!r}; only a scheduled or sending campaign "
            "whose messages have not gone out can be cancelled or reverted.",
            pointer="/data/id",
        )
    job.attributes["status"] = "cancelled"
    ctx.store.put(job)
    for entry in ctx.store.iter("outbox-message"):
        attrs = entry.attributes
        if (
            attrs.get("campaign_id") == campaign.id
            and attrs.get("status") == "scheduled"
            and (parse_time(attrs.get("send_at")) or 0) > now
        ):
            attrs.update(
                {
                    "status": "skipped",
                    "skip_reason": "campaign send cancelled" if action == "cancel" else "campaign reverted to draft",
                }
            )
            ctx.store.put(entry)
    if action == "revert":
        campaign.attributes.update({"status": "Draft", "scheduled_at": None, "send_time": None})
        for message in messages_of(svc, campaign):
            message.attributes["send_times"] = None
            ctx.store.put(message)
    else:
        campaign.attributes["status"] = "Cancelled"
    campaign.attributes["updated_at"] = iso(now)
    campaign.private.pop("sent_by", None)
    ctx.store.put(campaign)
    return ctx.no_content()


@_d.job("send_campaign")
def _run_send(svc: Services, job: Resource) -> None:
    campaign = svc.store.get("campaign", job.id)
    if campaign is None:
        raise not_found("campaign", job.id)
    now = svc.clock.time()
    send_at = _send_time(campaign, now)
    options = (campaign.attributes.get("send_strategy") or {}).get("options") or {}
    smart = (campaign.attributes.get("send_options") or {}).get("use_smart_sending", True) is not False
    latest = now
    sent = 0
    profiles = audience(svc, campaign)
    reach = _reach(svc, campaign)
    for message in messages_of(svc, campaign):
        channel = channel_of(message)
        content = (message.attributes.get("definition") or {}).get("content") or {}
        details = {
            "campaign_id": campaign.id,
            "campaign_message_id": message.id,
            "subject": content.get("subject"),
            "preview": content.get("preview_text") or content.get("body"),
        }
        recent = _recent_sends(svc, channel) if smart else {}
        window = SMART_SENDING_HOURS.get(channel, 16) * 3600.0
        for profile in profiles:
            when = _local_time(send_at, profile) if options.get("is_local") else send_at
            if when < now and options.get("is_local") and not options.get("send_past_recipients_immediately"):
                _skip(svc, profile, channel, when, "local send time already passed", details)
                continue
            when = max(when, now)
            via = suppressing_list(svc, campaign, reach, profile) if channel == "email" else None
            if (
                smart
                and can_receive(profile, channel, via)
                and any(when - window < at <= when for at in recent.get(profile.id, ()))
            ):
                _skip(
                    svc,
                    profile,
                    channel,
                    when,
                    f"smart sending: received a {channel} message in the previous "
                    f"{SMART_SENDING_HOURS.get(channel, 16)} hours",
                    details,
                )
                continue
            entry = schedule_message(
                svc, profile, channel=channel, source="campaign", send_at=when, list_id=via, **details
            )
            if entry.attributes.get("status") == "scheduled":
                sent += 1
                latest = max(latest, when)
    job.attributes.update({"total_count": len(profiles), "completed_count": sent})
    campaign.private["sent_by"] = latest
    campaign.attributes["status"] = "Sent" if latest <= now else "Scheduled"
    campaign.attributes["updated_at"] = iso(now)
    svc.store.put(campaign)


def settle(svc: Services, campaign: Resource) -> Resource:
    """A scheduled campaign whose last message time has passed is Sent (checked when it is read)."""
    sent_by = campaign.private.get("sent_by")
    if campaign.attributes.get("status") == "Scheduled" and sent_by is not None and sent_by <= svc.clock.time():
        job = svc.store.get("campaign-send-job", campaign.id)
        if job is not None and job.attributes.get("status") == "complete":
            campaign.attributes["status"] = "Sent"
            svc.store.put(campaign)
    return campaign


# -- helpers ----------------------------------------------------------------------------------------
def _campaign(ctx: Ctx, cid: str) -> Resource:
    campaign = ctx.store.get("campaign", cid)
    if campaign is None:
        raise SandboxError(
            404,
            "not_found",
            "Not found.",
            f"A campaign with id {cid} does not exist.",
            pointer="/data/id" if ctx.op.method != "GET" else None,
        )
    return settle(ctx.svc, campaign)


def _job(rtype: str, cid: str, ctx: Ctx, operation: str) -> Resource:
    """A job named after the campaign (Klaviyo uses the campaign id), due after ``job_seconds``."""
    now = ctx.now
    job = Resource(
        rtype,
        cid,
        {
            "status": "queued",
            "total_count": 0,
            "completed_count": 0,
            "failed_count": 0,
            "created_at": iso(now),
            "started_at": None,
            "completed_at": None,
        },
        {},
        now,
        now,
        {"due": now + ctx.svc.jobs.seconds, "operation": operation},
    )
    ctx.store.put(job)
    ctx.svc.jobs.track(job)
    return job


def _check_sendable(svc: Services, message: Resource) -> None:
    pointer = "/data/id"
    definition = message.attributes.get("definition") or {}
    channel = channel_of(message)
    content = definition.get("content") or {}
    if channel == "email":
        template = next((svc.store.get(t, i) for t, i in message.linked("template")), None)
        if template is None:
            raise bad_request(
                f"Campaign message {message.id} has no template; assign one with "
                "POST /api/campaign-message-assign-template before sending.",
                pointer=pointer,
            )
        if not content.get("subject"):
            raise bad_request(
                f"Campaign message {message.id} has no subject; set definition.content.subject "
                "with PATCH /api/campaign-messages/{id}.",
                pointer=pointer,
            )
    elif channel == "sms" and not content.get("body"):
        raise bad_request(
            f"Campaign message {message.id} has no body; set definition.content.body "
            "with PATCH /api/campaign-messages/{id}.",
            pointer=pointer,
        )


def _send_time(campaign: Resource, now: float) -> float:
    """When the send strategy says to send (a static/throttled time, a smart-send day, or now)."""
    strategy = campaign.attributes.get("send_strategy") or {}
    method = strategy.get("method")
    if method in ("static", "throttled"):
        when = parse_date_time(str(strategy.get("datetime") or ""))
        if when is None:  # requests are checked against the spec's date-time; never "now" in its place
            raise bad_request(
                f"Campaign {campaign.id}'s send_strategy.datetime {strategy.get('datetime')!r} is not an ISO 8601 "
                "datetime; set one (e.g. 2026-07-15T10:00:00+00:00) with PATCH /api/campaigns/{id}.",
                pointer="/data/id",
            )
        return when.timestamp()
    if method == "smart_send_time" and strategy.get("date"):
        day = parse_date(str(strategy["date"]))
        if day is None:
            raise bad_request(
                f"Campaign {campaign.id}'s send_strategy.date {strategy['date']!r} is not a date (YYYY-MM-DD); "
                "set one with PATCH /api/campaigns/{id}.",
                pointer="/data/id",
            )
        return max(now, _dt.datetime(day.year, day.month, day.day, tzinfo=_dt.UTC).timestamp())
    return now


def _is_local(campaign: Resource) -> bool:
    options = (campaign.attributes.get("send_strategy") or {}).get("options") or {}
    return bool(options.get("is_local"))


def _local_time(send_at: float, profile: Resource) -> float:
    """The UTC wall-clock time ``send_at`` shown in the recipient's own timezone (local sends)."""
    wall = _dt.datetime.fromtimestamp(send_at, _dt.UTC).replace(tzinfo=None)
    return wall.replace(tzinfo=profile_zone(profile)).timestamp()


def _recent_sends(svc: Services, channel: str) -> dict[str, list[float]]:
    """Profile id -> send times of the messages already scheduled for it on ``channel`` (smart sending)."""
    out: dict[str, list[float]] = {}
    for entry in svc.store.iter("outbox-message"):
        attrs = entry.attributes
        if attrs.get("channel") == channel and attrs.get("status") == "scheduled":
            at = parse_time(attrs.get("send_at"))
            if at is not None:
                out.setdefault(str(attrs.get("profile_id")), []).append(at)
    return out


def _skip(svc: Services, profile: Resource, channel: str, when: float, reason: str, details: Json) -> None:
    to = profile.attributes.get("email") if channel == "email" else profile.attributes.get("phone_number")
    svc.outbox.add(
        to=to,
        channel=channel,
        profile_id=profile.id,
        source="campaign",
        send_at=iso(when),
        status="skipped",
        skip_reason=reason,
        **details,
    )


DOMAIN = _d.build()
