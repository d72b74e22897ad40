"""What a call does to the account, by class: read, write, consent, identity, destructive, sending,
account, volume.

Approval policies decide by effect, not by HTTP verb: a ``POST`` that subscribes five profiles to
email marketing changes consent as surely as a ``DELETE`` destroys. Effects come from three places,
in this order:

1. the catalog (``read_only`` operations only read; every other one writes);
2. :data:`OPERATION_EFFECTS`, the one hand-written table of what each consequential operation does
   (unsubscribing changes consent, merging changes identity, sending a campaign sends, changing the
   account's tracking settings changes the account, ...);
3. the call's arguments (:func:`call_effects`): any write that carries ``subscriptions`` changes
   consent; a profile record that names two of its keys (id, email, phone number, external id,
   anonymous id, web-tracking id ``_kx``) changes identity, because one finds an existing profile
   and the other is set on it: a new email, phone or external id re-addresses it, a new anonymous
   id or ``_kx`` binds a device to it (what that device sends next, with no key, lands on the
   profile). That holds for profile writes, for ``patch_identifiers`` at a record's top or in its
   ``meta``, and for a profile that a write carries: an event's, server-side or client-side, a push
   token's, a subscription's, which Klaviyo updates from the keys given. Setting a list's
   ``opt_in_process`` (making or changing it) changes consent; a flow or a form created with
   ``live`` anywhere in it starts sending; a write of more profiles than ``max_profiles`` (default
   :data:`PROFILES_PER_CALL`) in one call is ``volume``: Klaviyo bills by profile count, and an
   import of thousands is not undone by a delete;
4. a read before the write, for the few operations whose effect depends on what the account is
   (:data:`READ_BEFORE_WRITE`, read by ``klaviyo_toolkit.effects_lookup``): ``update_template`` is
   sending when a scheduled or sending campaign, or a live flow, sends that template. A read that
   cannot be made (a scope missing, an error) counts as finding it: the check fails closed.

Sending is not only "send this campaign": a Klaviyo flow starts on its trigger, so a call that fires
a trigger sends as surely as a send job. Adding profiles to a list (a list-triggered flow),
recording an event (a metric-triggered flow), subscribing (a welcome flow), changing a segment's
definition (a segment-triggered flow, for everyone who joins), turning a flow on or off (its only
attribute is its status: off, a live flow's messages stop), editing what a live flow sends (its
actions, a universal content block its emails use, a web feed they fetch), publishing a form, and
writing what a catalog item or variant is (its price, url, image and stock, which live messages'
product blocks show; a restock fires back-in-stock sends), adding or changing the coupon codes live
messages hand out, ingesting custom-object records (a custom-object date trigger sends on a record's
date, as a metric trigger does on an event), translating a message, changing whom a beta campaign's
messages go to (an audience's groups, or the messages an audience holds: nothing in the beta API
keeps that to drafts, as the stable ``update_campaign`` is kept) and a beta campaign's send settings
(when and to whom its messages go) are classed as sending, whatever the account's flows are today: a
flow can be switched on after the call is approved, and the check must not depend on a read the
persona may have no scope for. A template is the exception, because editing templates is everyday
work and most are drafts or unused: a read tells whether a live message sends it (point 4), and a
draft's turn to send stops on its own (a campaign's ``send_campaign``, a flow's ``update_flow``).
Catalog categories are plain writes: they group items, and change nothing an item says; so is a new
brand element (nothing draws on it until one is chosen) and a clone of a beta campaign, message or
audience (it waits for its own schedule). Closing a customer-agent conversation is destructive:
closed is its only status. Profile property writes are not classed as sending, although a segment
could be defined on any property: that would make every write stop; a persona that must not risk it
uses ``mode: writes``.

Account-wide settings are ``account``: link tracking parameters added to every message, which
metric counts as revenue, custom metric definitions, how custom-object data is mapped and
shaped and which profile each record belongs to, sending domains and SMS senders, brand defaults,
the customer agent and what it knows. One call changes what
every message, report or record of the account does.

A persona whose job is such a call (the lead-magnet sequencer records the event that starts its
sequence) waives, in its policy's ``relax``, the effects its graph's code accounts for, per
operation (``create_event: [sending]``): a reviewable exception that leaves the operation's other
effects stopping. :func:`possible_effects` says what an operation can ever do, which bounds what
may be waived for it.

Example::

    call_effects(catalog.get("update_profile"), {"id": "01H...", "email": "x@evil.test"})
    # frozenset({Effect.WRITE, Effect.IDENTITY})
    call_effects(catalog.get("create_event"), {"profile": {"id": "01H...", "email": "x@evil.test"}, ...})
    # frozenset({Effect.WRITE, Effect.SENDING, Effect.IDENTITY}): Klaviyo sets the email on profile 01H...
    call_effects(catalog.get("create_client_profile"), {"id": "01H...", "anonymous_id": "device-1"})
    # frozenset({Effect.WRITE, Effect.IDENTITY}): the device now writes to profile 01H...
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from .catalog import Operation

__all__ = [
    "APPROVAL_EFFECTS",
    "IDEMPOTENT_WRITES",
    "OPERATION_EFFECTS",
    "PROFILES_PER_CALL",
    "READ_BEFORE_WRITE",
    "Effect",
    "call_effects",
    "describe_effects",
    "operation_effects",
    "possible_effects",
    "profiles_written",
    "safe_to_repeat",
]


class Effect(StrEnum):
    """One class of effect a call has on the account."""

    READ = "read"
    WRITE = "write"
    CONSENT = "consent"
    IDENTITY = "identity"
    DESTRUCTIVE = "destructive"
    SENDING = "sending"
    ACCOUNT = "account"
    VOLUME = "volume"


#: The effects a default approval policy stops for.
APPROVAL_EFFECTS = frozenset(
    {Effect.CONSENT, Effect.IDENTITY, Effect.DESTRUCTIVE, Effect.SENDING, Effect.ACCOUNT, Effect.VOLUME}
)

#: Profiles one call may create or update before it is ``volume`` (a persona's policy may set its own).
PROFILES_PER_CALL = 1000

_C, _I, _D, _S, _A = Effect.CONSENT, Effect.IDENTITY, Effect.DESTRUCTIVE, Effect.SENDING, Effect.ACCOUNT

#: The hand-written table: what each consequential operation does beyond "write".
#: An operation the catalog marks destructive must appear here (a test keeps it so).
OPERATION_EFFECTS: dict[str, frozenset[Effect]] = {
    # consent: subscribe, unsubscribe, suppress, unsuppress, opt-ins of any channel
    "bulk_subscribe_profiles": frozenset({_C}),
    "bulk_unsubscribe_profiles": frozenset({_C}),
    "bulk_suppress_profiles": frozenset({_C}),
    "bulk_unsuppress_profiles": frozenset({_C}),
    "create_client_subscription": frozenset({_C}),
    "create_back_in_stock_subscription": frozenset({_C}),
    "create_client_back_in_stock_subscription": frozenset({_C}),
    "create_push_token": frozenset({_C}),
    "create_client_push_token": frozenset({_C}),
    "unregister_client_push_token": frozenset({_C}),
    "delete_push_token": frozenset({_C, _D}),
    # identity: who a profile is
    "merge_profiles": frozenset({_I, _D}),
    # sending: messages (or account data) leave Klaviyo, or a flow starts that sends them
    "send_campaign": frozenset({_S}),
    "add_profiles_to_list": frozenset({_S}),  # a list-triggered flow starts for each profile added
    "create_event": frozenset({_S}),  # a metric-triggered flow starts on the event
    "bulk_create_events": frozenset({_S}),
    "create_client_event": frozenset({_S}),
    "bulk_create_client_events": frozenset({_S}),
    "update_segment": frozenset({_S}),  # a new definition: everyone who joins starts its segment flows
    "update_flow": frozenset({_S}),  # its one attribute is the status: live starts its sends, draft/manual stop them
    "update_flow_action": frozenset({_S}),  # what, when and whether a flow's message is sent
    # what live messages carry: a universal block's changes reach every template that uses it (live
    # flow emails included), and a web feed is fetched again each time a message that uses it is sent
    "update_universal_content": frozenset({_S}),
    "update_web_feed": frozenset({_S}),
    # what a product is: live messages' product blocks show its price, url and image, and a variant
    # back in stock fires the back-in-stock flow for everyone waiting on it
    "create_catalog_item": frozenset({_S}),
    "update_catalog_item": frozenset({_S}),
    "bulk_create_catalog_items": frozenset({_S}),
    "bulk_update_catalog_items": frozenset({_S}),
    "create_catalog_variant": frozenset({_S}),
    "update_catalog_variant": frozenset({_S}),
    "bulk_create_catalog_variants": frozenset({_S}),
    "bulk_update_catalog_variants": frozenset({_S}),
    # what live messages hand out: a coupon block gives each recipient the next unassigned code, so a
    # new code (one the store may not honour) or a code set back to UNASSIGNED (a used one handed out
    # again), a changed expiry or a withdrawn code changes what customers get. A coupon's own
    # description and low-balance alert (update_coupon, create_coupon) reach no one: plain writes.
    "create_coupon_code": frozenset({_S}),
    "bulk_create_coupon_codes": frozenset({_S}),
    "update_coupon_code": frozenset({_S}),
    # a custom-object record is a flow trigger as an event is: the spec's FlowDefinition has a
    # CustomObjectDateTrigger, which sends to each record's profile on the record's date
    "create_data_source_record": frozenset({_S}),
    "bulk_create_data_source_records": frozenset({_S}),
    # a translation is what recipients in its locales get of a flow message, campaign or template (beta)
    "create_translation_beta": frozenset({_S}),
    "update_translation_beta": frozenset({_S}),
    "create_client_review": frozenset({_S}),  # a review is published on the store
    "update_review": frozenset({_S}),  # publishing, rejecting or replying to a public review
    "create_customer_agent_response_beta": frozenset({_S}),  # live mode answers a shopper by email or SMS
    "create_agent_tool_beta": frozenset({_S}),  # an agent tool calls an outside endpoint, as a webhook does
    "update_agent_tool_beta": frozenset({_S}),
    "create_template_preview_send_job_beta": frozenset({_S}),
    "schedule_campaign_message_beta": frozenset({_S}),
    "update_campaign_message_schedule_beta": frozenset({_S}),
    "update_campaign_audience_beta": frozenset({_S}),  # whom its messages go to, a scheduled one's too
    "create_campaign_audience_beta": frozenset({_S}),  # the messages it names now go to its groups too
    "create_conversation_message": frozenset({_S}),
    "create_webhook": frozenset({_S}),
    "update_webhook": frozenset({_S}),
    # destructive: data or work that cannot be had back
    "request_profile_deletion": frozenset({_D}),
    "cancel_campaign_send": frozenset({_D}),
    "remove_profiles_from_list": frozenset({_D}),
    "update_api_key_beta": frozenset({_D, _A}),
    "create_agent_secret_beta": frozenset({_D}),
    "update_agent_secret_beta": frozenset({_D}),
    # a shopper's open conversation with the customer agent ends: closed is its only status, none reopens it
    "update_customer_agent_conversation_beta": frozenset({_D}),
    # a PATCH of a relationship replaces the set: every member not named is removed
    "update_categories_for_catalog_item": frozenset({_D}),
    "update_items_for_catalog_category": frozenset({_D}),
    "update_object_schema_relationship": frozenset({_D}),
    "update_profile_schema_relationship": frozenset({_D}),
    # account: one setting that every message, report or record of the account follows
    "update_tracking_setting": frozenset({_A}),  # parameters added to every link of every campaign and flow
    "update_mapped_metric": frozenset({_A}),  # which metric is the account's revenue, orders, refunds...
    "update_custom_metric": frozenset({_A}),  # a definition that reports and mapped metrics use
    "update_source_mapping": frozenset({_A}),  # how every record from a data source lands in its object
    "update_object_schema": frozenset({_A}),  # the fields every record of a custom object has
    # which profile (or object) every record of an object belongs to: whom its date triggers send to
    "create_profile_schema_relationship": frozenset({_A}),
    "create_object_schema_relationship": frozenset({_A}),
    "create_sending_domain_beta": frozenset({_A}),  # the domain the account's email is sent from
    "create_sending_domain_activation_job_beta": frozenset({_A}),
    "create_text_messaging_configuration_beta": frozenset({_A}),  # the account's SMS senders and registration
    "create_text_messaging_sender_beta": frozenset({_A}),
    "create_text_messaging_sender_registration_beta": frozenset({_A}),
    "update_brand_email_default_beta": frozenset({_A}),  # the brand kit every template draws on
    "update_brand_voice_beta": frozenset({_A}),
    "update_brand_button_beta": frozenset({_A}),
    "update_brand_color_beta": frozenset({_A}),
    "update_brand_logo_beta": frozenset({_A}),
    "update_brand_social_group_beta": frozenset({_A}),
    "update_customer_agent_beta": frozenset({_A}),  # how the customer agent answers every shopper
    "create_agent_knowledge_beta": frozenset({_A}),  # what it tells every shopper, and what it may do
    "create_agent_knowledge_file_beta": frozenset({_A}),
    "update_agent_knowledge_beta": frozenset({_A}),
    "create_agent_skill_beta": frozenset({_A}),
    "update_agent_skill_beta": frozenset({_A}),
}

#: Effects that only a read before the write can tell (``klaviyo_toolkit.effects_lookup`` reads):
#: a template is what a campaign message or a flow email sends, so editing one that a scheduled or
#: sending campaign, or a live flow, uses is sending; editing any other template (a draft's, whose
#: send or switch to live stops on its own, or one nothing uses) is a plain write.
READ_BEFORE_WRITE: dict[str, frozenset[Effect]] = {
    "update_template": frozenset({_S}),
}

#: Operations whose every delete/remove is destructive, by prefix (delete_list, remove_tag_from_flows, ...).
_DESTRUCTIVE_PREFIXES = ("delete_", "remove_", "bulk_delete_")
#: A profile's keys: its id, its identifiers, and the device ids that find it (web-tracking ``_kx``,
#: a client's anonymous id). Any two in one record: one finds the profile, the other is set on it.
_PROFILE_KEYS = ("id", "email", "phone_number", "external_id", "anonymous_id", "kx", "_kx")
#: Writes that change an existing profile (by id or by matching an identifier).
_PROFILE_UPDATES = {"update_profile", "create_or_update_profile", "create_client_profile", "bulk_import_profiles"}
#: Writes that set how a list collects consent (``opt_in_process``: single or double opt-in).
_LIST_WRITES = {"create_list", "update_list"}
#: Server-side event writes: Klaviyo finds the event's profile by one identifier and sets the others on it.
_EVENT_WRITES = {"create_event", "bulk_create_events", "create_client_event", "bulk_create_client_events"}
#: Writes that carry a profile object (``profile``, or ``profiles`` items) to find and update as an
#: event's is: a push token's, a subscription's, a back-in-stock request's.
_PROFILE_BEARING = _EVENT_WRITES | {
    "create_push_token",
    "create_client_push_token",
    "unregister_client_push_token",
    "create_client_subscription",
    "create_back_in_stock_subscription",
    "create_client_back_in_stock_subscription",
    "bulk_subscribe_profiles",
    "bulk_unsubscribe_profiles",
}
#: Creates whose arguments can be ``live`` anywhere (a flow's actions, a form's versions): they start
#: sending. Updating a flow or a flow action sends whatever its arguments (:data:`OPERATION_EFFECTS`).
_LIVE_WRITES = {"create_flow", "create_form"}
#: Writes that may carry list ids: profiles added to a list start its list-triggered flows.
_LIST_ADDS = {"bulk_import_profiles", "bulk_subscribe_profiles", "create_client_subscription"}
#: Writes whose ``send_settings`` (send strategy, timezone, past-timezone recipients, exit conditions)
#: change when and to whom a campaign's messages go; its name, colour or archiving are plain writes.
_SEND_SETTINGS_WRITES = {"update_campaign_beta"}


def operation_effects(op: Operation) -> frozenset[Effect]:
    """The effects of ``op`` whatever its arguments."""
    if op.read_only:
        return frozenset({Effect.READ})
    effects = {Effect.WRITE, *OPERATION_EFFECTS.get(op.operation_id, ())}
    if op.operation_id.startswith(_DESTRUCTIVE_PREFIXES):
        effects.add(Effect.DESTRUCTIVE)
    return frozenset(effects)


def _has_key(value: Any, key: str) -> bool:
    """Whether ``key`` is set anywhere in the arguments, outside ``properties``: custom properties are
    free-form, so one named ``subscriptions`` or ``list_id`` is data, not a consent or list change."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if (k == key and v not in (None, {}, [])) or (k != "properties" and _has_key(v, key)):
                return True
        return False
    if isinstance(value, list):
        return any(_has_key(v, key) for v in value)
    return False


def _cleared(args: Mapping[str, Any]) -> set[str]:
    """The fields an update clears (``clear``: dotted names, as a prepared call holds them)."""
    names = args.get("clear")
    return {str(n) for n in names} if isinstance(names, (list, tuple)) else set()


def _records(args: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """The profile records a call writes: the arguments themselves, or each item of a bulk list."""
    profiles = args.get("profiles")
    if isinstance(profiles, list):
        yield from (p for p in profiles if isinstance(p, Mapping))
    else:
        yield args


def _named_profiles(value: Any) -> Iterable[Mapping[str, Any]]:
    """Every profile object a write carries: each ``profile`` object and each item of a ``profiles``
    list, at any depth (one per event of a bulk create); never inside free-form ``properties``."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "properties":
                continue
            if key == "profile" and isinstance(item, Mapping):
                yield item
            elif key == "profiles" and isinstance(item, list):
                yield from (p for p in item if isinstance(p, Mapping))
            else:
                yield from _named_profiles(item)
    elif isinstance(value, list):
        for item in value:
            yield from _named_profiles(item)


def _patch(record: Mapping[str, Any]) -> Any:
    """A record's ``patch_identifiers``: at its top (profile writes) or in its ``meta`` (the profile of
    an event, a push token or a subscription, as the spec nests it)."""
    meta = record.get("meta")
    return record.get("patch_identifiers") or (meta.get("patch_identifiers") if isinstance(meta, Mapping) else None)


def _changes_identity(op: Operation, args: Mapping[str, Any]) -> bool:
    if op.operation_id in _PROFILE_BEARING:
        records: Iterable[Mapping[str, Any]] = _named_profiles(args)
    elif op.operation_id in _PROFILE_UPDATES:
        records = _records(args)
    else:
        return False
    for record in records:
        patch = _patch(record)
        if isinstance(patch, str):  # given as JSON text
            try:
                patch = json.loads(patch)
            except ValueError:
                return True  # unreadable: assume the worst
        if isinstance(patch, Mapping) and any(v not in (None, "", {}, []) for v in patch.values()):
            return True  # appends to or removes from an existing profile's identifiers
        if sum(record.get(k) not in (None, "") for k in _PROFILE_KEYS) > 1:
            return True  # found by one key (id, identifier or device id), another set on it: identity changes
    return False


def profiles_written(op: Operation, args: Mapping[str, Any]) -> int:
    """How many profile records the call creates or updates (an import's rows, a bulk job's profiles)."""
    if op.operation_id in _PROFILE_BEARING:
        return sum(1 for _ in _named_profiles(args))
    if op.operation_id in _PROFILE_UPDATES:
        return sum(1 for _ in _records(args))
    return 0


def call_effects(op: Operation, args: Mapping[str, Any], *, max_profiles: int = PROFILES_PER_CALL) -> frozenset[Effect]:
    """The effects of calling ``op`` with ``args`` (see the module docstring); a call writing more
    than ``max_profiles`` profiles is ``volume``."""
    effects = set(operation_effects(op))
    if op.read_only:
        return frozenset(effects)
    cleared = _cleared(args)
    opt_in = op.operation_id in _LIST_WRITES and (args.get("opt_in_process") or "opt_in_process" in cleared)
    if _has_key(args, "subscriptions") or opt_in:
        effects.add(Effect.CONSENT)
    if _changes_identity(op, args) or (op.operation_id in _PROFILE_UPDATES and cleared & set(_PROFILE_KEYS)):
        effects.add(Effect.IDENTITY)  # clearing an email, phone number or external id takes one from the profile
    if op.operation_id in _LIVE_WRITES and _sets_live(args):
        effects.add(Effect.SENDING)
    if op.operation_id in _LIST_ADDS and _names_lists(args):
        effects.add(Effect.SENDING)
    send_settings = any("send_settings" in name.split(".") for name in cleared)
    if op.operation_id in _SEND_SETTINGS_WRITES and (_has_key(args, "send_settings") or send_settings):
        effects.add(Effect.SENDING)
    if profiles_written(op, args) > max_profiles:
        effects.add(Effect.VOLUME)
    return frozenset(effects)


def possible_effects(op: Operation) -> frozenset[Effect]:
    """Every effect a call of ``op`` can have, whatever its arguments: what a policy may waive for it."""
    effects = set(operation_effects(op))
    if op.read_only:
        return frozenset(effects)
    name = op.operation_id
    if name in _LIST_WRITES or _may_carry(op.args, "subscriptions"):
        effects.add(Effect.CONSENT)
    if name in _PROFILE_BEARING or name in _PROFILE_UPDATES:
        effects.add(Effect.IDENTITY)
        if (op.max_items or 0) > 1:  # a bulk call: its profiles can outnumber any limit
            effects.add(Effect.VOLUME)
    if name in _LIVE_WRITES or name in _LIST_ADDS or name in _SEND_SETTINGS_WRITES:
        effects.add(Effect.SENDING)
    effects.update(READ_BEFORE_WRITE.get(name, ()))
    return frozenset(effects)


def _may_carry(shape: Any, key: str) -> bool:
    """Whether arguments of this shape (an operation's ``args``) can hold ``key``: a field of that
    name, or free-form JSON that could hold anything (``properties`` aside, as :func:`_has_key`)."""
    if isinstance(shape, Mapping):
        if shape.get("name") == "properties":
            return False
        if shape.get("name") == key or shape.get("kind") == "json":
            return True
        return any(_may_carry(v, key) for v in shape.values())
    if isinstance(shape, list | tuple):
        return any(_may_carry(v, key) for v in shape)
    return False


def _sets_live(value: Any) -> bool:
    """A ``status`` of ``live`` anywhere in the arguments (a flow's, an action's inside its ``definition``, a
    form version's)."""
    if isinstance(value, Mapping):
        return any((k == "status" and str(v).strip().lower() == "live") or _sets_live(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_sets_live(v) for v in value)
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):  # a definition given as JSON text
        try:
            return _sets_live(json.loads(value))
        except ValueError:
            return False
    return False


def _names_lists(args: Mapping[str, Any]) -> bool:
    """Whether the call adds its profiles to a list (``list_id``/``list_ids``, or a ``lists`` relationship)."""
    return any(_has_key(args, key) for key in ("list_id", "list_ids", "lists"))


#: Writes whose second application changes nothing more than the first (so a request whose
#: response was lost may be sent again). Klaviyo has no Idempotency-Key header: these are safe by
#: what they do, not by a key. Besides these, every PATCH that sets attributes and every JSON:API
#: relationship add/remove of plain ids is (``_idempotent_by_shape``); anything else (creates,
#: deletes, sends, actions) is never repeated blindly.
IDEMPOTENT_WRITES: dict[str, str] = {
    "create_or_update_profile": "an upsert by id, email, phone or external id: twice finds the profile once made",
    "add_profiles_to_list": "membership is a set: adding a member twice leaves one membership",
    "remove_profiles_from_list": "membership is a set: removing a non-member is a no-op",
    "bulk_subscribe_profiles": "subscribing a subscribed profile changes nothing",
    "bulk_unsubscribe_profiles": "unsubscribing an unsubscribed profile changes nothing",
    "bulk_suppress_profiles": "suppressing a suppressed profile changes nothing",
    "bulk_unsuppress_profiles": "unsuppressing a profile that is not suppressed changes nothing",
    "bulk_import_profiles": "an import upserts by identifier: the same rows twice give the same profiles",
    "update_profile": "PATCH sets attributes: the same values twice give the same profile",
    "update_list": "PATCH sets attributes",
    "update_segment": "PATCH sets attributes",
    "update_campaign": "PATCH sets attributes",
    "update_campaign_message": "PATCH sets attributes",
    "update_template": "PATCH sets attributes",
    "update_flow": "PATCH sets attributes",
    "update_tag": "PATCH sets attributes",
}


#: The operations that create events. Klaviyo keeps one event per ``unique_id``, so one of these
#: whose every event carries one may be sent again; no other operation is judged by its body.
EVENT_CREATES = frozenset({"create_event", "bulk_create_events", "create_client_event", "bulk_create_client_events"})


def _events_have_unique_ids(body: Any) -> bool:
    """Every event the envelope creates carries a ``unique_id`` (Klaviyo keeps one event per id).

    Only the envelope is read: ``properties`` (an event's or a profile's) are free-form data that
    may hold anything, an object shaped like an event included, so they are never walked."""
    found: list[bool] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if node.get("type") == "event" and isinstance(node.get("attributes"), Mapping):
                found.append(bool(node["attributes"].get("unique_id")))
            for key, value in node.items():
                if key != "properties":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(body)
    return bool(found) and all(found)


def safe_to_repeat(op: Operation, body: Any) -> bool:
    """Whether a request that may have been applied (5xx, a lost response) can be sent again.

    True for reads, for :data:`IDEMPOTENT_WRITES` and writes idempotent by their shape (unless a
    profile write appends to a property array), and for the :data:`EVENT_CREATES` whose every
    event has its ``unique_id`` set (Klaviyo deduplicates them). A 429 is different: Klaviyo did not
    process it, so any call may be sent again after ``Retry-After``; that decision is the client's.
    """
    if op.read_only:
        return True
    if op.operation_id in IDEMPOTENT_WRITES or _idempotent_by_shape(op):
        return not _appends(body)
    return op.operation_id in EVENT_CREATES and _events_have_unique_ids(body)


def _idempotent_by_shape(op: Operation) -> bool:
    """A PATCH that sets attributes (not one that performs an ``action``, such as cancelling a send),
    or a POST/DELETE on a ``/relationships/`` path whose body is only resource ids: JSON:API adds a
    member already there, or removes one already gone, as a no-op. Judged from the catalog, so an
    operation added to it later is covered without being listed."""
    body = [a for a in op.args if a.get("in") == "body"]
    if op.method == "PATCH":
        return not any(a["name"] == "action" for a in body)
    if op.method in ("POST", "DELETE") and "/relationships/" in op.path:
        return bool(body) and all(a["shape"]["kind"] == "rel" for a in body)
    return False


def _appends(body: Any) -> bool:
    """Whether a profile write appends to a property array (``meta.patch_properties.append``): twice
    appends twice (``["A", "B", "B"]``), so such a PATCH is not the same done again. ``unappend``
    and ``unset`` are (removing twice removes once). Free-form ``properties`` are never walked."""
    if isinstance(body, Mapping):
        for key, value in body.items():
            if key == "patch_properties" and isinstance(value, Mapping) and value.get("append") not in (None, {}, ""):
                return True
            if key != "properties" and _appends(value):
                return True
    elif isinstance(body, list):
        return any(_appends(item) for item in body)
    return False


_WORDS = {
    Effect.CONSENT: "changes consent",
    Effect.IDENTITY: "changes who a profile is",
    Effect.DESTRUCTIVE: "destroys data",
    Effect.SENDING: "sends messages or data out (or starts a flow that can)",
    Effect.ACCOUNT: "changes an account-wide setting",
    Effect.VOLUME: "writes more than {max_profiles} profiles in one call (Klaviyo bills by profile count)",
}


def describe_effects(effects: Iterable[Effect], *, max_profiles: int = PROFILES_PER_CALL) -> str:
    """``"changes consent, destroys data"``: the effects that need approval, in words."""
    given = set(effects)
    words = [_WORDS[e].format(max_profiles=max_profiles) for e in _WORDS if e in given]
    return ", ".join(words) or "writes"
