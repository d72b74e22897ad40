"""Effects only a read can tell: whether editing a template changes what live messages send.

A template is what an email sends. Klaviyo copies a template into the campaign message it is
assigned to, and a flow email sends its own template (``template_id`` in the flow's definition);
``update_template`` on either of those ids changes what that message says. No endpoint answers
"who sends template T", so :func:`lookup_effects` reads the places a send can still come from:

- email campaigns that can still send (any status but ``Draft``, ``Sent`` and ``Cancelled...``):
  the template of each of their messages (``get_template_id_for_campaign_message``);
- flows that are ``live`` or ``manual``: every action of their definition that names the template
  and is not a draft (``get_flow`` with ``additional-fields[flow]=definition``).

A draft's template passes: the campaign's send (``send_campaign``) or the flow's switch to live
(``update_flow``) stops for approval on its own. A read that cannot be made (a scope the persona
lacks, an error, more pages than :data:`MAX_PAGES`) counts as finding the template: the check
fails closed and says what it could not read. Which operations are looked up, and for which
effects, is :data:`klaviyo_toolkit.effects.READ_BEFORE_WRITE`.

Example::

    found = lookup_effects(toolkit, catalog.get("update_template"), {"id": "T1", "html": "..."})
    found.effects   # frozenset({Effect.SENDING})
    found.reason    # "campaign 01H... 'Summer sale' (Scheduled) sends template T1"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .effects import READ_BEFORE_WRITE, Effect
from .errors import KlaviyoError

if TYPE_CHECKING:
    from .catalog import Operation
    from .tools import Toolset

__all__ = ["CAMPAIGN_STATUSES_THAT_SEND", "MAX_PAGES", "FoundEffects", "lookup_effects", "template_senders"]

#: Campaign statuses (the spec's ``status`` filter values) in which a campaign's messages can still go out.
CAMPAIGN_STATUSES_THAT_SEND = (
    "Scheduled",
    "Sending",
    "Adding Recipients",
    "Preparing to send",
    "Preparing to schedule",
    "Sending Segments",
    "Variations Sent",  # an A/B test's winner is still to be sent
    "Queued without Recipients",
    "Unknown",
)
#: Flow statuses in which a flow sends (``manual``: its messages wait for someone to release them).
FLOW_STATUSES_THAT_SEND = ("live", "manual")
#: Pages of one listing read before giving up (and failing closed).
MAX_PAGES = 20


@dataclass(frozen=True)
class FoundEffects:
    """Effects a read found, and why: what uses the resource, or what could not be read."""

    effects: frozenset[Effect] = frozenset()
    reason: str = ""


class _Unreadable(Exception):
    """A read the check needed could not be made; the message says which and why."""


def lookup_effects(kit: Toolset, op: Operation, args: Mapping[str, Any]) -> FoundEffects:
    """The effects of calling ``op`` with ``args`` that only a read of the account tells (none for
    operations outside :data:`~klaviyo_toolkit.effects.READ_BEFORE_WRITE`); ``kit`` reads."""
    look = _LOOKUPS.get(op.operation_id)
    return look(kit, args) if look is not None else FoundEffects()


def template_senders(kit: Toolset, args: Mapping[str, Any]) -> FoundEffects:
    """Sending if a campaign that can still send, or a live flow, sends template ``args["id"]``."""
    template = str(args.get("id") or "")
    sending = READ_BEFORE_WRITE["update_template"]
    try:
        _needs(kit, "get_campaigns", "get_template_id_for_campaign_message", "get_flows", "get_flow")
        found = _campaign_sending(kit, template) or _flow_sending(kit, template)
    except _Unreadable as exc:
        return FoundEffects(
            sending,
            f"could not check whether a scheduled campaign or a live flow sends template {template}: {exc}",
        )
    return FoundEffects(sending, f"{found} sends template {template}") if found else FoundEffects()


def _pages(kit: Toolset, name: str, **args: Any) -> Iterator[list[Mapping[str, Any]]]:
    """The records of every page of a listing, or _Unreadable (a scope missing, an error, too many pages)."""
    try:
        for n, page in enumerate(kit.pages(name, **args)):
            if n >= MAX_PAGES:
                raise _Unreadable(f"more than {MAX_PAGES} pages of {name}")
            yield [r for r in (page.data or []) if isinstance(r, Mapping)]
    except KlaviyoError as exc:
        raise _Unreadable(f"{name} failed: {exc}") from exc


def _fetch(kit: Toolset, name: str, **args: Any) -> Any:
    """One read's ``data``, or _Unreadable."""
    try:
        return kit.fetch(name, **args).data
    except KlaviyoError as exc:
        raise _Unreadable(f"{name} failed: {exc}") from exc


def _needs(kit: Toolset, *names: str) -> None:
    """_Unreadable naming the scopes the reads need that ``kit`` was not granted (before any request)."""
    missing = sorted({s for name in names for s in kit.missing_scopes(kit.catalog.get(name))})
    if missing:
        raise _Unreadable(f"the reads need {', '.join(missing)}, which this toolkit was not granted")


def _campaign_sending(kit: Toolset, template: str) -> str | None:
    """``campaign <id> '<name>' (<status>)`` if an email campaign that can still send has a message
    whose template is ``template``."""
    statuses = ",".join(f"'{s}'" for s in CAMPAIGN_STATUSES_THAT_SEND)
    flt = f"and(equals(messages.channel,'email'),any(status,[{statuses}]))"
    for records in _pages(kit, "get_campaigns", filter=flt):
        for campaign in records:
            attrs = campaign.get("attributes") or {}
            status = str(attrs.get("status") or "")
            if status in ("Draft", "Sent") or status.startswith("Cancelled"):
                continue  # the filter already leaves these out; a backend that ignores it is checked here
            for message in _message_ids(kit, campaign):
                linked = _fetch(kit, "get_template_id_for_campaign_message", id=message)
                if isinstance(linked, Mapping) and str(linked.get("id")) == template:
                    return f"campaign {campaign.get('id')} '{attrs.get('name', '')}' ({status})"
    return None


def _message_ids(kit: Toolset, campaign: Mapping[str, Any]) -> list[str]:
    """The campaign's message ids: from its ``campaign-messages`` linkage, else read."""
    linkage = ((campaign.get("relationships") or {}).get("campaign-messages") or {}).get("data")
    if not isinstance(linkage, list):
        linkage = _fetch(kit, "get_messages_for_campaign", id=str(campaign.get("id")))
    return [str(m.get("id")) for m in linkage or [] if isinstance(m, Mapping)]


def _flow_sending(kit: Toolset, template: str) -> str | None:
    """``flow <id> '<name>' (<status>)`` if a live or manual flow has an action, not a draft, that
    names ``template`` anywhere in its data (an email's message, an A/B test's variations)."""
    for status in FLOW_STATUSES_THAT_SEND:
        for records in _pages(kit, "get_flows", filter=f"equals(status,'{status}')"):
            for flow in records:
                fid = str(flow.get("id"))
                found = _fetch(kit, "get_flow", id=fid, additional_fields_flow=["definition"])
                definition = ((found or {}).get("attributes") or {}).get("definition")
                if not isinstance(definition, Mapping):
                    raise _Unreadable(f"flow {fid} came back without its definition")
                for action in definition.get("actions") or []:
                    data = action.get("data") if isinstance(action, Mapping) else None
                    if isinstance(data, Mapping) and data.get("status") != "draft" and _names(data, template):
                        name = (flow.get("attributes") or {}).get("name", "")
                        return f"flow {fid} '{name}' ({status})"
    return None


def _names(node: Any, template: str) -> bool:
    """Whether ``template_id`` is ``template`` anywhere in ``node``."""
    if isinstance(node, Mapping):
        return any((k == "template_id" and str(v) == template) or _names(v, template) for k, v in node.items())
    if isinstance(node, list):
        return any(_names(v, template) for v in node)
    return False


_LOOKUPS: dict[str, Callable[[Toolset, Mapping[str, Any]], FoundEffects]] = {  # keys: READ_BEFORE_WRITE
    "update_template": template_senders,
}
