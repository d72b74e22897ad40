"""Build the sandbox state a case declares, through the Klaviyo API the personas use.

A fixture is written in the case file under ``sandbox.fixture``::

    lists: ["Lead Magnet — Trail Guide"]
    flows:                                    # metric- or list-triggered email flows, made live
      - name: "Lead sequence: nurture"
        trigger: {metric: Lead Sequence Started, where: {sequence: nurture}}
        messages: [{subject: "Your Trail Guide is here"}, {delay_days: 2, subject: "How trip leaders pack"}]
    profiles:
      maya:                                   # a key the case uses to refer to this profile
        email: maya@example.com
        first_name: Maya
        timezone: America/Denver              # location.timezone (omit it: the profile has none)
        properties: {plan: summit-club}
        consent: subscribed                   # subscribed | never | unsubscribed | suppressed
        lists: ["Lead Magnet — Trail Guide"]
        events:                               # prior activity, oldest first
          - {metric: Opened Email, ago: 3d}
          - {metric: Lead Sequence Started, ago: 5d, properties: {sequence: nurture}}
        unsubscribed_from: [Newsletter]       # joined, then unsubscribed from these lists (a list suppression)
    segments:                                 # Klaviyo segment definitions; members are computed by the sandbox
      - name: Summit club
        definition: {condition_groups: [{conditions: [{type: profile-property, property: "properties['plan']",
                                                       filter: {type: string, operator: equals, value: summit-club}}]}]}
    campaigns:                                # sent email campaigns and their recipients' activity
      - name: Weekend trail picks
        at: "2026-03-09T15:00:00Z"            # the send time (or ago: 1d; default one day before now)
        lists: [Newsletter]                   # the audience (optional)
        recipients: 200                       # Received Email (or Bounced Email for the bounced ones)
        bounced: 4
        opens: 70                             # unique openers, clicks (of the openers), unsubscribes
        clicks: 12
        unsubscribes: 1
        conversions: [{metric: Placed Order, count: 3, value: 89.5}]   # attributed to the message

Everything is made with real API calls (profiles, consent jobs, lists, flows, segments, events), so
consent, suppression, list membership and flows behave as the sandbox emulates Klaviyo. The
exceptions: a flow's trigger metric is created in the sandbox's store when no event has made it
yet (Klaviyo creates metrics only from events); and a campaign, created as a draft through the
API, is then marked sent in the store, with its recipients (``recipient-<n>-<i>@campaigns.example``)
and their events written with the store helpers of ``klaviyo_sandbox/domains/_common.py``
(Klaviyo cannot send a campaign in the past, and hundreds of recipients through the API would be
slow). ``consent: suppressed`` is a subscriber with a ``USER_SUPPRESSED`` suppression.

A ``form_submission`` (``profile``, ``answers``, form id and name, when) becomes a "Form submitted
by profile" event and then the exact document ``get_event(id, include=[profile, metric])`` returns,
which is what the lead-magnet sequencer receives from a webhook.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Built",
    "CampaignFixture",
    "ConversionFixture",
    "EventFixture",
    "Fixture",
    "FlowFixture",
    "FormSubmission",
    "ProfileFixture",
    "SegmentFixture",
    "build_fixture",
    "finish_jobs",
    "parse_duration",
    "submit_form",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in ``"90s"``, ``"10m"``, ``"2h"``, ``"3d"`` or ``"1w"``."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration; write e.g. 30s, 10m, 2h, 3d or 1w")
    return float(match.group(1)) * _UNIT[match.group(2)]


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat(timespec="seconds")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _When(_Strict):
    at: _dt.datetime | None = Field(default=None, description="When, as ISO 8601 with a zone.")
    ago: str | None = Field(default=None, description="How long before the case's `now`: 30s, 10m, 2h, 3d, 1w.")

    @model_validator(mode="after")
    def _check_when(self) -> _When:
        if self.at is not None and self.ago is not None:
            raise ValueError("give `at` or `ago`, not both")
        if self.at is not None and self.at.tzinfo is None:
            raise ValueError("`at` needs a time zone, e.g. 2026-03-10T15:00:00Z")
        if self.ago is not None:
            parse_duration(self.ago)
        return self

    def time(self, now: float, default_ago: float) -> float:
        if self.at is not None:
            return self.at.timestamp()
        return now - (parse_duration(self.ago) if self.ago is not None else default_ago)


class EventFixture(_When):
    """A prior event of a profile (engagement, an earlier sequence start, ...)."""

    metric: str
    properties: dict[str, Any] = Field(default_factory=dict)
    value: float | None = None
    unique_id: str | None = None


class ProfileFixture(_Strict):
    """A profile the case needs, with its consent state, lists and prior events."""

    email: str | None = None
    phone_number: str | None = None
    external_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    organization: str | None = None
    title: str | None = None
    timezone: str | None = None
    location: dict[str, Any] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    consent: Literal["subscribed", "never", "unsubscribed", "suppressed"] = "subscribed"
    lists: list[str] = Field(default_factory=list)
    events: list[EventFixture] = Field(default_factory=list)
    unsubscribed_from: list[str] = Field(
        default_factory=list, description="Lists the profile joined and then unsubscribed from (a list suppression; "
        "it leaves the list, its global consent stays).")

    @model_validator(mode="after")
    def _check(self) -> ProfileFixture:
        if not (self.email or self.phone_number or self.external_id):
            raise ValueError("a profile needs an email, phone_number or external_id")
        if (self.consent != "never" or self.unsubscribed_from) and not self.email:
            raise ValueError(f"consent {self.consent!r} is email consent: give the profile an email "
                             "(or consent: never)")
        return self


class FlowMessage(_Strict):
    subject: str
    preview: str = ""
    delay_days: int = Field(default=0, ge=0, description="Days to wait before this message (after the previous one).")


class FlowTrigger(_Strict):
    metric: str | None = None
    list: str | None = None
    where: dict[str, str] = Field(default_factory=dict, description="Event properties that must equal these values.")

    @model_validator(mode="after")
    def _one(self) -> FlowTrigger:
        if (self.metric is None) == (self.list is None):
            raise ValueError("a flow trigger is a `metric` or a `list`")
        return self


class FlowFixture(_Strict):
    """A live email flow: what a metric or list addition starts, as outbox messages."""

    name: str
    trigger: FlowTrigger
    messages: list[FlowMessage] = Field(min_length=1)
    status: Literal["live", "draft", "manual"] = "live"


class SegmentFixture(_Strict):
    """A segment made with ``create_segment``: its members are whoever its definition matches."""

    name: str
    definition: dict[str, Any] = Field(description="Klaviyo's segment definition ({condition_groups: [...]}).")


class ConversionFixture(_Strict):
    """Conversions attributed to a campaign's message (``$attributed_message``), by its first delivered recipients."""

    metric: str = "Placed Order"
    count: int = Field(1, ge=0)
    value: float | None = Field(default=None, description="Each conversion's $value (revenue).")


class CampaignFixture(_When):
    """A sent email campaign and what its recipients did, as the Reporting API counts it.

    ``at``/``ago`` is the send time (default: a day before ``now``). Recipients are new profiles;
    the first ``bounced`` of them bounce (Bounced Email instead of Received Email), then the first
    ``opens`` delivered ones open, the first ``clicks`` click, the last ``unsubscribes`` unsubscribe
    and the first ``count`` of each conversion convert, all within about two hours of the send.
    """

    name: str
    subject: str | None = None
    status: str = "Sent"
    lists: list[str] = Field(default_factory=list, description="The audience: fixture list names.")
    recipients: int = Field(0, ge=0, le=20_000)
    bounced: int = Field(0, ge=0)
    opens: int = Field(0, ge=0)
    clicks: int = Field(0, ge=0)
    unsubscribes: int = Field(0, ge=0)
    conversions: list[ConversionFixture] = Field(default_factory=list)

    @model_validator(mode="after")
    def _counts(self) -> CampaignFixture:
        delivered = self.recipients - self.bounced
        problems = [f"{name} ({n}) is more than {what} ({limit})" for name, n, what, limit in (
            ("bounced", self.bounced, "recipients", self.recipients), ("opens", self.opens, "delivered", delivered),
            ("clicks", self.clicks, "opens", self.opens), ("unsubscribes", self.unsubscribes, "delivered", delivered),
            *((f"conversions of {c.metric}", c.count, "delivered", delivered) for c in self.conversions)) if n > limit]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Fixture(_Strict):
    lists: list[str] = Field(default_factory=list)
    flows: list[FlowFixture] = Field(default_factory=list)
    profiles: dict[str, ProfileFixture] = Field(default_factory=dict)
    segments: list[SegmentFixture] = Field(default_factory=list)
    campaigns: list[CampaignFixture] = Field(default_factory=list)


class FormSubmission(_When):
    """A sign-up form submitted by a fixture profile; becomes the Get Event document the graph gets."""

    profile: str
    answers: dict[str, Any] = Field(default_factory=dict)
    form_id: str = "FORM01"
    form_name: str = "Sign-up form"
    metric: str = "Form submitted by profile"


@dataclass
class Built:
    """What the fixture made: ids by key, for matchers (``ref: profile:maya``) and outcome checks."""

    refs: dict[str, str] = field(default_factory=dict)
    flow_names: dict[str, str] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)  # profile key -> email

    def profile_id(self, key: str) -> str:
        try:
            return self.refs[f"profile:{key}"]
        except KeyError:
            known = sorted(k.split(":", 1)[1] for k in self.refs if k.startswith("profile:"))
            raise KeyError(f"no fixture profile {key!r}; profiles: {', '.join(known) or 'none'}") from None

    def list_id(self, name: str) -> str:
        try:
            return self.refs[f"list:{name}"]
        except KeyError:
            raise KeyError(f"no fixture list {name!r}; declare it under sandbox.fixture.lists") from None


def finish_jobs(sb: Any) -> None:
    """Let the sandbox's bulk jobs (consent, imports) complete, as a caller of Klaviyo waits for them:
    its manual clock moves past them and ``Sandbox.settle()`` finishes whatever is still pending."""
    sb.clock.advance(sb.job_seconds + 5)
    sb.settle()


def _metric_id(sb: Any, name: str) -> str:
    return str(sb.seeding.metric(name).id)


def _flow_definition(sb: Any, flow: FlowFixture, built: Built) -> dict[str, Any]:
    trigger: dict[str, Any]
    if flow.trigger.metric:
        mid = _metric_id(sb, flow.trigger.metric)
        built.refs[f"metric:{flow.trigger.metric}"] = mid
        conditions = [{"type": "metric-property", "metric_id": mid, "field": key,
                       "filter": {"type": "string", "operator": "equals", "value": value}}
                      for key, value in flow.trigger.where.items()]
        trigger = {"type": "metric", "id": mid}
        if conditions:
            trigger["trigger_filter"] = {"condition_groups": [{"conditions": [c]} for c in conditions]}
    else:
        trigger = {"type": "list", "id": built.list_id(str(flow.trigger.list))}
    actions: list[dict[str, Any]] = []
    for n, msg in enumerate(flow.messages):
        if msg.delay_days:
            actions.append({"temporary_id": f"a{len(actions)}", "type": "time-delay",
                            "links": {"next": f"a{len(actions) + 1}"},
                            "data": {"unit": "days", "value": msg.delay_days, "secondary_value": None,
                                     "delay_until_time": None, "delay_until_weekdays": None}})
        actions.append({"temporary_id": f"a{len(actions)}", "type": "send-email", "links": {"next": None},
                        "data": {"status": "live", "message": {
                            "name": f"Touchpoint {n + 1}", "subject_line": msg.subject, "preview_text": msg.preview,
                            "from_email": "hello@example.com", "from_label": "Eval fixture"}}})
    for action, following in itertools.pairwise(actions):
        action["links"]["next"] = following["temporary_id"]
    return {"triggers": [trigger], "profile_filter": None, "actions": actions, "entry_action_id": "a0",
            "reentry_criteria": None}


def _profile_args(p: ProfileFixture) -> dict[str, Any]:
    args: dict[str, Any] = {k: getattr(p, k) for k in ("email", "phone_number", "external_id", "first_name",
                                                        "last_name", "organization", "title") if getattr(p, k)}
    location = dict(p.location or {})
    if p.timezone:
        location["timezone"] = p.timezone
    if location:
        args["location"] = location
    if p.properties:
        args["properties"] = dict(p.properties)
    return args


def _consent(client: Any, op: str, emails: list[str], consent: str | None) -> None:
    if not emails:
        return
    if consent is None:
        client.call(op, profiles=[{"email": e} for e in emails])
    else:
        extra = {"custom_source": "eval fixture"} if consent == "SUBSCRIBED" else {}
        profiles = [{"email": e, "subscriptions": {"email": {"marketing": {"consent": consent}}}} for e in emails]
        client.call(op, profiles=profiles, **extra)


def build_fixture(sb: Any, client: Any, fixture: Fixture, now: float) -> Built:
    """Make the fixture's lists, flows, profiles (consent, lists) and prior events, in that order."""
    built = Built()
    names = list(dict.fromkeys([*fixture.lists, *(n for p in fixture.profiles.values()
                                                   for n in [*p.lists, *p.unsubscribed_from]),
                                *(n for c in fixture.campaigns for n in c.lists)]))
    for name in names:
        built.refs[f"list:{name}"] = client.call("create_list", name=name).data["id"]
    for flow in fixture.flows:
        created = client.call("create_flow", name=flow.name, definition=_flow_definition(sb, flow, built))
        fid = created.data["id"]
        if flow.status != "draft":
            client.call("update_flow", id=fid, status=flow.status)
        built.refs[f"flow:{flow.name}"] = fid
        built.flow_names[fid] = flow.name
    for key, profile in fixture.profiles.items():
        built.refs[f"profile:{key}"] = client.call("create_profile", **_profile_args(profile)).data["id"]
        if profile.email:
            built.emails[key] = profile.email
    states = {s: [p.email for p in fixture.profiles.values() if p.consent == s and p.email]
              for s in ("subscribed", "unsubscribed", "suppressed")}
    _consent(client, "bulk_subscribe_profiles", states["subscribed"] + states["unsubscribed"] + states["suppressed"],
             "SUBSCRIBED")
    finish_jobs(sb)
    _consent(client, "bulk_unsubscribe_profiles", states["unsubscribed"], "UNSUBSCRIBED")
    _consent(client, "bulk_suppress_profiles", states["suppressed"], None)
    finish_jobs(sb)
    for name in names:
        members = [built.profile_id(k) for k, p in fixture.profiles.items()
                   if name in p.lists or name in p.unsubscribed_from]
        if members:
            client.call("add_profiles_to_list", id=built.list_id(name), profile_ids=members)
        leaving = [p.email for p in fixture.profiles.values() if name in p.unsubscribed_from and p.email]
        if leaving:
            profiles = [{"email": e, "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}}
                        for e in leaving]
            client.call("bulk_unsubscribe_profiles", profiles=profiles, list_id=built.list_id(name))
    if any(p.unsubscribed_from for p in fixture.profiles.values()):
        finish_jobs(sb)
    events = sorted(((e.time(now, 3600), n, key, e) for key, p in fixture.profiles.items()
                     for n, e in enumerate(p.events)), key=lambda item: (item[0], item[1]))
    seen: set[tuple[str, str, int]] = set()
    for when, _, key, event in events:
        # Without a unique_id Klaviyo keeps one event per profile, metric and second: keep times apart.
        while event.unique_id is None and (key, event.metric, int(when)) in seen:
            when -= 1
        seen.add((key, event.metric, int(when)))
        args: dict[str, Any] = {"metric": {"name": event.metric}, "profile": {"id": built.profile_id(key)},
                                "properties": dict(event.properties), "time": _iso(when)}
        if event.unique_id is not None:
            args["unique_id"] = event.unique_id
        if event.value is not None:
            args["value"] = event.value
        client.call("create_event", **args)
    for segment in fixture.segments:
        created = client.call("create_segment", name=segment.name, definition=segment.definition)
        built.refs[f"segment:{segment.name}"] = created.data["id"]
    for n, campaign in enumerate(fixture.campaigns, start=1):
        _campaign(sb, client, built, n, campaign, now)
    return built


def _campaign(sb: Any, client: Any, built: Built, n: int, spec: CampaignFixture, now: float) -> None:
    """Create the campaign (a draft, through the API), mark it sent, and write its recipients' events."""
    content = {"subject": spec.subject or spec.name}
    created = client.call("create_campaign", name=spec.name,
                          audiences={"included": [built.list_id(name) for name in spec.lists]},
                          campaign_messages=[{"definition": {"channel": "email", "content": content}}])
    cid = created.data["id"]
    mid = created.data["relationships"]["campaign-messages"]["data"][0]["id"]
    built.refs[f"campaign:{spec.name}"] = cid
    built.refs[f"campaign-message:{spec.name}"] = mid
    send = spec.time(now, 86_400)
    created_at = send - 86_400
    sb.seeding.sent_campaign(cid, at=send, status=spec.status, created=created_at)
    base = {"$message": mid, "$campaign": cid, "Campaign Name": spec.name, "Subject": content["subject"]}
    people = [sb.seeding.profile(email=f"recipient-{n}-{i + 1}@campaigns.example", at=created_at)
              for i in range(spec.recipients)]
    delivered = people[spec.bounced:]

    def event(who: Any, metric: str, when: float, kind: str, i: int, props: dict[str, Any],
              value: float | None = None) -> None:
        sb.seeding.event(who, metric, props, at=when, unique_id=f"eval-campaign-{n}-{kind}-{i}", value=value,
                         trigger_flows=False)

    for i, who in enumerate(people[:spec.bounced]):
        event(who, "Bounced Email", send + i, "bounce", i, {**base, "Bounce Type": "hard"})
    for i, who in enumerate(delivered):
        event(who, "Received Email", send + i, "received", i, dict(base))
    for i, who in enumerate(delivered[:spec.opens]):
        event(who, "Opened Email", send + 600 + i, "open", i, dict(base))
    for i, who in enumerate(delivered[:spec.clicks]):
        event(who, "Clicked Email", send + 1200 + i, "click", i, dict(base))
    for i, who in enumerate(delivered[len(delivered) - spec.unsubscribes:] if spec.unsubscribes else []):
        event(who, "Unsubscribed from Email Marketing", send + 1800 + i, "unsubscribe", i, dict(base))
    for conversion in spec.conversions:
        for i, who in enumerate(delivered[:conversion.count]):
            event(who, conversion.metric, send + 3600 + i, f"conversion-{conversion.metric}", i,
                  {"$attributed_message": mid, "$attributed_campaign": cid}, conversion.value)
    for metric in ("Received Email", *(c.metric for c in spec.conversions)):
        found = sb.seeding.find_metric(metric)
        if found is not None:
            built.refs[f"metric:{metric}"] = found.id


def submit_form(client: Any, built: Built, submission: FormSubmission, now: float) -> dict[str, Any]:
    """Record the submission event and return Get Event's document (include=profile,metric) for it.

    The event has no ``unique_id`` (Klaviyo then keeps one per profile, metric and second), so the
    fixture uses only the arguments a form integration sends, not the ones under test.
    """
    pid = built.profile_id(submission.profile)
    when = submission.time(now, 60)
    props = {"form_id": submission.form_id, "form_name": submission.form_name, **submission.answers}
    client.call("create_event", metric={"name": submission.metric}, profile={"id": pid}, properties=props,
                time=_iso(when))
    metrics = {m["name"]: m["id"] for m in client.iterate("get_metrics")}
    mid = metrics[submission.metric]
    built.refs[f"metric:{submission.metric}"] = mid
    found = client.call("get_events", filter=f'and(equals(metric_id,"{mid}"),equals(profile_id,"{pid}"))',
                        sort="-datetime", page_size=1)
    event_id = found.data[0]["id"]
    built.refs["event:form_submission"] = event_id
    return dict(client.call("get_event", id=event_id, include=["profile", "metric"]).body)
